//! A Microsoft identity platform + Graph presence stand-in: the client-credentials token
//! endpoint, and `setPresence` / `clearPresence` / `setStatusMessage` validating the bearer
//! token, the app's `sessionId`, the allowed availability/activity pairs and the duration bounds.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use crate::{Served, Shared};

pub const ALLOWED_PAIRS: [(&str, &str); 5] = [
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Away", "Away"),
    ("DoNotDisturb", "Presenting"),
];

/// One accepted Graph call.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphCall {
    /// `setPresence`, `clearPresence` or `setStatusMessage`.
    pub action: String,
    pub user: String,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct TeamsState {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// Entra object ids that exist.
    pub users: Vec<String>,
    pub issued: Vec<String>,
    pub token_requests: usize,
    pub accepted: Vec<GraphCall>,
    /// Every rejection: (HTTP status, Graph error code).
    pub errors: Vec<(u16, String)>,
}

#[derive(Debug)]
pub struct TeamsStub {
    pub served: Served,
    pub state: Arc<Shared<TeamsState>>,
}

impl TeamsStub {
    pub async fn start(
        tenant: &str,
        client_id: &str,
        client_secret: &str,
        users: &[&str],
    ) -> std::io::Result<Self> {
        let state = Shared::new(TeamsState {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            ..TeamsState::default()
        });
        let router = Router::new()
            .route("/login/{tenant}/oauth2/v2.0/token", post(token))
            .route("/graph/v1.0/users/{user}/presence/{action}", post(presence))
            .with_state(Arc::clone(&state));
        Ok(Self {
            served: Served::start(router).await?,
            state,
        })
    }

    pub fn login_base(&self) -> String {
        format!("{}login/", self.served.base_url())
    }

    pub fn graph_base(&self) -> String {
        format!("{}graph/", self.served.base_url())
    }

    pub fn accepted(&self) -> Vec<GraphCall> {
        self.state.lock().accepted.clone()
    }

    pub fn errors(&self) -> Vec<(u16, String)> {
        self.state.lock().errors.clone()
    }
}

fn oauth_error(state: &Shared<TeamsState>, status: StatusCode, error: &str) -> Response {
    state.update(|s| s.errors.push((status.as_u16(), error.to_owned())));
    (
        status,
        Json(json!({"error": error, "error_description": format!("AADSTS: {error}")})),
    )
        .into_response()
}

async fn token(
    State(state): State<Arc<Shared<TeamsState>>>,
    Path(tenant): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    state.update(|s| s.token_requests += 1);
    let (expected_tenant, client_id, secret) = {
        let s = state.lock();
        (
            s.tenant.clone(),
            s.client_id.clone(),
            s.client_secret.clone(),
        )
    };
    if tenant != expected_tenant {
        return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_tenant");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(&state, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default") {
        return oauth_error(&state, StatusCode::BAD_REQUEST, "invalid_scope");
    }
    if form.get("client_id") != Some(&client_id) || form.get("client_secret") != Some(&secret) {
        return oauth_error(&state, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let token = state.update(|s| {
        let token = format!("graph-token-{}", s.issued.len() + 1);
        s.issued.push(token.clone());
        token
    });
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token})).into_response()
}

fn graph_error(state: &Shared<TeamsState>, status: StatusCode, code: &str) -> Response {
    state.update(|s| s.errors.push((status.as_u16(), code.to_owned())));
    (
        status,
        Json(json!({"error": {"code": code, "message": code}})),
    )
        .into_response()
}

async fn presence(
    State(state): State<Arc<Shared<TeamsState>>>,
    Path((user, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let (issued, users, client_id) = {
        let s = state.lock();
        (s.issued.clone(), s.users.clone(), s.client_id.clone())
    };
    if !bearer.is_some_and(|t| issued.contains(&t)) {
        return graph_error(
            &state,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
        );
    }
    if !users.contains(&user) {
        return graph_error(&state, StatusCode::NOT_FOUND, "Request_ResourceNotFound");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(&state, StatusCode::BAD_REQUEST, "BadRequest");
    };
    let check = match action.as_str() {
        "setPresence" => check_set_presence(&body, &client_id),
        "clearPresence" => check_session(&body, &client_id),
        "setStatusMessage" => check_status_message(&body),
        _ => return graph_error(&state, StatusCode::NOT_FOUND, "UnknownAction"),
    };
    if let Err(code) = check {
        return graph_error(&state, StatusCode::BAD_REQUEST, code);
    }
    state.update(|s| s.accepted.push(GraphCall { action, user, body }));
    StatusCode::OK.into_response()
}

fn check_session(body: &Value, client_id: &str) -> Result<(), &'static str> {
    // Graph requires the session id to be the calling application's id.
    if body["sessionId"].as_str() != Some(client_id) {
        return Err("InvalidSessionId");
    }
    Ok(())
}

fn check_set_presence(body: &Value, client_id: &str) -> Result<(), &'static str> {
    check_session(body, client_id)?;
    let pair = (
        body["availability"].as_str().unwrap_or_default(),
        body["activity"].as_str().unwrap_or_default(),
    );
    if !ALLOWED_PAIRS.contains(&pair) {
        return Err("InvalidAvailabilityActivityPair");
    }
    if let Some(duration) = body.get("expirationDuration") {
        let minutes = duration
            .as_str()
            .and_then(iso_minutes)
            .ok_or("InvalidExpirationDuration")?;
        if !(5.0..=240.0).contains(&minutes) {
            return Err("ExpirationDurationOutOfRange");
        }
    }
    Ok(())
}

/// Minutes in an ISO-8601 time duration `PT[nH][nM][nS]`.
pub fn iso_minutes(text: &str) -> Option<f64> {
    let mut rest = text.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut minutes = 0.0;
    for (unit, factor) in [('H', 60.0), ('M', 1.0), ('S', 1.0 / 60.0)] {
        if let Some((number, tail)) = rest.split_once(unit)
            && !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
        {
            minutes += number.parse::<f64>().ok()? * factor;
            rest = tail;
        }
    }
    rest.is_empty().then_some(minutes)
}

fn check_status_message(body: &Value) -> Result<(), &'static str> {
    let status = body
        .get("statusMessage")
        .and_then(Value::as_object)
        .ok_or("InvalidStatusMessage")?;
    let message = status
        .get("message")
        .and_then(Value::as_object)
        .ok_or("InvalidStatusMessage")?;
    if message.get("content").and_then(Value::as_str).is_none() {
        return Err("InvalidStatusMessage");
    }
    if !matches!(
        message.get("contentType").and_then(Value::as_str),
        Some("text" | "html")
    ) {
        return Err("InvalidContentType");
    }
    if let Some(expiry) = status.get("expiryDateTime") {
        let date_time = expiry["dateTime"].as_str().ok_or("InvalidExpiryDateTime")?;
        chrono::NaiveDateTime::parse_from_str(date_time, "%Y-%m-%dT%H:%M:%S%.f")
            .map_err(|_| "InvalidExpiryDateTime")?;
        if expiry["timeZone"].as_str().is_none() {
            return Err("InvalidExpiryDateTime");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(iso_minutes("PT1H30M"), Some(90.0));
        assert_eq!(iso_minutes("PT5M"), Some(5.0));
        assert_eq!(iso_minutes("PT4H"), Some(240.0));
        assert_eq!(iso_minutes("PT"), None);
        assert_eq!(iso_minutes("P1D"), None);
        assert_eq!(iso_minutes("PT1X"), None);
    }
}
