//! The all-hands, both edges (`support::all_hands`): a thousand agents here, ten thousand under
//! `make bench`, against one token's rate window, with the floor's mix of hand changes, calls,
//! opt-outs and duplicate deliveries.
//! Genesys calls are counted, never timed: the client's waits for the window go through a clock
//! that also moves the simulator's (otherwise frozen) clock, so nothing sleeps. State, audit and
//! notifications are in memory here; the same meeting on the local AWS stand-in, timed, is
//! `all_hands_on_the_stand_in` (`make bench`).

use std::sync::Arc;
use std::time::Duration;

use genesys_sim::seed::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use presence_autopilot::compose::{TransitionParts, assemble_transition};
use presence_autopilot::fakes::InMemoryStore;
use presence_autopilot::policy::Policy;
use presence_autopilot::service::transition::TransitionService;
use serde_json::json;

use crate::support::all_hands::{BATCH, Edge, Floor, Meeting, add_agents, policy_for};
use crate::support::sim::TestSim;

/// A window the burst must wait out (the real one is 300 a minute): 25 calls per 30 s.
const WINDOW: (u32, u32) = (25, 30);
/// Genesys's default: 300 requests a minute per token.
const GENESYS_WINDOW: (u32, u32) = (300, 60);

/// One report row: `| agents step | window | calls (× minimum) | 429s | tokens | deliveries | time |`.
pub fn report(edge: &Edge, (requests, seconds): (u32, u32)) {
    let waited = edge.waited();
    println!(
        "| {} {} | {requests} per {seconds} s | {} ({:.2}× the minimum {}) | {} | {} | {} ({} duplicate answers) | {:.1} s waited + {:.1} s working = {:.1} s (floor {:.1} s) |",
        edge.agents,
        edge.name,
        edge.calls,
        edge.ratio(),
        edge.minimum,
        edge.refused,
        edge.token_requests,
        edge.deliveries,
        edge.duplicates,
        waited.as_secs_f64(),
        edge.working.as_secs_f64(),
        (waited + edge.working).as_secs_f64(),
        edge.floor((requests, seconds)).as_secs_f64(),
    );
}

/// The targets at both edges: no 429, calls within 1.05× the minimum.
fn assert_targets(meeting: &Meeting) {
    for edge in [&meeting.start, &meeting.end] {
        assert_eq!(
            edge.refused, 0,
            "the client waited for the window: {edge:?}"
        );
        assert!(
            edge.calls * 100 <= edge.minimum * 105,
            "{} Genesys calls against a minimum of {} ({})",
            edge.calls,
            edge.minimum,
            edge.name
        );
    }
    assert_eq!(meeting.sweep.refused, 0, "{:?}", meeting.sweep);
}

#[tokio::test]
async fn a_thousand_agents_meet_and_come_back_within_the_rate_window() {
    let (meeting, window) = (play(1_000, WINDOW).await, WINDOW);
    for edge in [&meeting.start, &meeting.sweep, &meeting.end] {
        report(edge, window);
    }
    assert_targets(&meeting);
    let batches = 1_000 / BATCH;
    for edge in [&meeting.start, &meeting.end] {
        assert_eq!(
            edge.deliveries,
            batches + 1,
            "ten batches and one twice: {edge:?}"
        );
        assert_eq!(
            edge.duplicates, BATCH,
            "the batch delivered twice answered as stored"
        );
    }
    let windows = meeting.start.calls.div_ceil(WINDOW.0 as usize);
    assert_eq!(
        meeting.start.waits.len(),
        windows - 1,
        "one wait per spent window: {:?}",
        meeting.start.waits
    );
}

/// `make bench`: ten thousand agents under the real limit. Ignored by `make test` for its
/// length, not its outcome; it asserts the same as the thousand.
#[tokio::test]
#[ignore = "a benchmark: make bench runs it"]
async fn ten_thousand_agents_under_the_real_rate_limit() {
    let meeting = play(10_000, GENESYS_WINDOW).await;
    for edge in [&meeting.start, &meeting.sweep, &meeting.end] {
        report(edge, GENESYS_WINDOW);
    }
    assert_targets(&meeting);
    for edge in [&meeting.start, &meeting.end] {
        let time = edge.waited() + edge.working;
        assert!(
            time.as_secs_f64() <= 1.2 * edge.floor(GENESYS_WINDOW).as_secs_f64().max(60.0),
            "{edge:?}"
        );
    }
}

/// The meeting for `agents` on one transition container, state in memory, the simulator
/// allowing `window` = (requests, seconds) per token.
async fn play(agents: usize, window: (u32, u32)) -> Meeting {
    let sim = TestSim::start().await;
    let (clock, manual) = sim.linked_clock();
    let genesys = sim.client_on((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), clock.clone());
    let store = Arc::new(InMemoryStore::new(clock.clone()));
    let users = add_agents(&sim, agents, "30000000");
    let (deps, shifts) = assemble_transition(TransitionParts {
        genesys,
        store: store.clone(),
        clock: clock.clone(),
        policy: Policy::from_toml(&policy_for(&users)).expect("policy"),
        business_units: Vec::new(),
        shift_cache: Duration::from_secs(900),
        idempotency_ttl: Duration::from_secs(86_400),
        presence_fresh_for: Duration::from_secs(1),
    })
    .await
    .expect("assembles");
    let (requests, seconds) = window;
    sim.control(
        reqwest::Method::PUT,
        "/sim/ratelimit",
        json!({"requestsPerWindow": requests, "windowSeconds": seconds}),
    )
    .await;
    let floor = Floor {
        sim: &sim,
        service: Arc::new(TransitionService::new(deps)),
        shifts,
        state: store.clone(),
        audit: store,
        clock,
        manual,
        users,
    };
    floor.play().await
}
