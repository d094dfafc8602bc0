//! The test control surface under `/sim/`: users, the sim clock, faults, the validation token,
//! subscriptions (list, lifecycle and forced notifications), and the request and delivery logs.
//! It needs no token: it is not part of Graph and exists only on loopback for tests and the
//! demo. Calendar changes live in `control_events.rs`.

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
use crate::events::{Change, ChangeType};
use crate::faults::Fault;
use crate::seed::UserSeed;
use crate::state::{random_token, rfc3339};

pub fn routes(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/sim/users", post(upsert_user).get(list_users))
        .route("/sim/clock", get(clock).post(advance_clock))
        .route("/sim/tokens", axum::routing::delete(revoke_tokens))
        .route("/sim/validation-token", post(set_validation_token))
        .route(
            "/sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/sim/requests", get(requests).delete(clear_requests))
        .route("/sim/deliveries", get(deliveries).delete(clear_deliveries))
        .route("/sim/deliveries/wait", post(wait_deliveries))
        .route("/sim/subscriptions", get(list_subscriptions))
        .route("/sim/subscriptions/{id}/lifecycle", post(lifecycle))
        .route("/sim/subscriptions/{id}/notify", post(notify))
        .merge(crate::control_events::routes())
        .with_state(sim)
}

pub use sim_kit::control::{ControlError, fail, parse};

#[derive(Debug, Deserialize)]
struct NewUser {
    #[serde(default)]
    id: Option<String>,
    user_principal_name: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    allowed: Option<bool>,
}

/// Adds a user, or updates the one with the same id or UPN (fields left out keep their value).
async fn upsert_user(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let new: NewUser = match parse(&body) {
        Ok(new) => new,
        Err(error) => return error.into_response(),
    };
    if new.user_principal_name.trim().is_empty() {
        return fail(
            StatusCode::BAD_REQUEST,
            "user_principal_name: must not be empty",
        );
    }
    let mut state = sim.lock();
    let existing = new
        .id
        .as_deref()
        .and_then(|id| state.user(id))
        .or_else(|| state.user(&new.user_principal_name))
        .map(|u| u.seed.clone());
    let upn = new.user_principal_name.clone();
    let local = upn.split('@').next().unwrap_or(&upn).to_owned();
    let seed = UserSeed {
        id: new
            .id
            .or_else(|| existing.as_ref().map(|e| e.id.clone()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        mail: new
            .mail
            .or_else(|| existing.as_ref().map(|e| e.mail.clone()))
            .unwrap_or_else(|| upn.clone()),
        display_name: new
            .display_name
            .or_else(|| existing.as_ref().map(|e| e.display_name.clone()))
            .unwrap_or(local),
        allowed: new
            .allowed
            .or_else(|| existing.as_ref().map(|e| e.allowed))
            .unwrap_or(true),
        user_principal_name: upn,
    };
    let added = state.upsert_user(seed.clone());
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(seed)).into_response()
}

async fn list_users(State(sim): State<Arc<Sim>>) -> Response {
    let users: Vec<UserSeed> = sim.lock().users.iter().map(|u| u.seed.clone()).collect();
    axum::Json(users).into_response()
}

async fn clock(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(json!({"now": rfc3339(sim.lock().now())})).into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    advance_seconds: i64,
}

async fn advance_clock(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let advance: Advance = match parse(&body) {
        Ok(advance) => advance,
        Err(error) => return error.into_response(),
    };
    let mut state = sim.lock();
    state.clock_offset += chrono::Duration::seconds(advance.advance_seconds);
    axum::Json(json!({"now": rfc3339(state.now())})).into_response()
}

/// Invalidates every issued access token, as a secret rotation would.
async fn revoke_tokens(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().tokens.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct ValidationToken {
    token: Option<String>,
}

async fn set_validation_token(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse::<ValidationToken>(&body) {
        Ok(change) => {
            sim.lock().validation_token = change.token;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn add_fault(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(fault) => fault,
        Err(error) => return error.into_response(),
    };
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
            "a fault needs a status or a delay_ms",
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
struct Wait {
    count: usize,
    #[serde(default = "default_wait_ms")]
    timeout_ms: u64,
}

fn default_wait_ms() -> u64 {
    5000
}

/// Waits until at least `count` delivery attempts are logged: 200 with all of them, or 408.
async fn wait_deliveries(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let wait: Wait = match parse(&body) {
        Ok(wait) => wait,
        Err(error) => return error.into_response(),
    };
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

/// Every subscription ever created (deleted ones excepted), with `user_id` and `expired`.
async fn list_subscriptions(State(sim): State<Arc<Sim>>) -> Response {
    let state = sim.lock();
    let now = state.now();
    let list: Vec<Value> = state
        .subscriptions
        .iter()
        .map(|s| {
            let mut body = s.render();
            if let Some(object) = body.as_object_mut() {
                object.insert("user_id".to_owned(), json!(s.user_id));
                object.insert("expired".to_owned(), json!(!s.is_active(now)));
                object.insert(
                    "reauthorized_at".to_owned(),
                    json!(s.reauthorized_at.map(rfc3339)),
                );
            }
            body
        })
        .collect();
    axum::Json(list).into_response()
}

#[derive(Debug, Deserialize)]
struct Lifecycle {
    event: String,
}

/// Sends a lifecycle notification; `subscriptionRemoved` also deletes the subscription.
async fn lifecycle(State(sim): State<Arc<Sim>>, Path(id): Path<String>, body: Bytes) -> Response {
    let request: Lifecycle = match parse(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    const EVENTS: [&str; 3] = ["reauthorizationRequired", "subscriptionRemoved", "missed"];
    if !EVENTS.contains(&request.event.as_str()) {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("event: must be one of {EVENTS:?}"),
        );
    }
    let mut state = sim.lock();
    let now = state.now();
    let Some(subscription) = state
        .subscriptions
        .iter()
        .find(|s| s.id == id && s.is_active(now))
    else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no active subscription {id}"),
        );
    };
    let job = delivery::lifecycle(&state, subscription, &request.event);
    if request.event == "subscriptionRemoved" {
        state.subscriptions.retain(|s| s.id != id);
    }
    drop(state);
    let sent = job.body.clone();
    delivery::schedule(&sim, vec![job]);
    (StatusCode::ACCEPTED, axum::Json(sent)).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notify {
    #[serde(default, alias = "change_type")]
    change_type: Option<String>,
    #[serde(default, alias = "event_id")]
    event_id: Option<String>,
}

/// Forces one change notification (default `updated`, naming the mailbox's last-changed event).
async fn notify(State(sim): State<Arc<Sim>>, Path(id): Path<String>, body: Bytes) -> Response {
    let request: Notify = match parse(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let change_type = match request.change_type.as_deref().unwrap_or("updated") {
        "created" => ChangeType::Created,
        "updated" => ChangeType::Updated,
        "deleted" => ChangeType::Deleted,
        other => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("changeType: unknown {other:?}"),
            );
        }
    };
    let state = sim.lock();
    let now = state.now();
    let Some(subscription) = state
        .subscriptions
        .iter()
        .find(|s| s.id == id && s.is_active(now))
    else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no active subscription {id}"),
        );
    };
    let events = state
        .user(&subscription.user_id)
        .map_or(&[][..], |u| u.mailbox.events.as_slice());
    let event_id = request
        .event_id
        .or_else(|| events.iter().max_by_key(|e| e.seq).map(|e| e.id.clone()))
        .unwrap_or_else(|| format!("AAMkAD{}AAA=", random_token(2)));
    let etag = events.iter().find(|e| e.id == event_id).map_or_else(
        || format!("W/\"{}\"", random_token(1)),
        crate::events::Event::etag,
    );
    let change = Change {
        event_id,
        change_type,
        etag,
    };
    let job = delivery::notification(&state, subscription, &change);
    drop(state);
    let sent = job.body.clone();
    delivery::schedule(&sim, vec![job]);
    (StatusCode::ACCEPTED, axum::Json(sent)).into_response()
}
