// Streams that come and go, and both negotiation roles against Chrome.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { decodeErrors, ffprobe, recordingFile, scenario, sleep, waitForManifests } from "./harness.mjs";

test("a second stream added mid-call is a separate recording that ends with the stream", () =>
  scenario("screen", async (f) => {
    const gw = await f.startGateway();
    const room = "screen";
    const roomDir = path.join(gw.recordings, room);
    const dana = await f.openClient({ url: gw.url, room, name: "dana" });
    await dana.publish("camera");
    await waitForManifests(roomDir, "the camera recording", (all) => all.some((m) => m.event === "camera"));
    await sleep(1500);
    const screen = await dana.publish("screen", { audio: false, key: "screen", metadata: { kind: "slides" } });
    await waitForManifests(roomDir, "the screen recording", (all) => all.some((m) => m.event === "screen"));
    await sleep(3000);
    await dana.unpublish(screen);
    const all = await waitForManifests(roomDir, "the screen file finalised", (all) =>
      all.some((m) => m.event === "screen" && m.state === "finished"),
    );
    const screenFile = all.find((m) => m.event === "screen");
    const camera = all.find((m) => m.event === "camera");
    assert.equal(screenFile.end_reason, "stream-ended");
    assert.equal(camera.state, "recording", "the camera keeps recording");
    assert.deepEqual(screenFile.events.screen, [{ screen: `[RTCIOStream] ${screen}`, metadata: { kind: "slides" } }]);
    const probe = ffprobe(recordingFile(screenFile));
    assert.equal(probe.video?.codec_name, "vp8");
    assert.equal(probe.audio, undefined, "video-only stream");
    assert.ok(probe.duration > 2 && probe.duration < 5, `screen file lasts ${probe.duration}s`);
    assert.deepEqual(decodeErrors(recordingFile(screenFile)), []);
    await dana.leave();
    await waitForManifests(roomDir, "the camera file finalised", (all) => all.every((m) => m.state === "finished"));
  }));

test("the gateway's participant works in both roles: joining browsers, and joined by them", () =>
  scenario("roles", async (f) => {
    // Browser first, the serve auto-recorder joins after it: the browser is polite and offers.
    const gw = await f.startGateway();
    const first = await f.openClient({ url: gw.url, room: "browser-first", name: "erin" });
    await first.publish("camera");
    const byServe = await first.waitFor("the recorder", (e) => e.type === "peer-created");
    assert.equal(byServe.polite, true);
    await waitForManifests(path.join(gw.recordings, "browser-first"), "a recording", (all) => all.length === 1);

    // `rtcio-gateway join` first, the browser joins later: the gateway is polite and offers.
    const recordings = path.join(f.dir, "joined");
    const join = await f.spawnGateway(
      ["join", "--server", gw.url, "--room", "gateway-first", "--udp-bind", "127.0.0.1", "--recordings", recordings],
      /joined as/,
    );
    const later = await f.openClient({ url: gw.url, room: "gateway-first", name: "fred" });
    const byJoin = await later.waitFor("the joined participant", (e) => e.type === "peer-created" && e.polite === false);
    assert.ok(byJoin);
    await later.publish("camera", { metadata: { role: "impolite browser" } });
    await later.chat("chat", "msg", "to both recorders");
    const roomDir = path.join(recordings, "gateway-first");
    await waitForManifests(roomDir, "join's recording", (all) => all.some((m) => m.state === "recording"));
    await sleep(2500);
    assert.equal(await join.stop("SIGTERM"), 0);
    const [m] = await waitForManifests(roomDir, "finalised on SIGTERM", (all) => all.length === 1 && all[0].state === "finished");
    assert.equal(m.events.camera[0].metadata.role, "impolite browser");
    assert.ok(ffprobe(recordingFile(m)).duration > 1.5);
    await first.leave();
    await later.leave();
  }));
