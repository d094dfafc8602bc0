//! The `/sim/` control surfaces' shared answers: a control error is `{"error": "..."}` with a
//! status, and a JSON body that does not parse is a 400 naming the problem.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// A control error: `{"error": "..."}`.
#[derive(Debug)]
pub struct ControlError {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": self.message}))).into_response()
    }
}

pub fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    ControlError {
        status,
        message: message.into(),
    }
    .into_response()
}

/// Parses a JSON body (an empty body reads as `{}`), or answers 400 naming the problem.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|error| ControlError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid body: {error}"),
    })
}
