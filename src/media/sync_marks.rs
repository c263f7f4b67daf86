//! Sync marks: what `publish --sync-marks` paints and plays, as pure
//! functions of the wall clock (sans-IO; [`super::source`] applies them to
//! the buffers of its pipeline, whose `base time + PTS` is UTC).
//!
//! At every even second `S` of UTC one frame is white and a 100 ms 1 kHz
//! beep starts; otherwise the picture is black and the sound silent. Two
//! publishers with synchronised clocks mark the same instants, and a
//! recording can be checked for lip sync (flash against beep in one file)
//! and for its wall-clock mapping (flash against the even second).
//!
//! Which frame flashes: the one whose start is nearest to `S` on the
//! source's frame grid ([`FrameGrid`]: its first frame's capture time and
//! the frame rate; a live `videotestsrc` starts its grid at whatever
//! running time it starts at, so the grid is not aligned to the second).
//! That frame's start is the *mark instant* `M`, within half a frame period
//! of `S` (±16.7 ms at 30 fps). The beep starts at `M`, not at `S`: its
//! first sample is the first sample at or after `M` (at most one sample,
//! 20.8 µs at 48 kHz, late), so the flash and the beep of one mark are the
//! same instant to the sample, and marks of two publishers are within one
//! frame period of each other.

/// Marks repeat every two seconds of UTC.
pub const PERIOD_NS: u64 = 2_000_000_000;
/// Length of the beep.
pub const BEEP_NS: u64 = 100_000_000;
/// Pitch of the beep.
pub const BEEP_HZ: f64 = 1000.0;
/// Peak of the beep, as a fraction of full scale.
pub const BEEP_LEVEL: f64 = 0.5;

const SECOND: u128 = 1_000_000_000;

/// The frames of a constant-rate source: frame `n` starts at
/// `origin + n / fps` (rounded down to the nanosecond, as GStreamer's test
/// sources stamp them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGrid {
    /// Capture time (UTC ns) of frame 0.
    pub origin_ns: u64,
    pub fps_n: u32,
    pub fps_d: u32,
}

impl FrameGrid {
    pub fn new(origin_ns: u64, fps_n: u32, fps_d: u32) -> FrameGrid {
        FrameGrid { origin_ns, fps_n: fps_n.max(1), fps_d: fps_d.max(1) }
    }

    /// Start (UTC ns) of frame `n`.
    pub fn frame_start(&self, n: u64) -> u64 {
        self.origin_ns + (u128::from(n) * SECOND * u128::from(self.fps_d) / u128::from(self.fps_n)) as u64
    }

    /// The frame whose start is nearest to `t` (the earlier one on a tie), if the grid has begun by then.
    pub fn nearest_frame(&self, t: u64) -> Option<u64> {
        let since = u128::from(t.checked_sub(self.origin_ns)?);
        let n = (since * u128::from(self.fps_n) / (SECOND * u128::from(self.fps_d))) as u64;
        let (here, next) = (self.frame_start(n), self.frame_start(n + 1));
        Some(if next - t < t - here { n + 1 } else { n })
    }

    /// The mark instant of the even second nearest to `t`: the start of the
    /// frame nearest to that second. `None` before the grid began.
    pub fn mark_instant(&self, t: u64) -> Option<u64> {
        let second = nearest_even_second(t);
        self.nearest_frame(second).map(|n| self.frame_start(n))
    }

    /// Whether the frame starting at `start` (a frame of this grid) is the white one.
    pub fn is_flash_frame(&self, start: u64) -> bool {
        self.mark_instant(start) == Some(start)
    }
}

/// The even second (UTC ns) nearest to `t`.
pub fn nearest_even_second(t: u64) -> u64 {
    (t + PERIOD_NS / 2) / PERIOD_NS * PERIOD_NS
}

/// The beep's value (−1..1) `since` ns after its start: 0 outside the beep.
pub fn beep_value(since_ns: u64) -> f64 {
    if since_ns >= BEEP_NS {
        return 0.0;
    }
    (2.0 * std::f64::consts::PI * BEEP_HZ * since_ns as f64 / 1e9).sin() * BEEP_LEVEL
}

/// Overwrite interleaved signed 16-bit audio at `rate` Hz whose first sample
/// was captured at `start_unix_ns`: the beep where a mark of `grid` is due,
/// silence elsewhere (and everywhere while there is no grid yet). Every
/// channel gets the same value. Returns how many sample frames beep.
pub fn fill_beep_s16(
    start_unix_ns: u64,
    rate: u32,
    channels: usize,
    grid: Option<&FrameGrid>,
    samples: &mut [i16],
) -> usize {
    let (channels, rate) = (channels.max(1), u128::from(rate.max(1)));
    let mut beeping = 0;
    for (i, frame) in samples.chunks_mut(channels).enumerate() {
        let t = start_unix_ns + (i as u128 * SECOND / rate) as u64;
        let since = grid.and_then(|g| g.mark_instant(t)).and_then(|m| t.checked_sub(m)).filter(|&s| s < BEEP_NS);
        let value = match since {
            Some(since) => {
                beeping += 1;
                beep_value(since)
            }
            None => 0.0,
        };
        frame.fill((value * f64::from(i16::MAX)).round() as i16);
    }
    beeping
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_765_000_000 * 1_000_000_000; // an even second
    const FRAME: u64 = 33_333_333;

    #[test]
    fn one_frame_per_period_flashes_the_one_nearest_the_even_second() {
        for offset in [0, 1, FRAME / 2, FRAME / 2 + 1, FRAME - 1, 360_393_837] {
            let grid = FrameGrid::new(S - 3_000_000_000 + offset, 30, 1);
            let starts: Vec<u64> = (0..240).map(|n| grid.frame_start(n)).collect();
            let flashes: Vec<u64> = starts.iter().copied().filter(|&t| grid.is_flash_frame(t)).collect();
            assert_eq!(flashes.len(), 4, "offset {offset}: {flashes:?}");
            let m = flashes.iter().copied().find(|&f| f.abs_diff(S) < FRAME).unwrap();
            assert!(m.abs_diff(S) <= FRAME / 2 + 1, "offset {offset}: mark {m} is {} ns off S", m.abs_diff(S));
            assert_eq!(grid.mark_instant(S + 50_000_000), Some(m));
            assert!(flashes.windows(2).all(|w| (w[1] - w[0]).abs_diff(PERIOD_NS) <= FRAME), "{flashes:?}");
        }
        // Before the grid began there is no mark.
        assert_eq!(FrameGrid::new(S + 1_000_000_000, 30, 1).mark_instant(S), None);
        // The grid stamps frames as videotestsrc does: n * 1 s / 30 rounded down.
        let grid = FrameGrid::new(0, 30, 1);
        assert_eq!((grid.frame_start(1), grid.frame_start(3)), (33_333_333, 100_000_000));
    }

    fn beep_around(grid: &FrameGrid, from: u64) -> Vec<i16> {
        // 10 ms buffers, the way audiotestsrc stamps them.
        let mut audio = Vec::new();
        for b in 0..30u64 {
            let mut buf = vec![0i16; 480 * 2];
            fill_beep_s16(from + b * 10_000_000, 48_000, 2, Some(grid), &mut buf);
            audio.extend(buf.chunks(2).map(|f| f[0]));
        }
        audio
    }

    #[test]
    fn the_beep_starts_with_the_flash_frame_to_the_sample_and_lasts_100_ms() {
        let grid = FrameGrid::new(S - 2_987_654_321, 30, 1);
        let m = grid.mark_instant(S).unwrap();
        let from = S - 50_000_000;
        let audio = beep_around(&grid, from);
        let first = audio.iter().position(|&s| s != 0).unwrap();
        let last = audio.iter().rposition(|&s| s != 0).unwrap();
        // Sample k is at from + k / 48 kHz; the first at or after M beeps (M is
        // 12.3 ms after S here, between two samples, so that sample is not sin(0) = 0).
        let k0 = ((m - from) as u128 * 48_000).div_ceil(1_000_000_000) as usize;
        assert_eq!(first, k0, "first beeping sample (M = S {:+} ns)", m as i128 - S as i128);
        assert!(last.abs_diff(k0 + 4800 - 1) <= 1, "last beeping sample {last}, beep from {k0}");
        let peak = audio.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((f64::from(peak) / f64::from(i16::MAX) - BEEP_LEVEL).abs() < 0.01, "peak {peak}");
        // 1 kHz: 100 positive-going zero crossings in the 100 ms.
        assert_eq!(audio.windows(2).filter(|w| w[0] <= 0 && w[1] > 0).count(), 100);
        // Silence without a grid, and at odd seconds.
        let mut buf = vec![1i16; 4800 * 2];
        assert_eq!(fill_beep_s16(S, 48_000, 2, None, &mut buf), 0);
        assert!(buf.iter().all(|&s| s == 0));
        assert_eq!(fill_beep_s16(S + 1_000_000_000, 48_000, 2, Some(&grid), &mut buf), 0);
        assert_eq!(fill_beep_s16(m, 48_000, 2, Some(&grid), &mut buf), 4800);
    }
}
