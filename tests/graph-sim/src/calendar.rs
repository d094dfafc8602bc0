//! `GET /v1.0/users/{id}/calendarView/delta` (reference §3) with opaque `$skiptoken` /
//! `$deltatoken` state kept server-side, plus `GET /v1.0/users/{id}/events/{id}`.
//!
//! A round starts at a first call (every event in the window) or at a deltaLink (every event
//! whose change sequence is above the one the deltaLink recorded). The round's event ids are
//! fixed when it starts and rendered page by page; its last page issues a deltaLink recording
//! the mailbox sequence at the start of the round.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::Sim;
use crate::error::{GraphError, graph_json};
use crate::events::{Mailbox, Zone, removed};
use crate::state::{SimState, User, parse_time, random_token};

/// Server-side state behind an opaque token.
#[derive(Debug, Clone)]
pub enum SyncToken {
    /// The rest of a round: `ids[offset..]`, then a deltaLink at `through`.
    Skip {
        user_id: String,
        window: Window,
        ids: Arc<[String]>,
        offset: usize,
        through: u64,
    },
    /// The next round reports changes with a sequence above `since`.
    Delta {
        user_id: String,
        window: Window,
        since: u64,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the `Prefer` headers asked for.
#[derive(Debug, Clone, Default)]
pub struct Preferences {
    pub max_page_size: Option<usize>,
    /// The requested zone name, and the zone when the simulator knows it.
    pub timezone: Option<(String, Option<Zone>)>,
}

impl Preferences {
    /// Reads every `Prefer` header; each may hold several comma-separated preferences.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut preferences = Self::default();
        for value in headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for item in split_outside_quotes(text) {
                let Some((key, value)) = item.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "odata.maxpagesize" => {
                        preferences.max_page_size = value.parse().ok().filter(|&n: &usize| n > 0);
                    }
                    "outlook.timezone" => {
                        preferences.timezone = Some((value.to_owned(), Zone::parse(value)));
                    }
                    _ => {}
                }
            }
        }
        preferences
    }

    /// The zone to render in: the requested one when known, else UTC.
    pub fn zone(&self) -> Zone {
        self.timezone
            .as_ref()
            .and_then(|(_, zone)| zone.clone())
            .unwrap_or_else(Zone::utc)
    }

    /// `Preference-Applied` for what was honoured (`page_size` only on delta).
    pub fn applied(&self, page_size: bool) -> Option<HeaderValue> {
        let mut applied = Vec::new();
        if page_size && let Some(size) = self.max_page_size {
            applied.push(format!("odata.maxpagesize={size}"));
        }
        if let Some((name, Some(_))) = &self.timezone {
            applied.push(format!("outlook.timezone=\"{name}\""));
        }
        (!applied.is_empty())
            .then(|| HeaderValue::from_str(&applied.join(", ")).ok())
            .flatten()
    }
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// `http://<Host>` of the request, for nextLink / deltaLink / `@odata.context`.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Query parameters with case-insensitive names, decoded.
fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// The mailbox a calendar call may read: 404 unknown user, 403 outside the access policy.
pub fn calendar_user<'a>(state: &'a SimState, id_or_upn: &str) -> Result<&'a User, GraphError> {
    let user = state
        .user(id_or_upn)
        .ok_or_else(|| GraphError::invalid_user(id_or_upn))?;
    if !user.seed.allowed {
        return Err(GraphError::access_denied());
    }
    Ok(user)
}

/// The round a request asks for: `(user id, window, ids, offset, through)`.
type Round = (String, Window, Arc<[String]>, usize, u64);

fn start_round(
    state: &SimState,
    user: &User,
    params: &[(String, String)],
) -> Result<Round, GraphError> {
    let token = |names: &[&str]| param(params, names).map(str::to_owned);
    let lookup = |token: &str| match state.sync_tokens.get(token) {
        Some(found) => Ok(found.clone()),
        None => Err(GraphError::sync_state_not_found()),
    };
    let mailbox = &user.mailbox;
    let found = match (
        token(&["$skiptoken", "skiptoken"]),
        token(&["$deltatoken", "deltatoken"]),
    ) {
        (Some(skip), _) => Some(lookup(&skip)?),
        (None, Some(delta)) => Some(lookup(&delta)?),
        (None, None) => None,
    };
    match found {
        Some(SyncToken::Skip {
            user_id,
            window,
            ids,
            offset,
            through,
        }) => {
            same_user(&user_id, user)?;
            Ok((user_id, window, ids, offset, through))
        }
        Some(SyncToken::Delta {
            user_id,
            window,
            since,
        }) => {
            same_user(&user_id, user)?;
            let mut changed: Vec<&crate::events::Event> = mailbox
                .events
                .iter()
                .filter(|e| e.seq > since && e.event_type != crate::events::EventType::SeriesMaster)
                .collect();
            changed.sort_by_key(|e| e.seq);
            let ids = changed.iter().map(|e| e.id.clone()).collect();
            Ok((user_id, window, ids, 0, mailbox.seq))
        }
        None => {
            let window = first_window(params)?;
            let mut visible: Vec<&crate::events::Event> = mailbox
                .events
                .iter()
                .filter(|e| e.in_view(window.start, window.end))
                .collect();
            visible.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
            let ids = visible.iter().map(|e| e.id.clone()).collect();
            Ok((user.seed.id.clone(), window, ids, 0, mailbox.seq))
        }
    }
}

fn same_user(token_user: &str, user: &User) -> Result<(), GraphError> {
    if token_user.eq_ignore_ascii_case(&user.seed.id) {
        Ok(())
    } else {
        Err(GraphError::sync_state_not_found())
    }
}

fn first_window(params: &[(String, String)]) -> Result<Window, GraphError> {
    let missing = || {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let start = param(params, &["startdatetime"]).ok_or_else(missing)?;
    let end = param(params, &["enddatetime"]).ok_or_else(missing)?;
    let invalid = |name: &str, value: &str| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            format!("The value '{value}' of parameter '{name}' is invalid."),
        )
    };
    let start_at = parse_time(start).ok_or_else(|| invalid("StartDateTime", start))?;
    let end_at = parse_time(end).ok_or_else(|| invalid("EndDateTime", end))?;
    if end_at <= start_at {
        return Err(invalid("EndDateTime", end));
    }
    Ok(Window {
        start: start_at,
        end: end_at,
    })
}

fn render_entry(mailbox: &Mailbox, id: &str, window: Window, zone: &Zone) -> Value {
    match mailbox.events.iter().find(|e| e.id == id) {
        Some(event) if event.in_view(window.start, window.end) => event.render(zone),
        _ => removed(id),
    }
}

/// `GET /v1.0/users/{id}/calendarView/delta`.
pub async fn delta(
    State(sim): State<Arc<Sim>>,
    Path(user): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let preferences = Preferences::from_headers(&headers);
    let zone = preferences.zone();
    let base = base_url(&headers);
    let params = query_params(query.as_deref());
    let mut state = sim.lock();
    let page_size = preferences
        .max_page_size
        .unwrap_or(state.seed.default_page_size);
    let found = calendar_user(&state, &user)?;
    let (user_id, window, ids, offset, through) = start_round(&state, found, &params)?;
    let end = ids.len().min(offset + page_size);
    let value: Vec<Value> = ids[offset..end]
        .iter()
        .map(|id| render_entry(&found.mailbox, id, window, &zone))
        .collect();
    let (link_name, token_name, token) = if end < ids.len() {
        let token = SyncToken::Skip {
            user_id: user_id.clone(),
            window,
            ids,
            offset: end,
            through,
        };
        ("@odata.nextLink", "$skiptoken", token)
    } else {
        let token = SyncToken::Delta {
            user_id: user_id.clone(),
            window,
            since: through,
        };
        ("@odata.deltaLink", "$deltatoken", token)
    };
    let opaque = random_token(2);
    state.sync_tokens.insert(opaque.clone(), token);
    drop(state);
    let body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#Collection(event)"),
        link_name: format!("{base}/v1.0/users/{user_id}/calendarView/delta?{token_name}={opaque}"),
        "value": value,
    });
    let mut response = graph_json(StatusCode::OK, &body);
    if let Some(applied) = preferences.applied(true) {
        response.headers_mut().insert("preference-applied", applied);
    }
    Ok(response)
}

/// `GET /v1.0/users/{id}/events/{event-id}`: a live event (series masters included), else 404.
pub async fn get_event(
    State(sim): State<Arc<Sim>>,
    Path((user, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let preferences = Preferences::from_headers(&headers);
    let base = base_url(&headers);
    let state = sim.lock();
    let found = calendar_user(&state, &user)?;
    let event = found.mailbox.get(&event_id).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    })?;
    let mut body = event.render(&preferences.zone());
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "@odata.context".to_owned(),
            Value::String(format!(
                "{base}/v1.0/$metadata#users('{}')/events/$entity",
                found.seed.id
            )),
        );
    }
    let mut response = graph_json(StatusCode::OK, &body);
    if let Some(applied) = preferences.applied(false) {
        response.headers_mut().insert("preference-applied", applied);
    }
    Ok(response)
}

/// Control: forget every outstanding delta and skip token of a user (the next call gets 410).
pub fn expire_tokens(state: &mut SimState, user_id: &str) -> usize {
    let before = state.sync_tokens.len();
    state.sync_tokens.retain(|_, token| {
        let owner = match token {
            SyncToken::Skip { user_id, .. } | SyncToken::Delta { user_id, .. } => user_id,
        };
        !owner.eq_ignore_ascii_case(user_id)
    });
    before - state.sync_tokens.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "prefer",
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        headers
    }

    #[test]
    fn prefer_headers_combine_and_split_outside_quotes() {
        let one = Preferences::from_headers(&headers(&[
            "odata.maxpagesize=5, outlook.timezone=\"W. Europe Standard Time\"",
        ]));
        let two = Preferences::from_headers(&headers(&[
            "odata.maxpagesize=5",
            "outlook.timezone=\"W. Europe Standard Time\"",
        ]));
        for preferences in [one, two] {
            assert_eq!(preferences.max_page_size, Some(5));
            assert_eq!(preferences.zone().tz, chrono_tz::Europe::Berlin);
            assert_eq!(preferences.zone().name, "W. Europe Standard Time");
        }
    }

    #[test]
    fn an_unknown_zone_renders_utc_and_is_not_reported_as_applied() {
        let preferences =
            Preferences::from_headers(&headers(&["outlook.timezone=\"Mars/Olympus\""]));
        assert_eq!(preferences.zone().name, "UTC");
        assert!(preferences.applied(true).is_none());
        let iana = Preferences::from_headers(&headers(&["outlook.timezone=\"America/New_York\""]));
        assert_eq!(iana.zone().tz, chrono_tz::America::New_York);
    }
}
