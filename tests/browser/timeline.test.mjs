// The WebVTT sidecar as a person uses it: a browser publishes a picture that
// flashes white at the moment it sends each chat message, the gateway
// records it; the cues must sit where the flashes are in the file (found
// by decoding it), and a page playing the recording in a <video> with the
// recording's .vtt as a <track> must fire every cue (`enter`) when the
// video's currentTime is at the cue's start.
import assert from "node:assert/strict";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { chatLog, recordingFile, scenario, sleep, waitForManifests } from "./harness.mjs";

/** How far a cue's `enter` may be from its start in the playing video, s. */
const CUE_TOLERANCE = 0.25;

/** The times (s, file time line) where the picture turns from dark to bright. */
function flashOnsets(file) {
  const out = spawnSync(
    "ffprobe",
    ["-v", "error", "-f", "lavfi", "-i", `movie=${file},signalstats`, "-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG", "-of", "csv=p=0"],
    { encoding: "utf8" },
  );
  if (out.status !== 0) throw new Error(`ffprobe signalstats ${file}: ${out.stderr}`);
  const onsets = [];
  let bright = false;
  for (const line of out.stdout.split("\n").filter(Boolean)) {
    const [time, luma] = line.split(",").map(Number);
    const now = luma > 128;
    if (now && !bright) onsets.push(time);
    bright = now;
  }
  return onsets;
}

/** Publish a canvas: black with a moving grey square, white while `window.flashUntil` is ahead. */
function publishFlasher(peer) {
  return peer.page.evaluate(() => {
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 240;
    const ctx = canvas.getContext("2d");
    window.flashUntil = 0;
    let n = 0;
    setInterval(() => {
      ctx.fillStyle = performance.now() < window.flashUntil ? "#fff" : "#000";
      ctx.fillRect(0, 0, 320, 240);
      ctx.fillStyle = "#808080";
      ctx.fillRect((n++ * 4) % 300, 110, 20, 20);
    }, 20);
    const media = canvas.captureStream(30);
    window.streams = { [media.id]: media };
    window.client.emit("camera", { cam: window.client.stream(media) });
    return media.id;
  });
}

/** `hh:mm:ss.mmm` → seconds. */
const seconds = (t) => t.split(":").reduce((acc, p) => acc * 60 + Number(p), 0);

/** The cues of a WebVTT text: [{start, end, text}]. */
function parseVtt(text) {
  const lines = text.split("\n");
  const cues = [];
  for (let i = 0; i < lines.length - 1; i++) {
    const m = lines[i].match(/^(\S+) --> (\S+)$/);
    if (m) cues.push({ start: seconds(m[1]), end: seconds(m[2]), text: lines[i + 1] });
  }
  return cues;
}

/** A page with the recording and its sidecar, and the two files, over HTTP (with Range for the media). */
async function servePlayer(fixture, roomDir, media, vtt) {
  const page = `<!doctype html><meta charset="utf-8"><title>player</title>
<video id="v" muted playsinline preload="auto" src="/media/${media}"><track id="t" kind="subtitles" srclang="en" label="chat" default src="/media/${vtt}"></video>`;
  const types = { ".webm": "video/webm", ".mkv": "video/x-matroska", ".vtt": "text/vtt; charset=utf-8" };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/") return res.writeHead(200, { "content-type": "text/html" }).end(page);
    const name = url.pathname.startsWith("/media/") ? path.basename(url.pathname) : null;
    if (!name || ![media, vtt].includes(name)) return res.writeHead(404).end();
    const data = fs.readFileSync(path.join(roomDir, name));
    const type = types[path.extname(name)] ?? "application/octet-stream";
    const range = req.headers.range?.match(/^bytes=(\d*)-(\d*)$/);
    if (range) {
      const start = range[1] === "" ? Math.max(0, data.length - Number(range[2])) : Number(range[1]);
      const end = range[1] !== "" && range[2] !== "" ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
      res.writeHead(206, {
        "content-type": type,
        "accept-ranges": "bytes",
        "content-range": `bytes ${start}-${end}/${data.length}`,
        "content-length": end - start + 1,
      });
      return res.end(data.subarray(start, end + 1));
    }
    res.writeHead(200, { "content-type": type, "accept-ranges": "bytes", "content-length": data.length }).end(data);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  fixture.onCleanup(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${server.address().port}/`;
}

test("a recording's .vtt fires its chat cues at the moments the chat happened", () =>
  scenario("vtt", async (fixture) => {
    const gw = await fixture.startGateway();
    const room = "browser-vtt";
    const alice = await fixture.openClient({ url: gw.url, room, name: "alice" });
    await alice.waitFor("peer-connect to the recorder", (e) => e.type === "peer-connect");
    await publishFlasher(alice);
    const roomDir = path.join(gw.recordings, room);
    // Until the recording's time zero is on the wall clock (its held start
    // over): every chat then falls inside the file.
    await waitForManifests(roomDir, "a recording in progress with its t0", (all) =>
      all.some((m) => m.state === "recording" && m.t0_unix_ms != null),
    );
    // Chat at known moments, 1.5 s apart, with text that needs escaping; the picture flashes at each.
    const sent = [];
    for (let i = 0; i < 4; i++) {
      const at = await alice.page.evaluate((text) => {
        window.flashUntil = performance.now() + 400;
        window.client.channel("chat").emit("msg", text);
        return Date.now();
      }, `cue <${i}> & "more"`);
      sent.push(at);
      await sleep(1500);
    }
    await alice.leave();
    const [manifest] = await waitForManifests(roomDir, "the finished recording", (all) => all.some((m) => m.state === "finished"));
    const vttName = manifest.file.replace(/\.[^.]+$/, ".vtt");
    // The sidecar is final once room.json says the file finished (written together, within a second).
    const deadline = Date.now() + 20000;
    let timeline;
    for (;;) {
      try {
        timeline = JSON.parse(fs.readFileSync(path.join(roomDir, "room.json"), "utf8"));
      } catch {}
      const file = timeline?.runs?.at(-1)?.files?.find((f) => f.file === manifest.file);
      if (file?.state === "finished") break;
      if (Date.now() > deadline) throw new Error(`room.json never showed ${manifest.file} finished: ${JSON.stringify(timeline)}`);
      await sleep(100);
    }
    const entry = timeline.runs.at(-1).files.find((f) => f.file === manifest.file);
    assert.equal(entry.vtt, vttName);
    assert.equal(entry.t0_unix_ms, manifest.t0_unix_ms);
    const t0 = manifest.t0_unix_ms;

    // The cues are the chat, on the file's time line: (the time the gateway heard it − t0).
    const cues = parseVtt(fs.readFileSync(path.join(roomDir, vttName), "utf8"));
    const heard = chatLog(roomDir).filter((l) => l.channel === "chat");
    assert.equal(heard.length, sent.length, "every chat message logged");
    assert.deepEqual(
      cues.map((c) => c.text),
      sent.map((_, i) => `alice [chat] msg: cue &lt;${i}&gt; &amp; "more"`),
    );
    for (const [i, cue] of cues.entries()) {
      assert.ok(Math.abs(cue.start - (heard[i].unix_ms - t0) / 1000) <= 0.0015, `cue ${i} at ${cue.start}, heard at ${heard[i].unix_ms}`);
      // Sent from this machine's clock: the message reached the gateway within a moment.
      const late = heard[i].unix_ms - sent[i];
      assert.ok(late >= -5 && late < 500, `message ${i} heard ${late} ms after it was sent`);
    }

    // Each cue is where its flash is in the picture.
    const onsets = flashOnsets(recordingFile(manifest));
    assert.equal(onsets.length, cues.length, `flashes at ${onsets}, cues at ${cues.map((c) => c.start)}`);
    const offsets = cues.map((c, i) => c.start - onsets[i]);
    console.log(`cue start − flash in the file (s): ${offsets.map((e) => e.toFixed(3)).join(", ")}`);
    for (const [i, offset] of offsets.entries()) {
      assert.ok(Math.abs(offset) <= CUE_TOLERANCE, `cue ${i} at ${cues[i].start} s, its flash at ${onsets[i]} s`);
    }

    // A person's view: the recording plays with the sidecar as its subtitles.
    const playerUrl = await servePlayer(fixture, roomDir, manifest.file, vttName);
    const context = await fixture.browser.newContext();
    const page = await context.newPage();
    page.on("console", (m) => fixture.consoles.push(["player", m.text()]));
    await page.goto(playerUrl);
    const fired = await page.evaluate(async (expected) => {
      const video = document.getElementById("v");
      const track = document.getElementById("t").track;
      track.mode = "showing";
      await new Promise((resolve, reject) => {
        const el = document.getElementById("t");
        if (el.readyState === 2) return resolve();
        el.addEventListener("load", resolve);
        el.addEventListener("error", () => reject(new Error("the .vtt did not load")));
      });
      const entered = [];
      for (const cue of track.cues) {
        // What a viewer reads: the cue rendered (its raw `text` keeps the entities).
        cue.onenter = () => entered.push({ start: cue.startTime, at: video.currentTime, text: cue.getCueAsHTML().textContent });
      }
      const cueCount = track.cues.length;
      await video.play();
      await new Promise((resolve) => {
        const done = () => entered.length >= expected || video.ended;
        const timer = setInterval(() => done() && (clearInterval(timer), resolve()), 50);
        video.addEventListener("ended", () => (clearInterval(timer), resolve()));
      });
      return { entered, cueCount, duration: video.duration, ended: video.ended };
    }, cues.length);
    await context.close();
    assert.equal(fired.cueCount, cues.length, "the browser parsed every cue");
    assert.equal(fired.entered.length, cues.length, `every cue entered: ${JSON.stringify(fired)}`);
    const errors = fired.entered.map((e) => e.at - e.start);
    console.log(`cue enter − cue start in Chromium (s): ${errors.map((e) => e.toFixed(3)).join(", ")}`);
    for (const [i, e] of fired.entered.entries()) {
      assert.ok(Math.abs(e.start - cues[i].start) < 0.001, `cue ${i}: the browser reads start ${e.start}, the file says ${cues[i].start}`);
      assert.ok(Math.abs(e.at - e.start) <= CUE_TOLERANCE, `cue ${i} entered at ${e.at} s, starts at ${e.start} s`);
      assert.equal(e.text, `alice [chat] msg: cue <${i}> & "more"`, "the browser unescapes the text");
    }
  }));
