//! The GStreamer side of `mux`: reading each source file's tracks, and the
//! one pipeline that writes the room's Matroska file from a [`Plan`].
//!
//! Per source file `filesrc ! matroskademux ! multiqueue`, every track into a
//! pad of one `matroskamux ! filesink`; the chat cues come from an `appsrc`
//! (`text/x-raw, format=utf8`, one buffer per cue) into a subtitle pad.
//! Passthrough: no parser, decoder or encoder is in the path, the muxer gets
//! the demuxer's frames and caps (`codec_data` included) as they are.
//!
//! Placing a file on the room clock is a pad probe on each demuxer pad:
//! `matroskademux` keeps the file's timestamps but starts its segment at the
//! first frame (so the muxer's running time would start every file at its
//! first frame); the probe replaces that segment with a plain one from 0 and
//! adds the file's offset to PTS, DTS and gap events, so an instant `t` of
//! the file lands at exactly `offset + t`. The same probe gives the track its
//! title (a stream-scoped `title` tag, which `matroskamux` writes as the
//! track's name) and keeps the source files' global tags out (container
//! dates of one file are not the room's).
//!
//! Why a small pre-pass of our own ([`probe_file`]: the file alone through
//! the same demuxer into fakesinks, prerolled) instead of `gst-discoverer`
//! (not a dependency): it tells which tracks each file has before the real
//! pipeline starts, so every muxer pad exists before any data flows (a muxer
//! pad requested after muxing began would be refused) and an unreadable file
//! is skipped with a note instead of stopping the whole mux.
//!
//! Interrupted files (a killed recorder: no cues, no duration, a cut last
//! cluster) need nothing special: the demuxer reads up to the last complete
//! frame and ends the stream there.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use parking_lot::Mutex;

use super::plan::{CHAT_TITLE, Plan, SourceTrack, TrackKind};

/// How long a source file may take to preroll in [`probe_file`].
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// The mux fails if nothing reaches the muxer for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Frames a per-file queue holds per track before the demuxer waits. A gap
/// in one track of a file does not stall the others: `matroskademux` sends
/// gap events on a track that lags (seen with a 16 s audio gap under 30 fps
/// video; the probe moves those onto the room clock too).
const QUEUE_BUFFERS: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("{0}")]
    Pipeline(String),
    #[error("nothing reached the muxer for {0:?}: stopped")]
    Stalled(Duration),
}

fn gst_err(e: impl std::fmt::Display) -> DriverError {
    DriverError::Gst(e.to_string())
}

pub fn init() -> Result<(), DriverError> {
    gst::init().map_err(gst_err)
}

/// What one output track received, measured at the muxer's input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackOutcome {
    pub title: String,
    pub kind: Option<TrackKind>,
    pub codec: String,
    /// Source file name (or `chat.jsonl`).
    pub source: String,
    /// First frame's time on the room clock.
    pub first_ns: Option<u64>,
    /// End of the last frame on the room clock.
    pub end_ns: Option<u64>,
    pub frames: u64,
}

/// The tracks of a Matroska/WebM file and where its last frame ends (its
/// own time line), read by prerolling it alone through `matroskademux`.
pub fn probe_file(path: &Path) -> Result<(Vec<SourceTrack>, Option<u64>), String> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc").map_err(|e| e.to_string())?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let demux = make("matroskademux").map_err(|e| e.to_string())?;
    pipeline.add_many([&src, &demux]).map_err(|e| e.to_string())?;
    src.link(&demux).map_err(|e| e.to_string())?;
    let frames = Arc::new(AtomicU64::new(0));
    let weak = pipeline.downgrade();
    let seen = frames.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        // A queue per track: one demuxer thread feeds every sink, and each
        // sink holds it while prerolling until all have their first frame.
        let (Ok(queue), Ok(sink)) = (
            gst::ElementFactory::make("queue")
                .property("max-size-buffers", 0u32)
                .property("max-size-bytes", 0u32)
                .property("max-size-time", 0u64)
                .build(),
            gst::ElementFactory::make("fakesink").property("sync", false).build(),
        ) else {
            return;
        };
        let seen = seen.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            seen.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        if pipeline.add_many([&queue, &sink]).is_ok() && queue.link(&sink).is_ok() {
            let _ = sink.sync_state_with_parent();
            let _ = queue.sync_state_with_parent();
            let _ = pad.link(&queue.static_pad("sink").expect("queue has a sink pad"));
        }
    });
    let result = preroll(&pipeline).and_then(|()| {
        let mut tracks = Vec::new();
        let mut end: Option<u64> = None;
        for pad in demux.src_pads() {
            let caps = pad.current_caps().ok_or_else(|| format!("track {} has no caps", pad.name()))?;
            let Some(s) = caps.structure(0) else { continue };
            let kind = match s.name().as_str() {
                n if n.starts_with("video/") || n.starts_with("image/") => TrackKind::Video,
                n if n.starts_with("audio/") => TrackKind::Audio,
                _ => TrackKind::Subtitle,
            };
            tracks.push(SourceTrack { pad: pad.name().to_string(), kind, codec: codec_name(s) });
            let start = pad
                .sticky_event::<gst::event::Segment>(0)
                .and_then(|e| e.segment().downcast_ref::<gst::ClockTime>().and_then(|s| s.start()));
            if let (Some(start), Some(duration)) = (start, pad.query_duration::<gst::ClockTime>()) {
                end = Some(end.unwrap_or(0).max((start + duration).nseconds()));
            }
        }
        if frames.load(Ordering::Relaxed) == 0 {
            return Err("no frames".to_string());
        }
        Ok((tracks, end))
    });
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn preroll(pipeline: &gst::Pipeline) -> Result<(), String> {
    pipeline.set_state(gst::State::Paused).map_err(|_| first_error(pipeline, "cannot be read"))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("did not preroll within {PROBE_TIMEOUT:?}"));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[gst::MessageType::AsyncDone, gst::MessageType::Error, gst::MessageType::Eos],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::AsyncDone(_) | gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(e.error().to_string()),
            _ => {}
        }
    }
}

fn first_error(pipeline: &gst::Pipeline, otherwise: &str) -> String {
    pipeline
        .bus()
        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
        .and_then(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| otherwise.to_string())
}

/// A short codec name for the summary.
fn codec_name(s: &gst::StructureRef) -> String {
    match s.name().as_str() {
        "video/x-vp8" => "VP8".into(),
        "video/x-vp9" => "VP9".into(),
        "video/x-av1" => "AV1".into(),
        "video/x-h264" => "H.264".into(),
        "video/x-h265" => "H.265".into(),
        "audio/x-opus" => "Opus".into(),
        "audio/x-vorbis" => "Vorbis".into(),
        "audio/mpeg" if s.get::<i32>("mpegversion").is_ok_and(|v| v == 4) => "AAC".into(),
        "text/x-raw" => "text".into(),
        other => other.to_string(),
    }
}

fn make(factory: &str) -> Result<gst::Element, DriverError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| DriverError::Gst(format!("element {factory} is missing (GStreamer plugins not installed?)")))
}

/// Per-track counters, written by the probe at the muxer's pad.
#[derive(Default)]
struct Counted {
    first: Option<u64>,
    end: Option<u64>,
    frames: u64,
}

/// Write `plan` to `out`; `progress(position_ns)` is called every
/// [`PROGRESS_EVERY`] with how far the muxer got on the room clock.
pub fn run(plan: &Plan, out: &Path, progress: &mut dyn FnMut(u64)) -> Result<Vec<TrackOutcome>, DriverError> {
    let pipeline = gst::Pipeline::new();
    let mux = make("matroskamux")?;
    mux.set_property("writing-app", "rtcio-gateway mux");
    let sink = make("filesink")?;
    sink.set_property("location", out.to_string_lossy().as_ref());
    pipeline.add_many([&mux, &sink]).map_err(gst_err)?;
    mux.link(&sink).map_err(gst_err)?;
    let position = Arc::new(AtomicU64::new(0));
    let mut tracks: Vec<(TrackOutcome, Arc<Mutex<Counted>>)> = Vec::new();

    for file in &plan.files {
        let src = make("filesrc")?;
        src.set_property("location", file.path.to_string_lossy().as_ref());
        let demux = make("matroskademux")?;
        let queue = make("multiqueue")?;
        queue.set_property("max-size-buffers", QUEUE_BUFFERS);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 0u64);
        pipeline.add_many([&src, &demux, &queue]).map_err(gst_err)?;
        src.link(&demux).map_err(gst_err)?;
        // Demuxer pad name → the queue's sink pad that feeds its muxer pad.
        let mut routes = Vec::new();
        for track in &file.tracks {
            let template = match track.kind {
                TrackKind::Video => "video_%u",
                TrackKind::Audio => "audio_%u",
                TrackKind::Subtitle => "subtitle_%u",
            };
            let mux_pad = mux
                .request_pad_simple(template)
                .ok_or_else(|| DriverError::Pipeline(format!("matroskamux refused a {template} pad")))?;
            let q_sink = queue.request_pad_simple("sink_%u").ok_or_else(|| gst_err("multiqueue refused a pad"))?;
            let q_src = q_sink
                .iterate_internal_links()
                .into_iter()
                .flatten()
                .next()
                .ok_or_else(|| gst_err("multiqueue pad without its source pad"))?;
            q_src.link(&mux_pad).map_err(|e| DriverError::Pipeline(format!("{} {}: {e}", file.file, track.pad)))?;
            let counted = Arc::new(Mutex::new(Counted::default()));
            count_at_mux(&mux_pad, counted.clone(), Some(position.clone()));
            tracks.push((
                TrackOutcome {
                    title: track.title.clone(),
                    kind: Some(track.kind),
                    codec: track.codec.clone(),
                    source: file.file.clone(),
                    ..Default::default()
                },
                counted,
            ));
            routes.push((track.pad.clone(), track.title.clone(), q_sink));
        }
        let offset = gst::ClockTime::from_nseconds(file.offset_ns);
        let name = file.file.clone();
        demux.connect_pad_added(move |_, pad| {
            let Some((_, title, q_sink)) = routes.iter().find(|(p, _, _)| *p == pad.name()) else {
                tracing::warn!(file = %name, pad = %pad.name(), "a track the pre-pass did not see: left out");
                return;
            };
            place_on_room_clock(pad, offset, title.clone(), true);
            if let Err(e) = pad.link(q_sink) {
                tracing::warn!(file = %name, pad = %pad.name(), "cannot link: {e}");
            }
        });
    }

    if !plan.cues.is_empty() {
        let appsrc = gst_app::AppSrc::builder()
            .caps(&gst::Caps::builder("text/x-raw").field("format", "utf8").build())
            .format(gst::Format::Time)
            .build();
        // All cues are queued before the start: they are few and small.
        appsrc.set_max_bytes(0);
        pipeline.add(&appsrc).map_err(gst_err)?;
        let mux_pad = mux
            .request_pad_simple("subtitle_%u")
            .ok_or_else(|| DriverError::Pipeline("matroskamux refused a subtitle pad".into()))?;
        let src_pad = appsrc.static_pad("src").expect("appsrc has a src pad");
        src_pad.link(&mux_pad).map_err(gst_err)?;
        place_on_room_clock(&src_pad, gst::ClockTime::ZERO, CHAT_TITLE.to_string(), false);
        let counted = Arc::new(Mutex::new(Counted::default()));
        count_at_mux(&mux_pad, counted.clone(), None);
        tracks.push((
            TrackOutcome {
                title: CHAT_TITLE.into(),
                kind: Some(TrackKind::Subtitle),
                codec: "text".into(),
                source: crate::recorder::chat_log::FILE_NAME.into(),
                ..Default::default()
            },
            counted,
        ));
        for cue in &plan.cues {
            let mut buffer = gst::Buffer::from_slice(cue.text.clone().into_bytes());
            {
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_pts(gst::ClockTime::from_nseconds(cue.start_ns));
                b.set_duration(gst::ClockTime::from_nseconds(cue.duration_ns));
            }
            appsrc.push_buffer(buffer).map_err(gst_err)?;
        }
        appsrc.end_of_stream().map_err(gst_err)?;
    }

    let result = run_to_eos(&pipeline, &position, progress);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    Ok(tracks
        .into_iter()
        .map(|(mut outcome, counted)| {
            let c = counted.lock();
            outcome.first_ns = c.first;
            outcome.end_ns = c.end;
            outcome.frames = c.frames;
            outcome
        })
        .collect())
}

fn run_to_eos(
    pipeline: &gst::Pipeline,
    position: &AtomicU64,
    progress: &mut dyn FnMut(u64),
) -> Result<(), DriverError> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| DriverError::Pipeline(first_error(pipeline, "did not start")))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut last = (0, Instant::now());
    loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(PROGRESS_EVERY.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => return Ok(()),
            Some(gst::MessageView::Error(e)) => {
                let from = e.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                let debug = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                return Err(DriverError::Pipeline(format!("{from}: {}{debug}", e.error())));
            }
            _ => {}
        }
        let now = position.load(Ordering::Relaxed);
        progress(now);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > STALL_TIMEOUT {
            return Err(DriverError::Stalled(STALL_TIMEOUT));
        }
    }
}

/// Replace the demuxer's segment by one from 0 (if `rewrite_segment`), add
/// `offset` to every timestamp, and title the track.
fn place_on_room_clock(pad: &gst::Pad, offset: gst::ClockTime, title: String, rewrite_segment: bool) {
    let titled = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                if !titled.swap(true, Ordering::SeqCst)
                    && let Some(peer) = pad.peer()
                {
                    peer.send_event(title_event(&title, None));
                }
                if !offset.is_zero() {
                    let b = buffer.make_mut();
                    if let Some(pts) = b.pts() {
                        b.set_pts(pts + offset);
                    }
                    if let Some(dts) = b.dts() {
                        b.set_dts(dts + offset);
                    }
                }
            }
            Some(gst::PadProbeData::Event(event)) => {
                let seqnum = event.seqnum();
                let replacement = match event.view() {
                    gst::EventView::Segment(_) if rewrite_segment => {
                        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
                        Some(gst::event::Segment::builder(&segment).seqnum(seqnum).build())
                    }
                    // A source file's global tags (its dates) are not the
                    // room's: they become our stream tags. (Replaced, not
                    // dropped: dropping an event from a probe trips a
                    // GStreamer 1.22 critical about a NULL unref.)
                    gst::EventView::Tag(tag) if tag.tag().scope() == gst::TagScope::Global => {
                        titled.store(true, Ordering::SeqCst);
                        Some(title_event(&title, None))
                    }
                    gst::EventView::Tag(tag) => {
                        titled.store(true, Ordering::SeqCst);
                        Some(title_event(&title, Some(tag.tag())))
                    }
                    gst::EventView::Gap(gap) => {
                        let (ts, duration) = gap.get();
                        Some(gst::event::Gap::builder(ts + offset).duration(duration).seqnum(seqnum).build())
                    }
                    _ => None,
                };
                if let Some(replacement) = replacement {
                    *event = replacement;
                }
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// A stream-scoped tag event: `upstream`'s tags with our `title`.
fn title_event(title: &str, upstream: Option<&gst::TagListRef>) -> gst::Event {
    let mut tags = upstream.map(|t| t.to_owned()).unwrap_or_default();
    {
        let tags = tags.make_mut();
        tags.set_scope(gst::TagScope::Stream);
        tags.add::<gst::tags::Title>(&title, gst::TagMergeMode::Replace);
    }
    gst::event::Tag::new(tags)
}

/// Count what reaches the muxer; media tracks also move `position` (chat cues
/// wait at the muxer long before their time comes).
fn count_at_mux(pad: &gst::Pad, counted: Arc<Mutex<Counted>>, position: Option<Arc<AtomicU64>>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer()
            && let Some(pts) = buffer.pts()
        {
            let start = pts.nseconds();
            let end = start + buffer.duration().map(|d| d.nseconds()).unwrap_or(0);
            let mut c = counted.lock();
            c.first = Some(c.first.map_or(start, |f| f.min(start)));
            c.end = Some(c.end.map_or(end, |e| e.max(end)));
            c.frames += 1;
            if let Some(position) = &position {
                position.fetch_max(start, Ordering::Relaxed);
            }
        }
        gst::PadProbeReturn::Ok
    });
}
