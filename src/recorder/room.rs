//! Everything recorded from one room: a [`StreamHandle`] per received
//! stream (its file, and the relay if this stream is the one relayed), the
//! room's `chat.jsonl`, and its timeline `room.json` with the recordings'
//! `.vtt` sidecars ([`super::room_timeline`]). Driven by the participant's events; whoever
//! owns the participant (the `join`/`relay` commands, the auto-recorder of
//! `serve`) passes every event to [`RoomRecorder::on_event`], every server
//! event to [`RoomRecorder::on_server_event`], every manifest the stream
//! tasks write ([`RoomRecorder::next_file_update`]) to
//! [`RoomRecorder::on_file_update`], and calls
//! [`RoomRecorder::flush_timeline`] now and then (it writes at most once per
//! [`super::timeline::DEBOUNCE`], and at the end of the run).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::chat_log::{ChatLog, Origin};
use super::composite::{CompositeCommand, CompositeContext, CompositeHandle, split_track};
use super::end_reason::EndReason;
use super::file_events::FileUpdate;
use super::naming;
use super::room_timeline::RoomTimeline;
use super::status::{RoomStatus, StreamStatus};
use super::stream::{OutputReport, OutputSettings, StreamCommand, StreamHandle, Target};
use super::stream_context::StreamContext;
use super::timeline::EventKind;
use crate::participant::channels::Channel;
use crate::participant::events::{MediaKind, ParticipantEvent, PeerInfo, StreamEnd};
use crate::participant::room::ServerEvent;
use crate::participant::streams::StreamEvents;
use crate::composite::layout::LayoutKind;
use crate::config::OutputMode;

/// Which stream of a room to relay, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySpec {
    pub url: String,
    /// Only this peer (socket id or display name).
    pub peer: Option<String>,
    /// Only a stream emitted under this event. Default: the first stream with
    /// video that is not a screen share.
    pub event: Option<String>,
    pub template: Option<String>,
    /// `streams` (the stream chosen above) or `composite` (the whole room; `peer` and `event` unused).
    pub mode: OutputMode,
    pub layout: LayoutKind,
}

/// Recording a room: where, how, why, and how much at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// Every stream goes into `<dir>/<room>/`.
    pub dir: PathBuf,
    /// Override the template choice by codec (or the composite's template).
    pub template: Option<String>,
    /// One file per stream, a composite of the room, or both.
    pub mode: OutputMode,
    pub layout: LayoutKind,
    /// Who asked: `rule` (configuration) or `api`.
    pub by: String,
    /// Stop recording the room once its files hold this many bytes (0: no cap).
    pub max_bytes: u64,
    /// Stop recording the room after this long (0: no cap).
    pub max_duration_secs: u64,
}

/// What to do with one room.
#[derive(Debug, Clone, Default)]
pub struct RoomPlan {
    /// The rtc.io server when it is not our own.
    pub server: Option<String>,
    pub room: String,
    pub recording: Option<RecordSpec>,
    pub relay: Option<RelaySpec>,
    /// Log the ctrl channel and these broadcast channels to `chat.jsonl` (while recording).
    pub log_channels: Vec<String>,
}

struct StreamEntry {
    handle: StreamHandle,
    peer: PeerInfo,
    events: Option<StreamEvents>,
    has_video: bool,
}

pub struct RoomRecorder {
    plan: RoomPlan,
    settings: OutputSettings,
    streams: HashMap<(String, String), StreamEntry>,
    /// The stream currently relayed.
    relayed: Option<(String, String)>,
    /// The room's composites: the recording's, the relay's.
    composite_recording: Option<CompositeHandle>,
    composite_relay: Option<CompositeHandle>,
    /// Composites being finalised in the background.
    composites_ending: Vec<tokio::task::JoinHandle<Option<OutputReport>>>,
    chat: Option<ChatLog>,
    chat_failed: bool,
    /// Streams being finalised in the background.
    ending: Vec<tokio::task::JoinHandle<Vec<OutputReport>>>,
    reports: Vec<OutputReport>,
    status: RoomStatus,
    /// Since when the room is being recorded.
    recording_since: Option<std::time::Instant>,
    /// `room.json` of this run and the `.vtt` sidecars.
    timeline: RoomTimeline,
}

impl RoomRecorder {
    pub fn new(plan: RoomPlan, settings: OutputSettings) -> RoomRecorder {
        let now = SystemTime::now();
        let mut timeline = RoomTimeline::new(&plan.room, plan.server.clone(), now);
        if let Some(spec) = &plan.recording {
            timeline.push(now, EventKind::RecordingStarted { by: spec.by.clone() });
        }
        if let Some(relay) = &plan.relay {
            timeline.push(now, relay_started(relay));
        }
        let mut recorder = RoomRecorder {
            recording_since: plan.recording.as_ref().map(|_| std::time::Instant::now()),
            timeline,
            plan,
            status: RoomStatus::default(),
            settings,
            streams: HashMap::new(),
            relayed: None,
            composite_recording: None,
            composite_relay: None,
            composites_ending: Vec::new(),
            chat: None,
            chat_failed: false,
            ending: Vec::new(),
            reports: Vec::new(),
        };
        recorder.open_timeline();
        recorder.update_composites(EndReason::Stopped);
        recorder
    }

    pub fn room_dir(&self) -> Option<PathBuf> {
        self.plan.recording.as_ref().map(|r| naming::room_dir(&r.dir, &self.plan.room))
    }

    /// The per-stream recording target (none when only the composite is recorded).
    fn record_target(&self) -> Option<Target> {
        let spec = self.plan.recording.as_ref().filter(|r| r.mode.streams())?;
        Some(Target::Record { room_dir: naming::room_dir(&spec.dir, &self.plan.room), template: spec.template.clone() })
    }

    /// What the streams are doing (shared; updated by the stream tasks).
    pub fn status(&self) -> RoomStatus {
        self.status.clone()
    }

    pub fn plan(&self) -> &RoomPlan {
        &self.plan
    }

    pub fn is_recording(&self) -> bool {
        self.plan.recording.is_some()
    }

    /// Start, change or stop recording every stream of the room; files that
    /// end because of it get `reason` in their manifest.
    pub fn set_recording(&mut self, recording: Option<RecordSpec>, reason: EndReason) {
        if recording == self.plan.recording {
            return;
        }
        let now = SystemTime::now();
        match (&self.plan.recording, &recording) {
            (None, Some(new)) => self.timeline.push(now, EventKind::RecordingStarted { by: new.by.clone() }),
            (Some(old), None) => self.timeline.push(now, EventKind::RecordingStopped { by: old.by.clone(), reason }),
            // Taken over (a rule's recording started again over the API).
            (Some(old), Some(new)) if old.by != new.by => {
                self.timeline.push(now, EventKind::RecordingStarted { by: new.by.clone() })
            }
            _ => {}
        }
        let old = self.record_target();
        self.plan.recording = recording;
        let new = self.record_target();
        self.open_timeline();
        self.update_composites(reason);
        if old != new {
            for entry in self.streams.values() {
                if let Some(old) = &old {
                    entry.handle.send(StreamCommand::RemoveTarget(old.clone(), reason));
                }
                if let Some(new) = &new {
                    entry.handle.send(StreamCommand::AddTarget(new.clone()));
                }
            }
        }
        match (&old, &new) {
            (Some(_), None) => {
                self.recording_since = None;
                if let Some(chat) = self.chat.take()
                    && let Err(e) = chat.sync()
                {
                    tracing::warn!(error = %e, "cannot sync chat.jsonl");
                }
                self.chat_failed = false;
            }
            (None, Some(_)) => {
                self.recording_since = Some(std::time::Instant::now());
                self.status.reset_recorded_bytes();
            }
            _ => {}
        }
    }

    /// The cap the recording reached, if any: `size-cap` or `time-cap`.
    pub fn cap_reached(&self) -> Option<EndReason> {
        let spec = self.plan.recording.as_ref()?;
        if spec.max_bytes > 0 && self.status.recorded_bytes() >= spec.max_bytes {
            return Some(EndReason::SizeCap);
        }
        let elapsed = self.recording_since?.elapsed().as_secs();
        (spec.max_duration_secs > 0 && elapsed >= spec.max_duration_secs).then_some(EndReason::TimeCap)
    }

    /// Start, change or stop the room's relay.
    pub fn set_relay(&mut self, relay: Option<RelaySpec>, reason: EndReason) {
        if relay == self.plan.relay {
            return;
        }
        let now = SystemTime::now();
        if let Some(old) = &self.plan.relay {
            self.timeline.push(now, EventKind::RelayStopped { url: crate::redact::endpoint(&old.url), reason });
        }
        if let Some(new) = &relay {
            self.timeline.push(now, relay_started(new));
        }
        if let (Some(old), Some(key)) = (self.plan.relay.take(), self.relayed.take())
            && let Some(entry) = self.streams.get(&key)
        {
            let target = Target::Relay { url: old.url, template: old.template };
            entry.handle.send(StreamCommand::RemoveTarget(target, reason));
        }
        self.plan.relay = relay;
        self.update_composites(reason);
        self.pick_relay();
    }

    /// The composite targets the plan asks for: the recording's, the relay's.
    fn composite_targets(&self) -> (Option<(Target, LayoutKind)>, Option<(Target, LayoutKind)>) {
        let record = self.plan.recording.as_ref().filter(|r| r.mode.composite()).map(|r| {
            let target = Target::Record { room_dir: naming::room_dir(&r.dir, &self.plan.room), template: r.template.clone() };
            (target, r.layout)
        });
        let relay = self.plan.relay.as_ref().filter(|r| r.mode.composite()).map(|r| {
            (Target::Relay { url: r.url.clone(), template: r.template.clone() }, r.layout)
        });
        (record, relay)
    }

    /// Start and stop composites to match the plan; one that ends gets `reason`.
    fn update_composites(&mut self, reason: EndReason) {
        let (record, relay) = self.composite_targets();
        for (slot, wanted) in [(0, record), (1, relay)] {
            let current = if slot == 0 { &mut self.composite_recording } else { &mut self.composite_relay };
            let same = match (&*current, &wanted) {
                (Some(handle), Some((target, layout))) => &handle.target == target && handle.layout == *layout,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(old) = current.take() {
                self.composites_ending.push(tokio::spawn(old.stop(reason)));
            }
            if let Some((target, layout)) = wanted {
                let context = CompositeContext {
                    server: self.plan.server.clone(),
                    room: self.plan.room.clone(),
                    layout,
                    files: self.timeline.file_events(),
                };
                *current = Some(CompositeHandle::start(context, target, self.settings.clone()));
            }
        }
    }

    fn composites(&self) -> impl Iterator<Item = &CompositeHandle> {
        self.composite_recording.iter().chain(self.composite_relay.iter())
    }

    /// Whether the streams' own tasks want their tracks (a recording or a relay per stream).
    fn streams_wanted(&self) -> bool {
        self.plan.recording.as_ref().is_some_and(|r| r.mode.streams())
            || self.plan.relay.as_ref().is_some_and(|r| r.mode.streams())
    }

    pub fn on_event(&mut self, event: ParticipantEvent) {
        let noted = match &event {
            ParticipantEvent::Message(m) => self.logs(&m.channel),
            ParticipantEvent::Binary { channel, .. } => self.logs(channel),
            ParticipantEvent::StreamStarted { peer, stream_id, .. } => {
                !self.streams.contains_key(&(peer.id.clone(), stream_id.clone()))
            }
            _ => true,
        };
        if noted {
            self.timeline.note(&event, SystemTime::now());
        }
        match event {
            ParticipantEvent::StreamStarted { peer, stream_id, events, kinds } => {
                let key = (peer.id.clone(), stream_id.clone());
                if self.streams.contains_key(&key) {
                    return;
                }
                let targets: Vec<Target> = self.record_target().into_iter().collect();
                self.status.insert(StreamStatus {
                    peer: peer.clone(),
                    stream_id: stream_id.clone(),
                    event: super::manifest::primary_event(events.as_ref()),
                    kinds: kinds.clone(),
                    recording: None,
                    relay: None,
                    last_data: None,
                    keyframe_wait_since: None,
                });
                let context = StreamContext {
                    server: self.plan.server.clone(),
                    room: self.plan.room.clone(),
                    peer: peer.clone(),
                    stream_id,
                    events: events.clone(),
                    expected_kinds: kinds,
                    status: self.status.clone(),
                    files: self.timeline.file_events(),
                };
                for composite in self.composites() {
                    composite.send(CompositeCommand::StreamStarted {
                        peer: peer.clone(),
                        stream_id: context.stream_id.clone(),
                        events: events.clone(),
                        kinds: context.expected_kinds.clone(),
                    });
                }
                let handle = StreamHandle::start(context, targets, self.settings.clone());
                self.streams.insert(key, StreamEntry { handle, peer, events, has_video: false });
            }
            ParticipantEvent::StreamMetadata { peer, stream_id, events } => {
                self.status.update(&peer.id, &stream_id, |s| s.event = super::manifest::primary_event(Some(&events)));
                for composite in self.composites() {
                    let key = (peer.id.clone(), stream_id.clone());
                    composite.send(CompositeCommand::Metadata { key, events: events.clone() });
                }
                if let Some(entry) = self.streams.get_mut(&(peer.id, stream_id)) {
                    entry.events = Some(events.clone());
                    entry.handle.send(StreamCommand::Metadata(events));
                }
            }
            ParticipantEvent::Track(track) => {
                let key = (track.peer.id.clone(), track.stream_id.clone());
                let Some(entry) = self.streams.get_mut(&key) else {
                    tracing::debug!(stream = %track.stream_id, "track of an unknown stream ignored");
                    return;
                };
                entry.has_video |= track.kind == MediaKind::Video;
                self.status.update(&key.0, &key.1, |s| {
                    if !s.kinds.contains(&track.kind) {
                        s.kinds.push(track.kind);
                    }
                });
                let composites = self.composite_recording.iter().chain(self.composite_relay.iter()).count();
                let streams = self.streams_wanted();
                let mut copies = split_track(track, composites + usize::from(streams)).into_iter();
                let entry = self.streams.get_mut(&key).expect("looked up above");
                if streams && let Some(track) = copies.next() {
                    entry.handle.send(StreamCommand::Track(track));
                }
                for composite in self.composite_recording.iter().chain(self.composite_relay.iter()) {
                    if let Some(track) = copies.next() {
                        composite.send(CompositeCommand::Track(track));
                    }
                }
                self.pick_relay();
            }
            ParticipantEvent::StreamEnded { peer, stream_id, reason } => {
                let reason = match reason {
                    StreamEnd::PeerLeft => EndReason::PeerLeft,
                    StreamEnd::Unpublished => EndReason::StreamEnded,
                };
                self.status.remove(&peer.id, &stream_id);
                let key = (peer.id, stream_id);
                for composite in self.composites() {
                    composite.send(CompositeCommand::StreamEnded { key: key.clone() });
                }
                if let Some(entry) = self.streams.remove(&key) {
                    self.ending.push(tokio::spawn(async move { entry.handle.stop(reason).await }));
                }
                if self.relayed.as_ref() == Some(&key) {
                    self.relayed = None;
                    self.pick_relay();
                }
            }
            ParticipantEvent::Message(message) if self.logs(&message.channel) => {
                let room = self.plan.room.clone();
                if let Some(chat) = self.chat_log() {
                    let (peer, channel) = (&message.peer, message.channel.name());
                    let origin =
                        Origin { room: &room, peer_id: &peer.id, peer_name: &peer.name, channel, at: message.at };
                    if let Err(e) = chat.text(origin, &message.event, &message.args) {
                        tracing::warn!(error = %e, "cannot write chat.jsonl");
                    }
                }
            }
            ParticipantEvent::Binary { peer, channel, data, at } if self.logs(&channel) => {
                let room = self.plan.room.clone();
                if let Some(chat) = self.chat_log() {
                    let origin =
                        Origin { room: &room, peer_id: &peer.id, peer_name: &peer.name, channel: channel.name(), at };
                    if let Err(e) = chat.binary(origin, &data) {
                        tracing::warn!(error = %e, "cannot write chat.jsonl");
                    }
                }
            }
            _ => {}
        }
    }

    fn logs(&self, channel: &Channel) -> bool {
        self.plan.recording.is_some()
            && match channel {
                Channel::Ctrl => true,
                Channel::Broadcast(name) => self.plan.log_channels.iter().any(|c| c == name),
            }
    }

    fn chat_log(&mut self) -> Option<&mut ChatLog> {
        if self.chat.is_none() && !self.chat_failed {
            let dir = self.room_dir()?;
            match ChatLog::open(&dir) {
                Ok(log) => self.chat = Some(log),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot open chat.jsonl; messages are not logged");
                    self.chat_failed = true;
                }
            }
        }
        self.chat.as_mut()
    }

    /// The next manifest a stream task wrote (never ends).
    pub async fn next_file_update(&mut self) -> FileUpdate {
        self.timeline.next_file_update().await
    }

    pub fn on_file_update(&mut self, update: FileUpdate) {
        self.timeline.on_file_update(update);
    }

    /// A server event the participant heard (members entering and leaving, `media-state`: on the timeline).
    pub fn on_server_event(&mut self, server: &ServerEvent) {
        self.timeline.on_server_event(server);
    }

    /// Write `room.json` and the due `.vtt` sidecars if the timeline changed
    /// and was not written too recently (in the background).
    pub fn flush_timeline(&mut self, now: Instant) {
        self.timeline.flush(now);
    }

    /// Once the room is recorded, its timeline has a directory.
    fn open_timeline(&mut self) {
        if let Some(dir) = self.room_dir() {
            self.timeline.open(&dir, SystemTime::now());
        }
    }

    /// Give the relay to the first matching stream with video, if it is free.
    fn pick_relay(&mut self) {
        let Some(spec) = self.plan.relay.clone().filter(|r| r.mode.streams()) else { return };
        if self.relayed.is_some() {
            return;
        }
        let chosen = self
            .streams
            .iter()
            .filter(|(_, e)| e.has_video && relay_matches(&spec, &e.peer, e.events.as_ref()))
            .map(|(k, _)| k.clone())
            .min();
        if let Some(key) = chosen {
            tracing::info!(room = %self.plan.room, peer = %key.0, stream = %key.1, "relaying this stream");
            let target = Target::Relay { url: spec.url.clone(), template: spec.template.clone() };
            self.streams[&key].handle.send(StreamCommand::AddTarget(target));
            self.relayed = Some(key);
        }
    }

    /// Finalise every output (in parallel) and close the chat log.
    pub async fn stop(mut self, reason: EndReason) -> Vec<OutputReport> {
        let stops: Vec<_> = self.streams.drain().map(|(_, e)| e.handle.stop(reason)).collect();
        for reports in futures_util::future::join_all(stops).await {
            self.reports.extend(reports);
        }
        for ending in self.ending.drain(..) {
            self.reports.extend(ending.await.unwrap_or_default());
        }
        let composites: Vec<_> =
            self.composite_recording.take().into_iter().chain(self.composite_relay.take()).map(|c| c.stop(reason)).collect();
        self.reports.extend(futures_util::future::join_all(composites).await.into_iter().flatten());
        for ending in self.composites_ending.drain(..) {
            self.reports.extend(ending.await.ok().flatten());
        }
        let now = SystemTime::now();
        if let Some(spec) = &self.plan.recording {
            self.timeline.push(now, EventKind::RecordingStopped { by: spec.by.clone(), reason });
        }
        if let Some(relay) = &self.plan.relay {
            self.timeline.push(now, EventKind::RelayStopped { url: crate::redact::endpoint(&relay.url), reason });
        }
        // Every stream task is done: their last manifests are queued.
        self.timeline.finish(now, reason).await;
        if let Some(chat) = &self.chat
            && let Err(e) = chat.sync()
        {
            tracing::warn!(error = %e, "cannot sync chat.jsonl");
        }
        self.reports
    }
}

fn relay_started(relay: &RelaySpec) -> EventKind {
    EventKind::RelayStarted {
        url: crate::redact::endpoint(&relay.url),
        peer: relay.peer.clone(),
        event: relay.event.clone(),
    }
}

fn relay_matches(spec: &RelaySpec, peer: &PeerInfo, events: Option<&StreamEvents>) -> bool {
    if let Some(wanted) = &spec.peer
        && wanted != &peer.id
        && wanted != &peer.name
    {
        return false;
    }
    let names: Vec<&str> = events.map(|e| e.keys().map(String::as_str).collect()).unwrap_or_default();
    match &spec.event {
        Some(event) => names.contains(&event.as_str()),
        None => !names.iter().any(|n| n.to_ascii_lowercase().contains("screen")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, name: &str) -> PeerInfo {
        PeerInfo { id: id.into(), name: name.into() }
    }

    fn events(names: &[&str]) -> StreamEvents {
        names.iter().map(|n| (n.to_string(), vec![])).collect()
    }

    #[test]
    fn relay_filters_by_peer_id_or_name_and_event() {
        let any = RelaySpec {
            url: "rtmp://x".into(),
            peer: None,
            event: None,
            template: None,
            mode: OutputMode::Streams,
            layout: LayoutKind::Grid,
        };
        assert!(relay_matches(&any, &peer("a", "Alice"), Some(&events(&["camera"]))));
        assert!(relay_matches(&any, &peer("a", "Alice"), None));
        assert!(!relay_matches(&any, &peer("a", "Alice"), Some(&events(&["screen"]))));
        assert!(!relay_matches(&any, &peer("a", "Alice"), Some(&events(&["screenShare"]))));
        let by_name = RelaySpec { peer: Some("Alice".into()), ..any.clone() };
        assert!(relay_matches(&by_name, &peer("a", "Alice"), None));
        assert!(!relay_matches(&by_name, &peer("b", "Bob"), None));
        let by_id = RelaySpec { peer: Some("b".into()), ..any.clone() };
        assert!(relay_matches(&by_id, &peer("b", "Bob"), None));
        let by_event = RelaySpec { event: Some("screen".into()), ..any };
        assert!(relay_matches(&by_event, &peer("a", "Alice"), Some(&events(&["screen"]))));
        assert!(!relay_matches(&by_event, &peer("a", "Alice"), Some(&events(&["camera"]))));
    }
}
