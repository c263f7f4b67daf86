//! Outgoing webhooks: signed JSON `POST`s that tell other systems about
//! recordings and relays (`recording.started`, `relay.failed`, …).
//!
//! This module owns the `[webhooks]` configuration section
//! ([`WebhooksConfig`]), the webhook metrics ([`WebhookMetrics`]), the body
//! format and signature ([`sign`]), the retry schedule ([`backoff`]) and the
//! delivery machinery ([`Webhooks`]). Callers only call [`Webhooks::notify`]
//! (never blocks) and, at shutdown, [`Webhooks::close`].
//!
//! # Wire format
//! `POST <url>` with the body `{"id","event","at","data"}` (`id` is unique per
//! event and the same for every URL and every retry; `at` is RFC 3339 UTC) and
//! the headers `Content-Type: application/json`, `X-Rtcio-Event`,
//! `X-Rtcio-Delivery` (= `id`), `X-Rtcio-Signature-256: sha256=<hex>` (HMAC-SHA256
//! of the raw body with the configured secret) and
//! `User-Agent: rtcio-gateway/<version>`. A 2xx answer means delivered;
//! anything else (including 3xx: redirects are not followed), a network error or
//! a timeout means the attempt failed.
//!
//! # Queue and retry semantics
//! - Every event becomes one *delivery* per configured URL.
//! - `queue_capacity` bounds, **per URL**, the deliveries that are outstanding:
//!   waiting to be sent, in flight, or waiting for a retry. A delivery that does
//!   not fit is dropped at once (counted `dropped`), so a dead URL can never
//!   make events for the other URLs be dropped, and memory stays bounded.
//! - One scheduler task owns all queues. Per URL it keeps at most
//!   [`MAX_IN_FLIGHT_PER_URL`] attempts in flight (each a short-lived task,
//!   bounded by `timeout_secs`); failed deliveries wait for their retry in a
//!   timer queue, not in a task, so they never hold back new deliveries to the
//!   same URL, and a slow URL never holds back another URL.
//! - After a failed attempt *n* the delivery is retried after [`backoff`]`(n)`;
//!   after `max_attempts` failed attempts it is counted `failed`.
//! - Delivery order is not guaranteed (attempts run concurrently and retries
//!   come later); receivers should use `at` and deduplicate on `id`.
//! - [`Webhooks::close`] stops accepting (later `notify` calls count `dropped`),
//!   retries every delivery that waits for a retry at once, keeps sending until
//!   nothing is left or the deadline passes, and counts whatever is left as
//!   `failed`. A retry that would fall after the deadline is given up at once,
//!   so `close` returns as soon as nothing more can be delivered in time.
//! - Dropping every [`Webhooks`] handle without `close` lets the scheduler
//!   finish the outstanding deliveries in the background, then it exits.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::backoff::Backoff;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

/// Event names of the contract (the `event` field and `X-Rtcio-Event`).
pub mod event {
    pub const RECORDING_STARTED: &str = "recording.started";
    pub const RECORDING_FINISHED: &str = "recording.finished";
    pub const RECORDING_FAILED: &str = "recording.failed";
    pub const RELAY_STARTED: &str = "relay.started";
    pub const RELAY_STOPPED: &str = "relay.stopped";
    pub const RELAY_FAILED: &str = "relay.failed";
}

/// Header carrying the event name.
pub const HEADER_EVENT: &str = "X-Rtcio-Event";
/// Header carrying the delivery id (same as the body's `id`).
pub const HEADER_DELIVERY: &str = "X-Rtcio-Delivery";
/// Header carrying `sha256=<lowercase hex HMAC-SHA256(secret, raw body)>`.
pub const HEADER_SIGNATURE: &str = "X-Rtcio-Signature-256";
/// `User-Agent` of every webhook request.
pub const USER_AGENT: &str = concat!("rtcio-gateway/", env!("CARGO_PKG_VERSION"));
/// Attempts in flight at the same time, per URL.
pub const MAX_IN_FLIGHT_PER_URL: usize = 4;

/// Label values of `webhook_deliveries_total{result}`.
pub const RESULT_DELIVERED: &str = "delivered";
pub const RESULT_FAILED: &str = "failed";
pub const RESULT_DROPPED: &str = "dropped";

/// The `[webhooks]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// http:// or https:// URLs that receive every event. Empty disables webhooks.
    pub urls: Vec<String>,
    /// HMAC-SHA256 key of `X-Rtcio-Signature-256`; required when `urls` is not empty.
    pub secret: String,
    /// Attempts per delivery (first one included) before it counts as failed.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each further one.
    pub initial_backoff_ms: u64,
    /// Upper bound of the wait between attempts.
    pub max_backoff_ms: u64,
    /// Time limit of one attempt (connect, request and response headers).
    pub timeout_secs: u64,
    /// Deliveries outstanding per URL (queued, in flight or waiting for a
    /// retry); more are dropped.
    pub queue_capacity: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: String::new(),
            max_attempts: 8,
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            timeout_secs: 5,
            queue_capacity: 1000,
        }
    }
}

impl WebhooksConfig {
    /// Refuse values that parse but cannot work. The message starts with the
    /// offending key of the section (e.g. `urls: …`).
    pub fn validate(&self) -> Result<(), String> {
        for u in &self.urls {
            let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.has_host());
            if !ok {
                return Err(format!("urls: {u:?} is not an http:// or https:// URL"));
            }
        }
        if !self.urls.is_empty() && self.secret.is_empty() {
            return Err("secret: required when urls is not empty".into());
        }
        if self.max_attempts < 1 {
            return Err("max_attempts: must be at least 1".into());
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err("max_backoff_ms: must not be less than initial_backoff_ms".into());
        }
        if self.timeout_secs < 1 {
            return Err("timeout_secs: must be at least 1".into());
        }
        if self.queue_capacity < 1 {
            return Err("queue_capacity: must be at least 1".into());
        }
        Ok(())
    }
}

/// The webhook metrics (registered in the gateway's registry, which adds the
/// `rtcio_gateway_` prefix).
#[derive(Clone)]
pub struct WebhookMetrics {
    /// Final outcome per event per URL: delivered, failed (gave up), dropped (queue full or closed).
    pub deliveries_total: IntCounterVec,
    /// Attempts that failed (retried later or given up).
    pub attempt_failures_total: IntCounter,
    /// Deliveries outstanding (queued, in flight or waiting for a retry), all URLs.
    pub queue_depth: IntGauge,
}

impl WebhookMetrics {
    pub fn register(registry: &Registry) -> WebhookMetrics {
        let m = WebhookMetrics {
            deliveries_total: crate::metrics::counter_vec(
                registry,
                "webhook_deliveries_total",
                "Webhook deliveries (one per event per URL) by final result",
                &["result"],
            ),
            attempt_failures_total: crate::metrics::counter(
                registry,
                "webhook_attempt_failures_total",
                "Webhook delivery attempts that failed (non-2xx, network error or timeout)",
            ),
            queue_depth: crate::metrics::gauge(
                registry,
                "webhook_queue_depth",
                "Webhook deliveries queued, in flight or waiting for a retry",
            ),
        };
        for r in [RESULT_DELIVERED, RESULT_FAILED, RESULT_DROPPED] {
            m.deliveries_total.with_label_values(&[r]);
        }
        m
    }
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`, the value of
/// `X-Rtcio-Signature-256`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body of one event: `{"id","event","at","data"}` in that order.
fn body(id: &str, event: &str, at: &str, data: &serde_json::Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        id: &'a str,
        event: &'a str,
        at: &'a str,
        data: &'a serde_json::Value,
    }
    serde_json::to_vec(&Envelope { id, event, at, data }).expect("a JSON value serializes")
}

/// One event, shared by its deliveries to every URL.
struct Event {
    id: String,
    name: String,
    body: Bytes,
    signature: String,
}

/// One event for one URL.
struct Delivery {
    target: usize,
    event: Arc<Event>,
    /// Attempts made so far.
    attempts: u32,
}

enum Msg {
    Deliver(Delivery),
    /// Stop accepting, finish by this deadline.
    Close(Instant),
}

/// State shared by the handles and the scheduler.
struct Shared {
    closed: AtomicBool,
    /// Outstanding deliveries per URL (index of `urls`).
    outstanding: Vec<AtomicUsize>,
    metrics: WebhookMetrics,
}

impl Shared {
    /// A delivery reached its final result: count it and free its slot.
    /// (The slot is freed before the result is counted, so whoever sees the
    /// result also sees the slot free.)
    fn finish(&self, target: usize, result: &str) {
        self.outstanding[target].fetch_sub(1, Ordering::AcqRel);
        self.metrics.queue_depth.dec();
        self.metrics.deliveries_total.with_label_values(&[result]).inc();
    }
}

struct Inner {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    secret: Vec<u8>,
    capacity: usize,
    labels: Vec<String>,
}

/// Handle of the webhook sender; cheap to clone. Disabled (every call a
/// no-op) when the configuration has no URLs.
#[derive(Clone)]
pub struct Webhooks {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls = self.inner.as_ref().map_or(0, |i| i.labels.len());
        f.debug_struct("Webhooks").field("urls", &urls).finish()
    }
}

impl Webhooks {
    /// Start the scheduler task (must be called inside a Tokio runtime when
    /// `config.urls` is not empty). `config` should have passed
    /// [`WebhooksConfig::validate`]; an unusable URL only makes its
    /// deliveries fail.
    pub fn start(config: WebhooksConfig, metrics: WebhookMetrics) -> Webhooks {
        if config.urls.is_empty() {
            return Webhooks { inner: None };
        }
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .build()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot build the webhook HTTP client with its settings; using defaults");
                reqwest::Client::new()
            });
        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            outstanding: config.urls.iter().map(|_| AtomicUsize::new(0)).collect(),
            metrics,
        });
        let labels: Vec<String> = config.urls.iter().map(|u| crate::redact::credentials(u)).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let scheduler = Scheduler {
            rx,
            rx_done: false,
            shared: shared.clone(),
            client,
            targets: config
                .urls
                .iter()
                .zip(&labels)
                .map(|(url, label)| Target {
                    url: url.clone(),
                    label: label.clone(),
                    ready: VecDeque::new(),
                    in_flight: 0,
                })
                .collect(),
            waiting: BinaryHeap::new(),
            seq: 0,
            attempts: JoinSet::new(),
            in_flight: HashMap::new(),
            closing: None,
            max_attempts: config.max_attempts.max(1),
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms),
            timeout,
        };
        let task = tokio::spawn(scheduler.run());
        Webhooks {
            inner: Some(Arc::new(Inner {
                shared,
                tx,
                task: parking_lot::Mutex::new(Some(task)),
                secret: config.secret.into_bytes(),
                capacity: config.queue_capacity,
                labels,
            })),
        }
    }

    /// Whether any URL is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queue `event` with `data` for every URL. Never blocks or waits: a URL
    /// whose queue is full (or a closed sender) gets the delivery dropped and
    /// counted `dropped`. `event` must be a valid header value (use
    /// [`event`]'s constants); others are refused with a warning.
    pub fn notify(&self, event: &str, data: serde_json::Value) {
        let Some(inner) = &self.inner else { return };
        if event.is_empty() || !event.bytes().all(|b| b.is_ascii_graphic()) {
            tracing::warn!(event = ?event, "webhook event name is not a plain token; not sent");
            return;
        }
        let id = crate::ids::short_id();
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = body(&id, event, &at, &data);
        let signature = sign(&inner.secret, &body);
        let ev = Arc::new(Event { id, name: event.to_owned(), body: Bytes::from(body), signature });
        let shared = &inner.shared;
        for (target, label) in inner.labels.iter().enumerate() {
            if shared.closed.load(Ordering::Acquire) {
                shared.metrics.deliveries_total.with_label_values(&[RESULT_DROPPED]).inc();
                tracing::debug!(url = %label, event = %ev.name, id = %ev.id, "webhooks closed; delivery dropped");
                continue;
            }
            let reserved = shared.outstanding[target]
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < inner.capacity).then_some(n + 1))
                .is_ok();
            if !reserved {
                shared.metrics.deliveries_total.with_label_values(&[RESULT_DROPPED]).inc();
                tracing::warn!(url = %label, event = %ev.name, id = %ev.id, "webhook queue full; delivery dropped");
                continue;
            }
            shared.metrics.queue_depth.inc();
            let delivery = Delivery { target, event: ev.clone(), attempts: 0 };
            if inner.tx.send(Msg::Deliver(delivery)).is_err() {
                // The scheduler has stopped (closed): same as closed.
                shared.finish(target, RESULT_DROPPED);
                tracing::debug!(url = %label, event = %ev.name, id = %ev.id, "webhooks closed; delivery dropped");
            }
        }
    }

    /// Stop accepting events and try to deliver what is outstanding within
    /// `within`; what is left then is counted `failed`. Returns when done
    /// (at the latest shortly after `within`). Later `notify` calls on any
    /// clone count `dropped`. Calling it again (on another clone) returns at once.
    pub async fn close(self, within: Duration) {
        let Some(inner) = self.inner else { return };
        inner.shared.closed.store(true, Ordering::Release);
        let Some(task) = inner.task.lock().take() else { return };
        let _ = inner.tx.send(Msg::Close(Instant::now() + within));
        // The scheduler stops at the deadline on its own; the margin only
        // guards against a starved runtime.
        if tokio::time::timeout(within + Duration::from_secs(1), task).await.is_err() {
            tracing::warn!("webhook sender did not stop by its deadline");
        }
    }
}

/// One URL's queue.
struct Target {
    url: String,
    label: String,
    /// Deliveries due now, in order.
    ready: VecDeque<Delivery>,
    in_flight: usize,
}

/// A delivery waiting for its retry; ordered so that [`BinaryHeap`] pops the earliest.
struct Waiting {
    due: Instant,
    seq: u64,
    delivery: Delivery,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

type AttemptResult = Result<u16, String>;

struct Scheduler {
    rx: mpsc::UnboundedReceiver<Msg>,
    /// Every handle is gone: finish what is outstanding, then stop.
    rx_done: bool,
    shared: Arc<Shared>,
    client: reqwest::Client,
    targets: Vec<Target>,
    waiting: BinaryHeap<Waiting>,
    seq: u64,
    attempts: JoinSet<AttemptResult>,
    in_flight: HashMap<tokio::task::Id, Delivery>,
    /// Set by [`Webhooks::close`]: the deadline.
    closing: Option<Instant>,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    timeout: Duration,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Scheduler {
    async fn run(mut self) {
        loop {
            self.start_ready();
            let idle = self.in_flight.is_empty() && self.waiting.is_empty();
            if idle && (self.closing.is_some() || self.rx_done) {
                break;
            }
            let next_due = self.waiting.peek().map(|w| w.due);
            tokio::select! {
                biased;
                () = sleep_until_opt(self.closing) => {
                    self.give_up_all();
                    break;
                }
                Some(joined) = self.attempts.join_next_with_id() => self.attempt_done(joined),
                () = sleep_until_opt(next_due) => {
                    let now = Instant::now();
                    while self.waiting.peek().is_some_and(|w| w.due <= now) {
                        let w = self.waiting.pop().expect("peeked");
                        self.targets[w.delivery.target].ready.push_back(w.delivery);
                    }
                }
                msg = self.rx.recv(), if !self.rx_done => match msg {
                    Some(Msg::Deliver(d)) => self.targets[d.target].ready.push_back(d),
                    Some(Msg::Close(deadline)) => self.close(deadline),
                    None => self.rx_done = true,
                },
            }
        }
        // Refuse further sends (they count as dropped in `notify`) and fail
        // whatever a racing `notify` queued after the last look.
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Deliver(d) = msg {
                self.give_up(d, "webhooks closed");
            }
        }
    }

    /// Start attempts for ready deliveries, up to the per-URL limit.
    fn start_ready(&mut self) {
        for t in &mut self.targets {
            while t.in_flight < MAX_IN_FLIGHT_PER_URL {
                let Some(d) = t.ready.pop_front() else { break };
                t.in_flight += 1;
                tracing::debug!(url = %t.label, event = %d.event.name, id = %d.event.id,
                    attempt = d.attempts + 1, "webhook attempt");
                let fut = attempt(self.client.clone(), t.url.clone(), d.event.clone(), self.timeout);
                let handle = self.attempts.spawn(fut);
                self.in_flight.insert(handle.id(), d);
            }
        }
    }

    fn attempt_done(&mut self, joined: Result<(tokio::task::Id, AttemptResult), JoinError>) {
        let (id, result) = match joined {
            Ok((id, r)) => (id, r),
            Err(e) => (e.id(), Err(format!("attempt task ended: {e}"))),
        };
        let Some(mut d) = self.in_flight.remove(&id) else { return };
        let t = &mut self.targets[d.target];
        t.in_flight -= 1;
        d.attempts += 1;
        let error = match result {
            Ok(status) => {
                tracing::debug!(url = %t.label, event = %d.event.name, id = %d.event.id,
                    attempts = d.attempts, status, "webhook delivered");
                self.shared.finish(d.target, RESULT_DELIVERED);
                return;
            }
            Err(e) => e,
        };
        self.shared.metrics.attempt_failures_total.inc();
        if d.attempts >= self.max_attempts {
            tracing::warn!(url = %t.label, event = %d.event.name, id = %d.event.id,
                attempts = d.attempts, error = %error, "webhook delivery failed; giving up");
            self.shared.finish(d.target, RESULT_FAILED);
            return;
        }
        let wait = Backoff::doubling(self.initial_backoff, self.max_backoff).delay(d.attempts);
        let due = Instant::now() + wait;
        if self.closing.is_some_and(|deadline| due >= deadline) {
            tracing::warn!(url = %t.label, event = %d.event.name, id = %d.event.id,
                attempts = d.attempts, error = %error, "webhook delivery failed; no time to retry before shutdown");
            self.shared.finish(d.target, RESULT_FAILED);
            return;
        }
        tracing::debug!(url = %t.label, event = %d.event.name, id = %d.event.id,
            attempts = d.attempts, error = %error, retry_in_ms = wait.as_millis() as u64, "webhook attempt failed");
        self.seq += 1;
        self.waiting.push(Waiting { due, seq: self.seq, delivery: d });
    }

    /// Start closing: retry every waiting delivery now.
    fn close(&mut self, deadline: Instant) {
        self.closing = Some(self.closing.map_or(deadline, |d| d.min(deadline)));
        while let Some(w) = self.waiting.pop() {
            self.targets[w.delivery.target].ready.push_back(w.delivery);
        }
    }

    /// The deadline passed: every outstanding delivery fails.
    fn give_up_all(&mut self) {
        self.attempts.abort_all();
        let mut left: Vec<Delivery> = self.in_flight.drain().map(|(_, d)| d).collect();
        left.extend(self.waiting.drain().map(|w| w.delivery));
        for t in &mut self.targets {
            t.in_flight = 0;
            left.extend(t.ready.drain(..));
        }
        for d in left {
            self.give_up(d, "shutdown deadline passed");
        }
    }

    fn give_up(&self, d: Delivery, why: &str) {
        tracing::warn!(url = %self.targets[d.target].label, event = %d.event.name, id = %d.event.id,
            attempts = d.attempts, "webhook delivery failed: {why}");
        self.shared.finish(d.target, RESULT_FAILED);
    }
}

/// One `POST`: `Ok(status)` for 2xx, otherwise why it failed.
async fn attempt(client: reqwest::Client, url: String, ev: Arc<Event>, timeout: Duration) -> AttemptResult {
    let response = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_EVENT, ev.name.as_str())
        .header(HEADER_DELIVERY, ev.id.as_str())
        .header(HEADER_SIGNATURE, ev.signature.as_str())
        .body(ev.body.clone())
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) if e.is_timeout() => Err(format!("timed out after {} s", timeout.as_secs())),
        Err(e) => Err(error_chain(&e.without_url())),
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_rfc4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = WebhooksConfig::default();
        assert!(c.urls.is_empty());
        assert_eq!(c.secret, "");
        assert_eq!(
            (c.max_attempts, c.initial_backoff_ms, c.max_backoff_ms, c.timeout_secs, c.queue_capacity),
            (8, 500, 60_000, 5, 1000)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn config_parses_and_refuses_unknown_keys() {
        let c: WebhooksConfig =
            toml::from_str("urls = [\"https://h.example/x\"]\nsecret = \"s\"\nmax_attempts = 3\n").expect("parses");
        assert_eq!(c.urls, ["https://h.example/x"]);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.timeout_secs, 5);
        assert!(toml::from_str::<WebhooksConfig>("timeout_ms = 5").is_err());
    }

    #[test]
    fn validate_refuses_unusable_values() {
        let ok = WebhooksConfig {
            urls: vec!["http://127.0.0.1:9/hook".into(), "https://h.example/a?b=c".into()],
            secret: "s".into(),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let cases: [(&str, WebhooksConfig); 7] = [
            ("urls", WebhooksConfig { urls: vec!["ftp://h/x".into()], ..ok.clone() }),
            ("urls", WebhooksConfig { urls: vec!["not a url".into()], ..ok.clone() }),
            ("secret", WebhooksConfig { secret: String::new(), ..ok.clone() }),
            ("max_attempts", WebhooksConfig { max_attempts: 0, ..ok.clone() }),
            ("queue_capacity", WebhooksConfig { queue_capacity: 0, ..ok.clone() }),
            ("timeout_secs", WebhooksConfig { timeout_secs: 0, ..ok.clone() }),
            ("max_backoff_ms", WebhooksConfig { initial_backoff_ms: 10, max_backoff_ms: 5, ..ok.clone() }),
        ];
        for (key, c) in cases {
            let e = c.validate().expect_err(key);
            assert!(e.starts_with(&format!("{key}: ")), "{e}");
        }
        // No URLs: no secret needed.
        assert_eq!(WebhooksConfig::default().validate(), Ok(()));
    }

    #[test]
    fn body_has_the_contract_fields_in_order() {
        let b = body("abc", "relay.started", "2026-01-02T03:04:05.000Z", &serde_json::json!({"room": "r1"}));
        assert_eq!(
            String::from_utf8(b).unwrap(),
            r#"{"id":"abc","event":"relay.started","at":"2026-01-02T03:04:05.000Z","data":{"room":"r1"}}"#
        );
    }

    #[test]
    fn metrics_show_zeros() {
        let registry = Registry::new_custom(Some("rtcio_gateway".into()), None).unwrap();
        WebhookMetrics::register(&registry);
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
        for n in [
            "rtcio_gateway_webhook_deliveries_total",
            "rtcio_gateway_webhook_attempt_failures_total",
            "rtcio_gateway_webhook_queue_depth",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        let deliveries = registry.gather().into_iter().find(|f| f.name() == "rtcio_gateway_webhook_deliveries_total");
        assert_eq!(deliveries.unwrap().get_metric().len(), 3);
    }

    #[tokio::test]
    async fn no_urls_is_a_no_op() {
        let registry = Registry::new();
        let w = Webhooks::start(WebhooksConfig::default(), WebhookMetrics::register(&registry));
        assert!(!w.is_enabled());
        w.notify(event::RECORDING_STARTED, serde_json::json!({}));
        w.close(Duration::from_secs(1)).await;
    }
}
