//! The OAuth token endpoint for service accounts with domain-wide delegation (`POST /token`,
//! JWT bearer grant, reference §5) and the bearer check every `/calendar/v3` call passes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

use crate::Sim;
use crate::error::{GoogleError, google_json, token_error};
use crate::state::{SimState, Token, random_token};

/// Access-token lifetime in seconds, as Google issues them.
pub const TOKEN_SECONDS: i64 = 3599;
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The audience Google's documentation names; the simulator's own `/token` URL is also taken.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Scopes that read events (events.list, events.watch).
pub const EVENT_SCOPES: [&str; 6] = [
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
    "https://www.googleapis.com/auth/calendar.events.owned",
    "https://www.googleapis.com/auth/calendar.events.owned.readonly",
];
/// Scopes that read calendar metadata (calendars.get); the events scopes do not.
pub const CALENDAR_SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.calendars",
    "https://www.googleapis.com/auth/calendar.calendars.readonly",
];

/// Who a call is made for: set by [`authenticate`] (and by `/token` on the response, for the
/// request log).
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: String,
    pub scopes: Vec<String>,
}

impl Caller {
    /// 403 `insufficientPermissions` unless the token has one of `any_of`.
    pub fn require(&self, any_of: &[&str]) -> Result<(), GoogleError> {
        if self.scopes.iter().any(|s| any_of.contains(&s.as_str())) {
            Ok(())
        } else {
            Err(GoogleError::insufficient_scopes())
        }
    }
}

/// Why an assertion is refused: status, OAuth `error`, description.
type Refusal = (StatusCode, &'static str, String);

fn invalid_grant(description: &str) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        description.to_owned(),
    )
}

const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
const BAD_TIMES: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
const UNAUTHORIZED_CLIENT: &str = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.";

/// The claims segment, decoded without checking anything (to find the key by `iss`).
fn peek_claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (_header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks an assertion in the order described in README.md; returns `(sub, scopes)`.
fn check(
    state: &SimState,
    audiences: &[String],
    assertion: &str,
) -> Result<(String, Vec<String>), Refusal> {
    let claims = peek_claims(assertion)
        .ok_or_else(|| invalid_grant("Invalid JWT: the assertion is not a signed JWT."))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let iss = text("iss").unwrap_or_default();
    let account = state
        .seed
        .service_accounts
        .iter()
        .find(|a| a.client_email.eq_ignore_ascii_case(iss))
        .ok_or_else(|| invalid_grant(BAD_SIGNATURE))?;
    let key = DecodingKey::from_rsa_pem(account.public_key_pem.as_bytes())
        .map_err(|_| invalid_grant(BAD_SIGNATURE))?;
    // Only the signature here: the claims are checked below against the sim clock.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    decode::<Value>(assertion, &key, &validation).map_err(|_| invalid_grant(BAD_SIGNATURE))?;

    let aud = text("aud").unwrap_or_default();
    if !audiences.iter().any(|a| a == aud) {
        return Err(invalid_grant(&format!(
            "Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_URL}"
        )));
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
        return Err(invalid_grant(BAD_TIMES));
    };
    let now = state.now().timestamp();
    if exp - iat > 3600 || exp <= iat || iat > now + 60 || exp <= now {
        return Err(invalid_grant(BAD_TIMES));
    }
    let scopes: Vec<String> = text("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Empty or missing scope not allowed.".to_owned(),
        ));
    }
    if scopes.iter().any(|s| !account.scopes.contains(s)) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            UNAUTHORIZED_CLIENT.to_owned(),
        ));
    }
    // Without `sub` the token is the service account's own (it has no calendar here).
    let sub = match text("sub") {
        None => account.client_email.to_ascii_lowercase(),
        Some(sub) => state
            .calendar(sub)
            .map(|c| c.email.clone())
            .ok_or_else(|| invalid_grant("Invalid email or User ID"))?,
    };
    Ok((sub, scopes))
}

/// The audiences an assertion may name: Google's token URL, and this server's `/token`.
fn audiences(state: &SimState, headers: &HeaderMap) -> Vec<String> {
    let mut audiences = vec![GOOGLE_TOKEN_URL.to_owned()];
    if let Some(base) = &state.base_url {
        audiences.push(format!("{base}/token"));
    }
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        audiences.push(format!("http://{host}/token"));
    }
    audiences
}

/// `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`.
pub async fn issue_token(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let grant_type = field("grant_type").unwrap_or_default();
    if grant_type != JWT_BEARER {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(assertion) = field("assertion").filter(|a| !a.is_empty()) else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let mut state = sim.lock();
    let allowed = audiences(&state, &headers);
    let (sub, scopes) = match check(&state, &allowed, assertion) {
        Ok(granted) => granted,
        Err((status, error, description)) => return token_error(status, error, &description),
    };
    let access_token = format!("ya29.a0{}", random_token(3));
    let expires_at = state.now() + chrono::Duration::seconds(TOKEN_SECONDS);
    state.tokens.insert(
        access_token.clone(),
        Token {
            sub: sub.clone(),
            scopes: scopes.clone(),
            expires_at,
        },
    );
    *state.grants.entry(sub.clone()).or_default() += 1;
    drop(state);
    let mut response = google_json(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "expires_in": TOKEN_SECONDS,
            "token_type": "Bearer",
        }),
    );
    response.extensions_mut().insert(Caller { sub, scopes });
    response
}

/// `/calendar/v3` layer: 401 `authError` unless the bearer was issued and has not expired.
pub async fn authenticate(
    State(sim): State<Arc<Sim>>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = sim_kit::bearer(request.headers());
    let caller = bearer.and_then(|bearer| {
        let state = sim.lock();
        state
            .tokens
            .get(&bearer)
            .filter(|t| t.expires_at > state.now())
            .map(|t| Caller {
                sub: t.sub.clone(),
                scopes: t.scopes.clone(),
            })
    });
    let Some(caller) = caller else {
        return GoogleError::auth().into_response();
    };
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}
