//! The test control surface under `/sim/`: seed, change the world as "someone else" would,
//! inject faults, move the clock, and read what happened. It needs no token: it is not part of
//! Genesys and exists only on loopback for tests and the demo.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::seed::{ClientSeed, ScheduleSearchMode, ShiftSeed, UserSeed};
use crate::state::Fault;

pub fn routes(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/sim/users", post(upsert_user))
        .route("/sim/users/{user_id}/presence", put(set_presence))
        .route(
            "/sim/users/{user_id}/routingstatus",
            put(set_routing_status),
        )
        .route("/sim/users/{user_id}/shifts", put(set_shifts))
        .route(
            "/sim/groups/{group_id}/members",
            put(crate::groups::set_members),
        )
        .route("/sim/clients", post(upsert_client))
        .route("/sim/tokens", delete(revoke_tokens))
        .route(
            "/sim/faults",
            post(add_fault).delete(clear_faults).get(list_faults),
        )
        .route("/sim/clock/advance", post(advance_clock))
        .route("/sim/ratelimit", put(set_rate_limit))
        .route(
            "/sim/businessunits/{bu_id}/schedulesearch",
            put(set_schedule_search),
        )
        .route("/sim/mutations", get(mutations))
        .route("/sim/events", get(events))
        .route("/sim/requests", get(requests).delete(clear_requests))
        .with_state(sim)
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": message.into()})),
    )
        .into_response()
}

async fn upsert_user(
    State(sim): State<Arc<Sim>>,
    axum::Json(user): axum::Json<UserSeed>,
) -> Response {
    match sim.lock().upsert_user(user) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => bad(message),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresenceChange {
    /// A definition id, or a system presence name ("Busy", "On Queue") for its primary definition.
    presence: String,
    #[serde(default)]
    message: Option<String>,
    /// Recorded as the mutation's caller, e.g. "agent" or "supervisor".
    #[serde(default)]
    by: Option<String>,
}

async fn set_presence(
    State(sim): State<Arc<Sim>>,
    Path(user_id): Path<String>,
    axum::Json(change): axum::Json<PresenceChange>,
) -> Response {
    let mut state = sim.lock();
    let definition_id = match state.definition(&change.presence) {
        Some(found) => found.id.clone(),
        None => match crate::state::system_presence(&change.presence).and_then(|kind| {
            state
                .definitions
                .iter()
                .find(|d| d.primary && d.system == kind)
                .map(|d| d.id.clone())
        }) {
            Some(id) => id,
            None => {
                return bad(format!(
                    "presence: unknown definition or system presence {:?}",
                    change.presence
                ));
            }
        },
    };
    let caller = format!("control:{}", change.by.as_deref().unwrap_or("someone"));
    let correlation_id = uuid::Uuid::new_v4().to_string();
    match state.set_presence(
        &caller,
        "control presence",
        &user_id,
        Some(&definition_id),
        change.message.as_deref(),
        &correlation_id,
    ) {
        Some(presence) => axum::Json(json!({
            "presenceDefinitionId": presence.definition_id,
            "message": presence.message,
            "modifiedDate": crate::state::format_time(presence.modified_date),
        }))
        .into_response(),
        None => bad(format!("userId: unknown user {user_id}")),
    }
}

#[derive(Debug, Deserialize)]
struct RoutingChange {
    status: String,
}

async fn set_routing_status(
    State(sim): State<Arc<Sim>>,
    Path(user_id): Path<String>,
    axum::Json(change): axum::Json<RoutingChange>,
) -> Response {
    const STATUSES: [&str; 5] = [
        "OFF_QUEUE",
        "IDLE",
        "INTERACTING",
        "NOT_RESPONDING",
        "COMMUNICATING",
    ];
    if !STATUSES.contains(&change.status.as_str()) {
        return bad(format!("status: must be one of {STATUSES:?}"));
    }
    match sim.lock().set_routing_status(&user_id, &change.status) {
        Some(routing) => axum::Json(routing).into_response(),
        None => bad(format!("userId: unknown user {user_id}")),
    }
}

async fn set_shifts(
    State(sim): State<Arc<Sim>>,
    Path(user_id): Path<String>,
    axum::Json(shifts): axum::Json<Vec<ShiftSeed>>,
) -> Response {
    let mut state = sim.lock();
    match state.users.get_mut(&user_id) {
        Some(user) => {
            user.shifts = shifts;
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad(format!("userId: unknown user {user_id}")),
    }
}

async fn upsert_client(
    State(sim): State<Arc<Sim>>,
    axum::Json(client): axum::Json<ClientSeed>,
) -> Response {
    let mut state = sim.lock();
    state.clients.insert(
        client.client_id.clone(),
        crate::state::Client { seed: client },
    );
    StatusCode::NO_CONTENT.into_response()
}

/// Invalidates every issued token, as a credential rotation or revocation would.
async fn revoke_tokens(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().tokens.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn add_fault(State(sim): State<Arc<Sim>>, axum::Json(fault): axum::Json<Fault>) -> Response {
    if fault.count == 0 {
        return bad("count: must be at least 1");
    }
    sim.lock().faults.push(fault);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.lock().faults.clone()).into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(
    State(sim): State<Arc<Sim>>,
    axum::Json(advance): axum::Json<Advance>,
) -> Response {
    let mut state = sim.lock();
    state.clock_offset += chrono::Duration::seconds(advance.seconds);
    let now = state.now();
    axum::Json(json!({"now": crate::state::format_time(now)})).into_response()
}

async fn set_rate_limit(
    State(sim): State<Arc<Sim>>,
    axum::Json(limit): axum::Json<crate::seed::RateLimitSeed>,
) -> Response {
    if limit.requests_per_window == 0 || limit.window_seconds == 0 {
        return bad("requestsPerWindow and windowSeconds must be at least 1");
    }
    let mut state = sim.lock();
    state.rate_limit = limit;
    state.rate_windows.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct ScheduleSearchChange {
    mode: ScheduleSearchMode,
}

async fn set_schedule_search(
    State(sim): State<Arc<Sim>>,
    Path(bu_id): Path<String>,
    axum::Json(change): axum::Json<ScheduleSearchChange>,
) -> Response {
    let mut state = sim.lock();
    match state
        .business_units
        .iter_mut()
        .find(|bu| bu.seed.id == bu_id)
    {
        Some(bu) => {
            bu.seed.schedule_search = change.mode;
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad(format!("buId: unknown business unit {bu_id}")),
    }
}

async fn mutations(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.lock().mutations.clone()).into_response()
}

async fn events(State(sim): State<Arc<Sim>>) -> Response {
    let events: Vec<Value> = sim.lock().events.clone();
    axum::Json(events).into_response()
}

async fn requests(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.lock().requests.clone()).into_response()
}

async fn clear_requests(State(sim): State<Arc<Sim>>) -> Response {
    sim.lock().requests.clear();
    StatusCode::NO_CONTENT.into_response()
}
