//! One participant in one room: the signaling link plus a session per peer.
//!
//! The room task owns the peer map. It creates a polite session when the
//! server sends `#rtcio:init-offer`, an impolite one when a peer's first
//! offer or candidate arrives, hands each peer's envelopes to its session in
//! order, passes `#rtcio:peer-left` hints and `user-disconnected` on, and
//! rebuilds everything after a signaling reconnect (we come back with a new
//! socket id, so the peers do too).
//!
//! Server events the participant does not act on itself (rtc.io's
//! `media-state`, `chat-message`, ...), and the room's `user-connected` /
//! `user-disconnected`, are handed on as [`ServerEvent`]s on their own
//! channel ([`Participant::take_server_events`]); it holds at most
//! [`SERVER_EVENTS_QUEUED`] unread ones (later ones are dropped, so a
//! participant whose owner never reads them does not grow).
//!
//! Sessions are kept in a [`SessionTable`] by peer id *and* serial number: a
//! session that ends reports its own [`SessionId`], and only removes itself if
//! it is still the peer's current session — a peer that left the room and
//! re-joined from the same socket gets a new session (`#rtcio:init-offer`
//! again), which the old one's late end must not remove.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::channels::{self, Channel, ChannelConfigError};
use super::events::{LocalStream, ParticipantEvent, PeerInfo};
use super::link::{Link, LinkConfig, LinkEvent};
use super::negotiation::Role;
use super::peer_connection::NetConfig;
use super::session::{LocalMedia, Session, SessionId, SessionInput, SessionShared};
use crate::metrics::ParticipantMetrics;

/// Everything needed to put a participant into a room.
#[derive(Debug, Clone)]
pub struct ParticipantConfig {
    pub link: LinkConfig,
    /// Broadcast channels to create with every peer (their messages are heard).
    pub channels: Vec<String>,
    /// Local address for the peer connections' UDP sockets.
    pub udp_bind: IpAddr,
    pub ice_servers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    #[error(transparent)]
    Channels(#[from] ChannelConfigError),
    #[error("cannot send: {0}")]
    Send(#[from] channels::SendError),
    #[error("the participant has stopped")]
    Stopped,
}

enum Command {
    Emit { channel: Channel, text: String },
    EmitTo { peer: String, channel: Channel, text: String },
    Binary { channel: Channel, data: Bytes },
    MediaChanged,
    Envelope { target: String, data: Value },
    Server { event: String, arg: Value },
    Rejoin,
}

/// A server event the participant heard: one it does not act on (`media-state`,
/// `chat-message`, ...), or a member entering or leaving the room
/// (`user-connected {id, name}`, `user-disconnected {id}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    pub event: String,
    /// Its first argument (null if none).
    pub arg: Value,
    /// When it arrived (gateway wall clock).
    pub at: std::time::SystemTime,
    /// The member its `id` names, with the name the room knows (empty if none).
    pub peer: Option<PeerInfo>,
}

/// Unread server events kept; see the module doc.
pub const SERVER_EVENTS_QUEUED: usize = 1024;

/// A running participant. Dropping it (or [`Participant::shutdown`]) leaves the room.
pub struct Participant {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<ParticipantEvent>,
    server_events: Option<mpsc::Receiver<ServerEvent>>,
    local: Arc<parking_lot::RwLock<LocalMedia>>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Participant {
    pub fn start(config: ParticipantConfig, metrics: ParticipantMetrics) -> Result<Participant, ParticipantError> {
        let specs = channels::channel_specs(&config.channels)?;
        let cancel = CancellationToken::new();
        let (link, link_events) = Link::start(config.link.clone(), cancel.child_token());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let local = Arc::new(parking_lot::RwLock::new(LocalMedia::default()));
        let shared = Arc::new(SessionShared {
            link: Arc::new(link),
            events: events_tx,
            channels: specs,
            net: NetConfig { udp_bind: config.udp_bind, ice_servers: config.ice_servers.clone() },
            local: local.clone(),
            metrics,
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (server_tx, server_rx) = mpsc::channel(SERVER_EVENTS_QUEUED);
        let task = tokio::spawn(run(shared, link_events, cmd_rx, server_tx, cancel.clone()));
        Ok(Participant {
            commands: cmd_tx,
            events: events_rx,
            server_events: Some(server_rx),
            local,
            cancel,
            task: Some(task),
        })
    }

    /// The server events (see [`ServerEvent`]), as they arrive (once: later
    /// calls get `None`).
    pub fn take_server_events(&mut self) -> Option<mpsc::Receiver<ServerEvent>> {
        self.server_events.take()
    }

    /// Emit a server event (e.g. `media-state {roomId, mic, cam}`) on the signaling connection.
    pub fn emit_server(&self, event: &str, arg: Value) -> Result<(), ParticipantError> {
        self.commands.send(Command::Server { event: event.into(), arg }).map_err(|_| ParticipantError::Stopped)
    }

    /// The next thing that happened; `None` once the participant stopped.
    pub async fn next_event(&mut self) -> Option<ParticipantEvent> {
        self.events.recv().await
    }

    /// `socket.emit(event, ...args)` to every connected peer, over the ctrl channel.
    pub fn emit(&self, event: &str, args: &[Value]) -> Result<(), ParticipantError> {
        self.send_text(Channel::Ctrl, channels::encode(event, args)?)
    }

    /// `socket.peer(id).emit(event, ...args)`: to one connected peer, over the ctrl channel.
    pub fn emit_to(&self, peer_id: &str, event: &str, args: &[Value]) -> Result<(), ParticipantError> {
        let text = channels::encode(event, args)?;
        self.commands
            .send(Command::EmitTo { peer: peer_id.to_string(), channel: Channel::Ctrl, text })
            .map_err(|_| ParticipantError::Stopped)
    }

    /// `channel.emit(event, ...args)` on a broadcast channel.
    pub fn emit_on(&self, channel: &str, event: &str, args: &[Value]) -> Result<(), ParticipantError> {
        self.send_text(Channel::Broadcast(channel.into()), channels::encode(event, args)?)
    }

    /// Send any text on a channel, unchecked — for tools and tests that
    /// exercise how peers cope with malformed messages.
    pub fn send_raw_text(&self, channel: Channel, text: String) -> Result<(), ParticipantError> {
        self.send_text(channel, text)
    }

    fn send_text(&self, channel: Channel, text: String) -> Result<(), ParticipantError> {
        self.commands.send(Command::Emit { channel, text }).map_err(|_| ParticipantError::Stopped)
    }

    /// Send a raw `#rtcio:message` envelope `data` to one peer, unchecked —
    /// for tools and tests that exercise how peers cope with odd signaling.
    pub fn send_raw_envelope(&self, peer_id: &str, data: Value) -> Result<(), ParticipantError> {
        self.commands.send(Command::Envelope { target: peer_id.into(), data }).map_err(|_| ParticipantError::Stopped)
    }

    /// Send bytes on a broadcast channel.
    pub fn send_binary(&self, channel: &str, data: Bytes) -> Result<(), ParticipantError> {
        channels::check_binary(data.len()).map_err(|_| channels::SendError::TooLarge(data.len()))?;
        self.commands
            .send(Command::Binary { channel: Channel::Broadcast(channel.into()), data })
            .map_err(|_| ParticipantError::Stopped)
    }

    /// Publish a stream to every current and future peer, like
    /// `socket.emit(event, ...args)` with an `RTCIOStream` among the args.
    pub fn publish(&self, stream: LocalStream) -> Result<(), ParticipantError> {
        {
            let mut local = self.local.write();
            local.published.publish(&stream.stream_id, &stream.event, stream.args.clone());
            local.streams.retain(|s| s.stream_id != stream.stream_id);
            local.streams.push(stream);
        }
        self.commands.send(Command::MediaChanged).map_err(|_| ParticipantError::Stopped)
    }

    /// Stop publishing a stream (its transceivers go inactive at every peer).
    pub fn unpublish(&self, stream_id: &str) -> Result<(), ParticipantError> {
        {
            let mut local = self.local.write();
            local.published.unpublish(stream_id);
            local.streams.retain(|s| s.stream_id != stream_id);
        }
        self.commands.send(Command::MediaChanged).map_err(|_| ParticipantError::Stopped)
    }

    /// Leave the room (`leave-room`) and join it again from the same socket,
    /// as an app does that leaves a room and comes back: every peer
    /// connection closes, a new `Joined` event follows, and the members
    /// connect to us anew. Published streams stay published.
    pub fn rejoin(&self) -> Result<(), ParticipantError> {
        self.commands.send(Command::Rejoin).map_err(|_| ParticipantError::Stopped)
    }

    /// Leave the room and close every peer connection.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The current session of each peer, told apart from the ones it replaced.
struct SessionTable<S> {
    current: HashMap<String, (u64, S)>,
    next_serial: u64,
}

impl<S> SessionTable<S> {
    fn new() -> Self {
        Self { current: HashMap::new(), next_serial: 0 }
    }

    /// Make the session built by `build` (given its id) the peer's current
    /// one; returns the session it replaced, if any.
    fn insert(&mut self, peer: &str, build: impl FnOnce(SessionId) -> S) -> Option<S> {
        self.next_serial += 1;
        let id = SessionId { peer: peer.to_string(), serial: self.next_serial };
        let session = build(id);
        self.current.insert(peer.to_string(), (self.next_serial, session)).map(|(_, old)| old)
    }

    fn get(&self, peer: &str) -> Option<&S> {
        self.current.get(peer).map(|(_, s)| s)
    }

    fn contains(&self, peer: &str) -> bool {
        self.current.contains_key(peer)
    }

    fn values(&self) -> impl Iterator<Item = &S> {
        self.current.values().map(|(_, s)| s)
    }

    /// Forget the session `id` ended; returns whether it was still current
    /// (a replaced session's end leaves its successor alone).
    fn ended(&mut self, id: &SessionId) -> bool {
        let current = self.current.get(&id.peer).is_some_and(|(serial, _)| *serial == id.serial);
        if current {
            self.current.remove(&id.peer);
        }
        current
    }

    fn drain(&mut self) -> impl Iterator<Item = S> + '_ {
        self.current.drain().map(|(_, (_, s))| s)
    }
}

async fn run(
    shared: Arc<SessionShared>,
    mut link_events: mpsc::UnboundedReceiver<LinkEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    server_events: mpsc::Sender<ServerEvent>,
    cancel: CancellationToken,
) {
    let metrics = shared.metrics.clone();
    let mut sessions: SessionTable<Session> = SessionTable::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<SessionId>();
    let emit = |e: ParticipantEvent| {
        let _ = shared.events.send(e);
    };
    let peer = |names: &HashMap<String, String>, id: &str| PeerInfo {
        id: id.to_string(),
        name: names.get(id).cloned().unwrap_or_default(),
    };
    let hand_on = |names: &HashMap<String, String>, event: &str, arg: Value| {
        let at = std::time::SystemTime::now();
        let peer = arg.get("id").and_then(Value::as_str).map(|id| peer(names, id));
        if server_events.try_send(ServerEvent { event: event.to_string(), arg, at, peer }).is_err() {
            tracing::debug!(%event, "server event dropped: nobody reads them");
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(id) = done_rx.recv() => {
                // A session ended (peer gone, connection stuck, closed by us).
                if !sessions.ended(&id) {
                    tracing::debug!(peer = %id.peer, serial = id.serial, "a session no longer current ended");
                }
            }
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Emit { channel, text }) => {
                    for s in sessions.values() {
                        s.send(SessionInput::SendText { channel: channel.clone(), text: text.clone() });
                    }
                }
                Some(Command::EmitTo { peer, channel, text }) => {
                    if let Some(s) = sessions.get(&peer) {
                        s.send(SessionInput::SendText { channel, text });
                    }
                }
                Some(Command::Binary { channel, data }) => {
                    for s in sessions.values() {
                        s.send(SessionInput::SendBinary { channel: channel.clone(), data: data.clone() });
                    }
                }
                Some(Command::Envelope { target, data }) => shared.link.send_envelope(&target, data),
                Some(Command::Rejoin) => shared.link.rejoin(),
                Some(Command::Server { event, arg }) => shared.link.emit(&event, arg),
                Some(Command::MediaChanged) => {
                    for s in sessions.values() {
                        s.send(SessionInput::LocalMediaChanged);
                    }
                }
            },
            ev = link_events.recv() => match ev {
                None => break,
                Some(LinkEvent::Joined { own_id, members }) => {
                    metrics.joins_total.with_label_values(&["ok"]).inc();
                    names = members.iter().cloned().collect();
                    let members = members.into_iter().map(|(id, name)| PeerInfo { id, name }).collect();
                    emit(ParticipantEvent::Joined { own_id, members });
                }
                Some(LinkEvent::Refused { reason }) => {
                    metrics.joins_total.with_label_values(&["refused"]).inc();
                    tracing::error!(%reason, "the signaling server refused the participant");
                    emit(ParticipantEvent::Refused { reason });
                    break;
                }
                Some(LinkEvent::Lost { reason }) => {
                    for s in sessions.drain() {
                        s.send(SessionInput::Close);
                    }
                    emit(ParticipantEvent::SignalingLost { reason });
                }
                Some(LinkEvent::LeftRoom) => {
                    // Out of the room: no peer stays connected (PROTOCOL.md §2 leave-room).
                    for s in sessions.drain() {
                        s.send(SessionInput::Close);
                    }
                }
                Some(LinkEvent::UserConnected { id, name }) => {
                    names.insert(id.clone(), name.clone());
                    hand_on(&names, crate::protocol::EV_USER_CONNECTED, serde_json::json!({"id": id, "name": name}));
                }
                Some(LinkEvent::UserDisconnected { id }) => {
                    tracing::debug!(peer = %id, "user-disconnected: the peer is gone from the room");
                    hand_on(&names, crate::protocol::EV_USER_DISCONNECTED, serde_json::json!({"id": id}));
                    if let Some(s) = sessions.get(&id) {
                        s.send(SessionInput::PeerGone);
                    }
                }
                Some(LinkEvent::PeerLeft { id }) => {
                    tracing::debug!(peer = %id, "#rtcio:peer-left hint");
                    if let Some(s) = sessions.get(&id) {
                        s.send(SessionInput::PeerLeftHint);
                    }
                }
                Some(LinkEvent::InitOffer { source }) => {
                    let p = peer(&names, &source);
                    let spawn = |id| Session::spawn(p, id, Role::Polite, shared.clone(), done_tx.clone());
                    if let Some(old) = sessions.insert(&source, spawn) {
                        tracing::debug!(peer = %source, "init-offer for a peer with a session: replacing it");
                        old.send(SessionInput::Close);
                    }
                }
                Some(LinkEvent::Message { source, data }) => {
                    if !sessions.contains(&source) {
                        // Only a description or a candidate may open a connection.
                        if data.get("description").is_none() && data.get("candidate").is_none() {
                            tracing::debug!(peer = %source, "envelope from a peer without a connection ignored");
                            continue;
                        }
                        let p = peer(&names, &source);
                        sessions.insert(&source, |id| Session::spawn(p, id, Role::Impolite, shared.clone(), done_tx.clone()));
                    }
                    if let Some(s) = sessions.get(&source) {
                        s.send(SessionInput::Signal(data));
                    }
                }
                Some(LinkEvent::Other { event, arg }) => {
                    tracing::debug!(%event, ?arg, "server event");
                    hand_on(&names, &event, arg);
                }
            },
        }
    }
    for s in sessions.drain() {
        s.send(SessionInput::Close);
    }
    // Give the sessions a moment to close their connections and report.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    drop(done_tx);
    while tokio::time::timeout_at(deadline, done_rx.recv()).await.ok().flatten().is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_sessions_late_end_leaves_its_successor() {
        let mut table = SessionTable::new();
        let mut ids = Vec::new();
        assert!(table.insert("b", |id| ids.push(id)).is_none());
        // `#rtcio:init-offer` again for the same peer (left and re-joined from its socket).
        assert!(table.insert("b", |id| ids.push(id)).is_some(), "the old session is handed back to be closed");
        let (old, new) = (ids[0].clone(), ids[1].clone());
        assert_eq!((old.peer.as_str(), new.peer.as_str()), ("b", "b"));
        assert_ne!(old.serial, new.serial);
        // The old session's end arrives after the new one started: nothing removed.
        assert!(!table.ended(&old));
        assert!(table.contains("b"));
        // The new one's own end removes it.
        assert!(table.ended(&new));
        assert!(!table.contains("b"));
        // A second report of the same end changes nothing.
        assert!(!table.ended(&new));
    }

    #[test]
    fn sessions_of_different_peers_are_independent() {
        let mut table = SessionTable::new();
        let mut ids = Vec::new();
        table.insert("b", |id| ids.push(id));
        table.insert("c", |id| ids.push(id));
        assert!(table.ended(&ids[0]));
        assert!(table.contains("c") && !table.contains("b"));
        assert_eq!(table.values().count(), 1);
        assert_eq!(table.drain().count(), 1);
        assert!(!table.ended(&ids[1]), "drained sessions are no longer current");
    }
}
