//! Presentation times of one output's inputs on their sender's wall clock,
//! so audio and video of a file are placed by when they were captured (the
//! RTCP sender reports, [`crate::media::sender_clock`]) rather than by when
//! they arrived, and the file's time zero is a known wall-clock instant.
//! Sans-IO.
//!
//! Each input starts on arrival times ([`RtpClock`]). The first packet that
//! comes with a sender time fixes the file's origin — the sender time of
//! presentation time zero — so that this packet keeps the time it would have
//! had: no jump. From then on that input's times are its sender times less
//! the origin. Any input (or report) that then disagrees with where the file
//! had it — the other track, whose arrival skew was the network's; a new
//! report; a new source — does not jump either: the difference becomes a
//! *residual* added to its times and worked off at most [`SLEW`] of the
//! media time (5 %: 50 ms per second, so the usual tens of ms of A/V skew
//! are gone within a second; 20 ms audio frames come 19 ms apart meanwhile,
//! neither a gap nor an overlap a player notices). Packets without a sender
//! time after that (a new source before its first report) continue along
//! their RTP timestamps. Times never go backwards.
//!
//! A file whose senders never report stays on arrival times; its origin is
//! then the gateway's clock at presentation time zero.
//!
//! **The start of a recording.** Working a skew off takes time (140 ms of a
//! Chrome camera's extra encoder latency: 2.8 s), and the first seconds of a
//! recording would be out of sync by it. So a recording holds its first
//! packets back (up to [`crate::media::output::Output::with_sync_hold`]) until
//! every input has a sender time: then [`backfill`] gives the held packets
//! before an input's first report their sender times along their RTP
//! timestamps, [`origin_for`] picks the origin that puts the most delayed
//! input's first packet at its arrival (no time is negative), and
//! [`InputClock::pts_placed`] places every packet by its sender time from the
//! first frame on — no residual to work off. An input whose reports do not
//! come within the hold starts on arrival times as above.

use std::time::Duration;

use crate::media::clock_status::ClockSource;
use crate::media::rtp_clock::RtpClock;

/// The most of the media time a residual is worked off by (parts per million).
pub const SLEW_PPM: i128 = 50_000;

/// One output's origin on the wall clock, shared by its inputs.
#[derive(Debug, Default)]
pub struct FileClock {
    /// Sender wall-clock time (Unix ns) of presentation time zero.
    sender_origin_ns: Option<i128>,
    /// Gateway wall-clock time (Unix ns) of presentation time zero.
    gateway_origin_ns: Option<i128>,
}

impl FileClock {
    /// Fix the sender time of presentation time zero (once; later calls change nothing).
    pub fn set_sender_origin(&mut self, origin_ns: i128) {
        self.sender_origin_ns.get_or_insert(origin_ns);
    }

    pub fn has_sender_origin(&self) -> bool {
        self.sender_origin_ns.is_some()
    }

    /// Whether [`FileClock::note_gateway_time`] is still wanted.
    pub fn needs_gateway_time(&self) -> bool {
        self.gateway_origin_ns.is_none()
    }

    /// Tell the clock the gateway's wall-clock time at a running time (the first call counts).
    pub fn note_gateway_time(&mut self, unix_ns: i128, running_time: Duration) {
        self.gateway_origin_ns.get_or_insert(unix_ns - running_time.as_nanos() as i128);
    }

    /// The wall-clock time (Unix ms) of presentation time zero and where it comes from.
    pub fn t0_unix_ms(&self) -> Option<(f64, ClockSource)> {
        match (self.sender_origin_ns, self.gateway_origin_ns) {
            (Some(ns), _) => Some((ns as f64 / 1e6, ClockSource::SenderReports)),
            (None, Some(ns)) => Some((ns as f64 / 1e6, ClockSource::Arrival)),
            (None, None) => None,
        }
    }
}

#[derive(Debug)]
struct Synced {
    /// Extended RTP timestamp and time (ns, before the residual) of the last packet.
    last_rtp: i64,
    last_target_ns: i128,
    residual_ns: i128,
    last_out_ns: i128,
}

/// One input's presentation times.
#[derive(Debug)]
pub struct InputClock {
    clock_rate: i128,
    arrival: RtpClock,
    synced: Option<Synced>,
}

impl InputClock {
    pub fn new(clock_rate: u32) -> InputClock {
        InputClock { clock_rate: clock_rate.max(1) as i128, arrival: RtpClock::new(clock_rate), synced: None }
    }

    /// Whether this input's times come from its sender's clock yet.
    pub fn on_sender_clock(&self) -> bool {
        self.synced.is_some()
    }

    /// The presentation time of a packet placed by its sender time alone
    /// (the file's origin already fixed, see [`origin_for`]); an input not
    /// yet on the sender clock starts on it here with nothing to work off.
    /// Without an origin it is [`InputClock::pts`].
    pub fn pts_placed(&mut self, file: &mut FileClock, arrival: Duration, timestamp: u32, sender_ns: i128) -> Duration {
        let Some(origin) = file.sender_origin_ns else { return self.pts(file, arrival, timestamp, Some(sender_ns)) };
        if self.synced.is_none() {
            let target = sender_ns - origin;
            self.synced =
                Some(Synced { last_rtp: timestamp as i64, last_target_ns: target, residual_ns: 0, last_out_ns: 0 });
        }
        self.pts(file, arrival, timestamp, Some(sender_ns))
    }

    /// The presentation time of a packet with (renumbered) RTP timestamp
    /// `timestamp` that arrived at running time `arrival`, captured at
    /// `sender_ns` on its sender's wall clock if a report says so.
    pub fn pts(
        &mut self,
        file: &mut FileClock,
        arrival: Duration,
        timestamp: u32,
        sender_ns: Option<i128>,
    ) -> Duration {
        let Some(synced) = self.synced.as_mut() else {
            let on_arrival = self.arrival.pts(arrival, timestamp);
            let Some(sender_ns) = sender_ns else { return on_arrival };
            // The first sender time: this packet keeps its time.
            let on_arrival_ns = on_arrival.as_nanos() as i128;
            let origin = *file.sender_origin_ns.get_or_insert(sender_ns - on_arrival_ns);
            let target = sender_ns - origin;
            self.synced = Some(Synced {
                last_rtp: timestamp as i64,
                last_target_ns: target,
                residual_ns: on_arrival_ns - target,
                last_out_ns: on_arrival_ns,
            });
            return on_arrival;
        };
        let rtp = synced.last_rtp.wrapping_add(timestamp.wrapping_sub(synced.last_rtp as u32) as i32 as i64);
        let elapsed_ns = ((rtp - synced.last_rtp).max(0) as i128) * 1_000_000_000 / self.clock_rate;
        // Where the RTP timestamps alone put it, and where the sender's report does.
        let along_rtp = synced.last_target_ns + (rtp - synced.last_rtp) as i128 * 1_000_000_000 / self.clock_rate;
        let target = match (sender_ns, file.sender_origin_ns) {
            (Some(ns), Some(origin)) => {
                // Whatever they disagree by is taken up by the residual, not a jump.
                synced.residual_ns += along_rtp - (ns - origin);
                ns - origin
            }
            _ => along_rtp,
        };
        let step = elapsed_ns * SLEW_PPM / 1_000_000;
        synced.residual_ns -= synced.residual_ns.clamp(-step, step);
        synced.last_rtp = rtp;
        synced.last_target_ns = target;
        let out = (target + synced.residual_ns).max(synced.last_out_ns).max(0);
        synced.last_out_ns = out;
        Duration::from_nanos(out as u64)
    }
}

/// Give the packets of one input before its first sender time theirs,
/// along their RTP timestamps from that first one: `held` is `(RTP
/// timestamp, sender time)` in sequence order. Nothing changes without any
/// sender time.
pub fn backfill(held: &mut [(u32, Option<i128>)], clock_rate: u32) {
    let Some(first) = held.iter().position(|(_, sender)| sender.is_some()) else { return };
    let (ts, sender) = (held[first].0, held[first].1.expect("found above"));
    for packet in &mut held[..first] {
        let ticks = ts.wrapping_sub(packet.0) as i32 as i128;
        packet.1 = Some(sender - ticks * 1_000_000_000 / clock_rate.max(1) as i128);
    }
}

/// The file's origin from each input's first packet, `(arrival running
/// time, sender time)`: the most delayed input's first packet keeps its
/// arrival time, the others are placed after theirs (so no time is negative).
pub fn origin_for(firsts: &[(Duration, i128)]) -> Option<i128> {
    firsts.iter().map(|(arrival, sender)| sender - arrival.as_nanos() as i128).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;
    /// Sender wall clock (Unix ns) of the tests' capture time zero.
    const CAPTURE0: i128 = 1_795_702_503_000 * MS;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ms_of(d: Duration) -> f64 {
        d.as_nanos() as f64 / 1e6
    }

    /// 20 ms Opus packets captured at `i * 20 ms`, arriving `delay` ms later.
    fn audio(i: u64) -> (u32, i128) {
        ((i * 960) as u32, CAPTURE0 + (i as i128) * 20 * MS)
    }

    #[test]
    fn without_reports_the_file_stays_on_arrival_times_on_the_gateway_clock() {
        let mut file = FileClock::default();
        let mut input = InputClock::new(48_000);
        file.note_gateway_time(5_000 * MS, ms(100));
        for i in 0..50u64 {
            let (ts, _) = audio(i);
            let pts = input.pts(&mut file, ms(100 + i * 20), ts, None);
            assert_eq!(pts, ms(100 + i * 20));
        }
        assert_eq!(file.t0_unix_ms(), Some((4_900.0, ClockSource::Arrival)));
        assert!(!input.on_sender_clock());
    }

    #[test]
    fn the_first_sender_time_fixes_the_origin_without_a_jump() {
        let mut file = FileClock::default();
        let mut input = InputClock::new(48_000);
        // Packets arrive 30 ms after capture; the file starts at running time 200 ms.
        let mut last = Duration::ZERO;
        for i in 0..100u64 {
            let (ts, captured) = audio(i);
            let sender = (i >= 10).then_some(captured);
            let pts = input.pts(&mut file, ms(200 + i * 20), ts, sender);
            if i > 0 {
                assert_eq!(pts - last, ms(20), "packet {i}: no jump, no gap");
            }
            last = pts;
        }
        // Packet 10 (captured at CAPTURE0 + 200 ms) kept its arrival time 400 ms.
        let (t0, source) = file.t0_unix_ms().unwrap();
        assert_eq!(source, ClockSource::SenderReports);
        assert!((t0 - (CAPTURE0 + 200 * MS - 400 * MS) as f64 / 1e6).abs() < 1e-6, "{t0}");
    }

    /// Audio and video captured together; video arrives 60 ms later than
    /// audio (a slow encoder or path); audio reports first.
    #[test]
    fn a_second_track_that_arrived_skewed_is_moved_onto_the_sender_clock_within_a_second() {
        let mut file = FileClock::default();
        let mut audio_in = InputClock::new(48_000);
        let mut video_in = InputClock::new(90_000);
        let mut worst_spacing = (f64::MAX, 0f64);
        let mut last_video: Option<Duration> = None;
        for step in 0..300u64 {
            // Every 20 ms of capture time: an audio packet; every 40 ms: a video frame.
            let t = step * 20;
            let captured = CAPTURE0 + t as i128 * MS;
            let audio_pts = audio_in.pts(&mut file, ms(10 + t), (step * 960) as u32, Some(captured));
            // Audio is on the sender clock from its first packet: pts = capture time less the origin.
            assert_eq!(audio_pts, ms(10 + t));
            if step % 2 == 0 {
                // Video reports from the start too, but arrived 60 ms late
                // before its first report (step 20, i.e. 400 ms in).
                let sender = (step >= 20).then_some(captured);
                let pts = video_in.pts(&mut file, ms(70 + t), (step * 1800) as u32, sender);
                if let Some(prev) = last_video {
                    let spacing = ms_of(pts - prev);
                    worst_spacing = (worst_spacing.0.min(spacing), worst_spacing.1.max(spacing));
                }
                last_video = Some(pts);
                let av_offset = ms_of(pts) - ms_of(audio_pts);
                if t >= 400 + 1300 {
                    // 60 ms at 5 % of 40 ms per frame: gone 1.2 s after the report.
                    assert!(av_offset.abs() < 0.01, "at {t} ms the video is {av_offset} ms off");
                }
            }
        }
        // While the skew was worked off, frames came 38–40 ms apart: no jump, no gap.
        assert!(worst_spacing.0 >= 37.99 && worst_spacing.1 <= 40.01, "{worst_spacing:?}");
    }

    #[test]
    fn a_new_report_that_moves_the_mapping_is_absorbed_slowly() {
        let mut file = FileClock::default();
        let mut input = InputClock::new(90_000);
        let mut last = Duration::ZERO;
        for i in 0..200u64 {
            let captured = CAPTURE0 + i as i128 * 40 * MS;
            // From frame 100 on, the sender's reports put every frame 20 ms later.
            let reported = if i < 100 { captured } else { captured + 20 * MS };
            let pts = input.pts(&mut file, ms(i * 40), (i * 3600) as u32, Some(reported));
            if i > 0 {
                let spacing = ms_of(pts - last);
                assert!((38.0..=42.0).contains(&spacing), "frame {i}: {spacing} ms after the last");
            }
            last = pts;
        }
        // 20 ms at 2 ms a frame: taken up within ten frames.
        assert_eq!(last, ms(199 * 40 + 20));
    }

    #[test]
    fn packets_of_a_new_source_without_a_report_follow_their_timestamps() {
        let mut file = FileClock::default();
        let mut input = InputClock::new(90_000);
        for i in 0..10u64 {
            input.pts(&mut file, ms(i * 40), (i * 3600) as u32, Some(CAPTURE0 + i as i128 * 40 * MS));
        }
        // No report for the next source: its (renumbered) timestamps carry on.
        let pts = input.pts(&mut file, ms(500), 10 * 3600, None);
        assert_eq!(pts, ms(400));
        let pts = input.pts(&mut file, ms(540), 11 * 3600, None);
        assert_eq!(pts, ms(440));
    }

    #[test]
    fn held_packets_before_the_first_report_get_sender_times_along_their_timestamps() {
        let mut held =
            vec![(0u32, None), (960, None), (1920, Some(CAPTURE0 + 40 * MS)), (2880, Some(CAPTURE0 + 60 * MS))];
        backfill(&mut held, 48_000);
        assert_eq!(
            held.iter().map(|p| p.1.unwrap()).collect::<Vec<_>>(),
            vec![CAPTURE0, CAPTURE0 + 20 * MS, CAPTURE0 + 40 * MS, CAPTURE0 + 60 * MS]
        );
        let mut none = vec![(0u32, None), (960, None)];
        backfill(&mut none, 48_000);
        assert!(none.iter().all(|p| p.1.is_none()));
    }

    /// Audio and video captured together, video arriving 140 ms later (a
    /// camera's encoder): held until both report, placed in sync from the
    /// first frame, the later input at its arrival.
    #[test]
    fn a_held_start_is_in_sync_from_the_first_frame() {
        let mut file = FileClock::default();
        let mut audio_in = InputClock::new(48_000);
        let mut video_in = InputClock::new(90_000);
        let origin = origin_for(&[(ms(20), CAPTURE0), (ms(160), CAPTURE0)]).unwrap();
        file.set_sender_origin(origin);
        for step in 0..100u64 {
            let t = step * 20;
            let captured = CAPTURE0 + t as i128 * MS;
            let a = audio_in.pts_placed(&mut file, ms(20 + t), (step * 960) as u32, captured);
            let v = video_in.pts_placed(&mut file, ms(160 + t), (step * 1800) as u32, captured);
            assert_eq!(a, v, "step {step}: same capture, same time");
            assert_eq!(v, ms(160 + t), "the most delayed input keeps its arrival times");
        }
        assert_eq!(file.t0_unix_ms().unwrap().1, ClockSource::SenderReports);
    }

    #[test]
    fn times_never_go_backwards() {
        let mut file = FileClock::default();
        let mut input = InputClock::new(48_000);
        input.pts(&mut file, ms(0), 0, Some(CAPTURE0));
        let a = input.pts(&mut file, ms(20), 960, Some(CAPTURE0 + 20 * MS));
        // A report that puts the next packet 500 ms earlier.
        let b = input.pts(&mut file, ms(40), 1920, Some(CAPTURE0 - 460 * MS));
        assert!(b >= a, "{b:?} < {a:?}");
    }
}
