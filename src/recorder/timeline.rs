//! The room timeline, `<recordings>/<room>/room.json`, as a sans-IO model:
//! what happened in a room run (members, streams, mute state, recording and
//! relay, DataChannel messages), each with its wall-clock time, and every
//! recording file with the wall-clock time of its presentation time zero
//! (`t0_unix_ms`), so any instant of any file maps onto the room's clock.
//! The room task feeds it ([`Timeline::push`], [`Timeline::upsert_file`]),
//! asks it when a write is due ([`Timeline::due`]: on change, at most once
//! per [`DEBOUNCE`]) and writes [`Timeline::to_json`] with
//! [`super::timeline_file`]. It also knows which files' WebVTT sidecars
//! ([`super::vtt`]) need rewriting.
//!
//! Clock: event times are the gateway's wall clock when the event reached
//! it (for messages the same `unix_ms` their `chat.jsonl` line carries);
//! `t0_unix_ms` is on the sender's clock once its RTCP sender reports arrived
//! (see the manifest's `clock`). With NTP-synchronised machines both agree
//! to a few ms.
//!
//! Runs: a room recorded again later appends a run to the same `room.json`
//! (the old runs are kept verbatim, see [`Previous`]). Bounds: a run keeps
//! at most [`MAX_RUN_EVENTS`] events (later ones are only counted in
//! `events_omitted`; messages stay complete in `chat.jsonl`), a message's
//! arguments are kept up to [`MAX_ARGS_BYTES`] of JSON (longer: only their
//! size), and once the old runs hold [`MAX_RUNS`] runs or
//! [`MAX_PREVIOUS_EVENTS`] events the old file is archived beside it (see
//! [`super::timeline_file`]) and `room.json` starts afresh. So one
//! `room.json` holds fewer than `MAX_PREVIOUS_EVENTS + MAX_RUN_EVENTS`
//! (15 000) events: ≈ 160 bytes each for short chat lines and mute
//! changes (≈ 0.8 MB for a full run), at most ≈ 700 bytes each with the
//! longest listed arguments (≈ 10 MB in all). Writes are debounced by size
//! (see [`DEBOUNCE`]).

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::end_reason::EndReason;
use super::manifest::{Manifest, RecordingState};
use super::naming::unix_ms;
use crate::media::clock_status::ClockSource;
use crate::participant::streams::StreamEvents;

/// The timeline's file name in the room directory.
pub const FILE_NAME: &str = "room.json";
/// The format of `room.json`; bumped on incompatible changes.
pub const VERSION: u32 = 1;
/// Events one run keeps; later ones are counted, not listed.
pub const MAX_RUN_EVENTS: usize = 5_000;
/// A message's arguments are listed when their JSON is at most this long.
pub const MAX_ARGS_BYTES: usize = 512;
/// Old runs kept in one `room.json` before it is archived.
pub const MAX_RUNS: usize = 20;
/// Old runs' events kept in one `room.json` before it is archived.
pub const MAX_PREVIOUS_EVENTS: usize = 10_000;
/// At most one write per this long while things change — per started
/// [`WRITE_BUDGET`] bytes of the last write, so a big `room.json` is
/// rewritten less often (at most about 1 MiB/s of writes).
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// See [`DEBOUNCE`].
pub const WRITE_BUDGET: usize = 1 << 20;

/// A member of the room as the timeline names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
}

/// What happened. Serialised with its `type` (kebab-case) beside its fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    /// The gateway's participant joined (again, after a reconnect) with
    /// this socket id; the members already in the room.
    GatewayJoined {
        own_id: String,
        members: Vec<Member>,
    },
    /// The gateway's signaling connection dropped (every peer is gone until it re-joins).
    SignalingLost {
        reason: String,
    },
    /// A member entered the room (the server's `user-connected`; members
    /// already there are listed by `gateway-joined`).
    UserConnected {
        peer: Member,
    },
    /// A member left the room (the server's `user-disconnected`).
    UserDisconnected {
        peer: Member,
    },
    /// A member's connection to the gateway opened (rtc.io's `peer-connect`).
    MemberJoined {
        peer: Member,
    },
    /// A member that was connected is gone (rtc.io's `peer-disconnect`).
    MemberLeft {
        peer: Member,
        reason: String,
    },
    /// A member published a stream under `event` (all its events and arguments in `events`).
    StreamStarted {
        peer: Member,
        stream_id: String,
        event: String,
        events: Option<StreamEvents>,
    },
    /// A stream's metadata arrived after its start.
    StreamMetadata {
        peer: Member,
        stream_id: String,
        event: String,
        events: StreamEvents,
    },
    StreamEnded {
        peer: Member,
        stream_id: String,
        reason: String,
    },
    /// rtc.io's `media-state`: a member's microphone/camera on (`true`) or muted (`false`).
    MediaState {
        peer: Member,
        mic: Option<bool>,
        cam: Option<bool>,
    },
    /// The room started being recorded, asked `by` `rule` or `api`.
    RecordingStarted {
        by: String,
    },
    /// The room's recording stopped (`by` whoever had started it) for `reason`.
    RecordingStopped {
        by: String,
        reason: EndReason,
    },
    /// A relay of the room started (credentials removed from `url`).
    RelayStarted {
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        event: Option<String>,
    },
    RelayStopped {
        url: String,
        reason: EndReason,
    },
    /// A DataChannel message (ctrl or a logged broadcast channel), as in `chat.jsonl`.
    Message {
        peer: Member,
        /// `ctrl` or the broadcast channel's name.
        channel: String,
        /// The event name; null for binary messages.
        event: Option<String>,
        /// The arguments, when their JSON is at most [`MAX_ARGS_BYTES`] long.
        #[serde(skip_serializing_if = "Option::is_none")]
        args: Option<Vec<Value>>,
        /// The arguments' JSON length when they were too long to list.
        #[serde(skip_serializing_if = "Option::is_none")]
        args_bytes: Option<usize>,
        /// The size of a binary message.
        #[serde(skip_serializing_if = "Option::is_none")]
        binary_bytes: Option<usize>,
    },
}

/// One event with its wall-clock time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Gateway wall clock, Unix ms.
    pub unix_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A recording file of the run, from its latest manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileEntry {
    /// The recording's file name in the room directory.
    pub file: String,
    /// Its WebVTT sidecar (`<stem>.vtt`), once it can be written (`t0` known).
    pub vtt: Option<String>,
    /// Wall-clock time (Unix ms, fractions kept) of the file's presentation time zero.
    pub t0_unix_ms: Option<f64>,
    /// How `t0_unix_ms` was learnt: `arrival` or `sender-reports`.
    pub clock: Option<ClockSource>,
    pub state: RecordingState,
    pub peer: Member,
    pub stream_id: String,
    pub event: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub end_reason: Option<EndReason>,
    /// The sidecar must be rewritten (not in the file).
    #[serde(skip)]
    vtt_dirty: bool,
}

impl FileEntry {
    /// The time span of the room in which the file was being written.
    pub fn window(&self) -> (u64, u64) {
        (self.started_unix_ms, self.ended_unix_ms.unwrap_or(u64::MAX))
    }
}

/// The runs of an earlier `room.json`, kept as they were read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Previous {
    pub runs: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviousError {
    #[error("room.json is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("room.json has no `runs` array")]
    NoRuns,
    #[error("room.json is of version {0}, this gateway writes version {VERSION}")]
    Version(u64),
}

impl Previous {
    /// The runs of an earlier `room.json`'s text; an error says why it cannot be extended.
    pub fn parse(text: &[u8]) -> Result<Previous, PreviousError> {
        let doc: Value = serde_json::from_slice(text)?;
        let version = doc.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(PreviousError::Version(version));
        }
        let runs = doc.get("runs").and_then(Value::as_array).ok_or(PreviousError::NoRuns)?;
        Ok(Previous { runs: runs.clone() })
    }

    /// Whether the old runs are too many to append to (archive the file instead).
    pub fn is_full(&self) -> bool {
        let events: usize =
            self.runs.iter().map(|r| r.get("events").and_then(Value::as_array).map_or(0, Vec::len)).sum();
        self.runs.len() >= MAX_RUNS || events >= MAX_PREVIOUS_EVENTS
    }
}

/// The timeline of one room run (plus the earlier runs it extends).
#[derive(Debug)]
pub struct Timeline {
    room: String,
    server: Option<String>,
    previous: Previous,
    started_unix_ms: u64,
    ended_unix_ms: Option<u64>,
    end_reason: Option<EndReason>,
    files: Vec<FileEntry>,
    events: Vec<Event>,
    events_omitted: u64,
    /// Changed since the last write.
    dirty: bool,
    last_write: Option<Instant>,
    /// The length of the last write.
    last_bytes: usize,
}

impl Timeline {
    pub fn new(room: &str, server: Option<String>, started: SystemTime) -> Timeline {
        Timeline {
            room: room.to_string(),
            server,
            previous: Previous::default(),
            started_unix_ms: unix_ms(started),
            ended_unix_ms: None,
            end_reason: None,
            files: Vec::new(),
            events: Vec::new(),
            events_omitted: 0,
            dirty: true,
            last_write: None,
            last_bytes: 0,
        }
    }

    /// Extend an earlier `room.json` (its runs come first).
    pub fn set_previous(&mut self, previous: Previous) {
        self.previous = previous;
        self.dirty = true;
    }

    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Record an event at `at` (gateway wall clock). Messages mark the
    /// sidecars of the files being written then as changed.
    pub fn push(&mut self, at: SystemTime, kind: EventKind) {
        let unix_ms = unix_ms(at);
        if self.events.len() >= MAX_RUN_EVENTS {
            self.events_omitted += 1;
            self.dirty = true;
            return;
        }
        if matches!(kind, EventKind::Message { .. }) {
            for file in &mut self.files {
                let (from, to) = file.window();
                if file.t0_unix_ms.is_some() && (from..=to).contains(&unix_ms) {
                    file.vtt_dirty = true;
                }
            }
        }
        // Events reach the room on more than one channel: keep them in time
        // order (stable; nearly always at the end).
        let at = self.events.iter().rposition(|e| e.unix_ms <= unix_ms).map_or(0, |i| i + 1);
        self.events.insert(at, Event { unix_ms, kind });
        self.dirty = true;
    }

    /// A message event, its arguments listed if short enough.
    pub fn message(
        peer: Member,
        channel: &str,
        event: Option<&str>,
        args: Option<&[Value]>,
        binary: Option<usize>,
    ) -> EventKind {
        let (args, args_bytes) = match args {
            None => (None, None),
            Some(args) => {
                let bytes = serde_json::to_vec(args).map_or(usize::MAX, |v| v.len());
                if bytes <= MAX_ARGS_BYTES { (Some(args.to_vec()), None) } else { (None, Some(bytes)) }
            }
        };
        EventKind::Message {
            peer,
            channel: channel.to_string(),
            event: event.map(str::to_string),
            args,
            args_bytes,
            binary_bytes: binary,
        }
    }

    /// Take a file's manifest as just written. Its sidecar is due when the
    /// file's `t0` became known or changed, or the file ended.
    pub fn upsert_file(&mut self, manifest: &Manifest) {
        let vtt = manifest.t0_unix_ms.map(|_| vtt_name(&manifest.file));
        let entry = FileEntry {
            file: manifest.file.clone(),
            vtt,
            t0_unix_ms: manifest.t0_unix_ms,
            clock: manifest.clock.as_ref().map(|c| c.source),
            state: manifest.state,
            peer: Member { id: manifest.peer.id.clone(), name: manifest.peer.name.clone() },
            stream_id: manifest.stream_id.clone(),
            event: manifest.event.clone(),
            started_unix_ms: manifest.started_unix_ms,
            ended_unix_ms: manifest.ended_unix_ms,
            end_reason: manifest.end_reason,
            vtt_dirty: false,
        };
        match self.files.iter_mut().find(|f| f.file == entry.file) {
            Some(old) => {
                let sidecar_changed = entry.vtt.is_some()
                    && (old.t0_unix_ms != entry.t0_unix_ms
                        || old.state != entry.state
                        || old.ended_unix_ms != entry.ended_unix_ms);
                let vtt_dirty = old.vtt_dirty || sidecar_changed;
                if *old != (FileEntry { vtt_dirty: old.vtt_dirty, ..entry.clone() }) {
                    self.dirty = true;
                }
                *old = FileEntry { vtt_dirty, ..entry };
            }
            None => {
                let vtt_dirty = entry.vtt.is_some();
                self.files.push(FileEntry { vtt_dirty, ..entry });
                self.dirty = true;
            }
        }
    }

    /// The run ended (every file finalised).
    pub fn end(&mut self, at: SystemTime, reason: EndReason) {
        self.ended_unix_ms = Some(unix_ms(at));
        self.end_reason = Some(reason);
        self.dirty = true;
    }

    /// Whether `room.json` should be written now: something changed and the
    /// last write is at least [`DEBOUNCE`] (per started [`WRITE_BUDGET`]) ago.
    pub fn due(&self, now: Instant) -> bool {
        let wait = DEBOUNCE * self.last_bytes.div_ceil(WRITE_BUDGET).max(1) as u32;
        (self.dirty || self.files.iter().any(|f| f.vtt_dirty))
            && self.last_write.is_none_or(|last| now.duration_since(last) >= wait)
    }

    /// The files whose sidecars must be rewritten, with their cues' events;
    /// they count as written from now on.
    pub fn take_due_sidecars(&mut self) -> Vec<(FileEntry, Vec<Event>)> {
        let mut due = Vec::new();
        for file in self.files.iter_mut().filter(|f| f.vtt_dirty) {
            file.vtt_dirty = false;
            let (from, to) = file.window();
            let messages = self
                .events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Message { .. }) && (from..=to).contains(&e.unix_ms))
                .cloned()
                .collect();
            due.push((file.clone(), messages));
        }
        due
    }

    /// `room.json` (`bytes` long) was written, or attempted, at `now`.
    pub fn written(&mut self, now: Instant, bytes: usize) {
        self.dirty = false;
        self.last_write = Some(now);
        self.last_bytes = bytes;
    }

    /// This run as `room.json` shows it.
    pub fn run_json(&self) -> Value {
        json!({
            "started_unix_ms": self.started_unix_ms,
            "ended_unix_ms": self.ended_unix_ms,
            "end_reason": self.end_reason,
            "files": self.files,
            "events": self.events,
            "events_omitted": self.events_omitted,
        })
    }

    /// The whole document: the earlier runs, then this one.
    pub fn to_json(&self) -> Value {
        let mut runs = self.previous.runs.clone();
        runs.push(self.run_json());
        json!({
            "version": VERSION,
            "room": self.room,
            "server": self.server,
            "runs": runs,
        })
    }
}

/// `<stem>.vtt` for a recording's file name.
pub fn vtt_name(file: &str) -> String {
    let stem = std::path::Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or(file);
    format!("{stem}.vtt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clock_status::ClockStatus;
    use crate::recorder::manifest::PeerSummary;

    const T: u64 = 1_795_702_503_000;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn alice() -> Member {
        Member { id: "p1".into(), name: "alice".into() }
    }

    fn manifest(file: &str, started: u64) -> Manifest {
        Manifest::for_test(file, PeerSummary { id: "p1".into(), name: "alice".into() }, started)
    }

    fn clock(t0: f64, source: ClockSource) -> ClockStatus {
        ClockStatus { t0_unix_ms: t0, source, sender_reports: 0, last_report_unix_ms: None }
    }

    fn chat(text: &str) -> EventKind {
        Timeline::message(alice(), "chat", Some("msg"), Some(&[json!(text)]), None)
    }

    #[test]
    fn events_and_files_are_listed_with_their_clock() {
        let mut t = Timeline::new("r", None, at(T));
        t.push(at(T + 10), EventKind::RecordingStarted { by: "api".into() });
        t.push(at(T + 20), EventKind::MemberJoined { peer: alice() });
        let mut m = manifest("a.webm", T + 30);
        t.upsert_file(&m);
        m.set_clock(&clock((T + 31) as f64 + 0.5, ClockSource::Arrival), at(T + 40));
        t.upsert_file(&m);
        t.push(at(T + 50), EventKind::MediaState { peer: alice(), mic: Some(false), cam: None });
        t.push(at(T + 60), chat("hi"));
        let doc = t.to_json();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["room"], "r");
        let run = &doc["runs"][0];
        assert_eq!(run["started_unix_ms"], T);
        assert_eq!(run["files"].as_array().unwrap().len(), 1, "one entry per file: {run}");
        let file = &run["files"][0];
        assert_eq!(file["file"], "a.webm");
        assert_eq!(file["vtt"], "a.vtt");
        assert_eq!(file["t0_unix_ms"], (T + 31) as f64 + 0.5);
        assert_eq!(file["clock"], "arrival");
        assert_eq!(file["state"], "recording");
        let events = run["events"].as_array().unwrap();
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["recording-started", "member-joined", "media-state", "message"]);
        assert_eq!(events[0]["by"], "api");
        assert_eq!(events[1]["unix_ms"], T + 20);
        assert_eq!(events[1]["peer"]["name"], "alice");
        assert_eq!(events[2]["mic"], false);
        assert_eq!(events[2]["cam"], Value::Null);
        assert_eq!(events[3]["args"][0], "hi");
        assert_eq!(events[3]["channel"], "chat");
    }

    #[test]
    fn events_are_kept_in_time_order_whatever_order_they_arrive_in() {
        let mut t = Timeline::new("r", None, at(T));
        for (ms, name) in [(30, "c"), (10, "a"), (30, "d"), (20, "b"), (40, "e")] {
            t.push(at(T + ms), EventKind::MemberJoined { peer: Member { id: name.into(), name: name.into() } });
        }
        let order: Vec<&str> = t
            .events()
            .iter()
            .map(|e| match &e.kind {
                EventKind::MemberJoined { peer } => peer.id.as_str(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"], "same time: in arrival order");
    }

    #[test]
    fn writes_are_debounced_and_only_happen_on_change() {
        let start = Instant::now();
        let mut t = Timeline::new("r", None, at(T));
        assert!(t.due(start), "a new timeline is written at once");
        t.written(start, 100);
        assert!(!t.due(start + DEBOUNCE * 5), "nothing changed");
        t.push(at(T + 1), EventKind::MemberJoined { peer: alice() });
        assert!(!t.due(start + DEBOUNCE / 2), "changed, but written too recently");
        assert!(t.due(start + DEBOUNCE));
        t.written(start + DEBOUNCE, 100);
        // The same manifest again is no change.
        let m = manifest("a.webm", T);
        t.upsert_file(&m);
        t.written(start + DEBOUNCE * 2, 100);
        t.upsert_file(&m);
        assert!(!t.due(start + DEBOUNCE * 10));
        // A big file waits longer: one debounce per started MiB.
        t.push(at(T + 2), EventKind::MemberJoined { peer: alice() });
        t.written(start, 2 * WRITE_BUDGET + 1);
        t.push(at(T + 3), EventKind::MemberJoined { peer: alice() });
        assert!(!t.due(start + DEBOUNCE * 2));
        assert!(t.due(start + DEBOUNCE * 3));
    }

    #[test]
    fn sidecars_are_due_when_t0_changes_a_message_arrives_or_the_file_ends() {
        let mut t = Timeline::new("r", None, at(T));
        let mut m = manifest("a.webm", T + 100);
        t.upsert_file(&m);
        assert!(t.take_due_sidecars().is_empty(), "no t0 yet, no sidecar");
        t.push(at(T + 150), chat("before t0 was known"));
        m.set_clock(&clock((T + 100) as f64, ClockSource::Arrival), at(T + 200));
        t.upsert_file(&m);
        let due = t.take_due_sidecars();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.len(), 1, "the earlier message is a cue: {due:?}");
        assert!(t.take_due_sidecars().is_empty(), "taken");
        t.push(at(T + 300), chat("while recording"));
        assert_eq!(t.take_due_sidecars()[0].1.len(), 2);
        // The sender-report clock moves t0 by some ms.
        m.set_clock(&clock((T + 100) as f64 - 23.5, ClockSource::SenderReports), at(T + 400));
        t.upsert_file(&m);
        let due = t.take_due_sidecars();
        assert_eq!(due[0].0.t0_unix_ms, Some((T + 100) as f64 - 23.5));
        assert_eq!(due[0].0.clock, Some(ClockSource::SenderReports));
        m.finish(RecordingState::Finished, at(T + 500), EndReason::PeerLeft, Some(1));
        t.upsert_file(&m);
        let due = t.take_due_sidecars();
        assert_eq!(due.len(), 1, "the end rewrites it");
        assert_eq!(due[0].0.state, RecordingState::Finished);
        // After the file's end, messages are not its cues.
        t.push(at(T + 600), chat("after"));
        assert!(t.take_due_sidecars().is_empty());
        // A message before the file started is not one of its cues either.
        let mut b = manifest("b.webm", T + 700);
        b.set_clock(&clock((T + 700) as f64, ClockSource::Arrival), at(T + 700));
        t.upsert_file(&b);
        let due = t.take_due_sidecars();
        assert_eq!(due.len(), 1);
        assert!(due[0].1.is_empty(), "{due:?}");
    }

    #[test]
    fn a_long_run_is_bounded_and_says_how_much_it_left_out() {
        let mut t = Timeline::new("r", None, at(T));
        for i in 0..MAX_RUN_EVENTS as u64 + 7 {
            t.push(at(T + i), chat("x"));
        }
        assert_eq!(t.events().len(), MAX_RUN_EVENTS);
        assert_eq!(t.to_json()["runs"][0]["events_omitted"], 7);
        let long = "y".repeat(MAX_ARGS_BYTES);
        let EventKind::Message { args, args_bytes, .. } = chat(&long) else { unreachable!() };
        assert_eq!((args, args_bytes), (None, Some(MAX_ARGS_BYTES + 4)), "[\"yyy…\"] is too long");
    }

    /// The sizes the module doc gives (`cargo test --lib timeline_size -- --nocapture` prints them).
    #[test]
    fn timeline_size() {
        let mut full = 0;
        for n in [100usize, 1_000, MAX_RUN_EVENTS] {
            let mut t = Timeline::new("standup", None, at(T));
            let peer = Member { id: "AbCdEfGhIjKlMnOpQrSt".into(), name: "alice".into() };
            for i in 0..n {
                let kind = match i % 10 {
                    0 => EventKind::MediaState { peer: peer.clone(), mic: Some(i % 20 == 0), cam: Some(true) },
                    1 => EventKind::MemberJoined { peer: peer.clone() },
                    _ => Timeline::message(
                        peer.clone(),
                        "chat",
                        Some("msg"),
                        Some(&[json!(format!("hello number {i}, how are you?"))]),
                        None,
                    ),
                };
                t.push(at(T + i as u64 * 100), kind);
            }
            let bytes = serde_json::to_vec(&t.to_json()).unwrap().len();
            println!("room.json of {n} events: {bytes} bytes ({} per event)", bytes / n);
            assert!(bytes / n < 170, "{bytes} bytes for {n} events");
            full = bytes;
        }
        assert!(full < 850_000, "a full run of short events: {full} bytes");
        let mut t = Timeline::new("standup", None, at(T));
        let peer = Member { id: "AbCdEfGhIjKlMnOpQrSt".into(), name: "alice".into() };
        let longest = json!("x".repeat(MAX_ARGS_BYTES - 4));
        for i in 0..100 {
            t.push(
                at(T + i),
                Timeline::message(peer.clone(), "chat", Some("msg"), Some(std::slice::from_ref(&longest)), None),
            );
        }
        let bytes = serde_json::to_vec(&t.to_json()).unwrap().len();
        println!("room.json of 100 events with the longest listed arguments: {bytes} bytes");
        assert!(bytes / 100 < 700, "{bytes}");
    }

    #[test]
    fn earlier_runs_come_first_and_bad_files_say_why() {
        let mut first = Timeline::new("r", None, at(T));
        first.push(at(T + 1), EventKind::MemberJoined { peer: alice() });
        first.end(at(T + 2), EndReason::RoomEmpty);
        let text = serde_json::to_vec(&first.to_json()).unwrap();
        let previous = Previous::parse(&text).unwrap();
        assert!(!previous.is_full());
        let mut second = Timeline::new("r", None, at(T + 100));
        second.set_previous(previous);
        let doc = second.to_json();
        let runs = doc["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["end_reason"], "room-empty");
        assert_eq!(runs[0]["events"][0]["type"], "member-joined");
        assert_eq!(runs[1]["started_unix_ms"], T + 100);
        assert_eq!(runs[1]["ended_unix_ms"], Value::Null);

        assert!(matches!(Previous::parse(b"{not json"), Err(PreviousError::NotJson(_))));
        assert!(matches!(Previous::parse(br#"{"version": 1}"#), Err(PreviousError::NoRuns)));
        assert!(matches!(Previous::parse(br#"{"version": 9, "runs": []}"#), Err(PreviousError::Version(9))));
        let full = Previous { runs: vec![json!({"events": []}); MAX_RUNS] };
        assert!(full.is_full());
    }

    #[test]
    fn sidecar_names_drop_the_extension() {
        assert_eq!(vtt_name("20261126T141503Z-p1-camera-cam-1.webm"), "20261126T141503Z-p1-camera-cam-1.vtt");
        assert_eq!(vtt_name("noext"), "noext.vtt");
    }
}
