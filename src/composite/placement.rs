//! When each packet of a composite's input is shown: its presentation time
//! on the **room clock**, the one clock all of a composite's inputs share.
//! Sans-IO.
//!
//! The composite pipeline runs live on the gateway's clock; running time
//! zero is the gateway wall-clock instant `start_unix_ns`. A packet captured
//! at sender wall-clock time `S` (from its sender's RTCP reports,
//! [`crate::media::sender_clock`]) is shown at running time
//! `S − start + delay`: every participant's frame of the same instant is
//! composed into the same output frame (their lips match each other, not
//! only their own audio), `delay` after it was captured. `delay`
//! (`[composite] latency_ms`) must cover capture → encoder → network →
//! decoder; the pipeline's aggregators take what has arrived when a frame
//! is due.
//!
//! An input placed by its reports alone from its first packet keeps exactly
//! that. One that starts before its first report starts on arrival
//! (`arrival + delay`) and is moved onto its sender time without a jump, at
//! most 5 % of the media time ([`crate::media::sync_clock`], which also
//! keeps times from going backwards). A packet that would arrive too late
//! for its frame — a sender whose path is slower than `delay`, or whose
//! clock is off — is not dropped: that input's *lag* grows at once to put it
//! [`LATE_MARGIN`] before it is due (one step, counted), so the participant
//! is shown a little late rather than not at all.

use std::time::Duration;

use crate::media::sync_clock::{FileClock, InputClock};

/// How early a packet must be pushed before it is due, at least (decoding and the queue).
pub const LATE_MARGIN: Duration = Duration::from_millis(40);

/// The composite's clock: shared origin of every input.
#[derive(Debug)]
pub struct RoomClock {
    file: FileClock,
    delay: Duration,
    t0_unix_ns: i128,
}

impl RoomClock {
    /// A composite whose running time zero was the gateway wall-clock time
    /// `start_unix_ns`, showing what was captured `delay` earlier.
    pub fn new(start_unix_ns: i128, delay: Duration) -> RoomClock {
        let t0_unix_ns = start_unix_ns - delay.as_nanos() as i128;
        let mut file = FileClock::default();
        file.set_sender_origin(t0_unix_ns);
        RoomClock { file, delay, t0_unix_ns }
    }

    /// The wall-clock time (Unix ms) of presentation time zero: what the
    /// output shows at `t` was captured at `t0 + t`.
    pub fn t0_unix_ms(&self) -> f64 {
        self.t0_unix_ns as f64 / 1e6
    }

    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// One input's presentation times.
#[derive(Debug)]
pub struct InputPlacement {
    clock: InputClock,
    /// Whether a packet was placed without a sender time (then later ones are slewed, never placed).
    started_on_arrival: bool,
    lag: Duration,
    lag_steps: u32,
}

impl InputPlacement {
    pub fn new(clock_rate: u32) -> InputPlacement {
        InputPlacement { clock: InputClock::new(clock_rate), started_on_arrival: false, lag: Duration::ZERO, lag_steps: 0 }
    }

    /// The running time to show a packet at: it arrived at running time
    /// `arrival`, with RTP timestamp `timestamp`, captured at `sender_ns`
    /// (Unix ns on its sender's clock) if a report says so.
    pub fn pts(&mut self, room: &mut RoomClock, arrival: Duration, timestamp: u32, sender_ns: Option<i128>) -> Duration {
        let shifted_arrival = arrival + room.delay;
        let pts = match sender_ns {
            Some(sender) if !self.started_on_arrival => {
                self.clock.pts_placed(&mut room.file, shifted_arrival, timestamp, sender)
            }
            _ => {
                self.started_on_arrival |= sender_ns.is_none() && !self.clock.on_sender_clock();
                self.clock.pts(&mut room.file, shifted_arrival, timestamp, sender_ns)
            }
        };
        let due = arrival + LATE_MARGIN;
        if pts + self.lag < due {
            self.lag = due - pts;
            self.lag_steps += 1;
        }
        pts + self.lag
    }

    /// How late this input is shown against the room clock, and how many times that grew.
    pub fn lag(&self) -> (Duration, u32) {
        (self.lag, self.lag_steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;
    /// Gateway wall clock of the composite's running time zero.
    const START: i128 = 1_795_702_503_000 * MS;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn inputs_captured_at_the_same_instant_are_shown_at_the_same_time() {
        let mut room = RoomClock::new(START, ms(300));
        let mut alice = InputPlacement::new(48_000);
        let mut bob = InputPlacement::new(90_000);
        // Both capture at START + 1 s; alice's packet arrives 40 ms later, bob's 150 ms.
        let captured = START + 1_000 * MS;
        let a = alice.pts(&mut room, ms(1_040), 123_456, Some(captured));
        let b = bob.pts(&mut room, ms(1_150), 9_999, Some(captured));
        assert_eq!(a, ms(1_300));
        assert_eq!(b, ms(1_300));
        assert_eq!(room.t0_unix_ms(), (START - 300 * MS) as f64 / 1e6);
        // 20 ms later on alice's RTP clock, 20 ms later on screen.
        assert_eq!(alice.pts(&mut room, ms(1_060), 123_456 + 960, Some(captured + 20 * MS)), ms(1_320));
        assert_eq!(alice.lag(), (Duration::ZERO, 0));
    }

    #[test]
    fn an_input_slower_than_the_delay_is_shown_late_not_dropped() {
        let mut room = RoomClock::new(START, ms(200));
        let mut slow = InputPlacement::new(48_000);
        // Captured at 1 s, arrives 400 ms later: due at 1.2 s, which has passed.
        let pts = slow.pts(&mut room, ms(1_400), 0, Some(START + 1_000 * MS));
        assert_eq!(pts, ms(1_400) + LATE_MARGIN);
        let (lag, steps) = slow.lag();
        assert_eq!((lag, steps), (ms(200) + LATE_MARGIN, 1));
        // The next packets keep the lag: no further steps while the path is steady.
        for i in 1..50u64 {
            let pts = slow.pts(&mut room, ms(1_400 + i * 20), (i * 960) as u32, Some(START + (1_000 + i as i128 * 20) * MS));
            assert_eq!(pts, ms(1_400 + i * 20) + LATE_MARGIN);
        }
        assert_eq!(slow.lag().1, 1);
    }

    #[test]
    fn an_input_before_its_first_report_starts_on_arrival_and_moves_without_a_jump() {
        let mut room = RoomClock::new(START, ms(300));
        let mut input = InputPlacement::new(48_000);
        let mut last = Duration::ZERO;
        // Captured at 2 s + i·20 ms, arriving 100 ms later; reports from packet 10 on.
        for i in 0..400u64 {
            let captured = START + (2_000 + i as i128 * 20) * MS;
            let sender = (i >= 10).then_some(captured);
            let pts = input.pts(&mut room, ms(2_100 + i * 20), (i * 960) as u32, sender);
            if i > 0 {
                let step = pts - last;
                assert!(step >= ms(18) && step <= ms(20), "packet {i}: step {step:?}");
            }
            last = pts;
        }
        // 100 ms worked off at 5 %: after 2 s of media it is on the sender time (2 s + 399·20 ms + 300 ms).
        assert_eq!(last, ms(2_000 + 399 * 20 + 300));
    }
}
