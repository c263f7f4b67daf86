//! Limits with time passed in, so they are tested without clocks or sockets:
//! per-socket event rates (a token bucket), error notices, and room
//! creations per client address.

use std::collections::HashMap;
use std::net::IpAddr;
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

    /// Whether the bucket has refilled to its burst size by `now` (nothing
    /// would be lost by forgetting it).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.rate <= 0.0 || self.tokens + elapsed * self.rate >= self.burst
    }
}

/// Rooms each client address may create: a token bucket per address
/// (IPv4 address, IPv6 /64 — one host's usual share), refilled at
/// `per_minute` a minute, bursts of as many. Loopback clients (a reverse
/// proxy on the same host, the gateway's own participant) are not limited
/// unless `limit_loopback`. Buckets that refilled are forgotten, so the map
/// holds only addresses that created rooms lately.
#[derive(Debug)]
pub struct RoomCreationLimiter {
    per_minute: u32,
    limit_loopback: bool,
    buckets: HashMap<IpAddr, TokenBucket>,
    last_sweep: Option<Instant>,
}

impl RoomCreationLimiter {
    /// How often refilled buckets are forgotten.
    pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

    /// `per_minute == 0` means unlimited.
    pub fn new(per_minute: u32, limit_loopback: bool) -> Self {
        Self { per_minute, limit_loopback, buckets: HashMap::new(), last_sweep: None }
    }

    /// May `addr` create one more room now?
    pub fn allow(&mut self, addr: IpAddr, now: Instant) -> bool {
        let key = address_key(addr);
        // (`::1` itself, and IPv4 loopback also when mapped into IPv6.)
        let loopback = addr.is_loopback() || key.is_loopback();
        if self.per_minute == 0 || (loopback && !self.limit_loopback) {
            return true;
        }
        if self.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= Self::SWEEP_EVERY) {
            self.last_sweep = Some(now);
            self.buckets.retain(|_, b| !b.is_full(now));
        }
        let (rate, burst) = (f64::from(self.per_minute) / 60.0, self.per_minute);
        self.buckets.entry(key).or_insert_with(|| TokenBucket::new(rate, burst, now)).try_take(now)
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// The key an address is limited under: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64 prefix.
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
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
    fn room_creations_are_limited_per_address_and_refill() {
        let t0 = Instant::now();
        let mut l = RoomCreationLimiter::new(30, false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!((0..100).filter(|_| l.allow(a, t0)).count(), 30, "a burst of per_minute");
        assert!(l.allow(b, t0), "another address has its own bucket");
        // 30 a minute: one every 2 s.
        assert!(!l.allow(a, t0 + Duration::from_millis(1900)));
        assert!(l.allow(a, t0 + Duration::from_millis(2000)));
        assert!(!l.allow(a, t0 + Duration::from_millis(2100)));
    }

    #[test]
    fn ipv6_hosts_share_their_64_and_mapped_ipv4_is_ipv4() {
        let t0 = Instant::now();
        let mut l = RoomCreationLimiter::new(2, false);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.allow(one, t0) && l.allow(same_64, t0));
        assert!(!l.allow(one, t0), "the /64 used its burst");
        assert!(l.allow(other_64, t0));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
    }

    #[test]
    fn refilled_addresses_are_forgotten() {
        let t0 = Instant::now();
        let mut l = RoomCreationLimiter::new(60, false);
        for i in 0..1000u32 {
            assert!(l.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert_eq!(l.tracked(), 1000);
        // A minute later every bucket is full again: the next call sweeps them.
        assert!(l.allow("192.0.2.1".parse().unwrap(), t0 + RoomCreationLimiter::SWEEP_EVERY));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn loopback_clients_are_limited_only_when_asked() {
        let t0 = Instant::now();
        for addr in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            let addr: IpAddr = addr.parse().unwrap();
            let mut exempt = RoomCreationLimiter::new(1, false);
            assert!((0..100).all(|_| exempt.allow(addr, t0)), "{addr}");
            let mut limited = RoomCreationLimiter::new(1, true);
            assert!(limited.allow(addr, t0) && !limited.allow(addr, t0), "{addr}");
        }
    }

    #[test]
    fn zero_room_creations_per_minute_is_unlimited() {
        let t0 = Instant::now();
        let mut l = RoomCreationLimiter::new(0, true);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| l.allow(a, t0)));
        assert_eq!(l.tracked(), 0);
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
