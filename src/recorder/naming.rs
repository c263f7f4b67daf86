//! Where recordings go: `<dir>/<room>/<UTC start>-<peer id>-<event>-<stream id prefix>.<ext>`
//! with every component made safe. Pure functions, no I/O.
//!
//! Room ids, peer ids and event names come from the network. A component
//! keeps ASCII letters, digits, `.`, `_` and `-`; anything else becomes `_`,
//! a leading `.` becomes `_` (no `..`, no hidden files), and it is cut to a
//! length every filesystem accepts. When that changed the text, a short hash
//! of the original is appended so that `a/b` and `a_b` stay different rooms.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

/// Longest component we produce, in bytes (filesystems allow 255).
pub const MAX_COMPONENT: usize = 80;
/// Characters of the stream id in a file name.
const STREAM_PREFIX: usize = 8;

/// A single safe path component for `raw`.
pub fn sanitize_component(raw: &str) -> String {
    sanitize_with_limit(raw, MAX_COMPONENT)
}

fn sanitize_with_limit(raw: &str, limit: usize) -> String {
    let mut safe: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    if safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    if safe.is_empty() {
        safe.push('_');
    }
    let changed = safe != raw;
    let too_long = safe.len() > limit;
    if !changed && !too_long {
        return safe;
    }
    let tag = format!("-{:08x}", fnv1a(raw.as_bytes()) as u32);
    safe.truncate(limit.saturating_sub(tag.len()));
    safe.push_str(&tag);
    safe
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// `20261126T141503Z`.
pub fn utc_stamp(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).format("%Y%m%dT%H%M%SZ").to_string()
}

/// RFC 3339 with milliseconds, UTC: `2026-11-26T14:15:03.123Z`.
pub fn rfc3339(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The directory of a room's recordings and chat log.
pub fn room_dir(recordings: &Path, room: &str) -> PathBuf {
    recordings.join(sanitize_component(room))
}

/// What a recording's name is made of.
#[derive(Debug, Clone)]
pub struct RecordingName<'a> {
    pub started: SystemTime,
    pub peer_id: &'a str,
    pub event: &'a str,
    pub stream_id: &'a str,
    pub extension: &'a str,
}

impl RecordingName<'_> {
    /// The file name without extension (the manifest adds `.json`).
    pub fn stem(&self) -> String {
        let prefix: String = self.stream_id.chars().take(STREAM_PREFIX).collect();
        format!(
            "{}-{}-{}-{}",
            utc_stamp(self.started),
            sanitize_with_limit(self.peer_id, 40),
            sanitize_with_limit(self.event, 40),
            sanitize_with_limit(&prefix, STREAM_PREFIX + 9),
        )
    }

    /// The stem with the extension; `attempt` > 1 adds `-<attempt>` for a
    /// name that is already taken (a stream restarted within one second).
    pub fn file_name(&self, attempt: u32) -> String {
        let extension = sanitize_with_limit(self.extension, 8);
        match attempt {
            0 | 1 => format!("{}.{extension}", self.stem()),
            n => format!("{}-{n}.{extension}", self.stem()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hostile_room_ids_stay_inside_one_directory() {
        let base = Path::new("/rec");
        for room in ["../../etc", "a/b", "/abs", "..", ".", "", "nul\0byte", "x\\y", "émoji🎥", &"r".repeat(300)] {
            let dir = room_dir(base, room);
            assert_eq!(dir.parent(), Some(base), "{room:?} → {dir:?}");
            let name = dir.file_name().unwrap().to_str().unwrap();
            assert!(name.len() <= MAX_COMPONENT, "{name}");
            assert!(!name.starts_with('.'), "{name}");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{name}");
        }
    }

    #[test]
    fn safe_ids_are_kept_and_changed_ones_stay_distinct() {
        assert_eq!(sanitize_component("room-1_A.b"), "room-1_A.b");
        assert_ne!(sanitize_component("a/b"), sanitize_component("a_b"));
        assert_ne!(sanitize_component("a/b"), sanitize_component("a?b"));
        assert!(sanitize_component("a/b").starts_with("a_b-"));
        let long_a = sanitize_component(&format!("{}a", "r".repeat(300)));
        let long_b = sanitize_component(&format!("{}b", "r".repeat(300)));
        assert_ne!(long_a, long_b);
        assert_eq!(long_a.len(), MAX_COMPONENT);
    }

    #[test]
    fn recording_file_names_follow_the_layout() {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_702_503); // 2026-11-26T14:15:03Z
        let name = RecordingName {
            started,
            peer_id: "AbCdEf123",
            event: "camera",
            stream_id: "3f2a9c1e-77aa-4b4b",
            extension: "webm",
        };
        assert_eq!(name.file_name(1), "20261126T141503Z-AbCdEf123-camera-3f2a9c1e.webm");
        assert_eq!(name.file_name(2), "20261126T141503Z-AbCdEf123-camera-3f2a9c1e-2.webm");
        let hostile = RecordingName { peer_id: "../x", event: "a/../../b", stream_id: "{st/ream}", ..name };
        let file = hostile.file_name(1);
        assert!(!file.contains('/') && !file.starts_with('.'), "{file}");
        assert_eq!(rfc3339(started), "2026-11-26T14:15:03.000Z");
        assert_eq!(unix_ms(started), 1_795_702_503_000);
    }
}
