//! Graph's error model (`{"error":{"code","message","innerError":{...}}}`), the Entra ID token
//! errors, and the JSON content type Graph answers with.
//!
//! A handler returns a [`GraphError`]; it renders a complete body at once, and the outer
//! middleware (`middleware::observe`) re-renders it so `innerError.request-id` equals the
//! `request-id` response header.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The content type Graph uses for JSON responses.
pub const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after_seconds: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// 400 `InvalidRequest`, the code subscription validation uses.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    pub fn access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access to OData is disabled.",
        )
    }

    pub fn invalid_user(user: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        )
    }

    pub fn subscription_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The object was not found.",
        )
    }

    pub fn sync_state_not_found() -> Self {
        Self::new(
            StatusCode::GONE,
            "SyncStateNotFound",
            "The sync state generation is not found. Start a new sync.",
        )
    }

    pub fn mailbox_concurrency() -> Self {
        Self {
            retry_after_seconds: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            )
        }
    }

    /// The default code and message an injected fault answers with.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("BadRequest", "Bad request."),
            401 => (
                "InvalidAuthenticationToken",
                "Access token validation failed.",
            ),
            403 => (
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ),
            404 => (
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
            410 => (
                "SyncStateNotFound",
                "The sync state generation is not found. Start a new sync.",
            ),
            429 => ("TooManyRequests", "Too many requests."),
            502 => ("BadGateway", "Bad gateway."),
            503 => ("ServiceNotAvailable", "Service unavailable."),
            504 => ("GatewayTimeout", "Gateway timeout."),
            _ => ("generalException", "General exception while processing."),
        };
        Self::new(status, code, message)
    }

    /// The JSON body, with the ids and date the middleware knows.
    pub fn body(&self, request_id: &str, client_request_id: &str, date: &str) -> Value {
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": date,
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }})
    }

    /// Replaces the body of `response` (which this error produced) with one naming these ids.
    pub fn rewrite(
        &self,
        response: &mut Response,
        request_id: &str,
        client_request_id: &str,
        date: &str,
    ) {
        let body = self.body(request_id, client_request_id, date).to_string();
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let id = uuid::Uuid::new_v4().to_string();
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body(&id, &id, &date).to_string(),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// A Graph JSON success response.
pub fn graph_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(GRAPH_JSON))],
        body.to_string(),
    )
        .into_response()
}

/// An Entra ID (AADSTS) token error. The description never echoes the secret.
pub fn token_error(
    status: StatusCode,
    error: &str,
    aadsts: u32,
    description: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{aadsts}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [aadsts],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={aadsts}"),
    });
    (status, axum::Json(body)).into_response()
}
