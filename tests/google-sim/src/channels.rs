//! Push channels (reference §6): `POST /calendar/v3/calendars/{calendarId}/events/watch` and
//! `POST /calendar/v3/channels/stop`. A channel past its expiration (sim clock) or stopped gets
//! no more notifications.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Sim;
use crate::auth::{Caller, EVENT_SCOPES};
use crate::delivery;
use crate::error::{GoogleError, google_json};
use crate::list::calendar_of;

/// `params.ttl` when none is given: 7 days (events.watch reference).
pub const DEFAULT_TTL_SECONDS: i64 = 604_800;

#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    pub id: String,
    pub calendar: String,
    #[serde(rename = "resourceId")]
    pub resource_id: String,
    #[serde(rename = "resourceUri")]
    pub resource_uri: String,
    pub token: Option<String>,
    pub address: String,
    #[serde(skip)]
    pub expiration: DateTime<Utc>,
    pub stopped: bool,
    /// The last `X-Goog-Message-Number` handed out.
    #[serde(skip)]
    pub message_number: u64,
    /// `eventTypes` given to watch: only changes of these types notify (empty: all).
    #[serde(rename = "eventTypes")]
    pub event_types: Vec<String>,
}

impl Channel {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.stopped && self.expiration > now
    }

    /// The resource as `GET /sim/channels` and the watch response show it.
    pub fn render(&self, now: DateTime<Utc>) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        body["expiration"] = json!(self.expiration.timestamp_millis().to_string());
        body["expired"] = json!(self.expiration <= now);
        body
    }
}

fn required(field: &str) -> GoogleError {
    GoogleError::new(
        StatusCode::BAD_REQUEST,
        "required",
        format!("Required: {field}"),
    )
}

fn invalid(field: &str, message: impl Into<String>) -> GoogleError {
    GoogleError::new(StatusCode::BAD_REQUEST, "invalid", message.into()).at_parameter(field)
}

/// An int64 as Google takes it: a JSON number or a string of digits.
fn int64(body: &Map<String, Value>, field: &str) -> Result<Option<i64>, GoogleError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(field, format!("Invalid value for {field}."))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid(field, format!("Invalid value for {field}: {s}"))),
        Some(_) => Err(invalid(field, format!("Invalid value for {field}."))),
    }
}

/// https anywhere; http only to a loopback host (the real service requires https).
fn check_address(address: &str) -> Result<(), GoogleError> {
    let url = url::Url::parse(address)
        .map_err(|_| invalid("address", format!("Invalid WebHook callback: {address}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(GoogleError::new(
            StatusCode::BAD_REQUEST,
            "push.webhookUrlNotHttps",
            format!("WebHook callback must be HTTPS: {address}"),
        )),
    }
}

/// The validated watch request.
struct WatchRequest {
    id: String,
    address: String,
    token: Option<String>,
    expiration: Option<i64>,
    ttl: i64,
}

fn parse_watch(body: &Bytes) -> Result<WatchRequest, GoogleError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| GoogleError::new(StatusCode::BAD_REQUEST, "parseError", "Parse Error"))?;
    let Value::Object(body) = value else {
        return Err(GoogleError::new(
            StatusCode::BAD_REQUEST,
            "parseError",
            "Parse Error",
        ));
    };
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    let id = text("id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| required("id"))?;
    let id_chars = |c: char| c.is_ascii_alphanumeric() || "-_+/=".contains(c);
    if id.len() > 64 || !id.chars().all(id_chars) {
        return Err(invalid(
            "id",
            "Channel id must be at most 64 characters of [A-Za-z0-9-_+/=].",
        ));
    }
    match text("type").as_deref() {
        Some("web_hook" | "webhook") => {}
        Some(other) => return Err(invalid("type", format!("Invalid channel type: {other}"))),
        None => return Err(required("type")),
    }
    let address = text("address").ok_or_else(|| required("address"))?;
    check_address(&address)?;
    let token = text("token");
    if token.as_ref().is_some_and(|t| t.len() > 256) {
        return Err(invalid(
            "token",
            "Channel token must be at most 256 characters.",
        ));
    }
    let params = body
        .get("params")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let ttl = int64(&params, "ttl")?.unwrap_or(DEFAULT_TTL_SECONDS);
    if ttl < 1 {
        return Err(invalid(
            "ttl",
            "params.ttl must be a positive number of seconds.",
        ));
    }
    Ok(WatchRequest {
        id,
        address,
        token,
        expiration: int64(&body, "expiration")?,
        ttl,
    })
}

/// `POST /calendar/v3/calendars/{calendarId}/events/watch`.
pub async fn watch(
    State(sim): State<Arc<Sim>>,
    Path(calendar_id): Path<String>,
    RawQuery(raw): RawQuery,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, GoogleError> {
    caller.require(&EVENT_SCOPES)?;
    let request = parse_watch(&body)?;
    let event_types: Vec<String> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "eventTypes")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut state = sim.lock();
    let email = calendar_of(&state, &caller, &calendar_id)?;
    let now = state.now();
    if state
        .channels
        .iter()
        .any(|c| c.id == request.id && c.is_live(now))
    {
        return Err(GoogleError::new(
            StatusCode::BAD_REQUEST,
            "channelIdNotUnique",
            format!("Channel id {} not unique", request.id),
        ));
    }
    let mut expiration = (now + Duration::seconds(request.ttl))
        .min(now + Duration::seconds(state.seed.max_channel_ttl_seconds));
    if let Some(ms) = request.expiration {
        let asked = DateTime::from_timestamp_millis(ms)
            .filter(|at| *at > now)
            .ok_or_else(|| invalid("expiration", "Channel expiration must be in the future."))?;
        expiration = expiration.min(asked);
    }
    let resource_id = state
        .calendar(&email)
        .map(|c| c.resource_id.clone())
        .ok_or_else(GoogleError::not_found)?;
    let channel = Channel {
        id: request.id,
        calendar: email,
        resource_id,
        resource_uri: format!(
            "https://www.googleapis.com/calendar/v3/calendars/{calendar_id}/events?alt=json"
        ),
        token: request.token,
        address: request.address,
        expiration,
        stopped: false,
        message_number: 0,
        event_types,
    };
    let mut answer = json!({
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": channel.resource_uri,
        "expiration": expiration.timestamp_millis().to_string(),
    });
    if let Some(token) = &channel.token {
        answer["token"] = json!(token);
    }
    state.channels.push(channel);
    let index = state.channels.len() - 1;
    let job = delivery::job(&mut state, index, delivery::SYNC);
    drop(state);
    // Spawned: the sync message may arrive before this response, as with Google.
    delivery::schedule(&sim, vec![job]);
    Ok(google_json(StatusCode::OK, &answer))
}

/// `POST /calendar/v3/channels/stop` with `{"id","resourceId"}`: 204, or 404 `notFound`.
pub async fn stop(
    State(sim): State<Arc<Sim>>,
    Extension(_caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, GoogleError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|_| GoogleError::new(StatusCode::BAD_REQUEST, "parseError", "Parse Error"))?;
    let text = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or_default();
    let (id, resource_id) = (text("id"), text("resourceId"));
    if id.is_empty() {
        return Err(required("id"));
    }
    let mut state = sim.lock();
    let now = state.now();
    let channel = state
        .channels
        .iter_mut()
        .find(|c| c.id == id && c.resource_id == resource_id && c.is_live(now))
        .ok_or_else(|| {
            GoogleError::new(
                StatusCode::NOT_FOUND,
                "notFound",
                format!("Channel '{id}' not found for project"),
            )
        })?;
    channel.stopped = true;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_https_except_on_loopback() {
        assert!(check_address("https://fn.example/google/notify").is_ok());
        assert!(check_address("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_address("http://localhost/hook").is_ok());
        assert!(check_address("http://[::1]:9/hook").is_ok());
        let refused = check_address("http://fn.example/hook").expect_err("refused");
        assert_eq!(refused.reason, "push.webhookUrlNotHttps");
        assert!(check_address("not a url").is_err());
    }

    #[test]
    fn watch_bodies_take_int64_as_numbers_or_strings() {
        let body = Bytes::from_static(
            br#"{"id":"a-b_c","type":"web_hook","address":"https://x.example/h","expiration":"1774519200000","params":{"ttl":"60"}}"#,
        );
        let request = parse_watch(&body).expect("valid");
        assert_eq!(
            (request.expiration, request.ttl),
            (Some(1_774_519_200_000), 60)
        );
        let too_long = format!(
            r#"{{"id":"{}","type":"web_hook","address":"https://x.example"}}"#,
            "a".repeat(65)
        );
        assert_eq!(
            parse_watch(&Bytes::from(too_long)).err().map(|e| e.reason),
            Some("invalid".to_owned())
        );
        let bad_type =
            Bytes::from_static(br#"{"id":"x","type":"email","address":"https://x.example"}"#);
        assert!(parse_watch(&bad_type).is_err());
    }
}
