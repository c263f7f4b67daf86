//! Sync marks: what `publish --sync-marks` paints and plays, as pure
//! functions of the wall clock (sans-IO; [`super::source`] applies them to
//! the buffers of its pipeline).
//!
//! At every even second `S` of UTC the picture is white for exactly one
//! frame and a 100 ms 1 kHz beep starts; otherwise the picture is black and
//! the sound silent. Two publishers on synchronised clocks so mark the same
//! instants, and a recording can be checked for lip sync (flash vs beep in
//! one file) and for its wall-clock mapping (flash vs even second).
//!
//! Which frame flashes: the one whose span `[start, start + duration)`
//! contains `S` ([`is_flash_frame`]). Which samples beep: those whose
//! nearest sample index on the UTC time line falls in `[S, S + 100 ms)`
//! ([`fill_beep_s16`]), so the beep's first sample is `S` to half a sample.
//! The flash frame's start is therefore up to one frame period (33 ms at
//! 30 fps) before the beep's first sample in general; [`super::source`]
//! removes that error by aligning the frame grid to the second (the
//! pipeline's base time is a whole UTC second and frame rates are whole
//! numbers, so one frame starts exactly at every second): the flash frame's
//! start and the beep's first sample are then the same instant.

/// Marks repeat every two seconds of UTC.
pub const PERIOD_NS: u64 = 2_000_000_000;
/// Length of the beep.
pub const BEEP_NS: u64 = 100_000_000;
/// Pitch of the beep.
pub const BEEP_HZ: f64 = 1000.0;
/// Peak of the beep, as a fraction of full scale.
pub const BEEP_LEVEL: f64 = 0.5;

/// Whether the frame captured over `[start_unix_ns, start_unix_ns +
/// duration_ns)` is the white one: its span contains an even second.
pub fn is_flash_frame(start_unix_ns: u64, duration_ns: u64) -> bool {
    let phase = start_unix_ns % PERIOD_NS;
    phase == 0 || PERIOD_NS - phase < duration_ns
}

/// Where sample `index` of the UTC time line sampled at `rate` Hz (sample 0
/// is the Unix epoch) lies in the beep: `Some(samples since the beep's
/// first)` during the 100 ms after an even second, else `None`.
pub fn beep_phase(index: u64, rate: u32) -> Option<u64> {
    let rate = u64::from(rate.max(1));
    let phase = index % (PERIOD_NS / 1_000_000_000 * rate);
    (phase < BEEP_NS * rate / 1_000_000_000).then_some(phase)
}

/// The beep's value (−1..1) at sample `index` of the UTC time line: 0 outside the beep.
pub fn beep_value(index: u64, rate: u32) -> f64 {
    beep_phase(index, rate).map_or(0.0, |phase| {
        (2.0 * std::f64::consts::PI * BEEP_HZ * phase as f64 / f64::from(rate.max(1))).sin() * BEEP_LEVEL
    })
}

/// The UTC sample index nearest to `unix_ns` at `rate` Hz.
pub fn sample_index(unix_ns: u64, rate: u32) -> u64 {
    ((u128::from(unix_ns) * u128::from(rate) + 500_000_000) / 1_000_000_000) as u64
}

/// Overwrite interleaved signed 16-bit audio whose first sample was captured
/// at `start_unix_ns`: the beep where it is due, silence elsewhere. Every
/// channel gets the same value. Returns how many sample frames beep.
pub fn fill_beep_s16(start_unix_ns: u64, rate: u32, channels: usize, samples: &mut [i16]) -> usize {
    let channels = channels.max(1);
    let first = sample_index(start_unix_ns, rate);
    let mut beeping = 0;
    for (i, frame) in samples.chunks_mut(channels).enumerate() {
        let index = first + i as u64;
        if beep_phase(index, rate).is_some() {
            beeping += 1;
        }
        frame.fill((beep_value(index, rate) * f64::from(i16::MAX)).round() as i16);
    }
    beeping
}

/// The first whole UTC second at least `lead_ns` after `now_unix_ns` (a
/// base time that puts a frame and a sample exactly on every second).
pub fn next_whole_second(now_unix_ns: u64, lead_ns: u64) -> u64 {
    (now_unix_ns + lead_ns).div_ceil(1_000_000_000) * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_765_000_000 * 1_000_000_000; // an even second
    const FRAME: u64 = 33_333_333;

    #[test]
    fn exactly_one_frame_of_each_period_flashes() {
        // Frame grids of every phase: one flash per two seconds, and it contains S.
        for offset in [0, 1, FRAME / 2, FRAME - 1] {
            let starts: Vec<u64> = (0..120).map(|n| S - FRAME * 3 + offset + n * FRAME).collect();
            let flashes: Vec<u64> = starts.iter().copied().filter(|&t| is_flash_frame(t, FRAME)).collect();
            assert_eq!(flashes.len(), 2, "offset {offset}: {flashes:?}");
            assert!(flashes[0] <= S && S < flashes[0] + FRAME, "offset {offset}: {flashes:?}");
        }
        // A grid on the second: the flash frame starts at S, also if its time was rounded down by 1 ns.
        assert!(is_flash_frame(S, FRAME) && !is_flash_frame(S - FRAME, FRAME) && !is_flash_frame(S + FRAME, FRAME));
        assert!(is_flash_frame(S - 1, FRAME) && !is_flash_frame(S - 1 + FRAME, FRAME));
        // Odd seconds do not flash.
        assert!(!is_flash_frame(S + 1_000_000_000, FRAME));
    }

    #[test]
    fn the_beep_starts_on_the_even_second_to_the_sample_and_lasts_100_ms() {
        let rate = 48_000;
        // 10 ms buffers from 50 ms before S to 200 ms after, the way audiotestsrc stamps them.
        let mut audio = Vec::new();
        for b in 0..25u64 {
            let start = S - 50_000_000 + b * 10_000_000;
            let mut buf = vec![0i16; 480 * 2];
            fill_beep_s16(start, rate, 2, &mut buf);
            audio.extend(buf.chunks(2).map(|f| f[0]));
        }
        let first = audio.iter().position(|&s| s != 0).unwrap();
        let last = audio.iter().rposition(|&s| s != 0).unwrap();
        // Sample 0 of the beep is sin(0) = 0: the first non-zero one is the sample after S.
        assert_eq!(first, 50 * 48 + 1, "first beeping sample");
        assert!((last as i64 - (150 * 48 - 1) as i64).abs() <= 1, "last beeping sample {last}");
        let peak = audio.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((f64::from(peak) / f64::from(i16::MAX) - BEEP_LEVEL).abs() < 0.01, "peak {peak}");
        // 1 kHz: 100 positive-going zero crossings in the 100 ms.
        let crossings = audio.windows(2).filter(|w| w[0] <= 0 && w[1] > 0).count();
        assert_eq!(crossings, 100);
        // A timestamp one nanosecond early (rounded) still starts the beep at the same sample.
        let mut a = vec![0i16; 96];
        let mut b = vec![0i16; 96];
        fill_beep_s16(S - 1, rate, 2, &mut a);
        fill_beep_s16(S, rate, 2, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn odd_seconds_are_silent_and_the_base_time_is_a_whole_second() {
        let mut buf = vec![0i16; 4800 * 2];
        assert_eq!(fill_beep_s16(S + 1_000_000_000, 48_000, 2, &mut buf), 0);
        assert!(buf.iter().all(|&s| s == 0));
        assert_eq!(next_whole_second(S + 1, 200_000_000), S + 1_000_000_000);
        assert_eq!(next_whole_second(S - 300_000_000, 200_000_000), S);
        assert_eq!(next_whole_second(S - 100_000_000, 200_000_000), S + 1_000_000_000);
    }
}
