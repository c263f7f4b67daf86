//! One recording file of a stream: claiming a free name in the room
//! directory, the manifest beside it (written at the start and the end), and
//! counting the bytes it grew by.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::file_events::FileEvents;
use super::manifest::{self, CodecSummary, Codecs, Manifest, PeerSummary, RecordingState};
use super::naming::RecordingName;
use super::stream_context::StreamContext;
use crate::metrics::MediaMetrics;
use crate::participant::events::CodecInfo;

pub(super) struct RecordFile {
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    bytes_counted: u64,
}

pub(super) fn new_record_file(
    context: &StreamContext,
    room_dir: &Path,
    template: &str,
    extension: &str,
    started_at: SystemTime,
    video: Option<&CodecInfo>,
    audio: Option<&CodecInfo>,
) -> std::io::Result<RecordFile> {
    let event = manifest::primary_event(context.events.as_ref());
    let name = RecordingName {
        started: started_at,
        peer_id: &context.peer.id,
        event: &event,
        stream_id: &context.stream_id,
        extension,
    };
    let path = claim_free_name(room_dir, |attempt| name.file_name(attempt))?;
    let (started_at_text, started_unix_ms) = Manifest::started(started_at);
    let record = RecordFile {
        manifest_path: manifest::manifest_path(&path),
        manifest: Manifest {
            state: RecordingState::Recording,
            file: path.file_name().unwrap_or_default().to_string_lossy().to_string(),
            server: context.server.clone(),
            room: context.room.clone(),
            peer: PeerSummary { id: context.peer.id.clone(), name: context.peer.name.clone() },
            stream_id: context.stream_id.clone(),
            event,
            events: context.events.clone(),
            template: template.to_string(),
            codecs: Codecs { video: video.map(CodecSummary::from), audio: audio.map(CodecSummary::from) },
            started_at: started_at_text,
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
        },
        path,
        bytes_counted: 0,
    };
    manifest::write_manifest(&record.manifest_path, &record.manifest)?;
    context.files.send(&record.manifest);
    Ok(record)
}

/// Create `room_dir` and claim a free file name in it atomically: `name(1)`,
/// else `name(2)`, ... (a recording restarted within a second).
pub(super) fn claim_free_name(room_dir: &Path, name: impl Fn(u32) -> String) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(room_dir)?;
    let mut attempt = 1;
    loop {
        let path = room_dir.join(name(attempt));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Write the manifest (a failure is logged) and copy it to the room.
pub(super) fn write_manifest_logged(record: &RecordFile, files: &FileEvents) {
    if let Err(e) = manifest::write_manifest(&record.manifest_path, &record.manifest) {
        tracing::warn!(path = %record.manifest_path.display(), error = %e, "cannot write the manifest");
    }
    files.send(&record.manifest);
}

/// Count the bytes the file grew by since the last call; returns them.
pub(super) fn count_bytes_written(record: &mut RecordFile, metrics: &MediaMetrics) -> u64 {
    let Ok(meta) = std::fs::metadata(&record.path) else { return 0 };
    let grown = meta.len().saturating_sub(record.bytes_counted);
    if grown > 0 {
        metrics.recording_bytes_written_total.inc_by(grown);
        record.bytes_counted = meta.len();
    }
    grown
}

impl RecordFile {
    pub(super) fn bytes_counted(&self) -> u64 {
        self.bytes_counted
    }
}
