// The gateway's signaling, driven by the real socket.io-client 4.x over
// long-polling, WebSocket, and polling upgraded to WebSocket.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { startGateway, connect, join, next, drain, sleep } from "./gateway.mjs";

let gw;
before(async () => { gw = await startGateway(); });
after(async () => { await gw.stop(); });

for (const transport of ["polling", "websocket", "upgrade"]) {
  describe(`over ${transport}`, () => {
    test("presence: three members, backfill, init-offer, join-ok", async () => {
      const room = `presence-${transport}`;
      const a = await join(gw.url, transport, room, "alice");
      const b = await connect(gw.url, transport);
      b.emit("join-room", { roomId: room, name: "bob" });
      assert.deepEqual(await drain(b), [
        ["user-connected", { id: a.id, name: "alice" }],
        ["join-ok", { roomId: room }],
      ]);
      assert.deepEqual(await drain(a), [
        ["user-connected", { id: b.id, name: "bob" }],
        ["#rtcio:init-offer", { source: b.id }],
      ]);
      const c = await join(gw.url, transport, room, "carol");
      for (const s of [a, b]) {
        assert.deepEqual(await drain(s), [
          ["user-connected", { id: c.id, name: "carol" }],
          ["#rtcio:init-offer", { source: c.id }],
        ]);
      }
      const cId = c.id;
      c.disconnect();
      for (const s of [a, b]) {
        assert.deepEqual(await drain(s), [
          ["#rtcio:peer-left", { id: cId }],
          ["user-disconnected", { id: cId }],
        ]);
      }
      a.disconnect(); b.disconnect();
    });

    test("relay: 300 envelopes arrive unchanged and in order", async () => {
      const room = `relay-${transport}`;
      const a = await join(gw.url, transport, room, "a");
      const b = await join(gw.url, transport, room, "b");
      await drain(a); await drain(b);
      const sent = [];
      for (let i = 0; i < 300; i++) {
        const data = i % 8 === 0
          ? { description: { type: "offer", sdp: "v=0\r\n".repeat(700) + i } }
          : { candidate: { candidate: `candidate:${i} 1 udp 1 127.0.0.1 ${5000 + i} typ host`, sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" } };
        const env = { source: a.id, target: b.id, data };
        sent.push(env);
        a.emit("#rtcio:message", env);
      }
      const got = [];
      while (got.length < sent.length) got.push(await next(b, "#rtcio:message"));
      assert.deepEqual(got, sent);
      a.disconnect(); b.disconnect();
    });

    test("hostile input: spoofed source, foreign target, bad shapes, binary, oversized", async () => {
      const room = `hostile-${transport}`;
      const a = await join(gw.url, transport, room, "a");
      const b = await join(gw.url, transport, room, "b");
      const outsider = await join(gw.url, transport, `${room}-other`, "o");
      await drain(a); await drain(b);
      const cases = [
        [{ source: b.id, target: b.id, data: {} }, "spoofed-source"],
        [{ source: a.id, target: outsider.id, data: {} }, "foreign-target"],
        [{ source: a.id, target: b.id }, "invalid-payload"],
        ["not an object", "invalid-payload"],
        [{ source: a.id, target: b.id, data: { blob: Buffer.from([1, 2, 3]) } }, "invalid-payload"],
        [{ source: a.id, target: b.id, data: { sdp: "x".repeat(1024 * 1024 + 10) } }, "payload-too-large"],
      ];
      for (const [payload, code] of cases) {
        a.emit("#rtcio:message", payload);
        const err = await next(a, "signaling-error", 10000);
        assert.equal(err.code, code, JSON.stringify(payload).slice(0, 80));
        assert.equal(err.event, "#rtcio:message");
      }
      assert.deepEqual(await drain(b), []);
      assert.deepEqual(await drain(outsider), []);
      a.emit("#rtcio:message", { source: a.id, target: b.id, data: { mid: "fine" } });
      assert.deepEqual((await next(b, "#rtcio:message")).data, { mid: "fine" });
      a.disconnect(); b.disconnect(); outsider.disconnect();
    });

    test("passwords and check-room", async () => {
      const room = `pw-${transport}`;
      const a = await join(gw.url, transport, room, "a", "secret");
      const b = await connect(gw.url, transport);
      b.emit("check-room", { roomId: room });
      assert.deepEqual(await next(b, "join-error"), { reason: "password-required", roomId: room });
      b.emit("join-room", { roomId: room, name: "b", password: "nope" });
      assert.deepEqual(await next(b, "join-error"), { reason: "wrong-password", roomId: room });
      b.emit("check-room", { roomId: room, password: "secret" });
      assert.deepEqual(await next(b, "room-check-ok"), { roomId: room, passwordRequired: true });
      b.emit("join-room", { roomId: room, name: "b", password: " secret " });
      await next(b, "join-ok");
      a.disconnect(); b.disconnect();
    });
  });
}

test("CORS: any origin by default, for polling and preflight", async () => {
  const origin = "https://app.example.com";
  const pre = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, {
    method: "OPTIONS",
    headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
  });
  assert.ok(pre.status < 300, `preflight status ${pre.status}`);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  const hs = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
  assert.equal(hs.status, 200);
  assert.equal(hs.headers.get("access-control-allow-origin"), "*");
  assert.match(await hs.text(), /^0\{"sid":/);
});

test("CORS: a configured origin list allows only those origins", async () => {
  const g = await startGateway({ RTCIO_GATEWAY_SERVER__CORS_ORIGINS: "https://good.example" });
  try {
    const good = await fetch(`${g.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: "https://good.example" } });
    assert.equal(good.headers.get("access-control-allow-origin"), "https://good.example");
    const bad = await fetch(`${g.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: "https://evil.example" } });
    assert.equal(bad.headers.get("access-control-allow-origin"), null);
  } finally {
    assert.equal(await g.stop(), 0);
  }
});

function hs256(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${crypto.createHmac("sha256", secret).update(body).digest("base64url")}`;
}

test("JWT: connect_error with a clear message, valid tokens connect", async () => {
  const secret = "node-test-secret-0123456789";
  const g = await startGateway({ RTCIO_GATEWAY_AUTH__JWT_SECRET: secret });
  try {
    for (const transport of ["polling", "websocket"]) {
      await assert.rejects(connect(g.url, transport), (err) => {
        assert.match(err.message, /unauthorized: missing auth\.token/);
        return true;
      });
      await assert.rejects(connect(g.url, transport, { auth: { token: hs256({ sub: "x" }, "wrong-secret-wrong-secret") } }),
        (err) => /unauthorized: auth\.token is not valid/.test(err.message));
      const expired = hs256({ exp: Math.floor(Date.now() / 1000) - 3600 }, secret);
      await assert.rejects(connect(g.url, transport, { auth: { token: expired } }), (err) => /expired/.test(err.message));
      const s = await connect(g.url, transport, { auth: { token: hs256({ sub: "x" }, secret) } });
      s.emit("join-room", { roomId: "jwt", name: "ok" });
      await next(s, "join-ok");
      s.disconnect();
    }
  } finally {
    await g.stop();
  }
});

test("SIGTERM: clients are disconnected and the process exits 0", async () => {
  const g = await startGateway();
  const a = await join(g.url, "websocket", "bye", "a");
  const b = await join(g.url, "polling", "bye", "b");
  const gone = Promise.all([a, b].map((s) => new Promise((r) => s.once("disconnect", r))));
  const t0 = Date.now();
  assert.equal(await g.stop(), 0);
  await gone;
  assert.ok(Date.now() - t0 < 5000, `shutdown took ${Date.now() - t0} ms`);
  assert.match(g.stderr(), /stopped/);
});
