//! The control API under `/api/v1`: rooms and what the gateway does in them,
//! starting and stopping recordings and relays (here and on remote rtc.io
//! servers), and the recordings on disk. JSON in and out; every error is
//! `{"error": {"code", "message"}}` with a stable code. The OpenAPI document
//! (`openapi.json`, served at `/api/v1/openapi.json`) describes exactly
//! these routes; `tests/api.rs` checks the two agree.
//!
//! - `auth`: bearer token, or loopback clients only when none is configured.
//! - `handlers`: one function per route.
//! - [`recordings`]: recordings on disk (ids, listing, deletion).
//! - `status_page.html`: the status page at `/`, a client of this API.

mod auth;
mod handlers;
pub mod recordings;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::metrics::Metrics;
use crate::recorder::controller::{ControlError, ControlHandle};

/// The status page served at `/`: static HTML whose script polls this API.
pub const STATUS_PAGE: &str = include_str!("status_page.html");

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: (method, path as in the OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/rooms"),
    ("get", "/api/v1/rooms/{room}"),
    ("post", "/api/v1/rooms/{room}/recording"),
    ("delete", "/api/v1/rooms/{room}/recording"),
    ("post", "/api/v1/rooms/{room}/relay"),
    ("delete", "/api/v1/rooms/{room}/relay"),
    ("get", "/api/v1/sessions"),
    ("post", "/api/v1/remote/recording"),
    ("post", "/api/v1/remote/recording/stop"),
    ("post", "/api/v1/remote/relay"),
    ("post", "/api/v1/remote/relay/stop"),
    ("get", "/api/v1/recordings"),
    ("get", "/api/v1/recordings/{room_dir}/{stem}"),
    ("delete", "/api/v1/recordings/{room_dir}/{stem}"),
    ("get", "/api/v1/recordings/{room_dir}/{stem}/media"),
];

#[derive(Clone)]
pub struct ApiState {
    pub control: ControlHandle,
    pub recordings_dir: PathBuf,
    /// Bearer token; `None`: loopback clients only.
    pub token: Option<Arc<str>>,
    pub metrics: Arc<Metrics>,
}

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
        .route("/api/v1/{*rest}", axum::routing::any(unknown_route))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require))
        .with_state(state.clone());
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .merge(protected)
        .layer(axum::middleware::from_fn_with_state(state, auth::count))
}

/// An API error: HTTP status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let status = match e {
            ControlError::RoomNotFound(_) => StatusCode::NOT_FOUND,
            ControlError::NotRecording(_) | ControlError::NotRelaying(_) => StatusCode::CONFLICT,
            ControlError::TemplateNotFound(_) | ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                documented.push((method.clone(), path.clone()));
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
