//! Shared fixtures: an in-process gateway on 127.0.0.1:0 and connected clients.
#![allow(dead_code)]

pub mod marks;
pub mod media;
pub mod mux;
pub mod peers;
pub mod wait;
pub mod webhooks;

use std::time::Duration;

use rtcio_gateway::config::Config;
use rtcio_gateway::server::Gateway;
use rtcio_gateway::sio_client::{SioClient, SioEvent};
use serde_json::{Value, json};
#[allow(unused_imports)]
pub use wait::{assert_stays, assert_stays_sync, wait_for_value, wait_until, wait_until_sync};

pub const WAIT: Duration = Duration::from_secs(5);
/// How long we listen to conclude that something was NOT delivered.
pub const QUIET: Duration = Duration::from_millis(300);

pub async fn start_gateway() -> Gateway {
    init_tracing();
    start_with(|_| {}).await
}

pub async fn start() -> Gateway {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Gateway {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 5;
    // Recording is on by default in the product; signaling tests opt in.
    config.recording.enabled = false;
    tweak(&mut config);
    config.validate().expect("valid test config");
    Gateway::start(config).await.expect("gateway starts")
}

/// A gateway recording every room into `dir` (WebRTC on loopback), then `tweak`.
pub async fn recording_gateway(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Gateway {
    init_tracing();
    let dir = dir.to_path_buf();
    start_with(move |c| {
        c.recording.enabled = true;
        c.recording.dir = dir;
        c.recording.udp_bind = "127.0.0.1".parse().unwrap();
        c.recording.track_wait_ms = 700;
        tweak(c);
    })
    .await
}

pub fn url(gw: &Gateway) -> String {
    format!("http://{}", gw.local_addr())
}

pub async fn connect(gw: &Gateway) -> SioClient {
    SioClient::connect(&url(gw), None).await.expect("connects")
}

/// Connect, join `room` as `name`, and wait for `join-ok`.
pub async fn joined(gw: &Gateway, room: &str, name: &str) -> SioClient {
    let mut c = connect(gw).await;
    c.emit("join-room", &json!({"roomId": room, "name": name})).unwrap();
    c.expect("join-ok", WAIT).await.expect("join-ok");
    c
}

/// Every event received until nothing arrives for `QUIET`.
pub async fn drain(c: &mut SioClient) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Some(ev) = c.recv_timeout(QUIET).await {
        if let SioEvent::Event { name, args } = ev {
            out.push((name, args.into_iter().next().unwrap_or(Value::Null)));
        }
    }
    out
}

/// Names of the drained events.
pub fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

pub fn envelope(from: &SioClient, to: &str, data: Value) -> Value {
    json!({"source": from.id(), "target": to, "data": data})
}

/// Value of a metric line `name{labels} value` in the exposition; panics if the series is missing.
pub async fn metric(gw: &Gateway, series: &str) -> f64 {
    match metric_if_present(gw, series).await {
        Ok(value) => value,
        Err(body) => {
            let name = series.split('{').next().unwrap_or(series);
            let related: Vec<&str> = body.lines().filter(|l| l.starts_with(name)).collect();
            panic!("metric series {series} is missing from /metrics; series named {name}: {related:#?}");
        }
    }
}

/// The series' value, or the whole /metrics body when the series is not in it.
pub async fn metric_if_present(gw: &Gateway, series: &str) -> Result<f64, String> {
    let body = reqwest_text(&format!("{}/metrics", url(gw))).await;
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap())
        })
        .ok_or(body)
}

/// Minimal HTTP/1.1 GET returning (status, body), without an extra client crate.
pub async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url::Url::parse(url).unwrap();
    let mut s = tokio::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap())).await.unwrap();
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", u.path());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

async fn reqwest_text(url: &str) -> String {
    http_get(url).await.1
}

/// Log to the test output, filtered by RUST_LOG (default: warnings).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// `npm ci` in tests/node unless already done (the Node suites need it).
pub fn ensure_node_modules() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/socket.io/package.json").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (scripts/install-deps.sh)");
        assert!(status.success(), "npm ci failed");
    }
    dir
}

/// Kills a child process when dropped, also when a test fails.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the Node reference rtc.io server (tests/node/reference-server.mjs) on
/// a free port; returns it and its URL.
pub fn start_node_reference_server() -> (KillOnDrop, String) {
    let dir = ensure_node_modules();
    let mut server = KillOnDrop(
        std::process::Command::new("node")
            .args(["reference-server.mjs", "0"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node runs"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.0.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.trim().strip_prefix("listening ").unwrap().parse().unwrap();
    (server, format!("http://127.0.0.1:{port}"))
}

/// Run a Node test suite (`tests/<suite>/*.test.mjs`) against the gateway
/// binary of this test run: `npm ci` first if `marker_module` is missing,
/// print its report, and require `expected` tests to have passed. A missing
/// Node or npm fails the test rather than skipping it.
pub fn run_node_suite(suite: &str, marker_module: &str, expected: usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(suite);
    if !dir.join("node_modules").join(marker_module).join("package.json").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (run scripts/install-deps.sh)");
        assert!(status.success(), "npm ci in tests/{suite} failed");
    }
    let out = std::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("GATEWAY_BIN", env!("CARGO_BIN_EXE_rtcio-gateway"))
        .output()
        .expect("node is installed (run scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the tests/{suite} suite failed (its report is above)");
    assert!(
        stdout.contains(&format!("pass {expected}")),
        "expected all {expected} tests of tests/{suite} to run and pass"
    );
}
