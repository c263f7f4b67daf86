//! The composite's GStreamer pipeline: a `compositor` and an `audiomixer`,
//! live on the gateway's clock, into a composite template's encoders, muxer
//! and sink ([`crate::media::templates`], `composite = true`); one branch per
//! input, added and removed while it runs.
//!
//! This module owns the GStreamer objects. Which inputs exist, where tiles
//! go and when is decided by [`super::scene`]; when each packet is shown by
//! [`super::placement`]; the caller (`recorder::composite`) drives both.
//!
//! - The output never waits for an input: a transparent live test source
//!   keeps the compositor and the mixer producing frames and silence on the
//!   clock (a room with nobody in it is a black, silent picture, not a stall),
//!   and an input's frames are composed when due or not at all.
//! - A track branch is `appsrc` (RTP, stamped by the caller on the room
//!   clock) → depayloader → decoder → (video) a name label, (audio) a `level`
//!   meter → a queue → a request pad of the compositor or the mixer. Its
//!   decoded size, its levels and its depayloader's keyframe requests come
//!   back as [`PipelineEvent`]s.
//! - A name card (a member with audio only) is a still live source with the name.
//! - Removing a branch: its appsrc has ended (EOS played out) or is ended
//!   now; the branch is unlinked when its pad is idle, its request pad
//!   released, and it is stopped off the streaming threads. Errors from a
//!   branch being removed are not the pipeline's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::layout::Placement;
use super::scene::InputId;
use crate::media::kind::MediaKind;
use crate::media::output::InputCaps;
use crate::media::templates::{Template, Values, quote};

/// Bytes an input's appsrc holds at most (older data is dropped beyond it).
const APPSRC_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// The mixer's format.
const AUDIO_CAPS: &str = "audio/x-raw,format=F32LE,layout=interleaved,rate=48000,channels=2";
/// How often an audio input's level is reported.
const LEVEL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub canvas: (u32, u32),
    pub framerate: u32,
}

/// Something the pipeline reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineEvent {
    /// The pipeline failed; it is stopped.
    Error { element: String, message: String },
    /// An input's decoded picture size.
    PictureSize { input: InputId, width: u32, height: u32 },
    /// An audio input's level over the last interval (RMS dBFS, loudest channel).
    Level { input: InputId, rms_db: f64 },
    /// An input's depayloader or decoder asked for a keyframe.
    KeyframeRequested { input: InputId },
}

struct Branch {
    bin: gst::Bin,
    src: Option<gst_app::AppSrc>,
    /// The compositor's or the mixer's pad it feeds.
    sink_pad: gst::Pad,
    aggregator: gst::Element,
    ended: bool,
}

/// A running composite. Dropping it stops it abruptly; call [`CompositePipeline::finish`].
pub struct CompositePipeline {
    pipeline: gst::Pipeline,
    compositor: gst::Element,
    mixer: gst::Element,
    branches: HashMap<InputId, Branch>,
    /// Bins being removed: their errors are expected.
    removing: Arc<Mutex<HashSet<String>>>,
    events_tx: mpsc::UnboundedSender<PipelineEvent>,
    events: mpsc::UnboundedReceiver<PipelineEvent>,
    eos: tokio::sync::watch::Receiver<bool>,
    bus_task: tokio::task::JoinHandle<()>,
}

fn bin_name(input: InputId) -> String {
    format!("input{input}")
}

/// The input a branch element belongs to, from its bin's name.
fn input_of(object: &gst::Object) -> Option<InputId> {
    let mut current = Some(object.clone());
    while let Some(o) = current {
        if let Some(id) = o.name().strip_prefix("input").and_then(|n| n.parse().ok()) {
            return Some(id);
        }
        current = o.parent();
    }
    None
}

/// The depayloader and decoder of a codec, or why it cannot be composed.
fn decoder_chain(caps: &InputCaps) -> Result<&'static str, String> {
    Ok(match (caps.kind, caps.encoding_name.as_str()) {
        (MediaKind::Video, "VP8") => "rtpvp8depay request-keyframe=true wait-for-keyframe=true ! vp8dec",
        (MediaKind::Video, "VP9") => "rtpvp9depay request-keyframe=true wait-for-keyframe=true ! vp9dec",
        (MediaKind::Video, "H264") => {
            "rtph264depay request-keyframe=true wait-for-keyframe=true ! h264parse ! avdec_h264"
        }
        (MediaKind::Audio, "OPUS") => "rtpopusdepay ! opusdec plc=true",
        (kind, codec) => return Err(format!("the composite cannot decode {} {codec}", kind.as_str())),
    })
}

impl CompositePipeline {
    /// Build and start the pipeline of `template` (a composite template).
    pub fn start(template: &Template, values: &Values, settings: &PipelineSettings) -> Result<Self, String> {
        crate::media::init().map_err(|e| e.to_string())?;
        let (w, h) = settings.canvas;
        let fps = settings.framerate.max(1);
        let video_caps = format!("video/x-raw,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1");
        let video_head = format!("compositor name=comp background=black ! {video_caps} ! queue");
        let audio_head = format!("audiomixer name=amix ! {AUDIO_CAPS} ! queue");
        let mut description = template.composite_description(&video_head, &audio_head, values)?;
        // The clocks of the output: a transparent picture and silence, live.
        description.push_str(&format!(
            "\nvideotestsrc is-live=true pattern=black ! video/x-raw,width=16,height=16,framerate={fps}/1 ! comp.sink_0\
             \naudiotestsrc is-live=true wave=silence ! {AUDIO_CAPS} ! amix.sink_0"
        ));
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| format!("cannot build the composite pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        let compositor = pipeline.by_name("comp").ok_or("no compositor")?;
        let mixer = pipeline.by_name("amix").ok_or("no audiomixer")?;
        if let Some(pad) = compositor.static_pad("sink_0") {
            pad.set_property("alpha", 0.0f64);
            pad.set_property("zorder", 0u32);
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let (eos_tx, eos) = tokio::sync::watch::channel(false);
        let removing: Arc<Mutex<HashSet<String>>> = Arc::default();
        let bus = pipeline.bus().ok_or("no bus")?;
        let bus_task = {
            let events_tx = events_tx.clone();
            let removing = removing.clone();
            tokio::spawn(async move {
                use futures_util::StreamExt;
                let mut messages = bus.stream();
                while let Some(message) = messages.next().await {
                    match message.view() {
                        gst::MessageView::Eos(_) => {
                            let _ = eos_tx.send(true);
                        }
                        gst::MessageView::Error(e) => {
                            let from_removed = message.src().and_then(input_of).is_some_and(|id| {
                                removing.lock().expect("not poisoned").contains(&bin_name(id))
                            });
                            if from_removed {
                                continue;
                            }
                            let element = message.src().map(|s| s.name().to_string()).unwrap_or_default();
                            let _ = events_tx.send(PipelineEvent::Error { element, message: e.error().to_string() });
                        }
                        gst::MessageView::Element(m) => {
                            let Some(s) = m.structure() else { continue };
                            if s.name() != "level" {
                                continue;
                            }
                            let Some(input) = message.src().and_then(input_of) else { continue };
                            if let Ok(rms) = s.get::<glib::ValueArray>("rms") {
                                let loudest = rms.iter().filter_map(|v| v.get::<f64>().ok()).fold(f64::NEG_INFINITY, f64::max);
                                let _ = events_tx.send(PipelineEvent::Level { input, rms_db: loudest });
                            }
                        }
                        _ => {}
                    }
                }
            })
        };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start the composite pipeline: {e}"))?;
        Ok(CompositePipeline {
            pipeline,
            compositor,
            mixer,
            branches: HashMap::new(),
            removing,
            events_tx,
            events,
            eos,
            bus_task,
        })
    }

    /// The pipeline's running time now (zero until it runs).
    pub fn running_time(&self) -> Duration {
        self.pipeline.current_running_time().map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()))
    }

    /// The next thing the pipeline reports.
    pub async fn next_event(&mut self) -> Option<PipelineEvent> {
        self.events.recv().await
    }

    /// Add a branch for a track; its packets follow with [`CompositePipeline::push`].
    pub fn add_track(&mut self, input: InputId, caps: &InputCaps, label: &str) -> Result<(), String> {
        let chain = decoder_chain(caps)?;
        let tail = match caps.kind {
            MediaKind::Video => format!(
                "videoconvert ! textoverlay wait-text=false text={} halignment=left valignment=bottom font-desc=\"Sans Bold 14\" \
                 shaded-background=true ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000",
                quote(label)
            ),
            MediaKind::Audio => format!(
                "audioconvert ! audioresample ! {AUDIO_CAPS} ! level interval={} post-messages=true ! \
                 queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000",
                LEVEL_INTERVAL.as_nanos()
            ),
        };
        let description = format!("appsrc name=src ! {chain} ! {tail}");
        let bin = self.add_bin(input, &description, caps.kind, Some(&caps.to_caps()))?;
        let src = bin.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).ok_or("no appsrc")?;
        if let Some(pad) = src.static_pad("src") {
            let events = self.events_tx.clone();
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if info.event().is_some_and(|e| gstreamer_video::ForceKeyUnitEvent::is(e)) {
                    let _ = events.send(PipelineEvent::KeyframeRequested { input });
                }
                gst::PadProbeReturn::Ok
            });
        }
        if caps.kind == MediaKind::Video
            && let Some(pad) = bin.static_pad("src")
        {
            let events = self.events_tx.clone();
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::EventView::Caps(c)) = info.event().map(|e| e.view())
                    && let Some(s) = c.caps().structure(0)
                    && let (Ok(width), Ok(height)) = (s.get::<i32>("width"), s.get::<i32>("height"))
                {
                    let (width, height) = (width.max(1) as u32, height.max(1) as u32);
                    let _ = events.send(PipelineEvent::PictureSize { input, width, height });
                }
                gst::PadProbeReturn::Ok
            });
        }
        self.branches.get_mut(&input).expect("just added").src = Some(src);
        Ok(())
    }

    /// Add a name card: a still dark tile with the name.
    pub fn add_name_card(&mut self, input: InputId, label: &str) -> Result<(), String> {
        let description = format!(
            "videotestsrc is-live=true do-timestamp=true pattern=solid-color foreground-color=0xff303030 ! \
             video/x-raw,width=640,height=360,framerate=5/1 ! textoverlay wait-text=false text={} halignment=center valignment=center \
             font-desc=\"Sans Bold 28\" ! queue",
            quote(label)
        );
        self.add_bin(input, &description, MediaKind::Video, None).map(|_| ())
    }

    /// Build, link and start a branch; `rtp_caps`: its `appsrc name=src` takes these (set before it starts).
    fn add_bin(
        &mut self,
        input: InputId,
        description: &str,
        kind: MediaKind,
        rtp_caps: Option<&gst::Caps>,
    ) -> Result<gst::Bin, String> {
        if self.branches.contains_key(&input) {
            return Err(format!("input {input} exists"));
        }
        let bin = gst::parse::bin_from_description(description, true)
            .map_err(|e| format!("cannot build a composite input: {e}"))?;
        bin.set_property("name", bin_name(input));
        if let Some(caps) = rtp_caps {
            let src = bin.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).ok_or("no appsrc")?;
            src.set_caps(Some(caps));
            src.set_format(gst::Format::Time);
            src.set_is_live(true);
            // Stamped by the caller on the room clock.
            src.set_do_timestamp(false);
            src.set_max_bytes(APPSRC_MAX_BYTES);
            src.set_leaky_type(gst_app::AppLeakyType::Downstream);
        }
        let aggregator = match kind {
            MediaKind::Video => self.compositor.clone(),
            MediaKind::Audio => self.mixer.clone(),
        };
        let sink_pad = aggregator.request_pad_simple("sink_%u").ok_or("no free aggregator pad")?;
        if kind == MediaKind::Video {
            // Hidden until the scene places it.
            sink_pad.set_property("alpha", 0.0f64);
        }
        self.pipeline.add(&bin).map_err(|e| e.to_string())?;
        let src_pad = bin.static_pad("src").ok_or("the input has no output")?;
        src_pad.link(&sink_pad).map_err(|e| format!("cannot link a composite input: {e:?}"))?;
        bin.sync_state_with_parent().map_err(|e| e.to_string())?;
        self.branches.insert(input, Branch { bin: bin.clone(), src: None, sink_pad, aggregator, ended: false });
        Ok(bin)
    }

    /// Hand an input packets stamped with their presentation times (running time).
    pub fn push(&mut self, input: InputId, packets: impl IntoIterator<Item = (Bytes, Duration)>) {
        let Some(src) = self.branches.get(&input).and_then(|b| b.src.as_ref()) else { return };
        let mut list = gst::BufferList::new();
        {
            let list = list.get_mut().expect("a new list is writable");
            for (bytes, pts) in packets {
                let mut buffer = gst::Buffer::from_slice(bytes);
                {
                    let buffer = buffer.get_mut().expect("a new buffer is writable");
                    let pts = gst::ClockTime::from_nseconds(pts.as_nanos() as u64);
                    buffer.set_pts(pts);
                    buffer.set_dts(pts);
                }
                list.add(buffer);
            }
        }
        if !list.is_empty() {
            let _ = src.push_buffer_list(list);
        }
    }

    /// Place the tiles; video inputs not listed are hidden.
    pub fn set_layout(&self, placements: &[Placement]) {
        for (input, branch) in &self.branches {
            if branch.aggregator != self.compositor {
                continue;
            }
            match placements.iter().find(|p| p.id == *input) {
                Some(p) => {
                    let pad = &branch.sink_pad;
                    pad.set_property("xpos", p.picture.x);
                    pad.set_property("ypos", p.picture.y);
                    pad.set_property("width", p.picture.width);
                    pad.set_property("height", p.picture.height);
                    pad.set_property("zorder", p.zorder + 1);
                    pad.set_property("alpha", 1.0f64);
                }
                None => branch.sink_pad.set_property("alpha", 0.0f64),
            }
        }
    }

    /// The input's media ends: what it holds plays out, then EOS.
    pub fn end_input(&mut self, input: InputId) {
        if let Some(branch) = self.branches.get_mut(&input)
            && !branch.ended
        {
            branch.ended = true;
            if let Some(src) = &branch.src {
                let _ = src.end_of_stream();
            }
        }
    }

    /// Take the input's branch out of the running pipeline.
    pub fn remove_input(&mut self, input: InputId) {
        let Some(branch) = self.branches.remove(&input) else { return };
        self.removing.lock().expect("not poisoned").insert(bin_name(input));
        if let Some(src) = &branch.src
            && !branch.ended
        {
            let _ = src.end_of_stream();
        }
        let Some(src_pad) = branch.bin.static_pad("src") else { return };
        let (pipeline, aggregator, sink_pad, bin) =
            (self.pipeline.clone(), branch.aggregator.clone(), branch.sink_pad.clone(), branch.bin.clone());
        // Unlinked when no buffer is going through; stopped off the streaming thread.
        src_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            let _ = pad.unlink(&sink_pad);
            let (pipeline, aggregator, sink_pad, bin) = (pipeline.clone(), aggregator.clone(), sink_pad.clone(), bin.clone());
            std::thread::spawn(move || {
                aggregator.release_request_pad(&sink_pad);
                let _ = bin.set_state(gst::State::Null);
                let _ = pipeline.remove(&bin);
            });
            gst::PadProbeReturn::Remove
        });
    }

    pub fn inputs(&self) -> usize {
        self.branches.len()
    }

    /// End every input and wait (at most `timeout`) for the file to be finalised.
    pub async fn finish(&mut self, timeout: Duration) -> Result<(), String> {
        for branch in self.branches.values_mut() {
            branch.ended = true;
        }
        // EOS into every source: the aggregators end when all their pads have.
        self.pipeline.send_event(gst::event::Eos::new());
        let mut eos = self.eos.clone();
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                if *eos.borrow() {
                    return Ok(());
                }
                tokio::select! {
                    changed = eos.changed() => if changed.is_err() { return Err("the pipeline's bus closed".to_string()) },
                    event = self.events.recv() => if let Some(PipelineEvent::Error { element, message }) = event {
                        return Err(format!("{element}: {message}"));
                    },
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("not finalised within {timeout:?}")));
        let _ = self.pipeline.set_state(gst::State::Null);
        self.bus_task.abort();
        outcome
    }
}

impl Drop for CompositePipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.bus_task.abort();
    }
}
