//! A received track's sender clock: the RTCP sender reports (SR) of its
//! source, each an NTP wall-clock time and the RTP timestamp of the same
//! instant, turned into "when, on the sender's wall clock, was the media of
//! this RTP timestamp captured". The participant passes every report of a
//! track on ([`SenderReports`], through a watch channel); the stream task
//! asks [`SenderClock::wall_ns`] for each packet before it renumbers it.
//! Sans-IO.
//!
//! Only the latest report is used, from its own RTP timestamp on at the
//! codec's nominal clock rate: between two reports (≈ 1 s for Chrome's video,
//! ≈ 5 s for its audio) a sender clock 100 ppm off moves the result by at
//! most 0.5 ms. A report of another SSRC (the source changed) says nothing
//! about this one: packets of a source without a report get `None`.
//!
//! A report whose NTP time is more than [`MAX_CLOCK_OFFSET`] away from its
//! arrival on the gateway's clock (a zero NTP time, a hostile or broken
//! sender) is not believed: the previous report (or none) stays in use, and
//! [`SenderClock::ignored`] counts it.

use std::time::SystemTime;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: i128 = 2_208_988_800;

/// One RTCP sender report, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, the fraction in the low 32.
    pub ntp_time: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_time: u32,
    /// When it arrived, on the gateway's clock.
    pub arrived: SystemTime,
}

impl SenderReport {
    /// The report's NTP time as Unix nanoseconds.
    pub fn unix_ns(&self) -> i128 {
        ntp_to_unix_ns(self.ntp_time)
    }
}

/// What a track's watch channel carries: the latest report and how many came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderReports {
    pub latest: Option<SenderReport>,
    pub count: u32,
}

/// A 64-bit NTP timestamp as nanoseconds since the Unix epoch.
pub fn ntp_to_unix_ns(ntp: u64) -> i128 {
    let secs = (ntp >> 32) as i128 - NTP_UNIX_OFFSET_SECS;
    let frac = (ntp & 0xffff_ffff) as i128;
    secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32)
}

/// The most a sender's wall clock may be off the gateway's for its reports
/// to be believed (clocks without NTP drift by minutes; a day is no clock).
pub const MAX_CLOCK_OFFSET: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A track's RTP timestamps on its sender's wall clock.
#[derive(Debug)]
pub struct SenderClock {
    clock_rate: i128,
    reports: SenderReports,
    ignored: u32,
}

impl SenderClock {
    pub fn new(clock_rate: u32) -> SenderClock {
        SenderClock { clock_rate: clock_rate.max(1) as i128, reports: SenderReports::default(), ignored: 0 }
    }

    /// Take the track's reports as they are now (an implausible latest one is ignored).
    pub fn update(&mut self, reports: SenderReports) {
        let Some(latest) = reports.latest else { return };
        let arrived = latest.arrived.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
        if (latest.unix_ns() - arrived).unsigned_abs() > MAX_CLOCK_OFFSET.as_nanos() {
            self.ignored += 1;
            return;
        }
        self.reports = SenderReports { latest: Some(latest), count: reports.count - self.ignored.min(reports.count) };
    }

    /// Reports not believed so far.
    pub fn ignored(&self) -> u32 {
        self.ignored
    }

    pub fn reports(&self) -> SenderReports {
        self.reports
    }

    /// When (sender's wall clock, Unix ns) the media of a packet of `ssrc`
    /// with RTP timestamp `timestamp` was captured; `None` without a report
    /// of that source.
    pub fn wall_ns(&self, ssrc: u32, timestamp: u32) -> Option<i128> {
        let report = self.reports.latest.filter(|r| r.ssrc == ssrc)?;
        // Signed distance from the report's timestamp (wraps: ±6.6 h at 90 kHz).
        let ticks = timestamp.wrapping_sub(report.rtp_time) as i32 as i128;
        Some(report.unix_ns() + ticks * 1_000_000_000 / self.clock_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NTP timestamp for Unix time `secs` + `nanos`.
    fn ntp(secs: u64, nanos: u64) -> u64 {
        ((secs + NTP_UNIX_OFFSET_SECS as u64) << 32) | ((nanos << 32) / 1_000_000_000)
    }

    fn report(ssrc: u32, ntp_time: u64, rtp_time: u32) -> SenderReports {
        // Arrived at the reported time: a sender whose clock agrees with ours.
        let arrived = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ntp_to_unix_ns(ntp_time).max(0) as u64);
        SenderReports { latest: Some(SenderReport { ssrc, ntp_time, rtp_time, arrived }), count: 1 }
    }

    #[test]
    fn reports_a_day_off_the_gateway_clock_are_not_believed() {
        let mut clock = SenderClock::new(90_000);
        clock.update(report(7, ntp(1_795_702_503, 0), 0));
        let good = clock.wall_ns(7, 0);
        // A zero NTP time, and one two days ahead, arriving now.
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_702_504);
        for ntp_time in [0, ntp(1_795_702_504 + 2 * 86_400, 0)] {
            clock.update(SenderReports {
                latest: Some(SenderReport { ssrc: 7, ntp_time, rtp_time: 90_000, arrived: now }),
                count: 2,
            });
        }
        assert_eq!(clock.wall_ns(7, 0), good, "the last believable report stays in use");
        assert_eq!(clock.ignored(), 2);
        // Ten minutes off is a badly set clock, not a broken sender: believed.
        clock.update(SenderReports {
            latest: Some(SenderReport { ssrc: 7, ntp_time: ntp(1_795_702_504 + 600, 0), rtp_time: 0, arrived: now }),
            count: 4,
        });
        assert_eq!(clock.wall_ns(7, 0), Some((1_795_702_504 + 600) * 1_000_000_000));
        assert_eq!(clock.reports().count, 2, "believed reports are counted");
    }

    #[test]
    fn ntp_times_convert_to_unix_time() {
        assert_eq!(ntp_to_unix_ns(ntp(1_795_702_503, 0)), 1_795_702_503_000_000_000);
        // Half a second is 2^31 of the fraction.
        let half = ((1_795_702_503u64 + NTP_UNIX_OFFSET_SECS as u64) << 32) | (1 << 31);
        assert_eq!(ntp_to_unix_ns(half), 1_795_702_503_500_000_000);
    }

    #[test]
    fn timestamps_map_through_the_latest_report_of_their_source() {
        let mut clock = SenderClock::new(90_000);
        assert_eq!(clock.wall_ns(7, 1000), None, "no report yet");
        clock.update(report(7, ntp(1000, 0), 90_000));
        // 9000 ticks after the report: 100 ms later; 4500 before: 50 ms earlier.
        assert_eq!(clock.wall_ns(7, 99_000), Some(1_000_100_000_000));
        assert_eq!(clock.wall_ns(7, 85_500), Some(999_950_000_000));
        // Another source (the track's SSRC changed): no mapping until its own report.
        assert_eq!(clock.wall_ns(8, 99_000), None);
    }

    #[test]
    fn timestamps_that_wrapped_since_the_report_still_map() {
        let mut clock = SenderClock::new(48_000);
        clock.update(report(1, ntp(50, 0), u32::MAX - 479));
        // 960 ticks later the timestamp has wrapped past zero: 20 ms on.
        assert_eq!(clock.wall_ns(1, 480), Some(50_020_000_000));
    }
}
