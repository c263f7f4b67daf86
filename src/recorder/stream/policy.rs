//! The media policy of one received stream, as a sans-IO state machine.
//!
//! The driver ([`super::driver`]) feeds everything that happens to the
//! stream — tracks arriving and ending, every RTP packet's header facts,
//! what its outputs report, targets added and removed, clock ticks — into
//! [`StreamPolicy::handle`] in order, and carries out the returned
//! [`Action`]s in order before feeding the next input. The policy never
//! touches GStreamer, files or the clock; its unit tests drive simulated
//! time through every case.
//!
//! What it decides:
//! - **assembling**: an output starts once every announced track is here
//!   (or, not knowing, one of each kind), or after `track_wait` (three times
//!   that when the peer announced the missing track), so audio and video of
//!   one stream share a file;
//! - **continuity**: packets are renumbered into one continuous sequence
//!   and timeline per kind ([`Continuity`]), so `replaceTrack` or a re-added
//!   track continues the same file; a new source (SSRC) closes the video
//!   gates again and asks for a keyframe;
//! - **keyframes**: video passes a [`KeyframeGate`] per output (nothing
//!   before the first keyframe; a PLI at start, every 500 ms while waiting,
//!   after a source change and when a pipeline asks);
//! - **splits**: when the set of tracks changes for good — a kind appears,
//!   a removed track is not replaced within `track_wait`, a codec changes, a
//!   track stays silent for [`STALLED_AFTER`] while the other flows (and
//!   when it sends again) — the file ends (`tracks-changed`) and a new one
//!   continues the stream;
//! - **supervision**: each target (recording, relay) is a slot that owns
//!   throw-away output instances; an instance that fails is finished as
//!   failed and a fresh one started after a back-off (2 s doubling to 30 s
//!   for files, 1 s more each time up to 10 s for relays); media flowing again (a
//!   first keyframe) resets the back-off; a stream no template handles is
//!   not retried until its codecs change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::target::Target;
use crate::backoff::Backoff;
use crate::media::continuity::{Continuity, LossCounter};
use crate::media::keyframes::{KeyframeGate, VideoCodec};
use crate::media::kind::MediaKind;
use crate::media::templates::{TemplateKind, TemplateSet};
use crate::recorder::end_reason::EndReason;
use crate::recorder::status::RelayState;

/// A track that sends nothing for this long while the stream's other track
/// flows is left out of the file (a browser's `replaceTrack(null)` keeps the
/// track open but silent, and Matroska muxing would hold everything back
/// waiting for it); when it sends again, a new file takes it back in.
pub const STALLED_AFTER: Duration = Duration::from_secs(5);
/// An announced track that has not sent yet is waited for this many times `track_wait`.
pub const ANNOUNCED_TRACK_WAIT_FACTOR: u32 = 3;
/// The other track counts as flowing if it sent within this.
pub const FLOWING_WITHIN: Duration = Duration::from_secs(1);
/// A keyframe request this soon after a gate (re)opened is the start request.
const START_REQUEST_WITHIN: Duration = Duration::from_millis(50);
/// Back-off of a failed recording instance.
pub const FILE_BACKOFF: Backoff = Backoff::doubling(Duration::from_secs(2), Duration::from_secs(30));
/// Back-off of a failed relay instance.
pub const RELAY_BACKOFF: Backoff = Backoff::linear(Duration::from_secs(1), Duration::from_secs(10));

/// One output instance (a pipeline, and its file when recording). A failed
/// instance is thrown away; its slot starts a new one with a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId(pub u64);

/// The encodings (e.g. `VP8`, `opus`) an output is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    pub video: Option<String>,
    pub audio: Option<String>,
}

impl Tracks {
    pub fn is_empty(&self) -> bool {
        self.video.is_none() && self.audio.is_none()
    }
    pub fn has(&self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Video => self.video.is_some(),
            MediaKind::Audio => self.audio.is_some(),
        }
    }
}

/// The header facts of one received RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSeen {
    pub kind: MediaKind,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// The payload starts a keyframe (video).
    pub keyframe: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A track of the stream arrived (or replaced the one of its kind).
    TrackArrived {
        kind: MediaKind,
        encoding: String,
    },
    /// The track of this kind ended (its packets stopped for good).
    TrackEnded {
        kind: MediaKind,
    },
    Packet(PacketSeen),
    /// A `StartOutput` succeeded: the instance takes packets.
    OutputStarted {
        output: OutputId,
    },
    /// A `StartOutput` could not be carried out, or the running pipeline
    /// failed. `retry: false`: the template cannot take these tracks at all.
    OutputFailed {
        output: OutputId,
        error: String,
        retry: bool,
    },
    /// A pipeline element asked for a keyframe (loss it could not repair).
    KeyframeAsked {
        output: OutputId,
    },
    TargetAdded(Target),
    /// Finish and drop this target's output, with this reason.
    TargetRemoved(Target, EndReason),
    /// Finish every output: the stream is over.
    Stop(EndReason),
    /// Time passes (the driver ticks about every 100 ms).
    Tick,
}

/// Why a keyframe is asked for (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeReason {
    /// An output just started.
    Start,
    /// Still waiting for one.
    Retry,
    /// The track's source changed (new SSRC).
    SourceChange,
    /// A pipeline asked.
    Pipeline,
}

impl KeyframeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyframeReason::Start => "start",
            KeyframeReason::Retry => "retry",
            KeyframeReason::SourceChange => "source_change",
            KeyframeReason::Pipeline => "pipeline",
        }
    }
}

/// What to tell the webhooks about an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    RecordingStarted,
    RecordingFinished,
    RecordingFailed,
    RelayStarted,
    RelayStopped,
    RelayFailed,
}

impl Notice {
    /// The webhook event name.
    pub fn event(self) -> &'static str {
        match self {
            Notice::RecordingStarted => "recording.started",
            Notice::RecordingFinished => "recording.finished",
            Notice::RecordingFailed => "recording.failed",
            Notice::RelayStarted => "relay.started",
            Notice::RelayStopped => "relay.stopped",
            Notice::RelayFailed => "relay.failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start an output instance of `target` from `template` with these tracks;
    /// report `OutputStarted` or `OutputFailed` before the next input.
    StartOutput {
        output: OutputId,
        target: Target,
        template: String,
        tracks: Tracks,
    },
    /// Give the packet just seen to this output, renumbered.
    Forward {
        output: OutputId,
        kind: MediaKind,
        sequence: u16,
        timestamp: u32,
    },
    /// Finalise the output (unless it failed), complete its manifest, and tell
    /// the webhooks `notice`.
    Finish {
        output: OutputId,
        reason: EndReason,
        error: Option<String>,
        notice: Notice,
    },
    /// Send a PLI on the video track.
    RequestKeyframe(KeyframeReason),
    Notify {
        output: OutputId,
        notice: Notice,
    },
    /// The relay's state as shown by the API (`None`: no relay).
    RelayState(Option<RelayState>),
    /// The output's first keyframe: `waited` since its gate (re)opened, `since_start` since it started.
    FirstKeyframe {
        output: OutputId,
        waited: Duration,
        since_start: Duration,
    },
    /// No template takes the stream's tracks for this target (it is not retried until they change).
    Unsupported {
        target: Target,
        error: String,
    },
    /// Packets lost on the way (sequence gaps) — a counter.
    Lost {
        kind: MediaKind,
        packets: u64,
    },
    /// A new keyframe passed by — a counter.
    KeyframeSeen,
    /// A failed relay instance will be restarted — a counter.
    RelayRestart,
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub templates: Arc<TemplateSet>,
    /// How long to wait for the stream's other tracks (and for a replacement of a removed one).
    pub track_wait: Duration,
    /// The kinds of track the peer announced for the stream (empty: unknown).
    pub expected_kinds: Vec<MediaKind>,
}

#[derive(Debug)]
struct Track {
    encoding: String,
    /// The track ended; it is gone for good `track_wait` after this.
    ended_at: Option<Instant>,
    last_packet: Instant,
}

#[derive(Debug)]
struct Instance {
    id: OutputId,
    tracks: Tracks,
    gate: Option<KeyframeGate>,
    gate_opened: Instant,
    started: Instant,
}

/// One target and the instance running for it now (its supervisor).
#[derive(Debug)]
struct Slot {
    target: Target,
    instance: Option<Instance>,
    retry_at: Option<Instant>,
    failures: u32,
    /// No template handles these tracks: do not retry until they change.
    unsupported: Option<Tracks>,
}

impl Slot {
    fn new(target: Target) -> Slot {
        Slot { target, instance: None, retry_at: None, failures: 0, unsupported: None }
    }
    fn is_relay(&self) -> bool {
        self.target.kind() == TemplateKind::Relay
    }
    fn notice(&self, failed: bool) -> Notice {
        match (self.is_relay(), failed) {
            (false, false) => Notice::RecordingFinished,
            (false, true) => Notice::RecordingFailed,
            (true, false) => Notice::RelayStopped,
            (true, true) => Notice::RelayFailed,
        }
    }
    fn backoff(&self) -> Backoff {
        if self.is_relay() { RELAY_BACKOFF } else { FILE_BACKOFF }
    }
}

pub struct StreamPolicy {
    config: PolicyConfig,
    video: Option<Track>,
    audio: Option<Track>,
    first_track_at: Option<Instant>,
    video_continuity: Continuity,
    audio_continuity: Continuity,
    video_loss: LossCounter,
    audio_loss: LossCounter,
    slots: Vec<Slot>,
    next_output: u64,
    /// The stream's first set of tracks was decided (the waits for its other tracks are over).
    assembled: bool,
    stopped: bool,
}

impl StreamPolicy {
    pub fn new(config: PolicyConfig, targets: Vec<Target>) -> StreamPolicy {
        StreamPolicy {
            config,
            video: None,
            audio: None,
            first_track_at: None,
            video_continuity: Continuity::new(90_000),
            audio_continuity: Continuity::new(48_000),
            video_loss: LossCounter::default(),
            audio_loss: LossCounter::default(),
            slots: targets.into_iter().map(Slot::new).collect(),
            next_output: 0,
            assembled: false,
            stopped: false,
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.handle_into(input, now, &mut actions);
        actions
    }

    /// [`Self::handle`] appending to a caller's buffer (the per-packet path).
    pub fn handle_into(&mut self, input: Input, now: Instant, out: &mut Vec<Action>) {
        if self.stopped {
            return;
        }
        match input {
            Input::TrackArrived { kind, encoding } => {
                *self.track_mut(kind) = Some(Track { encoding, ended_at: None, last_packet: now });
                self.first_track_at.get_or_insert(now);
            }
            Input::TrackEnded { kind } => {
                if let Some(track) = self.track_mut(kind) {
                    track.ended_at.get_or_insert(now);
                }
            }
            Input::Packet(packet) => self.on_packet(packet, now, out),
            Input::OutputStarted { output } => {
                if let Some(slot) = self.slot_of(output) {
                    let relay = slot.is_relay();
                    let notice = if relay { Notice::RelayStarted } else { Notice::RecordingStarted };
                    out.push(Action::Notify { output, notice });
                    if relay {
                        out.push(Action::RelayState(Some(RelayState::Starting)));
                    }
                }
            }
            Input::OutputFailed { output, error, retry } => self.on_output_failed(output, error, retry, now, out),
            Input::KeyframeAsked { output } => {
                let wanted = self
                    .slots
                    .iter_mut()
                    .filter_map(|s| s.instance.as_mut())
                    .find(|i| i.id == output)
                    .and_then(|i| i.gate.as_mut())
                    .is_some_and(|g| g.on_pipeline_request(now));
                if wanted {
                    out.push(Action::RequestKeyframe(KeyframeReason::Pipeline));
                }
            }
            Input::TargetAdded(target) => {
                if !self.slots.iter().any(|s| s.target == target) {
                    self.slots.push(Slot::new(target));
                    self.assemble(now, out);
                }
            }
            Input::TargetRemoved(target, reason) => {
                if let Some(index) = self.slots.iter().position(|s| s.target == target) {
                    self.finish(index, reason, None, out);
                    let slot = self.slots.remove(index);
                    if slot.is_relay() {
                        out.push(Action::RelayState(None));
                    }
                }
            }
            Input::Stop(reason) => {
                for index in 0..self.slots.len() {
                    self.finish(index, reason, None, out);
                }
                self.stopped = true;
            }
            Input::Tick => self.on_tick(now, out),
        }
    }

    /// Since when an output has been waiting for its first keyframe (the earliest), if one is.
    pub fn keyframe_wait_since(&self) -> Option<Instant> {
        self.instances().filter(|i| i.gate.as_ref().is_some_and(|g| g.is_waiting())).map(|i| i.gate_opened).min()
    }

    /// When the stream's first track arrived.
    pub fn first_track_at(&self) -> Option<Instant> {
        self.first_track_at
    }

    /// The outputs running now.
    pub fn outputs(&self) -> impl Iterator<Item = (OutputId, &Target)> {
        self.slots.iter().filter_map(|s| s.instance.as_ref().map(|i| (i.id, &s.target)))
    }

    fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.slots.iter().filter_map(|s| s.instance.as_ref())
    }

    fn track_mut(&mut self, kind: MediaKind) -> &mut Option<Track> {
        match kind {
            MediaKind::Video => &mut self.video,
            MediaKind::Audio => &mut self.audio,
        }
    }

    fn slot_of(&self, output: OutputId) -> Option<&Slot> {
        self.slots.iter().find(|s| s.instance.as_ref().is_some_and(|i| i.id == output))
    }

    fn on_packet(&mut self, packet: PacketSeen, now: Instant, out: &mut Vec<Action>) {
        let PacketSeen { kind, ssrc, sequence, timestamp, keyframe } = packet;
        match self.track_mut(kind) {
            Some(track) if track.ended_at.is_none() => track.last_packet = now,
            // A packet of a track we were not told about, or one that ended: not ours.
            _ => return,
        }
        let (continuity, loss) = match kind {
            MediaKind::Video => (&mut self.video_continuity, &mut self.video_loss),
            MediaKind::Audio => (&mut self.audio_continuity, &mut self.audio_loss),
        };
        let lost = loss.on_packet(ssrc, sequence);
        if lost > 0 {
            out.push(Action::Lost { kind, packets: lost });
        }
        let rewritten = continuity.rewrite(now, ssrc, sequence, timestamp);
        if rewritten.new_source && kind == MediaKind::Video {
            let mut any = false;
            for instance in self.slots.iter_mut().filter_map(|s| s.instance.as_mut()) {
                if let Some(gate) = instance.gate.as_mut() {
                    any |= gate.restart(now);
                    instance.gate_opened = now;
                }
            }
            if any {
                out.push(Action::RequestKeyframe(KeyframeReason::SourceChange));
            }
        }
        let mut request: Option<KeyframeReason> = None;
        let mut new_keyframe = false;
        for slot in &mut self.slots {
            let relay = slot.target.kind() == TemplateKind::Relay;
            let Some(instance) = slot.instance.as_mut() else { continue };
            if !instance.tracks.has(kind) {
                continue;
            }
            if kind == MediaKind::Video
                && let Some(gate) = instance.gate.as_mut()
            {
                let before = gate.keyframes_seen();
                let decision = gate.on_packet_seen(now, rewritten.timestamp, keyframe);
                new_keyframe |= gate.keyframes_seen() > before;
                if decision.request_keyframe {
                    let start = now.duration_since(instance.gate_opened) < START_REQUEST_WITHIN;
                    request = Some(if start { KeyframeReason::Start } else { KeyframeReason::Retry });
                }
                if decision.first_keyframe {
                    // Media flows again: a later failure starts the back-off afresh.
                    slot.failures = 0;
                    out.push(Action::FirstKeyframe {
                        output: instance.id,
                        waited: now.duration_since(instance.gate_opened),
                        since_start: now.duration_since(instance.started),
                    });
                    if relay {
                        out.push(Action::RelayState(Some(RelayState::Live)));
                    }
                }
                if !decision.pass {
                    continue;
                }
            }
            out.push(Action::Forward {
                output: instance.id,
                kind,
                sequence: rewritten.sequence_number,
                timestamp: rewritten.timestamp,
            });
        }
        if new_keyframe {
            out.push(Action::KeyframeSeen);
        }
        if let Some(reason) = request {
            out.push(Action::RequestKeyframe(reason));
        }
    }

    fn on_output_failed(&mut self, output: OutputId, error: String, retry: bool, now: Instant, out: &mut Vec<Action>) {
        let Some(index) = self.slots.iter().position(|s| s.instance.as_ref().is_some_and(|i| i.id == output)) else {
            return;
        };
        let tracks = self.slots[index].instance.as_ref().map(|i| i.tracks.clone()).unwrap_or_default();
        self.finish(index, EndReason::PipelineError, Some(error.clone()), out);
        let slot = &mut self.slots[index];
        if !retry {
            slot.unsupported = Some(tracks);
            out.push(Action::Unsupported { target: slot.target.clone(), error });
            return;
        }
        slot.failures += 1;
        slot.retry_at = Some(now + slot.backoff().delay(slot.failures));
        if slot.is_relay() {
            out.push(Action::RelayRestart);
            out.push(Action::RelayState(Some(RelayState::Restarting)));
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.assemble(now, out);
        let mut retry = false;
        for gate in self.slots.iter_mut().filter_map(|s| s.instance.as_mut()).filter_map(|i| i.gate.as_mut()) {
            retry |= gate.on_tick(now);
        }
        if retry {
            out.push(Action::RequestKeyframe(KeyframeReason::Retry));
        }
    }

    /// Make every slot's instance match the tracks wanted now.
    fn assemble(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(wanted) = self.wanted_tracks(now) else { return };
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            match &slot.instance {
                Some(instance) if instance.tracks == wanted => {}
                Some(_) => {
                    self.finish(index, EndReason::TracksChanged, None, out);
                    if !wanted.is_empty() {
                        self.start(index, wanted.clone(), now, out);
                    }
                }
                None => {
                    let retry_due = slot.retry_at.is_none_or(|t| now >= t);
                    let unsupported = slot.unsupported.as_ref() == Some(&wanted);
                    if retry_due && !unsupported && !wanted.is_empty() {
                        self.start(index, wanted.clone(), now, out);
                    }
                }
            }
        }
    }

    /// The tracks an output should have now (`None` while still assembling).
    fn wanted_tracks(&mut self, now: Instant) -> Option<Tracks> {
        let wait = self.config.track_wait;
        // An ended track that was not replaced in time is gone for good.
        for track in [&mut self.video, &mut self.audio] {
            if track.as_ref().and_then(|t| t.ended_at).is_some_and(|t| now.duration_since(t) >= wait) {
                *track = None;
            }
        }
        let first = self.first_track_at?;
        let present = |kind: &MediaKind| match kind {
            MediaKind::Video => self.video.is_some(),
            MediaKind::Audio => self.audio.is_some(),
        };
        let expected = &self.config.expected_kinds;
        let (complete, longest_wait) = if expected.is_empty() {
            (self.video.is_some() && self.audio.is_some(), wait)
        } else {
            (expected.iter().all(present), wait * ANNOUNCED_TRACK_WAIT_FACTOR)
        };
        if !self.assembled && !complete && now.duration_since(first) < longest_wait {
            return None;
        }
        // From now on a change of tracks is a change, not assembling.
        self.assembled = true;
        let flowing =
            |t: &Option<Track>| t.as_ref().is_some_and(|t| now.duration_since(t.last_packet) < FLOWING_WITHIN);
        let stalled =
            |t: &Option<Track>| t.as_ref().is_some_and(|t| now.duration_since(t.last_packet) >= STALLED_AFTER);
        let encoding = |t: &Option<Track>| t.as_ref().map(|t| t.encoding.clone());
        let video = if stalled(&self.video) && flowing(&self.audio) { None } else { encoding(&self.video) };
        let audio = if stalled(&self.audio) && flowing(&self.video) { None } else { encoding(&self.audio) };
        Some(Tracks { video, audio })
    }

    fn start(&mut self, index: usize, tracks: Tracks, now: Instant, out: &mut Vec<Action>) {
        let slot = &mut self.slots[index];
        slot.retry_at = None;
        let chosen = self.config.templates.choose(
            slot.target.kind(),
            tracks.video.as_deref(),
            tracks.audio.as_deref(),
            slot.target.template(),
        );
        let template = match chosen {
            Ok(template) => template.name.clone(),
            Err(e) => {
                out.push(Action::Unsupported { target: slot.target.clone(), error: e.to_string() });
                slot.unsupported = Some(tracks);
                return;
            }
        };
        slot.unsupported = None;
        self.next_output += 1;
        let id = OutputId(self.next_output);
        let gate = tracks.video.as_deref().map(|v| KeyframeGate::new(VideoCodec::from_encoding_name(v)));
        out.push(Action::StartOutput { output: id, target: slot.target.clone(), template, tracks: tracks.clone() });
        slot.instance = Some(Instance { id, tracks, gate, gate_opened: now, started: now });
    }

    fn finish(&mut self, index: usize, reason: EndReason, error: Option<String>, out: &mut Vec<Action>) {
        let slot = &mut self.slots[index];
        let Some(instance) = slot.instance.take() else { return };
        let notice = slot.notice(error.is_some());
        out.push(Action::Finish { output: instance.id, reason, error, notice });
    }
}

#[cfg(test)]
mod tests;
