// Test fixture: run the real gateway binary on an ephemeral port and connect
// socket.io-client 4.x sockets to it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
export const GATEWAY_BIN = process.env.GATEWAY_BIN ?? path.join(here, "../../target/debug/rtcio-gateway");

/** Start the gateway with extra environment; resolves to {url, proc, stop()}. */
export async function startGateway(env = {}) {
  const proc = spawn(GATEWAY_BIN, ["serve", "--listen", "127.0.0.1:0", "--no-record"], {
    env: { ...process.env, RTCIO_GATEWAY_LOG__FORMAT: "json", RTCIO_GATEWAY_LOG__LEVEL: "info", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${stderr}`)), 15000);
    proc.stderr.on("data", (chunk) => {
      stderr += chunk;
      const m = stderr.match(/"local_addr":"([^"]+)"/);
      if (m) { clearTimeout(timer); resolve(`http://${m[1]}`); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`gateway exited ${code}:\n${stderr}`)); });
  });
  return {
    url,
    proc,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      const [code] = await once(proc, "exit");
      return code;
    },
  };
}

/** A connected socket that records every event it receives. */
export async function connect(url, transport, opts = {}) {
  const transports = transport === "upgrade" ? ["polling", "websocket"] : [transport];
  const socket = io(url, { forceNew: true, reconnection: false, transports, ...opts });
  socket.received = [];
  socket.onAny((event, ...args) => socket.received.push([event, args[0]]));
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  if (transport === "upgrade") {
    // Wait for the upgrade to WebSocket so the test exercises it.
    const engine = socket.io.engine;
    if (engine.transport.name !== "websocket") await once(engine, "upgrade");
  }
  return socket;
}

/** Resolve with the first argument of the next `event` (recorded or future). */
export function next(socket, event, timeoutMs = 5000) {
  const idx = socket.received.findIndex(([e]) => e === event);
  if (idx >= 0) return Promise.resolve(socket.received.splice(idx, 1)[0][1]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    const handler = (e, arg) => {
      if (e !== event) return;
      clearTimeout(timer);
      socket.offAny(handler);
      const i = socket.received.findIndex(([x]) => x === event);
      if (i >= 0) socket.received.splice(i, 1);
      resolve(arg);
    };
    socket.onAny(handler);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Take everything received so far after a quiet period. */
export async function drain(socket, quietMs = 300) {
  await sleep(quietMs);
  return socket.received.splice(0);
}

export async function join(url, transport, roomId, name, password) {
  const s = await connect(url, transport);
  s.emit("join-room", { roomId, name, password });
  await next(s, "join-ok");
  return s;
}
