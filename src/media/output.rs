//! One running output pipeline (a recording or a relay) built from a
//! template: RTP in through `appsrc name=video|audio`, errors and EOS out
//! through the bus, keyframe requests out through a pad probe.
//!
//! This module owns the GStreamer objects and the way packets enter them:
//! in sequence order ([`Reorder`]), stamped from their RTP timestamps on
//! their sender's wall clock ([`FileClock`], [`InputClock`]) and pushed in batches, at most one wake-up of an input's
//! streaming thread per [`PUSH_EVERY`]. The built-in templates have no
//! jitter buffer: this is it, without its two threads and its timers per
//! input. Which packets to push, when to ask for keyframes and what the file
//! is called are decided by the caller (`recorder::stream`).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::media::clock_status::ClockSource;
use crate::media::kind::MediaKind;
use crate::media::reorder::Reorder;
use crate::media::sync_clock::{FileClock, InputClock, backfill, origin_for};

/// Payload types we give the packets we push (the caller rewrites them).
pub const VIDEO_PT: u8 = 96;
pub const AUDIO_PT: u8 = 111;
/// Bytes an appsrc may hold while its pipeline is stalled; older data is dropped beyond it.
const APPSRC_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// The RTP caps of one input.
#[derive(Debug, Clone)]
pub struct InputCaps {
    pub kind: MediaKind,
    /// `VP8`, `H264`, `OPUS`, ...
    pub encoding_name: String,
    pub clock_rate: u32,
    pub channels: u16,
}

impl InputCaps {
    pub fn to_caps(&self) -> gst::Caps {
        // Integer fields must be i32, or the depayloader refuses the caps.
        let payload = match self.kind {
            MediaKind::Video => VIDEO_PT,
            MediaKind::Audio => AUDIO_PT,
        };
        let mut caps = gst::Caps::builder("application/x-rtp")
            .field("media", self.kind.as_str())
            .field("encoding-name", self.encoding_name.as_str())
            .field("clock-rate", self.clock_rate as i32)
            .field("payload", payload as i32);
        if self.kind == MediaKind::Audio && self.channels > 0 {
            caps = caps.field("encoding-params", self.channels.to_string());
        }
        caps.build()
    }
}

/// Something the pipeline reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// An element asked for a keyframe (e.g. a depayloader after loss).
    KeyframeRequested,
    /// The pipeline failed; it is stopped.
    Error { element: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot build the pipeline: {0}")]
    Parse(#[from] glib::Error),
    #[error("the pipeline lacks `appsrc name={0}`")]
    MissingInput(&'static str),
    #[error("cannot start the pipeline: {0}")]
    Start(String),
}

/// How long a gap in an input's sequence numbers is waited for before it is
/// given up, unless [`Output::with_reorder_window`] says otherwise.
pub const DEFAULT_REORDER_WINDOW: Duration = Duration::from_millis(200);
/// Packets held behind gaps at most, per input.
const MAX_HELD_PACKETS: usize = 512;
/// An input's packets are handed to its streaming thread at most this often
/// (one wake-up of that thread per push, however many packets it carries),
/// unless [`Output::with_push_every`] says otherwise.
pub const PUSH_EVERY: Duration = Duration::from_millis(20);

/// A packet waiting in front of an input: when it arrived (running time),
/// its bytes, and when it was captured on its sender's wall clock (Unix ns)
/// if a sender report says so.
type Arrived = (Duration, Bytes, Option<i128>);

/// One `appsrc` and what stands in front of it: sequence order, presentation
/// times and the batch not yet pushed.
struct Input {
    src: gst_app::AppSrc,
    reorder: Reorder<Arrived>,
    clock: InputClock,
    /// Released packets not yet pushed, stamped.
    batch: Vec<gst::Buffer>,
    last_push: Option<Duration>,
    push_every: Duration,
    /// Released packets held back at the start until the inputs' sender times are known.
    held: Vec<Arrived>,
    clock_rate: u32,
}

impl Input {
    fn new(src: gst_app::AppSrc, clock_rate: u32) -> Input {
        Input {
            src,
            reorder: Reorder::new(DEFAULT_REORDER_WINDOW, MAX_HELD_PACKETS),
            clock: InputClock::new(clock_rate),
            batch: Vec::new(),
            last_push: None,
            push_every: PUSH_EVERY,
            held: Vec::new(),
            clock_rate,
        }
    }

    /// Stamp released packets and add them to the batch (or hold them, while the output's start is held).
    fn stamp(&mut self, file: &mut FileClock, released: &mut Vec<Arrived>, hold: &SyncHold) {
        if matches!(hold, SyncHold::Waiting { .. }) {
            self.held.append(released);
            return;
        }
        self.stamp_packets(file, released, false);
    }

    /// `placed`: packets with a sender time are placed by it alone (the end of a held start).
    fn stamp_packets(&mut self, file: &mut FileClock, released: &mut Vec<Arrived>, placed: bool) {
        for (arrival, packet, sender_ns) in released.drain(..) {
            let Some(timestamp) = rtp_timestamp(&packet) else { continue };
            let pts = match sender_ns {
                Some(sender) if placed => self.clock.pts_placed(file, arrival, timestamp, sender),
                _ => self.clock.pts(file, arrival, timestamp, sender_ns),
            };
            let pts = gst::ClockTime::from_nseconds(pts.as_nanos() as u64);
            let mut buffer = gst::Buffer::from_slice(packet);
            {
                let buffer = buffer.get_mut().expect("a new buffer is writable");
                buffer.set_pts(pts);
                buffer.set_dts(pts);
            }
            self.batch.push(buffer);
        }
    }

    /// Hand the batch to the streaming thread if it is due (or `force`).
    fn push_batch(&mut self, now: Duration, force: bool) {
        if self.batch.is_empty() {
            return;
        }
        let due = self.last_push.is_none_or(|last| now.saturating_sub(last) >= self.push_every);
        if !(due || force) {
            return;
        }
        self.last_push = Some(now);
        if self.batch.len() == 1 {
            let _ = self.src.push_buffer(self.batch.pop().expect("one buffer"));
            return;
        }
        let mut list = gst::BufferList::new_sized(self.batch.len());
        {
            let list = list.get_mut().expect("a new list is writable");
            for buffer in self.batch.drain(..) {
                list.add(buffer);
            }
        }
        let _ = self.src.push_buffer_list(list);
    }
}

/// Whether an output's first packets are held back until its inputs' sender times are known.
#[derive(Debug)]
enum SyncHold {
    Off,
    /// Holding for at most `hold` from the first packet (`until`, once it came).
    Waiting {
        hold: Duration,
        until: Option<Duration>,
    },
    Done,
}

/// Packets one input holds at most while the start is held (then the hold ends).
const MAX_SYNC_HELD: usize = 4096;

/// A running pipeline. Dropping it stops it abruptly; call [`Output::finish`] to finalise.
pub struct Output {
    pipeline: gst::Pipeline,
    video: Option<Input>,
    audio: Option<Input>,
    bus_task: tokio::task::JoinHandle<()>,
    eos: tokio::sync::watch::Receiver<bool>,
    /// Scratch space for released packets.
    released: Vec<Arrived>,
    /// Presentation time zero on the wall clock.
    clock: FileClock,
    hold: SyncHold,
}

impl Output {
    /// Build from a gst-launch description and start it. Pipeline events go to
    /// `events`, tagged with `tag` (one channel can serve many outputs).
    pub fn start(
        description: &str,
        video: Option<&InputCaps>,
        audio: Option<&InputCaps>,
        tag: u64,
        events: mpsc::UnboundedSender<(u64, OutputEvent)>,
    ) -> Result<Output, OutputError> {
        crate::media::init()?;
        let pipeline = gst::parse::launch(description)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| OutputError::Start("the description is not a pipeline".into()))?;
        let video_src = video
            .map(|c| configure_input(&pipeline, "video", c, tag, &events).map(|src| Input::new(src, c.clock_rate)))
            .transpose()?;
        keep_first_video_caps_at_matroska(&pipeline);
        let audio_src = audio
            .map(|c| configure_input(&pipeline, "audio", c, tag, &events).map(|src| Input::new(src, c.clock_rate)))
            .transpose()?;
        let bus = pipeline.bus().expect("a pipeline has a bus");
        let (eos_tx, eos_rx) = tokio::sync::watch::channel(false);
        let bus_events = events.clone();
        let weak = pipeline.downgrade();
        let bus_task = tokio::spawn(async move {
            let mut messages = bus.stream_filtered(&[gst::MessageType::Eos, gst::MessageType::Error]);
            while let Some(message) = messages.next().await {
                match message.view() {
                    gst::MessageView::Eos(_) => {
                        let _ = eos_tx.send(true);
                    }
                    gst::MessageView::Error(e) => {
                        let element = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                        let message = match e.debug() {
                            Some(debug) => format!("{} ({debug})", e.error()),
                            None => e.error().to_string(),
                        };
                        if let Some(p) = weak.upgrade() {
                            let _ = p.set_state(gst::State::Null);
                        }
                        let _ = bus_events.send((tag, OutputEvent::Error { element, message }));
                        let _ = eos_tx.send(true);
                        break;
                    }
                    _ => {}
                }
            }
        });
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            bus_task.abort();
            let _ = pipeline.set_state(gst::State::Null);
            return Err(OutputError::Start(e.to_string()));
        }
        Ok(Output {
            pipeline,
            video: video_src,
            audio: audio_src,
            bus_task,
            eos: eos_rx,
            released: Vec::new(),
            clock: FileClock::default(),
            hold: SyncHold::Off,
        })
    }

    /// How long a gap in an input's sequence numbers is waited for
    /// (default [`DEFAULT_REORDER_WINDOW`]).
    pub fn with_reorder_window(mut self, window: Duration) -> Output {
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            input.reorder.set_window(window);
        }
        self
    }

    /// Hold the first packets back for up to `hold` until every input has a
    /// sender time, so the file is in sync from its first frame (see
    /// [`crate::media::sync_clock`]); zero (the default) holds nothing. For
    /// recordings: a live relay would start that much later.
    pub fn with_sync_hold(mut self, hold: Duration) -> Output {
        self.hold = if hold.is_zero() { SyncHold::Off } else { SyncHold::Waiting { hold, until: None } };
        self
    }

    /// How often each input's batch is handed to its streaming thread at
    /// most (default [`PUSH_EVERY`]). A recording can wait longer than a
    /// live relay: fewer, bigger pushes cost fewer wake-ups.
    pub fn with_push_every(mut self, every: Duration) -> Output {
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            input.push_every = every;
        }
        self
    }

    /// Queue serialised RTP packets of one input, arrived now. They are put
    /// in sequence order (a packet after a gap waits up to the reorder
    /// window for the gap to fill), stamped with presentation times from
    /// their RTP timestamps, and handed to the input's streaming thread at
    /// most every push period ([`PUSH_EVERY`]), however many there are. Never blocks; a
    /// stalled pipeline drops its oldest data.
    pub fn push(&mut self, kind: MediaKind, packets: impl IntoIterator<Item = Bytes>) {
        self.push_captured(kind, packets.into_iter().map(|p| (p, None)));
    }

    /// [`Output::push`] for packets that may carry their capture time on the
    /// sender's wall clock (Unix ns, from its sender reports): the inputs'
    /// times follow it (see [`crate::media::sync_clock`]).
    pub fn push_captured(&mut self, kind: MediaKind, packets: impl IntoIterator<Item = (Bytes, Option<i128>)>) {
        let now = self.running_time();
        if self.clock.needs_gateway_time() {
            self.clock.note_gateway_time(crate::media::clock_status::unix_ns(std::time::SystemTime::now()), now);
        }
        let mut released = std::mem::take(&mut self.released);
        let clock = &mut self.clock;
        let input = match kind {
            MediaKind::Video => self.video.as_mut(),
            MediaKind::Audio => self.audio.as_mut(),
        };
        if let Some(input) = input {
            for (packet, sender_ns) in packets {
                let Some(sequence_number) = rtp_sequence_number(&packet) else { continue };
                input.reorder.push(now, sequence_number, (now, packet, sender_ns), &mut released);
            }
            input.stamp(clock, &mut released, &self.hold);
        }
        self.released = released;
        self.release(now);
    }

    /// Push whatever has waited long enough: gaps open for the reorder
    /// window, batches due. Call it now and then (every 100 ms or so) so the
    /// last packets before a pause do not wait for the next ones.
    pub fn tick(&mut self) {
        let now = self.running_time();
        self.release(now);
    }

    fn release(&mut self, now: Duration) {
        let mut released = std::mem::take(&mut self.released);
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            input.reorder.release_due(now, &mut released);
            input.stamp(&mut self.clock, &mut released, &self.hold);
        }
        self.released = released;
        self.end_hold_if_due(now, false);
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            input.push_batch(now, false);
        }
    }

    /// End a held start once every input has a sender time, the hold is
    /// over, an input holds too much, or `force`: the held packets before an
    /// input's first report get sender times along their timestamps, the
    /// origin puts the most delayed input at its arrival, and every packet
    /// with a sender time is placed by it alone.
    fn end_hold_if_due(&mut self, now: Duration, force: bool) {
        let SyncHold::Waiting { hold, until } = &mut self.hold else { return };
        let inputs = || [self.video.as_ref(), self.audio.as_ref()].into_iter().flatten();
        if !force && inputs().all(|i| i.held.is_empty()) {
            return;
        }
        let until = *until.get_or_insert(now + *hold);
        let reported = inputs().all(|i| i.held.iter().any(|p| p.2.is_some()));
        let full = inputs().any(|i| i.held.len() >= MAX_SYNC_HELD);
        if !(force || reported || full || now >= until) {
            return;
        }
        self.hold = SyncHold::Done;
        let mut firsts = Vec::new();
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            let mut times: Vec<(u32, Option<i128>)> =
                input.held.iter().map(|(_, p, sender)| (rtp_timestamp(p).unwrap_or(0), *sender)).collect();
            backfill(&mut times, input.clock_rate);
            for (packet, (_, sender)) in input.held.iter_mut().zip(times) {
                packet.2 = sender;
            }
            if let Some((arrival, _, Some(sender))) = input.held.first() {
                firsts.push((*arrival, *sender));
            }
        }
        if let Some(origin) = origin_for(&firsts) {
            self.clock.set_sender_origin(origin);
        }
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            let mut held = std::mem::take(&mut input.held);
            input.stamp_packets(&mut self.clock, &mut held, true);
        }
    }

    /// The wall-clock time (Unix ms) of the output's presentation time zero
    /// and where it comes from; `None` until a packet was pushed.
    pub fn t0_unix_ms(&self) -> Option<(f64, ClockSource)> {
        self.clock.t0_unix_ms()
    }

    fn running_time(&self) -> Duration {
        self.pipeline.current_running_time().map(|t| Duration::from_nanos(t.nseconds())).unwrap_or_default()
    }

    pub fn has_input(&self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Video => self.video.is_some(),
            MediaKind::Audio => self.audio.is_some(),
        }
    }

    /// Packets given up (lost) and dropped for arriving too late so far, per
    /// input kind. Late packets are those of the reordering in front of the
    /// input plus those of a jitter buffer in the template's branch, if it
    /// has one; lost ones are the jitter buffer's if there is one (it sees
    /// the same gaps the reordering gave up), else the reordering's.
    pub fn jitterbuffer_drops(&self) -> Vec<(MediaKind, u64, u64)> {
        let mut drops = Vec::new();
        for (kind, input) in [(MediaKind::Video, &self.video), (MediaKind::Audio, &self.audio)] {
            let Some(input) = input else { continue };
            let (mut lost, mut late) = (input.reorder.lost(), input.reorder.late());
            if let Some(jb) = downstream_jitterbuffer(input.src.upcast_ref()) {
                let stats = jb.property::<gst::Structure>("stats");
                lost = stats.get::<u64>("num-lost").unwrap_or(0);
                late += stats.get::<u64>("num-late").unwrap_or(0);
            }
            drops.push((kind, lost, late));
        }
        drops
    }

    /// Hand over every packet still held or batched, end the inputs, let the
    /// muxer write its index and duration, stop. Returns false if the end
    /// did not arrive within `timeout` (the pipeline is stopped anyway; a
    /// Matroska file stays playable).
    pub async fn finish(mut self, timeout: Duration) -> bool {
        let now = self.running_time();
        let mut released = std::mem::take(&mut self.released);
        for input in [self.video.as_mut(), self.audio.as_mut()].into_iter().flatten() {
            input.reorder.flush(&mut released);
            input.stamp(&mut self.clock, &mut released, &self.hold);
        }
        self.end_hold_if_due(now, true);
        for input in [self.video.take(), self.audio.take()].into_iter().flatten() {
            let mut input = input;
            input.push_batch(now, true);
            let _ = input.src.end_of_stream();
        }
        let mut eos = self.eos.clone();
        let done = tokio::time::timeout(timeout, eos.wait_for(|reached| *reached)).await.is_ok();
        let _ = self.pipeline.set_state(gst::State::Null);
        self.bus_task.abort();
        done
    }
}

/// The sequence number of a serialised RTP packet.
fn rtp_sequence_number(packet: &[u8]) -> Option<u16> {
    (packet.len() >= 12).then(|| u16::from_be_bytes([packet[2], packet[3]]))
}

/// The RTP timestamp of a serialised RTP packet.
fn rtp_timestamp(packet: &[u8]) -> Option<u32> {
    (packet.len() >= 12).then(|| u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]))
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.bus_task.abort();
    }
}

/// Matroska (and WebM) cannot change a track's caps once the header is
/// written: `matroskamux` fails the whole pipeline on H.264 whose resolution
/// changed (new SPS, new codec_data), which browsers do under load. The video
/// input of the muxer keeps the caps it started with; decoders take the new
/// size from the in-band SPS/PPS (`h264parse config-interval=-1`) or the VP8
/// keyframe header, so the file plays through the change.
fn keep_first_video_caps_at_matroska(pipeline: &gst::Pipeline) {
    let Some(mux) = pipeline.by_name("mux") else { return };
    let is_matroska = mux.factory().is_some_and(|f| matches!(f.name().as_str(), "matroskamux" | "webmmux"));
    if !is_matroska {
        return;
    }
    for mux_pad in mux.sink_pads() {
        let Some(upstream) = mux_pad.peer() else { continue };
        upstream.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |pad, info| {
            let Some(gst::EventView::Caps(event)) = info.event().map(|e| e.view()) else {
                return gst::PadProbeReturn::Ok;
            };
            let new = event.caps();
            let is_video = new.structure(0).is_some_and(|s| s.name().starts_with("video/"));
            // The muxer's pad still has the caps it started with (ours already has the new ones).
            if let Some(current) = pad.peer().and_then(|p| p.current_caps())
                && is_video
                && current != *new
            {
                info.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(&current)));
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// The first `rtpjitterbuffer` after an element, if the branch has one.
fn downstream_jitterbuffer(element: &gst::Element) -> Option<gst::Element> {
    let mut current = element.clone();
    for _ in 0..4 {
        let peer = current.static_pad("src")?.peer()?.parent_element()?;
        if peer.factory().is_some_and(|f| f.name() == "rtpjitterbuffer") {
            return Some(peer);
        }
        current = peer;
    }
    None
}

fn configure_input(
    pipeline: &gst::Pipeline,
    name: &'static str,
    caps: &InputCaps,
    tag: u64,
    events: &mpsc::UnboundedSender<(u64, OutputEvent)>,
) -> Result<gst_app::AppSrc, OutputError> {
    let src = pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or(OutputError::MissingInput(name))?;
    src.set_caps(Some(&caps.to_caps()));
    src.set_format(gst::Format::Time);
    src.set_is_live(true);
    // Packets are stamped by `push` from their RTP timestamps.
    src.set_do_timestamp(false);
    src.set_max_bytes(APPSRC_MAX_BYTES);
    src.set_leaky_type(gst_app::AppLeakyType::Downstream);
    if let Some(pad) = src.static_pad("src") {
        let events = events.clone();
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if info.event().is_some_and(|e| gstreamer_video::ForceKeyUnitEvent::is(e)) {
                let _ = events.send((tag, OutputEvent::KeyframeRequested));
            }
            gst::PadProbeReturn::Ok
        });
    }
    Ok(src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::marshal::Marshal;

    /// One single-packet VP8 frame: a 320x240 keyframe, or a delta frame.
    fn vp8_packet(seq: u16, ts: u32, key: bool) -> Bytes {
        // Payload descriptor (start of partition 0), then the frame: a 3-byte
        // tag (bit 0 clear = keyframe, show_frame set) and, for a keyframe,
        // the start code and the dimensions the depayloader reads. The
        // depayloader ignores frames under 10 bytes.
        let payload: &[u8] = if key {
            &[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
        } else {
            &[0x10, 0x11, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        };
        let packet = crate::participant::events::RtpPacket {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: true,
                payload_type: VIDEO_PT,
                sequence_number: seq,
                timestamp: ts,
                ssrc: 7,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        packet.marshal().unwrap().freeze()
    }

    /// Loss the jitter buffer gives up on makes the depayloader ask for a
    /// keyframe, the request reaches us through the appsrc probe, and the
    /// frames after the loss are held back until one comes.
    ///
    /// Kept independent of timing: a CI run once saw EOS take > 5 s here when
    /// the sink had never prerolled (the "keyframe" was too short for the
    /// depayloader, so no frame ever reached the sink) and waited on the
    /// clock. Now the keyframe is a real one, so the sink prerolls on it as in
    /// a recording, the sink neither syncs nor prerolls asynchronously, the RTP
    /// timestamps advance with the pushes, and EOS is sent only once every
    /// lost packet has been given up on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unrepaired_loss_becomes_a_keyframe_request() {
        const PUSH_INTERVAL_MS: u32 = 10;
        const FRAMES: u32 = 40;
        const MISSING: std::ops::Range<u32> = 20..25;
        // Each step takes milliseconds; the bound only tells a hang from a
        // stall (the template test once took 5.0 s instead of 0.1 s here).
        const BOUND: Duration = Duration::from_secs(15);
        let description = "appsrc name=video ! rtpjitterbuffer latency=50 do-lost=true ! rtpvp8depay request-keyframe=true wait-for-keyframe=true ! fakesink name=sink sync=false async=false";
        let caps = InputCaps { kind: MediaKind::Video, encoding_name: "VP8".into(), clock_rate: 90_000, channels: 0 };
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A short reorder window: the jitter buffer in this branch is what gives the loss up here.
        let mut output = Output::start(description, Some(&caps), None, 3, tx)
            .unwrap()
            .with_reorder_window(Duration::from_millis(30));
        let frames_out = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let sink_pad = output.pipeline.by_name("sink").and_then(|s| s.static_pad("sink")).unwrap();
        let counter = frames_out.clone();
        sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        let mut seq = 100u16;
        for frame in 0..FRAMES {
            if !MISSING.contains(&frame) {
                output.push(MediaKind::Video, [vp8_packet(seq, frame * 90 * PUSH_INTERVAL_MS, frame == 0)]);
            }
            seq = seq.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(PUSH_INTERVAL_MS.into())).await;
        }
        let event = tokio::time::timeout(BOUND, rx.recv()).await;
        assert_eq!(event.ok().flatten(), Some((3, OutputEvent::KeyframeRequested)));
        // The jitter buffer counts every packet it gave up on.
        let all_lost = |drops: &[(MediaKind, u64, u64)]| {
            drops.iter().any(|(k, lost, _)| *k == MediaKind::Video && *lost == MISSING.len() as u64)
        };
        let deadline = std::time::Instant::now() + BOUND;
        let mut drops = output.jitterbuffer_drops();
        while !all_lost(&drops) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drops = output.jitterbuffer_drops();
        }
        assert!(all_lost(&drops), "{drops:?}");
        let pipeline = output.pipeline.clone();
        let states = move || -> Vec<String> {
            pipeline
                .iterate_elements()
                .into_iter()
                .flatten()
                .map(|e| format!("{}: {:?}", e.name(), e.current_state()))
                .collect()
        };
        let before = states();
        assert!(output.finish(BOUND).await, "EOS did not reach the end of the pipeline; states before: {before:?}");
        // Frames up to the loss went through; the ones after it waited for a keyframe that never came.
        assert_eq!(frames_out.load(std::sync::atomic::Ordering::Relaxed), MISSING.start);
    }

    /// An RTP packet of one VP8 frame split in two: the first packet starts
    /// partition 0, the second carries the rest and the marker.
    fn vp8_half(seq: u16, ts: u32, key: bool, second: bool) -> Bytes {
        let frame: &[u8] = if key {
            &[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x11, 0x22, 0x33, 0x44]
        } else {
            &[0x11, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44]
        };
        let (descriptor, part) = if second { (0x00u8, &frame[7..]) } else { (0x10u8, &frame[..7]) };
        let mut payload = vec![descriptor];
        payload.extend_from_slice(part);
        let packet = crate::participant::events::RtpPacket {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: second,
                payload_type: VIDEO_PT,
                sequence_number: seq,
                timestamp: ts,
                ssrc: 7,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        packet.marshal().unwrap().freeze()
    }

    /// The shipped `record-webm` template for these tracks, writing into `dir`.
    fn record_webm(video: bool, audio: bool, dir: &std::path::Path) -> String {
        let set = crate::media::templates::TemplateSet::load(None).unwrap();
        let values = crate::media::templates::Values {
            location: Some(dir.join("out.webm")),
            latency_ms: 200,
            ..Default::default()
        };
        set.get("record-webm").unwrap().description(video.then_some("VP8"), audio.then_some("OPUS"), &values).unwrap()
    }

    /// The presentation times of the buffers that reach the muxer (from the depayloaders).
    fn times_at_mux(output: &Output) -> std::sync::Arc<parking_lot::Mutex<Vec<Option<gst::ClockTime>>>> {
        let times = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mux = output.pipeline.by_name("mux").unwrap();
        for pad in mux.sink_pads() {
            let times = times.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer() {
                    times.lock().push(buffer.pts());
                }
                gst::PadProbeReturn::Ok
            });
        }
        times
    }

    fn vp8_caps() -> InputCaps {
        InputCaps { kind: MediaKind::Video, encoding_name: "VP8".into(), clock_rate: 90_000, channels: 0 }
    }

    /// The shipped templates have no jitter buffer: packets that arrive out
    /// of order are put back in order in front of the pipeline, so every
    /// frame is whole (the depayloader alone would drop the late half of
    /// each frame as an old packet and lose every frame).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn packets_out_of_order_are_put_back_before_the_depayloader() {
        const FRAMES: u16 = 30;
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut output = Output::start(&record_webm(true, false, dir.path()), Some(&vp8_caps()), None, 1, tx).unwrap();
        let times = times_at_mux(&output);
        // The first packet starts the sequence (the keyframe gate lets nothing before it through).
        output.push(MediaKind::Video, [vp8_half(1000, 0, true, false), vp8_half(1001, 0, true, true)]);
        for frame in 1..FRAMES {
            let (seq, ts) = (1000 + 2 * frame, frame as u32 * 3000);
            // The second half first.
            output.push(MediaKind::Video, [vp8_half(seq + 1, ts, false, true)]);
            output.push(MediaKind::Video, [vp8_half(seq, ts, false, false)]);
        }
        assert_eq!(output.jitterbuffer_drops(), vec![(MediaKind::Video, 0, 0)]);
        assert!(output.finish(Duration::from_secs(15)).await);
        let times = times.lock().clone();
        assert_eq!(times.len(), FRAMES as usize, "{times:?}");
    }

    /// Without a jitter buffer, loss that is given up still makes the
    /// depayloader ask for a keyframe (it sees the sequence jump) and hold
    /// the frames after the loss back until one comes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loss_given_up_in_front_of_the_pipeline_asks_for_a_keyframe() {
        const FRAMES: u32 = 20;
        const MISSING: std::ops::Range<u32> = 10..13;
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A zero window: each gap is given up by the next packet, no waiting.
        let mut output = Output::start(&record_webm(true, false, dir.path()), Some(&vp8_caps()), None, 5, tx)
            .unwrap()
            .with_reorder_window(Duration::ZERO);
        let times = times_at_mux(&output);
        for frame in (0..FRAMES).filter(|f| !MISSING.contains(f)) {
            output.push(MediaKind::Video, [vp8_packet(500 + frame as u16, frame * 3000, frame == 0)]);
        }
        output.tick();
        let event = tokio::time::timeout(Duration::from_secs(15), rx.recv()).await;
        assert_eq!(event.ok().flatten(), Some((5, OutputEvent::KeyframeRequested)));
        assert_eq!(output.jitterbuffer_drops(), vec![(MediaKind::Video, MISSING.len() as u64, 0)]);
        assert!(output.finish(Duration::from_secs(15)).await);
        assert_eq!(times.lock().len(), MISSING.start as usize);
    }

    /// Packets handed over together (one arrival time) reach the muxer with
    /// the spacing of their RTP timestamps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_of_audio_is_timed_by_its_rtp_timestamps() {
        const PACKETS: u16 = 25;
        let dir = tempfile::tempdir().unwrap();
        let caps = InputCaps { kind: MediaKind::Audio, encoding_name: "OPUS".into(), clock_rate: 48_000, channels: 2 };
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut output = Output::start(&record_webm(false, true, dir.path()), None, Some(&caps), 2, tx).unwrap();
        let times = times_at_mux(&output);
        let batch = (0..PACKETS).map(|i| {
            let packet = crate::participant::events::RtpPacket {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: i == 0,
                    payload_type: AUDIO_PT,
                    sequence_number: 40 + i,
                    timestamp: 7777 + i as u32 * 960,
                    ssrc: 9,
                    ..Default::default()
                },
                // One 20 ms CELT frame of silence.
                payload: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
            };
            packet.marshal().unwrap().freeze()
        });
        output.push(MediaKind::Audio, batch);
        assert!(output.finish(Duration::from_secs(15)).await);
        let times: Vec<u64> = times.lock().iter().map(|t| t.expect("stamped").nseconds()).collect();
        assert_eq!(times.len(), PACKETS as usize);
        let steps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|&s| s == 20_000_000), "{steps:?}");
    }

    #[test]
    fn a_pipeline_without_the_named_input_is_refused() {
        let caps = InputCaps { kind: MediaKind::Audio, encoding_name: "OPUS".into(), clock_rate: 48_000, channels: 2 };
        let (tx, _rx) = mpsc::unbounded_channel();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let err = Output::start("appsrc name=video ! fakesink", None, Some(&caps), 1, tx).err().unwrap();
        assert!(matches!(err, OutputError::MissingInput("audio")), "{err}");
    }
}
