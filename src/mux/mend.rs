//! Mends two things `matroskamux` 1.22 writes wrong for a room, in place
//! in the finished file, without changing its size or layout.
//!
//! **Track titles in the Tags.** The muxer writes a track's title twice: as
//! the track's `Name` (right) and as a `TITLE` SimpleTag whose string it
//! makes with `gst_value_serialize` — so `alice — camera (video)` is stored as
//! `"alice\ \342\200\224\ camera\ \(video\)"`, quotes and escapes
//! included, and ffmpeg-based tools (which prefer the tag) show that. No
//! muxer setting avoids it: every stream tag event with a title lands in
//! those tags too. The serialized string is never shorter than the text, and
//! a Matroska string may be padded with zero bytes (Matroska spec: String and
//! UTF-8 elements), so each such `TagString` is overwritten with the text and
//! zero padding. It is found by its exact bytes right after a `TagString`
//! element header whose size matches, in the file's tail (the muxer writes
//! the Tags at the end).
//!
//! **The segment's Duration.** The muxer writes the length of the longest
//! track (its last minus its first timestamp), not where the room ends: a
//! room whose late joiner outlasts everyone would claim to end early. The
//! `Duration` float of the segment's `Info` (found by walking the EBML tree
//! from the file's start, not by searching) is overwritten with the end of
//! the last frame, in the same width.
//!
//! Hand-written because no tool we depend on edits Matroska in place (and a
//! second remux pass would rewrite the whole room); drop each part when a
//! GStreamer we ship writes it right.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use gstreamer::glib::value::ToValue;
use gstreamer::prelude::GstValueExt;

/// EBML id of `TagString`.
const TAG_STRING_ID: [u8; 2] = [0x44, 0x87];
/// How much of the file's end is searched.
const TAIL: u64 = 32 << 20;

/// What the muxer wrote for `title`, if that differs from the text.
pub fn serialized(title: &str) -> Option<String> {
    let s = title.to_value().serialize().ok()?.to_string();
    (s != title).then_some(s)
}

/// Overwrite every serialized title in the Tags of `path` with its text; returns how many were mended.
pub fn titles(path: &Path, titles: &[String]) -> std::io::Result<usize> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let mut mended = 0;
    for title in titles {
        let Some(wrong) = serialized(title) else { continue };
        for at in tag_strings_equal_to(&tail, wrong.as_bytes()) {
            let mut fixed = title.as_bytes().to_vec();
            fixed.resize(wrong.len(), 0);
            file.seek(SeekFrom::Start(start + at as u64))?;
            file.write_all(&fixed)?;
            mended += 1;
        }
    }
    file.sync_data()?;
    Ok(mended)
}

/// Offsets of the contents of `TagString` elements in `bytes` whose content is exactly `content`.
fn tag_strings_equal_to(bytes: &[u8], content: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    if content.is_empty() {
        return found;
    }
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], content).map(|p| p + from) {
        // `matroskamux` writes the string with its terminating zero byte.
        let with_nul = bytes.get(pos + content.len()) == Some(&0);
        if is_tag_string_header_before(bytes, pos, content.len())
            || (with_nul && is_tag_string_header_before(bytes, pos, content.len() + 1))
        {
            found.push(pos);
        }
        from = pos + 1;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `bytes[..pos]` ends with a `TagString` id and an EBML size of `len`.
fn is_tag_string_header_before(bytes: &[u8], pos: usize, len: usize) -> bool {
    (1..=8).any(|width| {
        let Some(id_at) = pos.checked_sub(width + 2) else { return false };
        bytes[id_at..id_at + 2] == TAG_STRING_ID && vint(&bytes[id_at + 2..pos]) == Some(len as u64)
    })
}

/// An EBML variable-size integer that fills `b` exactly.
fn vint(b: &[u8]) -> Option<u64> {
    let first = *b.first()?;
    let width = first.leading_zeros() as usize + 1;
    if width != b.len() || width > 8 {
        return None;
    }
    let mut v = (first as u64) & (0xff >> width);
    for byte in &b[1..] {
        v = (v << 8) | *byte as u64;
    }
    Some(v)
}

/// EBML ids on the way to the segment's duration.
const SEGMENT_ID: u32 = 0x1853_8067;
const INFO_ID: u32 = 0x1549_a966;
const DURATION_ID: u32 = 0x4489;
const TIMECODE_SCALE_ID: u32 = 0x2ad7b1;
/// How much of the file's start is read to find the segment's `Info`.
const HEAD: u64 = 1 << 20;

/// Set the segment's `Duration` to `end_ns` if it says less; returns whether it was changed.
pub fn duration(path: &Path, end_ns: u64) -> std::io::Result<bool> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut head = Vec::new();
    (&mut file).take(HEAD).read_to_end(&mut head)?;
    let Some((at, width, scale_ns)) = find_duration(&head) else { return Ok(false) };
    let value = end_ns as f64 / scale_ns as f64;
    let bytes = match width {
        4 => {
            let old = f32::from_be_bytes(head[at..at + 4].try_into().expect("4 bytes"));
            if old as f64 >= value {
                return Ok(false);
            }
            (value as f32).to_be_bytes().to_vec()
        }
        _ => {
            let old = f64::from_be_bytes(head[at..at + 8].try_into().expect("8 bytes"));
            if old >= value {
                return Ok(false);
            }
            value.to_be_bytes().to_vec()
        }
    };
    file.seek(SeekFrom::Start(at as u64))?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    Ok(true)
}

/// Where the `Duration` float's bytes are (offset, 4 or 8) and the timecode scale (ns).
fn find_duration(bytes: &[u8]) -> Option<(usize, usize, u64)> {
    let mut pos = 0;
    // Top level: the EBML header, then the Segment.
    let segment_body = loop {
        let (id, size, body) = element(bytes, pos)?;
        if id == SEGMENT_ID {
            break body;
        }
        pos = body.checked_add(size?)?;
    };
    let mut pos = segment_body;
    let (info_body, info_end) = loop {
        let (id, size, body) = element(bytes, pos)?;
        let size = size?;
        if id == INFO_ID {
            break (body, body.checked_add(size)?);
        }
        pos = body.checked_add(size)?;
    };
    let (mut pos, mut duration, mut scale) = (info_body, None, 1_000_000u64);
    while pos < info_end {
        let (id, size, body) = element(bytes, pos)?;
        let size = size?;
        match id {
            DURATION_ID if size == 4 || size == 8 => duration = Some((body, size)),
            TIMECODE_SCALE_ID if (1..=8).contains(&size) => {
                scale = bytes.get(body..body + size)?.iter().fold(0, |v, b| (v << 8) | *b as u64).max(1)
            }
            _ => {}
        }
        pos = body.checked_add(size)?;
    }
    let (at, width) = duration?;
    (at + width <= bytes.len()).then_some((at, width, scale))
}

/// The element at `pos`: its id, its size (None: unknown) and where its body starts.
fn element(bytes: &[u8], pos: usize) -> Option<(u32, Option<usize>, usize)> {
    let first = *bytes.get(pos)?;
    let id_width = first.leading_zeros() as usize + 1;
    if id_width > 4 {
        return None;
    }
    let id = bytes.get(pos..pos + id_width)?.iter().fold(0u32, |v, b| (v << 8) | *b as u32);
    let size_at = pos + id_width;
    let size_width = bytes.get(size_at)?.leading_zeros() as usize + 1;
    let raw = vint(bytes.get(size_at..size_at + size_width)?)?;
    let unknown = raw == (1u64 << (7 * size_width)) - 1;
    Some((id, (!unknown).then_some(raw as usize), size_at + size_width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serialized_title_in_a_tag_string_is_replaced_by_its_text() {
        gstreamer::init().unwrap();
        let title = "alice — camera (video)".to_string();
        let wrong = serialized(&title).expect("a title with spaces is escaped by gst_value_serialize");
        assert!(wrong.starts_with('"') && wrong.len() > title.len(), "{wrong}");
        assert_eq!(serialized("chat"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mkv");
        let mut bytes = b"\x1a\x45\xdf\xa3 header; the same text outside a tag: ".to_vec();
        bytes.extend_from_slice(wrong.as_bytes());
        bytes.extend_from_slice(b"\x45\xa3\x85TITLE");
        bytes.extend_from_slice(&TAG_STRING_ID);
        bytes.push(0x80 | wrong.len() as u8);
        let content_at = bytes.len();
        bytes.extend_from_slice(wrong.as_bytes());
        bytes.extend_from_slice(b"\x1f\x43\xb6\x75 after");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(titles(&path, std::slice::from_ref(&title)).unwrap(), 1);
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after.len(), bytes.len());
        let content = &after[content_at..content_at + wrong.len()];
        assert_eq!(&content[..title.len()], title.as_bytes());
        assert!(content[title.len()..].iter().all(|b| *b == 0));
        assert_eq!(
            &after[..content_at - wrong.len() - 8 - 3],
            &bytes[..content_at - wrong.len() - 8 - 3],
            "only the tag changed"
        );
        assert_eq!(&after[content_at + wrong.len()..], &bytes[content_at + wrong.len()..]);
    }

    #[test]
    fn the_segment_duration_is_found_by_walking_the_tree_and_only_ever_raised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.mkv");
        let mut bytes = vec![0x1a, 0x45, 0xdf, 0xa3, 0x81, 0x00]; // EBML header, 1 byte
        bytes.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // Segment, unknown size
        // A SeekHead whose entry names Info (the bytes a search would trip on).
        bytes.extend_from_slice(&[0x11, 0x4d, 0x9b, 0x74, 0x86, 0x53, 0xab, 0x84, 0x15, 0x49, 0xa9]);
        bytes.extend_from_slice(&[0x15, 0x49, 0xa9, 0x66, 0x8f]); // Info, 15 bytes
        bytes.extend_from_slice(&[0x2a, 0xd7, 0xb1, 0x83, 0x0f, 0x42, 0x40]); // TimecodeScale 1 ms
        bytes.extend_from_slice(&[0x44, 0x89, 0x88]);
        let at = bytes.len();
        bytes.extend_from_slice(&60_000.5f64.to_be_bytes());
        bytes.extend_from_slice(&[0x16, 0x54, 0xae, 0x6b, 0x80]); // Tracks, empty
        std::fs::write(&path, &bytes).unwrap();
        assert!(duration(&path, 90_000_250_000).unwrap());
        let after = std::fs::read(&path).unwrap();
        assert_eq!(f64::from_be_bytes(after[at..at + 8].try_into().unwrap()), 90_000.25);
        assert_eq!((after.len(), &after[..at], &after[at + 8..]), (bytes.len(), &bytes[..at], &bytes[at + 8..]));
        assert!(!duration(&path, 1_000_000_000).unwrap(), "never lowered");
    }

    #[test]
    fn ebml_sizes_are_read_by_their_width() {
        assert_eq!(vint(&[0x85]), Some(5));
        assert_eq!(vint(&[0x40, 0x85]), Some(0x85));
        assert_eq!(vint(&[0x85, 0x00]), None);
        assert_eq!(vint(&[]), None);
    }
}
