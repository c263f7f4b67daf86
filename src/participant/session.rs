//! One remote peer: the task that owns its webrtc-rs peer connection.
//!
//! A session is one tokio task that owns the peer connection and processes,
//! strictly in order, everything about the peer: its signaling envelopes,
//! peer-connection events (forwarded from the webrtc-rs handler, which runs
//! on the driver task and must not block), data-channel events, track events,
//! and commands from the room. Decisions come from the sans-IO
//! [`Negotiator`], [`ReceivedStreams`] and [`channels`] logic; this module
//! carries them out.
//!
//! webrtc 0.21 traps handled here (see STACK.md): we always answer with the
//! DTLS server role; the SCTP max-message-size is raised to 256 KiB; no
//! recvonly transceivers are pre-added; remote candidates wait for a remote
//! description; outgoing candidates get their `sdpMid` from the local SDP;
//! rollback is explicit; PLI from receivers reaches our local tracks through
//! a forwarding interceptor; removed remote tracks are detected from the
//! transceiver direction because webrtc-rs sends no track-ended event.

use super::sdp_hints::{START_BITRATE_KBPS, sent_kinds_of_stream, with_start_bitrate};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

use super::channels::{self, Channel, ChannelSpec};
use super::events::*;
use super::link::Link;
use super::negotiation::{Action, Candidate, ConnState, Input, Negotiator, Operation, Role};
use super::peer_connection::{NetConfig, build_peer_connection};
use super::session_events::Internal;
use super::streams::{MetadataDrop, PublishedStreams, ReceivedStreams, StreamAction};
use super::tracks::{forward_local_track, rand_ssrc, read_track};
use crate::media::kind::MediaKind;
use crate::metrics::ParticipantMetrics;

/// Received RTP packets buffered per track before the consumer must read them.
const TRACK_BUFFER_PACKETS: usize = 4096;
/// Outgoing channel messages kept while a channel is not open yet (the client's pre-open budget).
const PRE_OPEN_BUDGET: usize = 1024 * 1024;
const TICK: Duration = Duration::from_millis(250);
/// A connection that never got a remote description (e.g. created by a stray
/// candidate from a peer that is gone) is dropped after this long.
const NO_DESCRIPTION_TIMEOUT: Duration = Duration::from_secs(20);

/// What every session of one participant shares.
pub struct SessionShared {
    pub link: Arc<Link>,
    pub events: mpsc::UnboundedSender<ParticipantEvent>,
    pub channels: Vec<ChannelSpec>,
    pub net: NetConfig,
    pub local: Arc<parking_lot::RwLock<LocalMedia>>,
    pub metrics: ParticipantMetrics,
}

/// The streams this participant publishes.
#[derive(Default)]
pub struct LocalMedia {
    pub streams: Vec<LocalStream>,
    pub published: PublishedStreams,
}

/// Commands from the room to a session.
pub enum SessionInput {
    /// `data` of a `#rtcio:message` from this peer.
    Signal(Value),
    /// `#rtcio:peer-left`: the peer is probably leaving.
    PeerLeftHint,
    /// `user-disconnected`: the server no longer has the peer in the room.
    PeerGone,
    /// The set of published streams changed.
    LocalMediaChanged,
    SendText {
        channel: Channel,
        text: String,
    },
    SendBinary {
        channel: Channel,
        data: Bytes,
    },
    Close,
}

/// Which session: the peer plus a serial number unique within the
/// participant, so that a session replaced by a newer one for the same peer
/// (`#rtcio:init-offer` again) is told apart from its successor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId {
    pub peer: String,
    pub serial: u64,
}

/// The room's handle to a session.
pub struct Session {
    inputs: mpsc::UnboundedSender<SessionInput>,
}

impl Session {
    /// Start a session for `peer`; `done` receives `id` when it ends.
    pub fn spawn(
        peer: PeerInfo,
        id: SessionId,
        role: Role,
        shared: Arc<SessionShared>,
        done: mpsc::UnboundedSender<SessionId>,
    ) -> Session {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            match Driver::start(peer.clone(), role, shared.clone()).await {
                Ok(driver) => driver.run(rx).await,
                Err(e) => tracing::warn!(peer = %peer.id, error = %e, "cannot create a peer connection"),
            }
            let _ = done.send(id);
        });
        Session { inputs: tx }
    }

    pub fn send(&self, input: SessionInput) {
        let _ = self.inputs.send(input);
    }
}

struct Handler {
    internal: mpsc::UnboundedSender<Internal>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.internal.send(Internal::LocalCandidate(init));
        }
    }
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.internal.send(Internal::GatheringComplete);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.internal.send(Internal::Connection(state));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.internal.send(Internal::RemoteTrack(track));
    }
}

struct OpenChannel {
    spec: ChannelSpec,
    dc: Arc<dyn DataChannel>,
    open: bool,
    pending: VecDeque<Outgoing>,
    pending_bytes: usize,
}

enum Outgoing {
    Text(String),
    Binary(Bytes),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Text(t) => t.len(),
            Outgoing::Binary(b) => b.len(),
        }
    }
}

struct LocalSender {
    stream_id: String,
    sender: Arc<dyn RtpSender>,
    forward: tokio::task::JoinHandle<()>,
}

struct RemoteTrackEntry {
    stream_id: String,
    track_id: String,
    track: Arc<dyn TrackRemote>,
    cancel: tokio_util::sync::CancellationToken,
}

struct Driver {
    peer: PeerInfo,
    shared: Arc<SessionShared>,
    pc: Arc<dyn PeerConnection>,
    neg: Negotiator,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    channels: HashMap<u16, OpenChannel>,
    received: ReceivedStreams,
    announced: HashSet<String>,
    held_tracks: HashMap<String, Vec<ReceivedTrack>>,
    remote_tracks: Vec<RemoteTrackEntry>,
    /// The peer's latest description (which tracks each of its streams carries).
    remote_sdp: String,
    local_senders: HashMap<String, LocalSender>,
    peer_connected: bool,
    candidates_since_end: usize,
    state_label: &'static str,
    negotiation_started: Option<Instant>,
    counted: super::negotiation::Counters,
    /// Whether the connection is up (local tracks only send then: no SRTP keys before DTLS).
    connected: tokio::sync::watch::Sender<bool>,
    /// Set when the session should end after the current event.
    closing: Option<&'static str>,
}

impl Driver {
    async fn start(peer: PeerInfo, role: Role, shared: Arc<SessionShared>) -> Result<Driver, webrtc::error::Error> {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let pc = build_peer_connection(&shared.net, Handler { internal: internal_tx.clone() }).await?;
        let mut driver = Driver {
            peer,
            shared,
            pc,
            neg: Negotiator::new(role),
            internal_tx,
            internal_rx,
            channels: HashMap::new(),
            received: ReceivedStreams::new(),
            announced: HashSet::new(),
            held_tracks: HashMap::new(),
            remote_tracks: Vec::new(),
            remote_sdp: String::new(),
            local_senders: HashMap::new(),
            peer_connected: false,
            candidates_since_end: 0,
            state_label: "new",
            negotiation_started: None,
            counted: Default::default(),
            connected: tokio::sync::watch::channel(false).0,
            closing: None,
        };
        if let Err(e) = driver.create_channels().await {
            let _ = driver.pc.close().await;
            return Err(e);
        }
        driver.shared.metrics.peers.with_label_values(&["new"]).inc();
        if role == Role::Polite {
            // The existing member replays its streams, then offers.
            driver.sync_local_tracks().await;
            driver.feed(Input::NegotiationNeeded).await;
        }
        tracing::debug!(peer = %driver.peer.id, role = role.as_str(), "peer session started");
        Ok(driver)
    }

    async fn create_channels(&mut self) -> Result<(), webrtc::error::Error> {
        for spec in self.shared.channels.clone() {
            let init = RTCDataChannelInit { ordered: true, negotiated: Some(spec.id), ..Default::default() };
            let dc = self.pc.create_data_channel(&spec.label, Some(init)).await?;
            let (id, tx, reader) = (spec.id, self.internal_tx.clone(), dc.clone());
            tokio::spawn(async move {
                while let Some(event) = reader.poll().await {
                    if tx.send(Internal::Channel { id, event }).is_err() {
                        break;
                    }
                }
            });
            self.channels
                .insert(spec.id, OpenChannel { spec, dc, open: false, pending: VecDeque::new(), pending_bytes: 0 });
        }
        Ok(())
    }

    async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<SessionInput>) {
        let started = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            if let Some(reason) = self.closing {
                break reason.to_string();
            }
            if self.neg.is_closed() {
                break "closed".to_string();
            }
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(SessionInput::Close) | None => break "left".to_string(),
                    Some(input) => self.on_input(input).await,
                },
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal).await,
                _ = tick.tick() => {
                    if !self.neg.has_remote_description() && started.elapsed() > NO_DESCRIPTION_TIMEOUT {
                        break "no answer from the peer".to_string();
                    }
                    self.feed(Input::Tick).await;
                    let actions = self.received.tick(Instant::now());
                    self.on_stream_actions(actions);
                }
            }
        };
        self.finish(&reason).await;
    }

    async fn finish(mut self, reason: &str) {
        for entry in self.remote_tracks.drain(..) {
            entry.cancel.cancel();
        }
        for (_, s) in self.local_senders.drain() {
            s.forward.abort();
        }
        let streams: Vec<String> = self.announced.drain().collect();
        for stream_id in streams {
            self.shared.metrics.streams_active.dec();
            self.emit(ParticipantEvent::StreamEnded {
                peer: self.peer.clone(),
                stream_id,
                reason: StreamEnd::PeerLeft,
            });
        }
        let _ = self.pc.close().await;
        self.shared.metrics.peers.with_label_values(&[self.state_label]).dec();
        if self.peer_connected {
            self.emit(ParticipantEvent::PeerDisconnected { peer: self.peer.clone(), reason: reason.to_string() });
        }
        tracing::debug!(peer = %self.peer.id, reason, "peer session ended");
    }

    fn emit(&self, event: ParticipantEvent) {
        let _ = self.shared.events.send(event);
    }

    async fn on_input(&mut self, input: SessionInput) {
        match input {
            SessionInput::Signal(data) => self.on_signal(data).await,
            SessionInput::PeerLeftHint => self.feed(Input::PeerLeftHint).await,
            SessionInput::PeerGone => self.feed(Input::PeerGone).await,
            SessionInput::LocalMediaChanged => {
                if self.sync_local_tracks().await {
                    self.feed(Input::NegotiationNeeded).await;
                }
            }
            SessionInput::SendText { channel, text } => self.send_on(&channel, Outgoing::Text(text)).await,
            SessionInput::SendBinary { channel, data } => self.send_on(&channel, Outgoing::Binary(data)).await,
            SessionInput::Close => {}
        }
    }

    /// A `#rtcio:message` envelope's `data` from the peer.
    async fn on_signal(&mut self, data: Value) {
        if let Some(desc) = data.get("description") {
            let sdp = desc.get("sdp").and_then(|s| s.as_str()).unwrap_or_default().to_string();
            match desc.get("type").and_then(|t| t.as_str()) {
                Some("offer") => self.feed(Input::RemoteOffer(sdp)).await,
                Some("answer") => self.feed(Input::RemoteAnswer(sdp)).await,
                other => tracing::debug!(peer = %self.peer.id, kind = ?other, "ignoring description"),
            }
        } else if let Some(c) = data.get("candidate") {
            match serde_json::from_value::<Candidate>(c.clone()) {
                Ok(c) => self.feed(Input::RemoteCandidate(c)).await,
                Err(e) => tracing::debug!(peer = %self.peer.id, error = %e, "malformed candidate"),
            }
        } else if let Some(mid) = data.get("mid").and_then(|m| m.as_str()) {
            match data.get("events") {
                Some(events) => match self.received.metadata(mid, events) {
                    Ok(actions) => self.on_stream_actions(actions),
                    Err(reason) => {
                        self.shared.metrics.metadata_dropped_total.with_label_values(&[reason.as_str()]).inc();
                        tracing::debug!(peer = %self.peer.id, stream = mid, reason = reason.as_str(), "metadata dropped");
                    }
                },
                None => {
                    // A request for one of our streams: answer if we publish it, else stay silent.
                    let answer = self.shared.local.read().published.answer(mid);
                    match answer {
                        Some(answer) => self.shared.link.send_envelope(&self.peer.id, answer),
                        None => {
                            let label = MetadataDrop::UnknownStream.as_str();
                            self.shared.metrics.metadata_dropped_total.with_label_values(&[label]).inc();
                        }
                    }
                }
            }
        } else {
            tracing::debug!(peer = %self.peer.id, "unrecognised envelope");
        }
    }

    /// Feed the negotiator and carry out its actions (and the inputs they produce) in order.
    async fn feed(&mut self, input: Input) {
        self.feed_inner(input).await;
        self.sync_counters();
    }

    /// Publish the negotiator's counters as metrics (by increments).
    fn sync_counters(&mut self) {
        let now = self.neg.counters;
        let before = std::mem::replace(&mut self.counted, now);
        let m = &self.shared.metrics;
        let role = self.neg.role().as_str();
        m.negotiations_total.with_label_values(&[role, "ignored"]).inc_by(now.ignored_offers - before.ignored_offers);
        m.negotiations_total
            .with_label_values(&[role, "stale_answer"])
            .inc_by(now.stale_answers - before.stale_answers);
        m.mdns_candidates_dropped_total.inc_by(now.mdns_candidates_dropped - before.mdns_candidates_dropped);
    }

    async fn feed_inner(&mut self, input: Input) {
        let mut queue: VecDeque<Action> = self.neg.handle(input, Instant::now()).into();
        while let Some(action) = queue.pop_front() {
            if let Some(next) = self.perform(action).await {
                let more = self.neg.handle(next, Instant::now());
                // Results are processed before anything that was queued after them.
                for a in more.into_iter().rev() {
                    queue.push_front(a);
                }
            }
        }
    }

    async fn perform(&mut self, action: Action) -> Option<Input> {
        let role = self.neg.role().as_str();
        match action {
            Action::MakeOffer { ice_restart } => {
                self.negotiation_started = Some(Instant::now());
                if ice_restart {
                    self.shared.metrics.ice_restarts_total.inc();
                    tracing::info!(peer = %self.peer.id, "restarting ICE");
                }
                let result = async {
                    let offer = self.pc.create_offer(Some(RTCOfferOptions { ice_restart })).await?;
                    self.pc.set_local_description(offer.clone()).await?;
                    Ok::<_, webrtc::error::Error>(offer.sdp)
                }
                .await;
                Some(match result {
                    Ok(sdp) => Input::OfferApplied(with_start_bitrate(&sdp, START_BITRATE_KBPS)),
                    Err(e) => self.failed(Operation::MakeOffer, e),
                })
            }
            Action::AcceptOffer { sdp, rollback_first } => {
                self.remote_sdp = sdp.clone();
                if rollback_first {
                    self.shared.metrics.negotiations_total.with_label_values(&[role, "rolled_back"]).inc();
                }
                let result = async {
                    if rollback_first {
                        self.pc.set_local_description(RTCSessionDescription::rollback(None)?).await?;
                    }
                    self.pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                    let answer = self.pc.create_answer(None).await?;
                    self.pc.set_local_description(answer.clone()).await?;
                    Ok::<_, webrtc::error::Error>(answer.sdp)
                }
                .await;
                Some(match result {
                    Ok(sdp) => {
                        self.shared.metrics.negotiations_total.with_label_values(&[role, "ok"]).inc();
                        self.after_remote_description().await;
                        Input::AnswerApplied(with_start_bitrate(&sdp, START_BITRATE_KBPS))
                    }
                    Err(e) => self.failed(Operation::AcceptOffer, e),
                })
            }
            Action::AcceptAnswer { sdp } => {
                self.remote_sdp = sdp.clone();
                let result = async { self.pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await }.await;
                Some(match result {
                    Ok(()) => {
                        self.shared.metrics.negotiations_total.with_label_values(&[role, "ok"]).inc();
                        if let Some(t) = self.negotiation_started.take() {
                            tracing::debug!(peer = %self.peer.id, took = ?t.elapsed(), "negotiation complete");
                        }
                        self.after_remote_description().await;
                        Input::RemoteAnswerApplied
                    }
                    Err(e) => self.failed(Operation::AcceptAnswer, e),
                })
            }
            Action::SendOffer(sdp) => {
                self.shared.link.send_envelope(&self.peer.id, json!({"description": {"type": "offer", "sdp": sdp}}));
                None
            }
            Action::SendAnswer(sdp) => {
                self.shared.link.send_envelope(&self.peer.id, json!({"description": {"type": "answer", "sdp": sdp}}));
                // The impolite side replays its own streams only now (PROTOCOL.md §4).
                if self.sync_local_tracks().await {
                    return Some(Input::NegotiationNeeded);
                }
                None
            }
            Action::AddCandidate(c) => {
                let init = RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                    username_fragment: c.username_fragment,
                    url: None,
                };
                if let Err(e) = self.pc.add_ice_candidate(init).await {
                    tracing::debug!(peer = %self.peer.id, error = %e, "remote candidate not added");
                }
                None
            }
            Action::Close(reason) => {
                tracing::info!(peer = %self.peer.id, reason = reason.as_str(), "closing peer connection");
                // The session ends after this event; finish() reports the
                // streams ended first, then closes the connection.
                self.closing = Some(reason.as_str());
                None
            }
        }
    }

    fn failed(&self, op: Operation, e: webrtc::error::Error) -> Input {
        let role = self.neg.role().as_str();
        self.shared.metrics.negotiations_total.with_label_values(&[role, "failed"]).inc();
        tracing::warn!(peer = %self.peer.id, ?op, error = %e, "negotiation step failed");
        Input::OperationFailed(op, e.to_string())
    }

    /// After a remote description: count negotiator decisions and notice
    /// remote tracks the peer stopped sending (webrtc-rs sends no track-ended event).
    async fn after_remote_description(&mut self) {
        let mut active = HashSet::new();
        for t in self.pc.get_transceivers().await {
            let direction = t.current_direction().await.unwrap_or(RTCRtpTransceiverDirection::Inactive);
            if matches!(direction, RTCRtpTransceiverDirection::Recvonly | RTCRtpTransceiverDirection::Sendrecv)
                && let Ok(Some(receiver)) = t.receiver().await
            {
                active.insert(Arc::as_ptr(receiver.track()) as *const () as usize);
            }
        }
        let key = |t: &Arc<dyn TrackRemote>| Arc::as_ptr(t) as *const () as usize;
        let (ended, kept): (Vec<_>, Vec<_>) =
            self.remote_tracks.drain(..).partition(|e| !active.contains(&key(&e.track)));
        self.remote_tracks = kept;
        for entry in ended {
            tracing::debug!(peer = %self.peer.id, stream = %entry.stream_id, track = %entry.track_id, "remote track went inactive");
            entry.cancel.cancel();
            tokio::spawn(super::tracks::watch_for_reuse(entry.track, self.internal_tx.clone()));
        }
    }

    async fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::LocalCandidate(mut init) => {
                if init.sdp_mid.as_deref().is_none_or(str::is_empty) {
                    init.sdp_mid = self.first_local_mid().await;
                }
                self.candidates_since_end += 1;
                let candidate = json!({
                    "candidate": init.candidate,
                    "sdpMid": init.sdp_mid,
                    "sdpMLineIndex": init.sdp_mline_index.unwrap_or(0),
                    "usernameFragment": init.username_fragment,
                });
                self.shared.link.send_envelope(&self.peer.id, json!({"candidate": candidate}));
            }
            Internal::GatheringComplete => {
                // End of candidates, once per gathering round that produced any.
                if self.candidates_since_end > 0 {
                    self.candidates_since_end = 0;
                    let mid = self.first_local_mid().await;
                    self.shared.link.send_envelope(
                        &self.peer.id,
                        json!({"candidate": {"candidate": "", "sdpMid": mid, "sdpMLineIndex": 0}}),
                    );
                }
            }
            Internal::Connection(state) => {
                let (label, conn) = match state {
                    RTCPeerConnectionState::New => ("new", ConnState::New),
                    RTCPeerConnectionState::Connecting => ("connecting", ConnState::Connecting),
                    RTCPeerConnectionState::Connected => ("connected", ConnState::Connected),
                    RTCPeerConnectionState::Disconnected => ("disconnected", ConnState::Disconnected),
                    RTCPeerConnectionState::Failed => ("failed", ConnState::Failed),
                    RTCPeerConnectionState::Closed => ("closed", ConnState::Closed),
                    _ => return,
                };
                tracing::debug!(peer = %self.peer.id, state = label, "peer connection state");
                self.connected.send_replace(conn == ConnState::Connected);
                let peers = &self.shared.metrics.peers;
                peers.with_label_values(&[self.state_label]).dec();
                if label != "closed" {
                    peers.with_label_values(&[label]).inc();
                    self.state_label = label;
                } else {
                    // finish() decrements the current label once more; keep the books balanced.
                    peers.with_label_values(&["new"]).inc();
                    self.state_label = "new";
                }
                self.feed(Input::ConnectionState(conn)).await;
            }
            Internal::RemoteTrack(track) => self.on_remote_track(track).await,
            Internal::TrackReady(track) => self.on_track_ready(*track),
            Internal::TrackGone { stream_id, track_id } => {
                self.remote_tracks.retain(|e| !(e.stream_id == stream_id && e.track_id == track_id));
                let actions = self.received.track_ended(&stream_id, &track_id);
                self.on_stream_actions(actions);
            }
            Internal::Channel { id, event } => self.on_channel_event(id, event).await,
        }
    }

    async fn first_local_mid(&self) -> Option<String> {
        for t in self.pc.get_transceivers().await {
            if let Ok(Some(mid)) = t.mid().await {
                return Some(mid);
            }
        }
        // Data-channel-only sessions: the application m-line is the first.
        let sdp = self.pc.local_description().await?.sdp;
        sdp.lines().find_map(|l| l.strip_prefix("a=mid:")).map(|m| m.trim().to_string())
    }

    async fn on_channel_event(&mut self, id: u16, event: DataChannelEvent) {
        let Some(ch) = self.channels.get_mut(&id) else { return };
        match event {
            DataChannelEvent::OnOpen => {
                ch.open = true;
                while let Some(msg) = ch.pending.pop_front() {
                    send_now(&ch.dc, msg).await;
                }
                ch.pending_bytes = 0;
                if ch.spec.channel == Channel::Ctrl && !self.peer_connected {
                    self.peer_connected = true;
                    tracing::info!(peer = %self.peer.id, name = %self.peer.name, "peer connected");
                    self.emit(ParticipantEvent::PeerConnected(self.peer.clone()));
                }
            }
            DataChannelEvent::OnMessage(msg) => {
                let channel = ch.spec.channel.clone();
                let kind = if channel == Channel::Ctrl { "ctrl" } else { "broadcast" };
                let m = &self.shared.metrics;
                let at = SystemTime::now();
                if msg.is_string {
                    m.channel_messages_total.with_label_values(&[kind, "text"]).inc();
                    let parsed = std::str::from_utf8(&msg.data)
                        .map_err(|_| channels::DropReason::InvalidJson)
                        .and_then(channels::parse_text);
                    match parsed {
                        Ok(em) => self.emit(ParticipantEvent::Message(ChannelMessage {
                            peer: self.peer.clone(),
                            channel,
                            event: em.event,
                            args: em.args,
                            at,
                        })),
                        Err(reason) => {
                            m.channel_dropped_total.with_label_values(&[reason.as_str()]).inc();
                            tracing::debug!(peer = %self.peer.id, channel = channel.name(), reason = reason.as_str(), "message dropped");
                        }
                    }
                } else {
                    m.channel_messages_total.with_label_values(&[kind, "binary"]).inc();
                    match channels::check_binary(msg.data.len()) {
                        Ok(()) => self.emit(ParticipantEvent::Binary {
                            peer: self.peer.clone(),
                            channel,
                            data: msg.data.freeze(),
                            at,
                        }),
                        Err(reason) => m.channel_dropped_total.with_label_values(&[reason.as_str()]).inc(),
                    }
                }
            }
            DataChannelEvent::OnClose => {
                ch.open = false;
                if ch.spec.channel == Channel::Ctrl && self.peer_connected {
                    // The peer closed its connection (tab closed, left): it is gone.
                    tracing::debug!(peer = %self.peer.id, "ctrl channel closed by the peer");
                    self.closing = Some("peer closed the connection");
                }
            }
            _ => {}
        }
    }

    async fn send_on(&mut self, channel: &Channel, msg: Outgoing) {
        let Some(ch) = self.channels.values_mut().find(|c| &c.spec.channel == channel) else {
            tracing::debug!(peer = %self.peer.id, channel = channel.name(), "no such channel configured");
            return;
        };
        if ch.open {
            send_now(&ch.dc, msg).await;
        } else if ch.pending_bytes + msg.len() <= PRE_OPEN_BUDGET {
            ch.pending_bytes += msg.len();
            ch.pending.push_back(msg);
        } else {
            tracing::debug!(peer = %self.peer.id, channel = channel.name(), "pre-open budget exhausted; message dropped");
        }
    }

    async fn on_remote_track(&mut self, track: Arc<dyn TrackRemote>) {
        // Renegotiation re-announces known tracks: only new ones matter.
        if self.remote_tracks.iter().any(|e| Arc::ptr_eq(&e.track, &track)) {
            return;
        }
        let stream_id = track.stream_id().await;
        let track_id = track.track_id().await;
        let kind = match track.kind().await {
            RtpCodecKind::Audio => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let Some(&ssrc) = track.ssrcs().await.first() else { return };
        let Some(codec) = track.codec(ssrc).await else { return };
        let cancel = tokio_util::sync::CancellationToken::new();
        self.remote_tracks.push(RemoteTrackEntry {
            stream_id: stream_id.clone(),
            track_id: track_id.clone(),
            track: track.clone(),
            cancel: cancel.clone(),
        });
        let actions = self.received.track_added(&stream_id, &track_id, Instant::now());
        tracing::info!(peer = %self.peer.id, stream = %stream_id, track = %track_id, kind = kind.as_str(), codec = %codec.mime_type, "receiving track");
        // The reader task learns the payload type from the first packet, then hands the track over.
        let (packets_tx, packets_rx) = mpsc::channel(TRACK_BUFFER_PACKETS);
        let (pli_tx, pli_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = tokio::sync::watch::channel(SenderReports::default());
        let info = ReceivedTrack {
            peer: self.peer.clone(),
            stream_id,
            track_id,
            kind,
            codec: CodecInfo {
                mime_type: codec.mime_type.clone(),
                clock_rate: codec.clock_rate,
                channels: codec.channels,
                fmtp: codec.sdp_fmtp_line.clone(),
                payload_type: 0,
            },
            ssrc,
            packets: packets_rx,
            reports: reports_rx,
            keyframes: KeyframeRequester { request: pli_tx },
        };
        tokio::spawn(read_track(
            track,
            Some(info),
            (packets_tx, reports_tx),
            pli_rx,
            cancel,
            self.internal_tx.clone(),
            self.shared.metrics.clone(),
        ));
        self.on_stream_actions(actions);
    }

    fn on_track_ready(&mut self, track: ReceivedTrack) {
        if self.announced.contains(&track.stream_id) {
            self.emit(ParticipantEvent::Track(track));
        } else {
            self.held_tracks.entry(track.stream_id.clone()).or_default().push(track);
        }
    }

    fn on_stream_actions(&mut self, actions: Vec<StreamAction>) {
        for action in actions {
            tracing::trace!(peer = %self.peer.id, ?action, "stream action");
            match action {
                StreamAction::RequestMetadata(stream_id) => {
                    self.shared.link.send_envelope(&self.peer.id, json!({"mid": stream_id}));
                }
                StreamAction::Announce { stream_id, events } => {
                    if events.is_none() {
                        tracing::info!(peer = %self.peer.id, stream = %stream_id, "no metadata for stream; recording it as unknown");
                    }
                    self.announced.insert(stream_id.clone());
                    self.shared.metrics.streams_active.inc();
                    let kinds = sent_kinds_of_stream(&self.remote_sdp, &stream_id)
                        .iter()
                        .map(|k| if k == "audio" { MediaKind::Audio } else { MediaKind::Video })
                        .collect();
                    self.emit(ParticipantEvent::StreamStarted {
                        peer: self.peer.clone(),
                        stream_id: stream_id.clone(),
                        events,
                        kinds,
                    });
                    for track in self.held_tracks.remove(&stream_id).unwrap_or_default() {
                        self.emit(ParticipantEvent::Track(track));
                    }
                }
                StreamAction::LateMetadata { stream_id, events } => {
                    self.emit(ParticipantEvent::StreamMetadata { peer: self.peer.clone(), stream_id, events });
                }
                StreamAction::Ended(stream_id) => {
                    self.held_tracks.remove(&stream_id);
                    if self.announced.remove(&stream_id) {
                        self.shared.metrics.streams_active.dec();
                        self.emit(ParticipantEvent::StreamEnded {
                            peer: self.peer.clone(),
                            stream_id,
                            reason: StreamEnd::Unpublished,
                        });
                    }
                }
            }
        }
    }

    /// Make our senders match the published streams. Returns whether anything changed.
    async fn sync_local_tracks(&mut self) -> bool {
        let streams = self.shared.local.read().streams.clone();
        let mut changed = false;
        let wanted: HashSet<String> = streams
            .iter()
            .flat_map(|s| s.tracks.iter().map(move |t| format!("{}/{}", s.stream_id, t.track_id)))
            .collect();
        let gone: Vec<String> = self.local_senders.keys().filter(|k| !wanted.contains(*k)).cloned().collect();
        for key in gone {
            if let Some(s) = self.local_senders.remove(&key) {
                s.forward.abort();
                if let Err(e) = self.pc.remove_track(&s.sender).await {
                    tracing::debug!(peer = %self.peer.id, error = %e, stream = %s.stream_id, "remove_track failed");
                }
                changed = true;
            }
        }
        for stream in &streams {
            for track in &stream.tracks {
                let key = format!("{}/{}", stream.stream_id, track.track_id);
                if self.local_senders.contains_key(&key) {
                    continue;
                }
                match self.add_local_track(&stream.stream_id, track).await {
                    Ok(sender) => {
                        self.local_senders.insert(key, sender);
                        changed = true;
                    }
                    Err(e) => tracing::warn!(peer = %self.peer.id, error = %e, "cannot add local track"),
                }
            }
        }
        changed
    }

    async fn add_local_track(&self, stream_id: &str, local: &LocalTrack) -> Result<LocalSender, webrtc::error::Error> {
        let ssrc: u32 = rand_ssrc();
        let codec = RTCRtpCodec {
            mime_type: local.mime_type.clone(),
            clock_rate: local.clock_rate,
            channels: local.channels,
            sdp_fmtp_line: local.fmtp.clone(),
            rtcp_feedback: vec![],
        };
        let kind = match local.kind {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video => RtpCodecKind::Video,
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream_id.to_string(),
            local.track_id.clone(),
            local.track_id.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec,
                ..Default::default()
            }],
        )));
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                track.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![stream_id.to_string()],
                    send_encodings: vec![],
                }),
            )
            .await?;
        let sender = transceiver
            .sender()
            .await?
            .ok_or_else(|| webrtc::error::Error::Other("transceiver without sender".into()))?;
        let forward = tokio::spawn(forward_local_track(
            track,
            sender.clone(),
            local.mime_type.clone(),
            ssrc,
            local.packets.subscribe(),
            local.keyframe_requests.clone(),
            self.connected.subscribe(),
        ));
        Ok(LocalSender { stream_id: stream_id.to_string(), sender, forward })
    }
}

async fn send_now(dc: &Arc<dyn DataChannel>, msg: Outgoing) {
    let result = match msg {
        Outgoing::Text(t) => dc.send_text(&t).await,
        Outgoing::Binary(b) => dc.send(BytesMut::from(&b[..])).await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "data channel send failed");
    }
}
