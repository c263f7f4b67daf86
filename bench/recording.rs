//! Recording-capacity benchmark: how many concurrent streams one gateway can
//! record, and what each costs. Run by hand against a running
//! `rtcio-gateway serve` (see `bench/run-recording.sh`, which pins the gateway
//! to CPU 0 and this load generator to CPU 1).
//!
//! For every N in `--streams` (default 10, 25, 50, 100):
//!
//! 1. N publishers join N rooms (`r<N>-bench-0` .. `r<N>-bench-<N-1>`), one
//!    each, so the gateway's auto-recorder joins every room and records one
//!    VP8 + Opus stream per room into WebM.
//! 2. After every recording has started and a warm-up, a steady window of
//!    `--seconds` is measured:
//!    - gateway CPU: utime + stime from `/proc/<pid>/stat` over the window,
//!      as % of one core and as ms of CPU per second per recorded stream;
//!    - gateway memory: `VmRSS` at the end of the window minus `VmRSS` before
//!      the publishers of this N started, divided by N (the allocator keeps
//!      some memory between runs, so later rows start from a higher baseline);
//!    - packet loss from the gateway's `/metrics`: received =
//!      `participant_rtp_packets_total`, lost = `media_packets_lost_total`
//!      (sequence gaps seen by the recorder), dropped =
//!      `participant_rtp_packets_dropped_total` (recorder too slow);
//!      loss % = (lost + dropped) / (received + lost). Packets the load
//!      generator handed to its publishers in the same window are printed
//!      beside it as a cross-check.
//! 3. The publishers leave; every manifest must reach `"state": "finished"`
//!    and every room's file must hold a video and an audio stream lasting at
//!    least 80 % of the steady window (ffprobe) to count as complete.
//! 4. The floor: the same RTP (same packets, same rewriting) for N × window
//!    seconds of media (at least `--floor-min-stream-seconds`, so small N are
//!    not at the mercy of 10 ms CPU-time ticks) is remuxed by GStreamer alone in this process — the
//!    gateway's own `record-webm` pipeline (jitter buffer, depayloaders,
//!    webmmux, filesink) fed by non-live appsrcs with timestamped buffers, as
//!    fast as it goes — and its CPU time (`/proc/self/stat`, from PLAYING to
//!    EOS of each pipeline, one pipeline per stream, one after the other,
//!    while the publishers are gone) is divided by the stream-seconds. The ratio gateway / floor is what the gateway's own
//!    WebRTC stack (ICE, DTLS, SRTP, RTCP), participant and recorder add.
//!
//! Media is encoded once: `--loop-seconds` of 640x480 30 fps VP8 (SMPTE
//! bars with their noise patch, CBR, keyframe every 2 s, re-encoded once with
//! a corrected target if the first pass is more than 5 % under
//! `--video-kbps`) and Opus (pink noise, 64 kbit/s, 20 ms) are packetized by
//! GStreamer and kept in memory. One task replays them to every publisher's
//! tracks on a 5 ms tick, each publisher with its own phase (so keyframes
//! are spread over time, as with independent browsers), rewriting sequence
//! numbers, RTP timestamps and VP8 picture ids so every loop continues the
//! previous one. The participant rewrites SSRC and payload type per
//! connection as usual. Keyframe requests (PLIs) from the recorder are
//! counted but not acted on: the replay brings a keyframe every 2 s anyway,
//! so a recording may start up to 2 s after its stream.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtcio_gateway::media::templates::{TemplateSet, Values};
use rtcio_gateway::metrics::{Metrics, ParticipantMetrics};
use rtcio_gateway::participant::events::{LocalStream, LocalTrack, MediaKind, ParticipantEvent, RtpPacket};
use rtcio_gateway::participant::link::LinkConfig;
use rtcio_gateway::participant::room::{Participant, ParticipantConfig};
use rtcio_gateway::participant::streams::stream_placeholder;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Gateway URL.
    #[arg(long, default_value = "http://127.0.0.1:3901")]
    url: String,
    /// Gateway process id, for CPU and memory readings.
    #[arg(long)]
    pid: u32,
    /// The gateway's recordings directory (`serve --recordings`).
    #[arg(long)]
    recordings: PathBuf,
    /// Numbers of concurrent recorded streams to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "10,25,50,100")]
    streams: Vec<usize>,
    /// Seconds of steady recording measured per N.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds between "every recording started" and the steady window.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Length of the encoded loop (a multiple of the 2 s keyframe interval).
    #[arg(long, default_value_t = 4)]
    loop_seconds: u32,
    /// Wanted video bitrate of the encoded loop, kbit/s.
    #[arg(long, default_value_t = 1500)]
    video_kbps: u32,
    /// Publishers started per second.
    #[arg(long, default_value_t = 10.0)]
    start_rate: f64,
    /// Skip the GStreamer-only floor.
    #[arg(long)]
    no_floor: bool,
    /// Media the floor remuxes at least, in stream-seconds (it remuxes N × window, or more streams for small N).
    #[arg(long, default_value_t = 400.0)]
    floor_min_stream_seconds: f64,
    /// Where the floor writes its files (default: a temporary directory).
    #[arg(long)]
    floor_dir: Option<PathBuf>,
}

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;
const FPS: u32 = 30;

// ---------------------------------------------------------------- process stats

#[derive(Clone, Copy, Debug)]
struct ProcStats {
    cpu_secs: f64,
    rss_bytes: u64,
}

/// Threads of a process and their context switches so far (voluntary +
/// involuntary, summed over the threads alive now).
fn thread_stats(pid: &str) -> (usize, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return (0, 0) };
    let (mut threads, mut switches) = (0, 0);
    for task in tasks.filter_map(|t| t.ok()) {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        threads += 1;
        switches += status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    (threads, switches)
}

fn proc_stats(pid: &str) -> anyhow::Result<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the line.
    let fields: Vec<&str> = stat[stat.rfind(')').context("stat format")? + 2..].split_whitespace().collect();
    let ticks = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Ok(ProcStats { cpu_secs: ticks / clk_tck(), rss_bytes: rss_kb * 1024 })
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------- gateway metrics

/// Counters scraped from `/metrics`, summed over their labels.
#[derive(Clone, Debug, Default)]
struct Counters(HashMap<String, f64>);

impl Counters {
    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }
    fn delta(&self, earlier: &Counters, name: &str) -> f64 {
        self.get(name) - earlier.get(name)
    }
}

const RECEIVED: &str = "rtcio_gateway_participant_rtp_packets_total";
const LOST: &str = "rtcio_gateway_media_packets_lost_total";
const DROPPED: &str = "rtcio_gateway_participant_rtp_packets_dropped_total";
const JITTER_DROPS: &str = "rtcio_gateway_media_jitterbuffer_drops_total";
const PLIS: &str = "rtcio_gateway_participant_plis_sent_total";

async fn scrape(url: &str) -> anyhow::Result<Counters> {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("{url}/metrics"))
        .output()
        .await?;
    if !out.status.success() {
        bail!("GET {url}/metrics failed");
    }
    let mut sums = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            *sums.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    Ok(Counters(sums))
}

// ---------------------------------------------------------------- encode once

/// One packetized track of the loop: packets with their send offset within the loop.
struct LoopTrack {
    kind: MediaKind,
    packets: Vec<(Duration, RtpPacket)>,
    /// RTP timestamp ticks per loop.
    ts_per_loop: u32,
    /// VP8 pictures per loop (picture ids advance by this much per loop).
    pictures_per_loop: u16,
    bytes: usize,
}

struct Capture {
    video: LoopTrack,
    audio: LoopTrack,
    loop_len: Duration,
}

fn encode_loop(loop_secs: u32, video_bps: u32) -> anyhow::Result<Capture> {
    gst::init()?;
    // A little more than a loop, so the encoders' start-up and end effects are cut off by RTP timestamp.
    let frames = loop_secs * FPS + 15;
    let audio_buffers = loop_secs * 50 + 15;
    let description = format!(
        "videotestsrc num-buffers={frames} pattern=smpte ! video/x-raw,width=640,height=480,framerate={FPS}/1 \
         ! vp8enc deadline=1 cpu-used=8 end-usage=cbr target-bitrate={video_bps} keyframe-max-dist={} error-resilient=partitions \
         ! rtpvp8pay pt={VIDEO_PT} mtu=1200 picture-id-mode=15-bit ! appsink name=video sync=false \
         audiotestsrc num-buffers={audio_buffers} samplesperbuffer=960 wave=pink-noise volume=0.3 \
         ! audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=64000 frame-size=20 \
         ! rtpopuspay pt={AUDIO_PT} ! appsink name=audio sync=false",
        FPS * 2
    );
    let pipeline =
        gst::parse::launch(&description)?.downcast::<gst::Pipeline>().map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let mut collected = Vec::new();
    for name in ["video", "audio"] {
        let sink = pipeline.by_name(name).and_then(|e| e.downcast::<gst_app::AppSink>().ok()).context("appsink")?;
        let store = Arc::new(parking_lot::Mutex::new(Vec::<RtpPacket>::new()));
        let s = store.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let map = sample
                        .buffer()
                        .ok_or(gst::FlowError::Error)?
                        .map_readable()
                        .map_err(|_| gst::FlowError::Error)?;
                    let mut bytes = map.as_slice();
                    if let Ok(p) = RtpPacket::unmarshal(&mut bytes) {
                        s.lock().push(p);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        collected.push(store);
    }
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("bus")?;
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("encoding failed: {}", e.error()),
        _ => bail!("encoding timed out"),
    }
    let video = std::mem::take(&mut *collected[0].lock());
    let audio = std::mem::take(&mut *collected[1].lock());
    Ok(Capture {
        video: cut_loop(MediaKind::Video, video, 90_000, loop_secs)?,
        audio: cut_loop(MediaKind::Audio, audio, 48_000, loop_secs)?,
        loop_len: Duration::from_secs(loop_secs as u64),
    })
}

/// Keep exactly `loop_secs` of media, starting with the first packet, and
/// renumber it so that sequence numbers are consecutive from the first.
fn cut_loop(kind: MediaKind, packets: Vec<RtpPacket>, clock: u32, loop_secs: u32) -> anyhow::Result<LoopTrack> {
    let first = packets.first().with_context(|| format!("no {} packets encoded", kind.as_str()))?;
    let (ts0, seq0) = (first.header.timestamp, first.header.sequence_number);
    let ts_per_loop = clock * loop_secs;
    let mut out = Vec::new();
    let mut pictures = 0u16;
    for (i, mut p) in packets.into_iter().enumerate() {
        let rel = p.header.timestamp.wrapping_sub(ts0);
        if rel >= ts_per_loop {
            break;
        }
        if p.header.sequence_number != seq0.wrapping_add(i as u16) {
            bail!("the encoder's {} packets are not consecutive", kind.as_str());
        }
        if kind == MediaKind::Video && p.header.marker {
            pictures += 1;
        }
        p.header.timestamp = rel;
        p.header.sequence_number = i as u16;
        let at = Duration::from_secs_f64(rel as f64 / clock as f64);
        out.push((at, p));
    }
    let bytes = out.iter().map(|(_, p)| p.payload.len() + 12).sum();
    Ok(LoopTrack { kind, packets: out, ts_per_loop, pictures_per_loop: pictures, bytes })
}

/// Add `add` to the picture id of a VP8 payload descriptor (RFC 7741), if it has one.
fn shift_picture_id(payload: &Bytes, add: u16) -> Bytes {
    let b = payload.as_ref();
    // X bit, then I bit of the extension byte.
    if b.len() < 4 || b[0] & 0x80 == 0 || b[1] & 0x80 == 0 {
        return payload.clone();
    }
    let mut v = b.to_vec();
    if v[2] & 0x80 != 0 {
        let id = (((v[2] & 0x7f) as u16) << 8 | v[3] as u16).wrapping_add(add) & 0x7fff;
        v[2] = 0x80 | (id >> 8) as u8;
        v[3] = id as u8;
    } else {
        v[2] = ((v[2] as u16).wrapping_add(add) & 0x7f) as u8;
    }
    Bytes::from(v)
}

// ---------------------------------------------------------------- replay

/// Walks a [`LoopTrack`] forever from a phase offset, producing continuous RTP.
struct Cursor<'a> {
    track: &'a LoopTrack,
    loop_len: Duration,
    /// Added to every send time: the phase at which this publisher joins the loop, negated.
    phase: Duration,
    loop_no: u64,
    index: usize,
    /// Random-ish base values, so publishers do not share sequence numbers.
    seq_base: u16,
    ts_base: u32,
}

impl<'a> Cursor<'a> {
    fn new(track: &'a LoopTrack, loop_len: Duration, phase: Duration, salt: u64) -> Cursor<'a> {
        let index = track.packets.iter().position(|(at, _)| *at >= phase).unwrap_or(track.packets.len());
        let mut c = Cursor {
            track,
            loop_len,
            phase,
            loop_no: 0,
            index,
            seq_base: (salt.wrapping_mul(7919) % 65536) as u16,
            ts_base: (salt.wrapping_mul(104_729) as u32).wrapping_mul(977),
        };
        c.wrap();
        c
    }

    fn wrap(&mut self) {
        if self.index >= self.track.packets.len() {
            self.index = 0;
            self.loop_no += 1;
        }
    }

    /// When the next packet is due, counted from this cursor's start.
    fn next_due(&self) -> Duration {
        (self.loop_len * self.loop_no as u32 + self.track.packets[self.index].0).saturating_sub(self.phase)
    }

    fn take(&mut self) -> RtpPacket {
        let (_, original) = &self.track.packets[self.index];
        let n = self.track.packets.len() as u64;
        let mut p = original.clone();
        let seq = (self.loop_no * n + self.index as u64) as u16;
        p.header.sequence_number = self.seq_base.wrapping_add(seq);
        p.header.timestamp = self
            .ts_base
            .wrapping_add((self.loop_no as u32).wrapping_mul(self.track.ts_per_loop))
            .wrapping_add(original.header.timestamp);
        if self.track.kind == MediaKind::Video {
            let add = (self.loop_no * self.track.pictures_per_loop as u64 % 32768) as u16;
            if add != 0 {
                p.payload = shift_picture_id(&original.payload, add);
            }
        }
        self.index += 1;
        self.wrap();
        p
    }
}

struct Feed<'a> {
    cursors: [Cursor<'a>; 2],
    senders: [broadcast::Sender<RtpPacket>; 2],
}

#[derive(Default)]
struct SentCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Deepest broadcast queue seen (1024 = a publisher's forwarder lagged and skipped packets).
    max_queue: AtomicU64,
}

/// Feed every publisher's tracks in real time until cancelled.
async fn replay(
    capture: Arc<Capture>,
    senders: Vec<[broadcast::Sender<RtpPacket>; 2]>,
    sent: Arc<SentCounters>,
    stop: CancellationToken,
) {
    let n = senders.len().max(1);
    let mut feeds: Vec<Feed> = senders
        .into_iter()
        .enumerate()
        .map(|(i, senders)| {
            let phase = capture.loop_len.mul_f64(i as f64 / n as f64);
            Feed {
                cursors: [
                    Cursor::new(&capture.video, capture.loop_len, phase, 2 * i as u64 + 1),
                    Cursor::new(&capture.audio, capture.loop_len, phase, 2 * i as u64 + 2),
                ],
                senders,
            }
        })
        .collect();
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = start.elapsed();
        let (mut packets, mut bytes, mut deepest) = (0u64, 0u64, 0u64);
        for feed in &mut feeds {
            for (cursor, tx) in feed.cursors.iter_mut().zip(&feed.senders) {
                while cursor.next_due() <= now {
                    let p = cursor.take();
                    bytes += p.payload.len() as u64 + 12;
                    packets += 1;
                    // No receiver yet is fine: the publisher is not connected.
                    let _ = tx.send(p);
                }
                deepest = deepest.max(tx.len() as u64);
            }
        }
        sent.packets.fetch_add(packets, Ordering::Relaxed);
        sent.bytes.fetch_add(bytes, Ordering::Relaxed);
        sent.max_queue.fetch_max(deepest, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- publishers

#[derive(Default)]
struct PublisherCounters {
    /// Keyframe requests that reached a publisher's video track (ignored).
    keyframe_requests: AtomicU64,
    /// Peer connections to the recorder lost while publishing.
    disconnects: AtomicU64,
}

fn local_stream(index: usize) -> (LocalStream, [broadcast::Sender<RtpPacket>; 2], [mpsc::UnboundedReceiver<()>; 2]) {
    let track = |kind: MediaKind| {
        let (packets, _) = broadcast::channel::<RtpPacket>(1024);
        let (keyframe_requests, requests) = mpsc::unbounded_channel();
        let (mime, clock, channels, fmtp) = match kind {
            MediaKind::Video => ("video/VP8", 90_000, 0, String::new()),
            MediaKind::Audio => ("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1".to_string()),
        };
        let t = LocalTrack {
            track_id: format!("{}-{index}", kind.as_str()),
            kind,
            mime_type: mime.into(),
            clock_rate: clock,
            channels,
            fmtp,
            packets: packets.clone(),
            keyframe_requests,
        };
        (t, packets, requests)
    };
    let (video, vtx, vreq) = track(MediaKind::Video);
    let (audio, atx, areq) = track(MediaKind::Audio);
    let id = format!("cam-{index}");
    let stream = LocalStream {
        stream_id: id.clone(),
        event: "camera".into(),
        args: vec![Value::String(stream_placeholder(&id))],
        tracks: vec![video, audio],
    };
    (stream, [vtx, atx], [vreq, areq])
}

/// One publisher: join, wait for the recorder, publish, then keep the room until told to stop.
#[allow(clippy::too_many_arguments)]
async fn run_publisher(
    url: String,
    room: String,
    stream: LocalStream,
    keyframe_requests: [mpsc::UnboundedReceiver<()>; 2],
    metrics: ParticipantMetrics,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    counters: Arc<PublisherCounters>,
    stop: CancellationToken,
) {
    let config = ParticipantConfig {
        link: LinkConfig { server: url, room: room.clone(), name: "bench".into(), password: None, token: None },
        channels: vec![],
        udp_bind: "127.0.0.1".parse().unwrap(),
        ice_servers: vec![],
    };
    let mut p = match Participant::start(config, metrics) {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(format!("{room}: {e}")));
            return;
        }
    };
    let mut published = false;
    let deadline = tokio::time::sleep(Duration::from_secs(90));
    tokio::pin!(deadline);
    let [mut video_kf, mut audio_kf] = keyframe_requests;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut deadline, if !published => {
                let _ = ready.send(Err(format!("{room}: the recorder did not connect within 90 s")));
                published = true; // report once
            }
            Some(()) = video_kf.recv() => { counters.keyframe_requests.fetch_add(1, Ordering::Relaxed); }
            Some(()) = audio_kf.recv() => {}
            ev = p.next_event() => match ev {
                None => {
                    if !published {
                        let _ = ready.send(Err(format!("{room}: the participant stopped")));
                    }
                    stop.cancelled().await;
                    return;
                }
                Some(ParticipantEvent::Refused { reason }) => {
                    let _ = ready.send(Err(format!("{room}: refused: {reason}")));
                    published = true;
                }
                Some(ParticipantEvent::PeerConnected(peer)) if peer.name.contains("recorder") && !published => {
                    published = true;
                    let result = p.publish(stream.clone()).map_err(|e| format!("{room}: publish: {e}"));
                    let _ = ready.send(result);
                }
                Some(ParticipantEvent::PeerDisconnected { peer, reason }) => {
                    counters.disconnects.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{room}: lost {} ({reason})", peer.name);
                }
                Some(_) => {}
            }
        }
    }
    p.shutdown().await;
}

// ---------------------------------------------------------------- recordings on disk

/// Every manifest under the recordings directory whose room is one of `rooms`.
fn manifests_of(dir: &Path, rooms: &std::collections::HashSet<String>) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    let Ok(room_dirs) = std::fs::read_dir(dir) else { return found };
    for room_dir in room_dirs.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()) {
        let Ok(files) = std::fs::read_dir(&room_dir) else { continue };
        for path in files.filter_map(|e| e.ok()).map(|e| e.path()) {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(m) =
                std::fs::read(&path).map_err(|_| ()).and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|_| ()))
            else {
                continue;
            };
            // `room.json` (the room's timeline) names no `file`: not a manifest.
            if m["file"].is_string() && m["room"].as_str().is_some_and(|r| rooms.contains(r)) {
                found.push((path, m));
            }
        }
    }
    found
}

/// (has video, has audio, duration in seconds) per ffprobe.
async fn probe(file: &Path) -> (bool, bool, f64) {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json"])
        .arg(file)
        .output()
        .await;
    let Ok(out) = out else { return (false, false, 0.0) };
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let has = |kind: &str| v["streams"].as_array().is_some_and(|s| s.iter().any(|s| s["codec_type"] == kind));
    let duration = v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    (has("video"), has("audio"), duration)
}

// ---------------------------------------------------------------- the floor

/// Remux `seconds` of one stream (publisher `index`'s packets) with the
/// gateway's own `record-webm` pipeline, as fast as GStreamer goes.
/// Returns the process CPU seconds spent between PLAYING and EOS (parsing
/// and tearing down the pipeline are left out, as the gateway's steady
/// window leaves out its pipelines' setup).
fn floor_remux(
    capture: &Capture,
    index: usize,
    streams: usize,
    seconds: f64,
    template: &str,
    out: &Path,
) -> anyhow::Result<f64> {
    let pipeline =
        gst::parse::launch(template)?.downcast::<gst::Pipeline>().map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let phase = capture.loop_len.mul_f64(index as f64 / streams.max(1) as f64);
    let limit = Duration::from_secs_f64(seconds);
    let bus = pipeline.bus().context("bus")?;
    let mut sources = Vec::new();
    for (name, track, salt) in
        [("video", &capture.video, 2 * index as u64 + 1), ("audio", &capture.audio, 2 * index as u64 + 2)]
    {
        let src = pipeline.by_name(name).and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).context("appsrc")?;
        let mut caps = gst::Caps::builder("application/x-rtp")
            .field("media", name)
            .field("encoding-name", if name == "video" { "VP8" } else { "OPUS" })
            .field("clock-rate", if name == "video" { 90_000i32 } else { 48_000i32 })
            .field("payload", if name == "video" { VIDEO_PT as i32 } else { AUDIO_PT as i32 });
        if name == "audio" {
            caps = caps.field("encoding-params", "2");
        }
        src.set_caps(Some(&caps.build()));
        src.set_format(gst::Format::Time);
        src.set_is_live(false);
        src.set_block(true);
        sources.push((src, track, salt));
    }
    pipeline.set_state(gst::State::Playing)?;
    let before = proc_stats("self")?;
    std::thread::scope(|scope| {
        for (src, track, salt) in &sources {
            scope.spawn(move || {
                let mut cursor = Cursor::new(track, capture.loop_len, phase, *salt);
                loop {
                    let at = cursor.next_due();
                    if at >= limit {
                        break;
                    }
                    let Ok(bytes) = cursor.take().marshal() else { continue };
                    let mut buffer = gst::Buffer::from_slice(bytes.freeze());
                    {
                        let b = buffer.get_mut().unwrap();
                        let t = gst::ClockTime::from_nseconds(at.as_nanos() as u64);
                        b.set_pts(t);
                        b.set_dts(t);
                    }
                    if src.push_buffer(buffer).is_err() {
                        break;
                    }
                }
                let _ = src.end_of_stream();
            });
        }
    });
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]);
    let cpu = proc_stats("self")?.cpu_secs - before.cpu_secs;
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(cpu),
        Some(gst::MessageView::Error(e)) => bail!("floor remux failed: {} ({:?})", e.error(), e.debug()),
        _ => bail!("floor remux of {} timed out", out.display()),
    }
}

struct Floor {
    cpu_secs: f64,
    stream_seconds: f64,
    /// ffprobe of the first file: (video, audio, duration).
    check: (bool, bool, f64),
}

async fn run_floor(
    capture: Arc<Capture>,
    n: usize,
    seconds: f64,
    min_stream_seconds: f64,
    dir: &Path,
) -> anyhow::Result<Floor> {
    // At least `min_stream_seconds` of media, so that 10 ms CPU-time ticks do not dominate small N.
    let streams = n.max((min_stream_seconds / seconds).ceil() as usize);
    let set = TemplateSet::load(None)?;
    let template = set.get("record-webm")?;
    let mut descriptions = Vec::new();
    for i in 0..streams {
        let location = dir.join(format!("floor-{streams}-{i}.webm"));
        let values = Values { location: Some(location.clone()), latency_ms: 200, ..Values::default() };
        descriptions
            .push((template.description(Some("VP8"), Some("OPUS"), &values).map_err(anyhow::Error::msg)?, location));
    }
    let first = descriptions[0].1.clone();
    let cap = capture.clone();
    let cpu_secs = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let mut cpu = 0.0;
        for (i, (description, location)) in descriptions.iter().enumerate() {
            cpu += floor_remux(&cap, i, streams, seconds, description, location)?;
        }
        Ok(cpu)
    })
    .await??;
    let check = probe(&first).await;
    for i in 0..streams {
        let _ = std::fs::remove_file(dir.join(format!("floor-{streams}-{i}.webm")));
    }
    Ok(Floor { cpu_secs, stream_seconds: streams as f64 * seconds, check })
}

// ---------------------------------------------------------------- one N

struct Row {
    n: usize,
    started: usize,
    gateway_cpu_pct: f64,
    cpu_ms_per_stream: f64,
    floor_ms_per_stream: Option<f64>,
    rss_per_stream_mib: f64,
    loss_pct: f64,
    complete: usize,
    threads: usize,
    switches_per_sec: f64,
    notes: Vec<String>,
}

async fn run_one(args: &Args, capture: Arc<Capture>, n: usize, floor_dir: &Path) -> anyhow::Result<Row> {
    println!("\n## N = {n}");
    let gw_pid = args.pid.to_string();
    let rooms: Vec<String> = (0..n).map(|i| format!("r{n}-bench-{i}")).collect();
    let room_set: std::collections::HashSet<String> = rooms.iter().cloned().collect();
    let base = proc_stats(&gw_pid)?;
    let run_start = scrape(&args.url).await?;
    println!("gateway before: RSS {:.1} MiB", base.rss_bytes as f64 / MIB);

    // Publishers and their media.
    let metrics = Metrics::new();
    let counters = Arc::new(PublisherCounters::default());
    let sent = Arc::new(SentCounters::default());
    let stop = CancellationToken::new();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    let mut pending = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let (stream, tx, requests) = local_stream(i);
        senders.push(tx);
        pending.push((room.clone(), stream, requests));
    }
    let replay_stop = CancellationToken::new();
    let replayer = tokio::spawn(replay(capture.clone(), senders, sent.clone(), replay_stop.clone()));
    let t0 = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.start_rate.max(0.1));
    for (room, stream, requests) in pending {
        tasks.push(tokio::spawn(run_publisher(
            args.url.clone(),
            room,
            stream,
            requests,
            metrics.participant.clone(),
            ready_tx.clone(),
            counters.clone(),
            stop.clone(),
        )));
        tokio::time::sleep(gap).await;
    }
    drop(ready_tx);
    let (mut ok, mut failed) = (0, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ok + failed.len() < n {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => ok += 1,
            Ok(Some(Err(e))) => failed.push(e),
            _ => break,
        }
    }
    let all_started = t0.elapsed().as_secs_f64();
    println!("{ok}/{n} publishers publishing after {all_started:.1} s");
    for f in failed.iter().take(5) {
        println!("  failed: {f}");
    }

    // Every recording started (a manifest in state "recording" per room)?
    let deadline = Instant::now() + Duration::from_secs(30 + n as u64 / 2);
    let mut recording = 0;
    while Instant::now() < deadline {
        let m = manifests_of(&args.recordings, &room_set);
        let mut per_room: HashMap<&str, bool> = HashMap::new();
        for (_, v) in &m {
            if v["state"] == "recording" {
                per_room.insert(v["room"].as_str().unwrap_or(""), true);
            }
        }
        recording = per_room.len();
        if recording >= ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "{recording}/{n} recordings started after {:.1} s; warming up {} s",
        t0.elapsed().as_secs_f64(),
        args.warmup
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    // The steady window.
    let gw_before = proc_stats(&gw_pid)?;
    let (_, switches_before) = thread_stats(&gw_pid);
    let me_before = proc_stats("self")?;
    let m_before = scrape(&args.url).await?;
    let sent_before = (sent.packets.load(Ordering::Relaxed), sent.bytes.load(Ordering::Relaxed));
    let disconnects_before = counters.disconnects.load(Ordering::Relaxed);
    let w0 = Instant::now();
    let mut rss_max = gw_before.rss_bytes;
    while w0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(
            Duration::from_millis(1000).min(Duration::from_secs(args.seconds).saturating_sub(w0.elapsed())),
        )
        .await;
        rss_max = rss_max.max(proc_stats(&gw_pid)?.rss_bytes);
    }
    let gw_after = proc_stats(&gw_pid)?;
    let (threads, switches_after) = thread_stats(&gw_pid);
    let me_after = proc_stats("self")?;
    let m_after = scrape(&args.url).await?;
    let window = w0.elapsed().as_secs_f64();
    let sent_packets = sent.packets.load(Ordering::Relaxed) - sent_before.0;
    let sent_bytes = sent.bytes.load(Ordering::Relaxed) - sent_before.1;
    let disconnects = counters.disconnects.load(Ordering::Relaxed) - disconnects_before;

    let gw_cpu = gw_after.cpu_secs - gw_before.cpu_secs;
    let received = m_after.delta(&m_before, RECEIVED);
    let lost = m_after.delta(&m_before, LOST);
    let dropped = m_after.delta(&m_before, DROPPED);
    let jitter = m_after.delta(&m_before, JITTER_DROPS);
    let loss_pct = if received + lost > 0.0 { 100.0 * (lost + dropped) / (received + lost) } else { 100.0 };
    let streams = ok.max(1) as f64;
    let gateway_cpu_pct = 100.0 * gw_cpu / window;
    let cpu_ms_per_stream = 1000.0 * gw_cpu / window / streams;
    let rss_per_stream_mib = (gw_after.rss_bytes as f64 - base.rss_bytes as f64) / MIB / streams;
    println!(
        "window {window:.1} s: gateway CPU {gw_cpu:.2} s ({gateway_cpu_pct:.0} % of a core), RSS {:.1} MiB (max {:.1}), load generator CPU {:.0} % of a core",
        gw_after.rss_bytes as f64 / MIB,
        rss_max as f64 / MIB,
        100.0 * (me_after.cpu_secs - me_before.cpu_secs) / window,
    );
    let switches_per_sec = switches_after.saturating_sub(switches_before) as f64 / window;
    println!(
        "gateway threads {threads}; context switches {switches_per_sec:.0}/s ({:.0}/s per stream)",
        switches_per_sec / ok.max(1) as f64
    );
    println!(
        "packets: generator sent {sent_packets} ({:.2} Mbit/s per stream), gateway received {received:.0} ({:.2} %), lost {lost:.0}, dropped {dropped:.0}, jitter-buffer drops {jitter:.0}; peer connections lost {disconnects}",
        sent_bytes as f64 * 8.0 / window / streams / 1e6,
        if sent_packets > 0 { 100.0 * received / sent_packets as f64 } else { 0.0 },
    );

    // Leave, finalise, check the files.
    let published_for = t0.elapsed().as_secs_f64();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    replay_stop.cancel();
    let _ = replayer.await;
    let queue = sent.max_queue.load(Ordering::Relaxed);
    let left = Instant::now();
    let deadline = left + Duration::from_secs(30 + n as u64 / 2);
    let all = loop {
        let all = manifests_of(&args.recordings, &room_set);
        if all.iter().all(|(_, m)| m["state"] != "recording") || Instant::now() >= deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let still = all.iter().filter(|(_, m)| m["state"] == "recording").count();
    let finished_in = left.elapsed().as_secs_f64();
    let mut by_room: BTreeMap<String, Vec<(PathBuf, Value)>> = BTreeMap::new();
    for (p, m) in all {
        by_room.entry(m["room"].as_str().unwrap_or("").to_string()).or_default().push((p, m));
    }
    let mut complete = 0;
    let mut durations = Vec::new();
    let mut problems = Vec::new();
    let mut split_rooms = 0;
    for room in &rooms {
        let Some(files) = by_room.get(room) else {
            problems.push(format!("{room}: no recording"));
            continue;
        };
        if files.len() > 1 {
            split_rooms += 1;
        }
        let mut best = (false, false, 0.0f64);
        let mut finished = false;
        for (path, m) in files {
            finished |= m["state"] == "finished";
            let file = path.with_file_name(m["file"].as_str().unwrap_or(""));
            let p = probe(&file).await;
            if p.2 > best.2 {
                best = p;
            }
        }
        durations.push(best.2);
        let ok_file = finished && best.0 && best.1 && best.2 >= 0.8 * window;
        if ok_file {
            complete += 1;
        } else if problems.len() < 5 {
            problems
                .push(format!("{room}: finished={finished} video={} audio={} duration={:.1}s", best.0, best.1, best.2));
        }
    }
    durations.sort_by(f64::total_cmp);
    let median = durations.get(durations.len() / 2).copied().unwrap_or(0.0);
    println!(
        "files: {complete}/{n} complete; finalised within {finished_in:.1} s of leaving ({still} still recording); rooms with >1 file {split_rooms}; duration min {:.1} / median {median:.1} s (the first publisher started {published_for:.1} s before leaving, the last {:.1} s)",
        durations.first().copied().unwrap_or(0.0),
        published_for - all_started,
    );
    for p in &problems {
        println!("  {p}");
    }
    let whole_received = m_after.delta(&run_start, RECEIVED);
    let plis = m_after.delta(&run_start, PLIS);
    println!(
        "keyframe requests: gateway sent {plis:.0} PLIs, {} reached the publishers (ignored); deepest replay queue {queue}/1024; whole-run received {whole_received:.0}",
        counters.keyframe_requests.load(Ordering::Relaxed),
    );

    let mut notes = Vec::new();
    if ok < n {
        notes.push(format!("only {ok}/{n} publishers started"));
    }
    if disconnects > 0 {
        notes.push(format!("{disconnects} peer connections lost in the window"));
    }
    let delivered = if sent_packets > 0 { received / sent_packets as f64 } else { 0.0 };
    if !(0.98..=1.02).contains(&delivered) {
        notes.push(format!(
            "the gateway received {:.0} % of what was sent in the window: not a steady state (backlog or stall)",
            100.0 * delivered
        ));
    }
    if gateway_cpu_pct >= 95.0 {
        notes.push(format!("the gateway's core was {gateway_cpu_pct:.0} % busy: no headroom"));
    }
    if queue >= 1024 {
        notes.push("a publisher's forwarder lagged (load generator overloaded)".into());
    }

    let floor_ms_per_stream = if args.no_floor {
        None
    } else {
        let f = run_floor(capture.clone(), n, window, args.floor_min_stream_seconds, floor_dir).await?;
        let per = 1000.0 * f.cpu_secs / f.stream_seconds;
        println!(
            "floor: GStreamer-only remux of {:.0} stream-seconds took {:.2} s CPU = {per:.3} ms CPU per stream-second; first file: video={} audio={} {:.1} s",
            f.stream_seconds, f.cpu_secs, f.check.0, f.check.1, f.check.2
        );
        if !(f.check.0 && f.check.1 && f.check.2 >= 0.8 * window) {
            notes.push("floor output incomplete".into());
        }
        Some(per)
    };
    Ok(Row {
        n,
        started: ok,
        gateway_cpu_pct,
        cpu_ms_per_stream,
        floor_ms_per_stream,
        rss_per_stream_mib,
        loss_pct,
        complete,
        threads,
        switches_per_sec,
        notes,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let wanted = args.video_kbps * 1000;
    let mut target = wanted;
    let started = Instant::now();
    let mut capture = encode_loop(args.loop_seconds, target)?;
    let rate = |c: &Capture| c.video.bytes as f64 * 8.0 / c.loop_len.as_secs_f64();
    if rate(&capture) < 0.95 * wanted as f64 {
        target = (target as f64 * wanted as f64 / rate(&capture)) as u32;
        capture = encode_loop(args.loop_seconds, target)?;
    }
    println!(
        "# recording capacity\n\nencoded a {} s loop in {:.1} s: VP8 640x480@{FPS} {} packets, {:.0} kbit/s (vp8enc target {} kbit/s), {} pictures; Opus {} packets, {:.0} kbit/s",
        args.loop_seconds,
        started.elapsed().as_secs_f64(),
        capture.video.packets.len(),
        rate(&capture) / 1000.0,
        target / 1000,
        capture.video.pictures_per_loop,
        capture.audio.packets.len(),
        capture.audio.bytes as f64 * 8.0 / capture.loop_len.as_secs_f64() / 1000.0,
    );
    let capture = Arc::new(capture);
    let tmp = tempfile::tempdir()?;
    let floor_dir = args.floor_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&floor_dir)?;
    let mut rows = Vec::new();
    for &n in &args.streams {
        match run_one(&args, capture.clone(), n, &floor_dir).await {
            Ok(row) => rows.push(row),
            Err(e) => println!("N = {n} failed: {e:#}"),
        }
        // Let the gateway settle before the next N.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    println!("\n## results ({} s steady window per N; gateway on one core)\n", args.seconds);
    println!(
        "| N | gateway CPU % (of one core) | CPU per stream (ms CPU/s) | floor per stream (ms CPU/s) | ratio | RSS Δ per stream (MiB) | loss % | files complete | threads | context switches/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (floor, ratio) = match r.floor_ms_per_stream {
            Some(f) if f > 0.0 => (format!("{f:.2}"), format!("{:.1}×", r.cpu_ms_per_stream / f)),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "| {}{} | {:.0} | {:.2} | {floor} | {ratio} | {:.2} | {:.3} | {}/{} | {} | {:.0} |",
            r.n,
            if r.started < r.n { format!(" ({} started)", r.started) } else { String::new() },
            r.gateway_cpu_pct,
            r.cpu_ms_per_stream,
            r.rss_per_stream_mib,
            r.loss_pct,
            r.complete,
            r.n,
            r.threads,
            r.switches_per_sec,
        );
    }
    for r in rows.iter().filter(|r| !r.notes.is_empty()) {
        println!("\nN = {}: {}", r.n, r.notes.join("; "));
    }
    Ok(())
}
