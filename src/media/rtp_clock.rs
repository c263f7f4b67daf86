//! Presentation times for one input's RTP packets: each packet's RTP
//! timestamp mapped onto the pipeline's running time, as rtpjitterbuffer's
//! default ("slave") mode did before the pipelines lost their jitter buffers.
//!
//! The mapping is anchored at the first packet's arrival and follows the
//! RTP clock from there, so packets handed over in one batch (one arrival
//! time for all) still get the spacing their sender gave them. Every
//! [`WINDOW`] the mapping is moved so that the least-delayed packet of the
//! window lands on its arrival: that follows a sender clock that runs a
//! little fast or slow, and takes out the delay of the first packet (moving
//! earlier by at most [`MAX_EARLIER`] a window, so consecutive frames never
//! bunch up into the same instant). A jump
//! between the RTP clock and the arrivals of more than [`RESYNC`] (a sender
//! that restarted its timestamps) re-anchors at once. Times never go
//! backwards. Sans-IO.

use std::time::Duration;

/// How often the mapping is moved to the least-delayed packet.
pub const WINDOW: Duration = Duration::from_secs(2);
/// A disagreement between the RTP clock and the arrivals beyond this re-anchors.
pub const RESYNC: Duration = Duration::from_secs(1);
/// The most the mapping moves earlier per window (0.05 % of the time: five
/// times the drift of a poor clock, far below a frame's spacing).
pub const MAX_EARLIER: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct Anchor {
    /// Extended RTP timestamp of the anchor.
    rtp: i64,
    /// Running time it maps to, in nanoseconds.
    base_ns: i128,
}

/// One input's RTP-to-running-time mapping.
#[derive(Debug)]
pub struct RtpClock {
    clock_rate: i128,
    anchor: Option<Anchor>,
    /// The latest extended RTP timestamp (for unwrapping).
    last_rtp: i64,
    window_start: Duration,
    /// Least (arrival - mapped time) of the window, in nanoseconds.
    window_min_ns: Option<i128>,
    last_pts: Duration,
}

impl RtpClock {
    pub fn new(clock_rate: u32) -> RtpClock {
        RtpClock {
            clock_rate: clock_rate.max(1) as i128,
            anchor: None,
            last_rtp: 0,
            window_start: Duration::ZERO,
            window_min_ns: None,
            last_pts: Duration::ZERO,
        }
    }

    /// The presentation time of a packet with RTP timestamp `timestamp` that arrived at `arrival`.
    pub fn pts(&mut self, arrival: Duration, timestamp: u32) -> Duration {
        let arrival_ns = arrival.as_nanos() as i128;
        let rtp = match self.anchor {
            None => {
                self.window_start = arrival;
                timestamp as i64
            }
            Some(_) => self.last_rtp.wrapping_add((timestamp.wrapping_sub(self.last_rtp as u32) as i32) as i64),
        };
        self.last_rtp = rtp;
        let anchor = self.anchor.get_or_insert(Anchor { rtp, base_ns: arrival_ns });
        let mapped = |a: &Anchor| a.base_ns + (rtp - a.rtp) as i128 * 1_000_000_000 / self.clock_rate;
        let mut delay = arrival_ns - mapped(anchor);
        if delay.unsigned_abs() > RESYNC.as_nanos() {
            *anchor = Anchor { rtp, base_ns: arrival_ns };
            self.window_start = arrival;
            self.window_min_ns = None;
            delay = 0;
        }
        self.window_min_ns = Some(self.window_min_ns.map_or(delay, |m| m.min(delay)));
        let pts_ns = mapped(anchor);
        if arrival.saturating_sub(self.window_start) >= WINDOW {
            // Later at once (a gap in the file is harmless); earlier by at
            // most MAX_EARLIER per window, so frames never bunch up.
            let shift = self.window_min_ns.take().unwrap_or(0);
            anchor.base_ns += shift.max(-(MAX_EARLIER.as_nanos() as i128));
            self.window_start = arrival;
        }
        let pts = Duration::from_nanos(pts_ns.max(0) as u64).max(self.last_pts);
        self.last_pts = pts;
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_batch_keeps_the_spacing_of_its_rtp_timestamps() {
        let mut clock = RtpClock::new(48_000);
        // Five 20 ms Opus packets, all handed over at 100 ms.
        let pts: Vec<Duration> = (0..5).map(|i| clock.pts(ms(100), 1000 + i * 960)).collect();
        assert_eq!(pts, vec![ms(100), ms(120), ms(140), ms(160), ms(180)]);
    }

    #[test]
    fn timestamps_unwrap_past_u32() {
        let mut clock = RtpClock::new(90_000);
        assert_eq!(clock.pts(ms(0), u32::MAX - 2999), ms(0));
        // 3000 ticks later the timestamp has wrapped: 33.3 ms on.
        assert_eq!(clock.pts(ms(33), 0).as_micros(), 33_333);
    }

    #[test]
    fn the_delay_of_the_first_packet_is_taken_out_slowly_and_frames_keep_their_spacing() {
        let mut clock = RtpClock::new(90_000);
        // The first packet came 5 ms late, the others on time.
        assert_eq!(clock.pts(ms(5), 0), ms(5));
        let mut last = ms(5);
        for i in 1..=900u64 {
            // Frame i is due at 33.3 ms × i and arrives on time.
            let due = Duration::from_nanos(i * 1_000_000_000 / 30);
            let pts = clock.pts(due, (i * 3000) as u32);
            // Never closer than a frame's spacing less the most the mapping moves at once.
            assert!(pts - last >= Duration::from_nanos(33_333_333) - MAX_EARLIER, "frame {i}: {pts:?} after {last:?}");
            last = pts;
        }
        // 30 s in, the mapping follows the on-time packets.
        let due = Duration::from_nanos(900 * 1_000_000_000 / 30);
        assert!(last <= due + ms(1), "{last:?} vs {due:?}");
    }

    #[test]
    fn a_fast_sender_clock_is_followed() {
        // The sender's 90 kHz runs 0.02 % fast (twice a poor clock's drift).
        let mut clock = RtpClock::new(90_000);
        let mut worst = 0i128;
        for i in 0..9000u64 {
            let arrival = Duration::from_nanos(i * 33_326_667);
            let pts = clock.pts(arrival, (i * 3000) as u32);
            worst = worst.max((pts.as_nanos() as i128 - arrival.as_nanos() as i128).abs());
        }
        // Without following, the drift would be 60 ms after 300 s.
        assert!(worst <= ms(2).as_nanos() as i128, "{worst}");
    }

    #[test]
    fn a_slow_sender_clock_is_followed() {
        // The sender's 90 kHz runs 0.5 % slow: a second of its timestamps takes 1.005 s to arrive.
        let mut clock = RtpClock::new(90_000);
        let mut worst = 0i128;
        for i in 0..3000u64 {
            let arrival = Duration::from_nanos(i * 33_500_000);
            let pts = clock.pts(arrival, (i * 3000) as u32);
            worst = worst.max((arrival.as_nanos() as i128 - pts.as_nanos() as i128).abs());
        }
        // Without following, the drift would be 0.5 s after 100 s; with it,
        // at most two windows' worth (10 ms each at this drift, 50 times a
        // real clock's).
        assert!(worst <= ms(21).as_nanos() as i128, "{worst}");
    }

    #[test]
    fn a_timestamp_jump_re_anchors_and_time_never_goes_back() {
        let mut clock = RtpClock::new(48_000);
        assert_eq!(clock.pts(ms(0), 0), ms(0));
        assert_eq!(clock.pts(ms(20), 960), ms(20));
        // The sender restarted its timestamps.
        assert_eq!(clock.pts(ms(40), 5_000_000), ms(40));
        assert_eq!(clock.pts(ms(60), 5_000_960), ms(60));
        // A timestamp a little behind the last one still gets a later-or-equal time.
        assert_eq!(clock.pts(ms(61), 5_000_000), ms(60));
    }
}
