//! Room-flood benchmark: what hostile room creation costs a recording
//! gateway. Run by hand against a running `rtcio-gateway serve` with
//! recording on (see `bench/run-flood.sh`, which starts one gateway per
//! configuration — admission off as the baseline, then the default policy —
//! and runs this against each in the same run).
//!
//! `--clients` hostile socket.io clients (30) each loop for `--seconds` (20):
//! `join-room` a fresh room, wait for `join-ok` (or `join-error`), stay
//! `--hold-ms` (250), `leave-room` — creating rooms as fast as the server
//! lets them. They never answer `#rtcio:init-offer` or any envelope. One
//! honest publisher (this crate's participant with a VP8 + Opus test source)
//! joins its own room just before the flood starts (everything here comes
//! from 127.0.0.1, and the per-address room-creation limit would rightly
//! refuse it a room once the flood has used the address's burst) and
//! publishes for `--honest-seconds` while the flood runs. Afterwards the clients disconnect and the benchmark
//! waits until the recorder has left every room (`rooms_recorded` = 0, no
//! session listed by the API) plus `--settle-secs`, then prints:
//!
//! - rooms joined by the recorder: total (`participant_joins_total{result="ok"}`)
//!   and the most at once (`rooms_recorded`, sampled every 100 ms);
//! - refusals by reason (`recorder_admission_refusals_total{reason}`, and
//!   `signaling_joins_total{result="room-creation-limited"}`);
//! - gateway RSS (`/proc/<pid>/status` VmRSS) before the flood, at its peak,
//!   and after the rooms emptied and the grace passed;
//! - participants left behind (sessions listed by `/api/v1/sessions`,
//!   `rooms_recorded`, `participant_peers`);
//! - whether the honest publisher's room was recorded (finished manifests,
//!   bytes).
//!
//! `--rounds N` repeats flood + settle N times on the same gateway, to see
//! whether each flood leaves memory behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rtcio_gateway::media::source::{AudioCodec, MediaSource, SourceConfig, VideoCodec};
use rtcio_gateway::metrics::Metrics;
use rtcio_gateway::participant::events::ParticipantEvent;
use rtcio_gateway::participant::link::LinkConfig;
use rtcio_gateway::participant::room::{Participant, ParticipantConfig};
use rtcio_gateway::sio_client::{ConnectOptions, SioClient, SioEvent};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Gateway URL.
    #[arg(long, default_value = "http://127.0.0.1:3902")]
    url: String,
    /// Gateway process id (RSS readings).
    #[arg(long)]
    pid: u32,
    /// The gateway's recordings directory (to check the honest room's files).
    #[arg(long)]
    recordings: PathBuf,
    /// A label for this gateway's configuration, printed with every line.
    #[arg(long, default_value = "gateway")]
    label: String,
    /// Hostile clients.
    #[arg(long, default_value_t = 30)]
    clients: usize,
    /// Seconds of flood.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// How long a hostile client stays in each room it creates, ms.
    #[arg(long, default_value_t = 250)]
    hold_ms: u64,
    /// Seconds the honest publisher publishes (from just before the flood starts).
    #[arg(long, default_value_t = 12)]
    honest_seconds: u64,
    /// After the recorder left every room, wait this long before the "after" reading.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Longest wait for the recorder to leave every room after a flood.
    #[arg(long, default_value_t = 120)]
    drain_timeout_secs: u64,
    /// Floods (each followed by its settle) on the same gateway.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("gateway pid")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kb / 1024.0)
}

/// Every sample of the exposition, by series (`name{labels}`).
async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let body = http.get(format!("{url}/metrics")).send().await?.error_for_status()?.text().await?;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect())
}

fn sum_of(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    metrics.iter().filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{"))).map(|(_, v)| v).sum()
}

async fn sessions(http: &reqwest::Client, url: &str) -> anyhow::Result<usize> {
    let v: Value = http.get(format!("{url}/api/v1/sessions")).send().await?.error_for_status()?.json().await?;
    Ok(v["sessions"].as_array().map_or(0, Vec::len))
}

fn event_name(raw: &str) -> &str {
    raw.strip_prefix("[\"").and_then(|r| r.split('"').next()).unwrap_or("")
}

/// One hostile client: create rooms until `stop`, never answering anything.
async fn hostile(
    url: String,
    index: usize,
    round: usize,
    hold: Duration,
    stop: Arc<AtomicBool>,
    created: Arc<AtomicU64>,
) {
    let opts = ConnectOptions { raw_events: true, ..Default::default() };
    let Ok(mut c) = SioClient::connect_with(&url, opts).await else {
        eprintln!("hostile client {index}: cannot connect");
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let room = format!("flood-{round}-{index}-{n}");
        n += 1;
        if c.emit("join-room", &json!({"roomId": room, "name": "x"})).is_err() {
            break;
        }
        // join-ok or join-error; everything else (init-offers, user-connected) is ignored.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut ok = false;
        loop {
            match tokio::time::timeout_at(deadline, c.recv()).await {
                Ok(Some(SioEvent::Raw(raw))) if event_name(&raw) == "join-ok" => {
                    ok = true;
                    break;
                }
                Ok(Some(SioEvent::Raw(raw))) if event_name(&raw) == "join-error" => break,
                Ok(Some(SioEvent::Disconnected { .. })) | Ok(None) | Err(_) => return,
                Ok(Some(_)) => {}
            }
        }
        if ok {
            created.fetch_add(1, Ordering::Relaxed);
        } else {
            // Refused (e.g. the per-address limit): back off a little, as a flooder would retry.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        tokio::time::sleep(hold).await;
        let _ = c.emit("leave-room", &json!({"roomId": room}));
    }
    c.abort();
}

/// The honest publisher: joins `room` (then says so on `joined`), publishes a
/// camera for `seconds`, leaves. Returns whether the recorder connected to it.
async fn honest(
    url: String,
    room: String,
    seconds: u64,
    joined: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<bool> {
    let metrics = Metrics::new();
    let config = ParticipantConfig {
        link: LinkConfig { server: url, room, name: "honest".into(), password: None, token: None },
        channels: vec!["chat".into()],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    };
    let mut p = Participant::start(config, metrics.participant.clone())?;
    let media = MediaSource::start(&SourceConfig {
        video: Some(VideoCodec::Vp8),
        audio: Some(AudioCodec::Opus),
        ..Default::default()
    })?;
    p.publish(media.stream("cam", "camera", None))?;
    let mut recorder = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, p.next_event()).await {
            Ok(Some(ParticipantEvent::Joined { .. })) => break,
            Ok(Some(ParticipantEvent::Refused { reason })) => bail!("the honest publisher was refused: {reason}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("the honest publisher stopped before joining"),
            Err(_) => bail!("the honest publisher did not join within 10 s"),
        }
    }
    let _ = joined.send(());
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        match tokio::time::timeout_at(until, p.next_event()).await {
            Ok(Some(ParticipantEvent::PeerConnected(peer))) if peer.name.contains("recorder") => recorder = true,
            Ok(Some(_)) => {}
            Ok(None) => bail!("the honest publisher stopped"),
            Err(_) => break,
        }
    }
    p.shutdown().await;
    Ok(recorder)
}

/// Finished manifests of `room` (by the `room` field) and their files' bytes.
fn honest_files(dir: &Path, room: &str) -> (usize, usize, u64) {
    let (mut all, mut finished, mut bytes) = (0, 0, 0);
    let Ok(rooms) = std::fs::read_dir(dir) else { return (0, 0, 0) };
    for room_dir in rooms.flatten() {
        let Ok(files) = std::fs::read_dir(room_dir.path()) else { continue };
        for f in files.flatten() {
            let path = f.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(m) = std::fs::read_to_string(&path).map(|t| serde_json::from_str::<Value>(&t)) else { continue };
            let Ok(m) = m else { continue };
            // `room.json` (the room's timeline) names no `file`: not a manifest.
            if m["room"] != room || !m["file"].is_string() {
                continue;
            }
            all += 1;
            if m["state"] == "finished" {
                finished += 1;
                bytes += m["size_bytes"].as_u64().unwrap_or(0);
            }
        }
    }
    (all, finished, bytes)
}

struct Round {
    created: u64,
    joined: f64,
    max_at_once: f64,
    refusals: BTreeMap<String, f64>,
    rss_before: f64,
    rss_peak: f64,
    rss_after: f64,
    left_sessions: usize,
    left_rooms: f64,
    left_peers: f64,
    drained_in: f64,
    honest_connected: bool,
    honest: (usize, usize, u64),
}

async fn round(args: &Args, http: &reqwest::Client, r: usize) -> anyhow::Result<Round> {
    let before = scrape(http, &args.url).await?;
    let rss_before = rss_mib(args.pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let hold = Duration::from_millis(args.hold_ms);
    let honest_room = format!("honest-{}-{r}", args.label);
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
    let honest_task = tokio::spawn(honest(args.url.clone(), honest_room.clone(), args.honest_seconds, joined_tx));
    if joined_rx.await.is_err() {
        honest_task.await??;
        bail!("the honest publisher never joined");
    }
    let clients: Vec<_> = (0..args.clients)
        .map(|i| tokio::spawn(hostile(args.url.clone(), i, r, hold, stop.clone(), created.clone())))
        .collect();
    // Sample the rooms gauge and RSS while the flood runs and drains.
    let started = Instant::now();
    let flood_end = started + Duration::from_secs(args.seconds);
    let (mut max_at_once, mut rss_peak) = (0.0f64, rss_before);
    let mut stopped = false;
    let mut drained_at = None;
    let drain_deadline = flood_end + Duration::from_secs(args.drain_timeout_secs);
    loop {
        let now = Instant::now();
        if !stopped && now >= flood_end {
            stop.store(true, Ordering::Relaxed);
            stopped = true;
        }
        let m = scrape(http, &args.url).await?;
        max_at_once = max_at_once.max(sum_of(&m, "rtcio_gateway_rooms_recorded"));
        rss_peak = rss_peak.max(rss_mib(args.pid)?);
        if stopped && honest_task.is_finished() {
            let empty = sum_of(&m, "rtcio_gateway_rooms_recorded") == 0.0 && sessions(http, &args.url).await? == 0;
            if empty {
                drained_at = Some(now);
                break;
            }
            if now >= drain_deadline {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in clients {
        let _ = c.await;
    }
    let honest_connected = honest_task.await??;
    let drained_in = drained_at.map_or(f64::NAN, |t| t.duration_since(flood_end).as_secs_f64());
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = scrape(http, &args.url).await?;
    let rss_after = rss_mib(args.pid)?;
    let delta = |name: &str| sum_of(&after, name) - sum_of(&before, name);
    let mut refusals = BTreeMap::new();
    for (series, v) in &after {
        if series.starts_with("rtcio_gateway_recorder_admission_refusals_total{")
            || series == "rtcio_gateway_signaling_joins_total{result=\"room-creation-limited\"}"
        {
            let d = v - before.get(series).copied().unwrap_or(0.0);
            refusals.insert(series.trim_start_matches("rtcio_gateway_").to_string(), d);
        }
    }
    Ok(Round {
        created: created.load(Ordering::Relaxed),
        joined: delta("rtcio_gateway_participant_joins_total{result=\"ok\"}"),
        max_at_once,
        refusals,
        rss_before,
        rss_peak,
        rss_after,
        left_sessions: sessions(http, &args.url).await?,
        left_rooms: sum_of(&after, "rtcio_gateway_rooms_recorded"),
        left_peers: sum_of(&after, "rtcio_gateway_participant_peers"),
        drained_in,
        honest_connected,
        honest: honest_files(&args.recordings, &honest_room),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    gstreamer::init()?;
    let http = reqwest::Client::new();
    println!(
        "## {}: {} hostile clients creating rooms for {} s (hold {} ms each), one honest publisher",
        args.label, args.clients, args.seconds, args.hold_ms
    );
    for r in 0..args.rounds {
        let x = round(&args, &http, r).await?;
        let l = &args.label;
        println!("[{l}] round {}: rooms created by the flood: {}", r + 1, x.created);
        println!("[{l}]   rooms joined by the recorder: {:.0} total, {:.0} at once at most", x.joined, x.max_at_once);
        if x.refusals.is_empty() {
            println!("[{l}]   refusals: none counted (no admission metrics)");
        }
        for (series, n) in &x.refusals {
            println!("[{l}]   refused: {series} +{n:.0}");
        }
        println!(
            "[{l}]   RSS: before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB (after - before {:+.1} MiB)",
            x.rss_before,
            x.rss_peak,
            x.rss_after,
            x.rss_after - x.rss_before
        );
        println!(
            "[{l}]   left behind: {} sessions, rooms_recorded {:.0}, participant peers {:.0} (recorder left every room {:.1} s after the flood)",
            x.left_sessions, x.left_rooms, x.left_peers, x.drained_in
        );
        let (manifests, finished, bytes) = x.honest;
        println!(
            "[{l}]   honest room: recorder connected {}, {finished}/{manifests} manifests finished, {bytes} bytes",
            if x.honest_connected { "yes" } else { "NO" }
        );
    }
    Ok(())
}
