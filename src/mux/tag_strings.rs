//! Mends the track titles `matroskamux` 1.22 writes into the Tags element.
//!
//! `matroskamux` writes a track's title twice: as the track's `Name` (right)
//! and as a `TITLE` SimpleTag whose string it makes with
//! `gst_value_serialize` — so `alice — camera (video)` is stored as
//! `"alice\ \342\200\224\ camera\ \(video\)"`, quotes and escapes included,
//! and ffmpeg-based tools (which prefer the tag) show that. No muxer setting
//! avoids it: every stream tag event with a title lands in those tags too.
//!
//! The fix is in place and changes no size: the serialized string is never
//! shorter than the text, and a Matroska string may be padded with zero
//! bytes (Matroska spec: String and UTF-8 elements), so each such
//! `TagString` is overwritten with the text and zero padding. It is found by
//! its exact bytes, right after a `TagString` element header whose size
//! matches, in the file's tail (where `matroskamux` writes the Tags at the
//! end). Hand-written because no tool we depend on edits Matroska tags;
//! drop this module with GStreamer ≥ 1.24 if its muxer writes the plain text.

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
pub fn mend(path: &Path, titles: &[String]) -> std::io::Result<usize> {
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
        assert_eq!(mend(&path, std::slice::from_ref(&title)).unwrap(), 1);
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
    fn ebml_sizes_are_read_by_their_width() {
        assert_eq!(vint(&[0x85]), Some(5));
        assert_eq!(vint(&[0x40, 0x85]), Some(0x85));
        assert_eq!(vint(&[0x85, 0x00]), None);
        assert_eq!(vint(&[]), None);
    }
}
