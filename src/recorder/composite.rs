//! The composite task: the thin driver of a room's [`Scene`]. It owns what
//! the scene must not touch — the room's received tracks, the
//! [`CompositePipeline`], the composite's file and manifest, the clock and
//! the webhooks — turns each into scene inputs and each scene action into
//! I/O. One task per composite output (a recording or a relay) of a room.
//!
//! Packets are read every `DRAIN_EVERY` (one wake-up for all inputs),
//! put back in sequence order ([`Reorder`]), stamped on the room clock
//! ([`InputPlacement`]) and pushed as one buffer list per input.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::end_reason::EndReason;
use super::file_events::FileEvents;
use super::manifest::{self, CompositeSummary, Manifest, PeerSummary, RecordingState};
use super::naming::{sanitize_component, utc_stamp};
use super::record_file::claim_free_name;
use super::stream::{OutputReport, OutputSettings, Target};
use crate::composite::layout::LayoutKind;
use crate::composite::pipeline::{CompositePipeline, PipelineEvent, PipelineSettings};
use crate::composite::placement::{InputPlacement, RoomClock};
use crate::composite::scene::{InputId, Scene, SceneAction, SceneConfig, SceneInput, StreamKey};
use crate::composite::speaker::SpeakerConfig;
use crate::media::clock_status::{ClockSource, ClockStatus};
use crate::media::kind::MediaKind;
use crate::media::output::{AUDIO_PT, InputCaps, VIDEO_PT};
use crate::media::reorder::Reorder;
use crate::media::rtp_rewrite::{self, NewHeader};
use crate::media::sender_clock::{SenderClock, SenderReports};
use crate::media::templates::{TemplateKind, Values};
use crate::participant::events::{KeyframeRequester, PeerInfo, ReceivedTrack, RtpPacket};
use crate::participant::streams::StreamEvents;

/// How often the inputs are read and the scene is ticked.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// How long a gap in an input's sequence numbers is waited for.
const REORDER_WINDOW: Duration = Duration::from_millis(60);
const MAX_REORDER_HELD: usize = 512;
/// Most packets taken from one input per drain.
const MAX_DRAIN: usize = 1024;
/// Keyframe requests to one sender at most this often.
const KEYFRAME_EVERY: Duration = Duration::from_millis(500);
/// How often the manifest is rewritten while recording (its clock, its members).
const MANIFEST_EVERY: Duration = Duration::from_secs(5);

pub enum CompositeCommand {
    StreamStarted { peer: PeerInfo, stream_id: String, events: Option<StreamEvents>, kinds: Vec<MediaKind> },
    Metadata { key: StreamKey, events: StreamEvents },
    Track(ReceivedTrack),
    StreamEnded { key: StreamKey },
    Stop(EndReason),
}

/// Who the composite is for.
#[derive(Debug, Clone)]
pub struct CompositeContext {
    pub server: Option<String>,
    pub room: String,
    pub layout: LayoutKind,
    pub files: FileEvents,
}

/// The running composite task.
pub struct CompositeHandle {
    commands: mpsc::UnboundedSender<CompositeCommand>,
    task: tokio::task::JoinHandle<Option<OutputReport>>,
    pub target: Target,
    pub layout: LayoutKind,
}

impl CompositeHandle {
    pub fn start(context: CompositeContext, target: Target, settings: OutputSettings) -> CompositeHandle {
        let (commands, rx) = mpsc::unbounded_channel();
        let layout = context.layout;
        let task = tokio::spawn(run(context, target.clone(), settings, rx));
        CompositeHandle { commands, task, target, layout }
    }

    pub fn send(&self, command: CompositeCommand) {
        let _ = self.commands.send(command);
    }

    pub async fn stop(self, reason: EndReason) -> Option<OutputReport> {
        let _ = self.commands.send(CompositeCommand::Stop(reason));
        self.task.await.ok().flatten()
    }
}

/// Copies of a received track for `n` consumers (a stream's task and the
/// room's composites): one is the track itself; with more, a task forwards
/// each packet to every copy (a copy whose reader is gone or full misses it).
pub fn split_track(track: ReceivedTrack, n: usize) -> Vec<ReceivedTrack> {
    if n <= 1 {
        return if n == 1 { vec![track] } else { Vec::new() };
    }
    let ReceivedTrack { peer, stream_id, track_id, kind, codec, ssrc, mut packets, reports, keyframes } = track;
    let mut senders = Vec::with_capacity(n);
    let mut copies = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(PER_COPY_QUEUE);
        senders.push(tx);
        copies.push(ReceivedTrack {
            peer: peer.clone(),
            stream_id: stream_id.clone(),
            track_id: track_id.clone(),
            kind,
            codec: codec.clone(),
            ssrc,
            packets: rx,
            reports: reports.clone(),
            keyframes: keyframes.clone(),
        });
    }
    tokio::spawn(async move {
        while let Some(packet) = packets.recv().await {
            senders.retain(|tx| !matches!(tx.try_send(packet.clone()), Err(mpsc::error::TrySendError::Closed(_))));
            if senders.is_empty() {
                break;
            }
        }
    });
    copies
}

/// Packets one copy of a split track queues at most (2 s of 1.5 Mbit/s video).
const PER_COPY_QUEUE: usize = 512;

/// A track of the room waiting for, or feeding, an input.
struct TrackFeed {
    kind: MediaKind,
    caps: InputCaps,
    payload_type: u8,
    packets: mpsc::Receiver<RtpPacket>,
    reports: tokio::sync::watch::Receiver<SenderReports>,
    sender: SenderClock,
    keyframes: KeyframeRequester,
    last_keyframe_request: Option<Instant>,
    reorder: Reorder<(Duration, RtpPacket)>,
    placement: InputPlacement,
    open: bool,
}

impl TrackFeed {
    fn new(track: ReceivedTrack) -> TrackFeed {
        let caps = InputCaps {
            kind: track.kind,
            encoding_name: track.codec.encoding_name(),
            clock_rate: track.codec.clock_rate,
            channels: track.codec.channels,
        };
        TrackFeed {
            kind: track.kind,
            payload_type: match track.kind {
                MediaKind::Video => VIDEO_PT,
                MediaKind::Audio => AUDIO_PT,
            },
            sender: SenderClock::new(track.codec.clock_rate),
            placement: InputPlacement::new(track.codec.clock_rate),
            caps,
            packets: track.packets,
            reports: track.reports,
            keyframes: track.keyframes,
            last_keyframe_request: None,
            reorder: Reorder::new(REORDER_WINDOW, MAX_REORDER_HELD),
            open: true,
        }
    }

    fn request_keyframe(&mut self, now: Instant) {
        if self.kind == MediaKind::Video && self.last_keyframe_request.is_none_or(|t| now - t >= KEYFRAME_EVERY) {
            self.last_keyframe_request = Some(now);
            self.keyframes.request();
        }
    }
}

struct Output {
    pipeline: CompositePipeline,
    file: Option<(PathBuf, PathBuf)>,
    manifest: Option<Manifest>,
}

struct Task {
    context: CompositeContext,
    target: Target,
    settings: OutputSettings,
    scene: Scene,
    clock: RoomClock,
    started: Instant,
    output: Output,
    /// Tracks of streams the scene has not given an input yet, by stream and kind.
    waiting: HashMap<(StreamKey, MediaKind), ReceivedTrack>,
    feeds: HashMap<InputId, TrackFeed>,
    screen_event: String,
    members: Vec<String>,
    /// RTCP sender reports seen on the composite's inputs, all told.
    sender_reports: u32,
    last_manifest: Instant,
}

async fn run(
    context: CompositeContext,
    target: Target,
    settings: OutputSettings,
    mut commands: mpsc::UnboundedReceiver<CompositeCommand>,
) -> Option<OutputReport> {
    let mut task = match Task::start(context, target.clone(), settings) {
        Ok(task) => task,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the room composite");
            return Some(OutputReport { target, file: None, state: RecordingState::Failed, reason: EndReason::PipelineError });
        }
    };
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(CompositeCommand::Stop(reason)) => break reason,
                None => break EndReason::Shutdown,
                Some(command) => task.on_command(command),
            },
            event = task.output.pipeline.next_event() => match event {
                Some(PipelineEvent::Error { element, message }) => {
                    tracing::error!(room = %task.context.room, %element, %message, "the room composite failed");
                    return task.end(RecordingState::Failed, EndReason::PipelineError, Some(format!("{element}: {message}"))).await;
                }
                Some(event) => task.on_pipeline_event(event),
                None => break EndReason::PipelineError,
            },
            _ = drain.tick() => task.on_drain(),
        }
    };
    task.end(RecordingState::Finished, reason, None).await
}

impl Task {
    fn start(context: CompositeContext, target: Target, settings: OutputSettings) -> Result<Task, String> {
        let config = settings.composite.clone();
        let template = settings.templates.choose_composite(target.kind(), target.template()).map_err(|e| e.to_string())?;
        let started_at = SystemTime::now();
        let (file, values) = match &target {
            Target::Record { room_dir, .. } => {
                let stem = format!("{}-composite-{}", utc_stamp(started_at), context.layout.as_str());
                let extension = sanitize_component(&template.extension);
                let path = claim_free_name(room_dir, |attempt| match attempt {
                    0 | 1 => format!("{stem}.{extension}"),
                    n => format!("{stem}-{n}.{extension}"),
                })
                .map_err(|e| format!("cannot create the composite's file in {}: {e}", room_dir.display()))?;
                let values = Values {
                    location: Some(path.clone()),
                    video_kbps: config.video_kbps,
                    framerate: config.framerate,
                    ..Values::default()
                };
                (Some((path.clone(), manifest::manifest_path(&path))), values)
            }
            Target::Relay { url, .. } => (
                None,
                Values {
                    rtmp_url: Some(url.clone()),
                    video_kbps: config.video_kbps,
                    framerate: config.framerate,
                    ..Values::default()
                },
            ),
        };
        let canvas = (config.width, config.height);
        let pipeline = CompositePipeline::start(template, &values, &PipelineSettings { canvas, framerate: config.framerate })?;
        let running = pipeline.running_time();
        let start_unix_ns = crate::media::clock_status::unix_ns(SystemTime::now()) - running.as_nanos() as i128;
        let delay = Duration::from_millis(config.latency_ms);
        let clock = RoomClock::new(start_unix_ns, delay);
        let manifest = file.as_ref().map(|(path, _)| {
            let (started_at_text, started_unix_ms) = Manifest::started(started_at);
            Manifest {
                state: RecordingState::Recording,
                file: path.file_name().unwrap_or_default().to_string_lossy().to_string(),
                server: context.server.clone(),
                room: context.room.clone(),
                peer: PeerSummary { id: "composite".into(), name: format!("{} composite", context.layout) },
                stream_id: String::new(),
                event: "composite".into(),
                events: None,
                template: template.name.clone(),
                codecs: Default::default(),
                started_at: started_at_text,
                started_unix_ms,
                ended_at: None,
                ended_unix_ms: None,
                duration_secs: None,
                size_bytes: None,
                end_reason: None,
                error: None,
                first_keyframe_ms: None,
                t0_unix_ms: Some(clock.t0_unix_ms()),
                clock: None,
                composite: Some(CompositeSummary {
                    layout: context.layout,
                    width: config.width,
                    height: config.height,
                    framerate: config.framerate,
                    members: Vec::new(),
                }),
            }
        });
        tracing::info!(room = %context.room, layout = %context.layout, template = %template.name,
            file = ?file.as_ref().map(|f| f.0.display().to_string()), "room composite started");
        let scene = Scene::new(SceneConfig { layout: context.layout, canvas, delay, speaker: SpeakerConfig::default() });
        let mut task = Task {
            scene,
            clock,
            started: Instant::now(),
            output: Output { pipeline, file, manifest },
            waiting: HashMap::new(),
            feeds: HashMap::new(),
            screen_event: config.screen_event.clone(),
            members: Vec::new(),
            sender_reports: 0,
            last_manifest: Instant::now(),
            context,
            target,
            settings,
        };
        task.write_manifest();
        task.notify("started", serde_json::json!({}));
        Ok(task)
    }

    fn now(&self) -> Duration {
        self.output.pipeline.running_time()
    }

    fn on_command(&mut self, command: CompositeCommand) {
        let now = self.now();
        let input = match command {
            CompositeCommand::StreamStarted { peer, stream_id, events, kinds } => {
                if !self.members.contains(&peer.name) {
                    self.members.push(peer.name.clone());
                }
                let screen = self.is_screen(events.as_ref());
                SceneInput::StreamStarted { key: (peer.id, stream_id), peer_name: peer.name, screen, kinds }
            }
            CompositeCommand::Metadata { key, events } => SceneInput::Screen { screen: self.is_screen(Some(&events)), key },
            CompositeCommand::Track(track) => {
                let key = (track.peer.id.clone(), track.stream_id.clone());
                let kind = track.kind;
                self.waiting.insert((key.clone(), kind), track);
                SceneInput::Track { key, kind }
            }
            CompositeCommand::StreamEnded { key } => {
                self.waiting.retain(|(k, _), _| k != &key);
                SceneInput::StreamEnded { key }
            }
            CompositeCommand::Stop(_) => return,
        };
        let actions = self.scene.handle(input, now);
        self.apply(actions);
    }

    fn is_screen(&self, events: Option<&StreamEvents>) -> bool {
        events.is_some_and(|e| e.keys().any(|name| name == &self.screen_event))
    }

    fn on_pipeline_event(&mut self, event: PipelineEvent) {
        let now = self.now();
        let input = match event {
            PipelineEvent::PictureSize { input, width, height } => SceneInput::PictureSize { input, width, height },
            PipelineEvent::Level { input, rms_db } => SceneInput::Level { input, rms_db },
            PipelineEvent::KeyframeRequested { input } => {
                if let Some(feed) = self.feeds.get_mut(&input) {
                    feed.request_keyframe(Instant::now());
                }
                return;
            }
            PipelineEvent::Error { .. } => return,
        };
        let actions = self.scene.handle(input, now);
        self.apply(actions);
    }

    fn apply(&mut self, actions: Vec<SceneAction>) {
        for action in actions {
            match action {
                SceneAction::AddTrackInput { input, key, kind, label } => {
                    let Some(track) = self.waiting.remove(&(key, kind)) else { continue };
                    let mut feed = TrackFeed::new(track);
                    match self.output.pipeline.add_track(input, &feed.caps, &label) {
                        Ok(()) => {
                            feed.request_keyframe(Instant::now());
                            self.feeds.insert(input, feed);
                        }
                        Err(e) => tracing::warn!(room = %self.context.room, error = %e, "a track is left out of the composite"),
                    }
                }
                SceneAction::AddNameCard { input, label } => {
                    if let Err(e) = self.output.pipeline.add_name_card(input, &label) {
                        tracing::warn!(room = %self.context.room, error = %e, "no name card");
                    }
                }
                SceneAction::EndInput { input } => {
                    self.flush_feed(input);
                    self.feeds.remove(&input);
                    self.output.pipeline.end_input(input);
                }
                SceneAction::RemoveInput { input } => {
                    self.feeds.remove(&input);
                    self.output.pipeline.remove_input(input);
                }
                SceneAction::Layout { placements } => {
                    tracing::debug!(room = %self.context.room, tiles = placements.len(), "composite layout");
                    self.output.pipeline.set_layout(&placements);
                }
            }
        }
    }

    /// Read every input's packets, stamp them, push them; tick the scene.
    fn on_drain(&mut self) {
        let now = self.now();
        let mut released = Vec::new();
        for (&input, feed) in self.feeds.iter_mut() {
            if feed.reports.has_changed().unwrap_or(false) {
                let before = feed.sender.reports().count;
                feed.sender.update(*feed.reports.borrow_and_update());
                self.sender_reports += feed.sender.reports().count.saturating_sub(before);
            }
            for _ in 0..MAX_DRAIN {
                match feed.packets.try_recv() {
                    Ok(packet) => {
                        let seq = packet.header.sequence_number;
                        feed.reorder.push(now, seq, (now, packet), &mut released);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        feed.open = false;
                        break;
                    }
                }
            }
            feed.reorder.release_due(now, &mut released);
            if !feed.open {
                feed.reorder.flush(&mut released);
            }
            push_released(&mut self.output.pipeline, &mut self.clock, input, feed, &mut released);
        }
        let actions = self.scene.handle(SceneInput::Tick, now);
        self.apply(actions);
        if self.last_manifest.elapsed() >= MANIFEST_EVERY {
            self.write_manifest();
        }
    }

    fn flush_feed(&mut self, input: InputId) {
        let Some(feed) = self.feeds.get_mut(&input) else { return };
        let mut released = Vec::new();
        feed.reorder.flush(&mut released);
        push_released(&mut self.output.pipeline, &mut self.clock, input, feed, &mut released);
    }

    fn write_manifest(&mut self) {
        self.last_manifest = Instant::now();
        let (Some((_, manifest_path)), Some(manifest)) = (&self.output.file, &mut self.output.manifest) else { return };
        if let Some(c) = &mut manifest.composite {
            c.members = self.members.clone();
        }
        let status = ClockStatus {
            t0_unix_ms: self.clock.t0_unix_ms(),
            source: if self.sender_reports > 0 { ClockSource::SenderReports } else { ClockSource::Arrival },
            sender_reports: self.sender_reports,
            last_report_unix_ms: None,
        };
        manifest.set_clock(&status, SystemTime::now());
        if let Err(e) = manifest::write_manifest(manifest_path, manifest) {
            tracing::warn!(path = %manifest_path.display(), error = %e, "cannot write the composite's manifest");
        }
        self.context.files.send(manifest);
    }

    fn notify(&self, what: &str, extra: serde_json::Value) {
        let Some(notifier) = &self.settings.notifier else { return };
        let event = match (self.target.kind(), what) {
            (TemplateKind::Record, "started") => "recording.started",
            (TemplateKind::Record, "finished") => "recording.finished",
            (TemplateKind::Record, _) => "recording.failed",
            (TemplateKind::Relay, "started") => "relay.started",
            (TemplateKind::Relay, "finished") => "relay.stopped",
            (TemplateKind::Relay, _) => "relay.failed",
        };
        let mut data = serde_json::json!({
            "room": self.context.room,
            "server": self.context.server,
            "composite": { "layout": self.context.layout },
            "file": self.output.file.as_ref().map(|f| f.0.display().to_string()),
        });
        if let (Some(map), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        notifier(event, data);
    }

    async fn end(mut self, state: RecordingState, reason: EndReason, error: Option<String>) -> Option<OutputReport> {
        let actions = self.scene.flush();
        self.apply(actions);
        let ids: Vec<InputId> = self.feeds.keys().copied().collect();
        for input in ids {
            self.flush_feed(input);
        }
        let finished = if state == RecordingState::Failed {
            Err(error.clone().unwrap_or_default())
        } else {
            self.output.pipeline.finish(self.settings.finish_timeout).await
        };
        let state = match (&finished, state) {
            (Ok(()), s) => s,
            (Err(_), _) => RecordingState::Failed,
        };
        let size = self.output.file.as_ref().and_then(|(p, _)| std::fs::metadata(p).ok()).map(|m| m.len());
        if let Some(manifest) = &mut self.output.manifest {
            manifest.finish(state, SystemTime::now(), reason, size);
            if let Err(e) = &finished {
                manifest.error = Some(e.clone());
            }
        }
        self.write_manifest();
        let elapsed = self.started.elapsed().as_secs_f64();
        tracing::info!(room = %self.context.room, ?state, %reason, secs = elapsed, "room composite ended");
        self.notify(if state == RecordingState::Finished { "finished" } else { "failed" }, serde_json::json!({ "reason": reason }));
        Some(OutputReport { target: self.target.clone(), file: self.output.file.as_ref().map(|f| f.0.clone()), state, reason })
    }
}

fn push_released(
    pipeline: &mut CompositePipeline,
    clock: &mut RoomClock,
    input: InputId,
    feed: &mut TrackFeed,
    released: &mut Vec<(Duration, RtpPacket)>,
) {
    if released.is_empty() {
        return;
    }
    let stamped: Vec<_> = released
        .drain(..)
        .map(|(arrival, packet)| {
            let sender_ns = feed.sender.wall_ns(packet.header.ssrc, packet.header.timestamp);
            let pts = feed.placement.pts(clock, arrival, packet.header.timestamp, sender_ns);
            let bytes = rtp_rewrite::rewrite(
                &packet,
                NewHeader {
                    ssrc: packet.header.ssrc,
                    payload_type: feed.payload_type,
                    sequence_number: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                },
            );
            (bytes, pts)
        })
        .collect();
    tracing::trace!(input, packets = stamped.len(), first_pts = ?stamped.first().map(|p| p.1), now = ?pipeline.running_time(), "composite push");
    pipeline.push(input, stamped);
}
