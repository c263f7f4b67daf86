//! The control API's error answer: `{"error": {"code", "message"}}` with an
//! HTTP status and a stable code, and how controller errors map to it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::recorder::controller::ControlError;

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
