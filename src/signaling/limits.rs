//! Per-socket event-rate limiting: a token bucket with time passed in, so it
//! is tested without clocks or sockets.

use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens, refilled at `rate` tokens per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate == 0` means unlimited.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        Self { rate, burst: f64::from(burst), tokens: f64::from(burst), last: now }
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Rate-limits the error notices sent back to a misbehaving client, so a flood
/// of bad events is not answered by an equal flood of errors.
#[derive(Debug, Clone, Default)]
pub struct NoticeThrottle {
    window_start: Option<Instant>,
    sent_in_window: u32,
}

impl NoticeThrottle {
    /// Notices allowed per window.
    pub const PER_WINDOW: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(1);

    pub fn allow(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < Self::WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.sent_in_window = 0;
            }
        }
        if self.sent_in_window < Self::PER_WINDOW {
            self.sent_in_window += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5, t0);
        for _ in 0..5 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        // 100 ms at 10/s refills one token.
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst size.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(b.try_take(later));
        }
        assert!(!b.try_take(later));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 0, t0);
        for _ in 0..10_000 {
            assert!(b.try_take(t0));
        }
    }

    #[test]
    fn sustained_rate_is_honoured() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(200.0, 1000, t0);
        let mut ok = 0;
        // 10 s of 1000 events/s: burst + 10 s × 200/s pass.
        for i in 0..10_000u64 {
            if b.try_take(t0 + Duration::from_millis(i)) {
                ok += 1;
            }
        }
        assert!((2990..=3001).contains(&ok), "{ok}");
    }

    #[test]
    fn notices_are_throttled_per_window() {
        let t0 = Instant::now();
        let mut n = NoticeThrottle::default();
        let sent = (0..100).filter(|_| n.allow(t0)).count();
        assert_eq!(sent, NoticeThrottle::PER_WINDOW as usize);
        assert!(n.allow(t0 + Duration::from_millis(1001)));
    }
}
