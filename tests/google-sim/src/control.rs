//! The test control surface under `/sim/`: users, the sim clock, tokens, faults, the rate limit,
//! delivery settings, channels, dropped notifications, sync-token expiry, and the request and
//! delivery logs. It needs no token: it is not part of Google and exists only on loopback for
//! tests and the demo. Calendar changes live in `control_events.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::delivery;
use crate::faults::Fault;
use crate::seed::is_email;
use crate::state::millis;

pub fn routes(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/sim/users", post(add_user).get(list_users))
        .route("/sim/clock", get(clock).post(set_clock))
        .route("/sim/tokens", get(tokens).delete(revoke_tokens))
        .route(
            "/sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/sim/rate-limit", post(set_rate_limit).get(rate_limit))
        .route("/sim/settings", post(set_settings))
        .route("/sim/requests", get(requests).delete(clear_requests))
        .route("/sim/deliveries", get(deliveries).delete(clear_deliveries))
        .route("/sim/deliveries/wait", post(wait_deliveries))
        .route("/sim/channels", get(list_channels))
        .route("/sim/channels/{id}/notify", post(notify))
        .route("/sim/notifications/drop", post(drop_notifications))
        .route("/sim/sync-tokens/expire", post(expire_sync_tokens))
        .merge(crate::control_events::routes())
        .with_state(sim)
}

pub use sim_kit::control::{ControlError, fail, parse};

macro_rules! body_or_400 {
    ($body:expr) => {
        match parse(&$body) {
            Ok(value) => value,
            Err(error) => return error.into_response(),
        }
    };
}

#[derive(Debug, Deserialize)]
struct NewUser {
    email: String,
}

/// Adds a domain user with an empty primary calendar: 201, or 200 when it exists.
async fn add_user(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let new: NewUser = body_or_400!(body);
    if !is_email(&new.email) {
        return fail(StatusCode::BAD_REQUEST, "email: not an email address");
    }
    let added = sim.lock().add_user(&new.email);
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let email = new.email.to_ascii_lowercase();
    (status, axum::Json(json!({"email": email}))).into_response()
}

async fn list_users(State(sim): State<Arc<Sim>>) -> Response {
    let users: Vec<Value> = sim
        .lock()
        .calendars
        .iter()
        .map(|c| json!({"email": c.email, "resourceId": c.resource_id}))
        .collect();
    axum::Json(users).into_response()
}

fn clock_body(state: &crate::state::SimState) -> Value {
    json!({"now": millis(state.now()), "frozen": state.frozen_at.is_some()})
}

async fn clock(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(clock_body(&sim.lock())).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClockChange {
    #[serde(default, alias = "advance_seconds")]
    advance_seconds: Option<i64>,
    #[serde(default)]
    freeze: Option<bool>,
    /// RFC 3339: the sim time from now on (frozen or running).
    #[serde(default)]
    set: Option<String>,
}

/// `{set?, freeze?, advance_seconds?}`, applied in that order.
async fn set_clock(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let change: ClockChange = body_or_400!(body);
    let set = match change
        .set
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(at)) => Some(at.with_timezone(&chrono::Utc)),
        Some(Err(_)) => return fail(StatusCode::BAD_REQUEST, "set: not an RFC 3339 time"),
    };
    let mut state = sim.lock();
    if let Some(at) = set {
        match state.frozen_at {
            Some(_) => state.frozen_at = Some(at),
            None => state.clock_offset = at - chrono::Utc::now(),
        }
    }
    match change.freeze {
        Some(true) if state.frozen_at.is_none() => state.frozen_at = Some(state.now()),
        Some(false) => {
            if let Some(at) = state.frozen_at.take() {
                state.clock_offset = at - chrono::Utc::now();
            }
        }
        _ => {}
    }
    if let Some(seconds) = change.advance_seconds {
        let by = chrono::Duration::seconds(seconds);
        match state.frozen_at {
            Some(at) => state.frozen_at = Some(at + by),
            None => state.clock_offset += by,
        }
    }
    axum::Json(clock_body(&state)).into_response()
}

/// Grants per user and how many tokens are live.
async fn tokens(State(sim): State<Arc<Sim>>) -> Response {
    let state = sim.lock();
    let now = state.now();
    let active = state.tokens.values().filter(|t| t.expires_at > now).count();
    axum::Json(json!({"grants": state.grants, "active": active})).into_response()
}

/// Invalidates every issued access token (the next call answers 401 `authError`).
async fn revoke_tokens(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().tokens.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn add_fault(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let fault: Fault = body_or_400!(body);
    if fault.count == 0 {
        return fail(StatusCode::BAD_REQUEST, "count: must be at least 1");
    }
    if fault.status.is_some_and(|s| !(100..=599).contains(&s)) {
        return fail(
            StatusCode::BAD_REQUEST,
            "status: must be an HTTP status code",
        );
    }
    if fault.status.is_none() && fault.delay_ms == 0 {
        return fail(
            StatusCode::BAD_REQUEST,
            "a fault needs a status or a delayMs",
        );
    }
    sim.lock().faults.push(fault);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.lock().faults.clone()).into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RateLimit {
    #[serde(default, alias = "per_user_per_minute")]
    per_user_per_minute: Option<u32>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    reason: Option<String>,
}

fn rate_limit_body(state: &crate::state::SimState) -> Value {
    json!({
        "perUserPerMinute": state.seed.rate_limit_per_user_per_minute,
        "status": state.seed.rate_limit_status,
        "reason": state.rate_limit_reason,
    })
}

/// Changes the per-user limit; every user's minute starts afresh.
async fn set_rate_limit(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let change: RateLimit = body_or_400!(body);
    if change.per_user_per_minute == Some(0) {
        return fail(
            StatusCode::BAD_REQUEST,
            "perUserPerMinute: must be at least 1",
        );
    }
    if change.status.is_some_and(|s| s != 403 && s != 429) {
        return fail(StatusCode::BAD_REQUEST, "status: must be 403 or 429");
    }
    const REASONS: [&str; 2] = ["rateLimitExceeded", "userRateLimitExceeded"];
    if let Some(reason) = &change.reason
        && !REASONS.contains(&reason.as_str())
    {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("reason: one of {REASONS:?}"),
        );
    }
    let mut state = sim.lock();
    if let Some(limit) = change.per_user_per_minute {
        state.seed.rate_limit_per_user_per_minute = limit;
    }
    if let Some(status) = change.status {
        state.seed.rate_limit_status = status;
    }
    if let Some(reason) = change.reason {
        state.rate_limit_reason = reason;
    }
    state.rate_windows.clear();
    axum::Json(rate_limit_body(&state)).into_response()
}

async fn rate_limit(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(rate_limit_body(&sim.lock())).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    #[serde(default, alias = "delivery_retry_ms")]
    delivery_retry_ms: Option<Vec<u64>>,
    #[serde(default, alias = "notification_timeout_ms")]
    notification_timeout_ms: Option<u64>,
    #[serde(default, alias = "max_channel_ttl_seconds")]
    max_channel_ttl_seconds: Option<i64>,
}

/// Retry delays, the endpoint timeout and the channel lifetime cap, for the calls that follow.
async fn set_settings(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let change: Settings = body_or_400!(body);
    if change.max_channel_ttl_seconds.is_some_and(|s| s < 1) {
        return fail(
            StatusCode::BAD_REQUEST,
            "maxChannelTtlSeconds: must be at least 1",
        );
    }
    let mut state = sim.lock();
    let seed = &mut state.seed;
    if let Some(delays) = change.delivery_retry_ms {
        seed.delivery_retry_ms = delays;
    }
    if let Some(timeout) = change.notification_timeout_ms {
        seed.notification_timeout_ms = timeout;
    }
    if let Some(ttl) = change.max_channel_ttl_seconds {
        seed.max_channel_ttl_seconds = ttl;
    }
    axum::Json(json!({
        "deliveryRetryMs": seed.delivery_retry_ms,
        "notificationTimeoutMs": seed.notification_timeout_ms,
        "maxChannelTtlSeconds": seed.max_channel_ttl_seconds,
    }))
    .into_response()
}

async fn requests(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.lock().requests.clone()).into_response()
}

async fn clear_requests(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().requests.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn deliveries(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.lock().deliveries.clone()).into_response()
}

async fn clear_deliveries(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().deliveries.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wait {
    count: usize,
    #[serde(default = "default_wait_ms", alias = "timeout_ms")]
    timeout_ms: u64,
}

fn default_wait_ms() -> u64 {
    5000
}

/// Waits until at least `count` delivery attempts are logged: 200 with all of them, or 408.
async fn wait_deliveries(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let wait: Wait = body_or_400!(body);
    match delivery::wait(&sim, wait.count, Duration::from_millis(wait.timeout_ms)).await {
        Ok(found) => axum::Json(found).into_response(),
        Err(found) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(json!({
                "error": format!("fewer than {} deliveries after {} ms", wait.count, wait.timeout_ms),
                "deliveries": found,
            })),
        )
            .into_response(),
    }
}

/// Every channel ever made, stopped and expired ones included.
async fn list_channels(State(sim): State<Arc<Sim>>) -> Response {
    let state = sim.lock();
    let now = state.now();
    let list: Vec<Value> = state.channels.iter().map(|c| c.render(now)).collect();
    axum::Json(list).into_response()
}

/// Forces an `exists` notification on a live channel: 202 with its message number.
async fn notify(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let mut state = sim.lock();
    let now = state.now();
    let Some(index) = state
        .channels
        .iter()
        .position(|c| c.id == id && c.is_live(now))
    else {
        return fail(StatusCode::NOT_FOUND, format!("no live channel {id}"));
    };
    let job = delivery::job(&mut state, index, delivery::EXISTS);
    drop(state);
    let number = job.message_number;
    delivery::schedule(&sim, vec![job]);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"messageNumber": number})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct DropCount {
    count: u32,
}

/// The next `count` notifications (any channel) are logged as dropped and not sent.
async fn drop_notifications(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request: DropCount = body_or_400!(body);
    sim.lock().drop_notifications = request.count;
    axum::Json(json!({"pending": request.count})).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct Expire {
    #[serde(default)]
    email: Option<String>,
}

/// Expires the sync tokens of one calendar, or of all: their next use answers 410.
async fn expire_sync_tokens(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request: Expire = body_or_400!(body);
    let mut state = sim.lock();
    if let Some(email) = &request.email
        && state.calendar(email).is_none()
    {
        return fail(
            StatusCode::NOT_FOUND,
            format!("email: unknown user {email}"),
        );
    }
    let expired = crate::list::expire_tokens(&mut state, request.email.as_deref());
    axum::Json(json!({"expired": expired})).into_response()
}
