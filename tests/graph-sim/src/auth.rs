//! Entra ID client credentials (`POST /{tenant}/oauth2/v2.0/token`, reference §1) and the bearer
//! check every `/v1.0` call passes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use crate::Sim;
use crate::error::{GraphError, token_error};
use crate::seed::GRAPH_SCOPE;
use crate::state::{SimState, Token, random_token};

/// Token lifetime in seconds, as Entra ID issues app-only tokens.
pub const TOKEN_SECONDS: i64 = 3599;

/// The app a `/v1.0` call is made by, set by [`authenticate`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
}

#[derive(Debug, Default)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    grant_type: Option<String>,
}

fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> TokenRequest {
    let mut request = TokenRequest::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let value = Some(value.into_owned());
        match key.as_ref() {
            "client_id" => request.client_id = value,
            "client_secret" => request.client_secret = value,
            "scope" => request.scope = value,
            "grant_type" => request.grant_type = value,
            _ => {}
        }
    }
    // client_secret_basic: `Authorization: Basic base64(id:secret)`.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|v| String::from_utf8(v).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) {
        request.client_id.get_or_insert_with(|| id.to_owned());
        request
            .client_secret
            .get_or_insert_with(|| secret.to_owned());
    }
    request
}

/// Why a token request is refused: status, OAuth `error`, AADSTS code, description.
type Refusal = (StatusCode, &'static str, u32, String);

/// Checks a token request in Entra ID's order; returns the client id on success.
fn check(state: &SimState, tenant: &str, request: &TokenRequest) -> Result<String, Refusal> {
    let bad =
        |error, code, description: String| (StatusCode::BAD_REQUEST, error, code, description);
    let unauthorized = |code, description: String| {
        (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description,
        )
    };
    let missing =
        |name: &str| format!("The request body must contain the following parameter: '{name}'.");
    if !tenant.eq_ignore_ascii_case(&state.seed.tenant_id) {
        return Err(bad(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        ));
    }
    let grant_type = request
        .grant_type
        .as_deref()
        .ok_or_else(|| bad("invalid_request", 900144, missing("grant_type")))?;
    if grant_type != "client_credentials" {
        return Err(bad(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = request
        .client_id
        .as_deref()
        .ok_or_else(|| bad("invalid_request", 900144, missing("client_id")))?;
    let scope = request
        .scope
        .as_deref()
        .ok_or_else(|| bad("invalid_request", 900144, missing("scope")))?;
    if scope != GRAPH_SCOPE {
        return Err(bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let expected = state.clients.get(client_id).ok_or_else(|| unauthorized(700016, format!(
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
    )))?;
    let secret = request
        .client_secret
        .as_deref()
        .ok_or_else(|| unauthorized(7000218, missing("client_assertion' or 'client_secret")))?;
    if secret != expected {
        // Never echo the secret that was sent.
        return Err(unauthorized(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ));
    }
    Ok(client_id.to_owned())
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn issue_token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse_token_request(&headers, &body);
    let mut state = sim.lock();
    let now = state.now();
    let client_id = match check(&state, &tenant, &request) {
        Ok(client_id) => client_id,
        Err((status, error, code, description)) => {
            return token_error(status, error, code, &description, now);
        }
    };
    let access_token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        random_token(2),
        random_token(4)
    );
    state.tokens.insert(
        access_token.clone(),
        Token {
            client_id,
            expires_at: now + chrono::Duration::seconds(TOKEN_SECONDS),
        },
    );
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "ext_expires_in": TOKEN_SECONDS,
        "access_token": access_token,
    }))
    .into_response()
}

/// `/v1.0` layer: 401 `InvalidAuthenticationToken` unless the bearer is issued and unexpired.
pub async fn authenticate(
    State(sim): State<Arc<Sim>>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = sim_kit::bearer(request.headers());
    let unauthorized = |message: &str| {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
        .into_response()
    };
    let Some(bearer) = bearer else {
        return unauthorized("Access token is empty.");
    };
    let client_id = {
        let state = sim.lock();
        match state.tokens.get(&bearer) {
            None => return unauthorized("Signature validation failed"),
            Some(token) if token.expires_at <= state.now() => {
                return unauthorized("Lifetime validation failed, the token is expired.");
            }
            Some(token) => token.client_id.clone(),
        }
    };
    request.extensions_mut().insert(Caller { client_id });
    next.run(request).await
}
