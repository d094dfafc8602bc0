//! The Platform API v2 routes the simulator mirrors, and the middleware every call passes:
//! correlation id, injected faults, bearer check, per-token rate limit, rate-limit headers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::error::{ApiError, oauth_error};
use crate::seed::ScheduleSearchMode;
use crate::state::{FaultKind, Presence, RequestRecord, SimState, Token, User, format_time};

/// The real `request.bytes.max`.
pub const MAX_REQUEST_BYTES: usize = 512_000;
const MAX_BULK_IDS: usize = 50;

/// Who is calling, set by the middleware for the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub permissions: Vec<String>,
    pub correlation_id: String,
}

impl Caller {
    fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.permissions.iter().any(|p| p == permission) {
            Ok(())
        } else {
            Err(ApiError::missing_permission(permission))
        }
    }

    fn require_any(&self, permissions: &[&str]) -> Result<(), ApiError> {
        if permissions
            .iter()
            .any(|wanted| self.permissions.iter().any(|p| p == wanted))
        {
            Ok(())
        } else {
            Err(ApiError::missing_any_permission(permissions))
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// `axum::extract::Query` whose rejection (e.g. `pageSize=abc`) is a Genesys `ErrorBody`, not
/// axum's plain-text 400.
#[derive(Debug)]
struct Query<T>(T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!(
                    "The query string is not valid: {}",
                    rejection.body_text()
                ))
            })
    }
}

pub fn routes(sim: Arc<Sim>) -> Router {
    let api = Router::new()
        .route("/api/v2/users", get(list_users))
        .route(
            "/api/v2/groups/{group_id}/members",
            get(crate::groups::members),
        )
        .route("/api/v2/users/search", post(search_users))
        .route("/api/v2/users/{user_id}", get(get_user))
        .route(
            "/api/v2/users/{user_id}/routingstatus",
            get(get_routing_status),
        )
        .route(
            "/api/v2/users/{user_id}/presences/{source_id}",
            get(get_presence).patch(patch_presence),
        )
        .route("/api/v2/users/presences/bulk", put(put_presences_bulk))
        .route(
            "/api/v2/users/presences/{source_id}/bulk",
            get(get_presences_bulk),
        )
        .route("/api/v2/presencedefinitions", get(list_legacy_definitions))
        .route(
            "/api/v2/presencedefinitions/{definition_id}",
            get(get_legacy_definition),
        )
        .route("/api/v2/presence/definitions", get(list_definitions))
        .route(
            "/api/v2/presence/definitions/{definition_id}",
            get(get_definition),
        )
        .route("/api/v2/systempresences", get(list_system_presences))
        .route(
            "/api/v2/workforcemanagement/agents/{agent_id}/managementunit",
            get(get_agent_management_unit),
        )
        .route(
            "/api/v2/workforcemanagement/businessunits",
            get(list_business_units),
        )
        .route(
            "/api/v2/workforcemanagement/businessunits/{bu_id}/agentschedules/search",
            post(search_schedules),
        )
        .route(
            "/api/v2/workforcemanagement/businessunits/{bu_id}/activitycodes",
            get(list_activity_codes),
        )
        .route_layer(middleware::from_fn_with_state(sim.clone(), authenticate));
    Router::new()
        .route("/oauth/token", post(issue_token))
        .merge(api)
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(sim.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(4 * MAX_REQUEST_BYTES))
        .with_state(sim)
}

/// Outermost layer: correlation id, injected faults and the request log.
async fn observe(State(sim): State<Arc<Sim>>, mut request: Request, next: Next) -> Response {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    request
        .extensions_mut()
        .insert(CorrelationId(correlation_id.clone()));
    let fault = sim.lock().take_fault(&method, &path);
    let mut response = match fault {
        Some(FaultKind::Status {
            status,
            retry_after_seconds,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let retry_after =
                retry_after_seconds.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
            ApiError::for_status(status, retry_after).into_response()
        }
        Some(FaultKind::Timeout { hold_ms }) => {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            ApiError::for_status(StatusCode::GATEWAY_TIMEOUT, None).into_response()
        }
        Some(FaultKind::Latency { ms }) => {
            // A server finishes a request it received even when the client stopped waiting:
            // run it detached, so a write the client timed out on still lands, as on Genesys.
            let detached = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                next.run(request).await
            });
            match detached.await {
                Ok(response) => response,
                Err(_) => {
                    ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR, None).into_response()
                }
            }
        }
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        headers.insert("inin-correlation-id", value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    let client_id = response
        .extensions()
        .get::<CallerClientId>()
        .map(|c| c.0.clone());
    let mut state = sim.lock();
    let at = state.now();
    state.record_request(RequestRecord {
        seq: 0,
        at,
        method,
        path,
        query,
        client_id,
        status: response.status().as_u16(),
        correlation_id,
    });
    response
}

#[derive(Debug, Clone)]
struct CorrelationId(String);

#[derive(Debug, Clone)]
struct CallerClientId(String);

/// API layer: bearer check (401), per-token rate limit (429) and the `inin-ratelimit-*` headers.
async fn authenticate(State(sim): State<Arc<Sim>>, mut request: Request, next: Next) -> Response {
    let correlation_id = request
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let Some(token) = bearer else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        )
        .into_response();
    };
    let admitted = {
        let mut state = sim.lock();
        admit(&mut state, &token)
    };
    let (caller, limit) = match admitted {
        Ok((client_id, permissions, limit)) => (
            Caller {
                client_id,
                permissions,
                correlation_id,
            },
            limit,
        ),
        Err(Rejected { error, limit }) => {
            let mut response = error.into_response();
            if let Some(limit) = limit {
                limit.write_headers(response.headers_mut());
            }
            return response;
        }
    };
    let client_id = caller.client_id.clone();
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    limit.write_headers(response.headers_mut());
    response.extensions_mut().insert(CallerClientId(client_id));
    response
}

/// Why `admit` turned a call away; a 429 still reports the window in `inin-ratelimit-*`.
#[derive(Debug)]
struct Rejected {
    error: ApiError,
    limit: Option<LimitState>,
}

impl From<ApiError> for Rejected {
    fn from(error: ApiError) -> Self {
        Self { error, limit: None }
    }
}

#[derive(Debug, Clone, Copy)]
struct LimitState {
    allowed: u32,
    count: u32,
    reset_seconds: u64,
}

impl LimitState {
    fn write_headers(self, headers: &mut HeaderMap) {
        headers.insert("inin-ratelimit-allowed", HeaderValue::from(self.allowed));
        headers.insert("inin-ratelimit-count", HeaderValue::from(self.count));
        headers.insert(
            "inin-ratelimit-reset",
            HeaderValue::from(self.reset_seconds),
        );
    }
}

fn admit(state: &mut SimState, token: &str) -> Result<(String, Vec<String>, LimitState), Rejected> {
    let now = state.now();
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
    };
    let Token {
        client_id,
        expires_at,
    } = state.tokens.get(token).cloned().ok_or_else(bad)?;
    if expires_at <= now {
        return Err(bad().into());
    }
    let permissions = state
        .clients
        .get(&client_id)
        .map(|c| c.seed.permissions.clone())
        .ok_or_else(bad)?;
    let allowed = state.rate_limit.requests_per_window;
    let window = chrono::Duration::seconds(i64::from(state.rate_limit.window_seconds));
    let entry = state
        .rate_windows
        .entry(token.to_owned())
        .or_insert(crate::state::RateWindow {
            started: now,
            count: 0,
        });
    if now >= entry.started + window {
        *entry = crate::state::RateWindow {
            started: now,
            count: 0,
        };
    }
    let reset = (entry.started + window - now).num_milliseconds().max(0);
    // Whole seconds, rounded up, never 0: `Retry-After` is an integer.
    let reset_seconds = u64::try_from((reset + 999) / 1000).unwrap_or(1).max(1);
    if entry.count >= allowed {
        return Err(Rejected {
            error: ApiError::rate_limited(allowed, state.rate_limit.window_seconds, reset_seconds),
            limit: Some(LimitState {
                allowed,
                count: entry.count,
                reset_seconds,
            }),
        });
    }
    entry.count += 1;
    Ok((
        client_id,
        permissions,
        LimitState {
            allowed,
            count: entry.count,
            reset_seconds,
        },
    ))
}

// ---------------------------------------------------------------- OAuth

async fn issue_token(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((client_id, secret)) = basic_credentials(&headers) else {
        return oauth_error("invalid_client", "client not found");
    };
    let form: HashMap<String, String> = url_form(&body);
    let mut state = sim.lock();
    let Some(client) = state.clients.get(&client_id).cloned() else {
        return oauth_error("invalid_client", "client not found");
    };
    if client.seed.client_secret != secret {
        return oauth_error("invalid_client", "authentication failed");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) | None => {
            return oauth_error(
                "unsupported_grant_type",
                "grant type is missing or not supported",
            );
        }
    }
    if client.seed.grant_type != "client_credentials" {
        return oauth_error(
            "unauthorized_client",
            "client is not authorized to use the client_credential grant type",
        );
    }
    let lifetime = client.seed.token_lifetime_seconds;
    let token = format!("sim-{}", uuid::Uuid::new_v4().simple());
    let expires_at = state.now()
        + chrono::Duration::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX / 2_000));
    state.tokens.insert(
        token.clone(),
        Token {
            client_id,
            expires_at,
        },
    );
    // The real API reports the lifetime minus about a second.
    let expires_in = lifetime.saturating_sub(1).max(1);
    let mut response = axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
    }))
    .into_response();
    response
        .extensions_mut()
        .insert(CallerClientId(client.seed.client_id));
    response
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

// ---------------------------------------------------------------- presence

fn check_source(source_id: &str) -> Result<(), ApiError> {
    if source_id.eq_ignore_ascii_case("purecloud") {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn presence_json(state: &SimState, user_id: &str, presence: &Presence) -> Value {
    let system = state
        .definition(&presence.definition_id)
        .map(|d| d.system.rest)
        .unwrap_or("Offline");
    json!({
        "source": "PURECLOUD",
        "primary": true,
        "presenceDefinition": {
            "id": presence.definition_id,
            "systemPresence": system,
            "selfUri": format!("/api/v2/presencedefinitions/{}", presence.definition_id),
        },
        "message": presence.message,
        "modifiedDate": format_time(presence.modified_date),
        "selfUri": format!("/api/v2/users/{user_id}/presences"),
    })
}

async fn get_presence(
    State(sim): State<Arc<Sim>>,
    Path((user_id, source_id)): Path<(String, String)>,
) -> ApiResult {
    check_source(&source_id)?;
    let state = sim.lock();
    let user = state.users.get(&user_id).ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(presence_json(&state, &user_id, &user.presence)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PresencePatch {
    #[serde(default)]
    primary: Option<bool>,
    #[serde(default)]
    presence_definition: Option<DefinitionRef>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DefinitionRef {
    #[serde(default)]
    id: Option<String>,
}

/// Content type, size and JSON checks shared by the write endpoints.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported.media.type",
            format!("Unsupported media type [{content_type}]; use application/json."),
        ));
    }
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.entity.too.large",
            format!(
                "The request body of {} bytes exceeds the maximum of {MAX_REQUEST_BYTES} bytes.",
                body.len()
            ),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("The request body is required."));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body could not be parsed: {e}")))
}

/// Validates a presence change; returns the definition id to set, if any.
fn validate_presence_change(
    state: &SimState,
    caller: &Caller,
    patch: &PresencePatch,
    field_prefix: &str,
) -> Result<Option<String>, ApiError> {
    if patch.primary.is_none() && patch.presence_definition.is_none() && patch.message.is_none() {
        return Err(ApiError::bad_request(format!(
            "{field_prefix}: at least one of primary, presenceDefinition or message is required."
        )));
    }
    let Some(definition) = &patch.presence_definition else {
        return Ok(None);
    };
    let id = definition
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("{field_prefix}presenceDefinition.id is required."))
        })?;
    let found = state
        .definition(id)
        .filter(|d| !d.deactivated)
        .ok_or_else(|| {
            ApiError::invalid_value(&format!("{field_prefix}presenceDefinition.id"), id)
        })?;
    if found.system.rest == "On Queue" {
        caller.require("routing:agent:onqueue")?;
    }
    Ok(Some(id.to_owned()))
}

async fn patch_presence(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((user_id, source_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    check_source(&source_id)?;
    // Client-credentials tokens have no user, so every PATCH is "another user's" presence.
    caller.require("presence:userPresence:edit")?;
    let patch: PresencePatch = json_body(&headers, &body)?;
    let mut state = sim.lock();
    if !state.users.contains_key(&user_id) {
        return Err(ApiError::not_found());
    }
    let definition_id = validate_presence_change(&state, &caller, &patch, "")?;
    let presence = state
        .set_presence(
            &caller.client_id,
            "PATCH presence",
            &user_id,
            definition_id.as_deref(),
            patch.message.as_deref(),
            &caller.correlation_id,
        )
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(presence_json(&state, &user_id, &presence)).into_response())
}

#[derive(Debug, Deserialize)]
struct BulkQuery {
    #[serde(default)]
    id: Option<String>,
}

async fn get_presences_bulk(
    State(sim): State<Arc<Sim>>,
    Path(source_id): Path<String>,
    Query(query): Query<BulkQuery>,
) -> ApiResult {
    check_source(&source_id)?;
    let ids: Vec<&str> = query
        .id
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(ApiError::bad_request("The id query parameter is required."));
    }
    if ids.len() > MAX_BULK_IDS {
        return Err(ApiError::bad_request(format!(
            "A maximum of {MAX_BULK_IDS} user ids may be requested; {} were given.",
            ids.len()
        )));
    }
    let state = sim.lock();
    let items: Vec<Value> = ids
        .iter()
        .filter_map(|id| state.users.get(*id))
        .map(|user| {
            // `UcUserPresence` (the bulk GET item) has `userId` and no `primary`.
            let mut item = presence_json(&state, &user.id, &user.presence);
            if let Some(fields) = item.as_object_mut() {
                fields.remove("primary");
                fields.insert("userId".to_owned(), json!(user.id));
            }
            item
        })
        .collect();
    Ok(axum::Json(items).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MutablePresence {
    #[serde(default)]
    id: Option<String>,
    #[serde(flatten)]
    change: PresencePatch,
}

async fn put_presences_bulk(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require("presence:userPresence:edit")?;
    let items: Vec<MutablePresence> = json_body(&headers, &body)?;
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "The request body must list at least one presence.",
        ));
    }
    let mut state = sim.lock();
    // Validate everything before changing anything.
    let mut changes = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("[{index}].");
        let user_id = item.id.clone().filter(|id| !id.is_empty()).ok_or_else(|| {
            ApiError::bad_request(format!("{prefix}id (the user id) is required."))
        })?;
        if !state.users.contains_key(&user_id) {
            return Err(ApiError::invalid_value(&format!("{prefix}id"), &user_id));
        }
        let definition_id = validate_presence_change(&state, &caller, &item.change, &prefix)?;
        changes.push((user_id, definition_id, item.change.message.clone()));
    }
    let mut results = Vec::with_capacity(changes.len());
    for (user_id, definition_id, message) in changes {
        if let Some(presence) = state.set_presence(
            &caller.client_id,
            "PUT presences bulk",
            &user_id,
            definition_id.as_deref(),
            message.as_deref(),
            &caller.correlation_id,
        ) {
            let mut item = presence_json(&state, &user_id, &presence);
            item["id"] = json!(user_id);
            results.push(item);
        }
    }
    Ok(axum::Json(results).into_response())
}

// ---------------------------------------------------------------- definitions

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyDefinitionQuery {
    #[serde(default)]
    page_number: Option<u32>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    deleted: Option<String>,
}

fn legacy_definition_json(definition: &crate::state::Definition) -> Value {
    json!({
        "id": definition.id,
        "name": definition.label,
        "languageLabels": {"en_US": definition.label},
        "systemPresence": definition.system.rest,
        "deactivated": definition.deactivated,
        "primary": definition.primary,
        "selfUri": format!("/api/v2/presencedefinitions/{}", definition.id),
    })
}

async fn list_legacy_definitions(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<LegacyDefinitionQuery>,
) -> ApiResult {
    let page_size = query.page_size.unwrap_or(25);
    let page_number = query.page_number.unwrap_or(1);
    if page_size == 0 || page_size > 100 {
        return Err(ApiError::invalid_value("pageSize", &page_size.to_string()));
    }
    if page_number == 0 {
        return Err(ApiError::invalid_value("pageNumber", "0"));
    }
    let state = sim.lock();
    let deleted = query.deleted.as_deref().unwrap_or("false");
    let matching: Vec<Value> = state
        .definitions
        .iter()
        .filter(|d| match deleted {
            "true" => d.deactivated,
            "all" => true,
            _ => !d.deactivated,
        })
        .map(legacy_definition_json)
        .collect();
    Ok(axum::Json(page_listing(
        matching,
        page_size,
        page_number,
        "/api/v2/presencedefinitions",
    ))
    .into_response())
}

async fn get_legacy_definition(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(definition_id): Path<String>,
) -> ApiResult {
    caller.require("presence:presenceDefinition:view")?;
    let state = sim.lock();
    let definition = state
        .definition(&definition_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(legacy_definition_json(definition)).into_response())
}

fn definition_json(definition: &crate::state::Definition) -> Value {
    json!({
        "id": definition.id,
        "name": definition.label,
        "type": if definition.primary { "System" } else { "User" },
        "languageLabels": {"en_US": definition.label},
        "systemPresence": definition.system.v2,
        "deactivated": definition.deactivated,
        "selfUri": format!("/api/v2/presence/definitions/{}", definition.id),
    })
}

#[derive(Debug, Deserialize)]
struct DefinitionQuery {
    #[serde(default)]
    deactivated: Option<String>,
}

async fn list_definitions(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(query): Query<DefinitionQuery>,
) -> ApiResult {
    caller.require("presence:presenceDefinition:view")?;
    let wanted = match query.deactivated.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::invalid_value("deactivated", other)),
    };
    let state = sim.lock();
    let entities: Vec<Value> = state
        .definitions
        .iter()
        .filter(|d| d.deactivated == wanted)
        .map(definition_json)
        .collect();
    Ok(axum::Json(json!({
        "total": entities.len(),
        "entities": entities,
        "selfUri": "/api/v2/presence/definitions",
    }))
    .into_response())
}

async fn get_definition(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(definition_id): Path<String>,
) -> ApiResult {
    caller.require("presence:presenceDefinition:view")?;
    let state = sim.lock();
    let definition = state
        .definition(&definition_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(definition_json(definition)).into_response())
}

/// `SystemPresence{id, name, selfUri}`. The SDK documents only the shape; the ids are inferred
/// to be the platform's upper-case spelling ("ON_QUEUE", as in notifications) and the names the
/// REST spelling ("On Queue").
async fn list_system_presences() -> Response {
    let items: Vec<Value> = crate::state::SYSTEM_PRESENCES
        .iter()
        .map(|kind| {
            json!({
                "id": kind.event,
                "name": kind.rest,
                "selfUri": format!("/api/v2/systempresences/{}", kind.event),
            })
        })
        .collect();
    axum::Json(items).into_response()
}

// ---------------------------------------------------------------- users and routing

pub(crate) fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "username": user.email,
        "state": "active",
        "version": user.version,
        "acdAutoAnswer": false,
        "selfUri": format!("/api/v2/users/{}", user.id),
    })
}

pub(crate) fn page_listing(
    entities: Vec<Value>,
    page_size: u32,
    page_number: u32,
    base: &str,
) -> Value {
    let total = entities.len();
    let size = page_size as usize;
    let page_count = total.div_ceil(size).max(1);
    let page: Vec<Value> = entities
        .into_iter()
        .skip(size * (page_number as usize - 1))
        .take(size)
        .collect();
    let uri = |n: usize| format!("{base}?pageSize={page_size}&pageNumber={n}");
    let mut listing = json!({
        "entities": page,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(page_number as usize),
        "lastUri": uri(page_count),
    });
    if (page_number as usize) < page_count {
        listing["nextUri"] = json!(uri(page_number as usize + 1));
    }
    if page_number > 1 {
        listing["previousUri"] = json!(uri(page_number as usize - 1));
    }
    listing
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserListQuery {
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    page_number: Option<u32>,
    /// `id=a,b,c`: only these users (SDK `get_users(id=[...])`).
    #[serde(default)]
    id: Option<String>,
    /// `expand=presence,routingStatus` adds those `User` fields.
    #[serde(default)]
    expand: Option<String>,
}

/// `User` with the expansions asked for (`presence`, `routingStatus`).
fn expanded_user_json(state: &SimState, user: &User, expand: Option<&str>) -> Value {
    let mut body = user_json(user);
    for field in expand.unwrap_or_default().split(',').map(str::trim) {
        match field {
            "presence" => body["presence"] = presence_json(state, &user.id, &user.presence),
            "routingStatus" => {
                body["routingStatus"] = json!({
                    "userId": user.id,
                    "status": user.routing.status,
                    "startTime": format_time(user.routing.start_time),
                });
            }
            _ => {}
        }
    }
    body
}

async fn list_users(State(sim): State<Arc<Sim>>, Query(query): Query<UserListQuery>) -> ApiResult {
    let page_size = query.page_size.unwrap_or(25);
    let page_number = query.page_number.unwrap_or(1);
    if page_size == 0 || page_size > 500 {
        return Err(ApiError::invalid_value("pageSize", &page_size.to_string()));
    }
    if page_number == 0 {
        return Err(ApiError::invalid_value("pageNumber", "0"));
    }
    let wanted: Option<Vec<&str>> = query.id.as_deref().map(|ids| {
        ids.split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .collect()
    });
    let state = sim.lock();
    let users: Vec<Value> = state
        .user_order
        .iter()
        .filter(|id| wanted.as_ref().is_none_or(|w| w.contains(&id.as_str())))
        .filter_map(|id| state.users.get(id))
        .map(|user| expanded_user_json(&state, user, query.expand.as_deref()))
        .collect();
    Ok(axum::Json(page_listing(users, page_size, page_number, "/api/v2/users")).into_response())
}

async fn get_user(State(sim): State<Arc<Sim>>, Path(user_id): Path<String>) -> ApiResult {
    let state = sim.lock();
    let user = state.users.get(&user_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "general.resource.not.found",
            format!("User {user_id} not found."),
        )
    })?;
    Ok(axum::Json(user_json(user)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserSearchRequest {
    #[serde(default)]
    query: Vec<UserSearchCriteria>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    page_number: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserSearchCriteria {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

async fn search_users(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let request: UserSearchRequest = json_body(&headers, &body)?;
    if request.query.is_empty() {
        return Err(ApiError::bad_request(
            "query: at least one search criterion is required.",
        ));
    }
    let page_size = request.page_size.unwrap_or(25);
    let page_number = request.page_number.unwrap_or(1);
    if page_size == 0 || page_size > 100 {
        return Err(ApiError::invalid_value("pageSize", &page_size.to_string()));
    }
    if page_number == 0 {
        return Err(ApiError::invalid_value("pageNumber", "0"));
    }
    for (index, criterion) in request.query.iter().enumerate() {
        match criterion.kind.as_deref() {
            Some("EXACT" | "CONTAINS" | "STARTS_WITH") => {}
            Some(other) => {
                return Err(ApiError::invalid_value(
                    &format!("query[{index}].type"),
                    other,
                ));
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "query[{index}].type is required."
                )));
            }
        }
        if criterion.fields.is_empty() {
            return Err(ApiError::bad_request(format!(
                "query[{index}].fields is required."
            )));
        }
        for field in &criterion.fields {
            if !matches!(field.as_str(), "email" | "username" | "name" | "id") {
                return Err(ApiError::invalid_value(
                    &format!("query[{index}].fields"),
                    field,
                ));
            }
        }
    }
    let state = sim.lock();
    let results: Vec<Value> = state
        .user_order
        .iter()
        .filter_map(|id| state.users.get(id))
        .filter(|user| {
            request
                .query
                .iter()
                .all(|criterion| user_matches(user, criterion))
        })
        .map(user_json)
        .collect();
    let total = results.len();
    let size = page_size as usize;
    let page: Vec<Value> = results
        .into_iter()
        .skip(size * (page_number as usize - 1))
        .take(size)
        .collect();
    Ok(axum::Json(json!({
        "total": total,
        "pageCount": total.div_ceil(size),
        "pageSize": page_size,
        "pageNumber": page_number,
        "types": ["users"],
        "results": page,
    }))
    .into_response())
}

fn user_matches(user: &User, criterion: &UserSearchCriteria) -> bool {
    let wanted: Vec<String> = criterion
        .value
        .iter()
        .chain(&criterion.values)
        .map(|v| v.to_lowercase())
        .collect();
    criterion.fields.iter().any(|field| {
        let actual = match field.as_str() {
            // `username` is the e-mail address, as `user_json` serves it.
            "email" | "username" => user.email.to_lowercase(),
            "name" => user.name.to_lowercase(),
            _ => user.id.clone(),
        };
        wanted.iter().any(|w| match criterion.kind.as_deref() {
            Some("CONTAINS") => actual.contains(w.as_str()),
            Some("STARTS_WITH") => actual.starts_with(w.as_str()),
            _ => actual == *w,
        })
    })
}

async fn get_routing_status(State(sim): State<Arc<Sim>>, Path(user_id): Path<String>) -> Response {
    let state = sim.lock();
    // The real API answers OFF_QUEUE for a user that does not exist.
    let (status, start_time) = state
        .users
        .get(&user_id)
        .map(|u| (u.routing.status.clone(), Some(u.routing.start_time)))
        .unwrap_or_else(|| ("OFF_QUEUE".to_owned(), None));
    let mut body = json!({"userId": user_id, "status": status});
    if let Some(at) = start_time {
        body["startTime"] = json!(format_time(at));
    }
    axum::Json(body).into_response()
}

// ---------------------------------------------------------------- WFM

const AGENT_MU_PERMISSIONS: [&str; 3] = [
    "wfm:agent:view",
    "wfm:publishedSchedule:view",
    "wfm:schedule:view",
];
const SCHEDULE_SEARCH_PERMISSIONS: [&str; 2] = ["wfm:schedule:view", "wfm:publishedSchedule:view"];
const ACTIVITY_CODE_PERMISSIONS: [&str; 5] = [
    "wfm:agentSchedule:view",
    "wfm:activityCode:view",
    "wfm:schedule:view",
    "wfm:publishedSchedule:view",
    "wfm:agent:view",
];

/// `BusinessUnitListing`. The SDK documents no permission for this listing (each item says
/// whether the caller is `authorized` for a `feature`), so any valid token may list (unverified).
async fn list_business_units(State(sim): State<Arc<Sim>>) -> ApiResult {
    let state = sim.lock();
    let entities: Vec<Value> = state
        .business_units
        .iter()
        .map(|bu| {
            json!({
                "id": bu.seed.id,
                "name": bu.seed.name,
                "authorized": true,
                "selfUri": format!("/api/v2/workforcemanagement/businessunits/{}", bu.seed.id),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "entities": entities })).into_response())
}

async fn get_agent_management_unit(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(agent_id): Path<String>,
) -> ApiResult {
    caller.require_any(&AGENT_MU_PERMISSIONS)?;
    let state = sim.lock();
    let user = state.users.get(&agent_id).ok_or_else(ApiError::not_found)?;
    let mu = user
        .management_unit_id
        .as_deref()
        .ok_or_else(ApiError::not_found)?;
    let bu = state.business_unit_of(mu).ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(json!({
        "user": {"id": user.id, "selfUri": format!("/api/v2/users/{}", user.id)},
        "managementUnit": {"id": mu, "selfUri": format!("/api/v2/workforcemanagement/managementunits/{mu}")},
        "businessUnit": {"id": bu.seed.id, "selfUri": format!("/api/v2/workforcemanagement/businessunits/{}", bu.seed.id)},
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleSearchRequest {
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    user_ids: Option<Vec<String>>,
}

fn parse_date(field: &str, value: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    let raw = value.ok_or_else(|| ApiError::bad_request(format!("{field} is required.")))?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.to_utc())
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid.date",
                format!("{field} [{raw}] is not a valid ISO-8601 date-time."),
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleSearchQuery {
    /// `forceAsync=true` always answers `Processing` (SDK `force_async`).
    #[serde(default)]
    force_async: Option<bool>,
}

async fn search_schedules(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(bu_id): Path<String>,
    Query(query): Query<ScheduleSearchQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require_any(&SCHEDULE_SEARCH_PERMISSIONS)?;
    let request: ScheduleSearchRequest = json_body(&headers, &body)?;
    let start = parse_date("startDate", request.start_date.as_deref())?;
    let end = parse_date("endDate", request.end_date.as_deref())?;
    if end <= start {
        return Err(ApiError::bad_request("endDate must be after startDate."));
    }
    let mut state = sim.lock();
    let mode = state
        .schedule_search_mode(&bu_id)
        .ok_or_else(ApiError::not_found)?;
    state.schedule_operations += 1;
    let operation_id = uuid::Uuid::new_v4().to_string();
    if mode == ScheduleSearchMode::Processing || query.force_async == Some(true) {
        return Ok(axum::Json(
            json!({"status": "Processing", "operationId": operation_id, "progress": 0}),
        )
        .into_response());
    }
    let bu = state
        .business_units
        .iter()
        .find(|bu| bu.seed.id == bu_id)
        .ok_or_else(ApiError::not_found)?;
    let in_bu = |user: &&User| {
        user.management_unit_id
            .as_deref()
            .is_some_and(|mu| bu.seed.management_units.iter().any(|m| m == mu))
    };
    let wanted: Option<&Vec<String>> = request.user_ids.as_ref();
    let mut weeks = std::collections::BTreeSet::new();
    let agent_schedules: Vec<Value> = state
        .user_order
        .iter()
        .filter_map(|id| state.users.get(id))
        .filter(in_bu)
        .filter(|user| wanted.is_none_or(|ids| ids.iter().any(|id| id == &user.id)))
        .map(|user| {
            let shifts: Vec<Value> = user
                .shifts
                .iter()
                .filter_map(|shift| {
                    let shift_end = shift
                        .activities
                        .iter()
                        .map(|a| a.start_date + chrono::Duration::minutes(i64::from(a.length_minutes)))
                        .max()
                        .unwrap_or(shift.start_date);
                    if shift_end <= start || shift.start_date >= end {
                        return None;
                    }
                    let week = week_date(shift.start_date);
                    weeks.insert(week.clone());
                    Some(json!({
                        "id": format!("{}-{}", user.id, shift.start_date.timestamp()),
                        "startDate": format_time(shift.start_date),
                        "lengthMinutes": (shift_end - shift.start_date).num_minutes(),
                        "manuallyEdited": false,
                        "schedule": {"id": bu.published_schedule_id, "weekDate": week,
                                     "selfUri": format!("/api/v2/workforcemanagement/businessunits/{bu_id}/weeks/{week}/schedules/{}", bu.published_schedule_id)},
                        "activities": shift.activities.iter().map(|a| json!({
                            "startDate": format_time(a.start_date),
                            "lengthMinutes": a.length_minutes,
                            "description": a.description,
                            "activityCodeId": a.activity_code_id,
                            "paid": true,
                        })).collect::<Vec<_>>(),
                    }))
                })
                .collect();
            json!({
                "user": {"id": user.id, "selfUri": format!("/api/v2/users/{}", user.id)},
                "shifts": shifts,
                "fullDayTimeOffMarkers": [],
            })
        })
        .collect();
    let published: Vec<Value> = weeks
        .iter()
        .map(|week| json!({"id": bu.published_schedule_id, "weekDate": week, "weekCount": 1,
                           "selfUri": format!("/api/v2/workforcemanagement/businessunits/{bu_id}/weeks/{week}/schedules/{}", bu.published_schedule_id)}))
        .collect();
    Ok(axum::Json(json!({
        "status": "Complete",
        "operationId": operation_id,
        "result": {
            "businessUnitTimeZone": bu.seed.time_zone,
            "publishedSchedules": published,
            "agentSchedules": agent_schedules,
        }
    }))
    .into_response())
}

fn week_date(at: DateTime<Utc>) -> String {
    let date = at.date_naive();
    let monday = date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()));
    monday.format("%Y-%m-%d").to_string()
}

async fn list_activity_codes(
    State(sim): State<Arc<Sim>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(bu_id): Path<String>,
) -> ApiResult {
    caller.require_any(&ACTIVITY_CODE_PERMISSIONS)?;
    let state = sim.lock();
    let codes = state
        .activity_codes(&bu_id)
        .ok_or_else(ApiError::not_found)?;
    let entities: Vec<Value> = codes
        .iter()
        .map(|code| {
            let work = matches!(code.category.as_str(), "OnQueueWork" | "OffQueueWork" | "Meeting" | "Training");
            json!({
                "id": code.id,
                "name": code.name,
                "active": true,
                "defaultCode": true,
                "category": code.category,
                "lengthInMinutes": 30,
                "countsAsPaidTime": code.category != "TimeOff",
                "countsAsWorkTime": work,
                "agentTimeOffSelectable": code.category == "TimeOff",
                "countsTowardShrinkage": !work,
                "plannedShrinkage": !work,
                "interruptible": false,
                "secondaryPresences": [],
                "metadata": {"version": 1},
                "selfUri": format!("/api/v2/workforcemanagement/businessunits/{bu_id}/activitycodes/{}", code.id),
            })
        })
        .collect();
    Ok(axum::Json(json!({"entities": entities})).into_response())
}
