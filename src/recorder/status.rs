//! What one room's recorder is doing right now: its streams, which of them
//! are being written to a file (and how big that file is) or relayed, and
//! when each last received media. The stream tasks write it; the control
//! API, the status page and the health gauges read it.
//!
//! It is a small mutex-protected map, written a few times per second per
//! stream (housekeeping, output start/end), never per packet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use crate::participant::events::{MediaKind, PeerInfo};

/// A relay output's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayState {
    /// Waiting for the stream's tracks or its first keyframe.
    Starting,
    /// Media flows to the RTMP server.
    Live,
    /// The pipeline failed; it is restarted after a back-off.
    Restarting,
}

/// The file a stream is being recorded into.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    #[serde(skip)]
    pub path: PathBuf,
    pub file: String,
    pub template: String,
    pub started_at: String,
    pub bytes: u64,
}

/// One received stream.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    pub peer: PeerInfo,
    pub stream_id: String,
    pub event: String,
    pub kinds: Vec<MediaKind>,
    pub recording: Option<FileStatus>,
    pub relay: Option<RelayState>,
    /// When an output of the stream last got a packet.
    pub last_data: Option<Instant>,
    /// Since when a video output has been waiting for its first keyframe.
    pub keyframe_wait_since: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    streams: BTreeMap<(String, String), StreamStatus>,
    /// Bytes written by this room's recordings since recording (re)started.
    recorded_bytes: u64,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct RoomStatus(Arc<Mutex<Inner>>);

impl std::fmt::Debug for RoomStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomStatus").field("streams", &self.0.lock().streams.len()).finish()
    }
}

/// Health of the outputs of many rooms, for the gauges.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct OutputHealth {
    /// Longest time since an active recording last got media, seconds.
    pub recording_data_age_secs: f64,
    /// Longest current wait of a video output for its first keyframe, seconds.
    pub keyframe_wait_secs: f64,
}

impl RoomStatus {
    pub fn insert(&self, status: StreamStatus) {
        self.0.lock().streams.insert((status.peer.id.clone(), status.stream_id.clone()), status);
    }

    pub fn remove(&self, peer_id: &str, stream_id: &str) {
        self.0.lock().streams.remove(&(peer_id.to_string(), stream_id.to_string()));
    }

    /// Change one stream's entry (no-op if it is gone).
    pub fn update(&self, peer_id: &str, stream_id: &str, change: impl FnOnce(&mut StreamStatus)) {
        if let Some(s) = self.0.lock().streams.get_mut(&(peer_id.to_string(), stream_id.to_string())) {
            change(s);
        }
    }

    pub fn add_recorded_bytes(&self, bytes: u64) {
        self.0.lock().recorded_bytes += bytes;
    }

    pub fn recorded_bytes(&self) -> u64 {
        self.0.lock().recorded_bytes
    }

    pub fn reset_recorded_bytes(&self) {
        self.0.lock().recorded_bytes = 0;
    }

    pub fn streams(&self) -> Vec<StreamStatus> {
        self.0.lock().streams.values().cloned().collect()
    }

    /// Fold this room's outputs into `health` as of `now`.
    pub fn add_health(&self, now: Instant, health: &mut OutputHealth) {
        for s in self.0.lock().streams.values() {
            if s.recording.is_some() {
                let age = s.last_data.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
                health.recording_data_age_secs = health.recording_data_age_secs.max(age);
            }
            if let Some(since) = s.keyframe_wait_since {
                health.keyframe_wait_secs =
                    health.keyframe_wait_secs.max(now.saturating_duration_since(since).as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stream(id: &str) -> StreamStatus {
        StreamStatus {
            peer: PeerInfo { id: "p".into(), name: "P".into() },
            stream_id: id.into(),
            event: "camera".into(),
            kinds: vec![MediaKind::Video],
            recording: None,
            relay: None,
            last_data: None,
            keyframe_wait_since: None,
        }
    }

    #[test]
    fn health_takes_the_worst_output() {
        let status = RoomStatus::default();
        let now = Instant::now();
        let file = FileStatus {
            path: "x".into(),
            file: "x".into(),
            template: "t".into(),
            started_at: String::new(),
            bytes: 0,
        };
        status.insert(StreamStatus { recording: Some(file.clone()), last_data: Some(now), ..stream("a") });
        status.insert(StreamStatus {
            recording: Some(file),
            last_data: now.checked_sub(Duration::from_secs(12)),
            ..stream("b")
        });
        // Not recorded: its silence does not count.
        status.insert(StreamStatus { last_data: now.checked_sub(Duration::from_secs(60)), ..stream("c") });
        status.update("p", "c", |s| s.keyframe_wait_since = now.checked_sub(Duration::from_secs(3)));
        let mut health = OutputHealth::default();
        status.add_health(now, &mut health);
        assert!((health.recording_data_age_secs - 12.0).abs() < 0.01, "{health:?}");
        assert!((health.keyframe_wait_secs - 3.0).abs() < 0.01, "{health:?}");
        status.remove("p", "b");
        let mut health = OutputHealth::default();
        status.add_health(now, &mut health);
        assert_eq!(health.recording_data_age_secs, 0.0);
    }
}
