//! The stream policy on simulated time: a [`Sim`] plays the driver (it
//! reports every `StartOutput` as started, unless told to fail it) and
//! feeds packets and ticks at chosen instants.

use std::path::PathBuf;

use super::*;

const TRACK_WAIT: Duration = Duration::from_secs(1);
const VIDEO_SSRC: u32 = 1111;
const AUDIO_SSRC: u32 = 2222;

fn record() -> Target {
    Target::Record { room_dir: PathBuf::from("/rec/room"), template: None }
}

fn relay() -> Target {
    Target::Relay { url: "rtmp://example/live/key".into(), template: None }
}

fn tracks(video: Option<&str>, audio: Option<&str>) -> Tracks {
    Tracks { video: video.map(str::to_string), audio: audio.map(str::to_string) }
}

struct Sim {
    policy: StreamPolicy,
    t0: Instant,
    now: Instant,
    /// Everything the policy asked for, with when.
    log: Vec<(Duration, Action)>,
    /// `StartOutput`s to report as failed (in order) instead of started.
    fail_next_starts: u32,
    seq: [u16; 2],
    ts: [u32; 2],
    ssrc: [u32; 2],
}

impl Sim {
    fn new(expected: &[MediaKind], targets: Vec<Target>) -> Sim {
        let config = PolicyConfig {
            templates: Arc::new(TemplateSet::load(None).expect("built-in templates")),
            track_wait: TRACK_WAIT,
            expected_kinds: expected.to_vec(),
        };
        let t0 = Instant::now();
        Sim {
            policy: StreamPolicy::new(config, targets),
            t0,
            now: t0,
            log: Vec::new(),
            fail_next_starts: 0,
            seq: [100, 5000],
            ts: [0, 0],
            ssrc: [VIDEO_SSRC, AUDIO_SSRC],
        }
    }

    fn at(&self) -> Duration {
        self.now.duration_since(self.t0)
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        let actions = self.policy.handle(input, self.now);
        let mut all = Vec::new();
        for action in actions {
            self.log.push((self.at(), action.clone()));
            all.push(action.clone());
            if let Action::StartOutput { output, .. } = action {
                let report = if self.fail_next_starts > 0 {
                    self.fail_next_starts -= 1;
                    Input::OutputFailed { output, error: "cannot create the file".into(), retry: true }
                } else {
                    Input::OutputStarted { output }
                };
                all.extend(self.feed(report));
            }
        }
        all
    }

    /// Let `ms` pass in 100 ms ticks.
    fn wait(&mut self, ms: u64) -> Vec<Action> {
        let mut all = Vec::new();
        let end = self.now + Duration::from_millis(ms);
        while self.now < end {
            self.now = (self.now + Duration::from_millis(100)).min(end);
            all.extend(self.feed(Input::Tick));
        }
        all
    }

    fn track(&mut self, kind: MediaKind, encoding: &str) -> Vec<Action> {
        self.feed(Input::TrackArrived { kind, encoding: encoding.into() })
    }

    fn index(kind: MediaKind) -> usize {
        match kind {
            MediaKind::Video => 0,
            MediaKind::Audio => 1,
        }
    }

    fn packet(&mut self, kind: MediaKind, keyframe: bool) -> Vec<Action> {
        let i = Self::index(kind);
        self.seq[i] = self.seq[i].wrapping_add(1);
        self.ts[i] = self.ts[i].wrapping_add(if kind == MediaKind::Video { 3000 } else { 960 });
        let packet = PacketSeen { kind, ssrc: self.ssrc[i], sequence: self.seq[i], timestamp: self.ts[i], keyframe };
        self.feed(Input::Packet(packet))
    }

    /// `ms` of media at 50 packets/s per kind listed, with a tick every 100 ms;
    /// video keyframes every `keyframe_every` video packets (0: only the first).
    fn flow(&mut self, kinds: &[MediaKind], ms: u64, keyframe_every: u32) -> Vec<Action> {
        let mut all = Vec::new();
        let mut n = 0u32;
        let end = self.now + Duration::from_millis(ms);
        let mut next_tick = self.now + Duration::from_millis(100);
        while self.now < end {
            self.now += Duration::from_millis(20);
            for &kind in kinds {
                let key =
                    kind == MediaKind::Video && (n == 0 || (keyframe_every > 0 && n.is_multiple_of(keyframe_every)));
                all.extend(self.packet(kind, key));
            }
            n += 1;
            if self.now >= next_tick {
                all.extend(self.feed(Input::Tick));
                next_tick += Duration::from_millis(100);
            }
        }
        all
    }
}

fn starts(actions: &[Action]) -> Vec<(OutputId, Tracks)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartOutput { output, tracks, .. } => Some((*output, tracks.clone())),
            _ => None,
        })
        .collect()
}

fn finishes(actions: &[Action]) -> Vec<(OutputId, EndReason, Notice)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Finish { output, reason, notice, .. } => Some((*output, *reason, *notice)),
            _ => None,
        })
        .collect()
}

fn forwarded(actions: &[Action], kind: MediaKind) -> Vec<(OutputId, u16)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Forward { output, kind: k, sequence, .. } if *k == kind => Some((*output, *sequence)),
            _ => None,
        })
        .collect()
}

fn keyframe_requests(actions: &[Action]) -> Vec<KeyframeReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestKeyframe(r) => Some(*r),
            _ => None,
        })
        .collect()
}

use MediaKind::{Audio, Video};

#[test]
fn audio_and_video_of_a_stream_share_one_file() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    assert!(starts(&sim.wait(500)).is_empty(), "waits for the announced video");
    sim.track(Video, "VP8");
    let actions = sim.wait(100);
    assert_eq!(starts(&actions), [(OutputId(1), tracks(Some("VP8"), Some("OPUS")))]);
    assert!(actions.contains(&Action::Notify { output: OutputId(1), notice: Notice::RecordingStarted }));
    let StartOutput { template, .. } =
        actions.iter().find(|a| matches!(a, Action::StartOutput { .. })).unwrap().clone()
    else {
        unreachable!()
    };
    assert_eq!(template, "record-webm");
}

use Action::StartOutput;

#[test]
fn a_stream_whose_kinds_are_unknown_waits_track_wait_for_the_other_track() {
    let mut sim = Sim::new(&[], vec![record()]);
    sim.track(Audio, "OPUS");
    assert!(starts(&sim.wait(900)).is_empty());
    let actions = sim.wait(100);
    assert_eq!(starts(&actions), [(OutputId(1), tracks(None, Some("OPUS")))]);
}

#[test]
fn audio_long_before_video_records_audio_then_a_file_with_both() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    // An announced track is waited for three times track_wait.
    assert!(starts(&sim.flow(&[Audio], 2900, 0)).is_empty());
    let actions = sim.flow(&[Audio], 200, 0);
    assert_eq!(starts(&actions), [(OutputId(1), tracks(None, Some("OPUS")))]);
    assert!(!forwarded(&sim.flow(&[Audio], 1000, 0), Audio).is_empty(), "audio flows into the file");
    // Video shows up 10 s later: the audio-only file ends, one with both continues.
    sim.flow(&[Audio], 6000, 0);
    sim.track(Video, "VP8");
    let actions = sim.flow(&[Audio, Video], 200, 0);
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::TracksChanged, Notice::RecordingFinished)]);
    assert_eq!(starts(&actions), [(OutputId(2), tracks(Some("VP8"), Some("OPUS")))]);
}

#[test]
fn video_waits_for_a_keyframe_and_asks_for_one_until_it_comes() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.wait(100);
    // 1.2 s of video without a keyframe: nothing written, a PLI at start and every 500 ms.
    let mut actions = Vec::new();
    for _ in 0..60 {
        sim.now += Duration::from_millis(20);
        actions.extend(sim.packet(Video, false));
        actions.extend(sim.packet(Audio, false));
        if sim.at().as_millis().is_multiple_of(100) {
            actions.extend(sim.feed(Input::Tick));
        }
    }
    assert!(forwarded(&actions, Video).is_empty(), "no video before the first keyframe");
    assert_eq!(forwarded(&actions, Audio).len(), 60, "audio is not held back");
    let requests = keyframe_requests(&actions);
    assert_eq!(requests[0], KeyframeReason::Start);
    assert_eq!(requests[1..], [KeyframeReason::Retry, KeyframeReason::Retry]);
    assert_eq!(sim.policy.keyframe_wait_since(), Some(sim.t0 + Duration::from_millis(100)));
    // The keyframe opens the gate: it and what follows are written.
    sim.now += Duration::from_millis(20);
    let actions = sim.packet(Video, true);
    assert_eq!(forwarded(&actions, Video).len(), 1);
    assert!(actions.contains(&Action::KeyframeSeen));
    let first = actions.iter().find_map(|a| match a {
        Action::FirstKeyframe { waited, .. } => Some(*waited),
        _ => None,
    });
    assert_eq!(first, Some(Duration::from_millis(1220)));
    assert_eq!(sim.policy.keyframe_wait_since(), None);
    sim.now += Duration::from_millis(20);
    assert_eq!(forwarded(&sim.packet(Video, false), Video).len(), 1);
}

#[test]
fn pipeline_keyframe_requests_are_coalesced() {
    let mut sim = Sim::new(&[Video], vec![record()]);
    sim.track(Video, "VP8");
    sim.flow(&[Video], 1000, 0);
    let output = OutputId(1);
    assert_eq!(keyframe_requests(&sim.feed(Input::KeyframeAsked { output })), [KeyframeReason::Pipeline]);
    sim.now += Duration::from_millis(100);
    assert!(keyframe_requests(&sim.feed(Input::KeyframeAsked { output })).is_empty(), "within 200 ms");
    sim.now += Duration::from_millis(150);
    assert_eq!(keyframe_requests(&sim.feed(Input::KeyframeAsked { output })), [KeyframeReason::Pipeline]);
    // A request naming an instance that is gone asks for nothing.
    sim.now += Duration::from_secs(1);
    assert!(sim.feed(Input::KeyframeAsked { output: OutputId(9) }).is_empty());
}

#[test]
fn a_track_removed_and_re_added_within_track_wait_continues_the_file() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    let before = sim.flow(&[Audio, Video], 1000, 25);
    let last_seq = forwarded(&before, Video).last().unwrap().1;
    sim.feed(Input::TrackEnded { kind: Video });
    sim.flow(&[Audio], 600, 0);
    // The same kind again, from a new source (new SSRC, fresh sequence numbers).
    sim.track(Video, "VP8");
    sim.ssrc[0] = 7777;
    sim.seq[0] = 40_000;
    sim.now += Duration::from_millis(20);
    let actions = sim.packet(Video, false);
    assert!(finishes(&actions).is_empty() && starts(&actions).is_empty());
    assert_eq!(keyframe_requests(&actions), [KeyframeReason::SourceChange]);
    assert!(forwarded(&actions, Video).is_empty(), "the new source waits for its keyframe");
    sim.now += Duration::from_millis(20);
    let actions = sim.packet(Video, true);
    // Sequence numbers continue the file's: the gap is only the dropped packet.
    assert_eq!(forwarded(&actions, Video), [(OutputId(1), last_seq.wrapping_add(2))]);
    let later = sim.flow(&[Audio, Video], 2000, 25);
    assert!(finishes(&later).is_empty(), "still the first file");
}

#[test]
fn a_removed_track_not_replaced_in_time_ends_the_file_and_the_rest_continues() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.flow(&[Audio, Video], 1000, 25);
    sim.feed(Input::TrackEnded { kind: Video });
    let ended = sim.at();
    let actions = sim.flow(&[Audio], 1500, 0);
    let (at, _) = sim.log.iter().find(|(_, a)| matches!(a, Action::Finish { .. })).unwrap();
    assert!(*at >= ended + TRACK_WAIT && *at < ended + TRACK_WAIT + Duration::from_millis(150), "{at:?}");
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::TracksChanged, Notice::RecordingFinished)]);
    assert_eq!(starts(&actions), [(OutputId(2), tracks(None, Some("OPUS")))]);
    // Late packets of the ended track are not the stream's any more.
    assert!(forwarded(&sim.packet(Video, true), Video).is_empty());
}

#[test]
fn a_silent_track_is_left_out_and_taken_back_when_it_sends_again() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.flow(&[Audio, Video], 1000, 25);
    // replaceTrack(null): the video track stays open and sends nothing.
    let silent_from = sim.at();
    let actions = sim.flow(&[Audio], 6000, 0);
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::TracksChanged, Notice::RecordingFinished)]);
    assert_eq!(starts(&actions), [(OutputId(2), tracks(None, Some("OPUS")))]);
    let (at, _) = sim.log.iter().find(|(_, a)| matches!(a, Action::Finish { .. })).unwrap();
    assert!(*at >= silent_from + STALLED_AFTER && *at <= silent_from + STALLED_AFTER + Duration::from_millis(200));
    // The video sends again: a new file takes it back in.
    let actions = sim.flow(&[Audio, Video], 300, 25);
    assert_eq!(finishes(&actions), [(OutputId(2), EndReason::TracksChanged, Notice::RecordingFinished)]);
    assert_eq!(starts(&actions), [(OutputId(3), tracks(Some("VP8"), Some("OPUS")))]);
}

#[test]
fn both_tracks_silent_is_a_pause_not_a_split() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.flow(&[Audio, Video], 1000, 25);
    assert!(finishes(&sim.wait(20_000)).is_empty(), "nothing flows: the file waits");
    assert!(finishes(&sim.flow(&[Audio, Video], 1000, 25)).is_empty());
}

#[test]
fn a_codec_change_starts_a_new_file() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.flow(&[Audio, Video], 1000, 25);
    sim.track(Video, "H264");
    let actions = sim.flow(&[Audio, Video], 200, 25);
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::TracksChanged, Notice::RecordingFinished)]);
    let started = actions.iter().find(|a| matches!(a, StartOutput { .. })).unwrap();
    let StartOutput { template, tracks: t, .. } = started else { unreachable!() };
    assert_eq!((template.as_str(), t), ("record-mkv", &tracks(Some("H264"), Some("OPUS"))));
}

#[test]
fn an_ssrc_change_on_the_same_track_closes_the_gate_and_keeps_numbering() {
    let mut sim = Sim::new(&[Video], vec![record()]);
    sim.track(Video, "VP8");
    let before = sim.flow(&[Video], 1000, 25);
    let last = forwarded(&before, Video).last().unwrap().1;
    sim.ssrc[0] = 4242;
    sim.seq[0] = 9;
    sim.now += Duration::from_millis(20);
    let actions = sim.packet(Video, false);
    assert_eq!(keyframe_requests(&actions), [KeyframeReason::SourceChange]);
    assert!(forwarded(&actions, Video).is_empty());
    assert!(sim.policy.keyframe_wait_since().is_some());
    sim.now += Duration::from_millis(20);
    assert_eq!(forwarded(&sim.packet(Video, true), Video), [(OutputId(1), last.wrapping_add(2))]);
}

#[test]
fn sequence_gaps_are_counted_as_loss() {
    let mut sim = Sim::new(&[Audio], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.flow(&[Audio], 1100, 0);
    sim.seq[1] = sim.seq[1].wrapping_add(3);
    let actions = sim.packet(Audio, false);
    assert!(actions.contains(&Action::Lost { kind: Audio, packets: 3 }), "{actions:?}");
}

#[test]
fn a_failed_recording_is_restarted_with_a_doubling_back_off_reset_by_media() {
    let mut sim = Sim::new(&[Video], vec![record()]);
    sim.track(Video, "VP8");
    sim.flow(&[Video], 500, 25);
    let fail = |sim: &mut Sim, output| {
        sim.feed(Input::OutputFailed { output: OutputId(output), error: "filesink: No space left".into(), retry: true })
    };
    let actions = fail(&mut sim, 1);
    let failed = Action::Finish {
        output: OutputId(1),
        reason: EndReason::PipelineError,
        error: Some("filesink: No space left".into()),
        notice: Notice::RecordingFailed,
    };
    assert_eq!(actions, [failed]);
    // 2 s, then 4 s, then 8 s between attempts; no keyframe came in between.
    for (output, wait) in [(2u64, 2000u64), (3, 4000), (4, 8000)] {
        let failed_at = sim.at();
        let actions = sim.flow(&[Video], wait + 100, 0);
        let (at, _) = sim.log.iter().rev().find(|(_, a)| matches!(a, StartOutput { .. })).unwrap();
        assert_eq!(starts(&actions).len(), 1);
        let late = *at - failed_at;
        assert!(late >= Duration::from_millis(wait) && late <= Duration::from_millis(wait + 100), "{late:?}");
        if output < 4 {
            fail(&mut sim, output);
        }
    }
    // Instance 4 got a keyframe: a failure now waits 2 s again.
    sim.flow(&[Video], 1000, 25);
    fail(&mut sim, 4);
    assert!(starts(&sim.flow(&[Video], 1900, 25)).is_empty());
    assert_eq!(starts(&sim.flow(&[Video], 200, 25)).len(), 1);
    // A late failure of a thrown-away instance touches nothing.
    assert!(fail(&mut sim, 2).is_empty());
}

#[test]
fn back_off_caps_at_30_s_for_files_and_10_s_for_relays() {
    assert_eq!(FILE_BACKOFF.delay(1), Duration::from_secs(2));
    assert_eq!(FILE_BACKOFF.delay(4), Duration::from_secs(16));
    assert_eq!(FILE_BACKOFF.delay(9), Duration::from_secs(30));
    assert_eq!(RELAY_BACKOFF.delay(1), Duration::from_secs(1));
    assert_eq!(RELAY_BACKOFF.delay(3), Duration::from_secs(3));
    assert_eq!(RELAY_BACKOFF.delay(9), Duration::from_secs(9));
    assert_eq!(RELAY_BACKOFF.delay(12), Duration::from_secs(10));
}

#[test]
fn a_file_that_cannot_be_created_is_retried_after_the_back_off() {
    let mut sim = Sim::new(&[Audio], vec![record()]);
    sim.fail_next_starts = 1;
    sim.track(Audio, "OPUS");
    // Every announced track is here: the first tick starts it, and it fails.
    let actions = sim.wait(100);
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::PipelineError, Notice::RecordingFailed)]);
    assert!(starts(&sim.flow(&[Audio], 1900, 0)).is_empty());
    let actions = sim.flow(&[Audio], 200, 0);
    assert_eq!(starts(&actions).len(), 1);
    assert!(actions.contains(&Action::Notify { output: OutputId(2), notice: Notice::RecordingStarted }));
}

#[test]
fn a_relay_goes_live_on_its_first_keyframe_and_restarts_after_a_failure() {
    let mut sim = Sim::new(&[Audio, Video], vec![relay()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    let actions = sim.wait(100);
    assert!(actions.contains(&Action::Notify { output: OutputId(1), notice: Notice::RelayStarted }));
    assert!(actions.contains(&Action::RelayState(Some(RelayState::Starting))));
    let actions = sim.flow(&[Audio, Video], 100, 25);
    assert!(actions.contains(&Action::RelayState(Some(RelayState::Live))));
    let actions =
        sim.feed(Input::OutputFailed { output: OutputId(1), error: "rtmp2sink: refused".into(), retry: true });
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::PipelineError, Notice::RelayFailed)]);
    assert!(actions.contains(&Action::RelayRestart));
    assert!(actions.contains(&Action::RelayState(Some(RelayState::Restarting))));
    assert!(starts(&sim.flow(&[Audio, Video], 900, 25)).is_empty());
    assert_eq!(starts(&sim.flow(&[Audio, Video], 200, 25)).len(), 1, "1 s for a relay");
}

#[test]
fn a_stream_no_template_takes_is_not_retried_until_its_codecs_change() {
    let mut sim = Sim::new(&[Audio], vec![record()]);
    sim.track(Audio, "PCMU");
    let actions = sim.flow(&[Audio], 1200, 0);
    assert!(starts(&actions).is_empty());
    assert_eq!(actions.iter().filter(|a| matches!(a, Action::Unsupported { .. })).count(), 1, "said once");
    assert!(sim.flow(&[Audio], 5000, 0).iter().all(|a| !matches!(a, Action::Unsupported { .. } | StartOutput { .. })));
    sim.track(Audio, "OPUS");
    assert_eq!(starts(&sim.flow(&[Audio], 200, 0)).len(), 1);
}

#[test]
fn a_template_that_rejects_the_tracks_is_not_retried() {
    let mut sim = Sim::new(&[Audio], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.flow(&[Audio], 1100, 0);
    let actions =
        sim.feed(Input::OutputFailed { output: OutputId(1), error: "template cannot take it".into(), retry: false });
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::PipelineError, Notice::RecordingFailed)]);
    assert!(starts(&sim.flow(&[Audio], 60_000, 0)).is_empty());
}

#[test]
fn stop_finishes_every_output_with_its_reason_and_then_nothing_happens() {
    let mut sim = Sim::new(&[Audio, Video], vec![record(), relay()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.flow(&[Audio, Video], 500, 25);
    let actions = sim.feed(Input::Stop(EndReason::PeerLeft));
    assert_eq!(
        finishes(&actions),
        [
            (OutputId(1), EndReason::PeerLeft, Notice::RecordingFinished),
            (OutputId(2), EndReason::PeerLeft, Notice::RelayStopped)
        ]
    );
    assert!(sim.flow(&[Audio, Video], 2000, 25).is_empty());
    assert_eq!(sim.policy.outputs().count(), 0);
}

#[test]
fn targets_added_and_removed_while_the_stream_runs() {
    let mut sim = Sim::new(&[Audio, Video], vec![]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    assert!(starts(&sim.flow(&[Audio, Video], 2000, 25)).is_empty(), "nothing asked yet");
    // Recording starts at once: the tracks are known.
    let actions = sim.feed(Input::TargetAdded(record()));
    assert_eq!(starts(&actions), [(OutputId(1), tracks(Some("VP8"), Some("OPUS")))]);
    assert!(sim.feed(Input::TargetAdded(record())).is_empty(), "the same target twice is one");
    sim.feed(Input::TargetAdded(relay()));
    sim.flow(&[Audio, Video], 500, 25);
    let actions = sim.feed(Input::TargetRemoved(relay(), EndReason::Stopped));
    assert_eq!(finishes(&actions), [(OutputId(2), EndReason::Stopped, Notice::RelayStopped)]);
    assert!(actions.contains(&Action::RelayState(None)));
    let actions = sim.feed(Input::TargetRemoved(record(), EndReason::SizeCap));
    assert_eq!(finishes(&actions), [(OutputId(1), EndReason::SizeCap, Notice::RecordingFinished)]);
    assert!(sim.flow(&[Audio, Video], 2000, 25).is_empty(), "no target, no output");
    assert_eq!(sim.policy.outputs().count(), 0);
}

#[test]
fn every_output_gets_the_packets_of_its_kinds_only_after_its_own_keyframe() {
    let mut sim = Sim::new(&[Audio, Video], vec![record()]);
    sim.track(Audio, "OPUS");
    sim.track(Video, "VP8");
    sim.flow(&[Audio, Video], 1000, 25);
    // A relay added mid-stream has its own gate: video waits for the next keyframe.
    sim.feed(Input::TargetAdded(relay()));
    sim.now += Duration::from_millis(20);
    let actions = sim.packet(Video, false);
    assert_eq!(forwarded(&actions, Video), [(OutputId(1), forwarded(&actions, Video)[0].1)]);
    assert_eq!(keyframe_requests(&actions), [KeyframeReason::Start]);
    let actions = sim.packet(Audio, false);
    assert_eq!(forwarded(&actions, Audio).iter().map(|f| f.0).collect::<Vec<_>>(), [OutputId(1), OutputId(2)]);
    sim.now += Duration::from_millis(20);
    let actions = sim.packet(Video, true);
    assert_eq!(forwarded(&actions, Video).iter().map(|f| f.0).collect::<Vec<_>>(), [OutputId(1), OutputId(2)]);
}
