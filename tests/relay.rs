//! Relaying a room to a real RTMP server (Debian's nginx with the RTMP
//! module, started by `scripts/rtmp-server.sh` on a loopback port) and
//! checking what arrives with ffprobe, as a viewer would.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::peers::publisher;
use common::*;
use rtcio_gateway::config::RelayTarget;
use rtcio_gateway::media::source::{AudioCodec, MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::metrics::Metrics;
use serde_json::Value;

/// An nginx-rtmp instance; stopped when dropped.
struct RtmpServer {
    dir: tempfile::TempDir,
    port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rtmp-server.sh")
}

impl RtmpServer {
    fn start() -> RtmpServer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = RtmpServer { dir, port };
        server.launch();
        server
    }

    fn launch(&self) {
        let out = std::process::Command::new(script())
            .arg("start")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .expect("scripts/rtmp-server.sh");
        assert!(out.status.success(), "nginx-rtmp: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn stop(&self) {
        let _ = std::process::Command::new(script()).arg("stop").arg(self.dir.path()).status();
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// ffprobe the live stream until it answers with both streams (a player joining mid-stream).
async fn probe_live(url: &str, within: Duration) -> Value {
    wait_for_value(&format!("something playable at {url}"), within, || async move {
        let url = url.to_string();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("timeout")
                .args(["-s", "KILL", "10", "ffprobe", "-v", "error", "-show_streams", "-of", "json", &url])
                .output()
                .expect("ffprobe")
        })
        .await
        .unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            let kinds: Vec<&str> = v["streams"]
                .as_array()
                .map(|s| s.iter().filter_map(|s| s["codec_type"].as_str()).collect())
                .unwrap_or_default();
            if kinds.contains(&"video") && kinds.contains(&"audio") {
                return Ok(v);
            }
        }
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    })
    .await
}

/// A camera + microphone source of this codec and size.
fn camera(video: VideoCodec, width: u32, height: u32) -> MediaSource {
    MediaSource::start(&SourceConfig {
        video: Some(video),
        audio: Some(AudioCodec::Opus),
        width,
        height,
        ..Default::default()
    })
    .unwrap()
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == kind).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_relay_transcodes_vp8_to_h264_and_survives_an_rtmp_restart() {
    let rtmp = RtmpServer::start();
    let target = rtmp.url("town-hall");
    let relay_url = target.clone();
    let gw = start_with(move |c| {
        c.recording.udp_bind = "127.0.0.1".parse().unwrap();
        c.recording.track_wait_ms = 500;
        c.relay.video_kbps = 800;
        c.relay.targets = vec![RelayTarget {
            room: "hall".into(),
            url: relay_url,
            peer: String::new(),
            event: String::new(),
            template: String::new(),
            mode: Default::default(),
            layout: Default::default(),
        }];
    })
    .await;
    let metrics = Metrics::new();
    let streamer = publisher(&url(&gw), "hall", "streamer", &metrics);
    // A screen share is never picked by default; the camera is.
    let screen = MediaSource::start(&SourceConfig { width: 320, height: 240, ..Default::default() }).unwrap();
    streamer.publish(screen.stream("screen-1", "screen", None)).unwrap();
    let camera = camera(VideoCodec::Vp8, 640, 360);
    streamer.publish(camera.stream("cam-1", "camera", None)).unwrap();

    let probe = probe_live(&target, Duration::from_secs(30)).await;
    let video = stream(&probe, "video");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(360)), "{probe}");
    assert_eq!(stream(&probe, "audio")["codec_name"], "aac");
    assert!(metric(&gw, "rtcio_gateway_relays_active").await >= 1.0);

    // The RTMP server goes away and comes back: the relay reconnects by itself.
    let restarts = "rtcio_gateway_relay_restarts_total";
    let before = metric(&gw, restarts).await;
    rtmp.stop();
    let g = &gw;
    wait_until("the relay to lose the RTMP server (a restart)", Duration::from_secs(30), || async move {
        metric(g, restarts).await > before
    })
    .await;
    rtmp.launch();
    let probe = probe_live(&target, Duration::from_secs(30)).await;
    assert_eq!(stream(&probe, "video")["codec_name"], "h264");
    assert!(metric(&gw, "rtcio_gateway_relay_restarts_total").await >= 1.0);
    assert!(metric(&gw, "rtcio_gateway_pipeline_errors_total{template=\"relay-rtmp\"}").await >= 1.0);

    // The whole frame decodes as it arrives.
    let decoded = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args([
                "-s", "KILL", "20", "ffmpeg", "-v", "error", "-nostdin", "-i", &target, "-t", "3", "-f", "null", "-",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(decoded.status.success(), "{}", String::from_utf8_lossy(&decoded.stderr));
    streamer.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_command_passes_h264_through() {
    let rtmp = RtmpServer::start();
    let target = rtmp.url("cli");
    let gw = start_gateway().await;
    let metrics = Metrics::new();
    let streamer = publisher(&url(&gw), "show", "streamer", &metrics);
    let camera = camera(VideoCodec::H264, 480, 270);
    streamer.publish(camera.stream("cam-h", "camera", None)).unwrap();
    let mut relay = std::process::Command::new(env!("CARGO_BIN_EXE_rtcio-gateway"))
        .args(["relay", "--server", &url(&gw), "--room", "show", "--udp-bind", "127.0.0.1", "--rtmp", &target])
        .args(["--peer", "streamer", "--event", "camera"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe = probe_live(&target, Duration::from_secs(30)).await;
    let _ = std::process::Command::new("kill").args(["-TERM", &relay.id().to_string()]).status();
    let status = relay.wait().unwrap();
    let video = stream(&probe, "video");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(480), Some(270)), "{probe}");
    assert_eq!(stream(&probe, "audio")["codec_name"], "aac");
    assert!(status.success(), "{status:?}");
    streamer.shutdown().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_is_started_and_stopped_over_the_control_api() {
    let rtmp = RtmpServer::start();
    let target = rtmp.url("secret-stream-key");
    let (hook, deliveries) = common::webhooks::webhook_receiver().await;
    let gw = start_with(move |c| {
        c.recording.udp_bind = "127.0.0.1".parse().unwrap();
        c.webhooks.urls = vec![hook];
        c.webhooks.secret = common::webhooks::WEBHOOK_SECRET.into();
    })
    .await;
    let base = url(&gw);
    let metrics = Metrics::new();
    let streamer = publisher(&base, "studio", "streamer", &metrics);
    let camera = camera(VideoCodec::H264, 480, 270);
    streamer.publish(camera.stream("cam-h", "camera", None)).unwrap();
    let room_url = format!("{base}/api/v1/rooms/studio");
    let room_url = &room_url;
    wait_until("the streamer in the room", WAIT, || async move { http_get(room_url).await.0 == 200 }).await;

    let client = reqwest::Client::new();
    let started = client
        .post(format!("{base}/api/v1/rooms/studio/relay"))
        .json(&serde_json::json!({"url": target, "peer": "streamer", "event": "camera"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status().as_u16(), 200);
    let room: Value = started.json().await.unwrap();
    let shown = room["relay"]["url"].as_str().unwrap();
    assert!(!shown.contains("secret-stream-key") && shown.ends_with("/live/secr***"), "{shown}");

    let probe = probe_live(&target, Duration::from_secs(30)).await;
    assert_eq!(stream(&probe, "video")["codec_name"], "h264");
    let room: Value = client.get(format!("{base}/api/v1/rooms/studio")).send().await.unwrap().json().await.unwrap();
    assert_eq!(room["relay"]["state"], "live", "{room}");
    assert_eq!(room["streams"][0]["relayed"], true, "{room}");

    let stopped = client.delete(format!("{base}/api/v1/rooms/studio/relay")).send().await.unwrap();
    assert_eq!(stopped.status().as_u16(), 200);
    let g = &gw;
    wait_until("the relay to stop", Duration::from_secs(15), || async move {
        metric(g, "rtcio_gateway_relays_active").await == 0.0
    })
    .await;
    let room: Value = client.get(format!("{base}/api/v1/rooms/studio")).send().await.unwrap().json().await.unwrap();
    assert!(room["relay"].is_null(), "{room}");
    let stopped = common::webhooks::delivered(&deliveries, "relay.stopped").await;
    let started = common::webhooks::deliveries_of(&deliveries, "relay.started");
    assert_eq!(started[0]["data"]["room"], "studio");
    assert_eq!(started[0]["data"]["peer"]["name"], "streamer");
    assert!(!stopped[0].to_string().contains("secret-stream-key"), "webhooks do not leak the stream key");
    streamer.shutdown().await;
    gw.shutdown().await.unwrap();
}
