//! Outbound push notifications (reference §6): header-only POSTs, `sync` when a channel is
//! made and `exists` after each change of its calendar. Every attempt lands in the delivery log
//! (`GET /sim/deliveries`), which wakes `POST /sim/deliveries/wait`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Sim;
use crate::model::EventType;
use crate::state::{SimState, rfc1123};

pub const SYNC: &str = "sync";
pub const EXISTS: &str = "exists";
pub const USER_AGENT: &str =
    "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)";
/// Statuses Google counts as delivered.
const DELIVERED: [u16; 5] = [200, 201, 202, 204, 102];
/// Statuses (besides no answer) after which Google retries with backoff.
const RETRIED: [u16; 4] = [500, 502, 503, 504];

/// One line of `GET /sim/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub channel_id: String,
    pub calendar: String,
    /// `sync` or `exists`.
    pub state: String,
    pub message_number: u64,
    pub url: String,
    /// `null` when dropped on purpose, unreachable or timed out.
    pub status: Option<u16>,
    /// 1 for the first try, 2.. for retries.
    pub attempt: u32,
    pub elapsed_ms: u64,
    pub error: Option<String>,
    /// Dropped on purpose (`POST /sim/notifications/drop`): nothing was sent.
    pub dropped: bool,
}

/// A notification to send, with its headers fixed when the change happened.
#[derive(Debug, Clone)]
pub struct Job {
    pub channel_id: String,
    pub calendar: String,
    pub state: &'static str,
    pub message_number: u64,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub dropped: bool,
}

/// The next notification of `state.channels[index]`: message number 1 for `sync`, then rising
/// by a random step of 1–1000 (Google's numbers rise but are not consecutive).
pub fn job(state: &mut SimState, index: usize, resource_state: &'static str) -> Job {
    let dropped = state.drop_notifications > 0;
    state.drop_notifications = state.drop_notifications.saturating_sub(1);
    let channel = &mut state.channels[index];
    channel.message_number = if resource_state == SYNC {
        1
    } else {
        channel.message_number + fastrand::u64(1..=1000)
    };
    let mut headers = vec![
        ("X-Goog-Channel-ID", channel.id.clone()),
        ("X-Goog-Channel-Expiration", rfc1123(channel.expiration)),
        ("X-Goog-Message-Number", channel.message_number.to_string()),
        ("X-Goog-Resource-ID", channel.resource_id.clone()),
        ("X-Goog-Resource-State", resource_state.to_owned()),
        ("X-Goog-Resource-URI", channel.resource_uri.clone()),
    ];
    if let Some(token) = &channel.token {
        headers.push(("X-Goog-Channel-Token", token.clone()));
    }
    Job {
        channel_id: channel.id.clone(),
        calendar: channel.calendar.clone(),
        state: resource_state,
        message_number: channel.message_number,
        url: channel.address.clone(),
        headers,
        dropped,
    }
}

/// `exists` for every live channel on `calendar` that watches this event type.
pub fn changed(state: &mut SimState, calendar: &str, event_type: EventType) -> Vec<Job> {
    let now = state.now();
    let watching: Vec<usize> = (0..state.channels.len())
        .filter(|&i| {
            let c = &state.channels[i];
            c.calendar.eq_ignore_ascii_case(calendar)
                && c.is_live(now)
                && (c.event_types.is_empty()
                    || c.event_types.iter().any(|t| t == event_type.as_str()))
        })
        .collect();
    watching
        .into_iter()
        .map(|index| job(state, index, EXISTS))
        .collect()
}

struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    elapsed_ms: u64,
}

async fn post(sim: &Sim, job: &Job, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let mut request = sim
        .http
        .post(&job.url)
        .header("User-Agent", USER_AGENT)
        .header("Accept", "*/*")
        // hyper leaves the header out for an empty body; Google sends it.
        .header("Content-Length", "0")
        .body(Vec::new());
    for (name, value) in &job.headers {
        request = request.header(*name, value);
    }
    let (status, error) = match tokio::time::timeout(timeout, request.send()).await {
        Ok(Ok(response)) => (Some(response.status().as_u16()), None),
        Ok(Err(error)) => (None, Some(error.to_string())),
        Err(_) => (
            None,
            Some(format!("timed out after {} ms", timeout.as_millis())),
        ),
    };
    Outcome {
        status,
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
        channel_id: job.channel_id.clone(),
        calendar: job.calendar.clone(),
        state: job.state.to_owned(),
        message_number: job.message_number,
        url: job.url.clone(),
        status: outcome.status,
        attempt,
        elapsed_ms: outcome.elapsed_ms,
        error: outcome.error.clone(),
        dropped: job.dropped,
    });
    drop(state);
    sim.deliveries_changed.notify_waiters();
}

/// Sends `job`, retrying after each configured delay while the answer is 500/502/503/504 or
/// none, and while the channel lives.
async fn deliver(sim: Arc<Sim>, job: Job) {
    if job.dropped {
        let outcome = Outcome {
            status: None,
            error: Some("dropped on purpose".to_owned()),
            elapsed_ms: 0,
        };
        record(&sim, &job, 1, &outcome);
        return;
    }
    let (delays, timeout) = {
        let state = sim.lock();
        (
            state.seed.delivery_retry_ms.clone(),
            Duration::from_millis(state.seed.notification_timeout_ms),
        )
    };
    let mut attempt = 1u32;
    loop {
        let alive = {
            let state = sim.lock();
            let now = state.now();
            state
                .channels
                .iter()
                .any(|c| c.id == job.channel_id && c.is_live(now))
        };
        if !alive {
            return;
        }
        let outcome = post(&sim, &job, timeout).await;
        record(&sim, &job, attempt, &outcome);
        let retry = outcome.status.is_none_or(|s| RETRIED.contains(&s));
        if outcome.status.is_some_and(|s| DELIVERED.contains(&s)) || !retry {
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
    use crate::channels::Channel;
    use crate::seed::Seed;

    #[test]
    fn message_numbers_start_at_one_and_rise_by_at_most_a_thousand() {
        let mut state = SimState::from_seed(Seed::default()).expect("valid seed");
        state.channels.push(Channel {
            id: "c1".to_owned(),
            calendar: "agent.one@example.com".to_owned(),
            resource_id: "r1".to_owned(),
            resource_uri:
                "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json"
                    .to_owned(),
            token: Some("t".to_owned()),
            address: "http://127.0.0.1:9/hook".to_owned(),
            expiration: state.now() + chrono::Duration::hours(1),
            stopped: false,
            message_number: 0,
            event_types: Vec::new(),
        });
        assert_eq!(job(&mut state, 0, SYNC).message_number, 1);
        let mut last = 1;
        for _ in 0..50 {
            let jobs = changed(&mut state, "Agent.One@example.com", EventType::Default);
            let number = jobs[0].message_number;
            assert!(number > last && number <= last + 1000, "{last} → {number}");
            last = number;
        }
        let headers = &job(&mut state, 0, EXISTS).headers;
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"X-Goog-Channel-Token"));
        state.drop_notifications = 1;
        assert!(job(&mut state, 0, EXISTS).dropped);
        assert!(!job(&mut state, 0, EXISTS).dropped);
    }
}
