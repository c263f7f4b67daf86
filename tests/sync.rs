//! Audio/video sync of recordings, measured by content: publishers send
//! sync marks (a white frame and a 1 kHz beep at every even second of UTC,
//! `publish --sync-marks`), the gateway records them, and the marks are
//! found again in the decoded file (tests/common/marks.rs, itself checked
//! here on a file with known offsets).
//!
//! Each test prints the offsets it measured (`cargo test --test sync --
//! --nocapture`).
//!
//! Measured (one run each of `cargo test --test sync -- --nocapture`): with
//! files placed by the senders' reports and a recording's start held until
//! every track has one (`media::sync_clock`), beep − flash was −2.0…+0.7 ms
//! (VP8/WebM), −0.4…+0.6 ms (H.264/Matroska), −19.7…+13.5 ms (Chromium);
//! flashes on the wall clock 39.7–47.8 ms after their even second (our
//! publisher sends 40 ms after capture, and webrtc-rs's reports tie RTP time
//! to the sending) and −2.1…+13.9 ms (Chromium). Before, on the arrival
//! clock (the time of each 100 ms drain of the tracks), each track sat at
//! its own lateness: VP8/WebM 31.2–47.8 ms over 6 runs (3 over 40 ms),
//! H.264/Matroska 3.9–48.4 ms over 5 runs (1 over), Chromium −83…+44 ms over
//! 4 runs (3 over); flashes on the wall clock 78–144 ms (ours) and 68–216 ms
//! (Chromium) late.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::marks::{Marks, find_marks, summary_ms};
use common::media::*;
use common::peers::*;
use common::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use rtcio_gateway::media::source::{AudioCodec, Input, MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::media::sync_marks;
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::room::Participant;
use serde_json::Value;

/// Most a beep may be off its flash in a recording.
const AV_TOLERANCE_S: f64 = 0.040;
/// Most a flash may be off its even second on the wall clock (manifest `t0_unix_ms`).
const WALL_TOLERANCE_MS: f64 = 80.0;
const FINALISED: Duration = Duration::from_secs(15);

fn marks_source(video: VideoCodec) -> MediaSource {
    MediaSource::start(&SourceConfig {
        input: Input::SyncMarks,
        video: Some(video),
        audio: Some(AudioCodec::Opus),
        ..Default::default()
    })
    .expect("sync-mark source starts")
}

/// Write a 5 s VP8/Opus WebM whose flashes are at 1 s and 3 s and whose beeps
/// start `beep_after` later, with the sync-mark painting of the crate.
fn synthetic_file(path: &Path, beep_after: Duration) {
    gst::init().unwrap();
    let description = format!(
        "videotestsrc pattern=black num-buffers=150 ! capsfilter name=v caps=video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! vp8enc deadline=1 ! webmmux name=mux ! filesink location=\"{}\" \
         audiotestsrc wave=silence num-buffers=500 samplesperbuffer=480 ! capsfilter name=a caps=audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2 \
         ! opusenc ! mux.",
        path.display()
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    // File time t is "UTC" t + 1 s for the pictures and t + 1 s - beep_after for the sound.
    let second = 1_000_000_000u64;
    let audio_shift = second - beep_after.as_nanos() as u64;
    // Frames of 30 fps from "UTC" 1 s: frames 30 and 90 flash.
    let grid = sync_marks::FrameGrid::new(second, 30, 1);
    let pad = pipeline.by_name("v").unwrap().static_pad("src").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let vinfo = gstreamer_video::VideoInfo::from_caps(&pad.current_caps().unwrap()).unwrap();
        let buffer = info.buffer_mut().unwrap();
        let white = grid.is_flash_frame(buffer.pts().unwrap().nseconds() + second);
        let mut frame = gstreamer_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &vinfo).unwrap();
        frame.plane_data_mut(0).unwrap().fill(if white { 235 } else { 16 });
        gst::PadProbeReturn::Ok
    });
    let pad = pipeline.by_name("a").unwrap().static_pad("src").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let buffer = info.buffer_mut().unwrap();
        let start = buffer.pts().unwrap().nseconds() + audio_shift;
        let buffer = buffer.make_mut();
        let mut map = buffer.map_writable().unwrap();
        let mut samples: Vec<i16> = map.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        sync_marks::fill_beep_s16(start, 48_000, 2, Some(&grid), &mut samples);
        for (b, s) in map.chunks_exact_mut(2).zip(samples) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "{msg:?}");
}

#[test]
fn the_detector_finds_known_offsets_in_a_synthetic_file() {
    let dir = tempfile::tempdir().unwrap();
    for after_ms in [30u64, 0] {
        let file = dir.path().join(format!("marks-{after_ms}.webm"));
        synthetic_file(&file, Duration::from_millis(after_ms));
        let marks = find_marks(&file);
        println!("synthetic, beep {after_ms} ms after the flash: {marks:?}");
        assert_eq!(marks.flashes.len(), 2, "{marks:?}");
        assert!((marks.flashes[0] - 1.0).abs() < 0.001 && (marks.flashes[1] - 3.0).abs() < 0.001, "{marks:?}");
        let pairs = marks.pairs();
        assert_eq!(pairs.len(), 2, "{marks:?}");
        for (flash, offset) in pairs {
            assert!(
                (offset - after_ms as f64 / 1000.0).abs() <= 0.002,
                "the beep after the flash at {flash:.3} s is {:.1} ms off, expected {after_ms} ± 2 ms: {marks:?}",
                offset * 1000.0
            );
        }
        std::fs::remove_file(&file).unwrap();
    }
}

/// A gateway recording room `room`; `video` publishers send sync marks, the
/// first at once and each later one `stagger` of recorded media after the
/// one before; every file is recorded until it holds `secs` s of media.
/// Returns each finished file with its manifest, in publishing order (and
/// the directory holding them, removed when dropped).
async fn record_marks(
    room: &str,
    video: VideoCodec,
    publishers: usize,
    stagger: f64,
    secs: f64,
) -> (tempfile::TempDir, Vec<(PathBuf, Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let room_dir = dir.path().join(room);
    let mut peers: Vec<(Participant, MediaSource)> = Vec::new();
    for i in 0..publishers {
        if i > 0 {
            // The later publisher joins once the earlier one has been recorded for `stagger`.
            recordings_hold(&room_dir, i, stagger).await;
        }
        let mut p = publisher(&url(&gw), room, &format!("marks-{i}"), &metrics);
        recorder_connected(&mut p).await;
        let source = marks_source(video);
        p.publish(source.stream(&format!("marks-{i}"), "camera", None)).unwrap();
        peers.push((p, source));
    }
    recordings_hold(&room_dir, publishers, secs).await;
    for (i, (p, _)) in peers.iter_mut().enumerate() {
        p.unpublish(&format!("marks-{i}")).unwrap();
    }
    let done = finished_manifests(&room_dir, publishers, FINALISED).await;
    for (p, source) in peers {
        p.shutdown().await;
        drop(source);
    }
    gw.shutdown().await.unwrap();
    let files = (0..publishers)
        .map(|i| {
            let (path, manifest) = done
                .iter()
                .find(|(_, m)| m["peer"]["name"] == format!("marks-{i}"))
                .unwrap_or_else(|| panic!("no recording of marks-{i}: {done:#?}"));
            (file_of(path, manifest), manifest.clone())
        })
        .collect();
    (dir, files)
}

/// Every flash has its beep within [`AV_TOLERANCE_S`], and at least 3 marks were found.
fn assert_lip_sync(what: &str, marks: &Marks) {
    let pairs = marks.pairs();
    let offsets: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    println!("{what}: beep - flash per mark {:?} ms; {}", ms(&offsets), summary_ms(&offsets));
    assert!(pairs.len() >= 3, "{what}: only {} marks with both a flash and a beep: {marks:?}", pairs.len());
    assert!(
        pairs.len() + 1 >= marks.flashes.len().max(marks.beeps.len()),
        "{what}: flashes and beeps do not pair up: {marks:?}"
    );
    for (flash, offset) in &pairs {
        assert!(
            offset.abs() <= AV_TOLERANCE_S,
            "{what}: the beep of the flash at {flash:.3} s is {:.1} ms off (tolerance {:.0} ms): {marks:?}",
            offset * 1000.0,
            AV_TOLERANCE_S * 1000.0
        );
    }
}

fn ms(values: &[f64]) -> Vec<String> {
    values.iter().map(|v| format!("{:.1}", v * 1000.0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_webm_recording_keeps_sync_marks_in_lip_sync() {
    let (_dir, files) = record_marks("sync-vp8", VideoCodec::Vp8, 1, 0.0, 8.0).await;
    let (file, manifest) = &files[0];
    assert_eq!(manifest["template"], "record-webm");
    let marks = find_marks(file);
    assert_lip_sync("VP8/WebM", &marks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_matroska_recording_keeps_sync_marks_in_lip_sync() {
    let (_dir, files) = record_marks("sync-h264", VideoCodec::H264, 1, 0.0, 8.0).await;
    let (file, manifest) = &files[0];
    assert_eq!(manifest["template"], "record-mkv");
    let marks = find_marks(file);
    assert_lip_sync("H.264/Matroska", &marks);
}

/// Two publishers joining about 3 s apart: every flash, placed on the wall
/// clock by its manifest's `t0_unix_ms`, lands on an even second.
///
/// With `t0` on the gateway's clock at pipeline start the flashes landed
/// 78–144 ms after their even seconds (five runs, both publishers); from the sender's reports
/// they should land the publisher's send delay (40 ms,
/// `media::source::SYNC_MARKS_SEND_DELAY`) plus at most half a frame
/// (16.7 ms) after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flashes_of_two_staggered_publishers_land_on_even_seconds_of_the_wall_clock_and_together_in_the_mux() {
    let (_dir, files) = record_marks("sync-wall", VideoCodec::Vp8, 2, 3.0, 6.0).await;
    let mut failures = Vec::new();
    for (i, (file, manifest)) in files.iter().enumerate() {
        let t0 = manifest["t0_unix_ms"].as_f64().unwrap_or_else(|| panic!("no t0_unix_ms: {manifest}"));
        let marks = find_marks(file);
        assert!(marks.flashes.len() >= 3, "publisher {i}: only {} flashes: {marks:?}", marks.flashes.len());
        // Signed distance of each flash from the nearest even second, in ms.
        let errors: Vec<f64> = marks
            .flashes
            .iter()
            .map(|f| {
                let wall = t0 + f * 1000.0;
                wall - (wall / 2000.0).round() * 2000.0
            })
            .collect();
        println!(
            "publisher {i}: clock {}; flash - even second per mark {:?} ms; {}",
            manifest["clock"],
            errors.iter().map(|e| format!("{e:.1}")).collect::<Vec<_>>(),
            summary_ms(&errors.iter().map(|e| e / 1000.0).collect::<Vec<_>>())
        );
        failures
            .extend(errors.iter().filter(|e| e.abs() > WALL_TOLERANCE_MS).map(|e| format!("publisher {i}: {e:.1} ms")));
    }
    assert!(failures.is_empty(), "flashes off their even second by more than {WALL_TOLERANCE_MS} ms: {failures:?}");

    // `mux` puts both on the room clock: the same mark of the two publishers
    // (their flashes at one even second) comes at the same time in its output.
    let room_dir = files[0].0.parent().unwrap();
    let run = common::mux::run_mux(room_dir, &[]);
    assert_eq!(run.code, 0, "mux failed: {}{}", run.stdout, run.stderr);
    let muxed = common::mux::mux_output(room_dir);
    let per_track: Vec<Vec<f64>> = (0..2).map(|i| video_flashes(&muxed, i)).collect();
    let mut apart = Vec::new();
    for a in &per_track[0] {
        // The other publisher's flash of the same mark: the nearest one, marks being 2 s apart.
        if let Some(b) = per_track[1].iter().copied().min_by(|x, y| (x - a).abs().total_cmp(&(y - a).abs()))
            && (b - a).abs() < 1.0
        {
            apart.push(b - a);
        }
    }
    println!("mux: flashes per video track {per_track:?}; the same mark apart by {}", summary_ms(&apart));
    assert!(apart.len() >= 2, "fewer than two marks of both publishers in the mux output: {per_track:?}");
    let worst = apart.iter().fold(0f64, |w, d| w.max(d.abs()));
    assert!(worst <= WALL_TOLERANCE_MS / 1000.0, "the same mark {:.1} ms apart in the mux output", worst * 1000.0);
}

/// Flash times (s) of the `index`-th video track of a file, decoded by
/// ffmpeg: frames whose mean luma (signalstats YAVG) jumps above 200.
fn video_flashes(path: &Path, index: usize) -> Vec<f64> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:v:{index}"), "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-"])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut flashes = Vec::new();
    let (mut pts, mut was_bright) = (None, false);
    for line in text.lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            pts = t.trim().parse::<f64>().ok();
        } else if let Some(y) = line.strip_prefix("lavfi.signalstats.YAVG=") {
            let bright = y.trim().parse::<f64>().unwrap_or(0.0) > 200.0;
            if bright
                && !was_bright
                && let Some(t) = pts
            {
                flashes.push(t);
            }
            was_bright = bright;
        }
    }
    flashes
}

/// The publisher alone, without the gateway: every RTP packet is stamped with
/// the moment it leaves the source (which is what webrtc-rs's sender reports
/// call its RTP time: see `media::source`), muxed to WebM and decoded. The
/// beeps must come with their flashes — within a few milliseconds, not just
/// the recording tolerance: this is the publisher's own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_mark_publisher_sends_audio_and_video_together() {
    use rtc::shared::marshal::Marshal;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sent.webm");
    gst::init().unwrap();
    let description = format!(
        "appsrc name=video is-live=true do-timestamp=true format=time caps=application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=96 \
         ! rtpvp8depay ! queue ! webmmux name=mux ! filesink location=\"{}\" \
         appsrc name=audio is-live=true do-timestamp=true format=time caps=application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111 \
         ! rtpopusdepay ! opusparse ! queue ! mux.",
        file.display()
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let source = marks_source(VideoCodec::Vp8);
    let audio_packets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut forwarders = Vec::new();
    for track in source.tracks() {
        let appsrc = pipeline.by_name(track.kind.as_str()).unwrap().downcast::<gstreamer_app::AppSrc>().unwrap();
        let mut packets = track.packets.subscribe();
        let counter = (track.kind.as_str() == "audio").then(|| audio_packets.clone());
        let _ = track.keyframe_requests.send(());
        forwarders.push(tokio::spawn(async move {
            while let Ok(packet) = packets.recv().await {
                let _ = appsrc.push_buffer(gst::Buffer::from_slice(packet.marshal().unwrap()));
                if let Some(c) = &counter {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _ = appsrc.end_of_stream();
        }));
    }
    // 8 s of sound (20 ms a packet).
    wait_until_sync("8 s of the publisher's audio", LONG, || {
        audio_packets.load(std::sync::atomic::Ordering::Relaxed) >= 400
    })
    .await;
    drop(source);
    for f in forwarders {
        f.await.unwrap();
    }
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "{msg:?}");
    let marks = find_marks(&file);
    assert_lip_sync("publisher, stamped at sending", &marks);
    for (flash, offset) in marks.pairs() {
        assert!(
            offset.abs() <= 0.010,
            "the beep of the flash at {flash:.3} s left {:.1} ms off it: {marks:?}",
            offset * 1000.0
        );
    }
}

/// Chromium publishing through the rtc.io test client: a canvas stream with
/// one white frame and a WebAudio beep at every even second of `Date.now()`
/// (tests/browser/sync-marks.mjs drives it against the gateway binary and
/// hands back the recording); every beep within 40 ms of its flash.
#[test]
fn chromium_canvas_and_oscillator_marks_are_recorded_in_lip_sync() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed (run scripts/install-deps.sh)"
    );
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core/package.json").exists(),
        "run `npm ci` in tests/browser (scripts/install-deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chromium.webm");
    let out = std::process::Command::new("node")
        .arg("sync-marks.mjs")
        .arg(&file)
        .current_dir(&browser)
        .env("GATEWAY_BIN", env!("CARGO_BIN_EXE_rtcio-gateway"))
        .output()
        .expect("node is installed (run scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sync-marks.mjs failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let manifest: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the manifest");
    for line in stdout.lines().filter(|l| l.starts_with("painted")) {
        println!("Chromium: {line}");
    }
    let marks = find_marks(&file);
    if let Some(t0) = manifest["t0_unix_ms"].as_f64() {
        let errors: Vec<f64> =
            marks.flashes.iter().map(|f| (t0 + f * 1000.0) - ((t0 + f * 1000.0) / 2000.0).round() * 2000.0).collect();
        println!(
            "Chromium: flash - even second on the manifest's clock ({}) {:?} ms",
            manifest["clock"],
            errors.iter().map(|e| format!("{e:.1}")).collect::<Vec<_>>()
        );
    }
    assert_lip_sync("Chromium VP8/WebM", &marks);
}
