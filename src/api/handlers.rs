//! One function per control API route: parse and check the request, ask
//! the recording controller or the disk, answer JSON.

use std::collections::HashSet;
use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::recordings::{self, RecordingEntry};
use super::{ApiError, ApiState, OPENAPI};
use crate::recorder::controller::{Change, RemoteJoin, RoomKey, RoomView};
use crate::composite::layout::LayoutKind;
use crate::config::OutputMode;
use crate::recorder::room::RelaySpec;
use crate::recorder::rules::RecordChoice;

type ApiResult<T> = Result<T, ApiError>;

/// Parse a JSON body (an empty body is `{}`); unknown fields are refused.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("request body: {e}")))
}

fn not_empty(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("{field} must not be empty")));
    }
    Ok(())
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route (see /api/v1/openapi.json)")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

pub async fn list_rooms(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let rooms = state.control.rooms().await?;
    Ok(Json(json!({ "rooms": rooms })))
}

async fn room_view(state: &ApiState, room: &str) -> ApiResult<RoomView> {
    state.control.rooms().await?.into_iter().find(|r| r.room == room).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "room_not_found", format!("room {room:?} has no members on this server"))
    })
}

pub async fn get_room(State(state): State<ApiState>, Path(room): Path<String>) -> ApiResult<Json<RoomView>> {
    Ok(Json(room_view(&state, &room).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartRecording {
    template: Option<String>,
    mode: Option<OutputMode>,
    layout: Option<LayoutKind>,
}

pub async fn start_room_recording(
    State(state): State<ApiState>,
    Path(room): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<RoomView>> {
    let request: StartRecording = body(&raw)?;
    let key = RoomKey { server: None, room: room.clone() };
    let asked = RecordChoice { template: request.template, mode: request.mode, layout: request.layout };
    state.control.change(key, None, Change::StartRecording(asked)).await?;
    Ok(Json(room_view(&state, &room).await?))
}

pub async fn stop_room_recording(State(state): State<ApiState>, Path(room): Path<String>) -> ApiResult<Json<RoomView>> {
    let key = RoomKey { server: None, room: room.clone() };
    state.control.change(key, None, Change::StopRecording).await?;
    Ok(Json(room_view(&state, &room).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRelay {
    url: String,
    peer: Option<String>,
    event: Option<String>,
    template: Option<String>,
    #[serde(default)]
    mode: OutputMode,
    #[serde(default)]
    layout: LayoutKind,
}

impl StartRelay {
    fn spec(self) -> RelaySpec {
        RelaySpec {
            url: self.url,
            peer: self.peer,
            event: self.event,
            template: self.template,
            mode: self.mode,
            layout: self.layout,
        }
    }
}

pub async fn start_room_relay(
    State(state): State<ApiState>,
    Path(room): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<RoomView>> {
    let request: StartRelay = body(&raw)?;
    let key = RoomKey { server: None, room: room.clone() };
    state.control.change(key, None, Change::StartRelay(request.spec())).await?;
    Ok(Json(room_view(&state, &room).await?))
}

pub async fn stop_room_relay(State(state): State<ApiState>, Path(room): Path<String>) -> ApiResult<Json<RoomView>> {
    let key = RoomKey { server: None, room: room.clone() };
    state.control.change(key, None, Change::StopRelay).await?;
    Ok(Json(room_view(&state, &room).await?))
}

pub async fn list_sessions(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let sessions = state.control.sessions().await?;
    Ok(Json(json!({ "sessions": sessions })))
}

/// A remote room, as named in requests.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteRoom {
    server: String,
    room: String,
    password: Option<String>,
    name: Option<String>,
    template: Option<String>,
    /// Recordings: as the rules say when absent; relays: `streams` when absent.
    mode: Option<OutputMode>,
    layout: Option<LayoutKind>,
    // Relays only:
    url: Option<String>,
    peer: Option<String>,
    event: Option<String>,
}

impl RemoteRoom {
    fn key(&self) -> ApiResult<RoomKey> {
        not_empty("server", &self.server)?;
        not_empty("room", &self.room)?;
        Ok(RoomKey { server: Some(self.server.trim_end_matches('/').to_string()), room: self.room.clone() })
    }

    fn join(&self) -> RemoteJoin {
        RemoteJoin { password: self.password.clone(), name: self.name.clone() }
    }
}

async fn session_answer(state: &ApiState, key: &RoomKey, status: StatusCode) -> ApiResult<Response> {
    let session = state.control.sessions().await?.into_iter().find(|s| s.server == key.server && s.room == key.room);
    let body = match session {
        Some(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        None => {
            json!({"server": key.server, "room": key.room, "state": "left", "error": null, "recording": null, "relay": null, "streams": []})
        }
    };
    Ok((status, Json(body)).into_response())
}

pub async fn start_remote_recording(State(state): State<ApiState>, raw: Bytes) -> ApiResult<Response> {
    let request: RemoteRoom = body(&raw)?;
    let key = request.key()?;
    let asked = RecordChoice { template: request.template.clone(), mode: request.mode, layout: request.layout };
    let change = Change::StartRecording(asked);
    state.control.change(key.clone(), Some(request.join()), change).await?;
    session_answer(&state, &key, StatusCode::ACCEPTED).await
}

pub async fn stop_remote_recording(State(state): State<ApiState>, raw: Bytes) -> ApiResult<Response> {
    let request: RemoteRoom = body(&raw)?;
    let key = request.key()?;
    state.control.change(key.clone(), None, Change::StopRecording).await?;
    session_answer(&state, &key, StatusCode::OK).await
}

pub async fn start_remote_relay(State(state): State<ApiState>, raw: Bytes) -> ApiResult<Response> {
    let request: RemoteRoom = body(&raw)?;
    let key = request.key()?;
    let Some(url) = request.url.clone() else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "url (rtmp://...) is required"));
    };
    let spec = RelaySpec {
        url,
        peer: request.peer.clone(),
        event: request.event.clone(),
        template: request.template.clone(),
        mode: request.mode.unwrap_or_default(),
        layout: request.layout.unwrap_or_default(),
    };
    state.control.change(key.clone(), Some(request.join()), Change::StartRelay(spec)).await?;
    session_answer(&state, &key, StatusCode::ACCEPTED).await
}

pub async fn stop_remote_relay(State(state): State<ApiState>, raw: Bytes) -> ApiResult<Response> {
    let request: RemoteRoom = body(&raw)?;
    let key = request.key()?;
    state.control.change(key.clone(), None, Change::StopRelay).await?;
    session_answer(&state, &key, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    room: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
    /// Accepted here because the auth layer reads it from the query.
    #[allow(dead_code)]
    access_token: Option<String>,
}

async fn active_files(state: &ApiState) -> ApiResult<HashSet<PathBuf>> {
    Ok(state.control.active_files().await?)
}

pub async fn list_recordings(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    if let Some(s) = query.state.as_deref()
        && !["recording", "finished", "failed", "interrupted"].contains(&s)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "state must be recording, finished, failed or interrupted",
        ));
    }
    let active = active_files(&state).await?;
    let dir = state.recordings_dir.clone();
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let list = tokio::task::spawn_blocking(move || {
        recordings::list(&dir, &active, query.room.as_deref(), query.state.as_deref(), limit)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(json!({ "recordings": list })))
}

async fn find_recording(state: &ApiState, room_dir: &str, stem: &str) -> ApiResult<RecordingEntry> {
    let active = active_files(state).await?;
    recordings::load(&state.recordings_dir, room_dir, stem, &active).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "recording_not_found", format!("no recording {room_dir}/{stem}"))
    })
}

pub async fn get_recording(
    State(state): State<ApiState>,
    Path((room_dir, stem)): Path<(String, String)>,
) -> ApiResult<Json<RecordingEntry>> {
    Ok(Json(find_recording(&state, &room_dir, &stem).await?))
}

pub async fn delete_recording(
    State(state): State<ApiState>,
    Path((room_dir, stem)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let entry = find_recording(&state, &room_dir, &stem).await?;
    if entry.state == "recording" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording_active",
            format!("{} is being written; stop the recording first", entry.id),
        ));
    }
    recordings::delete(&entry)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("cannot delete: {e}")))?;
    tracing::info!(id = %entry.id, "recording deleted over the API");
    Ok(StatusCode::NO_CONTENT)
}

/// The file itself, with range requests (seeking in a browser's player).
pub async fn recording_media(
    State(state): State<ApiState>,
    Path((room_dir, stem)): Path<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let entry = find_recording(&state, &room_dir, &stem).await?;
    if !entry.path.is_file() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "recording_not_found", "the recording has no media file"));
    }
    let served = tower_http::services::ServeFile::new(&entry.path)
        .oneshot(request)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(served.into_response())
}

/// The recording's WebVTT sidecar (`text/vtt`, for a `<track>` beside the media).
pub async fn recording_vtt(
    State(state): State<ApiState>,
    Path((room_dir, stem)): Path<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let entry = find_recording(&state, &room_dir, &stem).await?;
    if !entry.vtt_path.is_file() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "vtt_not_found", format!("{} has no .vtt yet", entry.id)));
    }
    let served = tower_http::services::ServeFile::new(&entry.vtt_path)
        .oneshot(request)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(served.into_response())
}

/// A room directory's timeline, `room.json`, as written (complete: it is replaced atomically).
pub async fn room_timeline(State(state): State<ApiState>, Path(room_dir): Path<String>) -> ApiResult<Json<Value>> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "timeline_not_found", format!("no timeline for {room_dir}"));
    let path = recordings::timeline_path(&state.recordings_dir, &room_dir).ok_or_else(not_found)?;
    let text = match tokio::fs::read(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())),
    };
    let doc = serde_json::from_slice(&text).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("room.json is not JSON: {e}"))
    })?;
    Ok(Json(doc))
}
