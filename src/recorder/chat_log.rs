//! `chat.jsonl`: every DataChannel message of a room, one JSON object per
//! line, in arrival order. Each line is written with one `write` call on a
//! file opened for appending (no user-space buffer), so a message that was
//! logged is in the file even if the process dies the next instant; a clean
//! stop also syncs the file to disk.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::naming::{rfc3339, unix_ms};

pub const FILE_NAME: &str = "chat.jsonl";

/// One line of the log.
#[derive(Debug, Serialize)]
pub struct ChatLine<'a> {
    pub time: String,
    pub unix_ms: u64,
    pub room: &'a str,
    pub peer_id: &'a str,
    pub peer_name: &'a str,
    /// `ctrl` or the broadcast channel's name.
    pub channel: &'a str,
    /// The event name; null for binary messages.
    pub event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinarySummary>,
}

#[derive(Debug, Serialize)]
pub struct BinarySummary {
    pub bytes: usize,
    pub sha256: String,
}

impl BinarySummary {
    pub fn of(data: &[u8]) -> BinarySummary {
        let digest = Sha256::digest(data);
        BinarySummary { bytes: data.len(), sha256: digest.iter().map(|b| format!("{b:02x}")).collect() }
    }
}

/// Who sent a message, where and when.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub room: &'a str,
    pub peer_id: &'a str,
    pub peer_name: &'a str,
    pub channel: &'a str,
    pub at: SystemTime,
}

/// An open `chat.jsonl`.
#[derive(Debug)]
pub struct ChatLog {
    path: PathBuf,
    file: File,
}

impl ChatLog {
    /// Open (creating, appending) `<room dir>/chat.jsonl`.
    pub fn open(room_dir: &Path) -> std::io::Result<ChatLog> {
        std::fs::create_dir_all(room_dir)?;
        let path = room_dir.join(FILE_NAME);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(ChatLog { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&mut self, origin: Origin<'_>, event: &str, args: &[Value]) -> std::io::Result<()> {
        self.write(origin, Some(event), Some(args), None)
    }

    pub fn binary(&mut self, origin: Origin<'_>, data: &[u8]) -> std::io::Result<()> {
        self.write(origin, None, None, Some(BinarySummary::of(data)))
    }

    fn write(
        &mut self,
        origin: Origin<'_>,
        event: Option<&str>,
        args: Option<&[Value]>,
        binary: Option<BinarySummary>,
    ) -> std::io::Result<()> {
        let line = ChatLine {
            time: rfc3339(origin.at),
            unix_ms: unix_ms(origin.at),
            room: origin.room,
            peer_id: origin.peer_id,
            peer_name: origin.peer_name,
            channel: origin.channel,
            event,
            args,
            binary,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        self.file.write_all(&bytes)
    }

    /// Make everything written so far durable (clean stop).
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_appended_in_order_with_text_and_binary() {
        let dir = tempfile::tempdir().unwrap();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_702_503_250);
        let origin = Origin { room: "r/1", peer_id: "p1", peer_name: "Alice \"A\"", channel: "chat", at };
        let mut log = ChatLog::open(&dir.path().join("r")).unwrap();
        log.text(origin, "msg", &[json!("hello\nworld"), json!({"n": 1})]).unwrap();
        log.binary(Origin { channel: "ctrl", ..origin }, b"abc").unwrap();
        drop(log);
        // Re-opening appends.
        let mut log = ChatLog::open(&dir.path().join("r")).unwrap();
        log.text(origin, "msg", &[json!(3)]).unwrap();
        log.sync().unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["time"], "2026-11-26T14:15:03.250Z");
        assert_eq!(lines[0]["unix_ms"], 1_795_702_503_250u64);
        assert_eq!(lines[0]["peer_name"], "Alice \"A\"");
        assert_eq!(lines[0]["args"][0], "hello\nworld");
        assert_eq!(lines[1]["event"], Value::Null);
        assert_eq!(lines[1]["channel"], "ctrl");
        assert_eq!(lines[1]["binary"]["bytes"], 3);
        assert_eq!(lines[1]["binary"]["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(lines[2]["args"][0], 3);
    }
}
