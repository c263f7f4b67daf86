//! socketioxide glue: our own implementations of its handler traits.
//!
//! socketioxide's closure handlers run each event in a freshly spawned tokio
//! task. Tasks of consecutive events of one socket may then run out of order
//! (tokio's LIFO slot and work stealing), which would reorder SDP and ICE
//! candidates between peers. Implementing `MessageHandler` ourselves lets
//! every event run synchronously, in order, on the socket's receive path —
//! our handlers never await — and saves a task spawn per event. The event
//! handlers are registered in the connect middleware, which socketioxide runs
//! before it answers the client's CONNECT, so they are in place before the
//! client can send anything (its connect handler runs after the answer).

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::handler::{ConnectHandler, DisconnectHandler, MessageHandler};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide_core::Value;

use super::Signaling;
use super::handlers::{Connection, EventKind};

impl Signaling {
    /// Register the `/` namespace handlers on `io`.
    pub fn attach(self: &Arc<Self>, io: &SocketIo) {
        if self.io.set(io.clone()).is_err() {
            panic!("Signaling::attach called twice");
        }
        io.ns("/", Connector::new(self.clone()));
    }
}

/// Marker type parameter for our handler trait implementations.
pub struct Inline;

#[derive(Clone)]
pub struct Connector {
    sig: Arc<Signaling>,
}

impl Connector {
    pub fn new(sig: Arc<Signaling>) -> Self {
        Self { sig }
    }
}

impl ConnectHandler<LocalAdapter, Inline> for Connector {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, _auth: Option<Value>) {
        self.sig.metrics.connected_sockets.inc();
        self.sig.metrics.connections_total.inc();
        tracing::debug!(sid = %s.id, transport = ?s.transport_type(), "socket connected");
    }

    fn call_middleware<'a>(
        &'a self,
        s: Arc<Socket<LocalAdapter>>,
        auth: &'a Option<Value>,
    ) -> Pin<Box<dyn Future<Output = Result<(), Box<dyn Display + Send>>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(jwt) = &self.sig.jwt {
                let auth_json = match auth {
                    Some(Value::Str(text, _)) => serde_json::from_str(text.as_str()).unwrap_or(serde_json::Value::Null),
                    _ => serde_json::Value::Null,
                };
                jwt.verify(&auth_json).map_err(|e| {
                    self.sig.metrics.connections_refused_total.with_label_values(&["unauthorized"]).inc();
                    tracing::info!(sid = %s.id, error = %e, "handshake refused");
                    Box::new(e) as Box<dyn Display + Send>
                })?;
            }
            // Register the handlers here, before socketioxide sends the CONNECT
            // reply: its connect handler runs only after that reply, and the
            // client's first event (join-room, sent as soon as it is connected)
            // must not find a socket without handlers.
            // The client's address, for the per-address room-creation limit
            // (axum puts the TCP peer address into every request's extensions).
            let addr = s
                .req_parts()
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip());
            let conn = Arc::new(Connection::new(self.sig.clone(), s.id, addr));
            for kind in EventKind::KNOWN {
                s.on(kind.name(), EventHandler { conn: conn.clone(), kind });
            }
            s.on_fallback(EventHandler { conn: conn.clone(), kind: EventKind::Unknown });
            s.on_disconnect(DepartureHandler { conn });
            Ok(())
        })
    }
}

/// Handles one kind of client event, inline (see the module docs).
struct EventHandler {
    conn: Arc<Connection>,
    kind: EventKind,
}

impl MessageHandler<LocalAdapter, Inline> for EventHandler {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, v: Value, _ack_id: Option<i64>) {
        let started = Instant::now();
        self.conn.handle(&s, self.kind, &v, started);
        self.conn.observe_latency(self.kind, started.elapsed());
    }
}

/// Announces the departure to the socket's rooms and forgets it.
struct DepartureHandler {
    conn: Arc<Connection>,
}

impl DisconnectHandler<LocalAdapter, Inline> for DepartureHandler {
    fn call_with_defer(
        &self,
        s: Arc<Socket<LocalAdapter>>,
        reason: DisconnectReason,
        defer: fn(Arc<Socket<LocalAdapter>>),
    ) {
        self.conn.depart(reason);
        defer(s);
    }
}
