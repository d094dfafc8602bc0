//! Genesys `ErrorBody` responses, with the codes and messages the real API uses (reference §6).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad.request", message)
    }

    pub fn invalid_value(field: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid.value",
            format!("Value [{value}] is not valid for field [{field}]."),
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not.found",
            "The requested resource was not found.",
        )
    }

    pub fn missing_permission(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            format!(
                "Unable to perform the requested action. You are missing the following permission(s): {permission}"
            ),
        )
    }

    pub fn missing_any_permission(permissions: &[&str]) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "missing.any.permissions",
            format!(
                "Unable to perform the requested action. You must have at least one of the following permissions assigned: {}",
                permissions.join(", ")
            ),
        )
    }

    pub fn rate_limited(allowed: u32, window_seconds: u32, retry_after_seconds: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too.many.requests",
            message: format!(
                "Rate limit exceeded the maximum [{allowed}] requests within [{window_seconds}] seconds"
            ),
            retry_after_seconds: Some(retry_after_seconds),
        }
    }

    /// The body an injected fault answers with, for any status.
    pub fn for_status(status: StatusCode, retry_after_seconds: Option<u64>) -> Self {
        let (code, message) = match status.as_u16() {
            400 => (
                "bad.request",
                "The request could not be understood by the server due to malformed syntax.",
            ),
            401 => ("bad.credentials", "Invalid login credentials."),
            403 => (
                "not.authorized",
                "You are not authorized to perform the requested action.",
            ),
            404 => ("not.found", "The requested resource was not found."),
            408 => (
                "client.timeout",
                "The client did not produce a request within the server timeout limit.",
            ),
            429 => (
                "too.many.requests",
                "Rate limit exceeded the maximum [300] requests within [60] seconds",
            ),
            502 => (
                "bad.gateway",
                "The server received an invalid response from an upstream server.",
            ),
            503 => (
                "service.unavailable",
                "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).",
            ),
            504 => ("request.timeout", "The request timed out."),
            _ => (
                "internal.server.error",
                "The server encountered an unexpected condition which prevented it from fulfilling the request.",
            ),
        };
        Self {
            status,
            code,
            message: message.to_owned(),
            retry_after_seconds,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "message": self.message,
            "code": self.code,
            "status": self.status.as_u16(),
            "messageParams": {},
            "details": [],
            "errors": [],
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// OAuth errors use their own shape (RFC 6749 plus Genesys' `description`), always HTTP 400.
pub fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"error": error, "description": description, "error_description": description}),
        ),
    )
        .into_response()
}
