//! One received stream and the outputs made of it: its recording and, if
//! asked, its relay. One task per stream reads the stream's tracks once and
//! feeds every output.
//!
//! The task owns the stream's media policy:
//! - it waits up to `track_wait` for the stream's tracks to arrive before
//!   starting an output, so audio and video of one stream share a file;
//! - it rewrites RTP to one continuous sequence per kind ([`Continuity`]),
//!   so `replaceTrack` or a re-added track continues the same file;
//! - video passes through a [`KeyframeGate`] per output (nothing before the
//!   first keyframe is written; PLIs at start, every 500 ms until one
//!   arrives, after a source change and when a pipeline asks);
//! - when the set of tracks changes for good (a kind appears or disappears,
//!   a codec changes) the current file is finalised and a new one continues it;
//! - a failed pipeline (full disk, RTMP server gone) is finalised as failed
//!   and restarted with back-off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::manifest::{self, RecordingState};
use super::record_file::{RecordFile, count_bytes_written, new_record_file, write_manifest_logged};
use super::status::{FileStatus, RelayState, RoomStatus};
use crate::media::continuity::{Continuity, LossCounter};
use crate::media::keyframes::{GateDecision, KeyframeGate, VideoCodec};
use crate::media::output::{AUDIO_PT, InputCaps, Output, OutputEvent, VIDEO_PT};
use crate::media::templates::{TemplateKind, TemplateSet, Values};
use crate::metrics::MediaMetrics;
use crate::participant::events::{CodecInfo, KeyframeRequester, MediaKind, PeerInfo, ReceivedTrack, RtpPacket};
use crate::participant::streams::StreamEvents;

/// SSRCs of the continuous streams we push into pipelines.
const VIDEO_SSRC: u32 = 0x5254_4356;
const AUDIO_SSRC: u32 = 0x5254_4341;
const TICK: Duration = Duration::from_millis(100);
/// Most packets taken from one input in one go (beyond the first).
const MAX_BATCH: usize = 63;
/// While packets flow, the inputs are read this often (one wake-up of the
/// task per period instead of one per packet).
const DRAIN_EVERY: Duration = crate::media::output::PUSH_EVERY;
/// Most packets taken from one input per drain.
const MAX_DRAIN: usize = 1024;
/// How often a recording's pipeline gets its packets (a relay's: `PUSH_EVERY`).
const RECORD_PUSH_EVERY: Duration = Duration::from_millis(100);
const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// Told about outputs starting and ending: `(event, data)` with event one of
/// `recording.started|finished|failed`, `relay.started|stopped|failed`
/// (the webhook events). Must not block.
pub type OutputNotifier = Arc<dyn Fn(&'static str, serde_json::Value) + Send + Sync>;

/// Settings shared by every output of a gateway.
#[derive(Clone)]
pub struct OutputSettings {
    pub templates: Arc<TemplateSet>,
    pub jitter_latency_ms: u32,
    pub relay_video_kbps: u32,
    /// How long to wait for a stream's other tracks (and for a replacement of a removed one).
    pub track_wait: Duration,
    /// Longest wait for a pipeline to finalise its file.
    pub finish_timeout: Duration,
    pub metrics: MediaMetrics,
    pub notifier: Option<OutputNotifier>,
}

/// Who and what the stream is.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The rtc.io server of the room when it is not our own.
    pub server: Option<String>,
    pub room: String,
    pub peer: PeerInfo,
    pub stream_id: String,
    pub events: Option<StreamEvents>,
    /// The kinds of track the peer announced for the stream (empty: unknown).
    pub expected_kinds: Vec<MediaKind>,
    /// Where the stream task reports what its outputs do.
    pub status: RoomStatus,
}

/// What to make of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Files in this room directory; `template` overrides the choice by codec.
    Record { room_dir: PathBuf, template: Option<String> },
    /// A live feed to this URL.
    Relay { url: String, template: Option<String> },
}

impl Target {
    fn kind(&self) -> TemplateKind {
        match self {
            Target::Record { .. } => TemplateKind::Record,
            Target::Relay { .. } => TemplateKind::Relay,
        }
    }
    fn template(&self) -> Option<&str> {
        match self {
            Target::Record { template, .. } | Target::Relay { template, .. } => template.as_deref(),
        }
    }
}

pub enum StreamCommand {
    Track(ReceivedTrack),
    Metadata(StreamEvents),
    AddTarget(Target),
    /// Finalise and drop this output, with this reason in its manifest.
    RemoveTarget(Target, String),
    Stop {
        reason: String,
    },
}

/// How an output of the stream ended (for logs and tests).
#[derive(Debug, Clone)]
pub struct OutputReport {
    pub target: Target,
    pub file: Option<PathBuf>,
    pub state: RecordingState,
    pub reason: String,
}

/// The running stream task.
pub struct StreamHandle {
    commands: mpsc::UnboundedSender<StreamCommand>,
    task: tokio::task::JoinHandle<Vec<OutputReport>>,
}

impl StreamHandle {
    pub fn start(context: StreamContext, targets: Vec<Target>, settings: OutputSettings) -> StreamHandle {
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(StreamTask::new(context, targets, settings).run(rx));
        StreamHandle { commands, task }
    }

    pub fn send(&self, command: StreamCommand) {
        let _ = self.commands.send(command);
    }

    /// Finalise every output and wait for it (bounded by the finish timeout per output).
    pub async fn stop(self, reason: &str) -> Vec<OutputReport> {
        let _ = self.commands.send(StreamCommand::Stop { reason: reason.to_string() });
        self.task.await.unwrap_or_default()
    }
}

struct Input {
    codec: CodecInfo,
    packets: mpsc::Receiver<RtpPacket>,
    keyframes: KeyframeRequester,
    closed_at: Option<Instant>,
    last_packet: Instant,
}

/// A track that sends nothing for this long while the stream's other track
/// flows is left out of the file (a browser's `replaceTrack(null)` keeps the
/// track open but silent, and Matroska muxing would hold everything back
/// waiting for it); when it sends again, a new file takes it back in.
const STALLED_AFTER: Duration = Duration::from_secs(5);
/// An announced track that has not sent yet is waited for this many times `track_wait`.
const ANNOUNCED_TRACK_WAIT_FACTOR: u32 = 3;
/// The other track counts as flowing if it sent within this.
const FLOWING_WITHIN: Duration = Duration::from_secs(1);

struct Active {
    tag: u64,
    output: Output,
    template: String,
    video: Option<String>,
    audio: Option<String>,
    gate: Option<KeyframeGate>,
    gate_opened: Instant,
    started: Instant,
    record: Option<RecordFile>,
    jitter_counted: Vec<(MediaKind, u64, u64)>,
    /// Packets of the batch being processed, pushed together.
    pending: Vec<bytes::Bytes>,
}

struct Slot {
    target: Target,
    active: Option<Active>,
    retry_at: Option<Instant>,
    failures: u32,
    /// No template handles the stream's codecs; do not retry until they change.
    unsupported: Option<(Option<String>, Option<String>)>,
    reports: Vec<OutputReport>,
}

struct StreamTask {
    context: StreamContext,
    settings: OutputSettings,
    slots: Vec<Slot>,
    video: Option<Input>,
    audio: Option<Input>,
    video_continuity: Continuity,
    audio_continuity: Continuity,
    video_loss: LossCounter,
    audio_loss: LossCounter,
    first_track_at: Option<Instant>,
    next_tag: u64,
    events_tx: mpsc::UnboundedSender<(u64, OutputEvent)>,
    events_rx: mpsc::UnboundedReceiver<(u64, OutputEvent)>,
    last_housekeeping: Instant,
    /// When an output last got packets.
    last_pushed: Option<Instant>,
}

async fn recv_input(input: &mut Option<Input>) -> Option<RtpPacket> {
    match input {
        Some(i) if i.closed_at.is_none() => i.packets.recv().await,
        _ => std::future::pending().await,
    }
}

fn encoding(input: &Option<Input>) -> Option<String> {
    input.as_ref().map(|i| i.codec.encoding_name())
}

impl StreamTask {
    fn new(context: StreamContext, targets: Vec<Target>, settings: OutputSettings) -> StreamTask {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        StreamTask {
            context,
            settings,
            slots: targets.into_iter().map(Slot::new).collect(),
            video: None,
            audio: None,
            video_continuity: Continuity::new(90_000),
            audio_continuity: Continuity::new(48_000),
            video_loss: LossCounter::default(),
            audio_loss: LossCounter::default(),
            first_track_at: None,
            next_tag: 0,
            events_tx,
            events_rx,
            last_housekeeping: Instant::now(),
            last_pushed: None,
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<StreamCommand>) -> Vec<OutputReport> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // While packets flow, the inputs are read every DRAIN_EVERY rather
        // than woken for each packet; an idle stream waits on its channels.
        let mut drain_at: Option<tokio::time::Instant> = None;
        let reason = loop {
            let drain = async move {
                match drain_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    None => break "stopped".to_string(),
                    Some(StreamCommand::Stop { reason }) => break reason,
                    Some(command) => self.on_command(command).await,
                },
                packet = recv_input(&mut self.video), if drain_at.is_none() => match packet {
                    Some(p) => {
                        self.on_packets(MediaKind::Video, p);
                        drain_at = Some(tokio::time::Instant::now() + DRAIN_EVERY);
                    }
                    None => self.on_input_closed(MediaKind::Video),
                },
                packet = recv_input(&mut self.audio), if drain_at.is_none() => match packet {
                    Some(p) => {
                        self.on_packets(MediaKind::Audio, p);
                        drain_at = Some(tokio::time::Instant::now() + DRAIN_EVERY);
                    }
                    None => self.on_input_closed(MediaKind::Audio),
                },
                _ = drain => {
                    drain_at = self.drain_inputs().then(|| tokio::time::Instant::now() + DRAIN_EVERY);
                }
                Some((tag, event)) = self.events_rx.recv() => self.on_output_event(tag, event).await,
                _ = tick.tick() => self.on_tick().await,
            }
        };
        let mut reports = Vec::new();
        for index in 0..self.slots.len() {
            self.finish(index, &reason, None).await;
            reports.append(&mut self.slots[index].reports);
        }
        reports
    }

    async fn on_command(&mut self, command: StreamCommand) {
        match command {
            StreamCommand::Track(track) => self.on_track(track),
            StreamCommand::Metadata(events) => {
                self.context.events = Some(events);
                for slot in &mut self.slots {
                    if let Some(record) = slot.active.as_mut().and_then(|a| a.record.as_mut()) {
                        record.manifest.events = self.context.events.clone();
                        record.manifest.event = manifest::primary_event(self.context.events.as_ref());
                        write_manifest_logged(record);
                    }
                }
            }
            StreamCommand::AddTarget(target) => {
                if !self.slots.iter().any(|s| s.target == target) {
                    self.slots.push(Slot::new(target));
                }
            }
            StreamCommand::RemoveTarget(target, reason) => {
                if let Some(index) = self.slots.iter().position(|s| s.target == target) {
                    self.finish(index, &reason, None).await;
                    self.slots.remove(index);
                    if target.kind() == TemplateKind::Relay {
                        self.set_relay_state(None);
                    }
                }
            }
            StreamCommand::Stop { .. } => unreachable!("handled by run"),
        }
    }

    fn on_track(&mut self, track: ReceivedTrack) {
        tracing::debug!(stream = %self.context.stream_id, kind = track.kind.as_str(), codec = %track.codec.mime_type, "track for recording");
        let input = Input {
            codec: track.codec,
            packets: track.packets,
            keyframes: track.keyframes,
            closed_at: None,
            last_packet: Instant::now(),
        };
        match track.kind {
            MediaKind::Video => self.video = Some(input),
            MediaKind::Audio => self.audio = Some(input),
        }
        self.first_track_at.get_or_insert_with(Instant::now);
    }

    fn on_input_closed(&mut self, kind: MediaKind) {
        let input = match kind {
            MediaKind::Video => &mut self.video,
            MediaKind::Audio => &mut self.audio,
        };
        if let Some(i) = input.as_mut() {
            i.closed_at = Some(Instant::now());
        }
    }

    fn request_keyframe(&self, reason: &str) {
        if let Some(video) = &self.video {
            video.keyframes.request();
            self.settings.metrics.keyframe_requests_total.with_label_values(&[reason]).inc();
        }
    }

    /// A packet arrived: take every packet of the same input already queued
    /// behind it too, and hand them to each output in one push.
    fn on_packets(&mut self, kind: MediaKind, first: RtpPacket) {
        self.on_packet(kind, first);
        for _ in 0..MAX_BATCH {
            let input = match kind {
                MediaKind::Video => self.video.as_mut(),
                MediaKind::Audio => self.audio.as_mut(),
            };
            match input.map(|i| i.packets.try_recv()) {
                Some(Ok(packet)) => self.on_packet(kind, packet),
                _ => break,
            }
        }
        let mut pushed = false;
        for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
            if !active.pending.is_empty() {
                active.output.push(kind, active.pending.drain(..));
                pushed = true;
            }
        }
        if pushed {
            self.last_pushed = Some(Instant::now());
        }
    }

    /// Read every packet queued on both inputs and push them; false if there were none.
    fn drain_inputs(&mut self) -> bool {
        let (mut any, mut pushed) = (false, false);
        for kind in [MediaKind::Video, MediaKind::Audio] {
            let mut taken = 0;
            loop {
                let input = match kind {
                    MediaKind::Video => self.video.as_mut(),
                    MediaKind::Audio => self.audio.as_mut(),
                };
                let Some(input) = input.filter(|i| i.closed_at.is_none()) else { break };
                match input.packets.try_recv() {
                    Ok(packet) => {
                        self.on_packet(kind, packet);
                        taken += 1;
                        if taken >= MAX_DRAIN {
                            break;
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.on_input_closed(kind);
                        break;
                    }
                }
            }
            if taken == 0 {
                continue;
            }
            any = true;
            for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
                if !active.pending.is_empty() {
                    active.output.push(kind, active.pending.drain(..));
                    pushed = true;
                }
            }
        }
        if pushed {
            self.last_pushed = Some(Instant::now());
        }
        any
    }

    fn on_packet(&mut self, kind: MediaKind, packet: RtpPacket) {
        let now = Instant::now();
        let input = match kind {
            MediaKind::Video => self.video.as_mut(),
            MediaKind::Audio => self.audio.as_mut(),
        };
        if let Some(input) = input {
            input.last_packet = now;
        }
        let header = &packet.header;
        let (continuity, loss, ssrc, pt) = match kind {
            MediaKind::Video => (&mut self.video_continuity, &mut self.video_loss, VIDEO_SSRC, VIDEO_PT),
            MediaKind::Audio => (&mut self.audio_continuity, &mut self.audio_loss, AUDIO_SSRC, AUDIO_PT),
        };
        let lost = loss.on_packet(header.ssrc, header.sequence_number);
        if lost > 0 {
            self.settings.metrics.packets_lost_total.with_label_values(&[kind.as_str()]).inc_by(lost);
        }
        let rewritten = continuity.rewrite(now, header.ssrc, header.sequence_number, header.timestamp);
        let bytes = crate::media::rtp_rewrite::rewrite(
            &packet,
            crate::media::rtp_rewrite::NewHeader {
                ssrc,
                payload_type: pt,
                sequence_number: rewritten.sequence_number,
                timestamp: rewritten.timestamp,
            },
        );
        if rewritten.new_source && kind == MediaKind::Video {
            let mut any = false;
            for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
                if let Some(gate) = active.gate.as_mut() {
                    any |= gate.restart(now);
                    active.gate_opened = now;
                }
            }
            if any {
                self.request_keyframe("source_change");
            }
        }
        let mut pli: Option<&str> = None;
        let mut relay_live = false;
        for slot in self.slots.iter_mut() {
            let Some(active) = slot.active.as_mut() else { continue };
            if !active.output.has_input(kind) {
                continue;
            }
            if kind == MediaKind::Video
                && let Some(gate) = active.gate.as_mut()
            {
                let before = gate.keyframes_seen();
                let GateDecision { pass, request_keyframe, first_keyframe } =
                    gate.on_packet(now, rewritten.timestamp, &packet.payload);
                if gate.keyframes_seen() > before {
                    self.settings.metrics.keyframes_total.inc();
                }
                if request_keyframe {
                    pli = Some(if now.duration_since(active.gate_opened) < Duration::from_millis(50) {
                        "start"
                    } else {
                        "retry"
                    });
                }
                if first_keyframe {
                    // Media flows again: a later failure starts the back-off afresh.
                    slot.failures = 0;
                    if slot.target.kind() == TemplateKind::Relay {
                        relay_live = true;
                    }
                    let waited = now.duration_since(active.gate_opened);
                    self.settings.metrics.first_keyframe_seconds.observe(waited.as_secs_f64());
                    if let Some(record) = active.record.as_mut()
                        && record.manifest.first_keyframe_ms.is_none()
                    {
                        record.manifest.first_keyframe_ms = Some(now.duration_since(active.started).as_millis() as u64);
                    }
                }
                if !pass {
                    continue;
                }
            }
            active.pending.push(bytes.clone());
        }
        if let Some(reason) = pli {
            self.request_keyframe(reason);
        }
        if relay_live {
            self.set_relay_state(Some(RelayState::Live));
        }
    }

    async fn on_output_event(&mut self, tag: u64, event: OutputEvent) {
        let Some(index) = self.slots.iter().position(|s| s.active.as_ref().is_some_and(|a| a.tag == tag)) else {
            return;
        };
        match event {
            OutputEvent::KeyframeRequested => {
                let now = Instant::now();
                let wanted = self.slots[index]
                    .active
                    .as_mut()
                    .and_then(|a| a.gate.as_mut())
                    .is_some_and(|g| g.on_pipeline_request(now));
                if wanted {
                    self.request_keyframe("pipeline");
                }
            }
            OutputEvent::Error { element, message } => {
                let template = self.slots[index].active.as_ref().map(|a| a.template.clone()).unwrap_or_default();
                tracing::warn!(room = %self.context.room, stream = %self.context.stream_id, %template, %element, %message, "output pipeline failed");
                self.settings.metrics.pipeline_errors_total.with_label_values(&[&template]).inc();
                self.finish(index, "pipeline-error", Some(format!("{element}: {message}"))).await;
                let slot = &mut self.slots[index];
                slot.failures += 1;
                let backoff = match slot.target {
                    Target::Record { .. } => Duration::from_secs(2u64.saturating_pow(slot.failures).min(30)),
                    Target::Relay { .. } => {
                        self.settings.metrics.relay_restarts_total.inc();
                        Duration::from_secs(slot.failures.min(10) as u64)
                    }
                };
                slot.retry_at = Some(Instant::now() + backoff);
                if slot.target.kind() == TemplateKind::Relay {
                    self.set_relay_state(Some(RelayState::Restarting));
                }
            }
        }
    }

    /// The tracks an output should have now (`None` while still assembling).
    fn wanted_codecs(&mut self, now: Instant) -> Option<(Option<String>, Option<String>)> {
        let wait = self.settings.track_wait;
        // A removed track that was not replaced in time is gone for good.
        for input in [&mut self.video, &mut self.audio] {
            if input.as_ref().and_then(|i| i.closed_at).is_some_and(|t| now.duration_since(t) >= wait) {
                *input = None;
            }
        }
        let first = self.first_track_at?;
        // Every announced track is here (or, not knowing, one of each kind): start now.
        // Otherwise wait for the others, longer when the peer announced them.
        let present = |kind: &MediaKind| match kind {
            MediaKind::Video => self.video.is_some(),
            MediaKind::Audio => self.audio.is_some(),
        };
        let expected = &self.context.expected_kinds;
        let (complete, longest_wait) = if expected.is_empty() {
            (self.video.is_some() && self.audio.is_some(), wait)
        } else {
            (expected.iter().all(present), wait * ANNOUNCED_TRACK_WAIT_FACTOR)
        };
        if !complete && now.duration_since(first) < longest_wait {
            return None;
        }
        let flowing =
            |i: &Option<Input>| i.as_ref().is_some_and(|i| now.duration_since(i.last_packet) < FLOWING_WITHIN);
        let stalled =
            |i: &Option<Input>| i.as_ref().is_some_and(|i| now.duration_since(i.last_packet) >= STALLED_AFTER);
        let video = if stalled(&self.video) && flowing(&self.audio) { None } else { encoding(&self.video) };
        let audio = if stalled(&self.audio) && flowing(&self.video) { None } else { encoding(&self.audio) };
        Some((video, audio))
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        let wanted = self.wanted_codecs(now);
        for index in 0..self.slots.len() {
            let Some((video, audio)) = wanted.clone() else { break };
            let slot = &self.slots[index];
            let current = slot.active.as_ref().map(|a| (a.video.clone(), a.audio.clone()));
            match current {
                Some(current) if current == (video.clone(), audio.clone()) => {}
                Some(_) => {
                    self.finish(index, "tracks-changed", None).await;
                    if video.is_some() || audio.is_some() {
                        self.start(index, video, audio);
                    }
                }
                None => {
                    let retry_due = slot.retry_at.is_none_or(|t| now >= t);
                    let unsupported = slot.unsupported.as_ref() == Some(&(video.clone(), audio.clone()));
                    if retry_due && !unsupported && (video.is_some() || audio.is_some()) {
                        self.start(index, video, audio);
                    }
                }
            }
        }
        let mut retry = false;
        for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
            // Packets held behind a gap or batched go on without waiting for the next ones.
            active.output.tick();
            if let Some(gate) = active.gate.as_mut() {
                retry |= gate.on_tick(now);
            }
        }
        if retry {
            self.request_keyframe("retry");
        }
        if now.duration_since(self.last_housekeeping) >= HOUSEKEEPING {
            self.last_housekeeping = now;
            self.housekeeping();
        }
    }

    /// Counters that are read rather than pushed: file sizes, jitter-buffer drops.
    fn housekeeping(&mut self) {
        let metrics = &self.settings.metrics;
        let status = &self.context.status;
        let mut keyframe_wait_since: Option<Instant> = None;
        let mut recorded: Option<u64> = None;
        for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
            count_jitterbuffer_drops(active, metrics);
            if let Some(record) = active.record.as_mut() {
                status.add_recorded_bytes(count_bytes_written(record, metrics));
                recorded = Some(record.bytes_counted());
            }
            if active.gate.as_ref().is_some_and(|g| g.is_waiting()) {
                keyframe_wait_since =
                    Some(keyframe_wait_since.map_or(active.gate_opened, |t| t.min(active.gate_opened)));
            }
        }
        let last_data = self.last_pushed.or(self.first_track_at);
        status.update(&self.context.peer.id, &self.context.stream_id, |s| {
            s.keyframe_wait_since = keyframe_wait_since;
            s.last_data = last_data;
            if let (Some(file), Some(bytes)) = (s.recording.as_mut(), recorded) {
                file.bytes = bytes;
            }
        });
    }

    fn set_relay_state(&self, state: Option<RelayState>) {
        self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| s.relay = state);
    }

    fn start(&mut self, index: usize, video: Option<String>, audio: Option<String>) {
        let settings = self.settings.clone();
        let slot = &mut self.slots[index];
        slot.retry_at = None;
        let template = match settings.templates.choose(
            slot.target.kind(),
            video.as_deref(),
            audio.as_deref(),
            slot.target.template(),
        ) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(room = %self.context.room, stream = %self.context.stream_id, error = %e, "stream not handled");
                slot.unsupported = Some((video, audio));
                return;
            }
        };
        slot.unsupported = None;
        let started_at = SystemTime::now();
        let mut values = Values {
            latency_ms: settings.jitter_latency_ms,
            video_kbps: settings.relay_video_kbps,
            ..Values::default()
        };
        let mut record = None;
        match &slot.target {
            Target::Record { room_dir, .. } => {
                match new_record_file(
                    &self.context,
                    room_dir,
                    &template.name,
                    &template.extension,
                    started_at,
                    video.as_ref().and(self.video.as_ref()).map(|i| &i.codec),
                    audio.as_ref().and(self.audio.as_ref()).map(|i| &i.codec),
                ) {
                    Ok(file) => {
                        values.location = Some(file.path.clone());
                        record = Some(file);
                    }
                    Err(e) => {
                        tracing::warn!(room = %self.context.room, dir = %room_dir.display(), error = %e, "cannot create the recording file");
                        settings.metrics.recordings_total.with_label_values(&["failed"]).inc();
                        slot.failures += 1;
                        slot.retry_at =
                            Some(Instant::now() + Duration::from_secs(2u64.saturating_pow(slot.failures).min(30)));
                        return;
                    }
                }
            }
            Target::Relay { url, .. } => values.rtmp_url = Some(url.clone()),
        }
        let description = match template.description(video.as_deref(), audio.as_deref(), &values) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "template cannot take the stream");
                slot.unsupported = Some((video, audio));
                return;
            }
        };
        let caps = |input: &Option<Input>, kind: MediaKind| {
            input.as_ref().map(|i| InputCaps {
                kind,
                encoding_name: i.codec.encoding_name(),
                clock_rate: i.codec.clock_rate,
                channels: i.codec.channels,
            })
        };
        let video_caps = video.as_ref().and(caps(&self.video, MediaKind::Video));
        let audio_caps = audio.as_ref().and(caps(&self.audio, MediaKind::Audio));
        self.next_tag += 1;
        let tag = self.next_tag;
        tracing::debug!(%description, "output pipeline");
        let reorder_window = Duration::from_millis(settings.jitter_latency_ms.into());
        // A file can take its media in bigger batches than a live relay.
        let push_every = match slot.target.kind() {
            TemplateKind::Record => RECORD_PUSH_EVERY,
            TemplateKind::Relay => crate::media::output::PUSH_EVERY,
        };
        match Output::start(&description, video_caps.as_ref(), audio_caps.as_ref(), tag, self.events_tx.clone())
            .map(|o| o.with_reorder_window(reorder_window).with_push_every(push_every))
        {
            Ok(output) => {
                let now = Instant::now();
                match &slot.target {
                    Target::Record { .. } => settings.metrics.recordings_active.inc(),
                    Target::Relay { .. } => settings.metrics.relays_active.inc(),
                };
                if let Some(file) = &record {
                    tracing::info!(room = %self.context.room, peer = %self.context.peer.id, stream = %self.context.stream_id, file = %file.path.display(), template = %template.name, "recording");
                    let status = FileStatus {
                        path: file.path.clone(),
                        file: file.manifest.file.clone(),
                        template: template.name.clone(),
                        started_at: file.manifest.started_at.clone(),
                        bytes: 0,
                    };
                    self.context
                        .status
                        .update(&self.context.peer.id, &self.context.stream_id, |s| s.recording = Some(status));
                    notify(&settings, "recording.started", recording_event_data(&self.context, file));
                } else if let Target::Relay { url, .. } = &slot.target {
                    tracing::info!(room = %self.context.room, peer = %self.context.peer.id, stream = %self.context.stream_id, template = %template.name, "relaying");
                    self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| {
                        s.relay = Some(RelayState::Starting)
                    });
                    let data = relay_event_data(&self.context, url, &template.name, None, None);
                    notify(&settings, "relay.started", data);
                }
                slot.active = Some(Active {
                    tag,
                    output,
                    template: template.name.clone(),
                    gate: video.as_deref().map(|v| KeyframeGate::new(VideoCodec::from_encoding_name(v))),
                    video,
                    audio,
                    gate_opened: now,
                    started: now,
                    record,
                    jitter_counted: Vec::new(),
                    pending: Vec::new(),
                });
            }
            Err(e) => {
                tracing::warn!(template = %template.name, error = %e, "cannot start the output pipeline");
                settings.metrics.pipeline_errors_total.with_label_values(&[&template.name]).inc();
                if let Some(mut file) = record {
                    file.manifest.error = Some(e.to_string());
                    file.manifest.finish(RecordingState::Failed, SystemTime::now(), "pipeline-error", None);
                    write_manifest_logged(&file);
                    settings.metrics.recordings_total.with_label_values(&["failed"]).inc();
                    notify(&settings, "recording.failed", recording_event_data(&self.context, &file));
                } else if let Target::Relay { url, .. } = &slot.target {
                    let error = e.to_string();
                    let data =
                        relay_event_data(&self.context, url, &template.name, Some("pipeline-error"), Some(&error));
                    notify(&settings, "relay.failed", data);
                }
                slot.failures += 1;
                slot.retry_at = Some(Instant::now() + Duration::from_secs(2u64.saturating_pow(slot.failures).min(30)));
            }
        }
    }

    /// Finalise the slot's output (if any) and complete its manifest.
    async fn finish(&mut self, index: usize, reason: &str, error: Option<String>) {
        let Some(mut active) = self.slots[index].active.take() else { return };
        let metrics = self.settings.metrics.clone();
        count_jitterbuffer_drops(&mut active, &metrics);
        let failed = error.is_some();
        let finalised = if failed { false } else { active.output.finish(self.settings.finish_timeout).await };
        let target = self.slots[index].target.clone();
        match &target {
            Target::Record { .. } => metrics.recordings_active.dec(),
            Target::Relay { .. } => metrics.relays_active.dec(),
        }
        let mut file = None;
        let state = if failed { RecordingState::Failed } else { RecordingState::Finished };
        if let Some(mut record) = active.record.take() {
            self.context.status.add_recorded_bytes(count_bytes_written(&mut record, &metrics));
            let size = std::fs::metadata(&record.path).map(|m| m.len()).ok();
            record.manifest.error = error.clone();
            if !failed && !finalised {
                record.manifest.error =
                    Some(format!("the file was not finalised within {:?}", self.settings.finish_timeout));
            }
            record.manifest.finish(state, SystemTime::now(), reason, size);
            write_manifest_logged(&record);
            let result = if failed { "failed" } else { "finished" };
            metrics.recordings_total.with_label_values(&[result]).inc();
            tracing::info!(file = %record.path.display(), reason, result, bytes = size.unwrap_or(0), "recording ended");
            self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| s.recording = None);
            let event = if failed { "recording.failed" } else { "recording.finished" };
            notify(&self.settings, event, recording_event_data(&self.context, &record));
            file = Some(record.path);
        } else if let Target::Relay { url, .. } = &target {
            tracing::info!(stream = %self.context.stream_id, reason, "relay ended");
            let event = if failed { "relay.failed" } else { "relay.stopped" };
            let data = relay_event_data(&self.context, url, &active.template, Some(reason), error.as_deref());
            notify(&self.settings, event, data);
            if !failed {
                self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| s.relay = None);
            }
        }
        self.slots[index].reports.push(OutputReport { target, file, state, reason: reason.to_string() });
    }
}

/// Tell the notifier (webhooks) about an output.
fn notify(settings: &OutputSettings, event: &'static str, data: serde_json::Value) {
    if let Some(notifier) = &settings.notifier {
        notifier(event, data);
    }
}

fn relay_event_data(
    context: &StreamContext,
    url: &str,
    template: &str,
    reason: Option<&str>,
    error: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "server": context.server,
        "room": context.room,
        "peer": {"id": context.peer.id, "name": context.peer.name},
        "stream_id": context.stream_id,
        "event": manifest::primary_event(context.events.as_ref()),
        "url": super::room::redact_stream_key(url),
        "template": template,
        "reason": reason,
        "error": error,
    })
}

fn recording_event_data(context: &StreamContext, record: &RecordFile) -> serde_json::Value {
    serde_json::json!({
        "server": context.server,
        "room": context.room,
        "path": record.path,
        "manifest": record.manifest,
    })
}

impl Slot {
    fn new(target: Target) -> Slot {
        Slot { target, active: None, retry_at: None, failures: 0, unsupported: None, reports: Vec::new() }
    }
}

fn count_jitterbuffer_drops(active: &mut Active, metrics: &MediaMetrics) {
    for (kind, lost, late) in active.output.jitterbuffer_drops() {
        let (prev_lost, prev_late) =
            active.jitter_counted.iter().find(|(k, _, _)| *k == kind).map(|(_, l, t)| (*l, *t)).unwrap_or((0, 0));
        metrics
            .jitterbuffer_drops_total
            .with_label_values(&[kind.as_str(), "lost"])
            .inc_by(lost.saturating_sub(prev_lost));
        metrics
            .jitterbuffer_drops_total
            .with_label_values(&[kind.as_str(), "late"])
            .inc_by(late.saturating_sub(prev_late));
        active.jitter_counted.retain(|(k, _, _)| *k != kind);
        active.jitter_counted.push((kind, lost, late));
    }
}
