//! Signaling benchmark: run by hand against a running gateway (see
//! `bench/run-signaling.sh`, which pins the gateway and this load generator
//! to different cores). Prints, per phase:
//!
//! - join: sockets connected + joined per second, and gateway memory per
//!   connected socket, at 2,000 and 5,000 sockets in rooms of 4;
//! - relay: `#rtcio:message` envelopes per second at saturation and at a fixed
//!   10,000/s, for 4 KB (SDP-sized), 300 B (candidate-sized) and a 1-in-8 mix;
//!   end-to-end latency p50/p99; gateway CPU-seconds per 100k messages; lost
//!   and reordered messages (must be 0);
//! - churn: join → init-offer → answer envelope → leave cycles per second.
//!
//! Gateway CPU and memory come from `/proc/<pid>` (`--pid`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rtcio_gateway::sio_client::{ConnectOptions, SioClient, SioEvent};
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Parser, Debug)]
struct Args {
    /// Gateway URL.
    #[arg(long, default_value = "http://127.0.0.1:3900")]
    url: String,
    /// Gateway process id, for CPU and memory readings.
    #[arg(long)]
    pid: u32,
    /// Phases to run.
    #[arg(long, value_delimiter = ',', default_value = "join,relay,churn")]
    phases: Vec<String>,
    /// Socket counts for the join phase.
    #[arg(long, value_delimiter = ',', default_value = "2000,5000")]
    sockets: Vec<usize>,
    /// Seconds per relay/churn measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rooms of 4 used by the relay phase.
    #[arg(long, default_value_t = 50)]
    relay_rooms: usize,
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

struct ProcStats {
    cpu_secs: f64,
    rss_bytes: u64,
}

fn proc_stats(pid: u32) -> ProcStats {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("gateway pid");
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the comm).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        .unwrap();
    ProcStats { cpu_secs: ticks / clk_tck(), rss_bytes: rss_kb * 1024 }
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        let out = std::process::Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
    })
}

fn event_name(raw: &str) -> &str {
    raw.strip_prefix("[\"").and_then(|r| r.split('"').next()).unwrap_or("")
}

async fn raw_client(url: &str) -> SioClient {
    let opts = ConnectOptions { raw_events: true, ..Default::default() };
    for attempt in 0..5 {
        match SioClient::connect_with(url, opts.clone()).await {
            Ok(c) => return c,
            Err(e) if attempt < 4 => {
                eprintln!("connect retry: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    unreachable!()
}

async fn wait_for(c: &mut SioClient, name: &str) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), c.recv()).await {
            Ok(Some(SioEvent::Raw(raw))) if event_name(&raw) == name => return raw,
            Ok(Some(SioEvent::Disconnected { reason })) => panic!("disconnected waiting for {name}: {reason}"),
            Ok(Some(_)) => {}
            _ => panic!("timed out waiting for {name}"),
        }
    }
}

/// Connect and join `count` more sockets (rooms of 4, numbered from `first`).
async fn connect_and_join(url: &str, first: usize, count: usize, prefix: &str) -> Vec<SioClient> {
    let clients = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let next = Arc::new(AtomicU64::new(first as u64));
    let end = (first + count) as u64;
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (url, clients, next, prefix) = (url.to_string(), clients.clone(), next.clone(), prefix.to_string());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let mut c = raw_client(&url).await;
                c.emit("join-room", &json!({"roomId": format!("{prefix}-{}", i / 4), "name": format!("s{i}")}))
                    .unwrap();
                wait_for(&mut c, "join-ok").await;
                clients.lock().await.push(c);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    Arc::try_unwrap(clients).ok().unwrap().into_inner()
}

async fn phase_join(args: &Args) {
    println!("\n## join: sockets in rooms of 4");
    let base = proc_stats(args.pid);
    println!("gateway baseline RSS: {:.1} MiB", base.rss_bytes as f64 / 1048576.0);
    let mut all = Vec::new();
    for &target in &args.sockets {
        let have = all.len();
        if target <= have {
            continue;
        }
        let before = proc_stats(args.pid);
        let t0 = Instant::now();
        all.extend(connect_and_join(&args.url, have, target - have, "join").await);
        let elapsed = t0.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = proc_stats(args.pid);
        println!(
            "{target:>6} sockets: {:>7.0} sockets connected+joined/s ({} new in {elapsed:.2} s, gateway CPU {:.2} s) | RSS {:.1} MiB, {:.2} KiB per connected socket above baseline",
            (target - have) as f64 / elapsed,
            target - have,
            after.cpu_secs - before.cpu_secs,
            after.rss_bytes as f64 / 1048576.0,
            (after.rss_bytes.saturating_sub(base.rss_bytes)) as f64 / 1024.0 / target as f64,
        );
    }
    for c in all {
        c.abort();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("after disconnecting all: RSS {:.1} MiB", proc_stats(args.pid).rss_bytes as f64 / 1048576.0);
}

#[derive(Clone, Copy, Debug)]
enum Mix {
    Sdp,
    Candidate,
    OneSdpInEight,
}

#[derive(Clone, Copy, Debug)]
enum Rate {
    Max,
    Fixed(u64),
}

struct RelayResult {
    sent: u64,
    received: u64,
    reordered: u64,
    latencies_us: Vec<u32>,
    elapsed: f64,
    cpu: f64,
}

fn pad_sdp() -> String {
    let line = "a=candidate:1 1 udp 2122260223 192.168.1.10 54321 typ host generation 0\r\n";
    let mut s = String::from("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    while s.len() < 3900 {
        s.push_str(line);
    }
    s
}

async fn relay_run(args: &Args, mix: Mix, rate: Rate) -> RelayResult {
    let mut clients = connect_and_join(&args.url, 0, args.relay_rooms * 4, &format!("relay-{mix:?}-{rate:?}")).await;
    // Ids by room, then drain presence events.
    let ids: Vec<String> = clients.iter().map(|c| c.id().to_string()).collect();
    let index_of: Arc<HashMap<String, usize>> =
        Arc::new(ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect());
    // Learn room mates from the presence events each client saw.
    let mut mates: Vec<Vec<usize>> = vec![Vec::new(); clients.len()];
    for (i, c) in clients.iter_mut().enumerate() {
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(50), c.recv()).await {
            if let SioEvent::Raw(raw) = ev
                && event_name(&raw) == "user-connected"
            {
                let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
                if let Some(&j) = index_of.get(v[1]["id"].as_str().unwrap()) {
                    mates[i].push(j);
                }
            }
        }
    }
    for i in 0..clients.len() {
        for j in mates[i].clone() {
            if !mates[j].contains(&i) {
                mates[j].push(i);
            }
        }
    }
    let sdp = Arc::new(pad_sdp());
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let reordered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::with_capacity(2_000_000)));

    // Receivers.
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for c in clients {
        let (tx, rx) = split(c);
        senders.push(tx);
        let (received, reordered, latencies, index_of) =
            (received.clone(), reordered.clone(), latencies.clone(), index_of.clone());
        receivers.push(tokio::spawn(async move {
            let mut rx = rx;
            let mut last_seq: HashMap<usize, u64> = HashMap::new();
            let mut local = Vec::with_capacity(100_000);
            while let Some(ev) = rx.recv().await {
                let SioEvent::Raw(raw) = ev else { break };
                if event_name(&raw) != "#rtcio:message" {
                    continue;
                }
                let arrived = now_ns();
                let tail = &raw[raw.rfind(",\"seq\":").unwrap()..];
                let mut nums = tail.split(|ch: char| !ch.is_ascii_digit()).filter(|s| !s.is_empty());
                let seq: u64 = nums.next().unwrap().parse().unwrap();
                let t: u64 = nums.next().unwrap().parse().unwrap();
                let src_start = raw.find("\"source\":\"").unwrap() + 10;
                let src = &raw[src_start..src_start + 16];
                let s = index_of[src];
                let last = last_seq.entry(s).or_insert(0);
                if seq != *last + 1 {
                    reordered.fetch_add(1, Ordering::Relaxed);
                }
                *last = seq;
                local.push(((arrived.saturating_sub(t)) / 1000) as u32);
                received.fetch_add(1, Ordering::Relaxed);
                if local.len() >= 50_000 {
                    latencies.lock().unwrap().append(&mut local);
                }
            }
            latencies.lock().unwrap().append(&mut local);
        }));
    }
    let senders = Arc::new(senders);
    let mates = Arc::new(mates);
    let duration = Duration::from_secs(args.seconds);
    let cpu0 = proc_stats(args.pid).cpu_secs;
    let t0 = Instant::now();
    // Per (sender, target) sequence numbers.
    let seqs: Arc<Vec<std::sync::Mutex<HashMap<usize, u64>>>> =
        Arc::new((0..senders.len()).map(|_| std::sync::Mutex::new(HashMap::new())).collect());
    let make = {
        let (senders, sdp, seqs) = (senders.clone(), sdp.clone(), seqs.clone());
        move |from: usize, to: usize, n: u64| {
            let is_sdp = match mix {
                Mix::Sdp => true,
                Mix::Candidate => false,
                Mix::OneSdpInEight => n.is_multiple_of(8),
            };
            let seq = {
                let mut m = seqs[from].lock().unwrap();
                let e = m.entry(to).or_insert(0);
                *e += 1;
                *e
            };
            let (src, dst) = (senders[from].id.as_str(), senders[to].id.as_str());
            let data = if is_sdp {
                format!(
                    r#"{{"description":{{"type":"offer","sdp":{}}}}}"#,
                    serde_json::to_string(sdp.as_str()).unwrap()
                )
            } else {
                r#"{"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}"#.to_string()
            };
            let frame = format!(
                r##"2["#rtcio:message",{{"source":"{src}","target":"{dst}","data":{data},"seq":{seq},"t":{}}}]"##,
                now_ns()
            );
            senders[from].client.send_engine_message(&frame).unwrap();
        }
    };
    match rate {
        Rate::Max => {
            // Closed loop with a bounded number of messages in flight.
            const WINDOW: u64 = 4000;
            let mut n = 0u64;
            while t0.elapsed() < duration {
                if sent.load(Ordering::Relaxed) - received.load(Ordering::Relaxed) >= WINDOW {
                    tokio::task::yield_now().await;
                    continue;
                }
                for _ in 0..64 {
                    let from = (n as usize) % senders.len();
                    let m = &mates[from];
                    let to = m[(n as usize / senders.len()) % m.len()];
                    make(from, to, n);
                    n += 1;
                }
                sent.fetch_add(64, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
        Rate::Fixed(per_sec) => {
            let per_tick = per_sec / 1000;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            while t0.elapsed() < duration {
                tick.tick().await;
                for _ in 0..per_tick {
                    let from = (n as usize) % senders.len();
                    let m = &mates[from];
                    let to = m[(n as usize / senders.len()) % m.len()];
                    make(from, to, n);
                    n += 1;
                }
                sent.fetch_add(per_tick, Ordering::Relaxed);
            }
        }
    }
    // Let the tail arrive.
    let drain_until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = proc_stats(args.pid).cpu_secs - cpu0;
    for s in senders.iter() {
        s.client.close_now();
    }
    drop(senders);
    for r in receivers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    let latencies_us = std::mem::take(&mut *latencies.lock().unwrap());
    RelayResult {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        reordered: reordered.load(Ordering::Relaxed),
        latencies_us,
        elapsed,
        cpu,
    }
}

struct SenderHalf {
    id: String,
    client: rtcio_gateway::sio_client::SioSender,
}

fn split(c: SioClient) -> (SenderHalf, rtcio_gateway::sio_client::SioReceiver) {
    let id = c.id().to_string();
    let (tx, rx) = c.split();
    (SenderHalf { id, client: tx }, rx)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

async fn phase_relay(args: &Args) {
    println!(
        "\n## relay: {} sockets in rooms of 4, each sending to its 3 room mates, {} s per run",
        args.relay_rooms * 4,
        args.seconds
    );
    println!(
        "| mix | rate | sent | received/s | p50 ms | p99 ms | max ms | gateway CPU s per 100k | lost | reordered |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for rate in [Rate::Max, Rate::Fixed(10_000)] {
        for mix in [Mix::OneSdpInEight, Mix::Sdp, Mix::Candidate] {
            let mut r = relay_run(args, mix, rate).await;
            r.latencies_us.sort_unstable();
            let mix_name = match mix {
                Mix::Sdp => "4 KB SDP",
                Mix::Candidate => "300 B candidate",
                Mix::OneSdpInEight => "1 SDP in 8",
            };
            let rate_name = match rate {
                Rate::Max => "max".to_string(),
                Rate::Fixed(n) => format!("{n}/s"),
            };
            println!(
                "| {mix_name} | {rate_name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {} |",
                r.sent,
                r.received as f64 / r.elapsed.max(1e-9),
                pct(&r.latencies_us, 0.50),
                pct(&r.latencies_us, 0.99),
                pct(&r.latencies_us, 1.0),
                r.cpu / (r.received.max(1) as f64) * 100_000.0,
                r.sent - r.received.min(r.sent),
                r.reordered,
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn phase_churn(args: &Args) {
    const PAIRS: usize = 20;
    println!("\n## churn: {PAIRS} rooms, each with a resident; a churner joins, gets the resident's envelope, leaves");
    let mut residents = Vec::new();
    for i in 0..PAIRS {
        let mut c = raw_client(&args.url).await;
        c.emit("join-room", &json!({"roomId": format!("churn-{i}"), "name": "resident"})).unwrap();
        wait_for(&mut c, "join-ok").await;
        residents.push(c);
    }
    let cycles = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for mut r in residents {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let me = r.id().to_string();
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), r.recv()).await {
                    Ok(Some(SioEvent::Raw(raw))) if event_name(&raw) == "#rtcio:init-offer" => {
                        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
                        let src = v[1]["source"].as_str().unwrap();
                        let env = json!({"source": me, "target": src, "data": {"description": {"type": "offer", "sdp": "v=0"}}});
                        r.emit("#rtcio:message", &env).unwrap();
                    }
                    Ok(None) => break,
                    _ => {}
                }
            }
        }));
    }
    let cpu0 = proc_stats(args.pid).cpu_secs;
    let t0 = Instant::now();
    for i in 0..PAIRS {
        let (url, cycles, stop) = (args.url.clone(), cycles.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = raw_client(&url).await;
            let room = format!("churn-{i}");
            while !stop.load(Ordering::Relaxed) {
                c.emit("join-room", &json!({"roomId": room, "name": "churner"})).unwrap();
                wait_for(&mut c, "join-ok").await;
                // The residents stop answering when the measurement ends.
                let answered = tokio::time::timeout(Duration::from_secs(2), wait_for(&mut c, "#rtcio:message")).await;
                c.emit("leave-room", &json!({"roomId": room})).unwrap();
                if answered.is_err() {
                    break;
                }
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let n = cycles.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = proc_stats(args.pid).cpu_secs - cpu0;
    println!(
        "{:.0} join/answer/leave cycles per second ({n} in {elapsed:.1} s), gateway CPU {:.2} s ({:.0} µs per cycle)",
        n as f64 / elapsed,
        cpu,
        cpu / n as f64 * 1e6
    );
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
}

fn main() {
    let args = Args::parse();
    epoch();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("# rtcio-gateway signaling benchmark against {} (pid {})", args.url, args.pid);
        for phase in &args.phases {
            match phase.as_str() {
                "join" => phase_join(&args).await,
                "relay" => phase_relay(&args).await,
                "churn" => phase_churn(&args).await,
                other => panic!("unknown phase {other}"),
            }
        }
    });
}
