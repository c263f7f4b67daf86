//! How long the control API takes to list recordings when the recordings
//! directory is big (the status page asks for the newest 200 every second).
//! Creates `ROOMS` × `PER_ROOM` recordings (manifest + a tiny media file) in
//! a temporary directory, then times `api::recordings::list` for the newest
//! 200, one room's recordings, and everything.
//!
//! Run: `cargo bench --bench recordings_list` (env ROOMS, PER_ROOM).

use std::collections::HashSet;
use std::time::Instant;

use rtcio_gateway::api::recordings::list;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let rooms = env("ROOMS", 500);
    let per_room = env("PER_ROOM", 100);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path();
    let made = Instant::now();
    for r in 0..rooms {
        let room_dir = dir.join(format!("room-{r}"));
        std::fs::create_dir_all(&room_dir).unwrap();
        for i in 0..per_room {
            // Spread start times over rooms so the newest are in many directories.
            let secs = 1_795_000_000 + (i * rooms + r) as u64;
            let stem = format!("2026{:010}Z-peer{r}-camera-{i:08x}", secs);
            let manifest = serde_json::json!({
                "state": "finished", "file": format!("{stem}.webm"), "room": format!("room-{r}"),
                "peer": {"id": "p", "name": "n"}, "stream_id": "s", "event": "camera", "template": "record-webm",
                "codecs": {}, "started_at": "2026-11-26T00:00:00.000Z", "started_unix_ms": secs * 1000,
                "duration_secs": 60.0, "size_bytes": 1, "end_reason": "peer-left",
            });
            std::fs::write(room_dir.join(format!("{stem}.json")), serde_json::to_vec(&manifest).unwrap()).unwrap();
            std::fs::write(room_dir.join(format!("{stem}.webm")), b"x").unwrap();
        }
    }
    let total = rooms * per_room;
    println!("{total} recordings in {rooms} rooms (created in {:.1} s)", made.elapsed().as_secs_f64());
    let active = HashSet::new();
    let time = |what: &str, f: &dyn Fn() -> usize| {
        f(); // warm the page cache
        let runs = 5;
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..runs {
            n = f();
        }
        println!("{what:<28} {n:>7} listed  {:>8.1} ms per call", start.elapsed().as_secs_f64() * 1000.0 / runs as f64);
    };
    time("newest 200 (status page)", &|| list(dir, &active, None, None, 200).len());
    time("one room, all", &|| list(dir, &active, Some("room-7"), None, 10_000).len());
    time("everything", &|| list(dir, &active, None, None, usize::MAX).len());
}
