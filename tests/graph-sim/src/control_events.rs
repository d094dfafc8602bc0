//! Control: change a user's calendar as the organizer or the user would in Outlook, and expire
//! their delta tokens. Each change is stamped with the mailbox's next change sequence (so the
//! next delta round reports it) and, when the user has subscriptions, schedules a change
//! notification to each of them before the call returns.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde::Deserialize;
use serde_json::json;

use crate::Sim;
use crate::control::{fail, parse};
use crate::delivery;
use crate::events::{
    Change, EditError, Event, EventPatch, EventSpec, Organizer, RESPONSES, SHOW_AS, Zone,
};
use crate::state::{SimState, User, parse_time};

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/sim/users/{user}/events",
            post(create_event).get(list_events),
        )
        .route(
            "/sim/users/{user}/events/{event}",
            patch(update_event).delete(delete_event),
        )
        .route(
            "/sim/users/{user}/events/{event}/cancel",
            post(cancel_event),
        )
        .route(
            "/sim/users/{user}/events/{event}/decline",
            post(decline_event),
        )
        .route("/sim/users/{user}/series", post(create_series))
        .route("/sim/users/{user}/delta/expire", post(expire_delta))
}

#[derive(Debug, Deserialize)]
struct NameAddress {
    #[serde(default)]
    name: Option<String>,
    address: String,
}

/// `"a@x"`, `{"name","address"}` or Graph's `{"emailAddress":{"name","address"}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OrganizerInput {
    Address(String),
    Graph {
        #[serde(rename = "emailAddress")]
        email_address: NameAddress,
    },
    Plain(NameAddress),
}

/// `"declined"` or Graph's `{"response":"declined"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ResponseInput {
    Plain(String),
    Object { response: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventInput {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default, alias = "show_as")]
    show_as: Option<String>,
    #[serde(default, alias = "is_all_day")]
    is_all_day: Option<bool>,
    #[serde(default, alias = "response_status")]
    response_status: Option<ResponseInput>,
    #[serde(default, alias = "is_organizer")]
    is_organizer: Option<bool>,
    #[serde(default)]
    organizer: Option<OrganizerInput>,
}

impl EventInput {
    /// Validates the fields given; absent ones stay `None`.
    fn patch(self) -> Result<EventPatch, String> {
        let time = |field: &str, value: Option<String>| match value {
            None => Ok(None),
            Some(text) => parse_time(&text)
                .map(Some)
                .ok_or_else(|| format!("{field}: {text:?} is not an RFC 3339 date-time")),
        };
        if let Some(show_as) = &self.show_as
            && !SHOW_AS.contains(&show_as.as_str())
        {
            return Err(format!("showAs: must be one of {SHOW_AS:?}"));
        }
        let response = self.response_status.map(|r| match r {
            ResponseInput::Plain(response) | ResponseInput::Object { response } => response,
        });
        if let Some(response) = &response
            && !RESPONSES.contains(&response.as_str())
        {
            return Err(format!("responseStatus: must be one of {RESPONSES:?}"));
        }
        let organizer = self.organizer.map(|o| match o {
            OrganizerInput::Address(address) => Organizer {
                name: address.split('@').next().unwrap_or_default().to_owned(),
                address,
            },
            OrganizerInput::Graph { email_address: n } | OrganizerInput::Plain(n) => Organizer {
                name: n.name.unwrap_or_else(|| n.address.clone()),
                address: n.address,
            },
        });
        Ok(EventPatch {
            subject: self.subject,
            start: time("start", self.start)?,
            end: time("end", self.end)?,
            show_as: self.show_as,
            is_all_day: self.is_all_day,
            response,
            is_organizer: self.is_organizer,
            organizer,
        })
    }

    /// A complete new event: `subject`, `start` and `end` are required.
    fn spec(self, owner: &User) -> Result<EventSpec, String> {
        let patch = self.patch()?;
        let subject = patch.subject.ok_or("subject: required")?;
        let start = patch.start.ok_or("start: required")?;
        let end = patch.end.ok_or("end: required")?;
        if end < start {
            return Err("end: must not be before start".to_owned());
        }
        let response = patch.response.unwrap_or_else(|| "organizer".to_owned());
        let is_organizer = patch.is_organizer.unwrap_or(response == "organizer");
        let organizer = patch.organizer.unwrap_or_else(|| {
            if is_organizer {
                Organizer {
                    name: owner.seed.display_name.clone(),
                    address: owner.seed.mail.clone(),
                }
            } else {
                Organizer {
                    name: "External Organizer".to_owned(),
                    address: "organizer@fabrikam.example".to_owned(),
                }
            }
        });
        Ok(EventSpec {
            subject,
            start,
            end,
            show_as: patch.show_as.unwrap_or_else(|| "busy".to_owned()),
            is_all_day: patch.is_all_day.unwrap_or(false),
            response,
            is_organizer,
            organizer,
        })
    }
}

fn unknown_user(user: &str) -> Response {
    fail(StatusCode::NOT_FOUND, format!("unknown user {user}"))
}

fn edit_error(error: EditError, event: &str) -> Response {
    match error {
        EditError::NotFound => fail(StatusCode::NOT_FOUND, format!("unknown event {event}")),
        EditError::Invalid(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

/// Schedules the change notifications for `change` and releases the lock.
fn notify(
    sim: &Arc<Sim>,
    state: std::sync::MutexGuard<'_, SimState>,
    user_id: &str,
    change: &Change,
) {
    let jobs = delivery::notifications(&state, user_id, change);
    drop(state);
    delivery::schedule(sim, jobs);
}

async fn create_event(
    State(sim): State<Arc<Sim>>,
    Path(user): Path<String>,
    body: Bytes,
) -> Response {
    let input: EventInput = match parse(&body) {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    let mut state = sim.lock();
    let now = state.now();
    let Some(owner) = state.user_mut(&user) else {
        return unknown_user(&user);
    };
    let spec = match input.spec(owner) {
        Ok(spec) => spec,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    let user_id = owner.seed.id.clone();
    let (event, change) = owner.mailbox.create(&spec, now);
    notify(&sim, state, &user_id, &change);
    (StatusCode::CREATED, axum::Json(event.render(&Zone::utc()))).into_response()
}

#[derive(Debug, Deserialize)]
struct SeriesInput {
    #[serde(flatten)]
    event: EventInput,
    count: u32,
    #[serde(default = "one_day")]
    interval_days: u32,
}

fn one_day() -> u32 {
    1
}

async fn create_series(
    State(sim): State<Arc<Sim>>,
    Path(user): Path<String>,
    body: Bytes,
) -> Response {
    let input: SeriesInput = match parse(&body) {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    if !(1..=500).contains(&input.count) || input.interval_days == 0 {
        return fail(
            StatusCode::BAD_REQUEST,
            "count: 1..=500 and interval_days: at least 1",
        );
    }
    let mut state = sim.lock();
    let now = state.now();
    let Some(owner) = state.user_mut(&user) else {
        return unknown_user(&user);
    };
    let spec = match input.event.spec(owner) {
        Ok(spec) => spec,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    let user_id = owner.seed.id.clone();
    let (master, occurrences, change) =
        owner
            .mailbox
            .create_series(&spec, input.count, input.interval_days, now);
    notify(&sim, state, &user_id, &change);
    let zone = Zone::utc();
    let occurrences: Vec<_> = occurrences.iter().map(|o| o.render(&zone)).collect();
    let body = json!({"master": master.render(&zone), "occurrences": occurrences});
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// What a control edit does to the mailbox.
enum Edit {
    Update(EventPatch),
    Cancel,
    Decline,
    Delete,
}

fn edit(sim: &Arc<Sim>, user: &str, event_id: &str, edit: Edit) -> Response {
    let mut state = sim.lock();
    let now = state.now();
    let Some(owner) = state.user_mut(user) else {
        return unknown_user(user);
    };
    let user_id = owner.seed.id.clone();
    let mailbox = &mut owner.mailbox;
    let outcome: Result<(Option<Event>, Change), EditError> = match edit {
        Edit::Update(patch) => mailbox
            .update(event_id, &patch, now)
            .map(|(e, c)| (Some(e), c)),
        Edit::Cancel => mailbox.cancel(event_id, now).map(|(e, c)| (Some(e), c)),
        Edit::Decline => mailbox.decline(event_id, now).map(|(e, c)| (Some(e), c)),
        Edit::Delete => mailbox.delete(event_id, now).map(|c| (None, c)),
    };
    match outcome {
        Ok((event, change)) => {
            notify(sim, state, &user_id, &change);
            match event {
                Some(event) => axum::Json(event.render(&Zone::utc())).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            }
        }
        Err(error) => edit_error(error, event_id),
    }
}

async fn update_event(
    State(sim): State<Arc<Sim>>,
    Path((user, event)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let input: EventInput = match parse(&body) {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    match input.patch() {
        Ok(patch) => edit(&sim, &user, &event, Edit::Update(patch)),
        Err(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

async fn cancel_event(
    State(sim): State<Arc<Sim>>,
    Path((user, event)): Path<(String, String)>,
) -> Response {
    edit(&sim, &user, &event, Edit::Cancel)
}

async fn decline_event(
    State(sim): State<Arc<Sim>>,
    Path((user, event)): Path<(String, String)>,
) -> Response {
    edit(&sim, &user, &event, Edit::Decline)
}

async fn delete_event(
    State(sim): State<Arc<Sim>>,
    Path((user, event)): Path<(String, String)>,
) -> Response {
    edit(&sim, &user, &event, Edit::Delete)
}

/// Every live event of the user, series masters included (UTC), for debugging tests.
async fn list_events(State(sim): State<Arc<Sim>>, Path(user): Path<String>) -> Response {
    let state = sim.lock();
    let Some(owner) = state.user(&user) else {
        return unknown_user(&user);
    };
    let zone = Zone::utc();
    let events: Vec<_> = owner
        .mailbox
        .events
        .iter()
        .filter(|e| !e.deleted)
        .map(|e| e.render(&zone))
        .collect();
    axum::Json(events).into_response()
}

async fn expire_delta(State(sim): State<Arc<Sim>>, Path(user): Path<String>) -> Response {
    let mut state = sim.lock();
    let Some(user_id) = state.user(&user).map(|u| u.seed.id.clone()) else {
        return unknown_user(&user);
    };
    let expired = crate::calendar::expire_tokens(&mut state, &user_id);
    axum::Json(json!({"expired": expired})).into_response()
}
