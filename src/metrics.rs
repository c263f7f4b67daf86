//! Every Prometheus metric of the gateway, defined in one place and registered
//! in one [`prometheus::Registry`] per gateway instance (so tests can run
//! several gateways in one process). Names are prefixed `rtcio_gateway_` and
//! follow the Prometheus conventions (`_total` counters, base units, bounded
//! label values — no per-socket or per-room labels).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("rtcio_gateway".into()), None).expect("registry");
        let connected_sockets = IntGauge::new("signaling_connected_sockets", "socket.io sockets currently connected").unwrap();
        let connections_total = IntCounter::new("signaling_connections_total", "socket.io sockets accepted").unwrap();
        let connections_refused_total = IntCounterVec::new(
            Opts::new("signaling_connections_refused_total", "socket.io connections refused at the handshake, by reason"),
            &["reason"],
        )
        .unwrap();
        let rooms = IntGauge::new("signaling_rooms", "Rooms with at least one member").unwrap();
        let room_members = IntGauge::new("signaling_room_members", "Room memberships (sum of all rooms' member counts)").unwrap();
        let joins_total = IntCounterVec::new(
            Opts::new("signaling_joins_total", "join-room requests by result (ok or the join-error reason)"),
            &["result"],
        )
        .unwrap();
        let relayed_messages_total =
            IntCounter::new("signaling_relayed_messages_total", "#rtcio:message envelopes relayed to their target").unwrap();
        let relayed_bytes_total =
            IntCounter::new("signaling_relayed_bytes_total", "Bytes of #rtcio:message envelopes relayed (JSON text)").unwrap();
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
        let http_requests_metrics = IntCounter::new("http_metrics_scrapes_total", "Requests served on /metrics").unwrap();

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
        for r in [
            JoinErrorReason::InvalidRoom,
            JoinErrorReason::InvalidName,
            JoinErrorReason::PasswordRequired,
            JoinErrorReason::WrongPassword,
            JoinErrorReason::RoomFull,
            JoinErrorReason::TooManyRooms,
        ] {
            joins_total.with_label_values(&[r.as_str()]);
        }
        for c in RefusalCode::ALL {
            dropped_messages_total.with_label_values(&[c.metric_label()]);
        }
        for e in EVENT_LABELS {
            event_duration_seconds.with_label_values(&[e]);
        }
        connections_refused_total.with_label_values(&["unauthorized"]);

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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
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
}
