//! The one back-off schedule of the gateway: webhook deliveries, failed
//! recording instances and failed relay instances all wait `initial`,
//! then twice that, and so on, capped at `max`. Pure.
//!
//! No jitter: each schedule belongs to one delivery or one stream, and they
//! are already spread by when their failures happened; a deterministic
//! schedule is easier to reason about and to test.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn doubling(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The wait after `failures` failed attempts in a row (1 → `initial`,
    /// 2 → 2 × `initial`, …, capped at `max`). `0` is treated as `1`.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.max(1) - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let ms = Duration::from_millis;
        let b = Backoff::doubling(ms(500), ms(60_000));
        let got: Vec<u128> = (1..=9).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
        assert_eq!(b.delay(0), ms(500));
        assert_eq!(b.delay(u32::MAX), ms(60_000));
        assert_eq!(b.delay(40), ms(60_000));
        assert_eq!(Backoff::doubling(ms(0), ms(60_000)).delay(5), ms(0));
    }
}
