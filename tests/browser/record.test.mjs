// One browser publishing camera + microphone through the gateway: the
// recording, its manifest and the chat log, with VP8 (Chrome's default) and
// with H.264 forced by codec preferences.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { chatLog, decodeErrors, ffprobe, frameSizes, recordingFile, scenario, sleep, waitForManifests } from "./harness.mjs";

async function publishAndRecord(fixture, { room, videoCodec, template, codec }) {
  const gw = await fixture.startGateway();
  const alice = await fixture.openClient({ url: gw.url, room, name: "alice", videoCodec });
  // The gateway's participant joins the room right after alice and is the newcomer (impolite).
  await alice.waitFor("peer-connect to the recorder", (e) => e.type === "peer-connect");
  const streamId = await alice.publish("camera", { metadata: { title: "standup", n: 1 } });
  const started = Date.now();
  await alice.emit("raise-hand", { up: true });
  for (let i = 0; i < 20; i++) {
    await alice.chat("chat", "msg", `hello #${i}`);
    await sleep(150);
  }
  await sleep(2000);
  const publishedFor = (Date.now() - started) / 1000;
  await alice.leave();

  const roomDir = path.join(gw.recordings, room);
  const [manifest] = await waitForManifests(roomDir, "a finished recording", (all) => all.some((m) => m.state === "finished"));
  assert.equal(manifest.event, "camera");
  assert.deepEqual(manifest.events.camera, [{ cam: `[RTCIOStream] ${streamId}`, metadata: { title: "standup", n: 1 } }]);
  assert.equal(manifest.peer.name, "alice");
  assert.equal(manifest.template, template);
  assert.equal(manifest.end_reason, "peer-left");

  const file = recordingFile(manifest);
  const probe = ffprobe(file);
  assert.equal(probe.video?.codec_name, codec);
  // Chrome starts small while its bandwidth estimate ramps up, then sends the
  // fake camera's full 640x480: the file holds every size it sent.
  const sizes = frameSizes(file);
  assert.equal(sizes[sizes.length - 1], "640x480", `picture sizes in the file: ${sizes}`);
  assert.equal(probe.audio?.codec_name, "opus");
  assert.ok(Math.abs(probe.duration - publishedFor) < 1.0, `file ${probe.duration}s, published ${publishedFor}s`);
  assert.deepEqual(decodeErrors(file), []);

  const log = chatLog(roomDir);
  const chat = log.filter((l) => l.channel === "chat").map((l) => l.args[0]);
  assert.deepEqual(chat, Array.from({ length: 20 }, (_, i) => `hello #${i}`), "every chat message, in order");
  const ctrl = log.find((l) => l.channel === "ctrl");
  assert.equal(ctrl?.event, "raise-hand");
  assert.deepEqual(ctrl.args, [{ up: true }]);
  assert.equal(ctrl.peer_name, "alice");
  return { publishedFor, duration: probe.duration };
}

test("a browser's VP8 camera and microphone are recorded with manifest and chat log", () =>
  scenario("vp8", (f) => publishAndRecord(f, { room: "browser-vp8", videoCodec: null, template: "record-webm", codec: "vp8" })));

test("H.264 forced by codec preferences is recorded to Matroska", () =>
  scenario("h264", (f) => publishAndRecord(f, { room: "browser-h264", videoCodec: "H264", template: "record-mkv", codec: "h264" })));
