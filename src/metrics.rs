//! Every Prometheus metric of the gateway, defined in one place and registered
//! in one [`prometheus::Registry`] per gateway instance (so tests can run
//! several gateways in one process). Names are prefixed `rtcio_gateway_` and
//! follow the Prometheus conventions (`_total` counters, base units, bounded
//! label values — no per-socket or per-room labels).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::protocol::{JoinErrorReason, RefusalCode};

/// Event-name label values of the latency histogram (anything else is `other`).
pub const EVENT_LABELS: [&str; 8] = [
    crate::protocol::EV_MESSAGE,
    crate::protocol::EV_JOIN_ROOM,
    crate::protocol::EV_CHECK_ROOM,
    crate::protocol::EV_LEAVE_ROOM,
    crate::protocol::EV_MEDIA_STATE,
    crate::protocol::EV_STOP_SCREEN_SHARE,
    crate::protocol::EV_CHAT_MESSAGE,
    "other",
];

pub struct Metrics {
    registry: Registry,
    pub connected_sockets: IntGauge,
    pub connections_total: IntCounter,
    pub connections_refused_total: IntCounterVec,
    pub rooms: IntGauge,
    pub room_members: IntGauge,
    pub joins_total: IntCounterVec,
    pub relayed_messages_total: IntCounter,
    pub relayed_bytes_total: IntCounter,
    pub dropped_messages_total: IntCounterVec,
    pub event_duration_seconds: HistogramVec,
    pub disconnects_total: IntCounterVec,
    pub http_requests_metrics: IntCounter,
    /// Control API responses by status class (2xx, 4xx, ...).
    pub api_requests_total: IntCounterVec,
    pub webhooks: WebhookMetrics,
    pub participant: ParticipantMetrics,
    pub media: MediaMetrics,
}

/// Metrics of the headless participant (all rooms together).
#[derive(Clone)]
pub struct ParticipantMetrics {
    /// Peer connections by connection state.
    pub peers: IntGaugeVec,
    /// Negotiations by our role (polite/impolite) and result (ok/failed/rolled_back/ignored/stale_answer).
    pub negotiations_total: IntCounterVec,
    pub ice_restarts_total: IntCounter,
    /// Data-channel messages received, by channel kind (ctrl/broadcast) and type (text/binary).
    pub channel_messages_total: IntCounterVec,
    /// Data-channel messages dropped, by reason.
    pub channel_dropped_total: IntCounterVec,
    /// Stream-metadata responses dropped, by reason.
    pub metadata_dropped_total: IntCounterVec,
    /// RTP packets and bytes received, by media kind.
    pub rtp_packets_total: IntCounterVec,
    pub rtp_bytes_total: IntCounterVec,
    /// RTP packets dropped because the consumer of the track was too slow.
    pub rtp_dropped_total: IntCounterVec,
    /// RTCP sender reports received on the tracks, by media kind.
    pub sender_reports_total: IntCounterVec,
    /// Picture-loss indications we sent.
    pub plis_sent_total: IntCounter,
    /// Received streams currently active.
    pub streams_active: IntGauge,
    /// Remote `.local` (mDNS) candidates dropped.
    pub mdns_candidates_dropped_total: IntCounter,
    /// Signaling (re)joins by result.
    pub joins_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("rtcio_gateway".into()), None).expect("registry");
        let connected_sockets =
            IntGauge::new("signaling_connected_sockets", "socket.io sockets currently connected").unwrap();
        let connections_total = IntCounter::new("signaling_connections_total", "socket.io sockets accepted").unwrap();
        let connections_refused_total = IntCounterVec::new(
            Opts::new(
                "signaling_connections_refused_total",
                "socket.io connections refused at the handshake, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let rooms = IntGauge::new("signaling_rooms", "Rooms with at least one member").unwrap();
        let room_members =
            IntGauge::new("signaling_room_members", "Room memberships (sum of all rooms' member counts)").unwrap();
        let joins_total = IntCounterVec::new(
            Opts::new("signaling_joins_total", "join-room requests by result (ok or the join-error reason)"),
            &["result"],
        )
        .unwrap();
        let relayed_messages_total =
            IntCounter::new("signaling_relayed_messages_total", "#rtcio:message envelopes relayed to their target")
                .unwrap();
        let relayed_bytes_total =
            IntCounter::new("signaling_relayed_bytes_total", "Bytes of #rtcio:message envelopes relayed (JSON text)")
                .unwrap();
        let dropped_messages_total = IntCounterVec::new(
            Opts::new("signaling_dropped_messages_total", "Client events refused or not delivered, by reason"),
            &["reason"],
        )
        .unwrap();
        let event_duration_seconds = HistogramVec::new(
            HistogramOpts::new("signaling_event_duration_seconds", "Time to handle one client event, by event name")
                .buckets(vec![1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2]),
            &["event"],
        )
        .unwrap();
        let disconnects_total = IntCounterVec::new(
            Opts::new("signaling_disconnects_total", "socket.io sockets disconnected, by reason"),
            &["reason"],
        )
        .unwrap();
        let http_requests_metrics =
            IntCounter::new("http_metrics_scrapes_total", "Requests served on /metrics").unwrap();

        for c in [
            Box::new(connected_sockets.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_total.clone()),
            Box::new(connections_refused_total.clone()),
            Box::new(rooms.clone()),
            Box::new(room_members.clone()),
            Box::new(joins_total.clone()),
            Box::new(relayed_messages_total.clone()),
            Box::new(relayed_bytes_total.clone()),
            Box::new(dropped_messages_total.clone()),
            Box::new(event_duration_seconds.clone()),
            Box::new(disconnects_total.clone()),
            Box::new(http_requests_metrics.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process collector");

        // Pre-create every bounded label value so dashboards see zeros, not gaps.
        joins_total.with_label_values(&["ok"]);
        for r in JoinErrorReason::ALL {
            joins_total.with_label_values(&[r.as_str()]);
        }
        for c in RefusalCode::ALL {
            dropped_messages_total.with_label_values(&[c.metric_label()]);
        }
        for e in EVENT_LABELS {
            event_duration_seconds.with_label_values(&[e]);
        }
        connections_refused_total.with_label_values(&["unauthorized"]);
        let participant = ParticipantMetrics::register(&registry);
        let media = MediaMetrics::register(&registry);
        let api_requests_total =
            counter_vec(&registry, "api_requests_total", "Control API responses, by status class", &["status"]);
        for class in ["2xx", "4xx", "5xx"] {
            api_requests_total.with_label_values(&[class]);
        }
        let webhooks = WebhookMetrics::register(&registry);

        Self {
            registry,
            connected_sockets,
            connections_total,
            connections_refused_total,
            rooms,
            room_members,
            joins_total,
            relayed_messages_total,
            relayed_bytes_total,
            dropped_messages_total,
            event_duration_seconds,
            disconnects_total,
            http_requests_metrics,
            api_requests_total,
            webhooks,
            participant,
            media,
        }
    }

    /// Latency histogram child for an event name (bounded: unknown names map to `other`).
    pub fn event_histogram(&self, event: &str) -> Histogram {
        let label = EVENT_LABELS.iter().copied().find(|e| *e == event).unwrap_or("other");
        self.event_duration_seconds.with_label_values(&[label])
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.http_requests_metrics.inc();
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("utf-8 exposition")
    }
}

impl ParticipantMetrics {
    fn register(registry: &Registry) -> Self {
        let peers =
            IntGaugeVec::new(Opts::new("participant_peers", "Peer connections by connection state"), &["state"])
                .unwrap();
        registry.register(Box::new(peers.clone())).expect("unique metric names");
        for s in ["new", "connecting", "connected", "disconnected", "failed"] {
            peers.with_label_values(&[s]);
        }
        let streams_active =
            IntGauge::new("participant_streams_active", "Received media streams currently active").unwrap();
        registry.register(Box::new(streams_active.clone())).expect("unique metric names");
        let m = Self {
            peers,
            negotiations_total: counter_vec(
                registry,
                "participant_negotiations_total",
                "Offer/answer exchanges by our role and result",
                &["role", "result"],
            ),
            ice_restarts_total: counter(registry, "participant_ice_restarts_total", "ICE restarts we started"),
            channel_messages_total: counter_vec(
                registry,
                "participant_channel_messages_total",
                "Data-channel messages received, by channel kind and message type",
                &["channel", "type"],
            ),
            channel_dropped_total: counter_vec(
                registry,
                "participant_channel_messages_dropped_total",
                "Data-channel messages dropped, by reason",
                &["reason"],
            ),
            metadata_dropped_total: counter_vec(
                registry,
                "participant_stream_metadata_dropped_total",
                "Stream-metadata messages dropped, by reason",
                &["reason"],
            ),
            rtp_packets_total: counter_vec(
                registry,
                "participant_rtp_packets_total",
                "RTP packets received, by media kind",
                &["kind"],
            ),
            rtp_bytes_total: counter_vec(
                registry,
                "participant_rtp_bytes_total",
                "RTP payload bytes received, by media kind",
                &["kind"],
            ),
            rtp_dropped_total: counter_vec(
                registry,
                "participant_rtp_packets_dropped_total",
                "Received RTP packets dropped because the track's consumer was too slow, by media kind",
                &["kind"],
            ),
            sender_reports_total: counter_vec(
                registry,
                "participant_sender_reports_total",
                "RTCP sender reports received on the tracks (they place recordings on the sender's clock), by media kind",
                &["kind"],
            ),
            plis_sent_total: counter(registry, "participant_plis_sent_total", "Picture loss indications sent"),
            streams_active,
            mdns_candidates_dropped_total: counter(
                registry,
                "participant_mdns_candidates_dropped_total",
                "Remote .local (mDNS) ICE candidates dropped",
            ),
            joins_total: counter_vec(
                registry,
                "participant_joins_total",
                "Signaling joins of the participant, by result",
                &["result"],
            ),
        };
        for kind in ["audio", "video"] {
            m.rtp_packets_total.with_label_values(&[kind]);
            m.rtp_bytes_total.with_label_values(&[kind]);
            m.rtp_dropped_total.with_label_values(&[kind]);
            m.sender_reports_total.with_label_values(&[kind]);
        }
        for r in crate::participant::channels::DropReason::ALL {
            m.channel_dropped_total.with_label_values(&[r.as_str()]);
        }
        m
    }
}

/// Label values of `webhook_deliveries_total{result}` (set by [`crate::webhooks`]).
pub const RESULT_DELIVERED: &str = "delivered";
pub const RESULT_FAILED: &str = "failed";
pub const RESULT_DROPPED: &str = "dropped";

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
            deliveries_total: counter_vec(
                registry,
                "webhook_deliveries_total",
                "Webhook deliveries (one per event per URL) by final result",
                &["result"],
            ),
            attempt_failures_total: counter(
                registry,
                "webhook_attempt_failures_total",
                "Webhook delivery attempts that failed (non-2xx, network error or timeout)",
            ),
            queue_depth: gauge(
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

/// Metrics of the media path: recordings, relays and their pipelines.
#[derive(Clone)]
pub struct MediaMetrics {
    /// RTP packets missing in the sequence (estimated from gaps), by media kind.
    pub packets_lost_total: IntCounterVec,
    /// Packets the jitter buffers gave up on, by media kind and reason (lost/late).
    pub jitterbuffer_drops_total: IntCounterVec,
    /// Keyframe requests (PLI) by why: start, retry, source_change, pipeline.
    pub keyframe_requests_total: IntCounterVec,
    /// Distinct video keyframes seen by outputs.
    pub keyframes_total: IntCounter,
    /// From an output's start (or source change) to its first keyframe.
    pub first_keyframe_seconds: Histogram,
    pub recordings_active: IntGauge,
    /// Recordings ended, by result (finished/failed).
    pub recordings_total: IntCounterVec,
    pub recording_bytes_written_total: IntCounter,
    pub relays_active: IntGauge,
    pub relay_restarts_total: IntCounter,
    /// Pipeline errors by template name.
    pub pipeline_errors_total: IntCounterVec,
    /// Free bytes on the recordings volume (updated every few seconds while recording).
    pub recordings_free_bytes: IntGauge,
    /// Rooms the gateway's own participant is in to record or relay.
    pub rooms_recorded: IntGauge,
    /// Rooms not joined, kept waiting or left by the admission policy, by reason.
    pub admission_refusals_total: IntCounterVec,
    /// Rooms that could be joined but wait for a slot (a cap is reached).
    pub rooms_waiting: IntGauge,
    /// Longest time since an active recording last got media.
    pub recording_data_age_seconds: Gauge,
    /// Longest current wait of a video output for its first keyframe.
    pub keyframe_wait_seconds: Gauge,
}

impl MediaMetrics {
    fn register(registry: &Registry) -> Self {
        let first_keyframe_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "media_first_keyframe_seconds",
                "Time from an output's start (or a source change) to its first video keyframe",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
        )
        .unwrap();
        registry.register(Box::new(first_keyframe_seconds.clone())).expect("unique metric names");
        let m = MediaMetrics {
            packets_lost_total: counter_vec(
                registry,
                "media_packets_lost_total",
                "RTP packets missing from received sequences, by media kind",
                &["kind"],
            ),
            jitterbuffer_drops_total: counter_vec(
                registry,
                "media_jitterbuffer_drops_total",
                "Packets the output jitter buffers gave up on, by media kind and reason",
                &["kind", "reason"],
            ),
            keyframe_requests_total: counter_vec(
                registry,
                "media_keyframe_requests_total",
                "Keyframe requests (PLI) made for outputs, by reason",
                &["reason"],
            ),
            keyframes_total: counter(registry, "media_keyframes_total", "Video keyframes seen by outputs"),
            first_keyframe_seconds,
            recordings_active: gauge(registry, "recordings_active", "Recordings being written"),
            recordings_total: counter_vec(registry, "recordings_total", "Recordings ended, by result", &["result"]),
            recording_bytes_written_total: counter(
                registry,
                "recording_bytes_written_total",
                "Bytes written to recording files",
            ),
            relays_active: gauge(registry, "relays_active", "Relays sending"),
            relay_restarts_total: counter(registry, "relay_restarts_total", "Relay pipelines restarted after an error"),
            pipeline_errors_total: counter_vec(
                registry,
                "pipeline_errors_total",
                "Output pipeline errors, by template",
                &["template"],
            ),
            recordings_free_bytes: gauge(registry, "recordings_free_bytes", "Free bytes on the recordings volume"),
            rooms_recorded: gauge(
                registry,
                "rooms_recorded",
                "Rooms the gateway's participant is in to record or relay",
            ),
            admission_refusals_total: counter_vec(
                registry,
                "recorder_admission_refusals_total",
                "Rooms the recorder did not join, kept waiting (counted once per wait) or left, by reason",
                &["reason"],
            ),
            rooms_waiting: gauge(
                registry,
                "recorder_rooms_waiting",
                "Rooms the recorder would join but that wait for a slot (recording.max_rooms or max_unanswered_rooms reached)",
            ),
            recording_data_age_seconds: float_gauge(
                registry,
                "recording_data_age_seconds",
                "Longest time since an active recording last received media (0: none active)",
            ),
            keyframe_wait_seconds: float_gauge(
                registry,
                "media_keyframe_wait_seconds",
                "Longest current wait of a video output for its first keyframe (0: none waiting)",
            ),
        };
        for kind in ["audio", "video"] {
            m.packets_lost_total.with_label_values(&[kind]);
            for reason in ["lost", "late"] {
                m.jitterbuffer_drops_total.with_label_values(&[kind, reason]);
            }
        }
        for reason in KEYFRAME_REQUEST_REASONS {
            m.keyframe_requests_total.with_label_values(&[reason]);
        }
        for result in ["finished", "failed"] {
            m.recordings_total.with_label_values(&[result]);
        }
        for reason in crate::recorder::admission::Refusal::ALL {
            m.admission_refusals_total.with_label_values(&[reason.as_str()]);
        }
        m
    }
}

/// Label values of `media_keyframe_requests_total`.
pub const KEYFRAME_REQUEST_REASONS: [&str; 4] = ["start", "retry", "source_change", "pipeline"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Create and register an integer counter vector.
pub(crate) fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap();
    registry.register(Box::new(c.clone())).expect("unique metric names");
    c
}

/// Create and register an integer counter.
pub(crate) fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap();
    registry.register(Box::new(c.clone())).expect("unique metric names");
    c
}

/// Create and register an integer gauge.
pub(crate) fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap();
    registry.register(Box::new(g.clone())).expect("unique metric names");
    g
}

/// Create and register a floating-point gauge.
fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).unwrap();
    registry.register(Box::new(g.clone())).expect("unique metric names");
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_prefixed_conventional_names() {
        let m = Metrics::new();
        m.relayed_messages_total.inc();
        let text = m.render();
        assert!(text.contains("rtcio_gateway_signaling_relayed_messages_total 1"));
        assert!(text.contains("rtcio_gateway_signaling_joins_total{result=\"wrong-password\"} 0"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(name.starts_with("rtcio_gateway_"), "{name}");
            if line.ends_with("counter") {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
    }

    #[test]
    fn webhook_metrics_show_zeros() {
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
}
