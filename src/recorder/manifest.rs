//! The `.json` sidecar of a recording: who, what, which codecs, when, how
//! long, how big and why it ended. Written when the recording starts
//! (`state: "recording"`) and rewritten when it ends, each time atomically
//! (temporary file + rename), so a reader never sees half a manifest.

use super::end_reason::EndReason;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::naming::{rfc3339, unix_ms};
use crate::media::clock_status::{ClockSource, ClockStatus};
use crate::participant::events::CodecInfo;
use crate::participant::streams::StreamEvents;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    Recording,
    Finished,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerSummary {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodecSummary {
    pub mime_type: String,
    pub clock_rate: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fmtp: String,
}

impl From<&CodecInfo> for CodecSummary {
    fn from(c: &CodecInfo) -> Self {
        CodecSummary {
            mime_type: c.mime_type.clone(),
            clock_rate: c.clock_rate,
            channels: (c.channels > 0).then_some(c.channels),
            fmtp: c.fmtp.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Codecs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<CodecSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<CodecSummary>,
}

/// Everything the manifest says.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub state: RecordingState,
    /// The recording's file name (same directory).
    pub file: String,
    /// The rtc.io server of the room when it is not this gateway's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub room: String,
    pub peer: PeerSummary,
    pub stream_id: String,
    /// The first event the stream was emitted under (`camera`, `screen`, ...).
    pub event: String,
    /// Every event the stream was emitted under, with its arguments
    /// (the stream itself appears as `"[RTCIOStream] <id>"`); null if the peer never said.
    pub events: Option<StreamEvents>,
    pub template: String,
    pub codecs: Codecs,
    pub started_at: String,
    pub started_unix_ms: u64,
    pub ended_at: Option<String>,
    pub ended_unix_ms: Option<u64>,
    pub duration_secs: Option<f64>,
    pub size_bytes: Option<u64>,
    /// Why it ended: `stream-ended`, `peer-left`, `stopped`, `shutdown`,
    /// `tracks-changed`, `pipeline-error`, ...
    pub end_reason: Option<EndReason>,
    pub error: Option<String>,
    /// From the start of the recording to the first video keyframe.
    pub first_keyframe_ms: Option<u64>,
    /// Wall-clock time (Unix ms, fractions kept) of the file's presentation
    /// time zero: any instant `t` of the file happened at `t0_unix_ms + t`.
    /// On the sender's clock once its reports arrived (see `clock`).
    pub t0_unix_ms: Option<f64>,
    /// How good `t0_unix_ms` is.
    pub clock: Option<ManifestClock>,
    /// A room composite's picture (absent for a stream's recording).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite: Option<CompositeSummary>,
}

/// What a room composite shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompositeSummary {
    pub layout: crate::composite::layout::LayoutKind,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    /// The members shown or heard, by name, in the order they first were.
    pub members: Vec<String>,
}

/// How a file's `t0_unix_ms` was learnt, as of the manifest's writing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestClock {
    /// `sender-reports` (the sender's wall clock) or `arrival` (the gateway's, at the packets' arrival).
    pub source: ClockSource,
    /// RTCP sender reports seen on the file's tracks.
    pub sender_reports: u32,
    /// Age of the latest report when the manifest was written (ms).
    pub last_report_age_ms: Option<f64>,
}

impl ManifestClock {
    pub fn new(status: &ClockStatus, now: SystemTime) -> ManifestClock {
        let now_ms = crate::media::clock_status::unix_ms(now);
        ManifestClock {
            source: status.source,
            sender_reports: status.sender_reports,
            last_report_age_ms: status.last_report_unix_ms.map(|at| (now_ms - at).max(0.0)),
        }
    }
}

impl Manifest {
    pub fn started(at: SystemTime) -> (String, u64) {
        (rfc3339(at), unix_ms(at))
    }

    /// Fill in the end: state, time, duration, size and reason.
    pub fn finish(&mut self, state: RecordingState, at: SystemTime, reason: EndReason, size_bytes: Option<u64>) {
        self.state = state;
        self.ended_at = Some(rfc3339(at));
        let ended = unix_ms(at);
        self.ended_unix_ms = Some(ended);
        self.duration_secs = Some(ended.saturating_sub(self.started_unix_ms) as f64 / 1000.0);
        self.size_bytes = size_bytes;
        self.end_reason = Some(reason);
    }

    /// A recording manifest for unit tests: `file` of `peer` in room `r`,
    /// stream `s1` under `camera`, just started, nothing else known.
    #[cfg(test)]
    pub(crate) fn for_test(file: &str, peer: PeerSummary, started_unix_ms: u64) -> Manifest {
        Manifest {
            state: RecordingState::Recording,
            file: file.into(),
            server: None,
            room: "r".into(),
            peer,
            stream_id: "s1".into(),
            event: "camera".into(),
            events: None,
            template: "record-webm".into(),
            codecs: Codecs::default(),
            started_at: String::new(),
            started_unix_ms,
            ended_at: None,
            ended_unix_ms: None,
            duration_secs: None,
            size_bytes: None,
            end_reason: None,
            error: None,
            first_keyframe_ms: None,
            t0_unix_ms: None,
            clock: None,
            composite: None,
        }
    }

    /// Take the file's clock as it is now; true if `t0` or its source changed.
    pub fn set_clock(&mut self, status: &ClockStatus, now: SystemTime) -> bool {
        let changed =
            self.t0_unix_ms != Some(status.t0_unix_ms) || self.clock.as_ref().is_none_or(|c| c.source != status.source);
        self.t0_unix_ms = Some(status.t0_unix_ms);
        self.clock = Some(ManifestClock::new(status, now));
        changed
    }
}

/// `<recording>.json` beside `<recording>.<ext>`.
pub fn manifest_path(recording: &Path) -> PathBuf {
    recording.with_extension("json")
}

/// Write atomically: a reader sees the old or the new manifest, never a mix.
pub fn write_manifest(path: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

/// The event name a stream is filed under: its first event, or `stream`.
pub fn primary_event(events: Option<&StreamEvents>) -> String {
    events.and_then(|e| e.keys().next().cloned()).unwrap_or_else(|| "stream".to_string())
}

/// Metadata arguments as JSON (for logs and the API).
pub fn events_json(events: Option<&StreamEvents>) -> Value {
    serde_json::to_value(events).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> Manifest {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_702_503);
        let (started_at, started_unix_ms) = Manifest::started(at);
        let mut events = StreamEvents::new();
        events.insert("camera".into(), vec![serde_json::json!({"cam": "[RTCIOStream] s1", "metadata": {"k": 1}})]);
        let mut m = Manifest::for_test("x.webm", PeerSummary { id: "p".into(), name: "Alice".into() }, started_unix_ms);
        m.started_at = started_at;
        m.event = primary_event(Some(&events));
        m.events = Some(events);
        m
    }

    #[test]
    fn manifest_is_written_atomically_and_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = manifest_path(&dir.path().join("x.webm"));
        let mut m = sample();
        write_manifest(&path, &m).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["state"], "recording");
        assert_eq!(v["event"], "camera");
        assert_eq!(v["events"]["camera"][0]["metadata"]["k"], 1);
        m.finish(
            RecordingState::Finished,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_702_513_500),
            EndReason::PeerLeft,
            Some(42),
        );
        write_manifest(&path, &m).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["state"], "finished");
        assert_eq!(v["duration_secs"], 10.5);
        assert_eq!(v["end_reason"], "peer-left");
        assert_eq!(v["ended_at"], "2026-11-26T14:15:13.500Z");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn streams_without_metadata_are_filed_as_stream() {
        assert_eq!(primary_event(None), "stream");
    }
}
