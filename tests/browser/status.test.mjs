// The status page at `/` in Chromium: a browser peer publishes into a room
// the gateway records; the page shows the room, its members (the gateway's
// participant marked), the live recording growing, then the finished one
// playable — refreshing by itself, never reloading, never recreating a
// playing <video> — and says so when the gateway goes away, recovering when
// it is back. Also: the page asks for the API token when one is configured
// (and puts it into the media links), shows remote sessions with their
// relay's URL redacted, and shows the API's refusal to non-loopback clients.
// A screenshot of the live page is saved to target/test-artifacts/status-page.png.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { scenario, sleep } from "./harness.mjs";

const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../target/test-artifacts");
// Room and peer names are user input: markup in them must come out as text.
const ROOM = 'status <b id="injected">room</b><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
const ALICE = 'alice <i id="injected-name">A</i>';
const RECORDER = "rtcio-gateway recorder";

async function openStatusPage(fixture, url) {
  if (!fixture.browser) await fixture.launchBrowser();
  const context = await fixture.browser.newContext({ viewport: { width: 1280, height: 800 } });
  fixture.onCleanup(() => context.close());
  const page = await context.newPage();
  const label = `status page ${url}`;
  page.on("console", (m) => fixture.consoles.push([label, m.text()]));
  page.on("pageerror", (e) => fixture.consoles.push([label, `PAGE ERROR ${e}`]));
  page.on("requestfailed", (r) => fixture.consoles.push([label, `FAILED ${r.url()} ${r.failure()?.errorText}`]));
  await page.goto(url);
  return page;
}

/** The recording rows the page shows: [{id, state, bytes, text, video, download, duration, end}] */
function rows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("tr[data-recording-id]")].map((tr) => ({
      id: tr.dataset.recordingId,
      state: tr.dataset.state,
      bytes: Number(tr.querySelector("td.size")?.dataset.bytes ?? -1),
      shownBytes: tr.querySelector(".rec-bytes")?.textContent ?? null,
      text: tr.textContent,
      video: tr.querySelector("video")?.getAttribute("src") ?? null,
      download: tr.querySelector("a[download]")?.getAttribute("href") ?? null,
      duration: tr.querySelector("td.duration")?.textContent ?? null,
      end: tr.querySelector("td.end")?.textContent ?? null,
    })),
  );
}

/** What the page shows of one room (matched on the exact room id), or null. */
function roomCard(page, room) {
  return page.evaluate((room) => {
    const card = [...document.querySelectorAll("[data-room]")].find((c) => c.dataset.room === room);
    if (!card) return null;
    return {
      name: card.querySelector(".room-name").textContent,
      members: [...card.querySelectorAll(".member-name")].map((m) => m.textContent),
      gatewayMembers: [...card.querySelectorAll("[data-member]")]
        .filter((li) => li.querySelector(".badge.gateway"))
        .map((li) => li.querySelector(".member-name").textContent),
      rec: card.querySelector(".recording .badge.rec")?.textContent ?? null,
      recBytes: card.querySelector(".recording .rec-bytes")?.textContent ?? null,
      streams: [...card.querySelectorAll("[data-stream]")].map((s) => s.textContent),
    };
  }, room);
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

/** Resolves after the page completed `n` more refreshes (successful or not). */
async function refreshes(page, n) {
  let seen = await page.textContent("#updated");
  for (let i = 0; i < n; i++) {
    const before = seen;
    seen = await until("a refresh of the page", async () => {
      const now = await page.textContent("#updated");
      return now !== before ? now : null;
    }, 10000);
  }
}

/** A browser peer in `room` of `gw`, publishing camera + microphone, seen by the gateway's recorder. */
async function publisher(f, url, room, name) {
  const peer = await f.openClient({ url, room, name });
  await peer.waitFor("peer-connect to the gateway's participant", (e) => e.type === "peer-connect");
  await peer.waitFor("the gateway's participant in presence", (e) => e.type === "user-connected" && e.name === RECORDER);
  await peer.publish("camera", { metadata: { title: "status" } });
  return peer;
}

const isEmpty = (text) => text === "" || text === null;

test("the status page shows a room with its live recording, then offers it for playback", () =>
  scenario("status page", async (f) => {
    const gw = await f.startGateway();
    const alice = await publisher(f, gw.url, ROOM, ALICE);
    await alice.waitFor(
      "the ctrl event recording/started",
      (e) => e.type === "message" && e.event === "recording" && e.args?.[0]?.state === "started" && e.args[0].by === "rtcio-gateway",
    );

    const page = await openStatusPage(f, `${gw.url}/`);
    await page.evaluate(() => (window.notReloaded = true));
    assert.equal(await page.title(), "rtcio-gateway");
    const card = await until("the room on the page, recording, with alice's stream", async () => {
      const c = await roomCard(page, ROOM);
      return c && c.rec && c.streams.length ? c : null;
    });
    assert.equal(card.name, ROOM, "the room id is shown as text");
    assert.deepEqual([...card.members].sort(), [ALICE, RECORDER].sort(), JSON.stringify(card));
    assert.deepEqual(card.gatewayMembers, [RECORDER], "only the gateway's own participant has the badge");
    assert.equal(card.rec, "● REC");
    assert.match(card.recBytes, /^\d+(\.\d)? (B|KiB|MiB)$/);
    assert.ok(card.streams.some((s) => s.includes(ALICE) && s.includes("camera") && /audio/.test(s) && /video/.test(s)), JSON.stringify(card));

    const live = await until("a live recording with bytes", async () => (await rows(page)).find((r) => r.state === "recording" && r.bytes > 0));
    assert.match(live.text, /● REC/);
    await refreshes(page, 1);
    const grown = await until("the byte count growing", async () =>
      (await rows(page)).find((r) => r.id === live.id && r.bytes > live.bytes),
    );
    assert.ok(grown.bytes > live.bytes);
    assert.notEqual(grown.shownBytes, live.shownBytes, "the shown size changes too");
    assert.match(grown.shownBytes, /^\d+(\.\d)? (B|KiB|MiB)$/);
    assert.ok(!/\bnull\b|undefined|NaN/.test(grown.text), `no placeholder leaks into the page: ${grown.text}`);

    // Nothing the names carry was interpreted as markup.
    const injected = await page.evaluate(() => ({
      elements: ["injected", "injected-name"].filter((id) => document.getElementById(id)),
      pwned: window.pwned ?? null,
      text: document.body.textContent.includes('<b id="injected">room</b>'),
    }));
    assert.deepEqual(injected, { elements: [], pwned: null, text: true });

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`status page screenshot: ${shot}`);
    assert.ok(fs.statSync(shot).size > 10_000, "a real screenshot");

    await sleep(1000); // a recording long enough to play for a moment
    await alice.leave();
    const finished = await until("the recording finished with a player", async () =>
      (await rows(page)).find((r) => r.id === live.id && r.state === "finished" && r.video),
    );
    assert.ok(finished.video.startsWith("/api/v1/recordings/") && finished.video.endsWith("/media"), finished.video);
    assert.ok(!finished.video.includes("access_token"), "no token in use, none in the link");
    assert.equal(finished.download, finished.video, "a download link to the same file");
    const track = await page.evaluate((src) => {
      const t = document.querySelector(`video[src="${src}"] track`);
      return t && { kind: t.kind, src: t.getAttribute("src"), isDefault: t.default };
    }, finished.video);
    assert.deepEqual(track, { kind: "subtitles", src: finished.video.replace(/\/media$/, "/vtt"), isDefault: true }, "the chat as subtitles");
    assert.match(finished.duration, /^(\d+m )?\d+s$/);
    assert.match(finished.end, /peer-left/);
    const ranged = await page.evaluate(async (src) => {
      const r = await fetch(src, { headers: { Range: "bytes=0-99" } });
      return { status: r.status, length: (await r.arrayBuffer()).byteLength, type: r.headers.get("content-type") };
    }, finished.video);
    assert.deepEqual(ranged, { status: 206, length: 100, type: "video/webm" });

    // The browser reads the file's metadata; later refreshes leave the <video>
    // alone: not recreated, its src not set again (a new load would restart
    // playback; it starts with a "loadstart" event, counted here). Headless
    // Chromium without an audio device does not reliably advance its media
    // clock, so the test does not play it.
    const loaded = await page.evaluate(
      (id) =>
        new Promise((resolve) => {
          const video = [...document.querySelectorAll("tr[data-recording-id]")].find((tr) => tr.dataset.recordingId === id).querySelector("video");
          window.theVideo = video;
          window.loadstarts = 0;
          video.addEventListener("loadstart", () => window.loadstarts++);
          video.addEventListener("emptied", () => window.loadstarts++);
          setTimeout(() => resolve(`timeout: readyState ${video.readyState}`), 10000);
          video.addEventListener("error", () => resolve(`error ${video.error?.code}`), { once: true });
          if (video.readyState >= 1) resolve(video.duration);
          else video.addEventListener("loadedmetadata", () => resolve(video.duration), { once: true });
        }),
      finished.id,
    );
    assert.ok(typeof loaded === "number" && loaded > 1, `the browser reads the file: duration ${loaded}`);
    await refreshes(page, 2);
    const still = await page.evaluate((id) => {
      const video = [...document.querySelectorAll("tr[data-recording-id]")].find((tr) => tr.dataset.recordingId === id).querySelector("video");
      return { same: video === window.theVideo, reloads: window.loadstarts, duration: video.duration };
    }, finished.id);
    assert.deepEqual(still, { same: true, reloads: 0, duration: loaded }, "the <video> is kept, never reloaded, across refreshes");

    // The gateway goes away: the page says so, keeps what it showed and keeps trying.
    const port = new URL(gw.url).port;
    await gw.stop("SIGKILL");
    await until("the unreachable banner", async () => /Cannot reach/.test(await page.textContent("#banner")) && (await page.isVisible("#banner")));
    await refreshes(page, 1);
    assert.equal(await page.evaluate(() => document.querySelector("video") === window.theVideo), true);
    // Back on the same port (same recordings): the banner goes, the list is current again.
    await f.spawnGateway(["serve", "--listen", `127.0.0.1:${port}`, "--recordings", gw.recordings], /"local_addr":"([^"]+)"/, {
      RTCIO_GATEWAY_RECORDING__UDP_BIND: "127.0.0.1",
    });
    await until("the banner gone", async () => !(await page.isVisible("#banner")) && isEmpty(await page.textContent("#banner")));
    const after = await until("the finished recording listed again", async () => (await rows(page)).find((r) => r.id === live.id && r.state === "finished"));
    assert.equal(after.video, finished.video);
    assert.equal(await page.evaluate(() => document.querySelector("video") === window.theVideo), true, "still the same player");
    assert.equal(await page.evaluate(() => window.notReloaded), true, "updated in place, never reloaded");
  }));

test("with an API token, the page asks for it and uses it, also in media links", () =>
  scenario("status page token", async (f) => {
    const token = "status-page-token-0123456789";
    const room = "token room";
    const gw = await f.startGateway({ config: `[api]\ntoken = "${token}"\n` });
    const bob = await publisher(f, gw.url, room, "bob");

    const page = await openStatusPage(f, `${gw.url}/`);
    await page.waitForSelector("#token-form.show", { timeout: 10000 });
    assert.match(await page.textContent("#banner"), /token/);
    assert.equal(await roomCard(page, room), null, "nothing shown without the token");
    await page.fill("#token-input", "not-the-token");
    await page.click("#token-form button");
    await until("the refused token", async () => /refused/.test(await page.textContent("#banner")));
    assert.equal(await page.isVisible("#token-form"), true);
    await page.fill("#token-input", token);
    await page.click("#token-form button");
    await until("the room with the right token", () => roomCard(page, room));
    assert.equal(await page.isVisible("#token-form"), false);
    assert.equal(await page.isVisible("#banner"), false);

    const again = await openStatusPage(f, `${gw.url}/#token=${token}`);
    const card = await until("the room with #token=", async () => {
      const c = await roomCard(again, room);
      return c && c.rec ? c : null;
    });
    assert.ok(card.members.includes("bob") && card.gatewayMembers.includes(RECORDER), JSON.stringify(card));
    assert.equal(await again.isVisible("#token-form"), false);
    assert.equal(new URL(again.url()).hash, "", "the token does not stay in the address bar");
    assert.equal(await again.evaluate(() => sessionStorage.getItem("rtcio-gateway-token")), token, "kept for reloads of this tab");
    await again.reload();
    await until("the room after a reload", () => roomCard(again, room));

    // <video src> and download links cannot send a header: they carry the token.
    await bob.leave();
    const finished = await until("the finished recording with a player", async () => (await rows(again)).find((r) => r.state === "finished" && r.video));
    assert.ok(finished.video.includes(`access_token=${token}`), finished.video);
    assert.equal(finished.download, finished.video);
    const ranged = await again.evaluate(async (src) => (await fetch(src, { headers: { Range: "bytes=0-9" } })).status, finished.video);
    assert.equal(ranged, 206, "the link alone is enough");
    const bare = await again.evaluate(async (src) => (await fetch(src.replace(/[?&]access_token=[^&]*/, ""))).status, finished.video);
    assert.equal(bare, 401, "and without it the file is refused");
    const vtt = await again.evaluate(async () => {
      const src = document.querySelector("video track")?.getAttribute("src");
      return src && { tokenised: src.includes("access_token="), status: (await fetch(src)).status };
    });
    assert.deepEqual(vtt, { tokenised: true, status: 200 }, "the subtitles' link carries the token too");
  }));

test("the status page shows remote sessions, and the API's refusal to non-loopback clients", () =>
  scenario("status page remote", async (f) => {
    // `far` is any rtc.io server (another gateway that records nothing); `gw` records a room there.
    const far = await f.spawnGateway(["serve", "--listen", "127.0.0.1:0", "--no-record"], /"local_addr":"([^"]+)"/);
    const farUrl = `http://${far.match[1]}`;
    const recordings = path.join(f.dir, "recordings");
    const open = await f.spawnGateway(["serve", "--listen", "0.0.0.0:0", "--recordings", recordings], /"local_addr":"([^"]+)"/, {
      RTCIO_GATEWAY_RECORDING__UDP_BIND: "127.0.0.1",
    });
    const port = open.match[1].split(":").pop();
    const gwUrl = `http://127.0.0.1:${port}`;

    const room = "far <u>room</u>";
    const carol = await f.openClient({ url: farUrl, room, name: "carol" });
    await carol.publish("camera");
    const api = async (method, route, body) => {
      const r = await fetch(`${gwUrl}${route}`, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    const started = await api("POST", "/api/v1/remote/recording", { server: farUrl, room, name: "Archive recorder" });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await carol.waitFor("the archive recorder in presence", (e) => e.type === "user-connected" && e.name === "Archive recorder");

    const page = await openStatusPage(f, `${gwUrl}/`);
    const session = await until("the remote session, recording", () =>
      page.evaluate((room) => {
        const card = [...document.querySelectorAll("#remote [data-session]")].find((c) => c.textContent.includes(room));
        if (!card || !card.querySelector(".recording .rec-bytes")) return null;
        return { text: card.textContent, streams: card.querySelectorAll("[data-stream]").length, injected: !!card.querySelector("u") };
      }, room),
    );
    assert.ok(session.text.includes(farUrl) && session.text.includes("● REC"), session.text);
    assert.equal(session.injected, false);
    assert.equal(await page.textContent("#remote-count"), "(1)");
    assert.equal(await page.textContent("#rooms-count"), "(0)", "the remote room is not one of this server's rooms");
    const row = await until("the remote room's live recording, growing", async () =>
      (await rows(page)).find((r) => r.state === "recording" && r.text.includes(room) && r.bytes > 0),
    );

    // A relay of that room to an RTMP server that is not there: shown, its stream key redacted.
    const relayed = await api("POST", "/api/v1/remote/relay", { server: farUrl, room, url: "rtmp://127.0.0.1:1/live/secret-stream-key" });
    assert.equal(relayed.status, 202, JSON.stringify(relayed.body));
    const relay = await until("the relay on the session", () =>
      page.evaluate((room) => {
        const card = [...document.querySelectorAll("#remote [data-session]")].find((c) => c.textContent.includes(room));
        return card?.querySelector(".relay")?.textContent ?? null;
      }, room),
    );
    assert.match(relay, /RTMP (starting|live|restarting)/);
    assert.ok(relay.includes("rtmp://127.0.0.1:1/live/") && !relay.includes("secret-stream-key"), relay);
    assert.ok(!(await page.textContent("body")).includes("secret-stream-key"));

    // Without a token the API serves only loopback clients: the page tells the others why.
    const outside = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal);
    assert.ok(outside, "this machine needs a non-loopback IPv4 address for the 403 check");
    const far403 = await openStatusPage(f, `http://${outside.address}:${port}/`);
    await until("the 403 message", async () => /loopback/.test(await far403.textContent("#banner")));
    assert.match(await far403.textContent("#banner"), /accepts only loopback clients when no api\.token is configured/);
    assert.equal(await far403.isVisible("#token-form"), false, "no token form: a token is not the answer here");
    assert.equal(await far403.evaluate(() => document.querySelectorAll("[data-session], [data-room], tr[data-recording-id]").length), 0);

    const stopped = await api("POST", "/api/v1/remote/recording/stop", { server: farUrl, room });
    assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
    await until("the remote recording finished on the page", async () => (await rows(page)).find((r) => r.id === row.id && r.state !== "recording"));
  }));

/** What a room's timeline picture shows: its bars and marks with the times they stand for, and their drawn x. */
function timeline(page, room) {
  return page.evaluate((room) => {
    const box = [...document.querySelectorAll("[data-timeline]")].find((b) => b.querySelector(".timeline-room")?.textContent === room);
    if (!box) return null;
    const svg = box.querySelector("svg");
    const shapes = [...svg.querySelectorAll("[data-kind]")].map((n) => ({
      kind: n.dataset.kind,
      peer: n.dataset.peer ?? null,
      file: n.dataset.file ?? null,
      from: Number(n.dataset.from ?? n.dataset.at),
      to: Number(n.dataset.to ?? n.dataset.at),
      x: n.getBBox().x,
      right: n.getBBox().x + n.getBBox().width,
    }));
    const rows = [...svg.querySelectorAll("[data-member-row]")].map((t) => ({ id: t.dataset.memberRow, name: t.dataset.name }));
    return { badge: box.querySelector(".badge").textContent, start: Number(svg.dataset.start), end: Number(svg.dataset.end), shapes, rows };
  }, room);
}

test("the status page draws each room's timeline: who was there when, files, chat, mute, recording — live and finished", () =>
  scenario("status page timeline", async (f) => {
    const gw = await f.startGateway({ config: "[recording]\nempty_room_grace_secs = 1\n" });
    const room = "timeline <i>room</i>";
    // Chat only once the gateway's channels to the peer are open (its
    // recording/started ctrl event has arrived): a message sent the moment
    // the connection opens can be lost (a known participant issue).
    const recordingStarted = (peer) =>
      peer.waitFor("the ctrl event recording/started", (e) => e.type === "message" && e.event === "recording" && e.args?.[0]?.state === "started");
    const alice = await publisher(f, gw.url, room, "alice");
    await recordingStarted(alice);
    // Muted for a moment (rtc.io's media-state goes through the server).
    await alice.page.evaluate((roomId) => window.client.socket.emit("media-state", { roomId, mic: false, cam: true }), room);
    await sleep(1500); // how long the mute lasts is what the picture must show
    await alice.page.evaluate((roomId) => window.client.socket.emit("media-state", { roomId, mic: true, cam: true }), room);
    await alice.chat("chat", "msg", "hello from alice");
    const bob = await publisher(f, gw.url, room, "bob");
    await recordingStarted(bob);
    await bob.chat("chat", "msg", "hi, bob here");

    const page = await openStatusPage(f, `${gw.url}/`);
    let seen = null;
    const live = await until("the live timeline with both members' files, the chats, the mute and the recording", async () => {
      const t = await timeline(page, room);
      if (!t) return null;
      const kinds = (k) => t.shapes.filter((s) => s.kind === k);
      seen = { badge: t.badge, rows: t.rows, counts: Object.fromEntries(["presence", "file", "message", "mute", "recording"].map((k) => [k, kinds(k).length])) };
      const ok = t.badge === "live" && t.rows.length >= 2 && kinds("file").length >= 2 && kinds("message").length >= 2 && kinds("mute").length >= 1 && kinds("recording").length >= 1;
      return ok ? t : null;
    }, 30000).catch((e) => { throw new Error(`${e.message}; the timeline showed ${JSON.stringify(seen)}`); });
    const byName = Object.fromEntries(live.rows.map((r) => [r.name, r.id]));
    assert.ok(byName.alice && byName.bob, JSON.stringify(live.rows));
    const of = (kind, name) => live.shapes.filter((s) => s.kind === kind && s.peer === byName[name]);
    const [aliceFile] = of("file", "alice");
    const [bobFile] = of("file", "bob");
    // Bob came later: his file starts later on the room clock, and is drawn further right.
    assert.ok(bobFile.from > aliceFile.from + 1000, `bob's file starts at ${bobFile.from}, alice's at ${aliceFile.from}`);
    assert.ok(bobFile.x > aliceFile.x, "bob's bar starts further right");
    // Each file lies within its member's connected span (to the second: t0 comes from the sender's clock).
    for (const name of ["alice", "bob"]) {
      const [file] = of("file", name);
      assert.ok(of("presence", name).some((p) => p.from <= file.from + 1000 && p.to >= file.from), `${name}: ${JSON.stringify(of("presence", name))} vs ${JSON.stringify(file)}`);
    }
    // The mute lasted about 1.5 s and was alice's; the chat marks sit on the right rows, in order.
    const [mute] = of("mute", "alice");
    assert.ok(mute.to - mute.from > 1000 && mute.to - mute.from < 5000, JSON.stringify(mute));
    assert.equal(of("message", "alice").length, 1);
    assert.equal(of("message", "bob").length, 1);
    assert.ok(of("message", "bob")[0].x > of("message", "alice")[0].x, "bob's chat came later");
    assert.ok(live.end > live.start, "a live run is drawn up to now");

    // Names are text: the room id's markup is not interpreted.
    assert.equal(await page.evaluate(() => document.querySelectorAll("[data-timeline] h3 i, [data-timeline] svg i").length), 0);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const liveShot = path.join(ARTIFACTS, "status-timeline-live.png");
    await (await page.$("[data-timeline]")).screenshot({ path: liveShot });
    assert.ok(fs.statSync(liveShot).size > 5_000, "a real screenshot");

    await bob.leave();
    await alice.leave();
    const finished = await until("the finished timeline", async () => {
      const t = await timeline(page, room);
      return t && t.badge === "finished" ? t : null;
    }, 30000);
    const bars = finished.shapes.filter((s) => s.kind === "file");
    assert.ok(bars.length >= 2 && bars.every((b) => Number.isFinite(b.to) && b.to > b.from), JSON.stringify(bars));
    assert.ok(finished.shapes.filter((s) => s.kind === "recording").every((r) => r.to <= finished.end), "the recording span ends with the run");
    const finishedShot = path.join(ARTIFACTS, "status-timeline-finished.png");
    await (await page.$("[data-timeline]")).screenshot({ path: finishedShot });
    console.log(`timeline screenshots: ${liveShot} ${finishedShot}`);
  }));
