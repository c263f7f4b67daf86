//! Who the active speaker is, from audio levels, with hysteresis (sans-IO).
//!
//! This module owns the decision which input of the mix has the focus of the
//! `speaker` layout (and which strip tile of `screen` must stay visible). The
//! caller feeds it levels — RMS dBFS of one input over a short interval, e.g. the
//! `rms` of GStreamer's `level` element every 100 ms — with the time they were
//! measured, and asks [`ActiveSpeaker::current`] / [`ActiveSpeaker::take_changed`]
//! whether to re-layout. Time is the caller's (any fixed start); nothing here
//! reads a clock, so the tests run on simulated time.
//!
//! Decisions:
//! - **Smoothing** is exponential in the dB domain with time constant
//!   `smoothing`, using the real time between an input's levels (so irregular
//!   intervals weigh correctly): one loud syllable does not make anyone the
//!   speaker, a sustained voice does within a few intervals.
//! - **Silence**: a level at or below `floor_db`, a NaN or -inf level (the
//!   `level` element reports -inf for digital silence), and an input that sent
//!   no level for [`STALE_AFTER`] (a muted or stalled track) all count as
//!   silence. Levels are clamped to [-100, 0] dBFS before smoothing.
//! - **First focus**: while nobody has the focus, the loudest input whose
//!   smoothed level is above the floor takes it at once.
//! - **Switching**: a challenger takes the focus when its smoothed level has
//!   been above the floor *and* at least `margin_db` above the current speaker's,
//!   at every level received for `hold` without a break, and the current speaker
//!   has had the focus for at least `min_dwell`. If several qualify, the loudest
//!   wins. So the current speaker going quiet never hands the focus to a silent
//!   other: the focus stays with the last person who spoke.
//! - **Removal** of the current speaker hands the focus at once to the loudest
//!   remaining input (even a quiet one: somebody must be large), or to nobody.
//! - **Defaults** ([`SpeakerConfig::default`]): floor -50 dBFS (speech at a
//!   normal distance is -35…-15 dBFS RMS; a quiet room through a noise-suppressed
//!   WebRTC microphone is below -55); margin 6 dB (twice the amplitude: clearly
//!   louder, so two people at similar volume, or crosstalk leaking into another
//!   microphone, do not trade the focus); hold 1 s (longer than an interjection
//!   like "yes" or "mm-hm", short enough to follow a conversation — the
//!   switch shows about 1.1–1.3 s after the new speaker starts, hold plus the
//!   smoothing's rise); min dwell 2 s (the picture does not jump more than once
//!   per 2 s, however lively the exchange); smoothing 300 ms (three 100 ms
//!   `level` intervals: a syllable is ~200 ms).

use std::collections::BTreeMap;
use std::time::Duration;

/// How the active speaker is chosen. See the module docs for the defaults' reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerConfig {
    /// Quieter than this is silence (dBFS).
    pub floor_db: f64,
    /// A challenger must be this much louder (dB, smoothed) than the current speaker...
    pub margin_db: f64,
    /// ... for this long without a break.
    pub hold: Duration,
    /// The current speaker keeps the focus at least this long after taking it.
    pub min_dwell: Duration,
    /// Levels are smoothed over this (exponential time constant), so one loud syllable does not switch.
    pub smoothing: Duration,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            floor_db: -50.0,
            margin_db: 6.0,
            hold: Duration::from_secs(1),
            min_dwell: Duration::from_secs(2),
            smoothing: Duration::from_millis(300),
        }
    }
}

/// An input that sent no level for this long counts as silence.
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// The quietest level considered (dBFS); NaN and -inf become this.
const SILENCE_DB: f64 = -100.0;

/// What is known about one input.
#[derive(Debug, Clone)]
struct Input {
    /// The smoothed level, dBFS.
    smoothed: f64,
    /// When its last level was measured.
    last: Duration,
    /// Since when it has been louder than the current speaker by the margin, without a break.
    winning_since: Option<Duration>,
}

/// The active-speaker state machine. Feed it levels, read the focus.
#[derive(Debug, Clone)]
pub struct ActiveSpeaker {
    config: SpeakerConfig,
    inputs: BTreeMap<u64, Input>,
    /// The focused input and when it took the focus.
    current: Option<(u64, Duration)>,
    /// The latest time seen (for [`ActiveSpeaker::remove`], which has none of its own).
    now: Duration,
    changed: bool,
}

impl ActiveSpeaker {
    pub fn new(config: SpeakerConfig) -> Self {
        ActiveSpeaker { config, inputs: BTreeMap::new(), current: None, now: Duration::ZERO, changed: false }
    }

    /// A level (RMS dBFS over the last interval, e.g. from GStreamer's `level`
    /// element, 100 ms) of one input at `now` (time since any fixed start).
    pub fn on_level(&mut self, id: u64, rms_db: f64, now: Duration) {
        let db = if rms_db.is_nan() { SILENCE_DB } else { rms_db.clamp(SILENCE_DB, 0.0) };
        let tau = self.config.smoothing.as_secs_f64();
        self.now = self.now.max(now);
        match self.inputs.get_mut(&id) {
            None => {
                self.inputs.insert(id, Input { smoothed: db, last: now, winning_since: None });
            }
            Some(input) => {
                let dt = now.saturating_sub(input.last);
                if dt > STALE_AFTER || tau <= 0.0 {
                    input.smoothed = db;
                } else {
                    let alpha = 1.0 - (-dt.as_secs_f64() / tau).exp();
                    input.smoothed += alpha * (db - input.smoothed);
                }
                input.last = input.last.max(now);
            }
        }
        self.decide(now);
    }

    /// Forgets an input (its track ended). If it had the focus, the loudest
    /// remaining input takes it at once (or nobody, if none remains).
    pub fn remove(&mut self, id: u64) {
        self.inputs.remove(&id);
        if matches!(self.current, Some((cur, _)) if cur == id) {
            let next = self.loudest(self.now, |_, _| true);
            self.set_current(next, self.now);
        }
    }

    /// The input with the focus, if any.
    pub fn current(&self) -> Option<u64> {
        self.current.map(|(id, _)| id)
    }

    /// Whether the focus changed since the last call (for the caller to re-layout).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// An input's smoothed level at `now`, silence if it went stale.
    fn level(input: &Input, now: Duration) -> f64 {
        if now.saturating_sub(input.last) > STALE_AFTER { SILENCE_DB } else { input.smoothed }
    }

    /// The loudest input at `now` among those `keep` accepts; ties go to the lower id.
    fn loudest(&self, now: Duration, keep: impl Fn(u64, &Input) -> bool) -> Option<u64> {
        let mut best: Option<(u64, f64)> = None;
        for (&id, input) in &self.inputs {
            if !keep(id, input) {
                continue;
            }
            let level = Self::level(input, now);
            if best.is_none_or(|(_, b)| level > b) {
                best = Some((id, level));
            }
        }
        best.map(|(id, _)| id)
    }

    fn set_current(&mut self, next: Option<u64>, now: Duration) {
        if self.current() != next {
            self.current = next.map(|id| (id, now));
            self.changed = true;
            for input in self.inputs.values_mut() {
                input.winning_since = None;
            }
        }
    }

    fn decide(&mut self, now: Duration) {
        let floor = self.config.floor_db;
        let Some((cur, since)) = self.current else {
            let first = self.loudest(now, |_, i| Self::level(i, now) > floor);
            self.set_current(first, now);
            return;
        };
        let cur_level = self.inputs.get(&cur).map_or(SILENCE_DB, |i| Self::level(i, now));
        let margin = self.config.margin_db;
        for (&id, input) in self.inputs.iter_mut() {
            let level = Self::level(input, now);
            let winning = id != cur && level > floor && level >= cur_level + margin;
            input.winning_since = if winning { input.winning_since.or(Some(now)) } else { None };
        }
        if now.saturating_sub(since) < self.config.min_dwell {
            return;
        }
        let hold = self.config.hold;
        let next = self.loudest(now, |_, i| i.winning_since.is_some_and(|ws| now.saturating_sub(ws) >= hold));
        if next.is_some() {
            self.set_current(next, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(100);
    const A: u64 = 1;
    const B: u64 = 2;
    const C: u64 = 3;

    /// Deterministic noise in [-amp, amp] (a small xorshift).
    struct Noise(u64);
    impl Noise {
        fn next(&mut self, amp: f64) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amp
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Runs `levels(t)` (the levels of every input at t) every 100 ms over
    /// [from, to) and returns each change of focus with its time.
    fn run(
        sp: &mut ActiveSpeaker,
        from: Duration,
        to: Duration,
        mut levels: impl FnMut(Duration) -> Vec<(u64, f64)>,
    ) -> Vec<(Duration, Option<u64>)> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < to {
            for (id, db) in levels(t) {
                sp.on_level(id, db, t);
            }
            if sp.take_changed() {
                changes.push((t, sp.current()));
            }
            t += STEP;
        }
        changes
    }

    #[test]
    fn first_input_above_the_floor_takes_the_focus_at_once() {
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        sp.on_level(A, -70.0, ms(0));
        sp.on_level(B, -70.0, ms(0));
        assert_eq!(sp.current(), None);
        assert!(!sp.take_changed());
        sp.on_level(B, -20.0, ms(100));
        // One level at -20 after one at -70: smoothed -56, still below the floor.
        assert_eq!(sp.current(), None);
        sp.on_level(C, -25.0, ms(100));
        assert_eq!(sp.current(), Some(C), "a new input is taken at its first level");
        assert!(sp.take_changed());
        assert!(!sp.take_changed(), "changed is reported once");
    }

    #[test]
    fn alternating_talkers_switch_after_hold_not_before() {
        let config = SpeakerConfig::default();
        let mut sp = ActiveSpeaker::new(config.clone());
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        // A talks in [0, 5), B in [5, 10), A in [10, 15), B in [15, 20); the other one is in room noise.
        let talker = |t: Duration| if (t.as_millis() / 5000).is_multiple_of(2) { A } else { B };
        let changes = run(&mut sp, ms(0), ms(20_000), |t| {
            [A, B].into_iter().map(|id| (id, if talker(t) == id { -20.0 } else { -65.0 } + noise.next(3.0))).collect()
        });
        assert_eq!(changes[0], (ms(0), Some(A)));
        assert_eq!(changes.len(), 4, "{changes:?}");
        for (turn, &(at, who)) in changes.iter().enumerate().skip(1) {
            let started = ms(5000 * turn as u64);
            assert_eq!(who, Some(talker(started)));
            assert!(at >= started + config.hold, "switched before hold: {at:?} for a turn at {started:?}");
            assert!(at <= started + config.hold + ms(400), "switched late: {at:?} for a turn at {started:?}");
        }
    }

    #[test]
    fn short_interjections_do_not_switch_but_a_turn_does() {
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        let mut noise = Noise(42);
        // A talks all the time; B says something very loud for 0.9 s every 3 s, for 30 s.
        let changes = run(&mut sp, ms(0), ms(30_000), |t| {
            let b = if t.as_millis() % 3000 >= 1500 && t.as_millis() % 3000 < 2400 { 0.0 } else { -65.0 };
            vec![(A, -25.0 + noise.next(2.0)), (B, b + noise.next(2.0))]
        });
        assert_eq!(changes, [(ms(0), Some(A))]);
        // The same loudness kept up for 2 s takes the focus (the interjections were
        // loud enough; only their length kept them out).
        let changes = run(&mut sp, ms(30_000), ms(32_000), |_| vec![(A, -25.0), (B, 0.0)]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, Some(B));
    }

    #[test]
    fn a_noisy_tie_does_not_flicker() {
        let simulate = |config: SpeakerConfig| {
            let mut sp = ActiveSpeaker::new(config);
            let mut noise = Noise(7);
            // Both at -22 dBFS with ±4 dB of noise, for 60 s.
            let changes =
                run(&mut sp, ms(0), ms(60_000), |_| vec![(A, -22.0 + noise.next(4.0)), (B, -22.0 + noise.next(4.0))]);
            changes.len() - 1 // the first focus is no switch
        };
        assert_eq!(simulate(SpeakerConfig::default()), 0);
        // Control: without margin, hold and dwell the same levels do flicker, so
        // the noise above is enough to make a weaker policy fail.
        let no_hysteresis =
            SpeakerConfig { margin_db: 0.0, hold: Duration::ZERO, min_dwell: Duration::ZERO, ..Default::default() };
        assert!(simulate(no_hysteresis) > 50);
    }

    #[test]
    fn min_dwell_keeps_a_new_speaker_even_when_a_louder_one_starts() {
        let config = SpeakerConfig::default();
        let mut sp = ActiveSpeaker::new(config.clone());
        // A says a word at 0 and stops; B talks loudly from 0.2 s.
        let changes = run(&mut sp, ms(0), ms(4000), |t| {
            let a = if t < ms(200) { -20.0 } else { -65.0 };
            let b = if t < ms(200) { -65.0 } else { -15.0 };
            vec![(A, a), (B, b)]
        });
        // B is louder by the margin from ~0.4 s, so hold alone would switch at ~1.4 s; the dwell holds until 2 s.
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[1].1, Some(B));
        assert!(changes[1].0 >= config.min_dwell && changes[1].0 <= config.min_dwell + STEP, "{changes:?}");
    }

    #[test]
    fn silence_of_the_speaker_does_not_hand_the_focus_to_a_silent_other() {
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        let mut noise = Noise(3);
        let changes = run(&mut sp, ms(0), ms(10_000), |t| {
            let a = if t < ms(2000) { -20.0 } else { -70.0 };
            vec![(A, a + noise.next(2.0)), (B, -58.0 + noise.next(2.0))]
        });
        assert_eq!(changes, [(ms(0), Some(A))], "B is louder than the silent A by 12 dB but below the floor");
    }

    #[test]
    fn a_stalled_speaker_counts_as_silent() {
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        run(&mut sp, ms(0), ms(3000), |_| vec![(A, -20.0), (B, -30.0)]);
        assert_eq!(sp.current(), Some(A));
        sp.take_changed();
        // A's levels stop (its last one was loud); B keeps talking at the same level.
        let changes = run(&mut sp, ms(3000), ms(6000), |_| vec![(B, -30.0)]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, Some(B));
        // Stale after 1 s (t = 3.0 s: A last heard at 2.9 s), then hold.
        assert!(changes[0].0 >= ms(2900) + STALE_AFTER + ms(1000) && changes[0].0 <= ms(5200), "{changes:?}");
    }

    #[test]
    fn nan_and_minus_infinity_are_silence() {
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        let changes = run(&mut sp, ms(0), ms(2000), |_| vec![(A, f64::NAN), (B, f64::NEG_INFINITY)]);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(sp.current(), None);
        // A speaks, then sends NaN (a broken meter); B talking takes over after hold.
        run(&mut sp, ms(2000), ms(5000), |_| vec![(A, -20.0), (B, f64::NEG_INFINITY)]);
        assert_eq!(sp.current(), Some(A));
        sp.take_changed();
        let changes = run(&mut sp, ms(5000), ms(8000), |_| vec![(A, f64::NAN), (B, -25.0)]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, Some(B));
        assert!(changes[0].0 >= ms(6000), "{changes:?}");
        // +inf is clamped, not a poisoned average.
        sp.on_level(C, f64::INFINITY, ms(8000));
        sp.on_level(C, -30.0, ms(8100));
        assert!(sp.inputs[&C].smoothed.is_finite());
    }

    #[test]
    fn removing_the_speaker_hands_the_focus_to_the_loudest_other_at_once() {
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        let changes = run(&mut sp, ms(0), ms(1000), |_| vec![(A, -20.0), (B, -60.0), (C, -40.0)]);
        assert_eq!(changes, [(ms(0), Some(A))]);
        sp.remove(B);
        assert_eq!(sp.current(), Some(A), "removing another input changes nothing");
        assert!(!sp.take_changed());
        sp.remove(A);
        assert_eq!(sp.current(), Some(C));
        assert!(sp.take_changed());
        // The new speaker took the focus just now: its dwell starts at the removal.
        sp.remove(C);
        assert_eq!(sp.current(), None);
        assert!(sp.take_changed());
        sp.remove(C);
        assert!(!sp.take_changed(), "removing an unknown input is a no-op");
        // Quiet inputs only: removal still gives the focus to the loudest of them.
        let mut sp = ActiveSpeaker::new(SpeakerConfig::default());
        run(&mut sp, ms(0), ms(500), |_| vec![(A, -20.0), (B, -70.0), (C, -62.0)]);
        sp.remove(A);
        assert_eq!(sp.current(), Some(C));
    }
}
