//! Control: change a user's calendar as the organizer or the user would in Google Calendar.
//! Each change takes the calendar's next change stamp (so the next incremental sync reports it)
//! and schedules an `exists` notification to every live channel on the calendar before the
//! control call returns.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde::Deserialize;
use serde_json::Value;

use crate::Sim;
use crate::calendar::{Calendar, EditError};
use crate::control::{fail, parse};
use crate::delivery;
use crate::model::{EventType, Fields, Freq, Patch, Rule, When};
use crate::render;
use crate::seed::is_email;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/sim/calendars/{email}/events",
            post(create_event).get(list_events),
        )
        .route("/sim/calendars/{email}/events/{event}", patch(update_event))
        .route(
            "/sim/calendars/{email}/events/{event}/cancel",
            post(cancel_event),
        )
        .route(
            "/sim/calendars/{email}/events/{event}/decline",
            post(decline_event),
        )
}

/// `"2030-01-15T09:00:00Z"`, `"2030-01-15"` (all-day), `{"dateTime"}` or `{"date"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TimeInput {
    Text(String),
    Object {
        #[serde(default, rename = "dateTime")]
        date_time: Option<String>,
        #[serde(default)]
        date: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
struct RecurrenceInput {
    freq: String,
    count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventInput {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    start: Option<TimeInput>,
    #[serde(default)]
    end: Option<TimeInput>,
    #[serde(default, alias = "event_type")]
    event_type: Option<String>,
    #[serde(default)]
    transparency: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    attendees: Option<Vec<String>>,
    #[serde(default)]
    organizer: Option<String>,
    /// The owner's answer.
    #[serde(default, alias = "response_status")]
    response_status: Option<String>,
    #[serde(default)]
    recurrence: Option<RecurrenceInput>,
}

fn time(field: &str, value: Option<TimeInput>) -> Result<Option<When>, String> {
    let text = match value {
        None => return Ok(None),
        Some(TimeInput::Text(text)) => text,
        Some(TimeInput::Object {
            date_time: Some(text),
            date: None,
        }) => text,
        Some(TimeInput::Object {
            date_time: None,
            date: Some(day),
        }) => day,
        Some(TimeInput::Object { .. }) => {
            return Err(format!("{field}: exactly one of dateTime and date"));
        }
    };
    When::parse(&text)
        .map(Some)
        .ok_or_else(|| format!("{field}: {text:?} is neither RFC 3339 nor YYYY-MM-DD"))
}

fn one_of(field: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, String> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(format!("{field}: one of {allowed:?}")),
        other => Ok(other),
    }
}

impl EventInput {
    /// Validates the fields given; absent ones stay `None`.
    fn patch(self) -> Result<(Option<String>, Patch), String> {
        let event_type = match self.event_type.as_deref() {
            None => None,
            Some(text) => Some(
                EventType::parse(text)
                    .ok_or_else(|| format!("eventType: one of {:?}", EventType::ALL))?,
            ),
        };
        let emails = self.attendees.iter().flatten().chain(self.organizer.iter());
        if let Some(bad) = emails.into_iter().find(|e| !is_email(e)) {
            return Err(format!(
                "attendees/organizer: {bad:?} is not an email address"
            ));
        }
        let rule = match self.recurrence {
            None => None,
            Some(r) => {
                let freq = match r.freq.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    _ => return Err("recurrence.freq: DAILY or WEEKLY".to_owned()),
                };
                if !(1..=730).contains(&r.count) {
                    return Err("recurrence.count: 1–730".to_owned());
                }
                Some(Rule {
                    freq,
                    count: r.count,
                })
            }
        };
        let patch = Patch {
            summary: self.summary,
            start: time("start", self.start)?,
            end: time("end", self.end)?,
            event_type,
            transparency: one_of(
                "transparency",
                self.transparency,
                &["opaque", "transparent"],
            )?,
            visibility: one_of(
                "visibility",
                self.visibility,
                &["default", "public", "private", "confidential"],
            )?,
            status: one_of("status", self.status, &["confirmed", "tentative"])?,
            organizer: self.organizer.map(|o| o.to_ascii_lowercase()),
            guests: self.attendees,
            response: one_of(
                "responseStatus",
                self.response_status,
                &["needsAction", "declined", "tentative", "accepted"],
            )?,
            rule,
        };
        Ok((self.id, patch))
    }
}

/// A complete new event from a patch: `start` and `end` required, the rest defaulted.
fn new_fields(owner: &str, patch: &Patch) -> Result<Fields, String> {
    let start = patch.start.ok_or("start: required")?;
    let end = patch.end.ok_or("end: required")?;
    let event_type = patch.event_type.unwrap_or(EventType::Default);
    let organizer = patch.organizer.clone().unwrap_or_else(|| owner.to_owned());
    if event_type.is_status() {
        if patch.guests.as_ref().is_some_and(|g| !g.is_empty()) {
            return Err("attendees: a status event has no attendees".to_owned());
        }
        if !organizer.eq_ignore_ascii_case(owner) {
            return Err("organizer: a status event is the owner's own".to_owned());
        }
    }
    let summary = match event_type {
        EventType::Default => "(No title)",
        EventType::FocusTime => "Focus time",
        EventType::OutOfOffice => "Out of office",
        EventType::WorkingLocation => "Home",
    };
    let working = event_type == EventType::WorkingLocation;
    let response = if organizer.eq_ignore_ascii_case(owner) {
        "accepted"
    } else {
        "needsAction"
    };
    let default = |value: &Option<String>, fallback: &str| {
        value.clone().unwrap_or_else(|| fallback.to_owned())
    };
    Ok(Fields {
        summary: default(&patch.summary, summary),
        start,
        end,
        event_type,
        transparency: default(
            &patch.transparency,
            if working { "transparent" } else { "opaque" },
        ),
        visibility: default(
            &patch.visibility,
            if working { "public" } else { "default" },
        ),
        status: default(&patch.status, "confirmed"),
        organizer,
        guests: patch.guests.clone().unwrap_or_default(),
        response: default(&patch.response, response),
    })
}

/// The item `id` (event, master or occurrence) as events.list would show it.
fn render_id(calendar: &Calendar, id: &str) -> Option<Value> {
    let owner = calendar.email.as_str();
    if let Some(event) = calendar.event(id) {
        return Some(if event.cancelled {
            render::deleted(&event.id, event.stamp)
        } else {
            render::event(owner, event)
        });
    }
    render::items(calendar, true)
        .into_iter()
        .find(|item| item.id == id)
        .map(|item| item.body)
}

/// The event type an id belongs to (its series for an occurrence), for watch filters.
fn type_of(calendar: &Calendar, id: &str) -> EventType {
    let series = id.rsplit_once('_').map_or(id, |(series, _)| series);
    calendar
        .event(id)
        .or_else(|| calendar.event(series))
        .map_or(EventType::Default, |e| e.fields.event_type)
}

fn edit_error(error: EditError, id: &str) -> Response {
    match error {
        EditError::NotFound => fail(StatusCode::NOT_FOUND, format!("unknown event {id}")),
        EditError::Invalid(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

/// What a control call does to a calendar.
enum Edit {
    Create(Option<String>, Patch),
    Update(Patch),
    Cancel,
    Decline,
}

/// Applies `edit` under the lock, notifies the calendar's channels, answers the item.
fn apply(sim: &Arc<Sim>, email: &str, id: &str, edit: Edit) -> Response {
    let mut state = sim.lock();
    let now = state.now();
    let Some(calendar) = state.calendar_mut(email) else {
        return fail(StatusCode::NOT_FOUND, format!("unknown calendar {email}"));
    };
    let owner = calendar.email.clone();
    let outcome = match edit {
        Edit::Create(wanted, patch) => match new_fields(&owner, &patch) {
            Err(message) => return fail(StatusCode::BAD_REQUEST, message),
            Ok(fields) => calendar
                .create(wanted, fields, patch.rule, now)
                .map(|e| e.id.clone()),
        },
        Edit::Update(patch) => calendar.update(id, &patch, now).map(|()| id.to_owned()),
        Edit::Cancel => calendar.cancel(id, now).map(|()| id.to_owned()),
        Edit::Decline => calendar.decline(id, now).map(|()| id.to_owned()),
    };
    let (created, id) = match outcome {
        Ok(changed) => (id.is_empty(), changed),
        Err(error) => return edit_error(error, id),
    };
    let body = render_id(calendar, &id).unwrap_or_default();
    let event_type = type_of(calendar, &id);
    let jobs = delivery::changed(&mut state, &owner, event_type);
    drop(state);
    delivery::schedule(sim, jobs);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(body)).into_response()
}

async fn create_event(
    State(sim): State<Arc<Sim>>,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let input: EventInput = match parse(&body) {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    match input.patch() {
        Ok((id, patch)) => apply(&sim, &email, "", Edit::Create(id, patch)),
        Err(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

async fn update_event(
    State(sim): State<Arc<Sim>>,
    Path((email, event)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let input: EventInput = match parse(&body) {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    match input.patch() {
        Ok((None, patch)) => apply(&sim, &email, &event, Edit::Update(patch)),
        Ok((Some(_), _)) => fail(StatusCode::BAD_REQUEST, "id: cannot be changed"),
        Err(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

async fn cancel_event(
    State(sim): State<Arc<Sim>>,
    Path((email, event)): Path<(String, String)>,
) -> Response {
    apply(&sim, &email, &event, Edit::Cancel)
}

async fn decline_event(
    State(sim): State<Arc<Sim>>,
    Path((email, event)): Path<(String, String)>,
) -> Response {
    apply(&sim, &email, &event, Edit::Decline)
}

/// Every stored event (single events and series masters, cancelled included), for debugging.
async fn list_events(State(sim): State<Arc<Sim>>, Path(email): Path<String>) -> Response {
    let state = sim.lock();
    let Some(calendar) = state.calendar(&email) else {
        return fail(StatusCode::NOT_FOUND, format!("unknown calendar {email}"));
    };
    let events: Vec<Value> = calendar
        .events
        .iter()
        .filter_map(|e| render_id(calendar, &e.id))
        .collect();
    axum::Json(events).into_response()
}
