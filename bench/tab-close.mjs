// Tab-close benchmark: how long from a browser tab closing to a finished
// recording. On each server (the gateway's own `serve`, and a Node rtc.io
// server with `rtcio-gateway join` recording the room) it runs N times:
// Chromium (the rtc.io test client of tests/browser) joins, publishes camera +
// microphone, waits until the recording file grows, closes the tab
// (page.close(): no leave-room, no goodbye) and measures close → the manifest
// saying `state: finished, end_reason: peer-left` (then checks that the file
// decodes, with audio and video).
//
// Usage: node bench/tab-close.mjs [--runs N] [--servers serve,node] [--log-dir DIR]
// (bench/run-tab-close.sh builds the gateway and installs what this needs.)
// GATEWAY_BIN picks the gateway binary (default target/debug/rtcio-gateway).
// With --log-dir each run's gateway log (JSON lines) is kept there.
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { decodeErrors, ffprobe, Fixture, manifests, recordingFile, sleep } from "../tests/browser/harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const REFERENCE_SERVER = path.join(here, "../tests/node/reference-server.mjs");
const POLL_MS = 10;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const RUNS = Number(option("runs", "5"));
const SERVERS = option("servers", "serve,node").split(",");
const LOG_DIR = option("log-dir", null);

/** Poll `check()` every POLL_MS until it returns a value; fail after `timeoutMs`. */
async function until(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
}

/** The Node reference rtc.io server as a child; resolves with its URL. */
async function startReferenceServer(fixture) {
  const proc = spawn(process.execPath, [REFERENCE_SERVER, "0"], { stdio: ["ignore", "pipe", "inherit"] });
  fixture.onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGKILL");
      await once(proc, "exit");
    }
  });
  let out = "";
  const port = await new Promise((resolve, reject) => {
    proc.stdout.on("data", (c) => {
      out += c;
      const m = out.match(/listening (\d+)/);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`reference server exited ${code}: ${out}`)));
  });
  return `http://127.0.0.1:${port}`;
}

const LOG_ENV = { RTCIO_GATEWAY_LOG__LEVEL: "info,rtcio_gateway=debug,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error" };

/** Signaling URL for the browser and the recordings directory of the room, per server kind. */
async function startServer(fixture, kind, room) {
  if (kind === "serve") {
    const gw = await fixture.startGateway({ env: LOG_ENV });
    return { url: gw.url, roomDir: path.join(gw.recordings, room), gateway: gw };
  }
  const url = await startReferenceServer(fixture);
  const recordings = path.join(fixture.dir, "recordings");
  const gateway = await fixture.spawnGateway(
    ["join", "--server", url, "--room", room, "--name", "recorder", "--udp-bind", "127.0.0.1", "--recordings", recordings,
      "--log-level", LOG_ENV.RTCIO_GATEWAY_LOG__LEVEL],
    /joined room/,
  );
  return { url, roomDir: path.join(recordings, room), gateway };
}

/** One run: returns milliseconds from page.close() to the finished peer-left manifest. */
async function oneRun(kind, run) {
  const fixture = new Fixture(`tab-close-${kind}-${run}`);
  const room = `tab-close-${run}`;
  try {
    const { url, roomDir, gateway } = await startServer(fixture, kind, room);
    const alice = await fixture.openClient({ url, room, name: "alice" });
    await alice.waitFor("peer-connect to the recorder", (e) => e.type === "peer-connect", 30000);
    await alice.publish("camera");
    // Recording for real: the file exists and is growing.
    const manifest = await until("recording manifest", () => manifests(roomDir).find((m) => m.state === "recording"), 30000);
    const file = recordingFile(manifest);
    const size = () => (fs.existsSync(file) ? fs.statSync(file).size : 0);
    const first = await until("recorded bytes", () => size() || null, 30000);
    await until("a growing file", () => size() > first + 20000, 30000);
    const closedAt = Date.now();
    await alice.page.close();
    const done = await until(
      "a finished peer-left manifest",
      () => manifests(roomDir).find((m) => m.path === manifest.path && m.state !== "recording"),
      60000,
    );
    const ms = Date.now() - closedAt;
    if (done.state !== "finished" || done.end_reason !== "peer-left") {
      throw new Error(`manifest ended ${done.state} / ${done.end_reason}, not finished / peer-left`);
    }
    // Finished fast must still mean finished properly: the file decodes, with both tracks.
    const probe = ffprobe(file);
    const errors = decodeErrors(file);
    if (!probe.video || !probe.audio || probe.duration <= 0 || errors.length) {
      throw new Error(`${file}: video ${!!probe.video}, audio ${!!probe.audio}, ${probe.duration} s, errors ${errors}`);
    }
    if (LOG_DIR) {
      fs.mkdirSync(LOG_DIR, { recursive: true });
      fs.writeFileSync(path.join(LOG_DIR, `${kind}-${run}.jsonl`), `{"bench_tab_closed_unix_ms":${closedAt}}\n${gateway.output()}`);
    }
    return ms;
  } finally {
    await fixture.cleanup();
  }
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median: mid, min: s[0], max: s[s.length - 1] };
};
const secs = (ms) => (ms / 1000).toFixed(2);

const summary = [];
for (const kind of SERVERS) {
  const times = [];
  for (let run = 1; run <= RUNS; run++) {
    const ms = await oneRun(kind, run);
    times.push(ms);
    console.log(`${kind.padEnd(5)} run ${run}/${RUNS}: tab close -> finished peer-left manifest ${secs(ms)} s`);
  }
  summary.push([kind, stats(times)]);
}
for (const [kind, s] of summary) {
  const label = kind === "serve" ? "serve (own signaling)" : "join on a Node rtc.io server";
  console.log(`${label.padEnd(30)} median ${secs(s.median)} s  min ${secs(s.min)} s  max ${secs(s.max)} s  (n=${RUNS})`);
}
