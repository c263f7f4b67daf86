//! Recordings on disk as the API shows them: found by their `.json`
//! manifests under `<recordings dir>/<room dir>/`, identified by
//! `<room dir>/<file stem>`. Ids from requests are checked to be plain path
//! components before they touch the file system, and a manifest's `file` is
//! only followed if it is a plain file name in the same directory. A
//! recording's WebVTT sidecar is `<stem>.vtt` beside it; a room directory's
//! timeline is its `room.json` ([`crate::recorder::timeline`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// A recording: its manifest plus what the disk says now.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingEntry {
    pub id: String,
    pub room: String,
    pub file: String,
    /// `recording`, `finished`, `failed`, or `interrupted` (the manifest
    /// says recording but no gateway is writing it: the process that did was
    /// killed; the file is still playable).
    pub state: String,
    /// Size of the file on disk now (grows while recording).
    pub size_bytes: u64,
    pub started_unix_ms: u64,
    pub media_url: String,
    /// The WebVTT sidecar (chat and ctrl events on the file's time line), once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vtt_url: Option<String>,
    /// The room directory's timeline (`room.json`), once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_url: Option<String>,
    pub manifest: Value,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    pub manifest_path: PathBuf,
    #[serde(skip)]
    pub vtt_path: PathBuf,
}

/// Whether `part` can be used as one path component of an id.
pub fn is_safe_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 255
        && !part.starts_with('.')
        && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Read one recording by id parts; `None` if there is no such recording.
pub fn load(dir: &Path, room_dir: &str, stem: &str, active: &HashSet<PathBuf>) -> Option<RecordingEntry> {
    if !is_safe_component(room_dir) || !is_safe_component(stem) {
        return None;
    }
    entry(dir, room_dir, &dir.join(room_dir).join(format!("{stem}.json")), active)
}

fn entry(dir: &Path, room_dir: &str, manifest_path: &Path, active: &HashSet<PathBuf>) -> Option<RecordingEntry> {
    let text = std::fs::read(manifest_path).ok()?;
    let manifest: Value = serde_json::from_slice(&text).ok()?;
    let file = manifest.get("file")?.as_str()?.to_string();
    let stem = manifest_path.file_stem()?.to_str()?.to_string();
    // The manifest names its recording; it must be `<stem>.<ext>` beside it.
    if !is_safe_component(&file) || Path::new(&file).file_stem()?.to_str()? != stem {
        return None;
    }
    let path = dir.join(room_dir).join(&file);
    let size_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut state = manifest.get("state").and_then(Value::as_str).unwrap_or("unknown").to_string();
    if state == "recording" && !active.contains(&path) {
        state = "interrupted".to_string();
    }
    let id = format!("{room_dir}/{stem}");
    let vtt_path = dir.join(room_dir).join(format!("{stem}.vtt"));
    let vtt_url = vtt_path.is_file().then(|| format!("/api/v1/recordings/{id}/vtt"));
    let timeline_url =
        timeline_path(dir, room_dir).is_some_and(|p| p.is_file()).then(|| format!("/api/v1/timelines/{room_dir}"));
    Some(RecordingEntry {
        room: manifest.get("room").and_then(Value::as_str).unwrap_or_default().to_string(),
        started_unix_ms: manifest.get("started_unix_ms").and_then(Value::as_u64).unwrap_or(0),
        media_url: format!("/api/v1/recordings/{id}/media"),
        vtt_url,
        timeline_url,
        id,
        file,
        state,
        size_bytes,
        manifest,
        path,
        manifest_path: manifest_path.to_path_buf(),
        vtt_path,
    })
}

/// `<dir>/<room_dir>/room.json`, if `room_dir` is a plain component.
pub fn timeline_path(dir: &Path, room_dir: &str) -> Option<PathBuf> {
    is_safe_component(room_dir).then(|| dir.join(room_dir).join(crate::recorder::timeline::FILE_NAME))
}

/// Every recording under `dir`, newest first; filtered by room and state;
/// at most `limit`. Recording names start with their UTC start time, so the
/// manifests are read newest first by name and reading stops once `limit`
/// match — a status page asking for the latest 200 of 100,000 recordings
/// reads about 200 manifests, not all of them.
pub fn list(
    dir: &Path,
    active: &HashSet<PathBuf>,
    room: Option<&str>,
    state: Option<&str>,
    limit: usize,
) -> Vec<RecordingEntry> {
    let room_dirs: Vec<String> = match room {
        // A room's recordings are all in its (sanitised) directory.
        Some(room) => vec![crate::recorder::naming::sanitize_component(room)],
        None => std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut candidates: Vec<(String, String)> = Vec::new();
    for room_dir in room_dirs.into_iter().filter(|d| is_safe_component(d)) {
        let Ok(files) = std::fs::read_dir(dir.join(&room_dir)) else { continue };
        for file in files.flatten() {
            let name = file.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            candidates.push((stem.to_string(), room_dir.clone()));
        }
    }
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    let mut found = Vec::new();
    for (stem, room_dir) in candidates {
        if found.len() >= limit {
            break;
        }
        let manifest = dir.join(&room_dir).join(format!("{stem}.json"));
        let Some(entry) = entry(dir, &room_dir, &manifest, active) else { continue };
        if room.is_some_and(|r| r != entry.room) || state.is_some_and(|s| s != entry.state) {
            continue;
        }
        found.push(entry);
    }
    found.sort_by(|a, b| b.started_unix_ms.cmp(&a.started_unix_ms).then_with(|| b.id.cmp(&a.id)));
    found
}

/// Delete a recording's file, its `.vtt` sidecar and its manifest (the
/// manifest last, so a failed delete leaves the recording listed). The room's
/// `room.json` keeps the file in its history.
pub fn delete(entry: &RecordingEntry) -> std::io::Result<()> {
    for path in [&entry.path, &entry.vtt_path] {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_file(&entry.manifest_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, room_dir: &str, stem: &str, manifest: Value, media: &[u8]) {
        let d = dir.join(room_dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{stem}.json")), serde_json::to_vec(&manifest).unwrap()).unwrap();
        std::fs::write(d.join(format!("{stem}.webm")), media).unwrap();
    }

    #[test]
    fn lists_newest_first_with_live_state_and_filters() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let m = |file: &str, state: &str, room: &str, at: u64| json!({"file": file, "state": state, "room": room, "started_unix_ms": at});
        let (a, b, c) = ("20261126T100001Z-p-camera-a", "20261126T100003Z-p-camera-b", "20261126T100002Z-p-camera-c");
        write(dir, "r1", a, m(&format!("{a}.webm"), "finished", "r1", 1), b"12345");
        write(dir, "r1", b, m(&format!("{b}.webm"), "recording", "r1", 3), b"1");
        write(dir, "r_2-0c1b", c, m(&format!("{c}.webm"), "recording", "r 2", 2), b"12");
        std::fs::write(dir.join("r1/chat.jsonl"), b"{}\n").unwrap();
        std::fs::write(dir.join("r1/broken.json"), b"{not json").unwrap();
        let active: HashSet<PathBuf> = [dir.join(format!("r1/{b}.webm"))].into();
        let all = list(dir, &active, None, None, 100);
        let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, [format!("r1/{b}"), format!("r_2-0c1b/{c}"), format!("r1/{a}")]);
        assert_eq!(all[0].state, "recording");
        assert_eq!(all[1].state, "interrupted", "nobody writes it any more");
        assert_eq!(all[2].size_bytes, 5);
        assert_eq!(all[2].media_url, format!("/api/v1/recordings/r1/{a}/media"));
        assert_eq!(list(dir, &active, Some("r1"), None, 100).len(), 2);
        assert_eq!(list(dir, &active, None, Some("finished"), 100).len(), 1);
        let newest = list(dir, &active, None, None, 1);
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].id, format!("r1/{b}"));
    }

    #[test]
    fn a_room_filter_reads_only_that_rooms_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let room = "a room/with ../odd name";
        let room_dir = crate::recorder::naming::sanitize_component(room);
        let stem = "20261126T100001Z-p-camera-a";
        write(dir, &room_dir, stem, json!({"file": format!("{stem}.webm"), "state": "finished", "room": room}), b"1");
        let found = list(dir, &HashSet::new(), Some(room), None, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].room, room);
        assert!(list(dir, &HashSet::new(), Some("another room"), None, 10).is_empty());
    }

    #[test]
    fn ids_and_manifests_cannot_leave_the_recordings_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recordings");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(tmp.path().join("secret.json"), br#"{"file":"secret.json"}"#).unwrap();
        for (room, stem) in [("..", "secret"), ("r1/..", "x"), (".hidden", "x"), ("r1", "../../secret"), ("", "x")] {
            assert!(load(&dir, room, stem, &HashSet::new()).is_none(), "{room:?}/{stem:?}");
        }
        // A manifest pointing elsewhere is not followed.
        write(&dir, "r1", "evil", json!({"file": "../../etc/passwd", "state": "finished"}), b"");
        write(&dir, "r1", "other", json!({"file": "notmine.webm", "state": "finished"}), b"");
        assert!(load(&dir, "r1", "evil", &HashSet::new()).is_none());
        assert!(load(&dir, "r1", "other", &HashSet::new()).is_none());
        assert!(list(&dir, &HashSet::new(), None, None, 100).is_empty());
    }

    #[test]
    fn delete_removes_file_sidecar_and_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "r1", "a", json!({"file": "a.webm", "state": "finished"}), b"xx");
        std::fs::write(tmp.path().join("r1/a.vtt"), b"WEBVTT\n").unwrap();
        let entry = load(tmp.path(), "r1", "a", &HashSet::new()).unwrap();
        assert_eq!(entry.vtt_url.as_deref(), Some("/api/v1/recordings/r1/a/vtt"));
        assert_eq!(entry.timeline_url, None, "no room.json yet");
        delete(&entry).unwrap();
        assert!(load(tmp.path(), "r1", "a", &HashSet::new()).is_none());
        assert_eq!(std::fs::read_dir(tmp.path().join("r1")).unwrap().count(), 0);
    }
}
