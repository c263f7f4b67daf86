//! `rtcio-gateway mux` as a user runs it, and reading its output back the
//! way a player would: ffprobe for tracks, titles and packets, decoding for
//! frame times, ffmpeg for the chat subtitles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One run of `rtcio-gateway mux`.
#[derive(Debug)]
pub struct MuxRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run `rtcio-gateway mux <room_dir> <extra...>`.
pub fn run_mux(room_dir: &Path, extra: &[&str]) -> MuxRun {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rtcio-gateway")).arg("mux").arg(room_dir).args(extra).output().unwrap();
    MuxRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// The default output of `mux` for a room directory.
pub fn mux_output(room_dir: &Path) -> PathBuf {
    room_dir.join("room.mkv")
}

/// A track of a Matroska/WebM file as ffprobe lists it, with its packets.
#[derive(Debug, Clone)]
pub struct Track {
    /// Stream index in the file.
    pub index: u64,
    /// `video`, `audio` or `subtitle`.
    pub kind: String,
    pub codec: String,
    pub title: String,
    /// (pts in seconds on the file's time line, size in bytes), in file order.
    pub packets: Vec<(f64, u64)>,
}

/// Every track of `path`.
pub fn tracks(path: &Path) -> Vec<Track> {
    let probe = super::media::ffprobe(path);
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let index = s["index"].as_u64().unwrap();
            Track {
                index,
                kind: s["codec_type"].as_str().unwrap_or_default().to_string(),
                codec: s["codec_name"].as_str().unwrap_or_default().to_string(),
                title: title_of(s),
                packets: packets(path, index),
            }
        })
        .collect()
}

fn title_of(stream: &Value) -> String {
    let tags = &stream["tags"];
    tags["title"].as_str().or_else(|| tags["TITLE"].as_str()).unwrap_or_default().to_string()
}

/// (pts seconds, size) of every packet of stream `index`.
pub fn packets(path: &Path, index: u64) -> Vec<(f64, u64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &index.to_string(), "-show_entries", "packet=pts_time,size"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((it.next()?.parse().ok()?, it.next()?.trim().parse().ok()?))
        })
        .collect()
}

/// Presentation times (s) of the frames ffmpeg decodes from stream `index`.
pub fn decoded_frame_times(path: &Path, index: u64) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &index.to_string(), "-show_entries", "frame=pts_time"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

/// The cues of the first subtitle track: (start s, end s, text), on the file's own time line.
pub fn subtitles(path: &Path) -> Vec<(f64, f64, String)> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-copyts", "-i"])
        .arg(path)
        .args(["-map", "0:s:0", "-f", "srt", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg srt: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines().skip_while(|l| l.trim().is_empty());
            lines.next()?; // cue number
            let (start, end) = lines.next()?.split_once(" --> ")?;
            Some((srt_time(start)?, srt_time(end)?, lines.collect::<Vec<_>>().join("\n")))
        })
        .collect()
}

fn srt_time(t: &str) -> Option<f64> {
    let (hms, ms) = t.trim().split_once(',')?;
    let mut parts = hms.split(':').map(|p| p.parse::<f64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(h * 3600.0 + m * 60.0 + s + ms.parse::<f64>().ok()? / 1000.0)
}
