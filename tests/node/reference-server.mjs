// A plain Node socket.io server that behaves like the rtc.io reference app
// server (PROTOCOL.md §2) and nothing more: no validation, blind relaying.
// Used to show the gateway's participant works against servers other than
// our own. Usage: node reference-server.mjs [port]  (prints "listening <port>")
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { cors: { origin: "*" } });
const passwords = new Map();

io.on("connection", (socket) => {
  socket.on("#rtcio:message", (msg) => socket.to(msg.target).emit("#rtcio:message", msg));

  socket.on("join-room", ({ roomId, name, password } = {}) => {
    if (!roomId || typeof roomId !== "string") return socket.emit("join-error", { reason: "invalid-room", roomId });
    const members = io.sockets.adapter.rooms.get(roomId);
    const supplied = typeof password === "string" ? password.trim() : "";
    if (members && members.size > 0) {
      const stored = passwords.get(roomId) ?? "";
      if (stored && stored !== supplied) {
        return socket.emit("join-error", { reason: supplied ? "wrong-password" : "password-required", roomId });
      }
    } else if (supplied) {
      passwords.set(roomId, supplied);
    } else {
      passwords.delete(roomId);
    }
    const existing = Array.from(members ?? []);
    socket.data.name = name;
    socket.join(roomId);
    for (const id of existing) {
      socket.emit("user-connected", { id, name: io.sockets.sockets.get(id)?.data.name });
    }
    socket.emit("join-ok", { roomId });
    socket.to(roomId).emit("user-connected", { id: socket.id, name });
    socket.to(roomId).emit("#rtcio:init-offer", { source: socket.id });
  });

  socket.on("disconnecting", () => {
    for (const room of socket.rooms) {
      if (room === socket.id) continue;
      socket.to(room).emit("#rtcio:peer-left", { id: socket.id });
      socket.to(room).emit("user-disconnected", { id: socket.id });
      if ((io.sockets.adapter.rooms.get(room)?.size ?? 0) <= 1) passwords.delete(room);
    }
  });
});

http.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});
