//! What `mux` puts where, decided without I/O: which files and tracks go in,
//! each file's offset on the room clock, the track titles, and the chat cues.
//!
//! The room clock: its zero `T0` is the earliest `t0_unix_ms` of the files
//! that go in (the wall-clock instant of that file's presentation time zero).
//! A file whose time zero is `t0_i` is placed at `offset_i = t0_i − T0`, so
//! an instant `t` of the file (its own timestamps, kept as they are) lands at
//! `offset_i + t`: a participant who joined late starts late, and a gap in a
//! file or between files stays a gap. A manifest without `t0_unix_ms` (older
//! gateways) is placed by `started_unix_ms` instead, which is said in a note.
//!
//! One output track per source track of each file. A stream that restarted
//! (several files of one participant and event) gives one track per file,
//! titled `… (video, part 2)`, rather than one concatenated track: the files
//! may differ in codec parameters (an H.264 `codec_data`, a resolution) that
//! one Matroska track cannot change midway, and players show consecutive
//! parts on the one time line anyway.
//!
//! Chat: every line of `chat.jsonl` becomes a cue at its `unix_ms − T0`,
//! shown until the next cue (at least [`CUE_MIN`], at most [`CUE_MAX`], and
//! not past the end of the media unless that leaves less than `CUE_MIN`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::scan::{ChatEntry, Recording};

/// Shortest and longest time a chat cue is shown.
pub const CUE_MIN: u64 = 500_000_000;
pub const CUE_MAX: u64 = 4_000_000_000;
/// Title of the chat track.
pub const CHAT_TITLE: &str = "chat";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
    Subtitle,
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Subtitle => "subtitle",
        }
    }
}

/// One track of a source file, as its demuxer showed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTrack {
    /// The demuxer's pad name (`video_0`, `audio_0`, ...).
    pub pad: String,
    pub kind: TrackKind,
    /// Short codec name (`VP8`, `H.264`, `Opus`, or the caps name).
    pub codec: String,
}

/// A recording whose file could be read, with its tracks.
#[derive(Debug, Clone)]
pub struct ProbedFile {
    pub recording: Recording,
    pub tracks: Vec<SourceTrack>,
    /// End of the file's last frame on its own time line, if the demuxer knows it.
    pub end_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTrack {
    pub pad: String,
    pub kind: TrackKind,
    pub codec: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub file: String,
    /// Where the file's time zero is on the room clock.
    pub offset_ns: u64,
    pub tracks: Vec<PlannedTrack>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_ns: u64,
    pub duration_ns: u64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// The room clock's zero, Unix ms.
    pub t0_unix_ms: f64,
    /// In room-clock order of their time zero; the output's tracks are in this order, chat last.
    pub files: Vec<PlannedFile>,
    pub cues: Vec<Cue>,
    /// Where the last known frame ends on the room clock (for progress).
    pub expected_end_ns: Option<u64>,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// With the notes saying why each file was left out.
    #[error("nothing to mux: no recording with media could be placed on the room clock")]
    Nothing(Vec<String>),
}

/// Decide the output from the readable files and the chat log.
pub fn plan(files: Vec<ProbedFile>, chat: &[ChatEntry]) -> Result<Plan, PlanError> {
    let mut notes = Vec::new();
    let mut placed: Vec<(f64, ProbedFile)> = Vec::new();
    for f in files {
        let r = &f.recording;
        let t0 = match (r.t0_unix_ms, r.started_unix_ms) {
            (Some(t0), _) => t0,
            (None, Some(started)) => {
                notes.push(format!(
                    "{}: manifest has no t0_unix_ms (older gateway): placed by started_unix_ms, to within the recorder's start-up time",
                    r.file
                ));
                started as f64
            }
            (None, None) => {
                notes.push(format!("{}: manifest has neither t0_unix_ms nor started_unix_ms: skipped", r.file));
                continue;
            }
        };
        if f.tracks.is_empty() {
            notes.push(format!("{}: no tracks: skipped", r.file));
            continue;
        }
        match r.state.as_str() {
            "recording" => notes.push(format!(
                "{}: interrupted or still being written (its manifest says recording): muxed up to its last complete frame",
                r.file
            )),
            "failed" => notes.push(format!("{}: its recording failed: muxed as far as it is readable", r.file)),
            _ => {}
        }
        placed.push((t0, f));
    }
    placed.sort_by(|(a, fa), (b, fb)| a.total_cmp(b).then_with(|| fa.recording.file.cmp(&fb.recording.file)));
    let Some(room_t0) = placed.first().map(|(t0, _)| *t0) else {
        return Err(PlanError::Nothing(notes));
    };

    let by_arrival: Vec<&str> = placed
        .iter()
        .filter(|(_, f)| f.recording.clock_source.as_deref() == Some("arrival"))
        .map(|(_, f)| f.recording.file.as_str())
        .collect();
    if !by_arrival.is_empty() {
        notes.push(format!(
            "{} of {} file(s) placed by the gateway's clock at the packets' arrival (no sender reports in the manifest), good to the network delay: {}",
            by_arrival.len(),
            placed.len(),
            by_arrival.join(", ")
        ));
    }
    let names = display_names(placed.iter().map(|(_, f)| &f.recording), chat);
    let mut parts: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, (_, f)) in placed.iter().enumerate() {
        parts.entry((f.recording.peer_id.clone(), f.recording.event.clone())).or_default().push(i);
    }
    let mut planned = Vec::new();
    let mut expected_end_ns: Option<u64> = None;
    for (i, (t0, f)) in placed.iter().enumerate() {
        let r = &f.recording;
        let offset_ns = ms_to_ns(t0 - room_t0);
        let siblings = &parts[&(r.peer_id.clone(), r.event.clone())];
        let part = (siblings.len() > 1).then(|| siblings.iter().position(|&j| j == i).unwrap_or(0) + 1);
        let label = format!("{} — {}", names.get(&r.peer_id).map(String::as_str).unwrap_or(&r.peer_id), r.event);
        let tracks = f
            .tracks
            .iter()
            .map(|t| {
                let same_kind = f.tracks.iter().filter(|o| o.kind == t.kind).count();
                let nth = f.tracks.iter().filter(|o| o.kind == t.kind).position(|o| o.pad == t.pad).unwrap_or(0) + 1;
                let mut what = t.kind.as_str().to_string();
                if same_kind > 1 {
                    what.push_str(&format!(" {nth}"));
                }
                if let Some(part) = part {
                    what.push_str(&format!(", part {part}"));
                }
                PlannedTrack {
                    pad: t.pad.clone(),
                    kind: t.kind,
                    codec: t.codec.clone(),
                    title: format!("{label} ({what})"),
                }
            })
            .collect();
        if let Some(end) = f.end_ns {
            expected_end_ns = Some(expected_end_ns.unwrap_or(0).max(offset_ns + end));
        }
        planned.push(PlannedFile { path: r.path.clone(), file: r.file.clone(), offset_ns, tracks });
    }
    let mut cues = chat_cues(chat, room_t0, &names, &mut notes);
    // A cue does not stretch the room past its media (but is shown for CUE_MIN).
    if let Some(media_end) = expected_end_ns {
        for cue in &mut cues {
            if cue.start_ns + cue.duration_ns > media_end {
                cue.duration_ns = media_end.saturating_sub(cue.start_ns).max(CUE_MIN);
            }
        }
    }
    if let Some(last) = cues.last() {
        expected_end_ns = expected_end_ns.map(|e| e.max(last.start_ns + last.duration_ns));
    }
    Ok(Plan { t0_unix_ms: room_t0, files: planned, cues, expected_end_ns, notes })
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).round().max(0.0) as u64
}

/// What each peer id is called: its name, or `name (id)` where two peers share a name.
fn display_names<'a>(recordings: impl Iterator<Item = &'a Recording>, chat: &[ChatEntry]) -> BTreeMap<String, String> {
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for r in recordings {
        by_id.entry(r.peer_id.clone()).or_insert_with(|| r.peer_name.clone());
    }
    for c in chat {
        by_id.entry(c.peer_id.clone()).or_insert_with(|| c.peer_name.clone());
    }
    let mut ids_per_name: BTreeMap<String, usize> = BTreeMap::new();
    for name in by_id.values() {
        *ids_per_name.entry(name.clone()).or_default() += 1;
    }
    by_id
        .iter()
        .map(|(id, name)| {
            let shown = if name.is_empty() {
                id.clone()
            } else if ids_per_name[name] > 1 {
                format!("{name} ({id})")
            } else {
                name.clone()
            };
            (id.clone(), shown)
        })
        .collect()
}

fn chat_cues(chat: &[ChatEntry], room_t0: f64, names: &BTreeMap<String, String>, notes: &mut Vec<String>) -> Vec<Cue> {
    let mut lines: Vec<&ChatEntry> = chat.iter().collect();
    lines.sort_by_key(|c| c.unix_ms);
    let early = lines.iter().filter(|c| (c.unix_ms as f64) < room_t0).count();
    if early > 0 {
        notes.push(format!("{early} chat line(s) from before the first recording: placed at 00:00"));
    }
    let starts: Vec<u64> = lines.iter().map(|c| ms_to_ns(c.unix_ms as f64 - room_t0)).collect();
    lines
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let next = starts.get(i + 1).map(|n| n - starts[i]).unwrap_or(CUE_MAX);
            Cue { start_ns: starts[i], duration_ns: next.clamp(CUE_MIN, CUE_MAX), text: cue_text(c, names) }
        })
        .collect()
}

/// `alice: hello` for a chat message; otherwise the channel, event and arguments.
pub fn cue_text(c: &ChatEntry, names: &BTreeMap<String, String>) -> String {
    let who = names.get(&c.peer_id).cloned().unwrap_or_else(|| c.peer_name.clone());
    match (&c.event, c.args.as_slice(), c.binary_bytes) {
        (_, _, Some(bytes)) => format!("{who} [{}]: binary message, {bytes} bytes", c.channel),
        (Some(event), [Value::String(text)], _) if event == "msg" && c.channel == "chat" => format!("{who}: {text}"),
        (event, args, _) => {
            let args: Vec<String> = args.iter().map(Value::to_string).collect();
            format!("{who} [{}] {}: {}", c.channel, event.as_deref().unwrap_or("?"), args.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(file: &str, peer: (&str, &str), event: &str, t0: Option<f64>, started: Option<u64>) -> Recording {
        Recording {
            path: PathBuf::from("/room").join(file),
            file: file.into(),
            state: "finished".into(),
            peer_id: peer.0.into(),
            peer_name: peer.1.into(),
            event: event.into(),
            stream_id: "s".into(),
            started_unix_ms: started,
            t0_unix_ms: t0,
            clock_source: None,
            duration_secs: None,
        }
    }

    fn av() -> Vec<SourceTrack> {
        vec![
            SourceTrack { pad: "video_0".into(), kind: TrackKind::Video, codec: "VP8".into() },
            SourceTrack { pad: "audio_0".into(), kind: TrackKind::Audio, codec: "Opus".into() },
        ]
    }

    fn probed(r: Recording, end_ns: Option<u64>) -> ProbedFile {
        ProbedFile { recording: r, tracks: av(), end_ns }
    }

    fn chat(ms: u64, peer: (&str, &str), channel: &str, event: Option<&str>, args: Vec<Value>) -> ChatEntry {
        ChatEntry {
            unix_ms: ms,
            peer_id: peer.0.into(),
            peer_name: peer.1.into(),
            channel: channel.into(),
            event: event.map(str::to_string),
            args,
            binary_bytes: None,
        }
    }

    #[test]
    fn files_are_placed_by_their_time_zero_on_the_room_clock() {
        let files = vec![
            probed(
                rec("b.mkv", ("p2", "bob"), "camera", Some(1_000_003_250.5), Some(1_000_003_000)),
                Some(7_000_000_000),
            ),
            probed(
                rec("a.webm", ("p1", "alice"), "camera", Some(1_000_000_100.25), Some(1_000_000_000)),
                Some(9_000_000_000),
            ),
        ];
        let p = plan(files, &[]).unwrap();
        assert_eq!(p.t0_unix_ms, 1_000_000_100.25);
        assert_eq!(p.files[0].file, "a.webm");
        assert_eq!(p.files[0].offset_ns, 0);
        assert_eq!(p.files[1].offset_ns, 3_150_250_000, "t0_b − t0_a, to the nanosecond");
        assert_eq!(p.files[0].tracks[0].title, "alice — camera (video)");
        assert_eq!(p.files[1].tracks[1].title, "bob — camera (audio)");
        assert_eq!(p.expected_end_ns, Some(10_150_250_000), "the later of 0 + 9 s and 3.15 s + 7 s");
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn old_manifests_fall_back_to_their_start_and_say_so() {
        let files = vec![
            probed(rec("a.webm", ("p1", "alice"), "camera", Some(5_000.0), Some(4_900)), None),
            probed(rec("old.webm", ("p2", "bob"), "camera", None, Some(6_000)), None),
            probed(rec("none.webm", ("p3", "eve"), "camera", None, None), None),
        ];
        let p = plan(files, &[]).unwrap();
        assert_eq!(p.files.len(), 2);
        assert!(p.notes.iter().all(|n| !n.contains("arrival")), "no clock source said: no claim");
        assert_eq!(p.files[1].offset_ns, 1_000_000_000);
        assert_eq!(p.expected_end_ns, None);
        let notes = p.notes.join("\n");
        assert!(notes.contains("old.webm: manifest has no t0_unix_ms"), "{notes}");
        assert!(notes.contains("none.webm") && notes.contains("skipped"), "{notes}");
    }

    #[test]
    fn a_restarted_stream_gives_numbered_parts_and_same_names_get_ids() {
        let mut interrupted = rec("a2.webm", ("p1", "alice"), "camera", Some(20_000.0), None);
        interrupted.state = "recording".into();
        interrupted.clock_source = Some("arrival".into());
        let files = vec![
            probed(rec("a1.webm", ("p1", "alice"), "camera", Some(10_000.0), None), None),
            probed(interrupted, None),
            probed(rec("s.webm", ("p1", "alice"), "screen", Some(15_000.0), None), None),
            probed(rec("x.webm", ("p9", "alice"), "camera", Some(16_000.0), None), None),
        ];
        let p = plan(files, &[]).unwrap();
        let titles: Vec<&str> = p.files.iter().map(|f| f.tracks[0].title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "alice (p1) — camera (video, part 1)",
                "alice (p1) — screen (video)",
                "alice (p9) — camera (video)",
                "alice (p1) — camera (video, part 2)"
            ]
        );
        assert!(p.notes.iter().any(|n| n.starts_with("a2.webm: interrupted")), "{:?}", p.notes);
        assert!(
            p.notes
                .iter()
                .any(|n| n.starts_with("1 of 4 file(s) placed by the gateway's clock") && n.ends_with(": a2.webm")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn nothing_placeable_is_an_error() {
        assert_eq!(plan(vec![], &[]).unwrap_err(), PlanError::Nothing(vec![]));
        let empty = ProbedFile {
            recording: rec("a.webm", ("p", "a"), "camera", Some(1.0), None),
            tracks: vec![],
            end_ns: None,
        };
        assert_eq!(plan(vec![empty], &[]).unwrap_err(), PlanError::Nothing(vec!["a.webm: no tracks: skipped".into()]));
    }

    #[test]
    fn chat_lines_become_cues_at_their_room_time() {
        let files = vec![probed(rec("a.webm", ("p1", "alice"), "camera", Some(10_000.0), None), Some(10_000_000_000))];
        let mut binary = chat(13_000, ("p2", "bob"), "chat", None, vec![]);
        binary.binary_bytes = Some(8);
        let lines = vec![
            chat(12_500, ("p1", "alice"), "chat", Some("msg"), vec![json!("hello")]),
            chat(9_000, ("p1", "alice"), "chat", Some("msg"), vec![json!("early")]),
            binary,
            chat(30_000, ("p2", "bob"), "ctrl", Some("raise-hand"), vec![json!({"up": true})]),
            chat(19_800, ("p1", "alice"), "chat", Some("msg"), vec![json!("last word at the media's end")]),
        ];
        let p = plan(files, &lines).unwrap();
        let cues: Vec<(u64, u64, &str)> = p.cues.iter().map(|c| (c.start_ns, c.duration_ns, c.text.as_str())).collect();
        assert_eq!(
            cues,
            [
                (0, 2_500_000_000, "alice: early"),
                (2_500_000_000, CUE_MIN, "alice: hello"),
                (3_000_000_000, CUE_MAX, "bob [chat]: binary message, 8 bytes"),
                (9_800_000_000, CUE_MIN, "alice: last word at the media's end"),
                (20_000_000_000, CUE_MIN, "bob [ctrl] raise-hand: {\"up\":true}"),
            ]
        );
        assert!(p.notes.iter().any(|n| n.contains("1 chat line(s) from before")), "{:?}", p.notes);
        assert_eq!(p.expected_end_ns, Some(20_000_000_000 + CUE_MIN));
    }
}
