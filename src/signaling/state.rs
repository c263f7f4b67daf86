//! [`Signaling`]: the shared state of one signaling server (room registry,
//! limits, metrics, the socket.io handle), read and changed by `handlers`.

use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use socketioxide::SocketIo;
use socketioxide::socket::Sid;

use crate::config::SignalingConfig;
use crate::metrics::Metrics;
use crate::rooms::{Registry, RoomLimits};

use super::auth::JwtVerifier;
use super::limits;

/// Shared state of the signaling server (one per gateway instance).
pub struct Signaling {
    pub(super) io: OnceLock<SocketIo>,
    pub(super) registry: RwLock<Registry<Sid>>,
    pub(super) config: SignalingConfig,
    pub(super) room_limits: RoomLimits,
    pub(super) jwt: Option<JwtVerifier>,
    pub(super) metrics: Arc<Metrics>,
    /// Rooms created lately per client address.
    pub(super) room_creations: Mutex<limits::RoomCreationLimiter>,
    /// Bumped after every membership change (the auto-recorder watches it).
    pub(super) membership_changes: tokio::sync::watch::Sender<u64>,
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

    /// Rooms and their members `(socket id, display name)`, sorted by room id.
    pub fn rooms_overview(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.registry
            .read()
            .rooms_overview()
            .into_iter()
            .map(|(room, members)| (room, members.into_iter().map(|(id, name)| (id.to_string(), name)).collect()))
            .collect()
    }

    pub(super) fn io(&self) -> &SocketIo {
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

    pub(super) fn update_room_gauges(&self, registry: &Registry<Sid>) {
        self.membership_changes.send_modify(|n| *n = n.wrapping_add(1));
        self.metrics.rooms.set(registry.room_count() as i64);
        self.metrics.room_members.set(registry.membership_count() as i64);
    }
}
