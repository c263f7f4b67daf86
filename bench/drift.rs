//! Clock-drift benchmark: does a recording stay in lip sync, and on the wall
//! clock, when the sender's audio and video clocks drift?
//!
//! An in-process gateway records one room with two publishers of sync marks
//! (a white frame and a 100 ms 1 kHz beep at every even second of the wall
//! clock, `publish --sync-marks`) for `--minutes` (10):
//!
//! - **reference**: the marks as encoded;
//! - **drifting**: the same marks with the RTP timestamps rewritten so that
//!   its audio clock runs `--ppm` (100) fast and its video clock `--ppm`
//!   slow — 200 ppm apart, and both off the gateway's clock. The media is
//!   encoded once; only the timestamps change, packets go out when they
//!   always did, and webrtc-rs's sender reports describe the rewritten
//!   clocks (it ties a report's RTP time to the latest packet's send time),
//!   as a real sender's would describe its own drifting clocks.
//!
//! Each finished file is decoded and its marks found (flash = frame whose
//! mean luma jumps up, beep = first sample of the 1 kHz burst). Printed per
//! file: the A/V offset (beep − flash) at the start and the end (median of
//! the first / last 5 marks), its slope (least squares, ms per hour), and the
//! same for the wall clock: each flash at `t0_unix_ms + pts` against the even
//! second it was sent at. Target (issue 12): ≤ 40 ms after 10 minutes and
//! ≤ 40 ms per hour extrapolated; the reference publisher is the baseline of
//! the same run. Run with `bench/run-drift.sh`.

#[path = "../tests/common/marks.rs"]
mod marks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use rtcio_gateway::config::Config;
use rtcio_gateway::media::source::{Input, MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::events::{LocalStream, LocalTrack, MediaKind, ParticipantEvent};
use rtcio_gateway::participant::link::LinkConfig;
use rtcio_gateway::participant::room::{Participant, ParticipantConfig};
use rtcio_gateway::server::Gateway;
use serde_json::Value;
use tokio::sync::broadcast;

#[derive(Parser, Debug)]
struct Args {
    /// Minutes of media.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// How far the drifting publisher's audio clock runs fast and its video clock slow (parts per million).
    #[arg(long, default_value_t = 100.0)]
    ppm: f64,
    /// Video codec of both publishers.
    #[arg(long, default_value = "vp8")]
    video: VideoCodec,
    /// Keep the recordings here (default: a temporary directory, removed).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A track whose RTP timestamps run `ppm` parts per million fast (negative: slow).
fn drifting(track: &LocalTrack, ppm: f64) -> LocalTrack {
    let (tx, _) = broadcast::channel(1024);
    let mut rx = track.packets.subscribe();
    let out = tx.clone();
    tokio::spawn(async move {
        // Timestamps unwrapped to 64 bits, scaled from the first one.
        let mut first: Option<i64> = None;
        let mut last: i64 = 0;
        loop {
            let mut packet = match rx.recv().await {
                Ok(p) => p,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let ts = packet.header.timestamp;
            let unwrapped = match first {
                None => ts as i64,
                Some(_) => last + (ts.wrapping_sub(last as u32) as i32) as i64,
            };
            last = unwrapped;
            let base = *first.get_or_insert(unwrapped);
            let scaled = base + ((unwrapped - base) as f64 * (1.0 + ppm * 1e-6)).round() as i64;
            packet.header.timestamp = scaled as u32;
            let _ = out.send(packet);
        }
    });
    LocalTrack { packets: tx, ..track.clone() }
}

async fn publisher(url: &str, room: &str, name: &str, stream: LocalStream) -> anyhow::Result<Participant> {
    let metrics = Metrics::new();
    let config = ParticipantConfig {
        link: LinkConfig { server: url.into(), room: room.into(), name: name.into(), password: None, token: None },
        channels: vec!["chat".into()],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    };
    let mut p = Participant::start(config, metrics.participant.clone())?;
    p.publish(stream)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, p.next_event()).await {
            Ok(Some(ParticipantEvent::Joined { .. })) => return Ok(p),
            Ok(Some(ParticipantEvent::Refused { reason })) => bail!("{name} was refused: {reason}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("{name} stopped before joining"),
            Err(_) => bail!("{name} did not join within 10 s"),
        }
    }
}

/// Finished manifests of the room directory, by peer name.
fn finished(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for room in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(room.path()).into_iter().flatten().flatten() {
            let path = f.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(m) = std::fs::read_to_string(&path).map(|t| serde_json::from_str::<Value>(&t)) else { continue };
            if let Ok(m) = m
                && m["state"] == "finished"
            {
                out.push((path, m));
            }
        }
    }
    out
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// Start, end and slope (per hour) of a series of (seconds into the file, ms).
fn trend(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let k = points.len().min(5);
    let start = median(points[..k].iter().map(|p| p.1).collect());
    let end = median(points[points.len() - k..].iter().map(|p| p.1).collect());
    (start, end, slope(points) * 3600.0)
}

fn report(label: &str, file: &Path, manifest: &Value) -> anyhow::Result<()> {
    let found = marks::find_marks(file);
    // (flash, beep − flash), in seconds of the file.
    let pairs = found.pairs();
    if pairs.len() < 10 {
        bail!("{label}: only {} marks found in {}", pairs.len(), file.display());
    }
    let t0 = manifest["t0_unix_ms"].as_f64().context("no t0_unix_ms")?;
    let av: Vec<(f64, f64)> = pairs.iter().map(|(flash, offset)| (*flash, offset * 1000.0)).collect();
    let wall: Vec<(f64, f64)> = pairs
        .iter()
        .map(|(flash, _)| {
            let at_ms = t0 + flash * 1000.0;
            let even = (at_ms / 2000.0).round() * 2000.0;
            (*flash, at_ms - even)
        })
        .collect();
    let (a0, a1, aslope) = trend(&av);
    let (w0, w1, wslope) = trend(&wall);
    println!(
        "{label:<10} {:>5} marks over {:>6.1} s  clock {:<15}  A/V (beep − flash): start {a0:>+7.1} ms  end {a1:>+7.1} ms  slope {aslope:>+7.1} ms/h  |  flash on the wall clock: start {w0:>+7.1} ms  end {w1:>+7.1} ms  slope {wslope:>+7.1} ms/h",
        pairs.len(),
        pairs.last().map(|p| p.0).unwrap_or(0.0),
        manifest["clock"]["source"].as_str().unwrap_or("?"),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::Builder::new().prefix("drift-").tempdir_in(d)?.keep()
        }
        None => tempfile::tempdir()?.keep(),
    };
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.recording.enabled = true;
    config.recording.dir = dir.clone();
    config.recording.udp_bind = "127.0.0.1".parse().unwrap();
    config.validate()?;
    let gateway = Gateway::start(config).await?;
    let url = format!("http://{}", gateway.local_addr());
    let source = SourceConfig { input: Input::SyncMarks, video: Some(args.video), ..Default::default() };
    let reference_media = MediaSource::start(&source)?;
    let drifting_media = MediaSource::start(&source)?;
    let mut stream = drifting_media.stream("drift", "camera", None);
    stream.tracks = stream
        .tracks
        .iter()
        .map(|t| drifting(t, if t.kind == MediaKind::Audio { args.ppm } else { -args.ppm }))
        .collect();
    let reference = publisher(&url, "drift", "reference", reference_media.stream("ref", "camera", None)).await?;
    let drifting_pub = publisher(&url, "drift", "drifting", stream).await?;
    eprintln!("publishing {:.1} min of sync marks (±{} ppm on the drifting publisher)…", args.minutes, args.ppm);
    tokio::time::sleep(Duration::from_secs_f64(args.minutes * 60.0)).await;
    reference.shutdown().await;
    drifting_pub.shutdown().await;
    drop((reference_media, drifting_media));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let files = loop {
        let files = finished(&dir);
        if files.len() >= 2 {
            break files;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} finished recordings after 30 s", files.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "drift benchmark: {:.1} min, drifting publisher audio +{} ppm, video −{} ppm",
        args.minutes, args.ppm, args.ppm
    );
    for (path, manifest) in &files {
        let label = manifest["peer"]["name"].as_str().unwrap_or("?").to_string();
        let file = path.with_file_name(manifest["file"].as_str().unwrap_or_default());
        report(&label, &file, manifest)?;
    }
    gateway.shutdown().await?;
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
