//! Google's JSON error model for the Calendar API
//! (`{"error":{"errors":[{"domain","reason","message",…}],"code","message"}}`) and the OAuth
//! token endpoint's (`{"error","error_description"}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The content type Google answers JSON with.
pub const GOOGLE_JSON: &str = "application/json; charset=UTF-8";

#[derive(Debug, Clone)]
pub struct GoogleError {
    pub status: StatusCode,
    pub domain: String,
    pub reason: String,
    pub message: String,
    /// `parameter` / `header` and the parameter's name, when one is to blame.
    pub location: Option<(&'static str, String)>,
}

impl GoogleError {
    pub fn new(status: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            domain: "global".to_owned(),
            reason: reason.to_owned(),
            message: message.into(),
            location: None,
        }
    }

    /// Blames a query parameter.
    pub fn at_parameter(mut self, name: &str) -> Self {
        self.location = Some(("parameter", name.to_owned()));
        self
    }

    pub fn auth() -> Self {
        Self {
            location: Some(("header", "Authorization".to_owned())),
            ..Self::new(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials")
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "notFound", "Not Found")
    }

    /// 400 `invalid` naming the parameter.
    pub fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message).at_parameter(parameter)
    }

    pub fn full_sync_required() -> Self {
        Self::new(
            StatusCode::GONE,
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        )
    }

    pub fn insufficient_scopes() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        )
    }

    pub fn rate_limited(status: StatusCode, reason: &str) -> Self {
        let message = if reason == "userRateLimitExceeded" {
            "User Rate Limit Exceeded"
        } else {
            "Rate Limit Exceeded"
        };
        Self {
            domain: "usageLimits".to_owned(),
            ..Self::new(status, reason, message)
        }
    }

    /// The default reason and message an injected fault answers with.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::new(status, "badRequest", "Bad Request"),
            401 => Self::auth(),
            403 => Self::rate_limited(status, "rateLimitExceeded"),
            404 => Self::not_found(),
            409 => Self::new(
                status,
                "duplicate",
                "The requested identifier already exists.",
            ),
            410 => Self::full_sync_required(),
            412 => Self::new(status, "conditionNotMet", "Precondition Failed"),
            429 => Self::rate_limited(status, "rateLimitExceeded"),
            503 => Self::new(status, "backendError", "Backend Error"),
            _ => Self::new(status, "backendError", "Backend Error"),
        }
    }

    pub fn body(&self) -> Value {
        let mut item = Map::new();
        item.insert("domain".to_owned(), json!(self.domain));
        item.insert("reason".to_owned(), json!(self.reason));
        item.insert("message".to_owned(), json!(self.message));
        if let Some((kind, name)) = &self.location {
            item.insert("locationType".to_owned(), json!(kind));
            item.insert("location".to_owned(), json!(name));
        }
        json!({"error": {
            "errors": [item],
            "code": self.status.as_u16(),
            "message": self.message,
        }})
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let mut response = google_json(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}

/// A Google JSON response.
pub fn google_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(GOOGLE_JSON))],
        body.to_string(),
    )
        .into_response()
}

/// An OAuth token-endpoint error.
pub fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    google_json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}
