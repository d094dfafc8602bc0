//! The HTTP client: tokens, retries bounded by attempts and by the caller's deadline, and the
//! Genesys error model. The typed endpoints are in `endpoints.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::rate::RateBudget;
use super::token::{AccessToken, Fetched, TokenCache};
use super::wire::{ErrorBody, TokenError, TokenResponse, UserPresence};
use super::{AuthTimings, CredentialSource, GenesysError, GenesysHosts};
use crate::clock::{Clock, Deadline};
use crate::model::PresenceSnapshot;

/// The bulk presence endpoints take at most 50 users per call.
pub const BULK_LIMIT: usize = 50;
/// Used when a 429 carries no `Retry-After` (the Java SDK's default).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: usize,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A longer `Retry-After` means a daily limit was hit: give up rather than wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(180),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenesysConfig {
    /// `None`: the credentials name them (learned at the first token request).
    pub hosts: Option<GenesysHosts>,
    pub retry: RetryPolicy,
    /// Upper bound for one HTTP exchange; the deadline may cut it shorter.
    pub request_timeout: Duration,
}

impl GenesysConfig {
    pub fn new(hosts: GenesysHosts) -> Self {
        Self {
            hosts: Some(hosts),
            ..Self::from_credentials()
        }
    }

    /// Hosts from the credentials (the secret's region or base URLs), read at the first call.
    pub fn from_credentials() -> Self {
        Self {
            hosts: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A Genesys Cloud API client; cheap to clone, build once per Lambda instance.
#[derive(Debug, Clone)]
pub struct GenesysClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: GenesysConfig,
    credentials: Arc<dyn CredentialSource>,
    clock: Arc<dyn Clock>,
    tokens: TokenCache,
    /// The configured hosts, or those the credentials named at the last token request.
    hosts: std::sync::RwLock<Option<GenesysHosts>>,
    /// The token's rate window, as the platform reports it.
    budget: RateBudget,
    /// Milliseconds spent reading credentials and fetching tokens since last taken.
    secret_ms: AtomicU64,
    token_ms: AtomicU64,
}

pub(super) struct Call {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: Vec<(&'static str, String)>,
    pub(super) body: Option<serde_json::Value>,
}

impl Call {
    pub(super) fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub(super) fn with_body(
        method: Method,
        path: String,
        body: &impl serde::Serialize,
    ) -> Result<Self, GenesysError> {
        let body = serde_json::to_value(body).map_err(|e| GenesysError::Decode {
            message: format!("could not encode request body: {e}"),
            correlation_id: None,
        })?;
        Ok(Self {
            method,
            path,
            query: Vec::new(),
            body: Some(body),
        })
    }
}

impl GenesysClient {
    pub fn new(
        config: GenesysConfig,
        credentials: Arc<dyn CredentialSource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GenesysError> {
        let http = crate::tls::client_builder()
            .user_agent(concat!("presence-autopilot/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GenesysError::Config {
                field: "http",
                message: e.to_string(),
            })?;
        let hosts = config.hosts.clone();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                credentials,
                clock,
                tokens: TokenCache::default(),
                hosts: std::sync::RwLock::new(hosts),
                budget: RateBudget::default(),
                secret_ms: AtomicU64::new(0),
                token_ms: AtomicU64::new(0),
            }),
        })
    }

    /// Authentication time (secret reads, token requests) since the last call; per event
    /// when a Lambda instance handles one event at a time.
    pub fn take_auth_timings(&self) -> AuthTimings {
        AuthTimings {
            secret_ms: self.inner.secret_ms.swap(0, Ordering::Relaxed),
            token_ms: self.inner.token_ms.swap(0, Ordering::Relaxed),
        }
    }

    // ------------------------------------------------------------ presence

    /// One logical call: retried on 429/502/503/504 (honouring `Retry-After`, with jitter)
    /// while attempts remain and the deadline leaves room for the wait. The backoff schedule
    /// is backon's; the loop is ours so every wait goes through the injected clock (and the future stays
    /// `Send` for the port traits).
    pub(super) async fn call<T: DeserializeOwned + Send>(
        &self,
        call: &Call,
        deadline: Deadline,
    ) -> Result<T, GenesysError> {
        let policy = &self.inner.config.retry;
        let clock = self.inner.clock.as_ref();
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let reauthenticated = AtomicBool::new(false);
        loop {
            let error = match self.attempt::<T>(call, deadline, &reauthenticated).await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(error),
            };
            let Some(backoff) = delays.next() else {
                return Err(error);
            };
            let wait = match error.retry_after() {
                Some(asked) if asked > policy.max_retry_after => return Err(error),
                Some(asked) => asked + jitter(asked),
                None => backoff,
            };
            if wait >= deadline.remaining(clock) {
                return Err(error);
            }
            tracing::warn!(path = %call.path, error = %error, wait_ms = wait.as_millis() as u64, "retrying Genesys call");
            clock.sleep(wait).await;
        }
    }

    async fn attempt<T: DeserializeOwned + Send>(
        &self,
        call: &Call,
        deadline: Deadline,
        reauthenticated: &AtomicBool,
    ) -> Result<T, GenesysError> {
        let token = self.token(false).await?;
        let mut response = self.send(call, &token, deadline).await?;
        // A 401 may mean the token was revoked or the credentials rotated: re-authenticate
        // once per call, then give up.
        if response.status() == StatusCode::UNAUTHORIZED
            && !reauthenticated.swap(true, Ordering::SeqCst)
        {
            self.inner.tokens.invalidate(&token).await;
            let fresh = self.token(true).await?;
            response = self.send(call, &fresh, deadline).await?;
        }
        decode(response).await
    }

    async fn send(
        &self,
        call: &Call,
        token: &AccessToken,
        deadline: Deadline,
    ) -> Result<reqwest::Response, GenesysError> {
        self.wait_for_budget(deadline).await?;
        let timeout = self.timeout_within(deadline)?;
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), self.hosts()?.api_url(&call.path))
            .header(reqwest::header::AUTHORIZATION, token.bearer())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await.map_err(transport_error)?;
        let now = self.inner.clock.now();
        self.inner.budget.observe(response.headers(), now);
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let asked = retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
            self.inner.budget.refused(asked, now);
        }
        tracing::debug!(
            method = %call.method,
            path = %call.path,
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "genesys call"
        );
        Ok(response)
    }

    /// Where to send calls: configured, or named by the credentials at the last token request
    /// (every call asks for a token first, so they are known by then).
    fn hosts(&self) -> Result<GenesysHosts, GenesysError> {
        self.inner
            .hosts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(GenesysError::Config {
                field: "hosts",
                message: "neither configured nor named by the credentials".to_owned(),
            })
    }

    /// Waits while the token's window is spent; a wait past the deadline is a `RateLimited`
    /// answered here, without spending a call (the event comes back later).
    async fn wait_for_budget(&self, deadline: Deadline) -> Result<(), GenesysError> {
        let clock = self.inner.clock.as_ref();
        loop {
            let wait = match self.inner.budget.take(clock.now()) {
                Ok(()) => return Ok(()),
                Err(wait) => wait,
            };
            if wait >= deadline.remaining(clock) {
                return Err(GenesysError::RateLimited {
                    retry_after: wait,
                    correlation_id: None,
                });
            }
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "Genesys rate window spent; waiting for its reset"
            );
            clock.sleep(wait).await;
        }
    }

    fn timeout_within(&self, deadline: Deadline) -> Result<Duration, GenesysError> {
        let remaining = deadline.remaining(self.inner.clock.as_ref());
        if remaining.is_zero() {
            return Err(GenesysError::Timeout);
        }
        Ok(remaining.min(self.inner.config.request_timeout))
    }

    /// A valid token; `after_refusal` also reloads the credentials (they may have rotated).
    async fn token(&self, after_refusal: bool) -> Result<AccessToken, GenesysError> {
        let now = self.inner.clock.now();
        self.inner
            .tokens
            .get(now, || self.fetch_token(after_refusal))
            .await
    }

    async fn fetch_token(&self, refresh_credentials: bool) -> Result<Fetched, GenesysError> {
        match self.request_token(refresh_credentials).await {
            // `invalid_client` right after a rotation: the cached secret is stale; reload once.
            Err(GenesysError::Token { error, .. })
                if error == "invalid_client" && !refresh_credentials =>
            {
                self.request_token(true).await
            }
            other => other,
        }
    }

    async fn request_token(&self, refresh_credentials: bool) -> Result<Fetched, GenesysError> {
        let secret_started = Instant::now();
        let credentials = self
            .inner
            .credentials
            .client_credentials(refresh_credentials)
            .await;
        self.inner.secret_ms.fetch_add(
            secret_started.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
        let credentials = credentials?;
        if let Some(hosts) = &credentials.hosts {
            *self
                .inner
                .hosts
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hosts.clone());
        }
        let token_url = self.hosts()?.token_url();
        let started = Instant::now();
        let response = self
            .inner
            .http
            .post(token_url)
            .basic_auth(
                &credentials.client_id,
                Some(credentials.client_secret.expose_secret()),
            )
            .form(&[("grant_type", "client_credentials")])
            .timeout(self.inner.config.request_timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let latency_ms = started.elapsed().as_millis() as u64;
        self.inner.token_ms.fetch_add(latency_ms, Ordering::Relaxed);
        tracing::debug!(
            status = status.as_u16(),
            latency_ms,
            "genesys token request"
        );
        if status.is_success() {
            let body = response.bytes().await.map_err(transport_error)?;
            let token: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| GenesysError::Decode {
                    message: format!("token response: {e}"),
                    correlation_id: None,
                })?;
            return Ok(Fetched {
                value: SecretString::from(token.access_token),
                expires_in: token.expires_in,
            });
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            let body = response.bytes().await.unwrap_or_default();
            let error: TokenError = serde_json::from_slice(&body).unwrap_or_default();
            return Err(GenesysError::Token {
                error: error
                    .error
                    .unwrap_or_else(|| format!("http_{}", status.as_u16())),
                description: error
                    .error_description
                    .or(error.description)
                    .unwrap_or_default(),
            });
        }
        Err(status_error(response).await)
    }
}

pub(super) fn snapshot_of(presence: &UserPresence) -> Result<PresenceSnapshot, GenesysError> {
    presence.snapshot().map_err(|field| GenesysError::Decode {
        message: format!("presence without {field}"),
        correlation_id: None,
    })
}

/// Up to a tenth of the wait, at most one second, so many clients told the same
/// `Retry-After` do not all return at the same instant.
fn jitter(wait: Duration) -> Duration {
    let cap = (wait.as_millis() / 10).min(1000) as u64;
    Duration::from_millis(fastrand::u64(0..=cap))
}

fn transport_error(error: reqwest::Error) -> GenesysError {
    if error.is_timeout() {
        GenesysError::Timeout
    } else {
        // reqwest errors name the URL, never headers, so no token or secret leaks here.
        GenesysError::Transport {
            message: error.to_string(),
        }
    }
}

fn correlation_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("inin-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, GenesysError> {
    if !response.status().is_success() {
        return Err(status_error(response).await);
    }
    let correlation_id = correlation_id(&response);
    let body = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body).map_err(|e| GenesysError::Decode {
        message: e.to_string(),
        correlation_id,
    })
}

/// `Retry-After` in whole seconds, as Genesys sends it.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Maps a non-2xx response to the error model (reference §6).
async fn status_error(response: reqwest::Response) -> GenesysError {
    let status = response.status();
    let correlation_id = correlation_id(&response);
    let retry_after = retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let error: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    let code = error.code.unwrap_or_default();
    let message = error.message.unwrap_or_default();
    match status.as_u16() {
        401 => GenesysError::Unauthorized {
            code,
            correlation_id,
        },
        403 => GenesysError::Forbidden {
            permission: missing_permission(&message, &code),
            correlation_id,
        },
        404 => GenesysError::NotFound {
            message,
            correlation_id,
        },
        429 => GenesysError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            correlation_id,
        },
        500..=599 => GenesysError::Server {
            status: status.as_u16(),
            message,
            correlation_id,
        },
        other => GenesysError::BadRequest {
            status: other,
            code,
            message,
            correlation_id,
        },
    }
}

/// The permission a 403 names ("…missing the following permission(s): x:y:z").
fn missing_permission(message: &str, code: &str) -> String {
    message
        .rsplit_once(": ")
        .map(|(_, permissions)| permissions.trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            if code.is_empty() {
                "unknown".to_owned()
            } else {
                code.to_owned()
            }
        })
}

pub(super) fn path_segment<'a>(
    field: &'static str,
    value: &'a str,
) -> Result<&'a str, GenesysError> {
    if value.is_empty() || value.contains(['/', '?', '#', '%', ' ']) {
        return Err(GenesysError::Config {
            field,
            message: format!("{value:?} is not a valid id"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_is_read_from_the_403_message() {
        let message = "Unable to perform the requested action. You are missing the following permission(s): presence:userPresence:edit";
        assert_eq!(
            missing_permission(message, "missing.permissions"),
            "presence:userPresence:edit"
        );
        assert_eq!(missing_permission("", "not.authorized"), "not.authorized");
    }

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(2)) <= Duration::from_millis(200));
            assert!(jitter(Duration::from_secs(60)) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn path_segments_refuse_injection() {
        assert!(path_segment("businessUnitId", "../x").is_err());
        assert!(path_segment("businessUnitId", "b1a7e0c2-3d4e").is_ok());
    }
}
