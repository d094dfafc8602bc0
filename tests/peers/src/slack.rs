//! A Slack Web API stand-in for `users.profile.set` and `chat.postMessage`, answering as Slack
//! does: HTTP 200 with `{"ok":false,"error":…}` for bad auth or arguments, HTTP 429 +
//! `Retry-After` when rate-limited.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::{Served, Shared};

/// One accepted `users.profile.set` call.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSet {
    pub user: String,
    pub body: Value,
}

/// One accepted `chat.postMessage` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    pub channel: String,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct SlackState {
    /// Channels a message may be posted in (else `channel_not_found`).
    pub channels: std::collections::BTreeSet<String>,
    /// Messages that passed validation.
    pub posted: Vec<Posted>,
    /// token → Slack user id.
    pub tokens: BTreeMap<String, String>,
    /// Calls that passed validation.
    pub accepted: Vec<ProfileSet>,
    /// Every error answered (`error` codes, or "http_429").
    pub errors: Vec<String>,
    /// The next requests are answered with 429 and this `Retry-After`.
    pub rate_limit: VecDeque<u64>,
}

#[derive(Debug)]
pub struct SlackStub {
    pub served: Served,
    pub state: Arc<Shared<SlackState>>,
}

impl SlackStub {
    pub async fn start(tokens: &[(&str, &str)]) -> std::io::Result<Self> {
        let state = Shared::new(SlackState {
            tokens: tokens
                .iter()
                .map(|(t, u)| ((*t).to_owned(), (*u).to_owned()))
                .collect(),
            ..SlackState::default()
        });
        let router = Router::new()
            .route("/api/users.profile.set", post(profile_set))
            .route("/api/chat.postMessage", post(post_message))
            .with_state(Arc::clone(&state));
        Ok(Self {
            served: Served::start(router).await?,
            state,
        })
    }

    /// The `apiBaseUrl` to configure.
    pub fn api_base(&self) -> String {
        format!("{}api/", self.served.base_url())
    }

    pub fn accepted(&self) -> Vec<ProfileSet> {
        self.state.lock().accepted.clone()
    }

    /// Lets messages be posted in `channel`.
    pub fn add_channel(&self, channel: &str) {
        self.state.update(|s| s.channels.insert(channel.to_owned()));
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.lock().posted.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.state.lock().errors.clone()
    }
}

fn slack_error(state: &Shared<SlackState>, error: &str) -> Response {
    state.update(|s| s.errors.push(error.to_owned()));
    Json(json!({"ok": false, "error": error})).into_response()
}

/// What every method checks first: the rate limit, the token, a JSON body. The token's user
/// and the body, or the answer to give instead.
fn authorised_json(
    state: &Shared<SlackState>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(String, Value), Box<Response>> {
    if let Some(retry_after) = state.update(|s| s.rate_limit.pop_front()) {
        state.update(|s| s.errors.push("http_429".to_owned()));
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
        response
            .headers_mut()
            .insert("retry-after", retry_after.into());
        return Err(Box::new(response));
    }
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(Box::new(slack_error(state, "not_authed")));
    };
    let Some(user) = state.lock().tokens.get(token).cloned() else {
        return Err(Box::new(slack_error(state, "invalid_auth")));
    };
    let json_content = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_content {
        return Err(Box::new(slack_error(state, "invalid_form_data")));
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(slack_error(state, "invalid_json")));
    };
    Ok((user, body))
}

/// `chat.postMessage`: a known channel and a text (Slack's limit: 40,000 characters).
async fn post_message(
    State(state): State<Arc<Shared<SlackState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, body) = match authorised_json(&state, &headers, &body) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    let Some(channel) = body.get("channel").and_then(Value::as_str) else {
        return slack_error(&state, "channel_not_found");
    };
    if !state.lock().channels.contains(channel) {
        return slack_error(&state, "channel_not_found");
    }
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.trim().is_empty() {
        return slack_error(&state, "no_text");
    }
    if text.chars().count() > 40_000 {
        return slack_error(&state, "msg_too_long");
    }
    let posted = Posted {
        channel: channel.to_owned(),
        text: text.to_owned(),
    };
    state.update(|s| s.posted.push(posted));
    Json(json!({"ok": true, "channel": channel, "ts": "1700000000.000100"})).into_response()
}

async fn profile_set(
    State(state): State<Arc<Shared<SlackState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (user, body) = match authorised_json(&state, &headers, &body) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    if let Err(error) = check_profile(&body) {
        return slack_error(&state, error);
    }
    state.update(|s| s.accepted.push(ProfileSet { user, body }));
    Json(json!({"ok": true, "profile": {}})).into_response()
}

/// The body rules of `users.profile.set` that matter here.
fn check_profile(body: &Value) -> Result<(), &'static str> {
    let object = body.as_object().ok_or("invalid_arguments")?;
    if object.keys().any(|k| k != "profile") {
        return Err("invalid_arguments");
    }
    let profile = object
        .get("profile")
        .and_then(Value::as_object)
        .ok_or("invalid_profile")?;
    for key in profile.keys() {
        if !["status_text", "status_emoji", "status_expiration"].contains(&key.as_str()) {
            return Err("invalid_profile");
        }
    }
    let text = profile
        .get("status_text")
        .and_then(Value::as_str)
        .ok_or("invalid_profile")?;
    if text.chars().count() > 100 {
        return Err("too_long");
    }
    let emoji = profile
        .get("status_emoji")
        .and_then(Value::as_str)
        .ok_or("invalid_profile")?;
    let emoji_ok = emoji.is_empty()
        || (emoji.len() > 2
            && emoji.starts_with(':')
            && emoji.ends_with(':')
            && emoji[1..emoji.len() - 1]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_+-".contains(c)));
    if !emoji_ok {
        return Err("profile_set_failed");
    }
    match profile.get("status_expiration") {
        None => Ok(()),
        Some(value) if value.as_i64().is_some_and(|n| n >= 0) => Ok(()),
        Some(_) => Err("invalid_profile"),
    }
}
