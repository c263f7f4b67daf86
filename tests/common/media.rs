//! Checking recordings the way a user would: ffprobe and ffmpeg on the files,
//! and the manifests beside them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

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
    // The null muxer's complaints about timestamps rounded to its frame rate are not decode errors.
    let errors: Vec<&str> = std::str::from_utf8(&full.stderr)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.contains("non monotonically increasing dts to muxer"))
        .collect();
    (full.status.success(), errors.join("\n"), last)
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

/// Every manifest in a directory, parsed, oldest first.
pub fn manifests(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut found: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .filter_map(|p| Some((p.clone(), serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|(_, m)| (m["started_unix_ms"].as_u64(), m["file"].as_str().map(str::to_string)));
    found
}

/// Wait until `n` manifests in `dir` are no longer `recording`; returns them.
pub async fn finished_manifests(dir: &Path, n: usize, within: Duration) -> Vec<(PathBuf, Value)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let all = manifests(dir);
        let done: Vec<_> = all.iter().filter(|(_, m)| m["state"] != "recording").cloned().collect();
        if done.len() >= n {
            return done;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{} of {n} recordings finished in {within:?}: {all:#?}", done.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The recording file a manifest describes.
pub fn file_of(manifest_path: &Path, manifest: &Value) -> PathBuf {
    manifest_path.with_file_name(manifest["file"].as_str().unwrap())
}

pub fn duration_of(probe: &Value) -> f64 {
    probe["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0)
}
