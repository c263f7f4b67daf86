//! The control API under `/api/v1`: rooms and what the gateway does in them,
//! starting and stopping recordings and relays (here and on remote rtc.io
//! servers), and the recordings on disk. JSON in and out; every error is
//! `{"error": {"code", "message"}}` with a stable code. The OpenAPI document
//! (`openapi.json`, served at `/api/v1/openapi.json`) describes exactly
//! these routes; `tests/api.rs` checks the two agree.
//!
//! - `auth`: bearer token, or loopback clients only when none is configured.
//! - `handlers`: one function per route.
//! - `state`: [`ApiState`], what every handler is given.
//! - `error`: [`ApiError`], the error answer and its stable codes.
//! - `document`: the OpenAPI document, the route list and the status page.
//! - [`recordings`]: recordings on disk (ids, listing, deletion, their `.vtt` sidecars and the rooms' `room.json`).
//! - `status_page.html`: the status page at `/`, a client of this API.

mod auth;
mod document;
mod error;
mod handlers;
pub mod recordings;
mod state;

use axum::Router;
use axum::routing::{get, post};

pub use document::{OPENAPI, ROUTES, STATUS_PAGE};
pub use error::ApiError;
pub use state::ApiState;

/// The `/api/v1` routes (the caller nests nothing: paths are absolute).
pub fn router(state: ApiState) -> Router {
    use handlers::*;
    let protected = Router::new()
        .route("/api/v1/rooms", get(list_rooms))
        .route("/api/v1/rooms/{room}", get(get_room))
        .route("/api/v1/rooms/{room}/recording", post(start_room_recording).delete(stop_room_recording))
        .route("/api/v1/rooms/{room}/relay", post(start_room_relay).delete(stop_room_relay))
        .route("/api/v1/sessions", get(list_sessions))
        .route("/api/v1/remote/recording", post(start_remote_recording))
        .route("/api/v1/remote/recording/stop", post(stop_remote_recording))
        .route("/api/v1/remote/relay", post(start_remote_relay))
        .route("/api/v1/remote/relay/stop", post(stop_remote_relay))
        .route("/api/v1/recordings", get(list_recordings))
        .route("/api/v1/recordings/{room_dir}/{stem}", get(get_recording).delete(delete_recording))
        .route("/api/v1/recordings/{room_dir}/{stem}/media", get(recording_media))
        .route("/api/v1/recordings/{room_dir}/{stem}/vtt", get(recording_vtt))
        .route("/api/v1/timelines/{room_dir}", get(room_timeline))
        .route("/api/v1/{*rest}", axum::routing::any(unknown_route))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require))
        .with_state(state.clone());
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .merge(protected)
        .layer(axum::middleware::from_fn_with_state(state, auth::count))
}
