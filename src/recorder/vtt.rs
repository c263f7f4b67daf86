//! The WebVTT sidecar of a recording, `<file stem>.vtt`: one cue per
//! DataChannel message (chat and ctrl events) that arrived while the file
//! was written, placed on the file's own time line (`event unix ms − t0`).
//! Pure: timeline events and the file's `t0` in, WebVTT text out.
//!
//! Hand-written on purpose: what we emit is the small subset of WebVTT a
//! cue list needs (header, `hh:mm:ss.mmm --> hh:mm:ss.mmm`, text with `&`,
//! `<` and `>` escaped so peer text can never open a tag or end a timing
//! line); a subtitle crate would add a dependency for these few lines.
//!
//! A cue lasts [`CUE_SECS`], or until the next cue starts if that is
//! sooner (so cues never overlap and read in order); a cue's text is cut to
//! [`MAX_CUE_CHARS`] characters.

use std::fmt::Write as _;

use serde_json::Value;

use super::timeline::{Event, EventKind};

/// How long a cue shows when no other follows sooner.
pub const CUE_SECS: f64 = 4.0;
/// Longest cue text, in characters (an ellipsis marks the cut).
pub const MAX_CUE_CHARS: usize = 300;
/// Shortest cue: two messages in the same millisecond still get one each.
const MIN_CUE_MS: f64 = 1.0;

/// One cue, times in ms on the file's time line.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_ms: f64,
    pub end_ms: f64,
    pub text: String,
}

/// The cues of these message events for a file whose presentation time
/// zero is `t0_unix_ms` (events before it start at 0). Other events are skipped.
pub fn cues(events: &[Event], t0_unix_ms: f64) -> Vec<Cue> {
    let mut starts: Vec<(f64, String)> =
        events.iter().filter_map(|e| Some(((e.unix_ms as f64 - t0_unix_ms).max(0.0), cue_text(&e.kind)?))).collect();
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut cues = Vec::with_capacity(starts.len());
    for (i, (start_ms, text)) in starts.iter().enumerate() {
        let mut end_ms = start_ms + CUE_SECS * 1000.0;
        if let Some((next, _)) = starts.get(i + 1) {
            end_ms = end_ms.min(*next);
        }
        cues.push(Cue { start_ms: *start_ms, end_ms: end_ms.max(start_ms + MIN_CUE_MS), text: text.clone() });
    }
    cues
}

/// `alice [chat] msg: hello` — who, where, what. `None` for non-messages.
fn cue_text(kind: &EventKind) -> Option<String> {
    let EventKind::Message { peer, channel, event, args, args_bytes, binary_bytes } = kind else { return None };
    let who = if peer.name.is_empty() { &peer.id } else { &peer.name };
    let mut text = format!("{who} [{channel}]");
    if let Some(event) = event {
        let _ = write!(text, " {event}");
    }
    let body: Vec<String> = match (args, args_bytes, binary_bytes) {
        (Some(args), _, _) => args.iter().map(arg_text).collect(),
        (None, Some(bytes), _) => vec![format!("({bytes} bytes of arguments)")],
        (None, None, Some(bytes)) => vec![format!("({bytes} bytes of binary data)")],
        _ => Vec::new(),
    };
    if !body.is_empty() {
        let _ = write!(text, ": {}", body.join(" "));
    }
    Some(text)
}

fn arg_text(arg: &Value) -> String {
    match arg {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The WebVTT document of these cues.
pub fn render(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n");
    for (i, cue) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "\n{}\n{} --> {}\n{}\n",
            i + 1,
            timestamp(cue.start_ms),
            timestamp(cue.end_ms),
            escape(&cue.text)
        );
    }
    out
}

/// `hh:mm:ss.mmm` (hours may exceed two digits).
pub fn timestamp(ms: f64) -> String {
    let total = ms.max(0.0).round() as u64;
    let (h, m, s, milli) = (total / 3_600_000, total / 60_000 % 60, total / 1000 % 60, total % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// Cue text that cannot open a tag, start an entity or end the cue: `&`,
/// `<`, `>` as entities (so `-->` cannot appear), and each line break as a
/// space (a blank line would end the cue).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CUE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::timeline::{Member, Timeline};
    use serde_json::json;

    fn message(unix_ms: u64, text: &str) -> Event {
        let peer = Member { id: "p1".into(), name: "alice".into() };
        Event { unix_ms, kind: Timeline::message(peer, "chat", Some("msg"), Some(&[json!(text)]), None) }
    }

    #[test]
    fn cues_sit_on_the_files_time_line_and_do_not_overlap() {
        let t0 = 1_000_000.25;
        let events = vec![
            message(1_002_500, "second"),
            message(1_001_000, "first"),
            message(1_010_000, "third"),
            message(999_000, "before the file's zero"),
        ];
        let cues = cues(&events, t0);
        let at: Vec<(f64, f64, &str)> = cues.iter().map(|c| (c.start_ms, c.end_ms, c.text.as_str())).collect();
        assert_eq!(
            at,
            [
                (0.0, 999.75, "alice [chat] msg: before the file's zero"),
                (999.75, 2499.75, "alice [chat] msg: first"),
                (2499.75, 6499.75, "alice [chat] msg: second"),
                (9999.75, 13999.75, "alice [chat] msg: third"),
            ]
        );
    }

    #[test]
    fn render_writes_timings_and_escapes_peer_text() {
        let cue = |start_ms, end_ms, text: &str| Cue { start_ms, end_ms, text: text.into() };
        let text =
            render(&[cue(999.75, 2499.75, "a --> b <b>bold</b> & co"), cue(3_723_004.0, 3_723_005.0, "two\n\nlines")]);
        assert_eq!(
            text,
            "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\na --&gt; b &lt;b&gt;bold&lt;/b&gt; &amp; co\n\
             \n2\n01:02:03.004 --> 01:02:03.005\ntwo  lines\n"
        );
        assert!(!text.contains("b -->"), "peer text never forms a timing arrow");
        assert_eq!(render(&[]), "WEBVTT\n");
    }

    #[test]
    fn long_binary_and_ctrl_messages_get_short_cues() {
        let peer = Member { id: "p1".into(), name: String::new() };
        let binary = Event { unix_ms: 10, kind: Timeline::message(peer.clone(), "file", None, None, Some(8)) };
        let ctrl = Event {
            unix_ms: 20,
            kind: Timeline::message(peer.clone(), "ctrl", Some("raise-hand"), Some(&[json!({"up": true})]), None),
        };
        let long = Event {
            unix_ms: 30,
            kind: Timeline::message(peer, "chat", Some("msg"), Some(&[json!("z".repeat(5000))]), None),
        };
        let texts: Vec<String> = cues(&[binary, ctrl, long], 0.0).into_iter().map(|c| c.text).collect();
        assert_eq!(texts[0], "p1 [file]: (8 bytes of binary data)");
        assert_eq!(texts[1], "p1 [ctrl] raise-hand: {\"up\":true}");
        assert_eq!(texts[2], "p1 [chat] msg: (5004 bytes of arguments)");
        let cut = escape(&"é".repeat(MAX_CUE_CHARS + 5));
        assert_eq!(cut.chars().count(), MAX_CUE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn timestamps_round_to_milliseconds_and_allow_long_files() {
        assert_eq!(timestamp(0.0), "00:00:00.000");
        assert_eq!(timestamp(-5.0), "00:00:00.000");
        assert_eq!(timestamp(61_234.4), "00:01:01.234");
        assert_eq!(timestamp(100.0 * 3_600_000.0), "100:00:00.000");
    }
}
