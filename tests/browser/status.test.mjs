// The status page at `/` in Chromium: a browser peer publishes into a room
// the gateway records; the page shows the room, its members (the gateway's
// participant marked), the live recording growing, then the finished one
// playable — refreshing by itself, never reloading. Also: the page asks for
// the API token when one is configured. A screenshot of the live page is
// saved to target/test-artifacts/status-page.png.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { scenario, sleep } from "./harness.mjs";

const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../target/test-artifacts");
const ROOM = 'status <b id="injected">room</b>';

async function openStatusPage(fixture, url) {
  const context = await fixture.browser.newContext({ viewport: { width: 1280, height: 800 } });
  fixture.onCleanup(() => context.close());
  const page = await context.newPage();
  page.on("console", (m) => fixture.consoles.push(["status page", m.text()]));
  page.on("pageerror", (e) => fixture.consoles.push(["status page", `PAGE ERROR ${e}`]));
  await page.goto(url);
  return page;
}

/** The recording rows the page shows: [{id, state, bytes, video}] */
function rows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("tr[data-recording-id]")].map((tr) => ({
      id: tr.dataset.recordingId,
      state: tr.dataset.state,
      bytes: Number(tr.querySelector("td.size")?.dataset.bytes ?? -1),
      text: tr.textContent,
      video: tr.querySelector("video")?.getAttribute("src") ?? null,
    })),
  );
}

async function until(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(200);
  }
  throw new Error(`no ${what} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

test("the status page shows a room with its live recording, then plays it back", () =>
  scenario("status page", async (f) => {
    const gw = await f.startGateway();
    const alice = await f.openClient({ url: gw.url, room: ROOM, name: "alice" });
    await alice.waitFor("peer-connect to the recorder", (e) => e.type === "peer-connect");
    // The gateway's participant is in the room's presence under its name, and tells Chrome it records.
    await alice.waitFor("the recorder in presence", (e) => e.type === "user-connected" && e.name === "rtcio-gateway recorder");
    await alice.waitFor(
      "the ctrl event recording/started",
      (e) => e.type === "message" && e.event === "recording" && e.args?.[0]?.state === "started" && e.args[0].by === "rtcio-gateway",
    );
    await alice.publish("camera", { metadata: { title: "status" } });

    const page = await openStatusPage(f, `${gw.url}/`);
    await page.evaluate(() => (window.notReloaded = true));
    const card = await until("the room on the page", () =>
      page.evaluate((room) => {
        const card = [...document.querySelectorAll("[data-room]")].find((c) => c.dataset.room === room);
        if (!card) return null;
        return {
          name: card.querySelector(".room-name").textContent,
          members: [...card.querySelectorAll(".member-name")].map((m) => m.textContent),
          gatewayBadges: card.querySelectorAll(".badge.gateway").length,
          rec: card.querySelector(".recording .rec-bytes")?.textContent ?? null,
          injected: document.getElementById("injected") !== null,
        };
      }, ROOM),
    );
    assert.equal(card.name, ROOM, "the room id is shown as text");
    assert.equal(card.injected, false, "no element from the room id made it into the page");
    assert.ok(card.members.includes("alice") && card.members.includes("rtcio-gateway recorder"), JSON.stringify(card));
    assert.equal(card.gatewayBadges, 1);

    const live = await until("a live recording with bytes", async () => (await rows(page)).find((r) => r.state === "recording" && r.bytes > 0));
    const grown = await until("the byte count growing", async () =>
      (await rows(page)).find((r) => r.id === live.id && r.bytes > live.bytes),
    );
    assert.ok(grown.bytes > live.bytes);
    assert.ok(!/\bnull\b|undefined|NaN/.test(grown.text), `no placeholder leaks into the page: ${grown.text}`);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`status page screenshot: ${shot}`);
    assert.ok(fs.statSync(shot).size > 10_000, "a real screenshot");

    await alice.leave();
    const finished = await until("the recording finished with a player", async () =>
      (await rows(page)).find((r) => r.id === live.id && r.state === "finished" && r.video),
    );
    const ranged = await page.evaluate(async (src) => {
      const r = await fetch(src, { headers: { Range: "bytes=0-99" } });
      return { status: r.status, length: (await r.arrayBuffer()).byteLength, type: r.headers.get("content-type") };
    }, finished.video);
    assert.deepEqual(ranged, { status: 206, length: 100, type: "video/webm" });
    const metadata = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const video = document.querySelector("tr[data-state=finished] video");
          if (video.readyState >= 1) resolve(video.duration);
          video.addEventListener("loadedmetadata", () => resolve(video.duration), { once: true });
          video.addEventListener("error", () => resolve(`error ${video.error?.code}`), { once: true });
        }),
    );
    assert.ok(typeof metadata === "number" && metadata > 1, `the browser plays the file: duration ${metadata}`);
    assert.equal(await page.evaluate(() => window.notReloaded), true, "updated in place, never reloaded");
  }));

test("with an API token, the page asks for it and uses it", () =>
  scenario("status page token", async (f) => {
    const token = "status-page-token-0123456789";
    const gw = await f.startGateway({ config: `[api]\ntoken = "${token}"\n` });
    if (!f.browser) await f.launchBrowser();
    const page = await openStatusPage(f, `${gw.url}/`);
    await page.waitForSelector("#token-form.show", { timeout: 10000 });
    assert.match(await page.textContent("#banner"), /token/);
    await page.fill("#token-input", token);
    await page.click("#token-form button");
    await page.waitForSelector("body[data-loaded=true]", { timeout: 10000 });
    const again = await openStatusPage(f, `${gw.url}/#token=${token}`);
    await again.waitForSelector("body[data-loaded=true]", { timeout: 10000 });
    assert.equal(await again.isVisible("#token-form"), false);
    assert.equal(new URL(again.url()).hash, "", "the token does not stay in the address bar");
  }));
