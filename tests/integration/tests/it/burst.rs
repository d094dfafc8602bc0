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

use crate::support::all_hands::{
    BATCH, Edge, Floor, INVOCATION, Meeting, add_agents, agent_ids, policy_for, template_default,
};
use crate::support::sim::TestSim;
use crate::support::transition::Harness;

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

/// One transition container as `compose` assembles it, on `genesys` and the in-memory `store`.
async fn container(
    genesys: presence_autopilot::genesys::GenesysClient,
    store: &Arc<InMemoryStore>,
    clock: &Arc<dyn presence_autopilot::clock::Clock>,
    policy: &str,
) -> (
    TransitionService,
    Arc<presence_autopilot::wfm::CachedShifts>,
) {
    let (deps, shifts) = assemble_transition(TransitionParts {
        genesys,
        store: store.clone(),
        clock: clock.clone(),
        policy: Policy::from_toml(policy).expect("policy"),
        business_units: Vec::new(),
        shift_cache: Duration::from_secs(900),
        idempotency_ttl: Duration::from_secs(86_400),
        presence_fresh_for: Duration::from_secs(1),
    })
    .await
    .expect("assembles");
    (TransitionService::new(deps), shifts)
}

/// `make bench`: the same meeting for a thousand agents with state, audit and idempotency on
/// the local AWS stand-in (the DynamoDB adapter, its calls counted), timed in real time under
/// Genesys's real limit. The stand-in serialises requests under one lock: a floor for what
/// DynamoDB, which serves them in parallel, would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench runs it"]
async fn a_thousand_agents_on_the_stand_in() {
    let users = agent_ids(1_000, "60000000");
    let h = Harness::with_policy(&policy_for(&users), Vec::new()).await;
    add_agents(&h.sim, users.len(), "60000000");
    let (requests, seconds) = GENESYS_WINDOW;
    h.sim
        .control(
            reqwest::Method::PUT,
            "/sim/ratelimit",
            json!({"requestsPerWindow": requests, "windowSeconds": seconds}),
        )
        .await;
    let floor = Floor {
        sim: &h.sim,
        service: h.service.clone(),
        shifts: h.shifts.clone(),
        state: h.store.clone(),
        audit: h.store.clone(),
        clock: Arc::new(h.clock.clone()),
        manual: h.clock.clone(),
        users,
        table: Some(h.store.table().to_owned()),
    };
    let meeting = floor.play().await;
    for edge in [&meeting.start, &meeting.sweep, &meeting.end] {
        let per_agent = edge.dynamodb.values().sum::<usize>() as f64 / edge.decided as f64;
        println!(
            "| {} {} (stand-in) | {} ({:.2}× the minimum {}) | {} | {:.2} ({:?}) | {:.1} s |",
            edge.agents,
            edge.name,
            edge.calls,
            edge.ratio(),
            edge.minimum,
            edge.refused,
            per_agent,
            edge.dynamodb,
            edge.working.as_secs_f64(),
        );
    }
    assert_targets(&meeting);
}

/// The meeting for `agents` on one transition container, state in memory, the simulator
/// allowing `window` = (requests, seconds) per token.
async fn play(agents: usize, window: (u32, u32)) -> Meeting {
    let sim = TestSim::start().await;
    let (clock, manual) = sim.linked_clock();
    let genesys = sim.client_on((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), clock.clone());
    let store = Arc::new(InMemoryStore::new(clock.clone()));
    let users = add_agents(&sim, agents, "30000000");
    let (service, shifts) = container(genesys, &store, &clock, &policy_for(&users)).await;
    let (requests, seconds) = window;
    sim.control(
        reqwest::Method::PUT,
        "/sim/ratelimit",
        json!({"requestsPerWindow": requests, "windowSeconds": seconds}),
    )
    .await;
    let floor = Floor {
        sim: &sim,
        service: Arc::new(service),
        shifts,
        state: store.clone(),
        audit: store,
        clock,
        manual,
        users,
        table: None,
    };
    floor.play().await
}

/// Lambda runs a burst in as many containers as the burst queue's mapping allows (the
/// template's `TransitionReservedConcurrency`); each cold start reads the secret and asks for a
/// token of its own, which it keeps for the token's lifetime (24 h by default). A thousand
/// agents' starts, then their ends, spread over that many containers at once: one token request
/// per container, none for the ends.
#[tokio::test]
async fn a_burst_asks_one_token_per_container_and_none_again_at_its_end() {
    use presence_autopilot::clock::{Clock, Deadline};
    let containers = template_default("TransitionReservedConcurrency");
    assert!(containers >= 2, "the template reserves {containers}");
    let sim = TestSim::start().await;
    let (clock, manual) = sim.linked_clock();
    let store = Arc::new(InMemoryStore::new(clock.clone()));
    let users = add_agents(&sim, 1_000, "50000000");
    let mut services = Vec::new();
    for _ in 0..containers {
        let genesys = sim.client_on((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), clock.clone());
        services.push(container(genesys, &store, &clock, &policy_for(&[])).await.0);
    }
    let now = manual.now();
    for (detail, outcome) in [("Started", "applied"), ("Ended", "restored")] {
        let tokens_before = sim.count_token_requests();
        let events: Vec<String> = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                json!({
                    "id": format!("c-{detail}-{i}"), "detail-type": format!("Calendar Event {detail}"),
                    "source": "presence-autopilot.test", "time": now,
                    "detail": {"userId": user.as_str(), "calendarEventId": "town-hall",
                        "start": now, "end": now + chrono::Duration::minutes(60)},
                })
                .to_string()
            })
            .collect();
        let batches: Vec<&[String]> = events.chunks(BATCH).collect();
        // Batch i goes to container i % containers; the containers run at once.
        let answers = futures::future::join_all(services.iter().enumerate().map(|(c, service)| {
            let mine: Vec<&[String]> = batches
                .iter()
                .skip(c)
                .step_by(containers)
                .copied()
                .collect();
            let deadline = Deadline::after(&manual, INVOCATION);
            async move {
                let mut answered = Vec::new();
                for batch in mine {
                    answered.extend(service.handle_batch(batch, deadline).await);
                }
                answered
            }
        }))
        .await;
        let answers: Vec<_> = answers.into_iter().flatten().collect();
        assert_eq!(answers.len(), users.len());
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_ok_and(|o| o.decision == outcome)),
            "{:?}",
            answers
                .iter()
                .find(|a| a.as_ref().map_or(true, |o| o.decision != outcome))
        );
        let asked = sim.count_token_requests() - tokens_before;
        let expected = if detail == "Started" {
            containers.min(batches.len())
        } else {
            0
        };
        println!(
            "token requests, 1,000 agents' {detail} edge over {containers} containers: {asked}"
        );
        assert_eq!(asked, expected, "{detail}: one token per container, kept");
    }
}
