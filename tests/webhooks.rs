//! Webhook delivery against real HTTP receivers (axum on 127.0.0.1:0):
//! retries, signatures, give-up, full queues, isolation of URLs and shutdown.
//! Only the crate's public API is used; signatures are checked with the
//! `hmac` crate directly, not with `rtcio_gateway::webhooks::sign`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use prometheus::Registry;
use rtcio_gateway::webhooks::{WebhookMetrics, Webhooks, WebhooksConfig};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "test-secret-0123456789";
/// Generous bound for anything that should happen "soon" on a loaded machine.
const SOON: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Mode {
    /// Answer 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Answer 200 after a delay.
    SlowOk(Duration),
    /// Never answer.
    Hang,
}

#[derive(Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<parking_lot::Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let state = (mode, seen.clone());
        let app = Router::new().route("/hook", post(handle)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().len()
    }
}

async fn handle(
    State((mode, seen)): State<(Mode, Arc<parking_lot::Mutex<Vec<Seen>>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = {
        let mut seen = seen.lock();
        seen.push(Seen { headers, body });
        seen.len()
    };
    match mode {
        Mode::FailFirst(k) if n <= k => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::FailFirst(_) => StatusCode::OK,
        Mode::SlowOk(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
        Mode::Hang => std::future::pending().await,
    }
}

/// A loopback URL nobody listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

fn registry() -> Registry {
    Registry::new_custom(Some("rtcio_gateway".into()), None).unwrap()
}

fn config(urls: Vec<String>) -> WebhooksConfig {
    let c = WebhooksConfig {
        urls,
        secret: SECRET.into(),
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        ..Default::default()
    };
    c.validate().unwrap();
    c
}

/// Value of a metric (with `result=<label>` when given), read from the registry.
fn metric(registry: &Registry, name: &str, result: Option<&str>) -> f64 {
    let full = format!("rtcio_gateway_{name}");
    let family = registry.gather().into_iter().find(|f| f.name() == full).unwrap_or_else(|| panic!("{full}"));
    let m = family
        .get_metric()
        .iter()
        .find(|m| result.is_none_or(|r| m.get_label().iter().any(|l| l.name() == "result" && l.value() == r)))
        .unwrap_or_else(|| panic!("{full} {result:?}"));
    match family.get_field_type() {
        prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
        _ => m.get_counter().get_value(),
    }
}

fn delivered(r: &Registry) -> f64 {
    metric(r, "webhook_deliveries_total", Some("delivered"))
}
fn failed(r: &Registry) -> f64 {
    metric(r, "webhook_deliveries_total", Some("failed"))
}
fn dropped(r: &Registry) -> f64 {
    metric(r, "webhook_deliveries_total", Some("dropped"))
}
fn attempt_failures(r: &Registry) -> f64 {
    metric(r, "webhook_attempt_failures_total", None)
}
fn depth(r: &Registry) -> f64 {
    metric(r, "webhook_queue_depth", None)
}

/// Wait until `cond` holds, panicking with `what` after [`SOON`].
async fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    common::wait_until_sync(what, SOON, cond).await
}

fn header<'a>(s: &'a Seen, name: &str) -> &'a str {
    s.headers.get(name).unwrap_or_else(|| panic!("header {name}")).to_str().unwrap()
}

/// Recompute the signature independently of the crate.
fn assert_signed(s: &Seen) {
    let sig = header(s, "x-rtcio-signature-256");
    let hex_sig = sig.strip_prefix("sha256=").expect("sha256= prefix");
    assert_eq!(hex_sig, hex_sig.to_lowercase(), "lowercase hex");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&s.body);
    mac.verify_slice(&hex::decode(hex_sig).unwrap()).expect("valid HMAC-SHA256 signature");
}

fn ids(seen: &[Seen]) -> Vec<String> {
    let mut ids: Vec<String> = seen.iter().map(|s| header(s, "x-rtcio-delivery").to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_delivered_with_same_id_body_and_valid_signatures() {
    let rx = Receiver::start(Mode::FailFirst(2)).await;
    let reg = registry();
    let hooks = Webhooks::start(config(vec![rx.url.clone()]), WebhookMetrics::register(&reg));
    assert!(hooks.is_enabled());
    hooks.notify("recording.finished", json!({"room": "r1", "file": "a.webm"}));

    wait_for("delivered", || delivered(&reg) == 1.0).await;
    let seen = rx.seen();
    assert_eq!(seen.len(), 3, "two failed attempts and one successful");
    let id = header(&seen[0], "x-rtcio-delivery").to_owned();
    assert!(!id.is_empty());
    for s in &seen {
        assert_eq!(header(s, "x-rtcio-delivery"), id);
        assert_eq!(s.body, seen[0].body, "the same body on every attempt");
        assert_eq!(header(s, "content-type"), "application/json");
        assert_eq!(header(s, "x-rtcio-event"), "recording.finished");
        assert!(header(s, "user-agent").starts_with("rtcio-gateway/"), "{}", header(s, "user-agent"));
        assert_signed(s);
    }
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["event"], "recording.finished");
    assert_eq!(body["data"], json!({"room": "r1", "file": "a.webm"}));
    chrono::DateTime::parse_from_rfc3339(body["at"].as_str().unwrap()).expect("RFC 3339 `at`");
    assert_eq!(body.as_object().unwrap().len(), 4, "{body}");

    assert_eq!(attempt_failures(&reg), 2.0);
    assert_eq!(delivered(&reg), 1.0);
    assert_eq!(failed(&reg), 0.0);
    assert_eq!(dropped(&reg), 0.0);
    assert_eq!(depth(&reg), 0.0);

    // A second event gets a different id.
    hooks.notify("relay.started", json!({}));
    wait_for("second delivered", || delivered(&reg) == 2.0).await;
    let seen = rx.seen();
    assert_eq!(seen.len(), 4);
    assert_ne!(header(&seen[3], "x-rtcio-delivery"), id);
    assert_eq!(header(&seen[3], "x-rtcio-event"), "relay.started");
    assert_signed(&seen[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_url_fails_after_max_attempts() {
    let reg = registry();
    let cfg = WebhooksConfig { max_attempts: 3, ..config(vec![dead_url()]) };
    let hooks = Webhooks::start(cfg, WebhookMetrics::register(&reg));
    hooks.notify("relay.failed", json!({"room": "r1"}));

    wait_for("failed", || failed(&reg) == 1.0).await;
    assert_eq!(attempt_failures(&reg), 3.0);
    assert_eq!(delivered(&reg), 0.0);
    assert_eq!(dropped(&reg), 0.0);
    assert_eq!(depth(&reg), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_without_blocking() {
    let rx = Receiver::start(Mode::Hang).await;
    let reg = registry();
    let cfg = WebhooksConfig { queue_capacity: 2, timeout_secs: 120, max_attempts: 1, ..config(vec![rx.url.clone()]) };
    let hooks = Webhooks::start(cfg, WebhookMetrics::register(&reg));

    let started = Instant::now();
    for i in 0..5 {
        hooks.notify("recording.started", json!({"n": i}));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "notify must not wait for deliveries");
    // Capacity counts queued + in-flight deliveries, so this is exact at once.
    assert_eq!(dropped(&reg), 3.0);
    assert_eq!(depth(&reg), 2.0);

    wait_for("both accepted deliveries in flight", || rx.count() == 2).await;
    common::assert_stays_sync("the dropped deliveries never being sent", common::QUIET, || match rx.count() {
        2 => Ok(()),
        n => Err(format!("{n} deliveries arrived")),
    })
    .await;
    assert_eq!(dropped(&reg), 3.0);
    assert_eq!(delivered(&reg) + failed(&reg), 0.0);
    assert_eq!(depth(&reg), 2.0);

    // Still full while both hang: one more is dropped, immediately.
    hooks.notify("recording.started", json!({"n": 5}));
    assert_eq!(dropped(&reg), 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_attempt_times_out_and_is_retried() {
    let rx = Receiver::start(Mode::Hang).await;
    let reg = registry();
    let cfg = WebhooksConfig { timeout_secs: 1, max_attempts: 2, ..config(vec![rx.url.clone()]) };
    let hooks = Webhooks::start(cfg, WebhookMetrics::register(&reg));
    hooks.notify("relay.stopped", json!({}));

    wait_for("failed after two timeouts", || failed(&reg) == 1.0).await;
    assert_eq!(attempt_failures(&reg), 2.0);
    assert_eq!(rx.count(), 2);
    let seen = rx.seen();
    assert_eq!(header(&seen[0], "x-rtcio-delivery"), header(&seen[1], "x-rtcio-delivery"));
    assert_eq!(depth(&reg), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_dead_url_does_not_hold_back_others() {
    let hanging = Receiver::start(Mode::Hang).await;
    let up = Receiver::start(Mode::FailFirst(0)).await;
    let reg = registry();
    // The hanging URL only times out after 120 s and holds its 2 queue slots;
    // the dead one fails and retries. Neither may delay or starve the live one.
    let cfg = WebhooksConfig {
        queue_capacity: 2,
        timeout_secs: 120,
        ..config(vec![dead_url(), hanging.url.clone(), up.url.clone()])
    };
    let hooks = Webhooks::start(cfg, WebhookMetrics::register(&reg));

    for n in 1..=3 {
        hooks.notify("recording.started", json!({"n": n}));
        wait_for("the live URL got the event", || delivered(&reg) == n as f64).await;
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    let mut ns: Vec<i64> =
        seen.iter().map(|s| serde_json::from_slice::<Value>(&s.body).unwrap()["data"]["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, [1, 2, 3]);
    seen.iter().for_each(assert_signed);

    wait_for("the hanging URL has two attempts in flight", || hanging.count() == 2).await;
    // The third event did not fit the hanging URL's queue (the dead URL's
    // retries may or may not have filled its own).
    assert!((1.0..=2.0).contains(&dropped(&reg)), "dropped {}", dropped(&reg));
    assert_eq!(delivered(&reg), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delivers_what_is_queued() {
    let rx = Receiver::start(Mode::SlowOk(Duration::from_millis(100))).await;
    let reg = registry();
    let hooks = Webhooks::start(config(vec![rx.url.clone()]), WebhookMetrics::register(&reg));
    let other = hooks.clone();
    // More events than attempts in flight per URL, so some are still queued.
    for n in 0..10 {
        hooks.notify("recording.finished", json!({"n": n}));
    }
    tokio::time::timeout(SOON + Duration::from_secs(5), hooks.close(SOON)).await.expect("close returns");

    assert_eq!(delivered(&reg), 10.0);
    assert_eq!(failed(&reg), 0.0);
    assert_eq!(depth(&reg), 0.0);
    let ids = ids(&rx.seen());
    assert_eq!(ids.len(), 10);
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "distinct ids: {ids:?}");
    rx.seen().iter().for_each(assert_signed);

    // Closed: further events (from any clone) are dropped, not sent.
    other.notify("recording.finished", json!({}));
    assert_eq!(dropped(&reg), 1.0);
    common::assert_stays_sync("nothing sent after close", common::QUIET, || match rx.count() {
        10 => Ok(()),
        n => Err(format!("{n} deliveries arrived")),
    })
    .await;
    other.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_retries_waiting_deliveries_at_once() {
    let rx = Receiver::start(Mode::FailFirst(1)).await;
    let reg = registry();
    // Without close, the retry would come a minute later.
    let cfg = WebhooksConfig { initial_backoff_ms: 60_000, max_backoff_ms: 60_000, ..config(vec![rx.url.clone()]) };
    let hooks = Webhooks::start(cfg, WebhookMetrics::register(&reg));
    hooks.notify("recording.finished", json!({}));
    wait_for("first attempt failed", || attempt_failures(&reg) == 1.0).await;

    tokio::time::timeout(SOON + Duration::from_secs(5), hooks.close(SOON)).await.expect("close returns");
    assert_eq!(delivered(&reg), 1.0);
    assert_eq!(rx.count(), 2);
    assert_eq!(depth(&reg), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gives_up_at_the_deadline() {
    let hanging = Receiver::start(Mode::Hang).await;
    let reg = registry();
    let cfg = WebhooksConfig {
        timeout_secs: 120,
        initial_backoff_ms: 60_000,
        max_backoff_ms: 60_000,
        ..config(vec![hanging.url.clone(), dead_url()])
    };
    let hooks = Webhooks::start(cfg, WebhookMetrics::register(&reg));
    hooks.notify("recording.finished", json!({"n": 1}));
    hooks.notify("recording.finished", json!({"n": 2}));
    wait_for("both in flight to the hanging URL", || hanging.count() == 2).await;

    // Far sooner than the 120 s attempt timeout or the 60 s retry wait.
    tokio::time::timeout(SOON, hooks.close(Duration::from_millis(300))).await.expect("close returns by its deadline");
    assert_eq!(failed(&reg), 4.0, "2 events x 2 URLs");
    assert_eq!(delivered(&reg), 0.0);
    assert_eq!(depth(&reg), 0.0);
}
