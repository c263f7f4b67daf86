//! Recording through the gateway, end to end: a gateway with recording on,
//! publishers from the participant module on loopback WebRTC, and the files
//! checked with ffprobe/ffmpeg like a user would.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::media::*;
use common::peers::*;
use common::*;
use rtcio_gateway::media::source::VideoCodec;
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::events::ParticipantEvent;
use serde_json::json;

/// Finalising must take at most 5 s; allow for a loaded CI machine on top.
const FINALISED: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_opus_are_recorded_to_webm_with_manifest_and_chat_log() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut alice = publisher(&url(&gw), "room/../1", "alice", &metrics);
    recorder_connected(&mut alice).await;
    let media = source(Some(VideoCodec::Vp8));
    alice.publish(media.stream("cam-1", "camera", Some(json!({"title": "standup"})))).unwrap();
    let published = Instant::now();
    for i in 0..10 {
        alice.emit_on("chat", "msg", &[json!(format!("hello #{i}"))]).unwrap();
    }
    alice.emit("raise-hand", &[json!({"up": true})]).unwrap();
    alice.send_binary("chat", bytes::Bytes::from_static(b"\x00\x01binary")).unwrap();
    let room_dir = wait_for_value("the room's recordings directory", LONG, || {
        let rooms: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        std::future::ready(if rooms.len() == 1 { Ok(rooms[0].clone()) } else { Err(format!("{rooms:?}")) })
    })
    .await;
    wait_until_sync("the chat, the raised hand and the binary message in the chat log", LONG, || {
        let log = std::fs::read_to_string(room_dir.join("chat.jsonl")).unwrap_or_default();
        let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        lines.iter().filter(|l| l["channel"] == "chat" && l["event"] == "msg").count() >= 9
            && lines.iter().any(|l| l["channel"] == "ctrl")
            && lines.iter().any(|l| l["binary"].is_object())
    })
    .await;
    recordings_hold(&room_dir, 1, 4.0).await;
    let published_for = published.elapsed().as_secs_f64();
    alice.shutdown().await;
    let left = Instant::now();

    // The room id cannot escape the recordings directory.
    let rooms: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let room_dir = &rooms[0];
    assert!(room_dir.file_name().unwrap().to_str().unwrap().starts_with("room_.._1-"), "{room_dir:?}");

    let done = finished_manifests(room_dir, 1, FINALISED).await;
    assert!(left.elapsed() < Duration::from_secs(6), "finalised {:?} after the peer left", left.elapsed());
    let (path, manifest) = &done[0];
    assert_eq!(manifest["state"], "finished");
    assert_eq!(manifest["end_reason"], "peer-left");
    assert_eq!(manifest["room"], "room/../1");
    assert_eq!(manifest["peer"]["name"], "alice");
    assert_eq!(manifest["event"], "camera");
    assert_eq!(manifest["events"]["camera"][0]["metadata"]["title"], "standup");
    assert_eq!(manifest["template"], "record-webm");
    assert_eq!(manifest["codecs"]["video"]["mime_type"], "video/VP8");
    assert_eq!(manifest["codecs"]["audio"]["mime_type"], "audio/opus");
    assert!(manifest["first_keyframe_ms"].as_u64().is_some(), "{manifest}");
    // The file is placed on the sender's clock by its reports (both tracks
    // report: webrtc-rs every second or so); its time zero is near the start
    // (the same machine's clock, so within the start-up of the pipeline).
    assert_eq!(manifest["clock"]["source"], "sender-reports", "{manifest}");
    assert!(manifest["clock"]["sender_reports"].as_u64().unwrap() >= 2, "{manifest}");
    let t0 = manifest["t0_unix_ms"].as_f64().unwrap();
    let started = manifest["started_unix_ms"].as_f64().unwrap();
    assert!((t0 - started).abs() < 1000.0, "t0 {t0} vs started {started}");
    for kind in ["video", "audio"] {
        let reports = metric(&gw, &format!("rtcio_gateway_participant_sender_reports_total{{kind=\"{kind}\"}}")).await;
        assert!(reports >= 1.0, "{reports} {kind} sender reports");
    }
    let file = file_of(path, manifest);
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    let peer_id = manifest["peer"]["id"].as_str().unwrap();
    assert!(name.ends_with(&format!("-{peer_id}-camera-cam-1.webm")), "{name}");
    assert_eq!(manifest["size_bytes"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());

    let probe = ffprobe(&file);
    let video = stream(&probe, "video").expect("a video stream");
    assert_eq!(video["codec_name"], "vp8");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(stream(&probe, "audio").expect("an audio stream")["codec_name"], "opus");
    let duration = duration_of(&probe);
    assert!(
        (duration - published_for).abs() < 1.0,
        "file lasts {duration:.2}s, the stream was published for {published_for:.2}s"
    );
    let (decoded, errors, last_frame) = decode(&file);
    assert!(decoded && errors.is_empty(), "{errors}");
    assert!(last_frame > published_for - 1.2, "video decodes to {last_frame:.2}s of {published_for:.2}s");

    let log = std::fs::read_to_string(room_dir.join("chat.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let chat: Vec<&str> = lines
        .iter()
        .filter(|l| l["channel"] == "chat" && l["event"] == "msg")
        .map(|l| l["args"][0].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("hello #{i}")).collect();
    // The first message right after connect can be lost (known participant issue); the rest arrive in order.
    assert!(chat.len() >= 9 && expected.ends_with(&chat.iter().map(|s| s.to_string()).collect::<Vec<_>>()), "{chat:?}");
    let ctrl = lines.iter().find(|l| l["channel"] == "ctrl").expect("ctrl event logged");
    assert_eq!(ctrl["event"], "raise-hand");
    assert_eq!(ctrl["args"][0]["up"], true);
    assert_eq!(ctrl["peer_name"], "alice");
    assert_eq!(ctrl["room"], "room/../1");
    assert!(ctrl["time"].as_str().unwrap().ends_with('Z') && ctrl["unix_ms"].as_u64().unwrap() > 0);
    let binary = lines.iter().find(|l| l["binary"].is_object()).expect("binary message logged");
    assert_eq!(binary["binary"]["bytes"], 8);
    assert_eq!(binary["binary"]["sha256"].as_str().unwrap().len(), 64);

    assert!(metric(&gw, "rtcio_gateway_recordings_total{result=\"finished\"}").await >= 1.0);
    assert!(metric(&gw, "rtcio_gateway_recording_bytes_written_total").await > 10_000.0);
    assert!(metric(&gw, "rtcio_gateway_media_keyframes_total").await >= 1.0);
    assert!(metric(&gw, "rtcio_gateway_media_first_keyframe_seconds_count").await >= 1.0);
    assert!(metric(&gw, "rtcio_gateway_recordings_free_bytes").await > 0.0);
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_recorded_to_matroska_and_audio_only_streams_work() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut bob = publisher(&url(&gw), "h264", "bob", &metrics);
    recorder_connected(&mut bob).await;
    let video = source(Some(VideoCodec::H264));
    let voice = source(None);
    bob.publish(video.stream("cam-h264", "camera", None)).unwrap();
    bob.publish(voice.stream("mic-only", "microphone", None)).unwrap();
    let room_dir = dir.path().join("h264");
    recordings_hold(&room_dir, 2, 3.5).await;
    bob.unpublish("cam-h264").unwrap();
    bob.unpublish("mic-only").unwrap();
    let done = finished_manifests(&room_dir, 2, FINALISED).await;
    let by_event = |e: &str| done.iter().find(|(_, m)| m["event"] == e).unwrap_or_else(|| panic!("{e}: {done:#?}"));

    let (path, manifest) = by_event("camera");
    assert_eq!(manifest["end_reason"], "stream-ended");
    assert_eq!(manifest["template"], "record-mkv");
    let file = file_of(path, manifest);
    assert!(file.extension().unwrap() == "mkv");
    let probe = ffprobe(&file);
    assert_eq!(stream(&probe, "video").unwrap()["codec_name"], "h264");
    assert_eq!(stream(&probe, "audio").unwrap()["codec_name"], "opus");
    assert!(duration_of(&probe) > 2.5, "{probe}");
    let (decoded, errors, _) = decode(&file);
    assert!(decoded && errors.is_empty(), "{errors}");

    let (path, manifest) = by_event("microphone");
    assert!(manifest["codecs"]["video"].is_null());
    let probe = ffprobe(&file_of(path, manifest));
    assert!(stream(&probe, "video").is_none());
    assert_eq!(stream(&probe, "audio").unwrap()["codec_name"], "opus");
    assert!(duration_of(&probe) > 2.0, "{probe}");
    bob.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_changes_and_a_restarted_encoder_keep_one_playable_file() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut carol = publisher(&url(&gw), "changes", "carol", &metrics);
    recorder_connected(&mut carol).await;
    // VP8 into WebM and H.264 into Matroska (which cannot change caps mid-file).
    let vp8 = source(Some(VideoCodec::Vp8));
    let h264 = source(Some(VideoCodec::H264));
    // (One publisher each: our publisher negotiates one video codec per connection.)
    let mut hugo = publisher(&url(&gw), "changes", "hugo", &metrics);
    recorder_connected(&mut hugo).await;
    carol.publish(vp8.stream("cam", "camera", None)).unwrap();
    hugo.publish(h264.stream("cam-h264", "camera", None)).unwrap();
    // About two seconds of media at each size, in both files.
    let room_dir = dir.path().join("changes");
    recordings_hold(&room_dir, 2, 2.0).await;
    vp8.set_video_size(320, 240);
    h264.set_video_size(320, 240);
    recordings_hold(&room_dir, 2, 4.0).await;
    vp8.set_video_size(640, 480);
    h264.set_video_size(640, 480);
    recordings_hold(&room_dir, 2, 6.0).await;
    carol.unpublish("cam").unwrap();
    hugo.unpublish("cam-h264").unwrap();
    let done = finished_manifests(&dir.path().join("changes"), 2, FINALISED).await;
    assert_eq!(manifests(&dir.path().join("changes")).len(), 2, "one file per stream: {done:#?}");
    for (path, manifest) in &done {
        assert_eq!(manifest["end_reason"], "stream-ended", "{manifest}");
        let file = file_of(path, manifest);
        let (decoded, errors, last) = decode(&file);
        assert!(decoded && errors.is_empty(), "{}: {errors}", file.display());
        assert!(last > 4.5, "{}: video decodes to {last:.2}s", file.display());
        let sizes = frame_sizes(&file);
        assert_eq!(sizes, vec![(640, 480), (320, 240), (640, 480)], "picture sizes in {}", file.display());
    }
    assert!(done.iter().any(|(_, m)| m["template"] == "record-mkv"), "{done:#?}");
    hugo.shutdown().await;
    carol.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_removed_readded_or_late_never_break_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut dave = publisher(&url(&gw), "tracks", "dave", &metrics);
    recorder_connected(&mut dave).await;
    let av = source(Some(VideoCodec::Vp8));
    let full = av.stream("s1", "camera", None);
    let mut audio_only = full.clone();
    audio_only.tracks.retain(|t| t.kind == rtcio_gateway::participant::events::MediaKind::Audio);

    let room_dir = dir.path().join("tracks");
    let has_video = |m: &serde_json::Value| m["codecs"]["video"].is_object();
    // Audio long before video: the stream starts audio-only (three seconds of it)...
    dave.publish(audio_only.clone()).unwrap();
    recording_in_progress(&room_dir, "3 s of audio-only recording", |m, secs| !has_video(m) && secs >= 3.0).await;
    // ...video joins it (a new track with a new SSRC), for three seconds...
    dave.publish(full.clone()).unwrap();
    let (_, with_video) =
        recording_in_progress(&room_dir, "3 s of audio+video recording", |m, secs| has_video(m) && secs >= 3.0).await;
    // ...video is removed and re-added quickly (a new SSRC again): re-added as soon as the
    // recorder has taken the removal (the negotiation without video is done), well within the
    // track wait (700 ms)...
    let negotiated = || -> u64 {
        let ok = |role: &str| metrics.participant.negotiations_total.with_label_values(&[role, "ok"]).get();
        ok("polite") + ok("impolite")
    };
    let before = negotiated();
    dave.publish(audio_only.clone()).unwrap();
    wait_until_sync("the video's removal negotiated with the recorder", LONG, || negotiated() > before).await;
    // The same track again (removeTrack + addTrack of one MediaStreamTrack): a new transceiver, same track id.
    dave.publish(full.clone()).unwrap();
    // Three more seconds with video (in the same file, if the re-add continued it as it should).
    recording_in_progress(&room_dir, "3 s more of audio+video recording", |m, secs| {
        has_video(m) && secs >= if m["file"] == with_video["file"] { 6.0 } else { 3.0 }
    })
    .await;
    dave.unpublish("s1").unwrap();

    let all = all_finished_manifests(&room_dir, 2, FINALISED).await;
    let reasons: Vec<&str> = all.iter().map(|(_, m)| m["end_reason"].as_str().unwrap_or("")).collect();
    for (path, manifest) in &all {
        let file = file_of(path, manifest);
        let (decoded, errors, _) = decode(&file);
        if !errors.is_empty() {
            let _ = std::fs::copy(&file, "/tmp/bad.webm");
        }
        assert!(decoded && errors.is_empty(), "{}: {errors}\nall: {reasons:?}", file.display());
    }
    // First file: the audio before video arrived; the second holds audio and video to the end.
    assert!(all.len() >= 2, "{reasons:?}");
    assert_eq!(all[0].1["end_reason"], "tracks-changed", "{reasons:?}");
    assert!(all[0].1["codecs"]["video"].is_null());
    let last = &all.last().unwrap();
    assert_eq!(last.1["end_reason"], "stream-ended", "{reasons:?}");
    let probe = ffprobe(&file_of(&last.0, &last.1));
    assert!(stream(&probe, "video").is_some() && stream(&probe, "audio").is_some(), "{probe}");
    assert_eq!(all.len(), 2, "the quick re-add continued the same file: {reasons:?}");
    assert!(duration_of(&probe) > 5.0, "{probe}");
    // Video continues after the re-add, to the end of the file.
    let (_, _, last_frame) = decode(&file_of(&last.0, &last.1));
    assert!(last_frame > duration_of(&probe) - 1.0, "video stops at {last_frame:.2}s: {probe}");
    dave.shutdown().await;
    gw.shutdown().await.unwrap();
}

/// `rtcio-gateway serve` as a child process recording into `dir`; returns it and its URL.
fn spawn_serve(dir: &Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rtcio-gateway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--recordings"])
        .arg(dir)
        .env("RTCIO_GATEWAY_LOG__FORMAT", "json")
        .env("RTCIO_GATEWAY_RECORDING__UDP_BIND", "127.0.0.1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server log").unwrap();
        if let Some(rest) = line.split("\"local_addr\":\"").nth(1) {
            break rest.split('"').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

/// Wait until a recording of the room is being written; returns its manifest path.
async fn recording_started(room_dir: &Path) -> (std::path::PathBuf, serde_json::Value) {
    wait_for_value(&format!("a recording started in {}", room_dir.display()), LONG, || {
        let all = manifests(room_dir);
        let started = all.iter().find(|(path, m)| {
            m["state"] == "recording" && std::fs::metadata(file_of(path, m)).map(|m| m.len()).unwrap_or(0) > 0
        });
        std::future::ready(started.cloned().ok_or_else(|| format!("{all:#?}")))
    })
    .await
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_survives_sigkill_up_to_the_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn_serve(dir.path());
    let mut child = KillOnDrop(child);
    let metrics = Metrics::new();
    let mut erin = publisher(&url, "crash", "erin", &metrics);
    recorder_connected(&mut erin).await;
    let media = source(Some(VideoCodec::Vp8));
    erin.publish(media.stream("cam", "camera", None)).unwrap();
    let (path, manifest) = recording_started(&dir.path().join("crash")).await;
    recordings_hold(&dir.path().join("crash"), 1, 4.0).await;
    child.0.kill().unwrap(); // SIGKILL
    let killed_at = unix_ms_now();
    child.0.wait().unwrap();
    erin.shutdown().await;

    let file = file_of(&path, &manifest);
    let recorded_for = (killed_at - manifest["started_unix_ms"].as_u64().unwrap()) as f64 / 1000.0;
    let (decoded, errors, last_frame) = decode(&file);
    assert!(decoded, "the killed recording does not decode: {errors}");
    assert!(
        last_frame >= recorded_for - 1.0,
        "decodes up to {last_frame:.2}s of {recorded_for:.2}s recorded before the kill"
    );
    let probe = ffprobe(&file);
    assert!(stream(&probe, "audio").is_some() && stream(&probe, "video").is_some());
    // The manifest still says what the file is, just not how it ended.
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(after["state"], "recording");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finalises_every_recording_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn_serve(dir.path());
    let mut child = KillOnDrop(child);
    let metrics = Metrics::new();
    let mut erin = publisher(&url, "term", "erin", &metrics);
    recorder_connected(&mut erin).await;
    let media = source(Some(VideoCodec::H264));
    erin.publish(media.stream("cam", "camera", None)).unwrap();
    let room_dir = dir.path().join("term");
    recording_started(&room_dir).await;
    recordings_hold(&room_dir, 1, 3.0).await;
    let sent = std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let signalled = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.0.wait();
        (status, child)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(8), "exit took {took:?}");
    erin.shutdown().await;

    let all = manifests(&room_dir);
    assert_eq!(all.len(), 1, "{all:#?}");
    let (path, manifest) = &all[0];
    assert_eq!(manifest["state"], "finished", "{manifest}");
    assert_eq!(manifest["end_reason"], "shutdown");
    assert!(manifest["error"].is_null(), "{manifest}");
    let file = file_of(path, manifest);
    let probe = ffprobe(&file);
    let header_duration = duration_of(&probe);
    let wall = manifest["duration_secs"].as_f64().unwrap();
    assert!((header_duration - wall).abs() < 1.0, "header says {header_duration:.2}s, recorded {wall:.2}s");
    // Finalised: the index is written, so players can seek.
    let discover = std::process::Command::new("gst-discoverer-1.0").arg(&file).output().expect("gst-discoverer-1.0");
    let text = String::from_utf8_lossy(&discover.stdout);
    assert!(text.contains("Seekable: yes"), "{text}");
}

/// A full disk (here: the muxer also writes to /dev/full, which fails every
/// write with ENOSPC) fails the recording with the error in its manifest,
/// counts it, and the gateway keeps trying with a new file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_file_clearly_and_recording_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("record-webm.toml"),
        r#"kind = "record"
extension = "webm"
output = "webmmux name=mux ! tee name=t ! queue ! filesink location={location} t. ! queue ! filesink location=/dev/full"
[video]
VP8 = "appsrc name=video ! rtpjitterbuffer latency={latency} ! rtpvp8depay ! queue ! mux."
[audio]
OPUS = "appsrc name=audio ! rtpjitterbuffer latency={latency} ! rtpopusdepay ! opusparse ! queue ! mux."
"#,
    )
    .unwrap();
    init_tracing();
    let (recordings, user_templates) = (dir.path().to_path_buf(), templates.path().display().to_string());
    let (hook, deliveries) = common::webhooks::webhook_receiver().await;
    let gw = start_with(move |c| {
        c.recording.enabled = true;
        c.recording.dir = recordings;
        c.recording.udp_bind = "127.0.0.1".parse().unwrap();
        c.recording.track_wait_ms = 500;
        c.pipelines.dir = user_templates;
        c.webhooks.urls = vec![hook];
        c.webhooks.secret = common::webhooks::WEBHOOK_SECRET.into();
    })
    .await;
    let metrics = Metrics::new();
    let mut frank = publisher(&url(&gw), "full", "frank", &metrics);
    recorder_connected(&mut frank).await;
    let media = source(Some(VideoCodec::Vp8));
    frank.publish(media.stream("cam", "camera", None)).unwrap();
    let room_dir = dir.path().join("full");
    let failed = wait_for_value("two failed recordings (a retry after the first)", LONG, || {
        let all = manifests(&room_dir);
        let failed: Vec<_> = all.iter().filter(|(_, m)| m["state"] == "failed").cloned().collect();
        std::future::ready(if failed.len() >= 2 { Ok(failed) } else { Err(format!("{all:#?}")) })
    })
    .await;
    let (_, manifest) = &failed[0];
    assert_eq!(manifest["end_reason"], "pipeline-error");
    let error = manifest["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("space"), "{error}");
    assert!(metric(&gw, "rtcio_gateway_pipeline_errors_total{template=\"record-webm\"}").await >= 2.0);
    assert!(metric(&gw, "rtcio_gateway_recordings_total{result=\"failed\"}").await >= 2.0);
    // Whoever listens to webhooks hears about it, with the error.
    let failed_hooks = common::webhooks::delivered(&deliveries, "recording.failed").await;
    let hooked = &failed_hooks[0]["data"]["manifest"];
    assert_eq!(hooked["state"], "failed");
    assert!(hooked["error"].as_str().unwrap().to_lowercase().contains("space"), "{hooked}");
    frank.shutdown().await;
    gw.shutdown().await.unwrap();
}

/// Video that stops flowing while its track stays open (`replaceTrack(null)`)
/// must not hold the audio back: after 5 s the file is continued audio-only,
/// and when video comes back a new file takes it in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_video_does_not_hold_back_the_audio() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut ivy = publisher(&url(&gw), "stall", "ivy", &metrics);
    recorder_connected(&mut ivy).await;
    let media = source(Some(VideoCodec::Vp8));
    ivy.publish(media.stream("cam", "camera", None)).unwrap();
    let room_dir = dir.path().join("stall");
    let has_video = |m: &serde_json::Value| m["codecs"]["video"].is_object();
    let (_, first) =
        recording_in_progress(&room_dir, "2 s of audio+video", |m, secs| has_video(m) && secs >= 2.0).await;
    media.pause_video(true);
    // The stall ends the file; the audio goes on in an audio-only one.
    recording_in_progress(&room_dir, "2.5 s of audio-only recording while the video is stalled", |m, secs| {
        !has_video(m) && secs >= 2.5
    })
    .await;
    media.pause_video(false);
    recording_in_progress(&room_dir, "2.5 s of audio+video again after the stall", |m, secs| {
        has_video(m) && m["file"] != first["file"] && secs >= 2.5
    })
    .await;
    ivy.unpublish("cam").unwrap();
    let done = finished_manifests(&room_dir, 3, FINALISED).await;
    let summary: Vec<(String, bool)> = done
        .iter()
        .map(|(_, m)| (m["end_reason"].as_str().unwrap_or("").to_string(), m["codecs"]["video"].is_object()))
        .collect();
    assert_eq!(
        summary,
        vec![("tracks-changed".into(), true), ("tracks-changed".into(), false), ("stream-ended".into(), true)],
        "A/V, then audio-only while video stalled, then A/V again"
    );
    for (path, manifest) in &done {
        let file = file_of(path, manifest);
        let (decoded, errors, _) = decode(&file);
        assert!(decoded && errors.is_empty(), "{}: {errors}", file.display());
        assert!(stream(&ffprobe(&file), "audio").is_some(), "{}", file.display());
    }
    // The audio-only file was written while the video was stalled, not held back.
    let audio_only = ffprobe(&file_of(&done[1].0, &done[1].1));
    assert!(duration_of(&audio_only) > 2.0, "{audio_only}");
    ivy.shutdown().await;
    gw.shutdown().await.unwrap();
}

/// A hostile peer mixes junk into its video (random payloads, sizes and
/// markers, as valid RTP): the gateway keeps running, finalises that peer's
/// file, and records an honest peer in the same room cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_rtp_from_a_hostile_peer_harms_nobody_else() {
    use rtcio_gateway::participant::events::{MediaKind, RtpPacket};
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut mallory = publisher(&url(&gw), "hostile", "mallory", &metrics);
    let mut honest = publisher(&url(&gw), "hostile", "honest", &metrics);
    recorder_connected(&mut mallory).await;
    recorder_connected(&mut honest).await;

    // Mallory's video: the real encoder's packets with junk packets in between.
    let real = source(Some(VideoCodec::Vp8));
    let mut stream = real.stream("evil", "camera", None);
    let video = stream.tracks.iter().position(|t| t.kind == MediaKind::Video).unwrap();
    let (junk_tx, _) = tokio::sync::broadcast::channel::<RtpPacket>(1024);
    let mut from_encoder = stream.tracks[video].packets.subscribe();
    stream.tracks[video].packets = junk_tx.clone();
    let mixer = tokio::spawn(async move {
        let mut seq = 1000u16;
        let mut n = 0u64;
        while let Ok(mut packet) = from_encoder.recv().await {
            n += 1;
            if n.is_multiple_of(3) {
                let junk_len = (rtcio_gateway::ids::random_u64() % 1200) as usize;
                let junk: Vec<u8> = (0..junk_len).map(|_| rtcio_gateway::ids::random_u64() as u8).collect();
                let mut bad = packet.clone();
                bad.header.sequence_number = seq;
                bad.header.marker = n.is_multiple_of(2);
                bad.payload = bytes::Bytes::from(junk);
                seq = seq.wrapping_add(1);
                let _ = junk_tx.send(bad);
            }
            packet.header.sequence_number = seq;
            seq = seq.wrapping_add(1);
            let _ = junk_tx.send(packet);
        }
    });
    mallory.publish(stream).unwrap();
    let clean = source(Some(VideoCodec::Vp8));
    honest.publish(clean.stream("good", "camera", None)).unwrap();
    let room_dir = dir.path().join("hostile");
    recording_in_progress(&room_dir, "mallory's recording", |m, _| m["peer"]["name"] == "mallory").await;
    recording_in_progress(&room_dir, "4 s of the honest peer's recording", |m, secs| {
        m["peer"]["name"] == "honest" && secs >= 4.0
    })
    .await;
    mallory.unpublish("evil").unwrap();
    honest.unpublish("good").unwrap();
    let done = finished_manifests(&room_dir, 2, FINALISED).await;
    let (path, manifest) = done.iter().find(|(_, m)| m["peer"]["name"] == "honest").unwrap();
    let (decoded, errors, last) = decode(&file_of(path, manifest));
    assert!(decoded && errors.is_empty(), "the honest peer's file: {errors}");
    assert!(last > 3.0, "{last}");
    let (path, manifest) = done.iter().find(|(_, m)| m["peer"]["name"] == "mallory").unwrap();
    assert_eq!(manifest["state"], "finished", "{manifest}");
    assert!(ffprobe(&file_of(path, manifest))["format"]["format_name"].as_str().unwrap().contains("webm"));
    let (status, _) = http_get(&format!("{}/healthz", url(&gw))).await;
    assert_eq!(status, 200);
    mixer.abort();
    mallory.shutdown().await;
    honest.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_that_gets_no_media_shows_in_the_data_age_gauge() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |_| {}).await;
    let metrics = Metrics::new();
    let mut jay = publisher(&url(&gw), "silent", "jay", &metrics);
    recorder_connected(&mut jay).await;
    // Video only: when it stops, nothing reaches the file at all.
    let camera = rtcio_gateway::media::source::MediaSource::start(&rtcio_gateway::media::source::SourceConfig {
        audio: None,
        ..Default::default()
    })
    .unwrap();
    jay.publish(camera.stream("cam", "camera", None)).unwrap();
    recording_started(&dir.path().join("silent")).await;
    let gauge = "rtcio_gateway_recording_data_age_seconds";
    let until = |what: &'static str, pred: fn(f64) -> bool| {
        let gw = &gw;
        wait_for_value(what, LONG, move || async move {
            let value = metric(gw, gauge).await;
            if pred(value) { Ok(value) } else { Err(format!("{gauge} = {value}")) }
        })
    };
    until("media flowing", |age| age < 2.5).await;
    camera.pause_video(true);
    until("the silence measured", |age| age >= 5.0).await;
    camera.pause_video(false);
    until("media flowing again", |age| age < 2.5).await;
    jay.shutdown().await;
    gw.shutdown().await.unwrap();
}

/// The decode check judges each ffmpeg line once: "Last message repeated N
/// times" neither counts as an error nor hides the error it repeats.
#[test]
fn decode_errors_ignore_ffmpegs_repeat_notices_but_keep_the_errors_they_repeat() {
    let stderr = "[vp8 @ 0x55d0c0] Discarding interframe without a prior keyframe!\n    Last message repeated 3 times\n[null @ 0x1] Application provided invalid, non monotonically increasing dts to muxer in stream 0: 5 >= 5\n[vp8 @ 0x55d0c0] Last message repeated 12 times\n";
    assert_eq!(decode_errors(stderr), "[vp8 @ 0x55d0c0] Discarding interframe without a prior keyframe!");
    assert_eq!(decode_errors("    Last message repeated 1 times\n"), "");
    assert_eq!(
        decode_errors("Last message repeated often\n"),
        "Last message repeated often",
        "only ffmpeg's own notice"
    );
}

/// The cues of a WebVTT text: (start s, text).
fn vtt_cues(text: &str) -> Vec<(f64, String)> {
    let secs = |t: &str| {
        let parts: Vec<f64> = t.split(':').map(|p| p.parse().unwrap()).collect();
        parts.iter().fold(0.0, |acc, p| acc * 60.0 + p)
    };
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| w[0].split_once(" --> ").map(|(start, _)| (secs(start), w[1].to_string())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_timeline_and_vtt_sidecars_follow_a_publisher_who_chats_mutes_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    // The recorder joins a second after alice: it learns her microphone state from the server's replay.
    let gw = recording_gateway(dir.path(), |c| c.recording.join_after_ms = 1000).await;
    let metrics = Metrics::new();
    let mut alice = publisher(&url(&gw), "timeline", "alice", &metrics);
    wait_for(&mut alice, "alice in the room", |e| matches!(e, ParticipantEvent::Joined { .. })).await;
    alice.emit_server("media-state", json!({"roomId": "timeline", "mic": true, "cam": false})).unwrap();
    recorder_connected(&mut alice).await;
    let media = source(Some(VideoCodec::Vp8));
    alice.publish(media.stream("cam-1", "camera", Some(json!({"title": "standup"})))).unwrap();
    let room_dir = dir.path().join("timeline");
    recordings_hold(&room_dir, 1, 1.5).await;
    let unix_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    // Chat at known moments, a second apart, then mute.
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(unix_ms());
        alice.emit_on("chat", "msg", &[json!(format!("line <{i}> & more"))]).unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await; // the spacing is the behaviour under test
    }
    alice.emit_server("media-state", json!({"roomId": "timeline", "mic": false, "cam": true})).unwrap();
    let read_timeline = || -> Result<serde_json::Value, String> {
        let text = std::fs::read(room_dir.join("room.json")).map_err(|e| e.to_string())?;
        serde_json::from_slice(&text).map_err(|e| format!("room.json is not JSON: {e}"))
    };
    // The last run: a publisher whose first join timed out on a loaded machine came back in a second one.
    let last_run = |doc: &serde_json::Value| doc["runs"].as_array().and_then(|r| r.last()).cloned().unwrap_or_default();
    let events_of = |doc: &serde_json::Value| last_run(doc)["events"].as_array().cloned().unwrap_or_default();
    // Readable while the room is recorded: the chat and the mute show up within the debounce.
    let live = wait_for_value("the chat and the mute in room.json", LONG, || {
        std::future::ready(read_timeline().and_then(|doc| {
            let events = events_of(&doc);
            let chats = events.iter().filter(|e| e["type"] == "message" && e["channel"] == "chat").count();
            let muted = events.iter().any(|e| e["type"] == "media-state" && e["mic"] == false);
            if chats >= 2 && muted { Ok(doc) } else { Err(doc.to_string()) }
        }))
    })
    .await;
    assert_eq!(last_run(&live)["files"][0]["state"], "recording", "{live}");
    alice.shutdown().await;
    let done = finished_manifests(&room_dir, 1, FINALISED).await;
    let (_, manifest) = &done[0];
    let t0 = manifest["t0_unix_ms"].as_f64().expect("the manifest has t0");
    let doc = wait_for_value("the finished file, the stream's end and alice leaving in room.json", LONG, || {
        std::future::ready(read_timeline().and_then(|doc| {
            let events = events_of(&doc);
            let left = events.iter().any(|e| e["type"] == "member-left" && e["peer"]["name"] == "alice")
                && events.iter().any(|e| e["type"] == "user-disconnected");
            let ended = events.iter().any(|e| e["type"] == "stream-ended" && e["stream_id"] == "cam-1");
            let finished = last_run(&doc)["files"][0]["state"] == "finished";
            if left && ended && finished { Ok(doc) } else { Err(doc.to_string()) }
        }))
    })
    .await;
    let run = &last_run(&doc);
    assert_eq!(doc["room"], "timeline");
    let file = &run["files"][0];
    assert_eq!(run["files"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(file["file"], manifest["file"]);
    assert_eq!(file["t0_unix_ms"].as_f64(), Some(t0), "the timeline's t0 is the manifest's");
    assert_eq!(file["peer"]["name"], "alice");
    let events = events_of(&doc);
    let find = |ty: &str| events.iter().find(|e| e["type"] == ty).unwrap_or_else(|| panic!("no {ty}: {run:#}"));
    assert_eq!(find("recording-started")["by"], "rule");
    assert!(find("gateway-joined")["own_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(find("member-joined")["peer"]["name"], "alice");
    let started = find("stream-started");
    assert_eq!((started["stream_id"].as_str(), started["event"].as_str()), (Some("cam-1"), Some("camera")));
    let member_id = find("member-joined")["peer"]["id"].clone();
    let states: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "media-state").collect();
    assert_eq!(states.len(), 2, "the state at the recorder's join, then the mute: {run:#}");
    for state in &states {
        assert_eq!(
            state["peer"],
            json!({"id": member_id, "name": "alice"}),
            "the member's name is filled in from its id"
        );
    }
    assert_eq!(
        (&states[0]["mic"], &states[0]["cam"]),
        (&json!(true), &json!(false)),
        "replayed by the server at our join"
    );
    let (replayed, joined) =
        (states[0]["unix_ms"].as_u64().unwrap(), find("gateway-joined")["unix_ms"].as_u64().unwrap());
    assert!(replayed.abs_diff(joined) < 1000, "replayed at {replayed}, joined at {joined}");
    assert_eq!((&states[1]["mic"], &states[1]["cam"]), (&json!(false), &json!(true)), "muted");
    assert_eq!(find("stream-ended")["reason"], "peer-left");
    assert_eq!(find("user-disconnected")["peer"], find("member-joined")["peer"], "alice left the room");
    let times: Vec<u64> = events.iter().map(|e| e["unix_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {times:?}");

    // The chat events carry the same clock as chat.jsonl, and the time they were sent.
    let log = std::fs::read_to_string(room_dir.join("chat.jsonl")).unwrap();
    let run_start = run["started_unix_ms"].as_u64().unwrap();
    let logged: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["unix_ms"].as_u64().unwrap() >= run_start)
        .collect();
    let chats: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "message").collect();
    assert_eq!(chats.len(), logged.len(), "every logged message is on the timeline");
    for (event, line) in chats.iter().zip(&logged) {
        assert_eq!(event["unix_ms"], line["unix_ms"]);
        assert_eq!(event["args"], line["args"]);
    }
    let mut expected_cues = Vec::new();
    for (i, at) in sent.iter().enumerate() {
        let text = format!("line <{i}> & more");
        // The first message right after connect can be lost (known participant issue).
        let Some(event) = chats.iter().find(|e| e["args"][0] == text.as_str()) else { continue };
        let heard = event["unix_ms"].as_u64().unwrap();
        assert!(heard >= *at && heard < at + 1000, "message {i} sent at {at}, timeline says {heard}");
        expected_cues.push(((heard as f64 - t0) / 1000.0, format!("alice [chat] msg: line &lt;{i}&gt; &amp; more")));
    }
    assert!(expected_cues.len() >= 2, "{chats:?}");

    // The sidecar: one cue per message at (time − t0) on the file's time line, escaped.
    let vtt_path = room_dir.join(file["vtt"].as_str().expect("the file names its vtt"));
    let stem = Path::new(file["file"].as_str().unwrap()).file_stem().unwrap().to_str().unwrap().to_string();
    assert_eq!(vtt_path.file_name().unwrap().to_str().unwrap(), format!("{stem}.vtt"));
    let vtt = std::fs::read_to_string(&vtt_path).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    let cues = vtt_cues(&vtt);
    assert_eq!(cues.len(), expected_cues.len(), "{vtt}");
    for ((start, text), (want_start, want_text)) in cues.iter().zip(&expected_cues) {
        assert_eq!(text, want_text);
        assert!((start - want_start).abs() <= 0.0015, "cue at {start}, message at {want_start} of the file: {vtt}");
    }

    // The end of the run is written when the gateway stops.
    gw.shutdown().await.unwrap();
    let doc = read_timeline().unwrap();
    let bytes = std::fs::metadata(room_dir.join("room.json")).unwrap().len();
    println!("room.json: {bytes} bytes, {} events, 1 file; the .vtt: {} bytes", events_of(&doc).len(), vtt.len());
    assert!(last_run(&doc)["ended_unix_ms"].as_u64().is_some(), "{doc}");
    assert!(last_run(&doc)["end_reason"].is_string(), "{doc}");
    let names: Vec<String> =
        std::fs::read_dir(&room_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_recorded_again_appends_a_run_to_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let gw = recording_gateway(dir.path(), |c| c.recording.empty_room_grace_secs = 0).await;
    let metrics = Metrics::new();
    let room_dir = dir.path().join("again");
    let read_timeline = || -> Result<serde_json::Value, String> {
        let text = std::fs::read(room_dir.join("room.json")).map_err(|e| e.to_string())?;
        serde_json::from_slice(&text).map_err(|e| format!("room.json is not JSON: {e}"))
    };
    for run in 0..2 {
        let mut alice = publisher(&url(&gw), "again", &format!("alice-{run}"), &metrics);
        recorder_connected(&mut alice).await;
        let media = source(Some(VideoCodec::Vp8));
        alice.publish(media.stream(&format!("cam-{run}"), "camera", None)).unwrap();
        recording_in_progress(&room_dir, "this run's recording", |m, secs| {
            m["stream_id"] == format!("cam-{run}") && secs > 0.5
        })
        .await;
        alice.shutdown().await;
        // The room is empty: its run ends and says so in room.json.
        wait_for_value(&format!("run {run} ended in room.json"), LONG, || {
            std::future::ready(read_timeline().and_then(|doc| {
                let runs = doc["runs"].as_array().cloned().unwrap_or_default();
                let ended = runs
                    .iter()
                    .any(|r| r["files"][0]["stream_id"] == format!("cam-{run}") && r["ended_unix_ms"].is_u64());
                if ended { Ok(()) } else { Err(doc.to_string()) }
            }))
        })
        .await;
    }
    let doc = read_timeline().unwrap();
    // A publisher's first join is sometimes left unanswered on a loaded machine (its link retries after 10 s):
    // the recorder then had a run without any connection. The runs that recorded something are ours.
    let runs: Vec<&serde_json::Value> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["files"].as_array().is_some_and(|f| !f.is_empty()))
        .collect();
    assert_eq!(runs.len(), 2, "{doc:#}");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run["end_reason"], "room-empty", "{run:#}");
        let files = run["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{run:#}");
        assert_eq!(files[0]["stream_id"], format!("cam-{i}"));
        assert_eq!(files[0]["state"], "finished");
        let names: Vec<&str> = run["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "member-joined")
            .map(|e| e["peer"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [format!("alice-{i}")], "each run has its own members");
    }
    assert!(runs[0]["ended_unix_ms"].as_u64() <= runs[1]["started_unix_ms"].as_u64());
    gw.shutdown().await.unwrap();
}
