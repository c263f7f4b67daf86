//! One continuous RTP stream out of a track whose source may change.
//!
//! A browser's `replaceTrack`, or a track removed and added again, starts a
//! new SSRC with fresh random sequence numbers and timestamps. A jitter
//! buffer fed that unchanged sees a huge jump and drops or resets. The
//! [`Continuity`] rewriter keeps one SSRC, one payload type and contiguous
//! sequence numbers, and moves the new source's timestamps so they continue
//! from the old ones after the wall-clock gap between them. Sans-IO.

use std::time::Instant;

/// What to write instead of the packet's own header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub sequence_number: u16,
    pub timestamp: u32,
    /// This packet starts a new source (not the first one).
    pub new_source: bool,
}

#[derive(Debug)]
struct Source {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// The newest input sequence number of this source.
    last_in_seq: u16,
}

/// A sequence-number jump larger than this on one SSRC is a restarted
/// sender (new encoder, same SSRC), not loss or reordering.
const RESTART_JUMP: i16 = 3000;

/// Per-output rewriter state.
#[derive(Debug)]
pub struct Continuity {
    clock_rate: u32,
    source: Option<Source>,
    /// Highest output sequence number / its timestamp / when it arrived.
    last_seq: u16,
    last_ts: u32,
    last_arrival: Option<Instant>,
}

impl Continuity {
    pub fn new(clock_rate: u32) -> Continuity {
        Continuity { clock_rate: clock_rate.max(1), source: None, last_seq: 0, last_ts: 0, last_arrival: None }
    }

    pub fn rewrite(&mut self, now: Instant, ssrc: u32, sequence_number: u16, timestamp: u32) -> Rewritten {
        let mut new_source = false;
        match &self.source {
            Some(source)
                if source.ssrc == ssrc
                    && (sequence_number.wrapping_sub(source.last_in_seq) as i16).abs() <= RESTART_JUMP => {}
            Some(_) => {
                new_source = true;
                self.source = Some(self.continue_from(now, ssrc, sequence_number, timestamp));
            }
            None => self.source = Some(Source { ssrc, seq_offset: 0, ts_offset: 0, last_in_seq: sequence_number }),
        }
        let source = self.source.as_mut().expect("set above");
        if (sequence_number.wrapping_sub(source.last_in_seq) as i16) > 0 {
            source.last_in_seq = sequence_number;
        }
        let source = &*source;
        let out_seq = sequence_number.wrapping_add(source.seq_offset);
        let out_ts = timestamp.wrapping_add(source.ts_offset);
        // Track the newest packet (reordered older ones do not move it back).
        if self.last_arrival.is_none() || new_source || (out_seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
            self.last_arrival = Some(now);
        }
        Rewritten { sequence_number: out_seq, timestamp: out_ts, new_source }
    }

    fn continue_from(&self, now: Instant, ssrc: u32, sequence_number: u16, timestamp: u32) -> Source {
        let elapsed = self.last_arrival.map(|t| now.saturating_duration_since(t)).unwrap_or_default();
        // At least one tick later, so the new first frame never shares the old last frame's time.
        let ticks = ((elapsed.as_secs_f64() * self.clock_rate as f64) as u64).max(1) as u32;
        let next_seq = self.last_seq.wrapping_add(1);
        let next_ts = self.last_ts.wrapping_add(ticks);
        Source {
            ssrc,
            seq_offset: next_seq.wrapping_sub(sequence_number),
            ts_offset: next_ts.wrapping_sub(timestamp),
            last_in_seq: sequence_number,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_source_passes_unchanged_including_wraparound() {
        let t0 = Instant::now();
        let mut c = Continuity::new(90_000);
        let r = c.rewrite(t0, 7, 65_535, u32::MAX - 10);
        assert_eq!(r, Rewritten { sequence_number: 65_535, timestamp: u32::MAX - 10, new_source: false });
        let r = c.rewrite(t0, 7, 0, 2990);
        assert_eq!((r.sequence_number, r.timestamp, r.new_source), (0, 2990, false));
    }

    #[test]
    fn a_new_ssrc_continues_after_the_wall_clock_gap() {
        let t0 = Instant::now();
        let mut c = Continuity::new(90_000);
        c.rewrite(t0, 1, 100, 1_000_000);
        c.rewrite(t0 + Duration::from_millis(33), 1, 101, 1_003_000);
        // Half a second later a new source with random bases.
        let r = c.rewrite(t0 + Duration::from_millis(533), 2, 40_000, 77);
        assert!(r.new_source);
        assert_eq!(r.sequence_number, 102);
        assert_eq!(r.timestamp, 1_003_000 + 45_000);
        let r = c.rewrite(t0 + Duration::from_millis(566), 2, 40_001, 77 + 3000);
        assert_eq!((r.sequence_number, r.timestamp, r.new_source), (103, 1_051_000, false));
    }

    #[test]
    fn a_restarted_sender_on_the_same_ssrc_is_a_new_source() {
        let t0 = Instant::now();
        let mut c = Continuity::new(90_000);
        c.rewrite(t0, 1, 100, 5000);
        let r = c.rewrite(t0 + Duration::from_millis(100), 1, 30_000, 123);
        assert!(r.new_source);
        assert_eq!((r.sequence_number, r.timestamp), (101, 5000 + 9000));
        // Ordinary reordering and small gaps are not.
        assert!(!c.rewrite(t0, 1, 29_990, 100).new_source);
        assert!(!c.rewrite(t0, 1, 30_500, 100).new_source);
    }

    #[test]
    fn reordered_packets_do_not_move_the_reference_back() {
        let t0 = Instant::now();
        let mut c = Continuity::new(48_000);
        c.rewrite(t0, 1, 10, 960);
        c.rewrite(t0, 1, 12, 2880);
        c.rewrite(t0, 1, 11, 1920); // late
        let r = c.rewrite(t0, 9, 500, 5);
        assert_eq!(r.sequence_number, 13);
        assert_eq!(r.timestamp, 2881);
    }
}

/// Counts packets missing from a source's sequence (gaps in sequence
/// numbers; reordered packets are not counted, a new SSRC starts afresh).
#[derive(Debug, Default)]
pub struct LossCounter {
    last: Option<(u32, u16)>,
}

/// Gaps larger than this are a restart, not loss.
const MAX_GAP: u16 = 1000;

impl LossCounter {
    /// Returns how many packets went missing just before this one.
    pub fn on_packet(&mut self, ssrc: u32, sequence_number: u16) -> u64 {
        let lost = match self.last {
            Some((last_ssrc, last_seq)) if last_ssrc == ssrc => {
                let ahead = sequence_number.wrapping_sub(last_seq);
                if ahead == 0 || ahead > u16::MAX / 2 {
                    return 0; // duplicate or late: keep the newest as reference
                }
                if ahead <= MAX_GAP { (ahead - 1) as u64 } else { 0 }
            }
            _ => 0,
        };
        self.last = Some((ssrc, sequence_number));
        lost
    }
}

#[cfg(test)]
mod loss_tests {
    use super::LossCounter;

    #[test]
    fn gaps_count_as_loss_but_reordering_and_new_sources_do_not() {
        let mut c = LossCounter::default();
        assert_eq!(c.on_packet(1, 65_534), 0);
        assert_eq!(c.on_packet(1, 65_535), 0);
        assert_eq!(c.on_packet(1, 2), 2); // 0 and 1 missing, across the wrap
        assert_eq!(c.on_packet(1, 1), 0); // late
        assert_eq!(c.on_packet(1, 3), 0);
        assert_eq!(c.on_packet(2, 900), 0); // new source
        assert_eq!(c.on_packet(2, 30_000), 0); // a jump, not loss
    }
}
