//! The stream task: the thin driver of a [`StreamPolicy`]. It owns what the
//! policy must not touch — the track channels, the GStreamer outputs, the
//! recording files and their manifests, the clock, metrics, status and
//! webhooks — and turns each of them into policy inputs, and each policy
//! action into I/O.
//!
//! Packets are read in batches: while they flow, the inputs are drained every
//! 20 ms while a relay runs and every 100 ms otherwise (a recording's push
//! period) instead of waking the task once per packet; an idle stream waits
//! on its channels.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::policy::{Action, Input, KeyframeReason, Notice, OutputId, PacketSeen, PolicyConfig, StreamPolicy, Tracks};
use super::target::Target;
use crate::media::clock_status::ClockStatus;
use crate::media::keyframes::{VideoCodec, starts_keyframe};
use crate::media::kind::MediaKind;
use crate::media::output::{AUDIO_PT, InputCaps, Output, OutputEvent, VIDEO_PT};
use crate::media::rtp_rewrite::{self, NewHeader};
use crate::media::sender_clock::{SenderClock, SenderReports};
use crate::media::templates::{TemplateKind, TemplateSet, Values};
use crate::metrics::MediaMetrics;
use crate::participant::events::{CodecInfo, KeyframeRequester, ReceivedTrack, RtpPacket};
use crate::participant::streams::StreamEvents;
use crate::recorder::end_reason::EndReason;
use crate::recorder::manifest::{self, RecordingState};
use crate::recorder::record_file::{RecordFile, count_bytes_written, new_record_file, write_manifest_logged};
use crate::recorder::status::FileStatus;
use crate::recorder::stream_context::StreamContext;

/// SSRCs of the continuous streams we push into pipelines.
const VIDEO_SSRC: u32 = 0x5254_4356;
const AUDIO_SSRC: u32 = 0x5254_4341;
const TICK: Duration = Duration::from_millis(100);
/// While packets flow to a relay, the inputs are read this often (its push period).
const DRAIN_EVERY: Duration = crate::media::output::PUSH_EVERY;
/// Most packets taken from one input per drain.
const MAX_DRAIN: usize = 1024;
/// How long a recording holds its first packets back for its senders'
/// reports (webrtc-rs and Chrome report within about a second of the first
/// packets): the file is then in lip sync from its first frame.
const RECORD_SYNC_HOLD: Duration = Duration::from_secs(3);
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
    /// The room composite's picture and sound.
    pub composite: crate::config::CompositeConfig,
}

pub enum StreamCommand {
    Track(ReceivedTrack),
    Metadata(StreamEvents),
    AddTarget(Target),
    /// Finalise and drop this output, with this reason in its manifest.
    RemoveTarget(Target, EndReason),
    Stop(EndReason),
}

/// How an output of the stream ended (for logs and tests).
#[derive(Debug, Clone)]
pub struct OutputReport {
    pub target: Target,
    pub file: Option<std::path::PathBuf>,
    pub state: RecordingState,
    pub reason: EndReason,
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
    pub async fn stop(self, reason: EndReason) -> Vec<OutputReport> {
        let _ = self.commands.send(StreamCommand::Stop(reason));
        self.task.await.unwrap_or_default()
    }
}

/// A received track's channel.
struct Track {
    codec: CodecInfo,
    video_codec: VideoCodec,
    packets: mpsc::Receiver<RtpPacket>,
    /// The sender's reports as the participant passes them on, and what they say.
    reports: tokio::sync::watch::Receiver<SenderReports>,
    sender: SenderClock,
    keyframes: KeyframeRequester,
    open: bool,
}

impl Track {
    /// When (sender's wall clock, Unix ns) a packet of the track was captured, if a report says.
    fn captured_at(&mut self, packet: &RtpPacket) -> Option<i128> {
        // An atomic load per packet; the report is copied only when a new one came.
        if self.reports.has_changed().unwrap_or(false) {
            let before = self.sender.ignored();
            self.sender.update(*self.reports.borrow_and_update());
            if before == 0 && self.sender.ignored() > 0 {
                tracing::warn!(codec = %self.codec.mime_type, "a sender report more than a day off this machine's clock was ignored (the file stays on the sender's earlier reports or on arrival times)");
            }
        }
        self.sender.wall_ns(packet.header.ssrc, packet.header.timestamp)
    }
}

/// One output instance: its pipeline (none if it could not start), its file.
struct Running {
    target: Target,
    template: String,
    pipeline: Option<Output>,
    /// Counted in the active recordings/relays gauge.
    counted_active: bool,
    record: Option<RecordFile>,
    jitter_counted: Vec<(MediaKind, u64, u64)>,
    /// Packets of the batch being read (with their capture times on the
    /// sender's clock), pushed together.
    pending_video: Vec<(bytes::Bytes, Option<i128>)>,
    pending_audio: Vec<(bytes::Bytes, Option<i128>)>,
}

struct StreamTask {
    context: StreamContext,
    settings: OutputSettings,
    policy: StreamPolicy,
    video: Option<Track>,
    audio: Option<Track>,
    outputs: HashMap<OutputId, Running>,
    events_tx: mpsc::UnboundedSender<(u64, OutputEvent)>,
    events_rx: mpsc::UnboundedReceiver<(u64, OutputEvent)>,
    /// Reused buffer of the policy's actions.
    actions: Vec<Action>,
    last_housekeeping: Instant,
    /// When an output last got packets.
    last_pushed: Option<Instant>,
    reports: Vec<OutputReport>,
}

async fn recv_track(track: &mut Option<Track>) -> Option<RtpPacket> {
    match track {
        Some(t) if t.open => t.packets.recv().await,
        _ => std::future::pending().await,
    }
}

impl StreamTask {
    fn new(context: StreamContext, targets: Vec<Target>, settings: OutputSettings) -> StreamTask {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let config = PolicyConfig {
            templates: settings.templates.clone(),
            track_wait: settings.track_wait,
            expected_kinds: context.expected_kinds.clone(),
        };
        StreamTask {
            policy: StreamPolicy::new(config, targets),
            context,
            settings,
            video: None,
            audio: None,
            outputs: HashMap::new(),
            events_tx,
            events_rx,
            actions: Vec::new(),
            last_housekeeping: Instant::now(),
            last_pushed: None,
            reports: Vec::new(),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<StreamCommand>) -> Vec<OutputReport> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                    None => break EndReason::Stopped,
                    Some(StreamCommand::Stop(reason)) => break reason,
                    Some(command) => self.on_command(command).await,
                },
                packet = recv_track(&mut self.video), if drain_at.is_none() => {
                    self.on_first_packet(MediaKind::Video, packet).await;
                    drain_at = Some(tokio::time::Instant::now() + self.drain_every());
                }
                packet = recv_track(&mut self.audio), if drain_at.is_none() => {
                    self.on_first_packet(MediaKind::Audio, packet).await;
                    drain_at = Some(tokio::time::Instant::now() + self.drain_every());
                }
                _ = drain => {
                    drain_at = self.drain().await.then(|| tokio::time::Instant::now() + self.drain_every());
                }
                Some((tag, event)) = self.events_rx.recv() => self.on_output_event(OutputId(tag), event).await,
                _ = tick.tick() => self.on_tick().await,
            }
        };
        self.feed(Input::Stop(reason)).await;
        self.reports
    }

    /// Feed one input and carry out what the policy decides.
    async fn feed(&mut self, input: Input) {
        let mut actions = Vec::new();
        self.policy.handle_into(input, Instant::now(), &mut actions);
        self.run_deferred(actions).await;
    }

    async fn on_command(&mut self, command: StreamCommand) {
        match command {
            StreamCommand::Track(track) => {
                tracing::debug!(stream = %self.context.stream_id, kind = track.kind.as_str(), codec = %track.codec.mime_type, "track for recording");
                let kind = track.kind;
                let encoding = track.codec.encoding_name();
                let slot = Some(Track {
                    video_codec: VideoCodec::from_encoding_name(&encoding),
                    sender: SenderClock::new(track.codec.clock_rate),
                    codec: track.codec,
                    packets: track.packets,
                    reports: track.reports,
                    keyframes: track.keyframes,
                    open: true,
                });
                match kind {
                    MediaKind::Video => self.video = slot,
                    MediaKind::Audio => self.audio = slot,
                }
                self.feed(Input::TrackArrived { kind, encoding }).await;
            }
            StreamCommand::Metadata(events) => {
                self.context.events = Some(events);
                for record in self.outputs.values_mut().filter_map(|o| o.record.as_mut()) {
                    record.manifest.events = self.context.events.clone();
                    record.manifest.event = manifest::primary_event(self.context.events.as_ref());
                    write_manifest_logged(record, &self.context.files);
                }
            }
            StreamCommand::AddTarget(target) => self.feed(Input::TargetAdded(target)).await,
            StreamCommand::RemoveTarget(target, reason) => self.feed(Input::TargetRemoved(target, reason)).await,
            StreamCommand::Stop(_) => unreachable!("handled by run"),
        }
    }

    /// How long packets may wait in the track channels: a relay's push
    /// period while one runs, a recording's otherwise (fewer wake-ups; the
    /// channels hold seconds of packets).
    fn drain_every(&self) -> Duration {
        if self.outputs.values().any(|o| o.target.kind() == TemplateKind::Relay) {
            DRAIN_EVERY
        } else {
            RECORD_PUSH_EVERY
        }
    }

    fn track_mut(&mut self, kind: MediaKind) -> Option<&mut Track> {
        match kind {
            MediaKind::Video => self.video.as_mut(),
            MediaKind::Audio => self.audio.as_mut(),
        }
    }

    /// The packet that woke the task (or the end of its track).
    async fn on_first_packet(&mut self, kind: MediaKind, packet: Option<RtpPacket>) {
        let mut deferred = Vec::new();
        match packet {
            Some(packet) => self.on_packet(kind, packet, &mut deferred),
            None => self.on_track_closed(kind, &mut deferred),
        }
        self.push_pending();
        self.run_deferred(deferred).await;
    }

    /// Read every packet queued on both tracks and push them; false if there were none.
    async fn drain(&mut self) -> bool {
        let mut deferred = Vec::new();
        let mut any = false;
        for kind in [MediaKind::Video, MediaKind::Audio] {
            for _ in 0..MAX_DRAIN {
                let Some(track) = self.track_mut(kind).filter(|t| t.open) else { break };
                match track.packets.try_recv() {
                    Ok(packet) => {
                        any = true;
                        self.on_packet(kind, packet, &mut deferred);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.on_track_closed(kind, &mut deferred);
                        break;
                    }
                }
            }
        }
        self.push_pending();
        self.run_deferred(deferred).await;
        any
    }

    fn on_track_closed(&mut self, kind: MediaKind, deferred: &mut Vec<Action>) {
        if let Some(track) = self.track_mut(kind) {
            track.open = false;
        }
        self.policy.handle_into(Input::TrackEnded { kind }, Instant::now(), deferred);
    }

    /// The per-packet path: the policy says which outputs get the packet and
    /// how it is renumbered; the packet is serialised with its new header
    /// once (one copy, [`rtp_rewrite`]), whatever the number of outputs.
    /// Anything else the policy asks for is run after the batch.
    fn on_packet(&mut self, kind: MediaKind, packet: RtpPacket, deferred: &mut Vec<Action>) {
        let keyframe = match (kind, self.video.as_ref()) {
            (MediaKind::Video, Some(track)) => starts_keyframe(track.video_codec, &packet.payload),
            _ => false,
        };
        let seen = PacketSeen {
            kind,
            ssrc: packet.header.ssrc,
            sequence: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            keyframe,
        };
        let mut actions = std::mem::take(&mut self.actions);
        self.policy.handle_into(Input::Packet(seen), Instant::now(), &mut actions);
        let mut bytes: Option<bytes::Bytes> = None;
        let mut captured: Option<Option<i128>> = None;
        for action in actions.drain(..) {
            match action {
                Action::Forward { output, kind, sequence, timestamp } => {
                    let Some(running) = self.outputs.get_mut(&output) else { continue };
                    if bytes.is_none() {
                        let (ssrc, payload_type) = match kind {
                            MediaKind::Video => (VIDEO_SSRC, VIDEO_PT),
                            MediaKind::Audio => (AUDIO_SSRC, AUDIO_PT),
                        };
                        let header = NewHeader { ssrc, payload_type, sequence_number: sequence, timestamp };
                        bytes = Some(rtp_rewrite::rewrite(&packet, header));
                    }
                    let b = bytes.clone().expect("serialised above");
                    // Looked up before the renumbering, on the sender's own SSRC and timestamps.
                    let captured = *captured.get_or_insert_with(|| {
                        let track = match kind {
                            MediaKind::Video => self.video.as_mut(),
                            MediaKind::Audio => self.audio.as_mut(),
                        };
                        track.and_then(|t| t.captured_at(&packet))
                    });
                    let b = (b, captured);
                    match kind {
                        MediaKind::Video => running.pending_video.push(b),
                        MediaKind::Audio => running.pending_audio.push(b),
                    }
                }
                Action::Lost { kind, packets } => {
                    self.settings.metrics.packets_lost_total.with_label_values(&[kind.as_str()]).inc_by(packets);
                }
                Action::KeyframeSeen => self.settings.metrics.keyframes_total.inc(),
                other => deferred.push(other),
            }
        }
        self.actions = actions;
    }

    fn push_pending(&mut self) {
        let mut pushed = false;
        for running in self.outputs.values_mut() {
            let Some(pipeline) = running.pipeline.as_mut() else { continue };
            if !running.pending_video.is_empty() {
                pipeline.push_captured(MediaKind::Video, running.pending_video.drain(..));
                pushed = true;
            }
            if !running.pending_audio.is_empty() {
                pipeline.push_captured(MediaKind::Audio, running.pending_audio.drain(..));
                pushed = true;
            }
        }
        if pushed {
            self.last_pushed = Some(Instant::now());
        }
    }

    /// Carry out actions in order; what a start reports back is fed to the
    /// policy at once, and its actions run before the remaining ones.
    async fn run_deferred(&mut self, deferred: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = deferred.into();
        while let Some(action) = queue.pop_front() {
            if let Some(report) = self.apply(action).await {
                let mut more = Vec::new();
                self.policy.handle_into(report, Instant::now(), &mut more);
                for action in more.into_iter().rev() {
                    queue.push_front(action);
                }
            }
        }
    }

    async fn on_output_event(&mut self, output: OutputId, event: OutputEvent) {
        match event {
            OutputEvent::KeyframeRequested => self.feed(Input::KeyframeAsked { output }).await,
            OutputEvent::Error { element, message } => {
                let Some(running) = self.outputs.get_mut(&output) else { return };
                let template = running.template.clone();
                tracing::warn!(room = %self.context.room, stream = %self.context.stream_id, %template, %element, %message, "output pipeline failed");
                self.settings.metrics.pipeline_errors_total.with_label_values(&[&template]).inc();
                // The bus task stopped the pipeline: there is nothing to finalise.
                let error = format!("{element}: {message}");
                self.feed(Input::OutputFailed { output, error, retry: true }).await;
            }
        }
    }

    async fn on_tick(&mut self) {
        self.feed(Input::Tick).await;
        for pipeline in self.outputs.values_mut().filter_map(|o| o.pipeline.as_mut()) {
            // Packets held behind a gap or batched go on without waiting for the next ones.
            pipeline.tick();
        }
        let now = Instant::now();
        if now.duration_since(self.last_housekeeping) >= HOUSEKEEPING {
            self.last_housekeeping = now;
            self.housekeeping();
        }
    }

    /// Counters that are read rather than pushed: file sizes, jitter-buffer drops.
    fn housekeeping(&mut self) {
        let metrics = &self.settings.metrics;
        let status = &self.context.status;
        let mut recorded: Option<u64> = None;
        for running in self.outputs.values_mut() {
            count_jitterbuffer_drops(running, metrics);
            let clock = running.pipeline.as_ref().and_then(|p| clock_status(p, &self.video, &self.audio));
            if let Some(record) = running.record.as_mut() {
                status.add_recorded_bytes(count_bytes_written(record, metrics));
                recorded = Some(record.bytes_counted());
                // The manifest follows the file's clock when its t0 or its source changes.
                if let Some(clock) = clock
                    && record.manifest.set_clock(&clock, SystemTime::now())
                {
                    write_manifest_logged(record, &self.context.files);
                }
            }
        }
        let keyframe_wait_since = self.policy.keyframe_wait_since();
        let last_data = self.last_pushed.or(self.policy.first_track_at());
        status.update(&self.context.peer.id, &self.context.stream_id, |s| {
            s.keyframe_wait_since = keyframe_wait_since;
            s.last_data = last_data;
            if let (Some(file), Some(bytes)) = (s.recording.as_mut(), recorded) {
                file.bytes = bytes;
            }
        });
    }

    /// Carry out one action; a start reports back how it went.
    async fn apply(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::StartOutput { output, target, template, tracks } => {
                Some(self.start(output, target, &template, tracks))
            }
            Action::Finish { output, reason, error, notice } => {
                self.finish(output, reason, error, notice).await;
                None
            }
            Action::RequestKeyframe(reason) => {
                self.request_keyframe(reason);
                None
            }
            Action::Notify { output, notice } => {
                if let Some(running) = self.outputs.get(&output) {
                    let data = match &running.record {
                        Some(record) => recording_event_data(&self.context, record),
                        None => relay_event_data(&self.context, &running.target, &running.template, None, None),
                    };
                    notify(&self.settings, notice, data);
                }
                None
            }
            Action::RelayState(state) => {
                self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| s.relay = state);
                None
            }
            Action::FirstKeyframe { output, waited, since_start } => {
                self.settings.metrics.first_keyframe_seconds.observe(waited.as_secs_f64());
                if let Some(record) = self.outputs.get_mut(&output).and_then(|o| o.record.as_mut())
                    && record.manifest.first_keyframe_ms.is_none()
                {
                    record.manifest.first_keyframe_ms = Some(since_start.as_millis() as u64);
                }
                None
            }
            Action::Unsupported { target, error } => {
                tracing::warn!(room = %self.context.room, stream = %self.context.stream_id, kind = ?target.kind(), %error, "stream not handled");
                None
            }
            Action::RelayRestart => {
                self.settings.metrics.relay_restarts_total.inc();
                None
            }
            Action::Lost { kind, packets } => {
                self.settings.metrics.packets_lost_total.with_label_values(&[kind.as_str()]).inc_by(packets);
                None
            }
            Action::KeyframeSeen => {
                self.settings.metrics.keyframes_total.inc();
                None
            }
            // Only packets are forwarded, on the per-packet path.
            Action::Forward { .. } => None,
        }
    }

    fn request_keyframe(&self, reason: KeyframeReason) {
        if let Some(video) = &self.video {
            video.keyframes.request();
            self.settings.metrics.keyframe_requests_total.with_label_values(&[reason.as_str()]).inc();
        }
    }

    fn codec(&self, kind: MediaKind) -> Option<&CodecInfo> {
        match kind {
            MediaKind::Video => self.video.as_ref().map(|t| &t.codec),
            MediaKind::Audio => self.audio.as_ref().map(|t| &t.codec),
        }
    }

    /// Start an output instance; whatever fails is reported as `OutputFailed`.
    fn start(&mut self, output: OutputId, target: Target, template_name: &str, tracks: Tracks) -> Input {
        let settings = self.settings.clone();
        let mut running = Running {
            target: target.clone(),
            template: template_name.to_string(),
            pipeline: None,
            counted_active: false,
            record: None,
            jitter_counted: Vec::new(),
            pending_video: Vec::new(),
            pending_audio: Vec::new(),
        };
        let failed = |running: Running, this: &mut StreamTask, error: String, retry: bool| {
            this.outputs.insert(output, running);
            Input::OutputFailed { output, error, retry }
        };
        let Ok(template) = settings.templates.get(template_name) else {
            return failed(running, self, format!("no template {template_name:?}"), false);
        };
        let video_codec = tracks.video.as_ref().and(self.codec(MediaKind::Video)).cloned();
        let audio_codec = tracks.audio.as_ref().and(self.codec(MediaKind::Audio)).cloned();
        let mut values = Values {
            latency_ms: settings.jitter_latency_ms,
            video_kbps: settings.relay_video_kbps,
            ..Values::default()
        };
        match &target {
            Target::Record { room_dir, .. } => {
                match new_record_file(
                    &self.context,
                    room_dir,
                    &template.name,
                    &template.extension,
                    SystemTime::now(),
                    video_codec.as_ref(),
                    audio_codec.as_ref(),
                ) {
                    Ok(file) => {
                        values.location = Some(file.path.clone());
                        running.record = Some(file);
                    }
                    Err(e) => {
                        tracing::warn!(room = %self.context.room, dir = %room_dir.display(), error = %e, "cannot create the recording file");
                        return failed(running, self, format!("cannot create the recording file: {e}"), true);
                    }
                }
            }
            Target::Relay { url, .. } => values.rtmp_url = Some(url.clone()),
        }
        let description = match template.description(tracks.video.as_deref(), tracks.audio.as_deref(), &values) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "template cannot take the stream");
                return failed(running, self, e, false);
            }
        };
        let caps = |codec: &Option<CodecInfo>, kind: MediaKind| {
            codec.as_ref().map(|c| InputCaps {
                kind,
                encoding_name: c.encoding_name(),
                clock_rate: c.clock_rate,
                channels: c.channels,
            })
        };
        let video_caps = caps(&video_codec, MediaKind::Video);
        let audio_caps = caps(&audio_codec, MediaKind::Audio);
        tracing::debug!(%description, "output pipeline");
        let reorder_window = Duration::from_millis(settings.jitter_latency_ms.into());
        // A file can take its media in bigger batches than a live relay.
        let push_every = match target.kind() {
            TemplateKind::Record => RECORD_PUSH_EVERY,
            TemplateKind::Relay => crate::media::output::PUSH_EVERY,
        };
        // A file waits for its senders' reports to be in sync from its first frame; a live relay does not wait.
        let sync_hold = match target.kind() {
            TemplateKind::Record => RECORD_SYNC_HOLD,
            TemplateKind::Relay => Duration::ZERO,
        };
        let started =
            Output::start(&description, video_caps.as_ref(), audio_caps.as_ref(), output.0, self.events_tx.clone())
                .map(|o| o.with_reorder_window(reorder_window).with_push_every(push_every).with_sync_hold(sync_hold));
        match started {
            Ok(pipeline) => {
                running.pipeline = Some(pipeline);
                running.counted_active = true;
                match &target {
                    Target::Record { .. } => settings.metrics.recordings_active.inc(),
                    Target::Relay { .. } => settings.metrics.relays_active.inc(),
                };
                if let Some(file) = &running.record {
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
                } else {
                    tracing::info!(room = %self.context.room, peer = %self.context.peer.id, stream = %self.context.stream_id, template = %template.name, "relaying");
                }
                self.outputs.insert(output, running);
                Input::OutputStarted { output }
            }
            Err(e) => {
                tracing::warn!(template = %template.name, error = %e, "cannot start the output pipeline");
                settings.metrics.pipeline_errors_total.with_label_values(&[&template.name]).inc();
                failed(running, self, e.to_string(), true)
            }
        }
    }

    /// Finalise the instance (if it runs), complete its manifest, tell the webhooks.
    async fn finish(&mut self, output: OutputId, reason: EndReason, error: Option<String>, notice: Notice) {
        let Some(mut running) = self.outputs.remove(&output) else { return };
        let metrics = self.settings.metrics.clone();
        count_jitterbuffer_drops(&mut running, &metrics);
        let failed = error.is_some();
        let clock = running.pipeline.as_ref().and_then(|p| clock_status(p, &self.video, &self.audio));
        let finalised = match running.pipeline.take() {
            Some(pipeline) if !failed => pipeline.finish(self.settings.finish_timeout).await,
            _ => false,
        };
        if running.counted_active {
            match &running.target {
                Target::Record { .. } => metrics.recordings_active.dec(),
                Target::Relay { .. } => metrics.relays_active.dec(),
            };
        }
        let state = if failed { RecordingState::Failed } else { RecordingState::Finished };
        let mut file = None;
        match running.record.take() {
            Some(mut record) => {
                self.context.status.add_recorded_bytes(count_bytes_written(&mut record, &metrics));
                let size = std::fs::metadata(&record.path).map(|m| m.len()).ok();
                record.manifest.error = error.clone();
                if !failed && !finalised {
                    record.manifest.error =
                        Some(format!("the file was not finalised within {:?}", self.settings.finish_timeout));
                }
                let now = SystemTime::now();
                if let Some(clock) = clock {
                    record.manifest.set_clock(&clock, now);
                }
                record.manifest.finish(state, now, reason, size);
                write_manifest_logged(&record, &self.context.files);
                let result = if failed { "failed" } else { "finished" };
                metrics.recordings_total.with_label_values(&[result]).inc();
                tracing::info!(file = %record.path.display(), %reason, result, bytes = size.unwrap_or(0), "recording ended");
                self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| s.recording = None);
                notify(&self.settings, notice, recording_event_data(&self.context, &record));
                file = Some(record.path);
            }
            None if running.target.kind() == TemplateKind::Record => {
                // The file could not even be created.
                metrics.recordings_total.with_label_values(&["failed"]).inc();
            }
            None => {
                tracing::info!(stream = %self.context.stream_id, %reason, "relay ended");
                let data =
                    relay_event_data(&self.context, &running.target, &running.template, Some(reason), error.as_deref());
                notify(&self.settings, notice, data);
                if !failed {
                    self.context.status.update(&self.context.peer.id, &self.context.stream_id, |s| s.relay = None);
                }
            }
        }
        self.reports.push(OutputReport { target: running.target, file, state, reason });
    }
}

/// Tell the notifier (webhooks) about an output.
fn notify(settings: &OutputSettings, notice: Notice, data: serde_json::Value) {
    if let Some(notifier) = &settings.notifier {
        notifier(notice.event(), data);
    }
}

fn relay_event_data(
    context: &StreamContext,
    target: &Target,
    template: &str,
    reason: Option<EndReason>,
    error: Option<&str>,
) -> serde_json::Value {
    let url = match target {
        Target::Relay { url, .. } => crate::redact::stream_key(url),
        Target::Record { .. } => String::new(),
    };
    serde_json::json!({
        "server": context.server,
        "room": context.room,
        "peer": {"id": context.peer.id, "name": context.peer.name},
        "stream_id": context.stream_id,
        "event": manifest::primary_event(context.events.as_ref()),
        "url": url,
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

fn count_jitterbuffer_drops(running: &mut Running, metrics: &MediaMetrics) {
    let Some(pipeline) = running.pipeline.as_ref() else { return };
    for (kind, lost, late) in pipeline.jitterbuffer_drops() {
        let (prev_lost, prev_late) =
            running.jitter_counted.iter().find(|(k, _, _)| *k == kind).map(|(_, l, t)| (*l, *t)).unwrap_or((0, 0));
        metrics
            .jitterbuffer_drops_total
            .with_label_values(&[kind.as_str(), "lost"])
            .inc_by(lost.saturating_sub(prev_lost));
        metrics
            .jitterbuffer_drops_total
            .with_label_values(&[kind.as_str(), "late"])
            .inc_by(late.saturating_sub(prev_late));
        running.jitter_counted.retain(|(k, _, _)| *k != kind);
        running.jitter_counted.push((kind, lost, late));
    }
}

/// An output's time zero on the wall clock, with what the stream's tracks
/// heard of their senders' reports.
fn clock_status(output: &Output, video: &Option<Track>, audio: &Option<Track>) -> Option<ClockStatus> {
    let (t0_unix_ms, source) = output.t0_unix_ms()?;
    let reports: Vec<_> = [video, audio].into_iter().flatten().map(|t| t.sender.reports()).collect();
    Some(ClockStatus {
        t0_unix_ms,
        source,
        sender_reports: reports.iter().map(|r| r.count).sum(),
        last_report_unix_ms: reports
            .iter()
            .filter_map(|r| r.latest.map(|l| crate::media::clock_status::unix_ms(l.arrived)))
            .reduce(f64::max),
    })
}
