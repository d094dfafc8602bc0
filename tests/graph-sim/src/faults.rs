//! Throttling and injected faults on `/v1.0`: the Outlook per-mailbox concurrency limit
//! (reference §2.7: 4 in flight per app + mailbox → 429 `ApplicationThrottled`) and
//! test-injected statuses or delays (`POST /sim/faults`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::Sim;
use crate::error::GraphError;
use crate::state::SimState;

/// The next `count` `/v1.0` requests whose path contains `path_contains` (case-insensitive)
/// and whose method matches get `status` (after `delay_ms`), or only the delay when no status.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Fault {
    pub path_contains: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds; a 429 always carries one (default 1).
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// The Graph error code; a default per status when absent.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
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
        method_ok
            && path
                .to_ascii_lowercase()
                .contains(&self.path_contains.to_ascii_lowercase())
    }

    fn uses_left(&mut self) -> &mut u32 {
        &mut self.count
    }
}

impl Fault {
    fn error(&self) -> GraphError {
        let status = self
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = GraphError::for_status(status);
        if let Some(code) = &self.code {
            error.code.clone_from(code);
        }
        if let Some(message) = &self.message {
            error.message.clone_from(message);
        }
        error.retry_after_seconds = match status {
            StatusCode::TOO_MANY_REQUESTS => Some(self.retry_after.unwrap_or(1)),
            _ => self.retry_after,
        };
        error
    }
}

impl SimState {
    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        sim_kit::faults::take(&mut self.faults, method, path)
    }

    /// The mailbox a `/v1.0/users/{id-or-upn}/...` path addresses: the user's id, or the raw
    /// segment (lower-cased) for an unknown user. `None` for other paths.
    pub fn mailbox_of(&self, path: &str) -> Option<String> {
        let rest = path.strip_prefix("/v1.0/users/")?;
        let (user, tail) = rest.split_once('/')?;
        if user.is_empty() || tail.is_empty() {
            return None;
        }
        let user = percent_decode(user);
        Some(
            self.user(&user)
                .map_or_else(|| user.to_ascii_lowercase(), |u| u.seed.id.clone()),
        )
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| segment.to_owned(), |(_, v)| v.into_owned())
}

/// Releases a mailbox slot when the request finishes (or its client goes away).
struct InFlight {
    sim: Arc<Sim>,
    mailbox: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.sim.lock();
        if let Some(count) = state.in_flight.get_mut(&self.mailbox) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.in_flight.remove(&self.mailbox);
            }
        }
    }
}

/// Takes a slot of `mailbox`, or `None` when `mailbox_concurrency` are already in flight.
fn acquire(sim: &Arc<Sim>, mailbox: String) -> Option<InFlight> {
    let mut state = sim.lock();
    let limit = state.seed.mailbox_concurrency;
    let count = state.in_flight.entry(mailbox.clone()).or_default();
    if *count >= limit {
        return None;
    }
    *count += 1;
    Some(InFlight {
        sim: sim.clone(),
        mailbox,
    })
}

/// Per-mailbox concurrency: one request over `mailbox_concurrency` in flight answers 429.
pub async fn throttle(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let mailbox = sim.lock().mailbox_of(request.uri().path());
    let Some(mailbox) = mailbox else {
        return next.run(request).await;
    };
    let Some(slot) = acquire(&sim, mailbox) else {
        return GraphError::mailbox_concurrency().into_response();
    };
    let response = next.run(request).await;
    drop(slot);
    response
}

/// Injected faults: optional delay (the request stays in flight), then a status or the handler.
pub async fn inject(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let fault = sim
        .lock()
        .take_fault(request.method().as_str(), request.uri().path());
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    match fault.status {
        Some(_) => fault.error().into_response(),
        None => next.run(request).await,
    }
}
