//! One running gateway: binds the listener, wires socket.io, HTTP and metrics
//! together, and shuts down gracefully. Tests start it on `127.0.0.1:0` and
//! stop it with [`Gateway::shutdown`]; `main` does the same on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, Method};
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowHeaders, AllowOrigin, Any, CorsLayer};

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::media::templates::TemplateSet;
use crate::metrics::Metrics;
use crate::recorder::controller::{Controller, SelfJoin, output_settings};
use crate::recorder::rules::Planner;
use crate::recorder::stream::OutputNotifier;
use crate::signaling::{JwtVerifier, Signaling, internal_token};
use crate::webhooks::Webhooks;

/// WebSocket read buffer per socket. Engine.IO's default is 4 KiB, held by
/// every idle socket; signaling messages are mostly a few hundred bytes and a
/// 4 KB SDP just takes a few reads.
const WS_READ_BUFFER: usize = 1024;
/// At shutdown, queued webhooks get this long to be delivered.
const WEBHOOK_FLUSH: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Templates(String),
    #[error("recording.rooms: {0}")]
    Rooms(#[from] globset::Error),
}

/// A started gateway.
pub struct Gateway {
    local_addr: SocketAddr,
    stop_accepting: CancellationToken,
    ready: Arc<AtomicBool>,
    io: SocketIo,
    server: JoinHandle<std::io::Result<()>>,
    grace: Duration,
    pub metrics: Arc<Metrics>,
    pub signaling: Arc<Signaling>,
    recorder: Option<Controller>,
    webhooks: Webhooks,
}

impl Gateway {
    /// Bind and start serving. The configuration must already be validated.
    pub async fn start(config: Config) -> Result<Gateway, ServeError> {
        let templates = Arc::new(load_templates(&config)?);
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::new());
        for template in templates.templates() {
            metrics.media.pipeline_errors_total.with_label_values(&[&template.name]);
        }

        let sc = &config.signaling;
        // The transport accepts up to twice the event cap so that a slightly
        // oversized event reaches the handler and gets a clear error; beyond
        // that the transport closes the connection.
        let transport_cap = sc.max_payload_bytes.saturating_mul(2);
        let (sio_layer, io) = SocketIo::builder()
            .ping_interval(Duration::from_secs(sc.ping_interval_secs))
            .ping_timeout(Duration::from_secs(sc.ping_timeout_secs))
            .max_payload(transport_cap as u64)
            .ws_max_message_size(transport_cap)
            .ws_max_frame_size(transport_cap)
            .ws_read_buffer_size(WS_READ_BUFFER)
            .max_buffer_size(sc.outgoing_buffer_packets)
            .build_layer();
        let signaling = Signaling::new(sc.clone(), JwtVerifier::from_config(&config.auth), metrics.clone());
        signaling.attach(&io);

        let planner = Planner::from_config(&config)?;
        check_rule_templates(&config, &templates)?;
        let join = SelfJoin {
            server_url: self_url(local_addr),
            name: config.recording.participant_name.clone(),
            token: internal_token(&config.auth),
            channels: planner.all_channels(),
            udp_bind: config.recording.udp_bind,
        };
        if config.recording.enabled {
            tracing::info!(dir = %config.recording.dir.display(), rooms = ?config.recording.rooms, rules = config.recording.rules.len(), "recording rooms");
        }
        let webhooks = Webhooks::start(config.webhooks.clone(), metrics.webhooks.clone());
        let notifier: Option<OutputNotifier> = webhooks.is_enabled().then(|| {
            let webhooks = webhooks.clone();
            Arc::new(move |event: &'static str, data: serde_json::Value| webhooks.notify(event, data)) as OutputNotifier
        });
        let settings = output_settings(&config, templates.clone(), metrics.media.clone(), notifier);
        let recorder =
            Controller::start(signaling.clone(), planner, join, settings, metrics.participant.clone(), &config);
        let token = (!config.api.token.is_empty()).then(|| Arc::from(config.api.token.as_str()));
        if token.is_none() {
            tracing::warn!("api.token is not set: the control API (/api/v1) answers loopback clients only");
        }
        let api = crate::api::ApiState {
            control: recorder.handle(),
            recordings_dir: config.recording.dir.clone(),
            token,
            metrics: metrics.clone(),
        };

        let ready = Arc::new(AtomicBool::new(false));
        let app = http::router(HttpState { metrics: metrics.clone(), ready: ready.clone() })
            .merge(crate::api::router(api))
            .layer(sio_layer)
            .layer(axum::middleware::map_request(http::detach_request_head))
            .layer(cors_layer(&config.server.cors_origins));

        let stop_accepting = CancellationToken::new();
        let stop = stop_accepting.clone();
        // Signaling is small request/response traffic: Nagle's algorithm with
        // delayed ACKs would add ~40 ms stalls.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        ready.store(true, Ordering::Release);
        tracing::info!(%local_addr, "rtcio-gateway listening (socket.io at /socket.io, metrics at /metrics)");
        Ok(Gateway {
            local_addr,
            stop_accepting,
            ready,
            io,
            server,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            metrics,
            signaling,
            recorder: Some(recorder),
            webhooks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, disconnect every socket (their rooms hear about it),
    /// let in-flight requests finish within the grace period.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        tracing::info!("shutting down: no longer accepting connections");
        self.ready.store(false, Ordering::Release);
        if let Some(recorder) = self.recorder.take() {
            // While the peers are still connected: finalise every file, then leave.
            recorder.stop().await;
        }
        // The last recording.finished events go out before we exit.
        self.webhooks.clone().close(WEBHOOK_FLUSH).await;
        self.stop_accepting.cancel();
        self.io.close().await;
        match tokio::time::timeout(self.grace, self.server).await {
            Ok(Ok(result)) => result.map_err(ServeError::Io),
            Ok(Err(join)) => Err(ServeError::Io(std::io::Error::other(join))),
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "connections still open after the grace period; exiting anyway");
                Ok(())
            }
        }
    }
}

/// Built-in and user templates, every one parsed by GStreamer; a broken one stops the start.
pub fn load_templates(config: &Config) -> Result<TemplateSet, ServeError> {
    let dir = (!config.pipelines.dir.is_empty()).then(|| std::path::PathBuf::from(&config.pipelines.dir));
    let mut templates = TemplateSet::load(dir.as_deref()).map_err(|e| ServeError::Templates(e.to_string()))?;
    let findings = templates.validate().map_err(|e| ServeError::Templates(format!("GStreamer: {e}")))?;
    let mut fatal = Vec::new();
    for finding in findings {
        if finding.fatal {
            fatal.push(finding.to_string());
        } else if templates.get(&finding.template).is_ok_and(|t| t.origin == "built-in") {
            tracing::info!(%finding, "built-in template branch unavailable on this machine");
        } else {
            tracing::warn!(%finding, "pipeline template branch disabled");
        }
    }
    if !fatal.is_empty() {
        return Err(ServeError::Templates(format!("invalid pipeline templates:\n  {}", fatal.join("\n  "))));
    }
    Ok(templates)
}

/// Templates named by `recording.template` and the rules must exist and record.
fn check_rule_templates(config: &Config, templates: &TemplateSet) -> Result<(), ServeError> {
    let named = std::iter::once(("recording.template", &config.recording.template))
        .chain(config.recording.rules.iter().map(|r| ("recording.rules[].template", &r.template)))
        .filter(|(_, name)| !name.is_empty());
    for (key, name) in named {
        match templates.get(name) {
            Ok(t) if t.kind == crate::media::templates::TemplateKind::Record => {}
            Ok(_) => return Err(ServeError::Templates(format!("{key}: {name:?} is not a record template"))),
            Err(e) => return Err(ServeError::Templates(format!("{key}: {e}"))),
        }
    }
    Ok(())
}

/// Our own socket.io URL as seen from this machine.
fn self_url(local: SocketAddr) -> String {
    let ip = match local.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, local.port()))
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let base = CorsLayer::new().allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS]);
    if origins.iter().any(|o| o == "*") {
        base.allow_origin(Any).allow_headers(Any)
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        base.allow_origin(AllowOrigin::list(list)).allow_headers(AllowHeaders::mirror_request()).allow_credentials(true)
    }
}
