//! `rtcio-gateway mux <room dir>`: every recording of a room in one Matroska
//! file on the room clock, names as track titles, chat as a subtitle track;
//! passthrough (no re-encode).
//!
//! - [`scan`]: reads the room directory (manifests, media files, `chat.jsonl`).
//! - [`plan`]: what goes where on the room clock, titles, chat cues (pure).
//! - [`driver`]: GStreamer: each file's tracks, and the one muxing pipeline.
//! - [`mend`]: fixes in place what `matroskamux` 1.22 writes wrong (escaped title tags, a short Duration).
//! - [`report`]: the progress line and the final summary (pure).
//!
//! This module runs them in order and owns the output file: it refuses an
//! existing one unless forced, and writes to `.<name>.part` beside it, renamed
//! at the end, so a failed or killed mux leaves nothing under the final name
//! (a killed one leaves the `.part`, which the next mux overwrites).

pub mod driver;
pub mod mend;
pub mod plan;
pub mod report;
pub mod scan;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use report::MuxReport;

/// The default output name in the room directory.
pub const DEFAULT_OUT: &str = "room.mkv";

#[derive(Debug, Clone)]
pub struct MuxOptions {
    pub room_dir: PathBuf,
    /// Default: `<room dir>/room.mkv`.
    pub out: Option<PathBuf>,
    /// Replace an existing output file.
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    #[error("nothing to mux in {}: no recording with media could be placed on the room clock{}", dir.display(), notes.iter().map(|n| format!("\n  - {n}")).collect::<String>())]
    Nothing { dir: PathBuf, notes: Vec<String> },
    #[error(transparent)]
    Driver(#[from] driver::DriverError),
    #[error("{} exists (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

/// Mux the room; `progress(position_ns, expected_total_ns)` is called while
/// the muxer runs.
pub fn run(opts: &MuxOptions, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<MuxReport, MuxError> {
    let started = Instant::now();
    let out = opts.out.clone().unwrap_or_else(|| opts.room_dir.join(DEFAULT_OUT));
    if out.exists() && !opts.force {
        return Err(MuxError::Exists(out));
    }
    driver::init()?;
    let room = scan::scan(&opts.room_dir, &out)?;
    let mut notes = room.notes;
    let mut probed = Vec::new();
    for recording in room.recordings {
        match driver::probe_file(&recording.path) {
            Ok((tracks, end_ns)) => probed.push(plan::ProbedFile { recording, tracks, end_ns }),
            Err(why) => notes.push(format!("{}: cannot be read ({why}): skipped", recording.file)),
        }
    }
    let plan = match plan::plan(probed, &room.chat) {
        Ok(plan) => plan,
        Err(plan::PlanError::Nothing(why)) => {
            notes.extend(why);
            return Err(MuxError::Nothing { dir: opts.room_dir.clone(), notes });
        }
    };
    notes.extend(plan.notes.iter().cloned());
    let part = part_path(&out);
    let total = plan.expected_end_ns;
    let tracks = match driver::run(&plan, &part, &mut |position| progress(position, total)) {
        Ok(tracks) => tracks,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
    };
    let titles: Vec<String> = tracks.iter().map(|t| t.title.clone()).collect();
    let end_ns = tracks.iter().filter_map(|t| t.end_ns).max().unwrap_or(0);
    if let Err(error) = mend::titles(&part, &titles).and_then(|_| mend::duration(&part, end_ns)) {
        let _ = std::fs::remove_file(&part);
        return Err(MuxError::Io { path: part, error });
    }
    if out.exists() && !opts.force {
        let _ = std::fs::remove_file(&part);
        return Err(MuxError::Exists(out));
    }
    std::fs::rename(&part, &out).map_err(|error| MuxError::Io { path: out.clone(), error })?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    Ok(MuxReport {
        room_dir: opts.room_dir.clone(),
        out,
        bytes,
        elapsed: started.elapsed(),
        t0_unix_ms: plan.t0_unix_ms,
        tracks,
        notes,
    })
}

/// `.<name>.part` beside `out`.
fn part_path(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| DEFAULT_OUT.into());
    out.with_file_name(format!(".{name}.part"))
}
