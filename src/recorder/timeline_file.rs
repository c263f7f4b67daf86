//! The files of the room timeline: reading an earlier `room.json` to extend
//! it, archiving one that cannot or should not be extended, and writing
//! `room.json` and the recordings' `.vtt` sidecars atomically (temporary
//! file + fsync + rename, like the manifests), so a reader at any moment sees
//! a complete old or a complete new file. The thin I/O side of
//! [`super::timeline`] and [`super::vtt`]; the room task decides when, and
//! renders a [`Batch`] itself so that only the writing (with its fsyncs)
//! runs off its thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::naming::utc_stamp;
use super::timeline::{self, Event, FileEntry, Previous, Timeline};
use super::vtt;

/// What became of an earlier `room.json` when a run started.
#[derive(Debug)]
pub enum Earlier {
    /// There was none.
    None,
    /// Its runs are extended.
    Extended(Previous),
    /// It was moved aside to this path (full, or unreadable: the reason), and a new one starts.
    Archived(PathBuf, String),
}

/// Look at `<room dir>/room.json` before a run writes it: extend it, or move
/// it aside when it is full or unreadable (nothing is lost either way).
pub fn take_earlier(room_dir: &Path, now: SystemTime) -> std::io::Result<Earlier> {
    let path = room_dir.join(timeline::FILE_NAME);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Earlier::None),
        Err(e) => return Err(e),
    };
    let (why, suffix) = match Previous::parse(&text) {
        Ok(previous) if !previous.is_full() => return Ok(Earlier::Extended(previous)),
        Ok(_) => ("full".to_string(), ".json"),
        Err(e) => (e.to_string(), ".json.unreadable"),
    };
    let stamp = utc_stamp(now);
    let mut attempt = 1;
    let archive = loop {
        let name =
            if attempt == 1 { format!("room-{stamp}{suffix}") } else { format!("room-{stamp}-{attempt}{suffix}") };
        let candidate = room_dir.join(name);
        if !candidate.exists() || attempt >= 100 {
            break candidate;
        }
        attempt += 1;
    };
    std::fs::rename(&path, &archive)?;
    Ok(Earlier::Archived(archive, why))
}

/// One write of a room's timeline, rendered: the due `.vtt` sidecars, then `room.json`.
#[derive(Debug)]
pub struct Batch {
    dir: PathBuf,
    sidecars: Vec<(String, String)>,
    room_json: Vec<u8>,
}

impl Batch {
    /// Render what is due now (the sidecars count as written from here on).
    pub fn prepare(dir: &Path, timeline: &mut Timeline) -> Batch {
        let sidecars =
            timeline.take_due_sidecars().iter().filter_map(|(file, messages)| sidecar(file, messages)).collect();
        Batch { dir: dir.to_path_buf(), sidecars, room_json: render_timeline(timeline) }
    }

    /// The length of its `room.json`.
    pub fn room_json_len(&self) -> usize {
        self.room_json.len()
    }

    /// Write it (creating the directory); stops at the first failure.
    pub fn write(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        for (name, text) in &self.sidecars {
            write_atomic(&self.dir.join(name), text.as_bytes())?;
        }
        write_atomic(&self.dir.join(timeline::FILE_NAME), &self.room_json)
    }
}

fn render_timeline(timeline: &Timeline) -> Vec<u8> {
    let mut text = serde_json::to_vec(&timeline.to_json()).unwrap_or_default();
    text.push(b'\n');
    text
}

/// A file's sidecar name and WebVTT text; none while its `t0` is unknown.
fn sidecar(file: &FileEntry, messages: &[Event]) -> Option<(String, String)> {
    let (Some(name), Some(t0)) = (&file.vtt, file.t0_unix_ms) else { return None };
    Some((name.clone(), vtt::render(&vtt::cues(messages, t0))))
}

/// Write `<room dir>/room.json` (creating the directory); returns its length.
pub fn write_timeline(room_dir: &Path, timeline: &Timeline) -> std::io::Result<usize> {
    std::fs::create_dir_all(room_dir)?;
    let text = render_timeline(timeline);
    write_atomic(&room_dir.join(timeline::FILE_NAME), &text)?;
    Ok(text.len())
}

/// Write a file's `.vtt` sidecar from its messages; nothing while its `t0` is unknown.
pub fn write_sidecar(room_dir: &Path, file: &FileEntry, messages: &[Event]) -> std::io::Result<()> {
    match sidecar(file, messages) {
        Some((name, text)) => write_atomic(&room_dir.join(name), text.as_bytes()),
        None => Ok(()),
    }
}

/// A reader sees the old or the new content, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::end_reason::EndReason;
    use crate::recorder::timeline::EventKind;
    use std::time::Duration;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn runs_accumulate_and_unreadable_or_full_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let room = dir.path().join("r");
        assert!(matches!(take_earlier(&room, at(0)).unwrap(), Earlier::None));
        let mut first = Timeline::new("r", None, at(1_000));
        first.push(at(1_001), EventKind::RecordingStarted { by: "rule".into() });
        first.end(at(1_002), EndReason::RoomEmpty);
        write_timeline(&room, &first).unwrap();
        let Earlier::Extended(previous) = take_earlier(&room, at(2_000)).unwrap() else { panic!("extended") };
        let mut second = Timeline::new("r", None, at(2_000));
        second.set_previous(previous);
        write_timeline(&room, &second).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(room.join("room.json")).unwrap()).unwrap();
        assert_eq!(doc["runs"].as_array().unwrap().len(), 2);
        assert_eq!(doc["runs"][0]["events"][0]["by"], "rule");
        let names = |dir: &Path| {
            let mut names: Vec<String> =
                std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            names.sort();
            names
        };
        assert_eq!(names(&room), ["room.json"], "no temporary file left");

        std::fs::write(room.join("room.json"), b"{\"version\": 1, \"runs\": [trunc").unwrap();
        let Earlier::Archived(path, why) = take_earlier(&room, at(1_795_702_503_000)).unwrap() else { panic!() };
        assert!(why.contains("not JSON"), "{why}");
        assert_eq!(path.file_name().unwrap(), "room-20261126T141503Z.json.unreadable");
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"version\": 1, \"runs\": [trunc", "kept as it was");
        assert!(!room.join("room.json").exists());

        let full =
            serde_json::json!({"version": 1, "runs": vec![serde_json::json!({"events": []}); timeline::MAX_RUNS]});
        std::fs::write(room.join("room.json"), full.to_string()).unwrap();
        let Earlier::Archived(path, why) = take_earlier(&room, at(1_795_702_503_000)).unwrap() else { panic!() };
        assert_eq!((path.file_name().unwrap().to_str().unwrap(), why.as_str()), ("room-20261126T141503Z.json", "full"));
    }

    #[test]
    fn sidecars_wait_for_t0() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Timeline::new("r", None, at(0));
        let peer = crate::recorder::manifest::PeerSummary { id: "p".into(), name: "n".into() };
        let mut m = crate::recorder::manifest::Manifest::for_test("a.webm", peer, 1_000);
        t.upsert_file(&m);
        write_sidecar(dir.path(), &t.files()[0], &[]).unwrap();
        assert!(!dir.path().join("a.vtt").exists());
        m.t0_unix_ms = Some(1_000.0);
        t.upsert_file(&m);
        t.push(
            at(3_500),
            Timeline::message(
                timeline::Member { id: "p".into(), name: "n".into() },
                "chat",
                Some("msg"),
                Some(&[serde_json::json!("hi")]),
                None,
            ),
        );
        for (file, messages) in t.take_due_sidecars() {
            write_sidecar(dir.path(), &file, &messages).unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("a.vtt")).unwrap();
        assert_eq!(text, "WEBVTT\n\n1\n00:00:02.500 --> 00:00:06.500\nn [chat] msg: hi\n");
    }
}
