//! rtcio-gateway: an rtc.io-compatible signaling server, headless participant
//! and recording/relay node.
//!
//! Module map (each module's own `//!` docs say what it owns):
//! - [`cli`]: the command-line tree (clap derive); doc comments are the `--help` text.
//! - [`commands`]: the `join`, `relay`, `publish`, `pipelines` and `mux` subcommands.
//! - [`config`]: configuration (TOML file → `RTCIO_GATEWAY_*` env → flags) and its validation.
//! - [`server`]: binds, runs and gracefully shuts down one gateway instance.
//! - [`http`]: the axum router: socket.io, `/metrics`, `/healthz`, `/readyz`, the status page.
//! - [`api`]: the control API under `/api/v1` (rooms, recordings, relays) and its OpenAPI document.
//! - [`protocol`]: pure serde types and rules of the rtc.io wire. No I/O.
//! - [`rooms`]: the room registry (members, names, passwords, media-state); atomic check-then-join.
//! - [`signaling`]: socketioxide handlers that decode events, apply limits and act on the registry.
//! - [`sio_client`]: a small socket.io v4 WebSocket client (tests, benchmarks, the participant).
//! - [`participant`]: the headless rtc.io participant (webrtc-rs peer connections, data channels, tracks).
//! - [`media`]: GStreamer plumbing: test sources, recording/relay pipelines, their templates, RTP policy.
//! - [`composite`]: the room composite: every video stream of a room in one picture, every audio track in one mix.
//! - [`mux`]: `mux`: a room directory's recordings and chat into one Matroska file on the room clock.
//! - [`recorder`]: recordings (files + manifests), relays and chat logs of rooms, and which rooms get them.
//! - [`webhooks`]: signed `POST`s about recordings and relays, their queue and retries.
//! - [`metrics`]: every Prometheus metric, defined in one place (prefix `rtcio_gateway_`).
//! - [`backoff`]: the one retry schedule (doubling or linear, capped).
//! - [`redact`]: how URLs are shown without credentials or stream keys.
//! - [`ids`]: random identifiers for streams, tracks and SSRCs.
//! - [`memory`]: hands freed heap memory back to the OS (after room floods).
//!
//! Files import each other without circles (checked by `tests/module_graph.rs`):
//! types several modules share live in leaf modules ([`media::kind`],
//! [`backoff`], [`redact`], [`metrics`], [`ids`], [`recorder::end_reason`],
//! [`recorder::stream_context`], [`recorder::stream::target`]).

pub mod api;
pub mod backoff;
pub mod cli;
pub mod commands;
pub mod composite;
pub mod config;
pub mod http;
pub mod ids;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod mux;
pub mod participant;
pub mod protocol;
pub mod recorder;
pub mod redact;
pub mod rooms;
pub mod server;
pub mod signaling;
pub mod sio_client;
pub mod webhooks;
