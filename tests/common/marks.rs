//! Finding sync marks (`publish --sync-marks`, or the Chromium page's marks)
//! in a recorded file by its content: the file is decoded by GStreamer
//! (`filesrc ! decodebin`, pictures scaled down to grey, sound to mono
//! float), and the times are the decoded buffers' presentation times, on the
//! file's own time line, in seconds.
//!
//! - A flash is a frame whose mean luma is above [`BRIGHT`] after a frame
//!   below it; its time is that frame's PTS.
//! - A beep onset is the first sample of a 1 kHz burst: the first 2 ms window
//!   whose RMS is above [`LOUD_RMS`] after at least [`QUIET_BEFORE`] of
//!   quiet, refined to the first sample in it (or in the window before it)
//!   above [`ONSET_LEVEL`], and kept only if the next 50 ms are mostly 1 kHz.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Mean luma (0–255, full range) above which a picture is a flash.
pub const BRIGHT: f64 = 200.0;
/// RMS (full scale 1.0) above which a 2 ms window is loud.
pub const LOUD_RMS: f64 = 0.05;
/// A sample above this magnitude is part of the beep.
pub const ONSET_LEVEL: f64 = 0.03;
/// A beep onset needs this much quiet before it.
pub const QUIET_BEFORE: f64 = 0.5;
const WINDOW_S: f64 = 0.002;
const RATE: u32 = 48_000;

/// Decoded sound: each buffer's PTS (s) and its mono samples.
type SoundBuffers = Vec<(f64, Vec<f32>)>;

/// The marks found in one file, in seconds of its time line.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    pub flashes: Vec<f64>,
    pub beeps: Vec<f64>,
    /// Decoded frames and the file time of the first and last one (for messages).
    pub frames: usize,
    pub video_span: (f64, f64),
    /// Decoded seconds of sound.
    pub audio_secs: f64,
}

impl Marks {
    /// Each flash with the beep nearest to it (within 0.5 s): `(flash, beep - flash)`.
    pub fn pairs(&self) -> Vec<(f64, f64)> {
        self.flashes
            .iter()
            .filter_map(|&f| {
                let b = self.beeps.iter().copied().min_by(|a, b| (a - f).abs().total_cmp(&(b - f).abs()))?;
                ((b - f).abs() < 0.5).then_some((f, b - f))
            })
            .collect()
    }
}

/// Min, median and max of `values` (seconds) in milliseconds, for reports.
pub fn summary_ms(values: &[f64]) -> String {
    if values.is_empty() {
        return "none".into();
    }
    let mut v: Vec<f64> = values.iter().map(|x| x * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    format!("min {:.1} ms, median {:.1} ms, max {:.1} ms (n = {})", v[0], v[v.len() / 2], v[v.len() - 1], v.len())
}

/// Decode `path` and find its marks.
pub fn find_marks(path: &Path) -> Marks {
    gst::init().unwrap();
    let location = path.to_str().unwrap().replace('"', "\\\"");
    let description = format!(
        "filesrc location=\"{location}\" ! decodebin name=d \
         d. ! queue ! videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=64,height=48 ! appsink name=v sync=false \
         d. ! queue ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,layout=interleaved,channels=1,rate={RATE} ! appsink name=a sync=false"
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let frames: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let sound: Arc<Mutex<SoundBuffers>> = Arc::default();
    let sink = |name: &str| pipeline.by_name(name).unwrap().downcast::<gst_app::AppSink>().unwrap();
    let f = frames.clone();
    sink("v").set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let mean = map.iter().map(|&y| f64::from(y)).sum::<f64>() / map.len().max(1) as f64;
                let pts = buffer.pts().map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
                f.lock().unwrap().push((pts, mean));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let a = sound.clone();
    sink("a").set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let samples: Vec<f32> =
                    map.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                let pts = buffer.pts().map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
                a.lock().unwrap().push((pts, samples));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let outcome =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    match outcome.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!("decoding {}: {} ({:?})", path.display(), e.error(), e.debug()),
        _ => panic!("decoding {} did not finish in 120 s", path.display()),
    }
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    let sound = std::mem::take(&mut *sound.lock().unwrap());
    let mut marks = Marks {
        frames: frames.len(),
        video_span: (frames.first().map_or(0.0, |f| f.0), frames.last().map_or(0.0, |f| f.0)),
        audio_secs: sound.iter().map(|(_, s)| s.len()).sum::<usize>() as f64 / f64::from(RATE),
        ..Default::default()
    };
    marks.flashes = flashes(&frames);
    marks.beeps = beep_onsets(&sound, RATE);
    marks
}

/// Times of frames bright after a dark one, from `(pts, mean luma)`.
pub fn flashes(frames: &[(f64, f64)]) -> Vec<f64> {
    frames.windows(2).filter(|w| w[0].1 <= BRIGHT && w[1].1 > BRIGHT).map(|w| w[1].0).collect()
}

/// Beep onsets in decoded sound: buffers of `(pts, mono samples)` at `rate`.
pub fn beep_onsets(buffers: &[(f64, Vec<f32>)], rate: u32) -> Vec<f64> {
    // One time line of samples: each buffer placed at its PTS (a gap stays a gap).
    let mut times = Vec::new();
    let mut samples = Vec::new();
    for (pts, buf) in buffers {
        for (i, &s) in buf.iter().enumerate() {
            times.push(pts + i as f64 / f64::from(rate));
            samples.push(f64::from(s));
        }
    }
    let window = ((WINDOW_S * f64::from(rate)) as usize).max(1);
    let mut onsets = Vec::new();
    let mut last_loud: Option<f64> = None;
    let mut w = 0;
    while w + window <= samples.len() {
        let chunk = &samples[w..w + window];
        let rms = (chunk.iter().map(|s| s * s).sum::<f64>() / window as f64).sqrt();
        if rms > LOUD_RMS {
            let quiet_before = last_loud.is_none_or(|t| times[w] - t >= QUIET_BEFORE);
            if quiet_before {
                let from = w.saturating_sub(window);
                let first = (from..w + window).find(|&i| samples[i].abs() > ONSET_LEVEL).unwrap_or(w);
                let tone =
                    (first..(first + rate as usize / 20).min(samples.len())).map(|i| samples[i]).collect::<Vec<_>>();
                if tone_fraction(&tone, 1000.0, rate) > 0.5 {
                    onsets.push(times[first]);
                }
            }
            last_loud = Some(times[w + window - 1]);
        }
        w += window;
    }
    onsets
}

/// The share of `samples`' energy at `hz` (Goertzel), 0–1.
fn tone_fraction(samples: &[f64], hz: f64, rate: u32) -> f64 {
    let n = samples.len();
    if n == 0 {
        return 0.0;
    }
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    let energy: f64 = samples.iter().map(|x| x * x).sum();
    // A pure tone of n samples has Goertzel power energy * n / 2.
    (power / (energy * n as f64 / 2.0)).min(1.0)
}
