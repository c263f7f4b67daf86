//! Waits between retries: one formula for everything the gateway retries
//! (webhook deliveries, recording files, relays). Pure: callers add the delay
//! to their own clock.

use std::time::Duration;

/// How the wait grows with each further failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// `initial`, 2 × `initial`, 4 × `initial`, …
    Doubling,
    /// `initial`, 2 × `initial`, 3 × `initial`, …
    Linear,
}

/// A retry schedule: the wait after `failures` failed attempts, capped at `max`.
///
/// No jitter: what the gateway retries is few and independent (one webhook
/// URL, one file, one relay target), and a deterministic schedule is easier
/// to reason about and to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub growth: Growth,
}

impl Backoff {
    pub const fn doubling(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, growth: Growth::Doubling }
    }

    pub const fn linear(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, growth: Growth::Linear }
    }

    /// The wait after `failures` failed attempts (1 → `initial`); `0` is
    /// treated as `1`. Never above `max`, never overflows.
    pub fn delay(&self, failures: u32) -> Duration {
        let n = failures.max(1);
        let factor = match self.growth {
            Growth::Doubling => 1u32.checked_shl(n - 1).unwrap_or(u32::MAX),
            Growth::Linear => n,
        };
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubling_doubles_and_caps() {
        let b = Backoff::doubling(ms(500), ms(60_000));
        let got: Vec<u128> = (1..=9).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
        assert_eq!(b.delay(0), ms(500));
        assert_eq!(b.delay(u32::MAX), ms(60_000));
        assert_eq!(b.delay(40), ms(60_000));
        assert_eq!(Backoff::doubling(ms(0), ms(60_000)).delay(5), ms(0));
    }

    #[test]
    fn linear_grows_by_its_first_step_and_caps() {
        let b = Backoff::linear(ms(1000), ms(10_000));
        let got: Vec<u128> = (1..=12).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 10000, 10000]);
        assert_eq!(b.delay(0), ms(1000));
        assert_eq!(b.delay(u32::MAX), ms(10_000));
    }

    /// The recorder's documented schedules (`recorder::stream::policy`):
    /// files `2^n s` capped at 30 s, relays `n s` capped at 10 s.
    #[test]
    fn expresses_the_recorder_schedules() {
        let files = Backoff::doubling(Duration::from_secs(2), Duration::from_secs(30));
        let relays = Backoff::linear(Duration::from_secs(1), Duration::from_secs(10));
        for failures in 1..=40u32 {
            let file_expected = Duration::from_secs(2u64.saturating_pow(failures).min(30));
            let relay_expected = Duration::from_secs(failures.min(10) as u64);
            assert_eq!(files.delay(failures), file_expected, "file retry after {failures} failures");
            assert_eq!(relays.delay(failures), relay_expected, "relay retry after {failures} failures");
        }
    }
}
