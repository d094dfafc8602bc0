//! Outbound HTTP: the validation handshake on subscription create (reference §2.2), change
//! notifications (§2.4, §2.5) and lifecycle notifications (§2.6). Every attempt lands in the
//! delivery log (`GET /sim/deliveries`), which wakes `POST /sim/deliveries/wait`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::error::GraphError;
use crate::events::Change;
use crate::state::{SimState, random_token};
use crate::subscriptions::Subscription;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    Notification,
    Lifecycle,
    Validation,
}

/// One line of `GET /sim/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub subscription_id: String,
    pub kind: DeliveryKind,
    /// The URL posted to (for a validation: with `validationToken` appended).
    pub url: String,
    /// `null` when the endpoint could not be reached or timed out.
    pub status: Option<u16>,
    pub elapsed_ms: u64,
    /// 1 for the first try, 2.. for retries.
    pub attempt: u32,
    /// What was sent: the JSON body, or the validation token.
    pub body: Value,
    /// What the endpoint answered (at most 2,000 characters).
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// A POST to send, with retries on failure.
#[derive(Debug, Clone)]
pub struct Job {
    pub subscription_id: String,
    pub kind: DeliveryKind,
    pub url: String,
    pub body: Value,
    /// Stop retrying once the subscription is gone (not for `subscriptionRemoved`).
    pub needs_subscription: bool,
}

struct Outcome {
    status: Option<u16>,
    response_body: Option<String>,
    error: Option<String>,
    elapsed_ms: u64,
}

async fn post(
    sim: &Sim,
    url: &str,
    content_type: &str,
    body: String,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let exchange = async {
        let response = sim
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    };
    let (status, response_body, error) = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, text))) => (Some(status), Some(text), None),
        Ok(Err(error)) => (None, None, Some(error.to_string())),
        Err(_) => (
            None,
            None,
            Some(format!("timed out after {} ms", timeout.as_millis())),
        ),
    };
    Outcome {
        status,
        response_body,
        error,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

fn record(sim: &Sim, job: &Job, attempt: u32, outcome: &Outcome) {
    let mut state = sim.lock();
    let at = state.now();
    let seq = state.deliveries.len() as u64 + 1;
    state.deliveries.push(Delivery {
        seq,
        at,
        subscription_id: job.subscription_id.clone(),
        kind: job.kind,
        url: job.url.clone(),
        status: outcome.status,
        elapsed_ms: outcome.elapsed_ms,
        attempt,
        body: job.body.clone(),
        response_body: outcome
            .response_body
            .as_ref()
            .map(|b| b.chars().take(2000).collect()),
        error: outcome.error.clone(),
    });
    drop(state);
    sim.deliveries_changed.notify_waiters();
}

/// `application/x-www-form-urlencoded`-style encoding as .NET's `HttpUtility.UrlEncode` does it:
/// space → `+`, unreserved `-_.!*()` and alphanumerics kept, everything else `%xx` lower-case.
pub fn encode_token(token: &str) -> String {
    let mut out = String::with_capacity(token.len() * 3);
    for byte in token.bytes() {
        match byte {
            b' ' => out.push('+'),
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'*'
            | b'('
            | b')' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

/// `url` with `validationToken=<encoded>` appended to its query (keeping any existing query).
pub fn validation_url(url: &str, token: &str) -> String {
    let (without_fragment, _) = url.split_once('#').unwrap_or((url, ""));
    let separator = if without_fragment.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{without_fragment}{separator}validationToken={}",
        encode_token(token)
    )
}

fn default_validation_token() -> String {
    format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    )
}

/// The validation handshake: success only on 200 with the token echoed exactly.
pub async fn handshake(sim: &Arc<Sim>, subscription_id: &str, url: &str) -> Result<(), GraphError> {
    let (token, timeout) = {
        let state = sim.lock();
        (
            state
                .validation_token
                .clone()
                .unwrap_or_else(default_validation_token),
            Duration::from_millis(state.seed.handshake_timeout_ms),
        )
    };
    let target = validation_url(url, &token);
    let outcome = post(
        sim,
        &target,
        "text/plain; charset=utf-8",
        String::new(),
        timeout,
    )
    .await;
    let job = Job {
        subscription_id: subscription_id.to_owned(),
        kind: DeliveryKind::Validation,
        url: target,
        body: Value::String(token.clone()),
        needs_subscription: false,
    };
    record(sim, &job, 1, &outcome);
    if outcome.status == Some(200) && outcome.response_body.as_deref() == Some(token.as_str()) {
        Ok(())
    } else {
        Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        ))
    }
}

/// Sends `job` now, then after each retry delay while it keeps failing.
async fn deliver(sim: Arc<Sim>, job: Job) {
    let (delays, timeout) = {
        let state = sim.lock();
        (
            state.seed.delivery_retry_ms.clone(),
            Duration::from_millis(state.seed.notification_timeout_ms),
        )
    };
    let body = job.body.to_string();
    let mut attempt = 1u32;
    loop {
        if job.needs_subscription {
            let state = sim.lock();
            let now = state.now();
            let alive = state
                .subscriptions
                .iter()
                .any(|s| s.id == job.subscription_id && s.is_active(now));
            if !alive {
                return;
            }
        }
        let outcome = post(
            &sim,
            &job.url,
            "application/json; charset=utf-8",
            body.clone(),
            timeout,
        )
        .await;
        record(&sim, &job, attempt, &outcome);
        if outcome.status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        let Some(&delay) = delays.get(attempt as usize - 1) else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        attempt += 1;
    }
}

/// Starts the deliveries in the background; the caller does not wait for them.
pub fn schedule(sim: &Arc<Sim>, jobs: Vec<Job>) {
    for job in jobs {
        tokio::spawn(deliver(sim.clone(), job));
    }
}

/// The change notification for one subscription.
pub fn notification(state: &SimState, subscription: &Subscription, change: &Change) -> Job {
    let resource = format!("Users/{}/Events/{}", subscription.user_id, change.event_id);
    let body = json!({"value": [{
        "id": random_token(1),
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": subscription.expiration.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        "clientState": subscription.client_state,
        "changeType": change.change_type.as_str(),
        "resource": resource,
        "tenantId": state.seed.tenant_id,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": change.etag,
            "id": change.event_id,
        },
    }]});
    Job {
        subscription_id: subscription.id.clone(),
        kind: DeliveryKind::Notification,
        url: subscription.notification_url.clone(),
        body,
        needs_subscription: true,
    }
}

/// Change notifications for every active subscription on `user_id` that wants this change type.
pub fn notifications(state: &SimState, user_id: &str, change: &Change) -> Vec<Job> {
    let now = state.now();
    state
        .subscriptions
        .iter()
        .filter(|s| s.user_id == user_id && s.is_active(now) && s.wants(change.change_type))
        .map(|s| notification(state, s, change))
        .collect()
}

/// A lifecycle notification, to the lifecycle URL (or the notification URL when none).
pub fn lifecycle(state: &SimState, subscription: &Subscription, event: &str) -> Job {
    let body = json!({"value": [{
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": subscription.expiration.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        "tenantId": state.seed.tenant_id,
        "clientState": subscription.client_state,
        "lifecycleEvent": event,
    }]});
    Job {
        subscription_id: subscription.id.clone(),
        kind: DeliveryKind::Lifecycle,
        url: subscription
            .lifecycle_notification_url
            .clone()
            .unwrap_or_else(|| subscription.notification_url.clone()),
        body,
        needs_subscription: event != "subscriptionRemoved",
    }
}

/// Waits until at least `count` attempts are logged; `Err` with what is there after `timeout`.
pub async fn wait(
    sim: &Sim,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Delivery>, Vec<Delivery>> {
    sim_kit::wait_for(&sim.deliveries_changed, timeout, || {
        let deliveries = sim.lock().deliveries.clone();
        if deliveries.len() >= count {
            Ok(deliveries)
        } else {
            Err(deliveries)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_form_encoded_and_appended_to_any_existing_query() {
        assert_eq!(
            validation_url(
                "https://fn.example/graph/notify?tenant=t1#frag",
                "a<b & c%d+e"
            ),
            "https://fn.example/graph/notify?tenant=t1&validationToken=a%3cb+%26+c%25d%2be"
        );
        assert_eq!(
            validation_url("http://127.0.0.1:1/hook", "Validation: x"),
            "http://127.0.0.1:1/hook?validationToken=Validation%3a+x"
        );
        let decoded: Vec<(String, String)> =
            url::form_urlencoded::parse(encode_token("é ü/?=+").as_bytes())
                .map(|(k, _)| (k.into_owned(), String::new()))
                .collect();
        assert_eq!(decoded[0].0, "é ü/?=+");
    }
}
