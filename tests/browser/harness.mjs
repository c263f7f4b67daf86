// Fixtures for the browser suite: the gateway binary (recording into a
// temporary directory), a static server for the test page, Debian's Chromium
// driven by playwright-core, and ffprobe/ffmpeg checks of what was recorded.
// Everything started here is stopped by `cleanup()`, also when a test fails.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, "../..");
export const GATEWAY_BIN = process.env.GATEWAY_BIN ?? path.join(repo, "target/debug/rtcio-gateway");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Children still running when this process exits (a crash, a killed test run) go with it.
const children = new Set();
process.on("exit", () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
});

/** Resources of one test; `cleanup()` stops them in reverse order. */
export class Fixture {
  constructor(name) {
    this.name = name;
    this.stops = [];
    this.consoles = []; // [page name, text]
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "rtcio-browser-"));
  }

  onCleanup(fn) {
    this.stops.push(fn);
  }

  async cleanup() {
    for (const stop of this.stops.reverse()) {
      try {
        await stop();
      } catch (e) {
        console.error(`cleanup: ${e}`);
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Print every browser console line (called when a test failed). */
  dumpConsole() {
    console.log(`--- browser console of "${this.name}" ---`);
    for (const [page, text] of this.consoles) console.log(`[${page}] ${text}`);
  }

  /** `rtcio-gateway <args>` as a child; resolves once its log shows `ready` (a regexp). */
  async spawnGateway(args, ready, env = {}) {
    const proc = spawn(GATEWAY_BIN, args, {
      env: { ...process.env, RTCIO_GATEWAY_LOG__FORMAT: "json", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(proc);
    proc.on("exit", () => children.delete(proc));
    let output = "";
    proc.stdout.on("data", (c) => (output += c));
    proc.stderr.on("data", (c) => (output += c));
    this.onCleanup(async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGKILL");
        await once(proc, "exit");
      }
    });
    const match = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway ${args[0]} did not start:\n${output}`)), 20000);
      const check = () => {
        const m = output.match(ready);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      };
      proc.stdout.on("data", check);
      proc.stderr.on("data", check);
      proc.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway ${args[0]} exited ${code}:\n${output}`));
      });
    });
    return {
      proc,
      match,
      output: () => output,
      async stop(signal = "SIGTERM") {
        if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
        proc.kill(signal);
        const [code] = await once(proc, "exit");
        return code;
      },
    };
  }

  /** `serve` on an ephemeral port, recording into `<fixture dir>/recordings`. */
  async startGateway({ config, env = {} } = {}) {
    const recordings = path.join(this.dir, "recordings");
    const args = ["serve", "--listen", "127.0.0.1:0", "--recordings", recordings];
    if (config) {
      const file = path.join(this.dir, "gateway.toml");
      fs.writeFileSync(file, config);
      args.push("--config", file);
    }
    const gw = await this.spawnGateway(args, /"local_addr":"([^"]+)"/, {
      RTCIO_GATEWAY_RECORDING__UDP_BIND: "127.0.0.1",
      ...env,
    });
    return { ...gw, url: `http://${gw.match[1]}`, recordings };
  }

  /** The test page and socket.io-client's browser bundle over HTTP. */
  async startPageServer() {
    const files = {
      "/": [path.join(here, "client/index.html"), "text/html"],
      "/rtcio-test-client.js": [path.join(here, "client/rtcio-test-client.js"), "text/javascript"],
      "/socket.io.min.js": [path.join(here, "node_modules/socket.io-client/dist/socket.io.min.js"), "text/javascript"],
    };
    const server = http.createServer((req, res) => {
      const file = files[new URL(req.url, "http://x").pathname];
      if (req.url === "/favicon.ico") {
        res.writeHead(204).end();
        return;
      }
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": file[1] }).end(fs.readFileSync(file[0]));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    this.onCleanup(() => new Promise((r) => server.close(r)));
    this.pageUrl = `http://127.0.0.1:${server.address().port}/`;
    return this.pageUrl;
  }

  /** Chromium with the suite's flags (and `extraArgs`); `openClient` launches one if none is running. */
  async launchBrowser(extraArgs = []) {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, ...extraArgs] });
    this.onCleanup(() => browser.close());
    this.browser = browser;
    return browser;
  }

  /** A browser tab running the rtc.io test client, joined to `room`. */
  async openClient({ url, room, name, channels = ["chat"], videoCodec = null }) {
    if (!this.browser) await this.launchBrowser();
    if (!this.pageUrl) await this.startPageServer();
    const context = await this.browser.newContext();
    const page = await context.newPage();
    page.on("console", (m) => this.consoles.push([name, m.text()]));
    page.on("pageerror", (e) => this.consoles.push([name, `PAGE ERROR ${e}`]));
    await page.goto(this.pageUrl);
    await page.waitForFunction(() => window.clientReady === true);
    await page.evaluate(
      async (o) => {
        window.client = new window.RtcioTestClient(o);
        await window.client.join();
      },
      { url, room, name, channels, videoCodec },
    );
    return new BrowserPeer(name, context, page);
  }
}

/** Driver-side handle of one browser tab. */
export class BrowserPeer {
  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
  }

  id() {
    return this.page.evaluate(() => window.client.id);
  }

  /** getUserMedia and socket.emit(event, {cam: stream, metadata}); resolves with the stream id. */
  publish(event, { audio = true, video = true, metadata = null, key = "cam" } = {}) {
    return this.page.evaluate(
      async ({ event, audio, video, metadata, key }) => {
        const media = await navigator.mediaDevices.getUserMedia({ audio, video });
        window.streams = window.streams ?? {};
        window.streams[media.id] = media;
        const arg = { [key]: window.client.stream(media) };
        if (metadata) arg.metadata = metadata;
        window.client.emit(event, arg);
        return media.id;
      },
      { event, audio, video, metadata, key },
    );
  }

  unpublish(streamId) {
    return this.page.evaluate((id) => {
      window.client.unpublish(id);
      for (const t of window.streams[id].getTracks()) t.stop();
    }, streamId);
  }

  emit(event, ...args) {
    return this.page.evaluate(({ event, args }) => window.client.emit(event, ...args), { event, args });
  }

  chat(channel, event, ...args) {
    return this.page.evaluate(({ channel, event, args }) => window.client.channel(channel).emit(event, ...args), {
      channel,
      event,
      args,
    });
  }

  log() {
    return this.page.evaluate(() => window.client.log);
  }

  inbound() {
    return this.page.evaluate(() => window.client.inbound());
  }

  /** Wait until the client's log has an entry matching `pred` (a function over entries, run here). */
  async waitFor(what, pred, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = (await this.log()).find(pred);
      if (found) return found;
      await sleep(100);
    }
    throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms; log: ${JSON.stringify(await this.log())}`);
  }

  async leave() {
    await this.page.evaluate(() => window.client.leave()).catch(() => {});
    await this.context.close();
  }
}

/** Run a scenario with a fixture; print the browser consoles if it fails; always clean up. */
export async function scenario(name, body) {
  const fixture = new Fixture(name);
  try {
    await body(fixture);
  } catch (e) {
    fixture.dumpConsole();
    throw e;
  } finally {
    await fixture.cleanup();
  }
}

// ---- recordings -------------------------------------------------------------

/** Every recording manifest in a room directory, oldest first (`room.json`, the timeline, names no `file`). */
export function manifests(roomDir) {
  if (!fs.existsSync(roomDir)) return [];
  return fs
    .readdirSync(roomDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => {
      try {
        return { path: path.join(roomDir, f), ...JSON.parse(fs.readFileSync(path.join(roomDir, f), "utf8")) };
      } catch {
        return null;
      }
    })
    .filter((m) => m && typeof m.file === "string")
    .sort((a, b) => a.started_unix_ms - b.started_unix_ms);
}

/** Wait until `pred(manifests)` holds; returns the manifests. */
export async function waitForManifests(roomDir, what, pred, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = manifests(roomDir);
    if (pred(all)) return all;
    if (Date.now() > deadline) throw new Error(`no ${what} in ${roomDir} within ${timeoutMs} ms: ${JSON.stringify(all, null, 1)}`);
    await sleep(100);
  }
}

export function recordingFile(manifest) {
  return path.join(path.dirname(manifest.path), manifest.file);
}

export function ffprobe(target) {
  const out = spawnSync("timeout", ["-s", "KILL", "15", "ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", target], {
    encoding: "utf8",
  });
  if (out.status !== 0) throw new Error(`ffprobe ${target}: ${out.stderr}`);
  const probe = JSON.parse(out.stdout);
  probe.video = probe.streams.find((s) => s.codec_type === "video");
  probe.audio = probe.streams.find((s) => s.codec_type === "audio");
  probe.duration = Number(probe.format?.duration ?? 0);
  return probe;
}

/** Decode every frame; returns the decoder's errors (timestamp-rounding complaints of the null muxer excluded). */
export function decodeErrors(file) {
  const out = spawnSync("ffmpeg", ["-v", "error", "-nostdin", "-i", file, "-f", "null", "-"], { encoding: "utf8" });
  const errors = out.stderr.split("\n").filter((l) => l && !l.includes("non monotonically increasing dts to muxer"));
  if (out.status !== 0) errors.push(`ffmpeg exit ${out.status}`);
  return errors;
}

/** The picture sizes in a file's video, in order, without repeats ("640x480"). */
export function frameSizes(file) {
  const out = spawnSync(
    "ffprobe",
    ["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width,height", "-of", "csv=p=0", file],
    { encoding: "utf8" },
  );
  const sizes = [];
  for (const line of out.stdout.split("\n").filter(Boolean)) {
    const size = line.split(",").filter(Boolean).join("x");
    if (sizes[sizes.length - 1] !== size) sizes.push(size);
  }
  return sizes;
}

export function chatLog(roomDir) {
  const file = path.join(roomDir, "chat.jsonl");
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}
