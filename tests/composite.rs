//! The room composite by its content: publishers with distinct solid colours
//! and tones, recorded by an in-process gateway with `recording.mode =
//! "composite"`; the file is decoded by ffmpeg and each tile's colour and
//! each tone of the mix looked for.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::peers::*;
use common::*;
use rtcio_gateway::composite::layout::LayoutKind;
use rtcio_gateway::config::OutputMode;
use rtcio_gateway::media::source::{AudioCodec, Input, MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::metrics::Metrics;

const RED: u32 = 0xff0000;
const BLUE: u32 = 0x0000ff;

fn solid(rgb: u32, tone_hz: f64) -> MediaSource {
    MediaSource::start(&SourceConfig {
        input: Input::Solid { rgb, tone_hz, volume: 0.5 },
        video: Some(VideoCodec::Vp8),
        audio: Some(AudioCodec::Opus),
        ..Default::default()
    })
    .unwrap()
}

/// A frame at `at` seconds, scaled to 64×36 RGB.
fn frame_at(path: &Path, at: f64) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-vf", "scale=64:36", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 64 * 36 * 3, "one 64x36 frame at {at} s");
    out.stdout
}

/// The mean colour around a point given as fractions of the picture.
fn colour(frame: &[u8], fx: f64, fy: f64) -> (f64, f64, f64) {
    let (cx, cy) = ((fx * 64.0) as i32, (fy * 36.0) as i32);
    let mut sum = (0.0, 0.0, 0.0);
    let mut n = 0.0;
    for y in cy - 2..=cy + 2 {
        for x in cx - 2..=cx + 2 {
            let i = ((y * 64 + x) * 3) as usize;
            sum = (sum.0 + frame[i] as f64, sum.1 + frame[i + 1] as f64, sum.2 + frame[i + 2] as f64);
            n += 1.0;
        }
    }
    (sum.0 / n, sum.1 / n, sum.2 / n)
}

fn near(c: (f64, f64, f64), rgb: u32) -> bool {
    let want = (((rgb >> 16) & 0xff) as f64, ((rgb >> 8) & 0xff) as f64, (rgb & 0xff) as f64);
    ((c.0 - want.0).powi(2) + (c.1 - want.1).powi(2) + (c.2 - want.2).powi(2)).sqrt() < 70.0
}

/// Mono sound from `from` for `secs`, 48 kHz.
fn sound(path: &Path, from: f64, secs: f64) -> Vec<f32> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{from}"), "-t", &format!("{secs}"), "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The amplitude of `hz` in `samples` (Goertzel).
fn amplitude(samples: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = x as f64 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len().max(1) as f64
}

fn composite_file(dir: &Path) -> Option<PathBuf> {
    let rooms = std::fs::read_dir(dir).ok()?;
    for room in rooms.flatten() {
        for file in std::fs::read_dir(room.path()).ok()?.flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            if name.contains("-composite-grid") && name.ends_with(".webm") {
                return Some(file.path());
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_composite_shows_each_publisher_in_its_tile_and_mixes_their_tones() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |c| {
        c.recording.mode = OutputMode::Composite;
        c.recording.layout = LayoutKind::Grid;
        c.recording.join_after_ms = 0;
    })
    .await;
    let metrics = Metrics::new();
    let mut alice = publisher(&url(&gw), "grid", "alice", &metrics);
    recorder_connected(&mut alice).await;
    let red = solid(RED, 440.0);
    alice.publish(red.stream("cam-a", "camera", None)).unwrap();
    let mut bob = publisher(&url(&gw), "grid", "bob", &metrics);
    recorder_connected(&mut bob).await;
    let blue = solid(BLUE, 880.0);
    bob.publish(blue.stream("cam-b", "camera", None)).unwrap();
    let file = wait_for_value("the composite's file", LONG, || {
        std::future::ready(composite_file(dir.path()).ok_or_else(|| "none yet".to_string()))
    })
    .await;
    // The scenario: both publish together for 7 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    alice.shutdown().await;
    bob.shutdown().await;
    gw.shutdown().await.unwrap();

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file.with_extension("json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "finished", "{manifest}");
    assert_eq!(manifest["composite"]["layout"], "grid", "{manifest}");
    assert!(manifest["t0_unix_ms"].as_f64().is_some(), "{manifest}");

    // Two tiles side by side in stream-start order: alice red on the left, bob blue on the right.
    let mut checked = 0;
    for at in [4.0, 5.0, 6.0] {
        let frame = frame_at(&file, at);
        let (left, right) = (colour(&frame, 0.25, 0.5), colour(&frame, 0.75, 0.5));
        assert!(near(left, RED), "left tile at {at} s is {left:?}, not red");
        assert!(near(right, BLUE), "right tile at {at} s is {right:?}, not blue");
        // Above and below the 4:3 pictures in their 16:9 cells: the black background.
        assert!(near(colour(&frame, 0.25, 0.08), 0x000000), "letterbox at {at} s is {:?}", colour(&frame, 0.25, 0.08));
        checked += 1;
    }
    assert_eq!(checked, 3);
    // Both tones in the mix, nothing at a frequency nobody sent.
    let mix = sound(&file, 4.0, 2.0);
    assert!(mix.len() > 48_000, "{} samples of sound", mix.len());
    let (a440, a880, a660) = (amplitude(&mix, 440.0), amplitude(&mix, 880.0), amplitude(&mix, 660.0));
    println!("mix amplitudes: 440 Hz {a440:.3}, 880 Hz {a880:.3}, 660 Hz {a660:.4}");
    assert!(a440 > 0.05 && a880 > 0.05, "440 Hz {a440:.3}, 880 Hz {a880:.3}");
    assert!(a660 < a440 / 10.0 && a660 < a880 / 10.0, "660 Hz {a660:.4}");
}
