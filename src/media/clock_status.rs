//! How a recording's time line maps onto the wall clock: the wall-clock time
//! of its presentation time zero (`t0`) and how that was learnt. Written by
//! the output's clock, read by the manifest, the room timeline and the API.
//! A leaf: it depends on nothing in the crate.

use serde::Serialize;

/// Where a file's wall-clock mapping comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockSource {
    /// No RTCP sender report yet: `t0` is the gateway's own clock at the
    /// first packets' arrival (good to the network's delay).
    Arrival,
    /// The sender's reports (NTP time ↔ RTP timestamp): `t0` is on the
    /// sender's wall clock.
    SenderReports,
}

/// A file's mapping to the wall clock at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClockStatus {
    /// Wall-clock time (Unix epoch, ms, fractions kept) of the file's
    /// presentation time zero.
    pub t0_unix_ms: f64,
    pub source: ClockSource,
    /// Sender reports seen on the file's tracks.
    pub sender_reports: u32,
    /// When the latest of them arrived (gateway clock, Unix ms).
    pub last_report_unix_ms: Option<f64>,
}

/// Milliseconds since the Unix epoch, fractions kept.
pub fn unix_ms(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// Nanoseconds since the Unix epoch.
pub fn unix_ns(at: std::time::SystemTime) -> i128 {
    at.duration_since(std::time::SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}
