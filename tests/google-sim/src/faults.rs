//! The per-user rate limit on `/calendar/v3` (reference §7: 600 requests per user per minute,
//! then 403 or 429 `usageLimits`) and test-injected statuses or delays (`POST /sim/faults`) on
//! `/calendar/v3` and `/token`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::Sim;
use crate::auth::Caller;
use crate::error::{GoogleError, token_error};
use crate::state::SimState;

/// The next `count` requests whose path contains `path_contains` (case-insensitive) and whose
/// method matches get `status` (after `delay_ms`), or only the delay when no status.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(alias = "path_contains")]
    pub path_contains: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// Google's error `reason` (the OAuth `error` on `/token`); a default per status if absent.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default, alias = "delay_ms")]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

impl sim_kit::faults::FaultRule for Fault {
    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method));
        let wanted = self.path_contains.to_ascii_lowercase();
        method_ok
            && [path.to_owned(), percent_decode(path)]
                .iter()
                .any(|p| p.to_ascii_lowercase().contains(&wanted))
    }

    fn uses_left(&mut self) -> &mut u32 {
        &mut self.count
    }
}

impl Fault {
    fn response(&self, path: &str) -> Response {
        let status = self
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if path == "/token" {
            let error = self.reason.as_deref().unwrap_or("internal_failure");
            let message = self.message.as_deref().unwrap_or("Injected fault.");
            return token_error(status, error, message);
        }
        let mut error = GoogleError::for_status(status);
        if let Some(reason) = &self.reason {
            error.reason.clone_from(reason);
            if reason.contains("RateLimit") || reason.contains("quota") {
                "usageLimits".clone_into(&mut error.domain);
            }
        }
        if let Some(message) = &self.message {
            error.message.clone_from(message);
        }
        error.into_response()
    }
}

/// `/calendars/a%40b.example/events` → `/calendars/a@b.example/events`.
fn percent_decode(path: &str) -> String {
    let escaped = format!("x={}", path.replace('+', "%2B"));
    url::form_urlencoded::parse(escaped.as_bytes())
        .next()
        .map_or_else(|| path.to_owned(), |(_, v)| v.into_owned())
}

impl SimState {
    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        sim_kit::faults::take(&mut self.faults, method, path)
    }

    /// Admits one request of `sub` into its sliding minute, or answers the limit's error.
    fn admit(&mut self, sub: &str) -> Result<(), GoogleError> {
        let now = self.now();
        let limit = self.seed.rate_limit_per_user_per_minute as usize;
        let window = self.rate_windows.entry(sub.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|at| *at <= now - chrono::Duration::minutes(1))
        {
            window.pop_front();
        }
        if window.len() >= limit {
            let status =
                StatusCode::from_u16(self.seed.rate_limit_status).unwrap_or(StatusCode::FORBIDDEN);
            return Err(GoogleError::rate_limited(status, &self.rate_limit_reason));
        }
        window.push_back(now);
        Ok(())
    }
}

/// Per-user requests per minute (sim clock); refused requests do not count.
pub async fn throttle(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let sub = request.extensions().get::<Caller>().map(|c| c.sub.clone());
    if let Some(sub) = sub {
        let admitted = sim.lock().admit(&sub);
        if let Err(error) = admitted {
            return error.into_response();
        }
    }
    next.run(request).await
}

/// Injected faults: optional delay, then a status or the handler.
pub async fn inject(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let fault = sim.lock().take_fault(request.method().as_str(), &path);
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    match fault.status {
        Some(_) => fault.response(&path),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::Seed;

    #[test]
    fn the_minute_slides_with_the_sim_clock() {
        let seed = Seed {
            rate_limit_per_user_per_minute: 2,
            ..Seed::default()
        };
        let mut state = SimState::from_seed(seed).expect("valid seed");
        state.frozen_at = Some(chrono::Utc::now());
        assert!(state.admit("a@example.com").is_ok());
        assert!(state.admit("a@example.com").is_ok());
        let refused = state.admit("a@example.com").expect_err("over the limit");
        assert_eq!(
            (refused.status.as_u16(), refused.domain.as_str()),
            (403, "usageLimits")
        );
        assert!(state.admit("b@example.com").is_ok(), "per user");
        state.frozen_at = state.frozen_at.map(|at| at + chrono::Duration::seconds(61));
        assert!(state.admit("a@example.com").is_ok());
    }
}
