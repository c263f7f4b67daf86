//! Reading a room directory for `mux`: the recordings' manifests, which media
//! files have none, and the room's `chat.jsonl`. I/O only; what to make of
//! them is [`super::plan`]'s.
//!
//! Manifests are read tolerantly, only the fields `mux` needs, so manifests
//! of older gateways (no `t0_unix_ms`, no `clock`) and of killed processes
//! (`state: "recording"`, no end) are read too. Anything unreadable — a JSON
//! file that is not a manifest of this room, a manifest naming a file that is
//! not there, a chat line cut short by a kill — is skipped with a note that
//! ends up in the summary; nothing is changed on disk.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::recorder::chat_log;

/// A recording file and what its manifest says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub path: PathBuf,
    /// The file name (in the room directory).
    pub file: String,
    /// `recording` (also: a file whose process was killed), `finished` or `failed`.
    pub state: String,
    pub peer_id: String,
    pub peer_name: String,
    pub event: String,
    pub stream_id: String,
    pub started_unix_ms: Option<u64>,
    /// Wall-clock Unix ms of the file's presentation time zero.
    pub t0_unix_ms: Option<f64>,
    /// How `t0_unix_ms` was learnt (`sender-reports`, `arrival`), if the manifest says.
    pub clock_source: Option<String>,
    pub duration_secs: Option<f64>,
}

/// One line of `chat.jsonl`, as far as `mux` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEntry {
    pub unix_ms: u64,
    pub peer_id: String,
    pub peer_name: String,
    pub channel: String,
    /// Null for binary messages.
    pub event: Option<String>,
    pub args: Vec<Value>,
    /// Size of a binary message.
    pub binary_bytes: Option<u64>,
}

/// Everything found in a room directory.
#[derive(Debug, Default)]
pub struct RoomDir {
    pub recordings: Vec<Recording>,
    pub chat: Vec<ChatEntry>,
    /// What was skipped and why (for the summary).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
}

#[derive(Deserialize)]
struct ManifestView {
    file: String,
    #[serde(default)]
    state: Option<String>,
    peer: PeerView,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    stream_id: Option<String>,
    #[serde(default)]
    started_unix_ms: Option<u64>,
    #[serde(default)]
    t0_unix_ms: Option<f64>,
    #[serde(default)]
    clock: Option<ClockView>,
    #[serde(default)]
    duration_secs: Option<f64>,
}

#[derive(Deserialize)]
struct PeerView {
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ClockView {
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize)]
struct ChatLineView {
    unix_ms: u64,
    #[serde(default)]
    peer_id: String,
    #[serde(default)]
    peer_name: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    binary: Option<BinaryView>,
}

#[derive(Deserialize)]
struct BinaryView {
    bytes: u64,
}

/// Media files `mux` reads (what the record templates write).
const MEDIA_EXTENSIONS: [&str; 2] = ["webm", "mkv"];

/// Read `dir`; `ignore` (the output file) is never taken for a recording.
pub fn scan(dir: &Path, ignore: &Path) -> Result<RoomDir, ScanError> {
    let io = |error| ScanError::Io { path: dir.to_path_buf(), error };
    if !dir.is_dir() {
        return Err(if dir.exists() { ScanError::NotADirectory(dir.to_path_buf()) } else { io(not_found()) });
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut room = RoomDir::default();
    for name in names.iter().filter(|n| n.ends_with(".json")) {
        let path = dir.join(name);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) => {
                room.notes.push(format!("{name}: unreadable ({e}): skipped"));
                continue;
            }
        };
        let Ok(value) = serde_json::from_slice::<Value>(&text) else {
            room.notes.push(format!("{name}: not JSON: skipped"));
            continue;
        };
        // Other JSON of the room (room.json, ...) is not a recording's manifest.
        if value.get("file").is_none() || value.get("peer").is_none() {
            continue;
        }
        match serde_json::from_value::<ManifestView>(value) {
            Ok(m) => match recording_of(dir, name, m) {
                Ok(rec) => room.recordings.push(rec),
                Err(why) => room.notes.push(why),
            },
            Err(e) => room.notes.push(format!("{name}: not a recording manifest ({e}): skipped")),
        }
    }
    for name in names.iter().filter(|n| MEDIA_EXTENSIONS.iter().any(|ext| n.ends_with(&format!(".{ext}")))) {
        let path = dir.join(name);
        if path == ignore || room.recordings.iter().any(|r| &r.file == name) {
            continue;
        }
        room.notes.push(format!("{name}: no manifest (cannot be placed on the room clock): skipped"));
    }
    room.recordings.sort_by(|a, b| a.file.cmp(&b.file));
    let chat_path = dir.join(chat_log::FILE_NAME);
    match std::fs::read(&chat_path) {
        Ok(bytes) => read_chat(&bytes, &mut room),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => room.notes.push(format!("{}: unreadable ({e}): no chat track", chat_log::FILE_NAME)),
    }
    Ok(room)
}

fn not_found() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory")
}

fn recording_of(dir: &Path, manifest: &str, m: ManifestView) -> Result<Recording, String> {
    // The name comes from a file on disk: keep it inside the room directory.
    let plain = !m.file.is_empty()
        && !m.file.starts_with('.')
        && Path::new(&m.file).file_name().is_some_and(|f| f == m.file.as_str());
    if !plain {
        return Err(format!("{manifest}: names {:?}, not a file of this directory: skipped", m.file));
    }
    let path = dir.join(&m.file);
    if !path.is_file() {
        return Err(format!("{manifest}: its recording {} is missing: skipped", m.file));
    }
    Ok(Recording {
        path,
        file: m.file,
        state: m.state.unwrap_or_else(|| "unknown".into()),
        peer_id: m.peer.id,
        peer_name: m.peer.name,
        event: m.event.unwrap_or_else(|| "stream".into()),
        stream_id: m.stream_id.unwrap_or_default(),
        started_unix_ms: m.started_unix_ms,
        t0_unix_ms: m.t0_unix_ms.filter(|t| t.is_finite()),
        clock_source: m.clock.and_then(|c| c.source),
        duration_secs: m.duration_secs,
    })
}

fn read_chat(bytes: &[u8], room: &mut RoomDir) {
    let text = String::from_utf8_lossy(bytes);
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ChatLineView>(line) {
            Ok(l) => room.chat.push(ChatEntry {
                unix_ms: l.unix_ms,
                peer_id: l.peer_id,
                peer_name: l.peer_name,
                channel: l.channel,
                event: l.event,
                args: l.args.unwrap_or_default(),
                binary_bytes: l.binary.map(|b| b.bytes),
            }),
            Err(_) => bad.push(i + 1),
        }
    }
    if !bad.is_empty() {
        room.notes.push(format!(
            "{}: line(s) {} not readable (cut short by a kill?): left out of the chat track",
            chat_log::FILE_NAME,
            bad.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_old_and_new_are_read_and_strays_are_noted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.webm"), b"x").unwrap();
        std::fs::write(
            d.join("a.json"),
            r#"{"state":"finished","file":"a.webm","peer":{"id":"p1","name":"alice"},"event":"camera",
               "stream_id":"s1","started_unix_ms":1000,"t0_unix_ms":1000.5,"clock":{"source":"arrival"},"extra":1}"#,
        )
        .unwrap();
        std::fs::write(d.join("b.mkv"), b"x").unwrap();
        std::fs::write(
            d.join("b.json"),
            r#"{"state":"recording","file":"b.mkv","peer":{"id":"p2","name":"bob"},"started_unix_ms":4000}"#,
        )
        .unwrap();
        std::fs::write(d.join("c.json"), r#"{"file":"../../etc/passwd","peer":{"id":"x"}}"#).unwrap();
        std::fs::write(d.join("d.json"), r#"{"file":"gone.webm","peer":{"id":"x"}}"#).unwrap();
        std::fs::write(d.join("room.json"), r#"{"room":"r","timeline":[]}"#).unwrap();
        std::fs::write(d.join("orphan.webm"), b"x").unwrap();
        std::fs::write(d.join("room.mkv"), b"x").unwrap();
        std::fs::write(
            d.join("chat.jsonl"),
            "{\"unix_ms\":1500,\"peer_id\":\"p1\",\"peer_name\":\"alice\",\"channel\":\"chat\",\"event\":\"msg\",\"args\":[\"hi\"]}\n\
             {\"unix_ms\":1600,\"peer_id\":\"p1\",\"peer_name\":\"alice\",\"channel\":\"chat\",\"event\":null,\"binary\":{\"bytes\":3,\"sha256\":\"x\"}}\n\
             {\"unix_ms\":17",
        )
        .unwrap();
        let room = scan(d, &d.join("room.mkv")).unwrap();
        assert_eq!(room.recordings.len(), 2, "{room:#?}");
        let a = &room.recordings[0];
        assert_eq!(
            (a.file.as_str(), a.t0_unix_ms, a.clock_source.as_deref()),
            ("a.webm", Some(1000.5), Some("arrival"))
        );
        let b = &room.recordings[1];
        assert_eq!((b.state.as_str(), b.t0_unix_ms, b.event.as_str()), ("recording", None, "stream"));
        assert_eq!(room.chat.len(), 2);
        assert_eq!(room.chat[1].binary_bytes, Some(3));
        let notes = room.notes.join("\n");
        for expected in ["c.json", "gone.webm", "orphan.webm", "line(s) 3"] {
            assert!(notes.contains(expected), "{expected} not in {notes}");
        }
        assert!(!notes.contains("room.json") && !notes.contains("room.mkv"), "{notes}");
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let err = scan(Path::new("/does/not/exist"), Path::new("/x")).unwrap_err();
        assert!(err.to_string().contains("/does/not/exist"), "{err}");
    }
}
