// A browser test client that speaks the rtc.io wire protocol exactly as
// ../../shared/PROTOCOL.md describes the rtc.io client 1.5.x: socket.io-client
// for signaling, the browser's own RTCPeerConnection for media and data.
// It is a test instrument written for this project, not the rtc.io library:
// small, readable, and faithful on the wire.
//
//   const client = new RtcioTestClient({ url, room: "demo", name: "alice", channels: ["chat"] });
//   await client.join();
//   await client.emit("camera", { cam: client.stream(mediaStream), metadata: { name: "alice" } });
//   client.emit("hello", "world");                 // ctrl channel, to every peer
//   client.channel("chat").emit("msg", "hi");      // rtcio:ch:chat
//
// Everything it observes is kept in `client.log` (and the console) so the
// driver can assert on it.

/* global io */

const CTRL_LABEL = "rtcio:ctrl";
const RESERVED = new Set(["peer-connect", "peer-disconnect", "track-added", "track-removed"]);
const METADATA_RETRIES_MS = [0, 500, 1500, 3500, 7500];

/** FNV-1a 32 over UTF-16 code units, as the rtc.io client computes channel ids. */
function fnv1a32(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function channelId(name) {
  return (fnv1a32(name) % 1023) + 1;
}

/** A MediaStream marked for emitting, like `new RTCIOStream(stream)`. */
class RtcioStream {
  constructor(mediaStream) {
    this.mediaStream = mediaStream;
    this.id = mediaStream.id;
  }
  toJSON() {
    return `[RTCIOStream] ${this.id}`;
  }
}

/** One remote peer: its connection, channels and negotiation state. */
class Peer {
  constructor(client, id, polite) {
    this.client = client;
    this.id = id;
    this.polite = polite;
    this.pc = new RTCPeerConnection({ iceServers: [] });
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.pendingCandidates = [];
    this.channels = new Map(); // name ("ctrl" or broadcast name) -> RTCDataChannel
    this.connected = false;
    this.senders = new Map(); // stream id -> [RTCRtpSender]
    this.knownStreams = new Set();
    this.queue = Promise.resolve(); // signaling from this peer, strictly in order

    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.client.send(this.id, { candidate: candidate.toJSON() });
    };
    this.pc.onnegotiationneeded = () => this.offer();
    this.pc.oniceconnectionstatechange = () => {
      if (this.pc.iceConnectionState === "failed") this.pc.restartIce();
    };
    this.pc.ontrack = (event) => this.onTrack(event);
    this.openChannel("ctrl", CTRL_LABEL, 0, { ordered: true });
    for (const name of client.channelNames) this.openChannel(name, `rtcio:ch:${name}`, channelId(name), { ordered: true });
  }

  openChannel(name, label, id, options) {
    const dc = this.pc.createDataChannel(label, { ...options, negotiated: true, id });
    dc.binaryType = "arraybuffer";
    dc.onopen = () => {
      if (name === "ctrl" && !this.connected) {
        this.connected = true;
        this.client.record("peer-connect", { id: this.id });
      }
    };
    dc.onclose = () => {
      if (name === "ctrl") this.client.closePeer(this.id, "ctrl channel closed");
    };
    dc.onmessage = ({ data }) => this.client.onChannelMessage(this, name, data);
    this.channels.set(name, dc);
  }

  async offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.client.send(this.id, { description: this.pc.localDescription.toJSON() });
    } catch (e) {
      this.client.record("error", { peer: this.id, where: "offer", message: String(e) });
    } finally {
      this.makingOffer = false;
    }
  }

  /** Perfect negotiation (W3C pattern) for one incoming envelope. */
  async onSignal(data) {
    if (data.description) {
      const description = data.description;
      const readyForOffer = !this.makingOffer && (this.pc.signalingState === "stable" || this.settingRemoteAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) {
        this.client.record("negotiation", { peer: this.id, result: "ignored-offer" });
        return;
      }
      if (description.type === "answer" && this.pc.signalingState === "stable") {
        return; // a stale answer
      }
      this.settingRemoteAnswer = description.type === "answer";
      await this.pc.setRemoteDescription(description); // rolls back our own offer if needed (polite)
      this.settingRemoteAnswer = false;
      for (const c of this.pendingCandidates.splice(0)) await this.addCandidate(c);
      if (description.type === "offer") {
        await this.pc.setLocalDescription();
        this.client.send(this.id, { description: this.pc.localDescription.toJSON() });
        if (!this.replayed) {
          // The newcomer answers first, then replays its own streams (a renegotiation from here).
          this.replayed = true;
          this.client.replayTo(this);
        }
      }
      this.client.record("negotiation", { peer: this.id, result: "ok", type: description.type });
    } else if (data.candidate !== undefined) {
      if (!this.pc.remoteDescription) this.pendingCandidates.push(data.candidate);
      else await this.addCandidate(data.candidate);
    } else if (data.mid !== undefined && data.events !== undefined) {
      this.client.onMetadata(this, data.mid, data.events);
    } else if (data.mid !== undefined) {
      this.client.onMetadataRequest(this, data.mid);
    }
  }

  async addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate && candidate.candidate ? candidate : null);
    } catch (e) {
      if (!this.ignoreOffer) this.client.record("error", { peer: this.id, where: "candidate", message: String(e) });
    }
  }

  onTrack(event) {
    const stream = event.streams[0];
    if (!stream) return;
    this.client.record("track", { peer: this.id, stream: stream.id, kind: event.track.kind });
    if (this.knownStreams.has(stream.id)) return;
    this.knownStreams.add(stream.id);
    this.client.requestMetadata(this, stream.id);
  }

  addStream(rtcioStream) {
    const senders = [];
    for (const track of rtcioStream.mediaStream.getTracks()) {
      const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [rtcioStream.mediaStream] });
      if (track.kind === "video" && this.client.videoCodec) {
        const wanted = this.client.videoCodec.toLowerCase();
        const codecs = RTCRtpSender.getCapabilities("video").codecs;
        const preferred = codecs.filter((c) => c.mimeType.toLowerCase() === `video/${wanted}`);
        const rest = codecs.filter((c) => /rtx|red|ulpfec/i.test(c.mimeType));
        transceiver.setCodecPreferences([...preferred, ...rest]);
      }
      senders.push(transceiver.sender);
    }
    this.senders.set(rtcioStream.id, senders);
  }

  removeStream(streamId) {
    for (const sender of this.senders.get(streamId) ?? []) {
      const transceiver = this.pc.getTransceivers().find((t) => t.sender === sender);
      sender.replaceTrack(null);
      if (transceiver) transceiver.direction = "inactive";
    }
    this.senders.delete(streamId);
  }

  close() {
    for (const dc of this.channels.values()) dc.onclose = null;
    this.pc.close();
  }
}

export class RtcioTestClient {
  constructor({ url, room, name, password, channels = ["chat"], videoCodec = null }) {
    this.url = url;
    this.room = room;
    this.name = name;
    this.password = password;
    this.channelNames = channels;
    this.videoCodec = videoCodec;
    this.peers = new Map();
    this.published = new Map(); // stream id -> {stream: RtcioStream, events: {event: args}}
    this.streamMetadata = new Map(); // "peer/stream" -> events
    this.log = [];
  }

  record(type, detail) {
    const entry = { type, at: Date.now(), ...detail };
    this.log.push(entry);
    console.log(`[rtcio-test-client ${this.name}] ${type} ${JSON.stringify(detail)}`);
  }

  /** Connect, join the room, resolve with the join-ok payload. */
  join() {
    this.socket = io(this.url, { transports: ["polling", "websocket"], forceNew: true });
    this.socket.on("#rtcio:init-offer", ({ source }) => this.peer(source, true));
    this.socket.on("#rtcio:message", ({ source, target, data }) => {
      if (target !== this.socket.id || !data) return;
      const peer = this.peers.get(source) ?? this.peer(source, false);
      peer.queue = peer.queue.then(() => peer.onSignal(data)).catch((e) =>
        this.record("error", { peer: source, where: "signal", message: String(e) }),
      );
    });
    this.socket.on("#rtcio:peer-left", ({ id }) => setTimeout(() => this.closePeer(id, "peer-left"), 2500));
    this.socket.on("user-connected", (u) => this.record("user-connected", u));
    this.socket.on("user-disconnected", ({ id }) => {
      this.record("user-disconnected", { id });
      this.closePeer(id, "user-disconnected");
    });
    return new Promise((resolve, reject) => {
      this.socket.once("join-ok", (ok) => {
        this.record("join-ok", ok);
        resolve(ok);
      });
      this.socket.once("join-error", (e) => reject(new Error(`join-error ${JSON.stringify(e)}`)));
      this.socket.once("connect", () => {
        this.record("connected", { id: this.socket.id });
        this.socket.emit("join-room", { roomId: this.room, name: this.name, password: this.password });
      });
    });
  }

  get id() {
    return this.socket?.id;
  }

  send(target, data) {
    this.socket.emit("#rtcio:message", { source: this.socket.id, target, data });
  }

  peer(id, polite) {
    let peer = this.peers.get(id);
    if (peer) return peer;
    peer = new Peer(this, id, polite);
    this.peers.set(id, peer);
    this.record("peer-created", { id, polite });
    if (polite) this.replayTo(peer); // the existing member offers with everything it has
    return peer;
  }

  replayTo(peer) {
    for (const { stream } of this.published.values()) peer.addStream(stream);
  }

  closePeer(id, reason) {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    peer.close();
    if (peer.connected) this.record("peer-disconnect", { id, reason });
  }

  /** Wrap a MediaStream for emitting. */
  stream(mediaStream) {
    return new RtcioStream(mediaStream);
  }

  /**
   * Like socket.emit: with an RtcioStream among the args (top level or one
   * level into an object) the stream is published under `event` with these
   * args as metadata; otherwise the event goes over every ctrl channel.
   */
  emit(event, ...args) {
    const stream = findStream(args);
    if (stream) {
      const entry = this.published.get(stream.id) ?? { stream, events: {} };
      entry.events[event] = JSON.parse(JSON.stringify(args)); // RtcioStream → "[RTCIOStream] <id>"
      const isNew = !this.published.has(stream.id);
      this.published.set(stream.id, entry);
      if (isNew) for (const peer of this.peers.values()) peer.addStream(stream);
      return;
    }
    this.sendOn("ctrl", JSON.stringify({ e: event, d: args }));
  }

  /** Stop publishing a stream: its transceivers go inactive everywhere. */
  unpublish(streamId) {
    this.published.delete(streamId);
    for (const peer of this.peers.values()) peer.removeStream(streamId);
  }

  channel(name) {
    return {
      emit: (event, ...args) => this.sendOn(name, JSON.stringify({ e: event, d: args })),
      send: (bytes) => this.sendOn(name, bytes),
    };
  }

  sendOn(channel, payload) {
    for (const peer of this.peers.values()) {
      const dc = peer.channels.get(channel);
      if (dc && dc.readyState === "open") dc.send(payload);
    }
  }

  onChannelMessage(peer, channel, data) {
    if (typeof data !== "string") {
      this.record("binary", { peer: peer.id, channel, bytes: data.byteLength });
      return;
    }
    let envelope;
    try {
      envelope = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof envelope?.e !== "string" || !Array.isArray(envelope.d)) return;
    if (envelope.e.startsWith("#rtcio:") || RESERVED.has(envelope.e)) return;
    this.record("message", { peer: peer.id, channel, event: envelope.e, args: envelope.d });
  }

  requestMetadata(peer, streamId) {
    for (const delay of METADATA_RETRIES_MS) {
      setTimeout(() => {
        if (!this.streamMetadata.has(`${peer.id}/${streamId}`) && this.peers.get(peer.id) === peer) {
          this.send(peer.id, { mid: streamId });
        }
      }, delay);
    }
  }

  onMetadataRequest(peer, streamId) {
    const entry = this.published.get(streamId);
    if (entry) this.send(peer.id, { mid: streamId, events: entry.events });
  }

  onMetadata(peer, streamId, events) {
    const key = `${peer.id}/${streamId}`;
    if (this.streamMetadata.has(key)) return;
    this.streamMetadata.set(key, events);
    for (const [event, args] of Object.entries(events)) {
      this.record("stream", { peer: peer.id, stream: streamId, event, args });
    }
  }

  /** Inbound RTP counters per peer: {peerId: {audio: packets, video: frames decoded}}. */
  async inbound() {
    const result = {};
    for (const [id, peer] of this.peers) {
      const stats = await peer.pc.getStats();
      const entry = { audio: 0, video: 0 };
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") entry.audio += s.packetsReceived ?? 0;
        if (s.type === "inbound-rtp" && s.kind === "video") entry.video += s.framesDecoded ?? 0;
      });
      result[id] = entry;
    }
    return result;
  }

  leave() {
    for (const id of [...this.peers.keys()]) this.closePeer(id, "left");
    this.socket?.disconnect();
  }
}

function findStream(args) {
  for (const arg of args) {
    if (arg instanceof RtcioStream) return arg;
    if (arg && typeof arg === "object") {
      for (const value of Object.values(arg)) if (value instanceof RtcioStream) return value;
    }
  }
  return null;
}
