//! The rtc.io signaling server on socketioxide.
//!
//! [`Signaling`] owns the room registry and the limits; [`glue`] plugs it into
//! socketioxide; [`handlers`] implements each client event of PROTOCOL.md §2
//! on top of the pure [`crate::rooms`] registry and [`crate::protocol`] rules.
//!
//! Every event of one socket is handled synchronously, in arrival order, on
//! that socket's receive path (see [`glue`] for why this matters), and every
//! room change plus the notifications it causes happen under one lock, so
//! clients observe the same event order as with the single-threaded Node
//! reference server.

pub mod auth;
mod glue;
mod handlers;
pub mod limits;

use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use socketioxide::SocketIo;
use socketioxide::socket::Sid;

use crate::config::SignalingConfig;
use crate::metrics::Metrics;
use crate::rooms::{Registry, RoomLimits};

pub use auth::{AuthError, JwtVerifier, internal_token};

/// Shared state of the signaling server (one per gateway instance).
pub struct Signaling {
    io: OnceLock<SocketIo>,
    registry: RwLock<Registry<Sid>>,
    config: SignalingConfig,
    room_limits: RoomLimits,
    jwt: Option<JwtVerifier>,
    metrics: Arc<Metrics>,
    /// Rooms created lately per client address.
    room_creations: Mutex<limits::RoomCreationLimiter>,
    /// Bumped after every membership change (the auto-recorder watches it).
    membership_changes: tokio::sync::watch::Sender<u64>,
}

impl Signaling {
    pub fn new(config: SignalingConfig, jwt: Option<JwtVerifier>, metrics: Arc<Metrics>) -> Arc<Self> {
        let room_limits = RoomLimits {
            max_members_per_room: config.max_members_per_room,
            max_rooms_per_socket: config.max_rooms_per_socket,
        };
        let room_creations = Mutex::new(limits::RoomCreationLimiter::new(
            config.room_creations_per_minute,
            config.room_creations_limit_loopback,
        ));
        Arc::new(Self {
            io: OnceLock::new(),
            registry: RwLock::new(Registry::new()),
            config,
            room_limits,
            jwt,
            metrics,
            room_creations,
            membership_changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Register the `/` namespace handlers on `io`.
    pub fn attach(self: &Arc<Self>, io: &SocketIo) {
        if self.io.set(io.clone()).is_err() {
            panic!("Signaling::attach called twice");
        }
        io.ns("/", glue::Connector::new(self.clone()));
    }

    /// Rooms and their members `(socket id, display name)`, sorted by room id.
    pub fn rooms_overview(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.registry
            .read()
            .rooms_overview()
            .into_iter()
            .map(|(room, members)| (room, members.into_iter().map(|(id, name)| (id.to_string(), name)).collect()))
            .collect()
    }

    fn io(&self) -> &SocketIo {
        self.io.get().expect("attached before use")
    }

    /// A receiver that sees a new value after every join, leave or disconnect.
    pub fn watch_membership(&self) -> tokio::sync::watch::Receiver<u64> {
        self.membership_changes.subscribe()
    }

    /// The password of a room that exists ("" when it has none).
    pub fn room_password(&self, room: &str) -> Option<String> {
        self.registry.read().password(room).map(str::to_string)
    }

    fn update_room_gauges(&self, registry: &Registry<Sid>) {
        self.membership_changes.send_modify(|n| *n = n.wrapping_add(1));
        self.metrics.rooms.set(registry.room_count() as i64);
        self.metrics.room_members.set(registry.membership_count() as i64);
    }
}
