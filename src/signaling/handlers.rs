//! One connected socket and the behaviour of every client event
//! (PROTOCOL.md §2), with the gateway's hardening: rate and size limits,
//! identifier validation, source/target checks, room-membership checks.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use socketioxide::adapter::LocalAdapter;
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide_core::Value;

use super::Signaling;
use super::limits::{NoticeThrottle, TokenBucket};
use crate::protocol::frame::first_arg;
use crate::protocol::validate;
use crate::protocol::*;
use crate::rooms::{Joined, MediaState, Member};

/// The client events this server handles; anything else is [`EventKind::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Message,
    JoinRoom,
    CheckRoom,
    LeaveRoom,
    MediaState,
    StopScreenShare,
    ChatMessage,
    Unknown,
}

impl EventKind {
    pub const KNOWN: [EventKind; 7] = [
        Self::Message,
        Self::JoinRoom,
        Self::CheckRoom,
        Self::LeaveRoom,
        Self::MediaState,
        Self::StopScreenShare,
        Self::ChatMessage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Message => EV_MESSAGE,
            Self::JoinRoom => EV_JOIN_ROOM,
            Self::CheckRoom => EV_CHECK_ROOM,
            Self::LeaveRoom => EV_LEAVE_ROOM,
            Self::MediaState => EV_MEDIA_STATE,
            Self::StopScreenShare => EV_STOP_SCREEN_SHARE,
            Self::ChatMessage => EV_CHAT_MESSAGE,
            Self::Unknown => "other",
        }
    }
}

/// A refused event: the code and a human-readable reason.
struct Refusal {
    code: RefusalCode,
    message: Cow<'static, str>,
}

fn refuse(code: RefusalCode, message: impl Into<Cow<'static, str>>) -> Refusal {
    Refusal { code, message: message.into() }
}

type Handled = Result<(), Refusal>;
type Sock = Socket<LocalAdapter>;

/// Per-socket state. Events of one socket arrive one at a time, so the mutex
/// is never contended; it only satisfies `Sync`.
pub struct Connection {
    sig: Arc<Signaling>,
    sid: Sid,
    /// The client's address (`None` if the transport did not say).
    addr: Option<std::net::IpAddr>,
    limits: Mutex<ConnectionLimits>,
}

struct ConnectionLimits {
    bucket: TokenBucket,
    notices: NoticeThrottle,
}

/// `{roomId}` of the room-scoped events, other fields ignored.
#[derive(Deserialize)]
struct RoomScoped<'a> {
    #[serde(rename = "roomId", borrow)]
    room_id: Cow<'a, str>,
}

impl Connection {
    pub fn new(sig: Arc<Signaling>, sid: Sid, addr: Option<std::net::IpAddr>) -> Self {
        let bucket = TokenBucket::new(sig.config.rate_limit_per_sec, sig.config.rate_limit_burst, Instant::now());
        Self { sig, sid, addr, limits: Mutex::new(ConnectionLimits { bucket, notices: NoticeThrottle::default() }) }
    }

    pub fn observe_latency(&self, kind: EventKind, elapsed: Duration) {
        self.sig.metrics.event_histogram(kind.name()).observe(elapsed.as_secs_f64());
    }

    /// Handle one event: limits first, then the event's own behaviour.
    pub fn handle(&self, s: &Sock, kind: EventKind, v: &Value, now: Instant) {
        let frame = match self.admit(v, now) {
            Ok(frame) => frame,
            Err(r) => return self.report(s, kind, v, r, now),
        };
        let result = match kind {
            EventKind::Message => self.relay(frame),
            EventKind::JoinRoom => self.join_room(s, frame, now),
            EventKind::CheckRoom => self.check_room(s, frame),
            EventKind::LeaveRoom => self.leave_room(frame),
            EventKind::MediaState => self.media_state(frame),
            EventKind::StopScreenShare | EventKind::ChatMessage => self.forward_to_room(kind, frame),
            EventKind::Unknown => Err(refuse(RefusalCode::UnknownEvent, "this server does not handle that event")),
        };
        if let Err(r) = result {
            self.report(s, kind, v, r, now);
        }
    }

    /// Rate limit, size cap and shape of the raw frame `["event", ...]`.
    fn admit<'v>(&self, v: &'v Value, now: Instant) -> Result<&'v str, Refusal> {
        if !self.limits.lock().bucket.try_take(now) {
            return Err(refuse(RefusalCode::RateLimited, "too many events; slow down"));
        }
        let (text, binaries) = match v {
            Value::Str(text, bins) => (text.as_str(), bins.as_ref()),
            Value::Bytes(_) => return Err(refuse(RefusalCode::InvalidPayload, "binary frames are not accepted")),
        };
        let size = text.len() + binaries.map_or(0, |b| b.iter().map(|b| b.len()).sum());
        if size > self.sig.config.max_payload_bytes {
            return Err(refuse(
                RefusalCode::PayloadTooLarge,
                format!("event of {size} bytes is over the {} byte limit", self.sig.config.max_payload_bytes),
            ));
        }
        if binaries.is_some_and(|b| !b.is_empty()) {
            return Err(refuse(RefusalCode::InvalidPayload, "binary attachments are not accepted"));
        }
        Ok(text)
    }

    /// Count, log and (throttled) tell the sender why an event was refused.
    fn report(&self, s: &Sock, kind: EventKind, v: &Value, r: Refusal, now: Instant) {
        self.sig.metrics.dropped_messages_total.with_label_values(&[r.code.metric_label()]).inc();
        let event: Cow<str> = match kind {
            EventKind::Unknown => Cow::Owned(unknown_event_name(v)),
            k => Cow::Borrowed(k.name()),
        };
        tracing::debug!(sid = %self.sid, event = %event, code = r.code.as_str(), reason = %r.message, "event refused");
        if self.limits.lock().notices.allow(now) {
            let _ = s.emit(
                EV_SIGNALING_ERROR,
                &SignalingError { code: r.code.as_str(), event: &event, message: &r.message },
            );
        }
    }

    /// `#rtcio:message`: forward the envelope unchanged to its target, if the
    /// sender is its `source` and shares a room with the target.
    fn relay(&self, frame: &str) -> Handled {
        let envelope: Envelope = first_arg(frame).map_err(|_| {
            refuse(RefusalCode::InvalidPayload, "expected one envelope {source, target, data} with string ids")
        })?;
        if envelope.source != self.sid.as_str() {
            return Err(refuse(RefusalCode::SpoofedSource, "source is not your socket id"));
        }
        let target: Sid =
            envelope.target.parse().map_err(|_| refuse(RefusalCode::ForeignTarget, "target is not a socket id"))?;
        if !self.sig.registry.read().shares_room(self.sid, target) {
            return Err(refuse(RefusalCode::ForeignTarget, "target shares no room with you"));
        }
        let Some(target_socket) = self.sig.io().get_socket(target) else {
            return Err(refuse(RefusalCode::ForeignTarget, "target is gone"));
        };
        target_socket
            .emit(EV_MESSAGE, &envelope)
            .map_err(|e| refuse(RefusalCode::TargetUnavailable, format!("target cannot take messages now: {e}")))?;
        let m = &self.sig.metrics;
        m.relayed_messages_total.inc();
        m.relayed_bytes_total.inc_by(envelope.raw_len() as u64);
        Ok(())
    }

    /// `join-room {roomId, name, password?}`.
    fn join_room(&self, s: &Sock, frame: &str, now: Instant) -> Handled {
        let payload: serde_json::Value = first_arg(frame).unwrap_or(serde_json::Value::Null);
        let cfg = &self.sig.config;
        let room = match validate::room_id(payload.get("roomId"), cfg.max_room_id_chars) {
            Ok(room) => room,
            Err(e) => {
                tracing::debug!(sid = %self.sid, error = ?e, "invalid room id");
                return self.join_error(s, JoinErrorReason::InvalidRoom, echo_room_id(&payload));
            }
        };
        let name = match validate::display_name(payload.get("name"), cfg.max_name_chars) {
            Ok(name) => name,
            Err(_) => return self.join_error(s, JoinErrorReason::InvalidName, Some(room)),
        };
        let password = validate::password(payload.get("password"));

        let io = self.sig.io();
        let me = self.sid.as_str();
        let mut registry = self.sig.registry.write();
        // Creating a room (joining one that does not exist) is limited per client address.
        if registry.password(room).is_none()
            && let Some(addr) = self.addr
            && !self.sig.room_creations.lock().allow(addr, now)
        {
            drop(registry);
            return self.join_error(s, JoinErrorReason::RoomCreationLimited, Some(room));
        }
        let joined = match registry.join(self.sid, room, name, password, self.sig.room_limits) {
            Ok(joined) => joined,
            Err(reason) => {
                drop(registry);
                return self.join_error(s, reason, Some(room));
            }
        };
        // Notifications go out under the registry lock so that concurrent
        // joins and departures are observed in one global order.
        let (existing, is_new) = match joined {
            Joined::New { existing } => (existing, true),
            Joined::Already { existing } => (existing, false),
        };
        for Member { id, name, media } in &existing {
            let _ = s.emit(EV_USER_CONNECTED, &UserConnected { id: id.as_str(), name });
            if let Some(MediaState { mic, cam }) = media {
                let replay = MediaStateReplay { id: id.as_str(), room_id: room, mic: *mic, cam: *cam };
                let _ = s.emit(EV_MEDIA_STATE, &replay);
            }
        }
        let _ = s.emit(EV_JOIN_OK, &JoinOk { room_id: room });
        if is_new {
            for member in &existing {
                if let Some(ms) = io.get_socket(member.id) {
                    let _ = ms.emit(EV_USER_CONNECTED, &UserConnected { id: me, name });
                    let _ = ms.emit(EV_INIT_OFFER, &InitOffer { source: me });
                }
            }
        }
        self.sig.update_room_gauges(&registry);
        drop(registry);
        self.sig.metrics.joins_total.with_label_values(&["ok"]).inc();
        tracing::debug!(sid = %self.sid, room, members = existing.len() + 1, "joined room");
        Ok(())
    }

    fn join_error(&self, s: &Sock, reason: JoinErrorReason, room_id: Option<&str>) -> Handled {
        self.sig.metrics.joins_total.with_label_values(&[reason.as_str()]).inc();
        tracing::debug!(sid = %self.sid, reason = reason.as_str(), "join refused");
        let _ = s.emit(EV_JOIN_ERROR, &JoinError { reason, room_id });
        Ok(())
    }

    /// `check-room {roomId, password?}` → `room-check-ok` or `join-error`.
    fn check_room(&self, s: &Sock, frame: &str) -> Handled {
        let payload: serde_json::Value = first_arg(frame).unwrap_or(serde_json::Value::Null);
        let room = match validate::room_id(payload.get("roomId"), self.sig.config.max_room_id_chars) {
            Ok(room) => room,
            Err(_) => {
                let _ = s.emit(
                    EV_JOIN_ERROR,
                    &JoinError { reason: JoinErrorReason::InvalidRoom, room_id: echo_room_id(&payload) },
                );
                return Ok(());
            }
        };
        let password = validate::password(payload.get("password"));
        let checked = self.sig.registry.read().check(room, password, self.sig.room_limits);
        let _ = match checked {
            Ok(password_required) => s.emit(EV_ROOM_CHECK_OK, &RoomCheckOk { room_id: room, password_required }),
            Err(reason) => s.emit(EV_JOIN_ERROR, &JoinError { reason, room_id: Some(room) }),
        };
        Ok(())
    }

    /// `leave-room {roomId}`: the others get `#rtcio:peer-left` and `user-disconnected`.
    fn leave_room(&self, frame: &str) -> Handled {
        let scoped = room_scoped(frame)?;
        let mut registry = self.sig.registry.write();
        let Some(remaining) = registry.leave(self.sid, &scoped.room_id) else {
            return Err(refuse(RefusalCode::NotInRoom, "you are not in that room"));
        };
        let me = PeerId { id: self.sid.as_str() };
        let io = self.sig.io();
        for id in remaining {
            if let Some(ms) = io.get_socket(id) {
                let _ = ms.emit(EV_PEER_LEFT, &me);
                let _ = ms.emit(EV_USER_DISCONNECTED, &me);
            }
        }
        self.sig.update_room_gauges(&registry);
        Ok(())
    }

    /// `media-state {roomId, mic, cam}`: cached when both are booleans,
    /// forwarded to the rest of the room with `id` set to the sender's id.
    fn media_state(&self, frame: &str) -> Handled {
        let payload: serde_json::Value =
            first_arg(frame).map_err(|_| refuse(RefusalCode::InvalidPayload, "expected one object argument"))?;
        let serde_json::Value::Object(mut object) = payload else {
            return Err(refuse(RefusalCode::InvalidPayload, "expected {roomId, mic, cam}"));
        };
        let Some(room) = object.get("roomId").and_then(|r| r.as_str()).map(str::to_owned) else {
            return Err(refuse(RefusalCode::InvalidPayload, "roomId must be a string"));
        };
        let mut registry = self.sig.registry.write();
        if !registry.is_member(self.sid, &room) {
            return Err(refuse(RefusalCode::NotInRoom, "you are not in that room"));
        }
        if let (Some(mic), Some(cam)) =
            (object.get("mic").and_then(|v| v.as_bool()), object.get("cam").and_then(|v| v.as_bool()))
        {
            registry.set_media_state(self.sid, MediaState { mic, cam });
        }
        object.insert("id".into(), serde_json::Value::String(self.sid.as_str().to_owned()));
        let others = registry.members_except(&room, self.sid);
        drop(registry);
        self.send_each(&others, EV_MEDIA_STATE, &object);
        Ok(())
    }

    /// `stopScreenShare` and `chat-message`: forwarded verbatim to the rest of the room.
    fn forward_to_room(&self, kind: EventKind, frame: &str) -> Handled {
        let payload: &RawValue =
            first_arg(frame).map_err(|_| refuse(RefusalCode::InvalidPayload, "expected one object argument"))?;
        let scoped: RoomScoped = serde_json::from_str(payload.get())
            .map_err(|_| refuse(RefusalCode::InvalidPayload, "expected an object with a string roomId"))?;
        let registry = self.sig.registry.read();
        if !registry.is_member(self.sid, &scoped.room_id) {
            return Err(refuse(RefusalCode::NotInRoom, "you are not in that room"));
        }
        let others = registry.members_except(&scoped.room_id, self.sid);
        drop(registry);
        self.send_each(&others, kind.name(), payload);
        Ok(())
    }

    fn send_each<T: serde::Serialize + ?Sized>(&self, targets: &[Sid], event: &str, payload: &T) {
        let io = self.sig.io();
        for id in targets {
            if let Some(ms) = io.get_socket(*id) {
                let _ = ms.emit(event, payload);
            }
        }
    }

    /// The socket is gone: every room it was in hears `#rtcio:peer-left`
    /// first, then `user-disconnected` (the reference server's order).
    pub fn depart(&self, reason: DisconnectReason) {
        let io = self.sig.io();
        let me = PeerId { id: self.sid.as_str() };
        let mut registry = self.sig.registry.write();
        let rooms = registry.remove_socket(self.sid);
        for event in [EV_PEER_LEFT, EV_USER_DISCONNECTED] {
            for (_, remaining) in &rooms {
                for id in remaining {
                    if let Some(ms) = io.get_socket(*id) {
                        let _ = ms.emit(event, &me);
                    }
                }
            }
        }
        self.sig.update_room_gauges(&registry);
        drop(registry);
        let m = &self.sig.metrics;
        m.connected_sockets.dec();
        m.disconnects_total.with_label_values(&[disconnect_label(reason)]).inc();
        tracing::debug!(sid = %self.sid, ?reason, rooms = rooms.len(), "socket disconnected");
    }
}

fn room_scoped(frame: &str) -> Result<RoomScoped<'_>, Refusal> {
    first_arg(frame).map_err(|_| refuse(RefusalCode::InvalidPayload, "expected an object with a string roomId"))
}

/// The reference server echoes whatever `roomId` it got; we echo it only when it is a short string.
fn echo_room_id(payload: &serde_json::Value) -> Option<&str> {
    payload.get("roomId").and_then(|r| r.as_str()).filter(|r| r.len() <= 1024)
}

/// The event name of an unrouted frame, shortened for the error notice.
fn unknown_event_name(v: &Value) -> String {
    let Value::Str(text, _) = v else { return String::new() };
    crate::protocol::frame::event_name(text.as_str()).unwrap_or_default().chars().take(64).collect()
}

fn disconnect_label(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose => "transport_close",
        DisconnectReason::MultipleHttpPollingError => "multiple_http_polling_error",
        DisconnectReason::PacketParsingError => "packet_parsing_error",
        DisconnectReason::TransportError => "transport_error",
        DisconnectReason::HeartbeatTimeout => "heartbeat_timeout",
        DisconnectReason::ClientNSDisconnect => "client_disconnect",
        DisconnectReason::ServerNSDisconnect => "server_disconnect",
        DisconnectReason::ClosingServer => "closing_server",
    }
}
