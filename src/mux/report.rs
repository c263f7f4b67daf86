//! What `mux` tells its user: the progress line shown on a terminal while it
//! runs, and the summary of what it placed where. Pure formatting.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::driver::TrackOutcome;

/// The result of one mux.
#[derive(Debug, Clone)]
pub struct MuxReport {
    pub room_dir: PathBuf,
    pub out: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
    /// The room clock's zero (Unix ms).
    pub t0_unix_ms: f64,
    /// In the output's track order.
    pub tracks: Vec<TrackOutcome>,
    /// What was skipped or approximated, and why.
    pub notes: Vec<String>,
}

/// A room-clock time: `mm:ss.mmm`, or `h:mm:ss.mmm` from an hour on.
pub fn clock(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 { format!("{h}:{m:02}:{s:02}.{frac:03}") } else { format!("{m:02}:{s:02}.{frac:03}") }
}

/// `muxing 01:02.500 / 10:00.000 (10 %)`; without a known total, the position alone.
pub fn progress_line(position_ns: u64, total_ns: Option<u64>) -> String {
    match total_ns.filter(|t| *t > 0) {
        Some(total) => {
            let pct = (position_ns as f64 / total as f64 * 100.0).min(100.0);
            format!("muxing {} / {} ({pct:.0} %)", clock(position_ns), clock(total))
        }
        None => format!("muxing {}", clock(position_ns)),
    }
}

fn utc(unix_ms: f64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms.round() as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{unix_ms} ms"))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The final summary: the output, the room clock, each track's source,
/// title, codec, start and end on the room clock, and the notes.
pub fn summary(r: &MuxReport) -> String {
    let mut out = format!(
        "muxed {} → {} ({}, {} tracks) in {:.1} s\nroom clock 00:00.000 = {} (the earliest file's time zero)\n",
        r.room_dir.display(),
        r.out.display(),
        size(r.bytes),
        r.tracks.len(),
        r.elapsed.as_secs_f64(),
        utc(r.t0_unix_ms),
    );
    let width = r.tracks.iter().map(|t| t.title.chars().count()).max().unwrap_or(5).max(5);
    out.push_str(&format!(
        "{:>3}  {:<width$}  {:<6}  {:<11}  {:<11}  {:>7}  source\n",
        "#", "track", "codec", "start", "end", "frames"
    ));
    for (i, t) in r.tracks.iter().enumerate() {
        let at = |ns: Option<u64>| ns.map(clock).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:>3}  {:<width$}  {:<6}  {:<11}  {:<11}  {:>7}  {}\n",
            i + 1,
            t.title,
            t.codec,
            at(t.first_ns),
            at(t.end_ns),
            t.frames,
            t.source
        ));
    }
    if !r.notes.is_empty() {
        out.push_str("notes:\n");
        for n in &r.notes {
            out.push_str(&format!("  - {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::plan::TrackKind;

    #[test]
    fn times_read_as_clock_positions() {
        assert_eq!(clock(0), "00:00.000");
        assert_eq!(clock(3_150_250_000), "00:03.150");
        assert_eq!(clock(3_725_004_000_000), "1:02:05.004");
        assert_eq!(clock(3_600_000_000_000 + 61_500_000_000), "1:01:01.500");
        assert_eq!(progress_line(30_000_000_000, Some(120_000_000_000)), "muxing 00:30.000 / 02:00.000 (25 %)");
        assert_eq!(progress_line(30_000_000_000, None), "muxing 00:30.000");
    }

    #[test]
    fn the_summary_says_what_went_where() {
        let r = MuxReport {
            room_dir: "/rec/r".into(),
            out: "/rec/r/room.mkv".into(),
            bytes: 3 << 20,
            elapsed: Duration::from_millis(1500),
            t0_unix_ms: 1_795_702_503_250.4,
            tracks: vec![TrackOutcome {
                title: "bob — camera (video)".into(),
                kind: Some(TrackKind::Video),
                codec: "H.264".into(),
                source: "b.mkv".into(),
                first_ns: Some(3_000_000_000),
                end_ns: Some(9_500_000_000),
                frames: 195,
            }],
            notes: vec!["b.mkv: interrupted".into()],
        };
        let s = summary(&r);
        assert!(s.starts_with("muxed /rec/r → /rec/r/room.mkv (3.0 MiB, 1 tracks) in 1.5 s\n"), "{s}");
        assert!(s.contains("= 2026-11-26T14:15:03.250Z"), "{s}");
        assert!(s.contains("  1  bob — camera (video)  H.264   00:03.000    00:09.500        195  b.mkv\n"), "{s}");
        assert!(s.ends_with("notes:\n  - b.mkv: interrupted\n"), "{s}");
    }
}
