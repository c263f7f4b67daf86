//! Checking recordings the way a user would: ffprobe and ffmpeg on the files,
//! and the manifests beside them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::wait::{wait_for_value, wait_for_value_every};

/// How often a file being written is probed again (each probe runs ffprobe).
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// `ffprobe -show_format -show_streams` as JSON.
pub fn ffprobe(path: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The stream of a kind (`video`/`audio`) in ffprobe output.
pub fn stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"].as_array()?.iter().find(|s| s["codec_type"] == kind)
}

/// Decode every frame: (exit success, error output, last video frame time in seconds).
pub fn decode(path: &Path) -> (bool, String, f64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    let full = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    (full.status.success(), decode_errors(&String::from_utf8_lossy(&full.stderr)), last)
}

/// The lines of ffmpeg's error output that are decode errors. Not errors:
/// the null muxer's complaints about timestamps rounded to its frame rate,
/// and ffmpeg's "Last message repeated N times" (the line it repeats was
/// judged on its own already).
pub fn decode_errors(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("non monotonically increasing dts to muxer"))
        .filter(|l| !is_repeat_notice(l))
        .collect();
    errors.join("\n")
}

/// ffmpeg's log line `    Last message repeated 3 times` (or `[ctx] Last message repeated ...`).
fn is_repeat_notice(line: &str) -> bool {
    let text = line.trim();
    let text = match text.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(text, |(_, after)| after),
        None => text,
    };
    text.strip_prefix("Last message repeated ")
        .and_then(|rest| rest.strip_suffix(" times"))
        .is_some_and(|n| n.trim().parse::<u64>().is_ok())
}

/// Picture sizes that appear in the video stream, in order, without repeats.
pub fn frame_sizes(path: &Path) -> Vec<(u32, u32)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',').filter(|s| !s.is_empty());
        if let (Some(w), Some(h)) = (it.next().and_then(|w| w.parse().ok()), it.next().and_then(|h| h.parse().ok()))
            && sizes.last() != Some(&(w, h))
        {
            sizes.push((w, h));
        }
    }
    sizes
}

/// Every manifest in a directory, parsed, oldest first (`room.json`, the
/// room's timeline, is not a manifest: it names no `file`).
pub fn manifests(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut found: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .filter_map(|p| Some((p.clone(), serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?)))
                .filter(|(_, m): &(PathBuf, Value)| m.get("file").is_some())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|(_, m)| (m["started_unix_ms"].as_u64(), m["file"].as_str().map(str::to_string)));
    found
}

/// Wait until `n` manifests in `dir` are no longer `recording`; returns them.
pub async fn finished_manifests(dir: &Path, n: usize, within: Duration) -> Vec<(PathBuf, Value)> {
    wait_for_value(&format!("{n} finished recordings in {}", dir.display()), within, || {
        let all = manifests(dir);
        let done: Vec<_> = all.iter().filter(|(_, m)| m["state"] != "recording").cloned().collect();
        std::future::ready(if done.len() >= n { Ok(done) } else { Err(format!("{all:#?}")) })
    })
    .await
}

/// Wait until at least `n` manifests are in `dir` and none of them is still
/// `recording` (nothing in the room is being written any more); returns them all.
pub async fn all_finished_manifests(dir: &Path, n: usize, within: Duration) -> Vec<(PathBuf, Value)> {
    wait_for_value(&format!("every recording in {} finished, at least {n}", dir.display()), within, || {
        let all = manifests(dir);
        let settled = all.len() >= n && all.iter().all(|(_, m)| m["state"] != "recording");
        std::future::ready(if settled { Ok(all) } else { Err(format!("{all:#?}")) })
    })
    .await
}

/// Seconds of media the file holds so far (last packet time minus first,
/// any stream), read from the file by ffprobe; 0 if nothing is readable yet.
/// Works on a file still being written (the templates write unbuffered).
pub async fn media_secs_in(path: &Path) -> f64 {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "quiet", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs (apt-get install ffmpeg)");
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if times.is_empty() { 0.0 } else { last - first }
}

/// The recordings of `dir` being written now, each with the seconds of media its file holds so far.
pub async fn recordings_in_progress(dir: &Path) -> Vec<(PathBuf, Value, f64)> {
    let mut found = Vec::new();
    for (path, manifest) in manifests(dir).into_iter().filter(|(_, m)| m["state"] == "recording") {
        let secs = media_secs_in(&file_of(&path, &manifest)).await;
        found.push((path, manifest, secs));
    }
    found
}

/// Wait (up to [`super::peers::LONG`]) until a recording in `dir` being written now
/// satisfies `pred(manifest, seconds of media in its file)`; returns it.
pub async fn recording_in_progress(dir: &Path, what: &str, pred: impl Fn(&Value, f64) -> bool) -> (PathBuf, Value) {
    wait_for_value_every(PROBE_EVERY, what, super::peers::LONG, || {
        let pred = &pred;
        async move {
            let now = recordings_in_progress(dir).await;
            match now.iter().find(|(_, m, secs)| pred(m, *secs)) {
                Some((path, manifest, _)) => Ok((path.clone(), manifest.clone())),
                None => Err(summary(&now)),
            }
        }
    })
    .await
}

/// Wait (up to [`super::peers::LONG`]) until at least `n` recordings in `dir`
/// are being written and each of `n` holds at least `secs` seconds of media.
pub async fn recordings_hold(dir: &Path, n: usize, secs: f64) {
    wait_for_value_every(
        PROBE_EVERY,
        &format!("{n} recordings in {} holding {secs} s of media", dir.display()),
        super::peers::LONG,
        || async move {
            let now = recordings_in_progress(dir).await;
            if now.iter().filter(|(_, _, held)| *held >= secs).count() >= n { Ok(()) } else { Err(summary(&now)) }
        },
    )
    .await
}

fn summary(recordings: &[(PathBuf, Value, f64)]) -> String {
    let lines: Vec<String> = recordings
        .iter()
        .map(|(_, m, secs)| {
            format!(
                "{} ({} video): {secs:.2} s",
                m["file"],
                if m["codecs"]["video"].is_object() { "with" } else { "no" }
            )
        })
        .collect();
    format!("recordings in progress: {lines:?}")
}

/// The recording file a manifest describes.
pub fn file_of(manifest_path: &Path, manifest: &Value) -> PathBuf {
    manifest_path.with_file_name(manifest["file"].as_str().unwrap())
}

pub fn duration_of(probe: &Value) -> f64 {
    probe["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0)
}
