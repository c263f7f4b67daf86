// Several browsers and the gateway in one room: the gateway records everyone
// without disturbing the browsers' own mesh; late joiners and departures.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { decodeErrors, ffprobe, manifests, recordingFile, scenario, sleep, waitForManifests } from "./harness.mjs";

/** Wait until `peer` decodes video and receives audio from every browser in `others`. */
async function hearsAndSees(peer, others, timeoutMs = 20000) {
  const ids = await Promise.all(others.map((o) => o.id()));
  const deadline = Date.now() + timeoutMs;
  let inbound = {};
  while (Date.now() < deadline) {
    inbound = await peer.inbound();
    if (ids.every((id) => inbound[id]?.video > 10 && inbound[id]?.audio > 10)) return;
    await sleep(250);
  }
  throw new Error(`${peer.name} does not see/hear ${others.map((o) => o.name)}: ${JSON.stringify(inbound)}`);
}

test("two browsers keep their mesh, both are recorded, a late third too, a leaver's file is finalised", () =>
  scenario("mesh", async (f) => {
    const gw = await f.startGateway();
    const room = "mesh";
    const roomDir = path.join(gw.recordings, room);
    const alice = await f.openClient({ url: gw.url, room, name: "alice" });
    const bob = await f.openClient({ url: gw.url, room, name: "bob" });
    await alice.publish("camera", { metadata: { who: "alice" } });
    await bob.publish("camera", { metadata: { who: "bob" } });
    await hearsAndSees(alice, [bob]);
    await hearsAndSees(bob, [alice]);
    await waitForManifests(roomDir, "two recordings", (all) => all.filter((m) => m.state === "recording").length === 2);

    const carol = await f.openClient({ url: gw.url, room, name: "carol" });
    await carol.publish("camera", { metadata: { who: "carol" } });
    await hearsAndSees(carol, [alice, bob]);
    await hearsAndSees(alice, [carol]);
    await waitForManifests(roomDir, "three recordings", (all) => all.filter((m) => m.state === "recording").length === 3);
    await sleep(2000);

    // Bob leaves: his file is finalised while alice and carol keep recording.
    await bob.leave();
    const afterBob = await waitForManifests(roomDir, "bob's file finalised", (all) =>
      all.some((m) => m.peer.name === "bob" && m.state === "finished"),
    );
    const bobs = afterBob.find((m) => m.peer.name === "bob");
    assert.equal(bobs.end_reason, "peer-left");
    assert.deepEqual(
      afterBob.filter((m) => m.state === "recording").map((m) => m.peer.name).sort(),
      ["alice", "carol"],
    );
    const probe = ffprobe(recordingFile(bobs));
    assert.equal(probe.video?.codec_name, "vp8");
    assert.equal(probe.audio?.codec_name, "opus");
    assert.ok(probe.duration > 3, `bob's file lasts ${probe.duration}s`);
    assert.deepEqual(decodeErrors(recordingFile(bobs)), []);
    await hearsAndSees(alice, [carol]);

    await alice.leave();
    await carol.leave();
    const all = await waitForManifests(roomDir, "every file finalised", (all) => all.length === 3 && all.every((m) => m.state === "finished"));
    for (const m of all) {
      assert.equal(m.events.camera[0].metadata.who, m.peer.name);
      assert.deepEqual(decodeErrors(recordingFile(m)), [], m.file);
    }
    assert.equal(manifests(roomDir).length, 3);
  }));
