//! Sequence order for one input's RTP packets on their way into a pipeline,
//! in place of a GStreamer jitter buffer per input (webrtc-rs hands packets
//! over in arrival order and keeps no jitter buffer of its own).
//!
//! What a recording needs is order, not delay: in-order packets pass at once;
//! a packet after a gap is held until the gap fills (a reordered packet, a
//! retransmission) or until the gap has been open for the window, then the
//! gap is given up and counted lost (the depayloader sees the sequence jump,
//! marks a discontinuity and, where configured, asks for a keyframe). A
//! packet at or behind one already released is dropped and counted late (or
//! a duplicate). There is no thread and no timer: held packets are released
//! by the next [`Reorder::push`] or [`Reorder::release_due`], and
//! [`Reorder::flush`] hands over everything at the end. Sans-IO.

use std::collections::BTreeMap;
use std::time::Duration;

/// A jump ahead of this many packets is a resynchronisation (everything held
/// is given up at once), not a gap worth waiting for.
const MAX_GAP: u64 = 1000;

/// One input's reordering state. `T` is what travels with a packet.
#[derive(Debug)]
pub struct Reorder<T> {
    window: Duration,
    max_held: usize,
    /// Extended sequence number expected next (none before the first packet).
    next: Option<u64>,
    /// Held packets by extended sequence number, with when each arrived.
    held: BTreeMap<u64, (Duration, T)>,
    lost: u64,
    late: u64,
}

impl<T> Reorder<T> {
    /// Hold a packet behind a gap for at most `window`, and at most
    /// `max_held` packets at once (beyond it the oldest gap is given up).
    pub fn new(window: Duration, max_held: usize) -> Reorder<T> {
        Reorder { window, max_held: max_held.max(1), next: None, held: BTreeMap::new(), lost: 0, late: 0 }
    }

    pub fn set_window(&mut self, window: Duration) {
        self.window = window;
    }

    /// One packet arrived at `now`; packets that may go on are appended to `out` in order.
    pub fn push(&mut self, now: Duration, sequence_number: u16, item: T, out: &mut Vec<T>) {
        let Some(next) = self.next else {
            // Far from zero, so extended numbers never underflow.
            self.next = Some((1 << 32) + sequence_number as u64 + 1);
            out.push(item);
            return;
        };
        let ext = extend(next, sequence_number);
        if ext < next {
            self.late += 1;
        } else if ext == next {
            out.push(item);
            self.next = Some(ext + 1);
            self.release_consecutive(out);
        } else if ext - next > MAX_GAP {
            // The sender jumped (or we lost a great deal): start over from this packet.
            self.flush(out);
            self.lost += ext - self.next.expect("set");
            out.push(item);
            self.next = Some(ext + 1);
        } else {
            match self.held.entry(ext) {
                std::collections::btree_map::Entry::Occupied(_) => self.late += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((now, item));
                }
            }
            while self.held.len() > self.max_held {
                self.give_up_gap(out);
            }
        }
        self.release_due(now, out);
    }

    /// Give up every gap that has been open for the window.
    pub fn release_due(&mut self, now: Duration, out: &mut Vec<T>) {
        while let Some(since) = self.held.values().map(|(at, _)| *at).min() {
            if now.saturating_sub(since) < self.window {
                break;
            }
            self.give_up_gap(out);
        }
    }

    /// Everything held, in order, gaps given up (the input ends).
    pub fn flush(&mut self, out: &mut Vec<T>) {
        while !self.held.is_empty() {
            self.give_up_gap(out);
        }
    }

    /// Packets given up on (never arrived within the window).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Packets dropped for arriving after their turn, and duplicates.
    pub fn late(&self) -> u64 {
        self.late
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Skip the gap before the first held packet and release what follows it.
    fn give_up_gap(&mut self, out: &mut Vec<T>) {
        let Some((&first, _)) = self.held.first_key_value() else { return };
        let next = self.next.expect("packets are held only after the first");
        self.lost += first - next;
        self.next = Some(first);
        self.release_consecutive(out);
    }

    fn release_consecutive(&mut self, out: &mut Vec<T>) {
        let mut next = self.next.expect("set");
        while let Some((_, item)) = self.held.remove(&next) {
            out.push(item);
            next += 1;
        }
        self.next = Some(next);
    }
}

/// The extended sequence number of `seq` nearest to `reference`.
fn extend(reference: u64, seq: u16) -> u64 {
    let delta = seq.wrapping_sub(reference as u16) as i16;
    reference.wrapping_add_signed(delta as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(200);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Push `seqs` at the given times; the sequence numbers released, in order.
    fn run(reorder: &mut Reorder<u16>, pushes: &[(u64, u16)]) -> Vec<u16> {
        let mut out = Vec::new();
        for &(at, seq) in pushes {
            reorder.push(ms(at), seq, seq, &mut out);
        }
        out
    }

    #[test]
    fn in_order_packets_pass_at_once_across_the_wrap() {
        let mut r = Reorder::new(WINDOW, 64);
        let seqs: Vec<u16> = (65530..=65535).chain(0..5).collect();
        let pushes: Vec<(u64, u16)> = seqs.iter().map(|&s| (0, s)).collect();
        assert_eq!(run(&mut r, &pushes), seqs);
        assert_eq!((r.lost(), r.late(), r.held()), (0, 0, 0));
    }

    #[test]
    fn a_reordered_packet_is_put_back_in_place() {
        let mut r = Reorder::new(WINDOW, 64);
        let mut out = run(&mut r, &[(0, 10), (1, 12), (2, 13)]);
        assert_eq!(out, vec![10], "12 and 13 wait for 11");
        assert_eq!(r.held(), 2);
        r.push(ms(30), 11, 11, &mut out);
        assert_eq!(out, vec![10, 11, 12, 13]);
        assert_eq!((r.lost(), r.late()), (0, 0));
    }

    #[test]
    fn a_gap_is_given_up_after_the_window_and_counted_lost() {
        let mut r = Reorder::new(WINDOW, 64);
        let mut out = run(&mut r, &[(0, 100), (10, 103), (20, 104)]);
        r.release_due(ms(209), &mut out);
        assert_eq!(out, vec![100], "the gap has been open 199 ms");
        r.release_due(ms(210), &mut out);
        assert_eq!(out, vec![100, 103, 104]);
        assert_eq!(r.lost(), 2);
        // The missing packets, arriving now, are too late.
        r.push(ms(220), 101, 101, &mut out);
        r.push(ms(221), 102, 102, &mut out);
        r.push(ms(222), 105, 105, &mut out);
        assert_eq!(out, vec![100, 103, 104, 105]);
        assert_eq!(r.late(), 2);
    }

    #[test]
    fn the_next_packet_releases_an_expired_gap_without_a_timer() {
        let mut r = Reorder::new(WINDOW, 64);
        let out = run(&mut r, &[(0, 1), (5, 3), (300, 4)]);
        assert_eq!(out, vec![1, 3, 4]);
        assert_eq!(r.lost(), 1);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut r = Reorder::new(WINDOW, 64);
        let out = run(&mut r, &[(0, 7), (1, 7), (2, 9), (3, 9), (4, 8)]);
        assert_eq!(out, vec![7, 8, 9]);
        assert_eq!(r.late(), 2);
    }

    #[test]
    fn too_many_held_packets_give_up_the_oldest_gap() {
        let mut r = Reorder::new(WINDOW, 3);
        let out = run(&mut r, &[(0, 0), (1, 2), (2, 3), (3, 4), (4, 6)]);
        // Holding 2, 3, 4, 6 is one too many: the gap at 1 is given up, then 5 is awaited.
        assert_eq!(out, vec![0, 2, 3, 4]);
        assert_eq!((r.lost(), r.held()), (1, 1));
    }

    #[test]
    fn a_big_jump_resynchronises_at_once() {
        let mut r = Reorder::new(WINDOW, 64);
        let out = run(&mut r, &[(0, 10), (1, 12), (2, 5000), (3, 5001)]);
        assert_eq!(out, vec![10, 12, 5000, 5001]);
        assert_eq!(r.lost(), 1 + (5000 - 13));
    }

    #[test]
    fn flush_hands_over_everything_held_in_order() {
        let mut r = Reorder::new(WINDOW, 64);
        let mut out = run(&mut r, &[(0, 1), (1, 5), (2, 3)]);
        r.flush(&mut out);
        assert_eq!(out, vec![1, 3, 5]);
        assert_eq!((r.lost(), r.held()), (2, 0));
    }
}
