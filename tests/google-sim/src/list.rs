//! `GET /calendar/v3/calendars/{calendarId}/events` (reference §7) with opaque page and sync
//! tokens kept server-side, and `GET /calendar/v3/calendars/{calendarId}`.
//!
//! A round starts at a full sync (every item matching the filters) or at a sync token (every
//! item whose change stamp is above the one the token recorded). The round's items are rendered
//! when it starts and served page by page; its last page issues a sync token recording the
//! calendar's stamp at the start of the round, and the full sync's window, `singleEvents` and
//! `eventTypes`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::Sim;
use crate::auth::{CALENDAR_SCOPES, Caller, EVENT_SCOPES};
use crate::error::{GoogleError, google_json};
use crate::render::{Item, etag, items};
use crate::state::{SimState, millis, random_token};

pub const DEFAULT_PAGE: usize = 250;
pub const MAX_PAGE: usize = 2500;
/// Not allowed together with `syncToken`.
const NOT_WITH_SYNC: [&str; 6] = [
    "timeMin",
    "timeMax",
    "updatedMin",
    "orderBy",
    "q",
    "iCalUID",
];
/// System parameters every Google API takes; they do not change what is listed.
const SYSTEM: [&str; 7] = [
    "alt",
    "prettyPrint",
    "fields",
    "key",
    "quotaUser",
    "userIp",
    "access_token",
];
const EVENT_TYPES: [&str; 6] = [
    "default",
    "focusTime",
    "outOfOffice",
    "workingLocation",
    "birthday",
    "fromGmail",
];

/// What a sync token remembers of its full sync.
#[derive(Debug, Clone)]
pub struct SyncState {
    pub calendar: String,
    pub since: u64,
    pub window: Window,
    pub single_events: bool,
    pub event_types: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub min: Option<DateTime<Utc>>,
    pub max: Option<DateTime<Utc>>,
}

/// The rest of a round behind a `nextPageToken`.
#[derive(Debug, Clone)]
pub struct PageState {
    pub calendar: String,
    /// The request's parameters minus `pageToken`, `maxResults` and system ones.
    pub query: Vec<(String, String)>,
    pub items: Arc<[Value]>,
    pub offset: usize,
    pub next_sync: SyncState,
    /// Its calendar's sync tokens were expired (control): 410.
    pub expired: bool,
}

struct Query {
    all: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let all = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self { all }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.all
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> Result<Option<bool>, GoogleError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(GoogleError::invalid(
                name,
                format!("Invalid boolean value: '{other}'."),
            )),
        }
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, GoogleError> {
        self.get(name)
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| {
                        GoogleError::new(StatusCode::BAD_REQUEST, "badRequest", "Bad Request")
                            .at_parameter(name)
                    })
            })
            .transpose()
    }

    fn page_size(&self) -> Result<usize, GoogleError> {
        match self.get("maxResults") {
            None => Ok(DEFAULT_PAGE),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(MAX_PAGE)),
                _ => Err(GoogleError::invalid(
                    "maxResults",
                    format!("Invalid value '{text}'. Values must be within the range: [1, 2500]"),
                )),
            },
        }
    }

    fn event_types(&self) -> Result<Vec<String>, GoogleError> {
        let types: Vec<String> = self
            .all
            .iter()
            .filter(|(k, _)| k == "eventTypes")
            .map(|(_, v)| v.clone())
            .collect();
        match types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
            Some(bad) => Err(GoogleError::invalid(
                "eventTypes",
                format!("Invalid value '{bad}' for eventTypes."),
            )),
            None => Ok(types),
        }
    }

    /// The parameters a page token must be presented with again.
    fn fingerprint(&self) -> Vec<(String, String)> {
        let mut kept: Vec<(String, String)> = self
            .all
            .iter()
            .filter(|(k, _)| k != "pageToken" && k != "maxResults" && !SYSTEM.contains(&k.as_str()))
            .cloned()
            .collect();
        kept.sort();
        kept
    }
}

/// The calendar a token's user may read: its own, by address or `primary`; else 404.
pub fn calendar_of(state: &SimState, caller: &Caller, id: &str) -> Result<String, GoogleError> {
    if id != "primary" && !id.eq_ignore_ascii_case(&caller.sub) {
        return Err(GoogleError::not_found());
    }
    state
        .calendar(&caller.sub)
        .map(|c| c.email.clone())
        .ok_or_else(GoogleError::not_found)
}

/// `singleEvents` expansion bounds when the full sync gave none (README: the horizon).
fn horizon(state: &SimState, window: Window, single_events: bool) -> Window {
    if !single_events || window.min.is_some() || window.max.is_some() {
        return window;
    }
    let now = state.now();
    Window {
        min: Some(now - Duration::days(state.seed.horizon_days_before)),
        max: Some(now + Duration::days(state.seed.horizon_days_after)),
    }
}

fn type_ok(types: &[String], item: &Item) -> bool {
    types.is_empty() || types.iter().any(|t| t == item.event_type.as_str())
}

/// Changes since a sync token: changed items in the window, plus every cancelled or moved one.
fn incremental(state: &SimState, sync: &SyncState) -> Vec<Value> {
    let Some(calendar) = state.calendar(&sync.calendar) else {
        return Vec::new();
    };
    let window = horizon(state, sync.window, sync.single_events);
    let mut changed: Vec<Item> = items(calendar, sync.single_events)
        .into_iter()
        .filter(|i| i.stamp > sync.since && type_ok(&sync.event_types, i))
        .filter(|i| i.overlaps(window.min, window.max) || i.cancelled || i.moved > sync.since)
        .collect();
    changed.sort_by(|a, b| a.stamp.cmp(&b.stamp).then_with(|| a.id.cmp(&b.id)));
    changed.into_iter().map(|i| i.body).collect()
}

/// A full sync's items, filtered and ordered.
fn full(
    state: &SimState,
    email: &str,
    query: &Query,
    sync: &SyncState,
) -> Result<Vec<Value>, GoogleError> {
    let show_deleted = query.flag("showDeleted")?.unwrap_or(false);
    let updated_min = query.time("updatedMin")?;
    let order = query.get("orderBy");
    match order {
        None | Some("updated") => {}
        Some("startTime") if sync.single_events => {}
        Some("startTime") => {
            return Err(GoogleError::invalid(
                "orderBy",
                "The requested ordering is not available for the particular query.",
            ));
        }
        Some(other) => {
            return Err(GoogleError::invalid(
                "orderBy",
                format!("Invalid value '{other}'."),
            ));
        }
    }
    let text = query.get("q").map(str::to_lowercase);
    let ical_uid = query.get("iCalUID");
    let window = horizon(state, sync.window, sync.single_events);
    let calendar = state.calendar(email).ok_or_else(GoogleError::not_found)?;
    let mut found: Vec<Item> = items(calendar, sync.single_events)
        .into_iter()
        .filter(|i| i.overlaps(window.min, window.max) && type_ok(&sync.event_types, i))
        .filter(|i| {
            let deleted_shown = show_deleted
                || updated_min.is_some()
                || (i.cancelled_occurrence && !sync.single_events);
            !i.cancelled || deleted_shown
        })
        .filter(|i| updated_min.is_none_or(|min| i.updated >= min))
        .filter(|i| {
            text.as_deref()
                .is_none_or(|t| !i.cancelled && i.summary.to_lowercase().contains(t))
        })
        .filter(|i| ical_uid.is_none_or(|u| i.ical_uid == u))
        .collect();
    match order {
        Some("updated") => found.sort_by(|a, b| a.updated.cmp(&b.updated).then(a.id.cmp(&b.id))),
        _ => found.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id))),
    }
    Ok(found.into_iter().map(|i| i.body).collect())
}

/// The round a request starts or continues: `(items, offset, sync token to issue at the end)`.
fn round(
    state: &SimState,
    email: &str,
    query: &Query,
) -> Result<(Arc<[Value]>, usize, SyncState), GoogleError> {
    if let Some(token) = query.get("pageToken") {
        let page = state
            .page_tokens
            .get(token)
            .filter(|p| p.calendar == email)
            .ok_or_else(|| GoogleError::invalid("pageToken", "Invalid page token value."))?;
        if page.expired {
            return Err(GoogleError::full_sync_required());
        }
        if page.query != query.fingerprint() {
            return Err(GoogleError::invalid(
                "pageToken",
                "The page token does not belong to this query: repeat the other parameters.",
            ));
        }
        return Ok((page.items.clone(), page.offset, page.next_sync.clone()));
    }
    let calendar = state.calendar(email).ok_or_else(GoogleError::not_found)?;
    if let Some(token) = query.get("syncToken") {
        if let Some(name) = NOT_WITH_SYNC.iter().find(|n| query.get(n).is_some()) {
            return Err(GoogleError::invalid(
                name,
                format!("Sync token cannot be used with {name}."),
            ));
        }
        if query.flag("showDeleted")? == Some(false) {
            return Err(GoogleError::invalid(
                "showDeleted",
                "Sync token cannot be used with showDeleted=false.",
            ));
        }
        let sync = state
            .sync_tokens
            .get(token)
            .filter(|s| s.calendar == email)
            .ok_or_else(GoogleError::full_sync_required)?;
        let next = SyncState {
            since: calendar.stamp,
            ..sync.clone()
        };
        return Ok((incremental(state, sync).into(), 0, next));
    }
    let window = Window {
        min: query.time("timeMin")?,
        max: query.time("timeMax")?,
    };
    if let (Some(min), Some(max)) = (window.min, window.max)
        && max <= min
    {
        return Err(GoogleError::new(
            StatusCode::BAD_REQUEST,
            "timeRangeEmpty",
            "The specified time range is empty.",
        )
        .at_parameter("timeMax"));
    }
    let sync = SyncState {
        calendar: email.to_owned(),
        since: calendar.stamp,
        window,
        single_events: query.flag("singleEvents")?.unwrap_or(false),
        event_types: query.event_types()?,
    };
    Ok((full(state, email, query, &sync)?.into(), 0, sync))
}

/// `GET /calendar/v3/calendars/{calendarId}/events`.
pub async fn list_events(
    State(sim): State<Arc<Sim>>,
    Path(calendar_id): Path<String>,
    RawQuery(raw): RawQuery,
    Extension(caller): Extension<Caller>,
) -> Result<Response, GoogleError> {
    caller.require(&EVENT_SCOPES)?;
    let query = Query::parse(raw.as_deref());
    let page_size = query.page_size()?;
    query.event_types()?;
    let mut state = sim.lock();
    let email = calendar_of(&state, &caller, &calendar_id)?;
    let (items, offset, next_sync) = round(&state, &email, &query)?;
    let end = items.len().min(offset + page_size);
    let page: Vec<Value> = items[offset..end].to_vec();
    let (name, token) = if end < items.len() {
        let token = random_token(2);
        let state_for_page = PageState {
            calendar: email.clone(),
            query: query.fingerprint(),
            items,
            offset: end,
            next_sync,
            expired: false,
        };
        state.page_tokens.insert(token.clone(), state_for_page);
        ("nextPageToken", token)
    } else {
        let token = random_token(2);
        state.sync_tokens.insert(token.clone(), next_sync);
        ("nextSyncToken", token)
    };
    let calendar = state.calendar(&email).ok_or_else(GoogleError::not_found)?;
    let updated = calendar
        .events
        .iter()
        .map(|e| e.updated)
        .chain(
            calendar
                .events
                .iter()
                .flat_map(|e| e.exceptions.values().map(|x| x.updated)),
        )
        .max()
        .unwrap_or_else(|| state.now());
    let body = json!({
        "kind": "calendar#events",
        "etag": etag(calendar.stamp),
        "summary": email,
        "description": "",
        "updated": millis(updated),
        "timeZone": "UTC",
        "accessRole": "owner",
        "defaultReminders": [],
        name: token,
        "items": page,
    });
    Ok(google_json(StatusCode::OK, &body))
}

/// `GET /calendar/v3/calendars/{calendarId}`.
pub async fn get_calendar(
    State(sim): State<Arc<Sim>>,
    Path(calendar_id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, GoogleError> {
    caller.require(&CALENDAR_SCOPES)?;
    let state = sim.lock();
    let email = calendar_of(&state, &caller, &calendar_id)?;
    let stamp = state.calendar(&email).map_or(0, |c| c.stamp);
    let body = json!({
        "kind": "calendar#calendar",
        "etag": etag(stamp),
        "id": email,
        "summary": email,
        "timeZone": "UTC",
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    Ok(google_json(StatusCode::OK, &body))
}

/// Control: forget the sync tokens of one calendar (or all); their next use answers 410, as do
/// page tokens of rounds already under way.
pub fn expire_tokens(state: &mut SimState, email: Option<&str>) -> usize {
    let matches = |calendar: &str| email.is_none_or(|e| e.eq_ignore_ascii_case(calendar));
    let before = state.sync_tokens.len();
    state.sync_tokens.retain(|_, s| !matches(&s.calendar));
    for page in state.page_tokens.values_mut() {
        if matches(&page.calendar) {
            page.expired = true;
        }
    }
    before - state.sync_tokens.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventType, Fields, Patch, When};
    use crate::seed::{AGENT1, Seed};

    fn at(text: &str) -> When {
        When::parse(text).expect("a time")
    }

    fn add(state: &mut SimState, id: &str, start: &str, end: &str) {
        let now = state.now();
        let fields = Fields {
            summary: id.to_owned(),
            start: at(start),
            end: at(end),
            event_type: EventType::Default,
            transparency: "opaque".to_owned(),
            visibility: "default".to_owned(),
            status: "confirmed".to_owned(),
            organizer: AGENT1.to_owned(),
            guests: Vec::new(),
            response: "accepted".to_owned(),
        };
        let calendar = state.calendar_mut(AGENT1).expect("seeded");
        calendar
            .create(Some(id.to_owned()), fields, None, now)
            .expect("created");
    }

    fn ids(items: &[Value]) -> Vec<&str> {
        items.iter().filter_map(|i| i["id"].as_str()).collect()
    }

    #[test]
    fn a_sync_token_keeps_its_window_but_reports_moves_out_of_it() {
        let mut state = SimState::from_seed(Seed::default()).expect("valid seed");
        add(
            &mut state,
            "inside1",
            "2030-01-15T09:00:00Z",
            "2030-01-15T10:00:00Z",
        );
        add(
            &mut state,
            "inside2",
            "2030-01-15T11:00:00Z",
            "2030-01-15T12:00:00Z",
        );
        add(
            &mut state,
            "outside",
            "2030-02-15T09:00:00Z",
            "2030-02-15T10:00:00Z",
        );
        let window = "timeMin=2030-01-14T00:00:00Z&timeMax=2030-01-21T00:00:00Z";
        let (items, _, sync) = round(&state, AGENT1, &Query::parse(Some(window))).expect("full");
        assert_eq!(ids(&items), ["inside1", "inside2"]);
        assert_eq!(sync.window.min, Some(at("2030-01-14T00:00:00Z").instant()));

        let now = state.now();
        let calendar = state.calendar_mut(AGENT1).expect("seeded");
        let away = Patch {
            start: Some(at("2030-03-01T09:00:00Z")),
            ..Patch::default()
        };
        calendar.update("inside1", &away, now).expect("moved");
        let renamed = Patch {
            summary: Some("renamed".to_owned()),
            ..Patch::default()
        };
        calendar.update("outside", &renamed, now).expect("renamed");
        calendar.cancel("inside2", now).expect("cancelled");
        let changes = incremental(&state, &sync);
        assert_eq!(
            ids(&changes),
            ["inside1", "inside2"],
            "not the rename outside"
        );
        assert_eq!(changes[0]["start"]["dateTime"], "2030-03-01T09:00:00Z");
        assert_eq!(changes[1]["status"], "cancelled");

        let later = SyncState {
            since: state.calendar(AGENT1).map_or(0, |c| c.stamp),
            ..sync
        };
        assert!(incremental(&state, &later).is_empty());
    }

    #[test]
    fn forbidden_parameters_and_unknown_tokens() {
        let state = SimState::from_seed(Seed::default()).expect("valid seed");
        let refused = |query: &str| round(&state, AGENT1, &Query::parse(Some(query))).err();
        let reason = |query: &str| refused(query).map(|e| (e.status.as_u16(), e.reason));
        assert_eq!(
            reason("syncToken=nope"),
            Some((410, "fullSyncRequired".to_owned()))
        );
        for name in NOT_WITH_SYNC {
            let query = format!("syncToken=x&{name}=2030-01-14T00:00:00Z");
            assert_eq!(reason(&query), Some((400, "invalid".to_owned())), "{name}");
        }
        let empty = "timeMin=2030-01-15T00:00:00Z&timeMax=2030-01-15T00:00:00Z";
        assert_eq!(reason(empty), Some((400, "timeRangeEmpty".to_owned())));
        assert_eq!(reason("pageToken=nope"), Some((400, "invalid".to_owned())));
    }
}
