// A browser's stream relayed to a real nginx-rtmp server and checked on arrival.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ffprobe, scenario, sleep } from "./harness.mjs";

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../scripts/rtmp-server.sh");

async function freePort() {
  const server = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

test("a browser's camera is relayed to RTMP as H.264 + AAC", () =>
  scenario("relay", async (f) => {
    const port = await freePort();
    const rtmpDir = path.join(f.dir, "rtmp");
    const started = spawnSync(script, ["start", rtmpDir, String(port)], { encoding: "utf8" });
    assert.equal(started.status, 0, started.stderr);
    f.onCleanup(() => spawnSync(script, ["stop", rtmpDir]));
    const target = `rtmp://127.0.0.1:${port}/live/browser`;
    const gw = await f.startGateway({
      config: `[recording]\nenabled = false\n[[relay.targets]]\nroom = "live"\nurl = "${target}"\n`,
    });
    const gina = await f.openClient({ url: gw.url, room: "live", name: "gina" });
    await gina.publish("camera");
    let probe = null;
    let last = null;
    const deadline = Date.now() + 40000;
    while (Date.now() < deadline) {
      try {
        probe = ffprobe(target);
        if (probe.video && probe.audio && probe.video.width === 640) break;
      } catch (e) {
        last = e;
      }
      await sleep(500);
    }
    assert.ok(probe?.video, `nothing arrived at ${target}: ${last}`);
    assert.equal(probe.video.codec_name, "h264");
    assert.equal(probe.video.width, 640);
    assert.equal(probe.video.height, 480);
    assert.equal(probe.audio?.codec_name, "aac");
    await gina.leave();
  }));
