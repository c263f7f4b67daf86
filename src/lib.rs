//! rtcio-gateway: an rtc.io-compatible signaling server, headless participant
//! and recording/relay node.
//!
//! Module map (each module's own `//!` docs say what it owns):
//! - [`cli`]: the command-line tree (clap derive); doc comments are the `--help` text.
//! - [`config`]: configuration (TOML file → `RTCIO_GATEWAY_*` env → flags) and its validation.
//! - [`protocol`]: pure serde types and rules of the rtc.io wire. No I/O.
//! - [`rooms`]: the room registry (members, names, passwords, media-state); atomic check-then-join.
//! - [`signaling`]: socketioxide handlers that decode events, apply limits and act on the registry.
//! - [`metrics`]: every Prometheus metric, defined in one place (prefix `rtcio_gateway_`).
//! - [`ids`]: random identifiers for streams, tracks and SSRCs.
//! - [`http`]: the axum router: socket.io, `/metrics`, `/healthz`, `/readyz`.
//! - [`server`]: binds, runs and gracefully shuts down one gateway instance.
//! - [`sio_client`]: a small socket.io v4 WebSocket client (tests, benchmarks, the participant).
//! - [`recorder`]: recordings (files + manifests), relays and chat logs of rooms.
//! - [`memory`]: hands freed heap memory back to the OS (after room floods).

pub mod api;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod ids;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod participant;
pub mod protocol;
pub mod recorder;
pub mod redact;
pub mod rooms;
pub mod server;
pub mod signaling;
pub mod sio_client;
pub mod webhooks;
