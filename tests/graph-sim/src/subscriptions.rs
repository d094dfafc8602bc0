//! `/v1.0/subscriptions` (reference §2.1–2.3): create with validation handshake, list, get,
//! renew (PATCH), delete, reauthorize. A subscription past its expiration (sim clock) is gone.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use crate::Sim;
use crate::auth::Caller;
use crate::calendar::base_url;
use crate::delivery;
use crate::error::{GraphError, graph_json};
use crate::events::ChangeType;
use crate::state::{SimState, derived_uuid, graph_time, parse_time};

/// The shortest lifetime Graph grants; shorter requests are bumped to it.
const MIN_MINUTES: i64 = 45;
const TLS_VERSIONS: [&str; 4] = ["v1_0", "v1_1", "v1_2", "v1_3"];

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    /// As the client wrote it.
    pub resource: String,
    /// The object id of the mailbox the resource names.
    pub user_id: String,
    pub application_id: String,
    pub change_type: String,
    pub client_state: Option<String>,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub expiration: DateTime<Utc>,
    pub creator_id: String,
    pub latest_supported_tls_version: String,
    pub reauthorized_at: Option<DateTime<Utc>>,
}

impl Subscription {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expiration > now
    }

    pub fn wants(&self, change: ChangeType) -> bool {
        self.change_type
            .split(',')
            .any(|c| c.trim() == change.as_str())
    }

    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": graph_time(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": false,
            "latestSupportedTlsVersion": self.latest_supported_tls_version,
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
        })
    }
}

fn with_context(mut body: Value, context: String) -> Value {
    if let Some(object) = body.as_object_mut() {
        let mut ordered = Map::new();
        ordered.insert("@odata.context".to_owned(), Value::String(context));
        ordered.append(object);
        return Value::Object(ordered);
    }
    body
}

fn parse_object(body: &Bytes) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

fn required<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, GraphError> {
    match body.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(Value::Null) | None => Err(GraphError::invalid_request(format!(
            "The '{field}' property is required."
        ))),
        Some(_) => Err(GraphError::invalid_request(format!(
            "Invalid '{field}': must be a non-empty string."
        ))),
    }
}

fn optional<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, GraphError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required(body, field).map(Some),
    }
}

fn check_url(state: &SimState, field: &str, text: &str) -> Result<(), GraphError> {
    let parsed = url::Url::parse(text).map_err(|_| {
        GraphError::invalid_request(format!(
            "Invalid '{field}': '{text}' is not an absolute URL."
        ))
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if state.seed.allow_http_notification_urls => Ok(()),
        _ => Err(GraphError::invalid_request(format!(
            "Invalid '{field}': the notification endpoint must use https."
        ))),
    }
}

fn check_change_type(text: &str) -> Result<String, GraphError> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let known = ["created", "updated", "deleted"];
    if let Some(bad) = parts.iter().find(|p| !known.contains(p)) {
        return Err(GraphError::invalid_request(format!(
            "Invalid 'changeType': '{bad}'. Allowed values: created, updated, deleted."
        )));
    }
    Ok(parts.join(","))
}

/// `users/{id}/events` or `/users/{id}/events`; returns the mailbox's object id.
fn resource_user(state: &SimState, resource: &str) -> Result<String, GraphError> {
    let invalid = || {
        GraphError::invalid_request(format!(
            "Invalid 'resource': '{resource}'. Supported: users/{{id}}/events."
        ))
    };
    let parts: Vec<&str> = resource.trim_start_matches('/').split('/').collect();
    let [users, user, events] = parts.as_slice() else {
        return Err(invalid());
    };
    if !users.eq_ignore_ascii_case("users")
        || !events.eq_ignore_ascii_case("events")
        || user.is_empty()
    {
        return Err(invalid());
    }
    let found = state.user(user).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "ExtensionError",
            format!("Operation: Create; Exception: [Status Code: NotFound; Reason: The user '{user}' was not found.]"),
        )
    })?;
    if !found.seed.allowed {
        return Err(GraphError::access_denied());
    }
    Ok(found.seed.id.clone())
}

/// The granted expiration: 400 in the past or beyond the cap, at least now + 45 min.
fn expiration(state: &SimState, body: &Map<String, Value>) -> Result<DateTime<Utc>, GraphError> {
    let text = required(body, "expirationDateTime")?;
    let requested = parse_time(text).ok_or_else(|| {
        GraphError::invalid_request(format!(
            "Invalid 'expirationDateTime': '{text}' is not a date-time."
        ))
    })?;
    let now = state.now();
    let cap = state.seed.max_subscription_minutes;
    if requested <= now {
        return Err(GraphError::invalid_request(
            "Subscription expiration can only be in the future.",
        ));
    }
    if requested > now + Duration::minutes(cap) {
        return Err(GraphError::invalid_request(format!(
            "Subscription expiration can only be {cap} minutes in the future."
        )));
    }
    Ok(requested.max(now + Duration::minutes(MIN_MINUTES)))
}

/// Everything but the handshake and the per-mailbox limit.
fn validate_new(
    state: &SimState,
    body: &Map<String, Value>,
    caller: &Caller,
) -> Result<Subscription, GraphError> {
    let change_type = check_change_type(required(body, "changeType")?)?;
    let notification_url = required(body, "notificationUrl")?;
    check_url(state, "notificationUrl", notification_url)?;
    let lifecycle = optional(body, "lifecycleNotificationUrl")?;
    if let Some(url) = lifecycle {
        check_url(state, "lifecycleNotificationUrl", url)?;
    }
    let resource = required(body, "resource")?;
    let client_state = optional(body, "clientState")?;
    if client_state.is_some_and(|c| c.chars().count() > 128) {
        return Err(GraphError::invalid_request(
            "Invalid 'clientState': the maximum length is 128 characters.",
        ));
    }
    let tls = optional(body, "latestSupportedTlsVersion")?.unwrap_or("v1_2");
    if !TLS_VERSIONS.contains(&tls) {
        return Err(GraphError::invalid_request(format!(
            "Invalid 'latestSupportedTlsVersion': '{tls}'. Allowed values: v1_0, v1_1, v1_2, v1_3."
        )));
    }
    if body.get("includeResourceData") == Some(&Value::Bool(true)) {
        return Err(GraphError::invalid_request(
            "Invalid 'includeResourceData': rich notifications need 'encryptionCertificate', which the simulator does not support.",
        ));
    }
    let expiration = expiration(state, body)?;
    let user_id = resource_user(state, resource)?;
    Ok(Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        resource: resource.to_owned(),
        user_id,
        application_id: caller.client_id.clone(),
        change_type,
        client_state: client_state.map(str::to_owned),
        notification_url: notification_url.to_owned(),
        lifecycle_notification_url: lifecycle.map(str::to_owned),
        expiration,
        creator_id: derived_uuid(&format!("service-principal:{}", caller.client_id)),
        latest_supported_tls_version: tls.to_owned(),
        reauthorized_at: None,
    })
}

fn check_mailbox_limit(state: &SimState, user_id: &str) -> Result<(), GraphError> {
    let now = state.now();
    let active = state
        .subscriptions
        .iter()
        .filter(|s| s.user_id == user_id && s.is_active(now))
        .count();
    if active >= state.seed.max_subscriptions_per_mailbox {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: The number of subscriptions on this mailbox has exceeded the limit.]",
        ));
    }
    Ok(())
}

/// `POST /v1.0/subscriptions`.
pub async fn create(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let body = parse_object(&body)?;
    let subscription = {
        let state = sim.lock();
        let subscription = validate_new(&state, &body, &caller)?;
        check_mailbox_limit(&state, &subscription.user_id)?;
        subscription
    };
    delivery::handshake(&sim, &subscription.id, &subscription.notification_url).await?;
    if let Some(lifecycle) = &subscription.lifecycle_notification_url
        && lifecycle != &subscription.notification_url
    {
        delivery::handshake(&sim, &subscription.id, lifecycle).await?;
    }
    let mut state = sim.lock();
    check_mailbox_limit(&state, &subscription.user_id)?;
    let rendered = subscription.render();
    state.subscriptions.push(subscription);
    let context = format!(
        "{}/v1.0/$metadata#subscriptions/$entity",
        base_url(&headers)
    );
    Ok(graph_json(
        StatusCode::CREATED,
        &with_context(rendered, context),
    ))
}

/// The caller's active subscription with this id.
fn find<'a>(
    state: &'a mut SimState,
    caller: &Caller,
    id: &str,
) -> Result<&'a mut Subscription, GraphError> {
    let now = state.now();
    state
        .subscriptions
        .iter_mut()
        .find(|s| {
            s.id.eq_ignore_ascii_case(id)
                && s.application_id == caller.client_id
                && s.is_active(now)
        })
        .ok_or_else(GraphError::subscription_not_found)
}

/// `GET /v1.0/subscriptions`: the caller's active subscriptions.
pub async fn list(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let state = sim.lock();
    let now = state.now();
    let value: Vec<Value> = state
        .subscriptions
        .iter()
        .filter(|s| s.application_id == caller.client_id && s.is_active(now))
        .map(Subscription::render)
        .collect();
    let context = format!("{}/v1.0/$metadata#subscriptions", base_url(&headers));
    graph_json(
        StatusCode::OK,
        &json!({"@odata.context": context, "value": value}),
    )
}

/// `GET /v1.0/subscriptions/{id}`.
pub async fn get(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let mut state = sim.lock();
    let rendered = find(&mut state, &caller, &id)?.render();
    let context = format!(
        "{}/v1.0/$metadata#subscriptions/$entity",
        base_url(&headers)
    );
    Ok(graph_json(StatusCode::OK, &with_context(rendered, context)))
}

/// `PATCH /v1.0/subscriptions/{id}`: renew (and reauthorize). The URLs cannot change.
pub async fn patch(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let body = parse_object(&body)?;
    for field in ["notificationUrl", "lifecycleNotificationUrl"] {
        if body.contains_key(field) {
            return Err(GraphError::invalid_request(format!(
                "Invalid '{field}': it can only be set when the subscription is created."
            )));
        }
    }
    let mut state = sim.lock();
    find(&mut state, &caller, &id)?;
    let expiration = expiration(&state, &body)?;
    let now = state.now();
    let subscription = find(&mut state, &caller, &id)?;
    subscription.expiration = expiration;
    subscription.reauthorized_at = Some(now);
    let rendered = subscription.render();
    let context = format!(
        "{}/v1.0/$metadata#subscriptions/$entity",
        base_url(&headers)
    );
    Ok(graph_json(StatusCode::OK, &with_context(rendered, context)))
}

/// `DELETE /v1.0/subscriptions/{id}`.
pub async fn delete(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let mut state = sim.lock();
    let found = find(&mut state, &caller, &id)?.id.clone();
    state.subscriptions.retain(|s| s.id != found);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1.0/subscriptions/{id}/reauthorize`: 200, no body; the expiration is unchanged.
pub async fn reauthorize(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let mut state = sim.lock();
    let now = state.now();
    find(&mut state, &caller, &id)?.reauthorized_at = Some(now);
    Ok(StatusCode::OK.into_response())
}
