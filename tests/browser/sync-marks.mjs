// A browser publishing sync marks through the gateway, for tests/sync.rs
// (which finds the marks in the file with its detector): the rtc.io test
// client publishes a canvas stream (canvas.captureStream) and a WebAudio
// oscillator (MediaStreamDestination); at every even second of Date.now()
// the canvas shows one white frame and a 100 ms 1 kHz beep starts at the
// same instant; otherwise black and silent.
//
// Usage: node sync-marks.mjs OUT_FILE [SECONDS]. Records SECONDS (default
// 9) of media, copies the finished recording to OUT_FILE and prints its
// manifest as JSON on the last line of stdout. Not a *.test.mjs: the
// browser suite does not run it; tests/sync.rs does.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { recordingFile, scenario, sleep, waitForManifests } from "./harness.mjs";

const [out, seconds = "9"] = process.argv.slice(2);
if (!out) {
  console.error("usage: node sync-marks.mjs OUT_FILE [SECONDS]");
  process.exit(2);
}

/** Seconds of media in a file being written (last packet time minus first), 0 if unreadable yet. */
function mediaSecs(file) {
  const r = spawnSync("ffprobe", ["-v", "quiet", "-show_entries", "packet=pts_time", "-of", "csv=p=0", file], { encoding: "utf8" });
  const times = (r.stdout ?? "").split("\n").map((l) => parseFloat(l)).filter((t) => Number.isFinite(t));
  return times.length ? Math.max(...times) - Math.min(...times) : 0;
}

/** Runs in the page: the marked canvas + oscillator stream, published under `event`. */
async function publishMarks(event) {
  const canvas = document.createElement("canvas");
  canvas.width = 640;
  canvas.height = 480;
  const g = canvas.getContext("2d");
  const video = canvas.captureStream(0).getVideoTracks()[0];
  const paint = (white) => {
    g.fillStyle = white ? "#ffffff" : "#000000";
    g.fillRect(0, 0, canvas.width, canvas.height);
    video.requestFrame();
  };
  paint(false);
  const ctx = new AudioContext({ sampleRate: 48000 });
  await ctx.resume();
  const osc = ctx.createOscillator();
  osc.frequency.value = 1000;
  const gain = ctx.createGain();
  gain.gain.value = 0;
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  // Black frames at 30 fps; the white one is painted by its own timer.
  setInterval(() => paint(false), 1000 / 30);
  window.marks = [];
  const schedule = () => {
    const now = Date.now();
    const mark = Math.ceil((now + 300) / 2000) * 2000;
    // The context's clock against the wall clock, sampled now: the beep is
    // scheduled on the audio clock, the flash on a timer at the same wall time.
    // (A MediaStreamDestination hands samples to WebRTC as they are rendered,
    // so the rendering clock, currentTime, is the capture clock; the output
    // device's clock, getOutputTimestamp(), runs ~33 ms apart in headless
    // Chromium and is not used.)
    const at = ctx.currentTime + (mark - Date.now()) / 1000;
    gain.gain.setValueAtTime(0.5, at);
    gain.gain.setValueAtTime(0, at + 0.1);
    setTimeout(() => {
      paint(true);
      window.marks.push({ mark, painted: Date.now() });
      setTimeout(schedule, 200);
    }, mark - Date.now());
  };
  schedule();
  const media = new MediaStream([video, dest.stream.getAudioTracks()[0]]);
  window.streams = { [media.id]: media };
  window.client.emit(event, { cam: window.client.stream(media) });
  return media.id;
}

await scenario("sync-marks", async (fixture) => {
  const gw = await fixture.startGateway();
  await fixture.launchBrowser(["--autoplay-policy=no-user-gesture-required"]);
  const room = "browser-sync";
  const alice = await fixture.openClient({ url: gw.url, room, name: "marks" });
  await alice.waitFor("peer-connect to the recorder", (e) => e.type === "peer-connect");
  await alice.page.evaluate(publishMarks, "camera");
  const roomDir = path.join(gw.recordings, room);
  const [recording] = await waitForManifests(roomDir, "a recording", (all) => all.length > 0);
  const file = recordingFile(recording);
  const deadline = Date.now() + 40000;
  while (mediaSecs(file) < Number(seconds)) {
    if (Date.now() > deadline) throw new Error(`${file} did not reach ${seconds} s of media`);
    await sleep(250);
  }
  const painted = await alice.page.evaluate(() => window.marks);
  await alice.leave();
  const [manifest] = await waitForManifests(roomDir, "a finished recording", (all) => all.some((m) => m.state !== "recording"));
  fs.copyFileSync(recordingFile(manifest), out);
  // How late each white frame was painted after its even second (timer jitter).
  console.log(`painted late by ms: ${JSON.stringify(painted.map((p) => p.painted - p.mark))}`);
  console.log(JSON.stringify(manifest));
});
