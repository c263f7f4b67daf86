//! The room task's side of its timeline: turns participant events, server
//! events (`media-state`) and the manifests the stream tasks write into
//! [`super::timeline`] entries, and writes `room.json` and the `.vtt`
//! sidecars through [`super::timeline_file`] when the model says a write is
//! due — rendered here, written on a blocking thread (the fsyncs must not
//! stall the room task), one write at a time. Owned by the [`super::room::RoomRecorder`], which decides what is
//! noted (messages only while they are logged to `chat.jsonl`) and adds the
//! recording and relay changes itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde_json::Value;
use tokio::sync::mpsc;

use super::end_reason::EndReason;
use super::file_events::{FileEvents, FileUpdate};
use super::timeline::{EventKind, Member, Timeline};
use super::timeline_file::{self, Batch, Earlier};
use crate::participant::events::{ParticipantEvent, PeerInfo};
use crate::participant::room::ServerEvent;

pub struct RoomTimeline {
    timeline: Timeline,
    /// Where `room.json` goes, once the room is recorded.
    dir: Option<PathBuf>,
    /// The last write failed (logged once until one succeeds).
    failed: bool,
    /// The write in flight.
    writing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The members' names by socket id (server events carry only the id).
    members: HashMap<String, String>,
    files: FileEvents,
    file_updates: mpsc::UnboundedReceiver<FileUpdate>,
}

impl RoomTimeline {
    pub fn new(room: &str, server: Option<String>, now: SystemTime) -> RoomTimeline {
        let (files, file_updates) = mpsc::unbounded_channel();
        RoomTimeline {
            timeline: Timeline::new(room, server, now),
            dir: None,
            failed: false,
            writing: None,
            members: HashMap::new(),
            files: FileEvents::new(files),
            file_updates,
        }
    }

    /// Where the room's stream tasks send their manifests.
    pub fn file_events(&self) -> FileEvents {
        self.files.clone()
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn push(&mut self, at: SystemTime, kind: EventKind) {
        self.timeline.push(at, kind);
    }

    /// Put a participant event on the timeline, at `now` (messages at the
    /// time they carry: the `unix_ms` of their `chat.jsonl` line).
    pub fn note(&mut self, event: &ParticipantEvent, now: SystemTime) {
        let kind = match event {
            ParticipantEvent::Joined { own_id, members } => {
                self.members = members.iter().map(|m| (m.id.clone(), m.name.clone())).collect();
                EventKind::GatewayJoined { own_id: own_id.clone(), members: members.iter().map(member).collect() }
            }
            ParticipantEvent::SignalingLost { reason } => EventKind::SignalingLost { reason: reason.clone() },
            ParticipantEvent::PeerConnected(peer) => {
                self.members.insert(peer.id.clone(), peer.name.clone());
                EventKind::MemberJoined { peer: member(peer) }
            }
            ParticipantEvent::PeerDisconnected { peer, reason } => {
                EventKind::MemberLeft { peer: member(peer), reason: reason.clone() }
            }
            ParticipantEvent::StreamStarted { peer, stream_id, events, .. } => EventKind::StreamStarted {
                peer: member(peer),
                stream_id: stream_id.clone(),
                event: super::manifest::primary_event(events.as_ref()),
                events: events.clone(),
            },
            ParticipantEvent::StreamMetadata { peer, stream_id, events } => EventKind::StreamMetadata {
                peer: member(peer),
                stream_id: stream_id.clone(),
                event: super::manifest::primary_event(Some(events)),
                events: events.clone(),
            },
            ParticipantEvent::StreamEnded { peer, stream_id, reason } => {
                EventKind::StreamEnded { peer: member(peer), stream_id: stream_id.clone(), reason: reason.to_string() }
            }
            ParticipantEvent::Message(m) => {
                let kind = Timeline::message(member(&m.peer), m.channel.name(), Some(&m.event), Some(&m.args), None);
                self.timeline.push(m.at, kind);
                return;
            }
            ParticipantEvent::Binary { peer, channel, data, at } => {
                let kind = Timeline::message(member(peer), channel.name(), None, None, Some(data.len()));
                self.timeline.push(*at, kind);
                return;
            }
            ParticipantEvent::Refused { .. } | ParticipantEvent::Track(_) => return,
        };
        self.timeline.push(now, kind);
    }

    /// A server event the participant heard: `user-connected {id, name}`,
    /// `user-disconnected {id}` and rtc.io's `media-state {id, mic, cam}` go on
    /// the timeline (the member's name filled in: the participant's, else
    /// ours), others are ignored.
    pub fn on_server_event(&mut self, server: &ServerEvent) {
        use crate::protocol::{EV_MEDIA_STATE, EV_USER_CONNECTED, EV_USER_DISCONNECTED};
        let (event, arg, at) = (server.event.as_str(), &server.arg, server.at);
        if ![EV_MEDIA_STATE, EV_USER_CONNECTED, EV_USER_DISCONNECTED].contains(&event) {
            return;
        }
        let Some(id) = arg.get("id").and_then(Value::as_str) else {
            tracing::debug!(%event, ?arg, "server event without a member id ignored");
            return;
        };
        let known = server.peer.as_ref().map(|p| p.name.as_str()).filter(|n| !n.is_empty());
        let name = known.or_else(|| arg.get("name").and_then(Value::as_str).filter(|_| event == EV_USER_CONNECTED));
        if let Some(name) = name {
            self.members.insert(id.to_string(), name.to_string());
        }
        let peer = Member { id: id.to_string(), name: self.members.get(id).cloned().unwrap_or_default() };
        let kind = match event {
            EV_USER_CONNECTED => EventKind::UserConnected { peer },
            EV_USER_DISCONNECTED => EventKind::UserDisconnected { peer },
            _ => {
                let flag = |key: &str| arg.get(key).and_then(Value::as_bool);
                EventKind::MediaState { peer, mic: flag("mic"), cam: flag("cam") }
            }
        };
        self.timeline.push(at, kind);
    }

    /// The next manifest a stream task wrote (never ends: we hold a sender).
    pub async fn next_file_update(&mut self) -> FileUpdate {
        match self.file_updates.recv().await {
            Some(update) => update,
            None => std::future::pending().await,
        }
    }

    pub fn on_file_update(&mut self, update: FileUpdate) {
        self.timeline.upsert_file(&update.manifest);
    }

    /// The room is recorded into `dir`: extend the `room.json` there, or
    /// move it aside if it is full or unreadable. Only the first directory
    /// of a run counts. If the old one cannot even be read or moved, this
    /// run's timeline is not written (it would replace the old one).
    pub fn open(&mut self, dir: &Path, now: SystemTime) {
        if self.dir.is_some() {
            return;
        }
        match timeline_file::take_earlier(dir, now) {
            Ok(Earlier::None) => {}
            Ok(Earlier::Extended(previous)) => self.timeline.set_previous(previous),
            Ok(Earlier::Archived(path, why)) => {
                let archive = path.display();
                tracing::warn!(%archive, %why, "room.json cannot be extended; moved aside, a new one starts")
            }
            Err(e) => {
                let dir = dir.display();
                tracing::error!(%dir, error = %e, "cannot read or move room.json; this run's timeline is not written");
                return;
            }
        }
        self.dir = Some(dir.to_path_buf());
    }

    /// Start writing `room.json` and the due `.vtt` sidecars if the model
    /// says so and no write is in flight.
    pub fn flush(&mut self, now: Instant) {
        if let Some(writing) = &mut self.writing {
            if !writing.is_finished() {
                return;
            }
            let result = futures_util::FutureExt::now_or_never(writing).expect("the write has finished");
            self.writing = None;
            self.report(result);
        }
        let Some(dir) = self.dir.clone() else { return };
        if !self.timeline.due(now) {
            return;
        }
        let batch = Batch::prepare(&dir, &mut self.timeline);
        self.timeline.written(now, batch.room_json_len());
        self.writing = Some(tokio::task::spawn_blocking(move || batch.write()));
    }

    /// The run is over and every stream task is done: take their last
    /// manifests (queued), end the run and write everything; returns once written.
    pub async fn finish(&mut self, at: SystemTime, reason: EndReason) {
        while let Ok(update) = self.file_updates.try_recv() {
            self.timeline.upsert_file(&update.manifest);
        }
        self.timeline.end(at, reason);
        if let Some(writing) = self.writing.take() {
            let result = writing.await;
            self.report(result);
        }
        let Some(dir) = self.dir.clone() else { return };
        let batch = Batch::prepare(&dir, &mut self.timeline);
        self.timeline.written(Instant::now(), batch.room_json_len());
        let result = tokio::task::spawn_blocking(move || batch.write()).await;
        self.report(result);
    }

    /// Log a failed write (once until one succeeds).
    fn report(&mut self, result: Result<std::io::Result<()>, tokio::task::JoinError>) {
        let error = match result {
            Ok(Ok(())) => {
                self.failed = false;
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        if !self.failed {
            self.failed = true;
            let dir = self.dir.as_deref().unwrap_or(Path::new("")).display();
            tracing::warn!(%dir, %error, "cannot write room.json or a .vtt sidecar");
        }
    }
}

fn member(peer: &PeerInfo) -> Member {
    Member { id: peer.id.clone(), name: peer.name.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::participant::channels::Channel;
    use crate::participant::events::{ChannelMessage, StreamEnd};
    use serde_json::json;
    use std::time::Duration;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_702_503_000 + ms)
    }

    fn server(event: &str, arg: Value, ms: u64) -> ServerEvent {
        ServerEvent { event: event.into(), arg, at: at(ms), peer: None }
    }

    fn alice() -> PeerInfo {
        PeerInfo { id: "a1".into(), name: "alice".into() }
    }

    #[tokio::test]
    async fn participant_and_server_events_become_timeline_events_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = RoomTimeline::new("r", None, at(0));
        let bob = PeerInfo { id: "b1".into(), name: "bob".into() };
        t.note(&ParticipantEvent::Joined { own_id: "me".into(), members: vec![bob.clone()] }, at(1));
        t.on_server_event(&server("user-connected", json!({"id": "a1", "name": "alice"}), 2));
        t.note(&ParticipantEvent::PeerConnected(alice()), at(2));
        t.on_server_event(&server("media-state", json!({"id": "a1", "roomId": "r", "mic": false, "cam": true}), 3));
        t.on_server_event(&server("media-state", json!({"id": "b1", "mic": true}), 4));
        t.on_server_event(&server("media-state", json!({"mic": true}), 5));
        t.on_server_event(&server("chat-message", json!({"id": "a1"}), 6));
        // Named by the participant before the room heard of the member.
        let carol = PeerInfo { id: "c1".into(), name: "carol".into() };
        t.on_server_event(&ServerEvent {
            peer: Some(carol),
            ..server("media-state", json!({"id": "c1", "cam": false}), 6)
        });
        let message = ChannelMessage {
            peer: alice(),
            channel: Channel::Broadcast("chat".into()),
            event: "msg".into(),
            args: vec![json!("hi")],
            at: at(7),
        };
        t.note(&ParticipantEvent::Message(message), at(99));
        t.note(
            &ParticipantEvent::StreamEnded { peer: alice(), stream_id: "s".into(), reason: StreamEnd::PeerLeft },
            at(8),
        );
        t.note(&ParticipantEvent::PeerDisconnected { peer: alice(), reason: "closed".into() }, at(9));
        t.on_server_event(&server("user-disconnected", json!({"id": "a1"}), 9));
        let events = &t.timeline().to_json()["runs"][0]["events"];
        let summary: Vec<(u64, &str)> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["unix_ms"].as_u64().unwrap() - 1_795_702_503_000, e["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, "gateway-joined"),
                (2, "user-connected"),
                (2, "member-joined"),
                (3, "media-state"),
                (4, "media-state"),
                (6, "media-state"),
                (7, "message"),
                (8, "stream-ended"),
                (9, "member-left"),
                (9, "user-disconnected")
            ],
            "a media-state without an id and other server events are left out; a message keeps its own time"
        );
        assert_eq!(events[1]["peer"], json!({"id": "a1", "name": "alice"}));
        assert_eq!(events[3]["peer"], json!({"id": "a1", "name": "alice"}));
        assert_eq!(events[4]["peer"], json!({"id": "b1", "name": "bob"}), "a member known from the join");
        assert_eq!(events[5]["peer"]["name"], "carol");
        assert_eq!(events[7]["reason"], "peer-left");
        assert_eq!(events[9]["peer"]["name"], "alice", "the name is known from user-connected");

        // Not written before the room has a directory; written at the end.
        t.flush(Instant::now());
        assert!(t.writing.is_none());
        t.open(dir.path(), at(10));
        let manifest = crate::recorder::manifest::Manifest {
            state: crate::recorder::manifest::RecordingState::Finished,
            file: "x.webm".into(),
            server: None,
            room: "r".into(),
            peer: crate::recorder::manifest::PeerSummary { id: "a1".into(), name: "alice".into() },
            stream_id: "s".into(),
            event: "camera".into(),
            events: None,
            template: "record-webm".into(),
            codecs: Default::default(),
            started_at: String::new(),
            started_unix_ms: 1_795_702_503_000,
            ended_at: None,
            ended_unix_ms: Some(1_795_702_503_010),
            duration_secs: None,
            size_bytes: None,
            end_reason: Some(EndReason::PeerLeft),
            error: None,
            first_keyframe_ms: None,
            t0_unix_ms: Some(1_795_702_503_000.0),
            clock: None,
            composite: None,
        };
        t.file_events().send(&manifest);
        t.finish(at(11), EndReason::RoomEmpty).await;
        let doc: Value = serde_json::from_slice(&std::fs::read(dir.path().join("room.json")).unwrap()).unwrap();
        assert_eq!(doc["runs"][0]["files"][0]["file"], "x.webm", "the queued manifest is taken at the end");
        assert_eq!(doc["runs"][0]["end_reason"], "room-empty");
        let vtt = std::fs::read_to_string(dir.path().join("x.vtt")).unwrap();
        assert_eq!(vtt, "WEBVTT\n\n1\n00:00:00.007 --> 00:00:04.007\nalice [chat] msg: hi\n");
    }
}
