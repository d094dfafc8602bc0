//! An all-hands: a thousand agents whose meeting starts at the same minute, handed to
//! transition as the burst queue does (batches of `BATCH`), against one token's rate window.
//! Genesys calls are counted, never timed: the client's waits for the window go through a clock
//! that also moves the simulator's (otherwise frozen) clock, so nothing sleeps. State, audit and
//! notifications are in memory here; their round trips are counted per transition in
//! `round_trips`, and a burst on the local AWS stand-in is `make bench`'s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use genesys_sim::seed::{self, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use presence_autopilot::clock::Clock;
use presence_autopilot::clock::Deadline;
use presence_autopilot::compose::{TransitionParts, assemble_transition};
use presence_autopilot::fakes::{FakeQueue, InMemoryStore};
use presence_autopilot::model::{SystemPresence, UserId};
use presence_autopilot::policy::{DEFAULT_POLICY, Policy};
use presence_autopilot::ports::AuditLog;
use presence_autopilot::service::transition::TransitionService;
use presence_autopilot::state::{DecisionKind, TriggerId};
use serde_json::json;

use crate::support::sim::TestSim;

const AGENTS: usize = 1_000;
/// The burst queue's `BatchSize` (infra/template.yaml).
const BATCH: usize = 100;
/// A window the burst must wait out (the real one is 300 a minute): 25 calls per 30 s, so a
/// wait always fits in one invocation.
const WINDOW: (u32, u32) = (25, 30);
/// Per invocation: the function's 60 s timeout less its answer margin.
const INVOCATION: Duration = Duration::from_secs(55);

/// The fewest Genesys API calls the per-call limits allow for `agents` starts: presence reads
/// and bulk writes take 50 users, the users listing (routing status) and the schedule search
/// 100; the business units and their activity codes are read once.
fn minimum_calls(agents: usize) -> usize {
    let per = |size: usize| agents.div_ceil(size);
    per(50) + per(100) + per(100) + per(50) + 2
}

#[tokio::test]
async fn a_thousand_agents_are_all_applied_within_the_rate_window_without_a_429() {
    let sim = TestSim::start().await;
    let (clock, manual) = sim.linked_clock();
    let genesys = sim.client_on((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), clock.clone());
    let store = Arc::new(InMemoryStore::new(clock.clone()));
    let queue = FakeQueue::default();
    let (deps, _) = assemble_transition(TransitionParts {
        genesys: genesys.clone(),
        store: store.clone(),
        queue: Arc::new(queue.clone()),
        clock: clock.clone(),
        policy: Policy::from_toml(DEFAULT_POLICY).expect("policy"),
        business_units: Vec::new(),
        shift_cache: Duration::from_secs(900),
        idempotency_ttl: Duration::from_secs(86_400),
        presence_fresh_for: Duration::from_secs(1),
    })
    .await
    .expect("assembles");
    let service = TransitionService::new(deps);
    let users = add_agents(&sim).await;
    let (requests_per_window, window_seconds) = WINDOW;
    sim.control(
        reqwest::Method::PUT,
        "/sim/ratelimit",
        json!({"requestsPerWindow": requests_per_window, "windowSeconds": window_seconds}),
    )
    .await;
    sim.control(reqwest::Method::DELETE, "/sim/requests", json!({}))
        .await;
    let now = manual.now();
    let mut pending: VecDeque<String> = users
        .iter()
        .enumerate()
        .map(|(i, user)| start_event(i, user, now))
        .collect();

    // SQS semantics: a record that failed retryably comes back in a later batch.
    let mut deliveries = 0;
    while !pending.is_empty() {
        deliveries += 1;
        assert!(
            deliveries <= 2 * AGENTS / BATCH,
            "the burst does not converge"
        );
        let batch: Vec<String> = pending.drain(..BATCH.min(pending.len())).collect();
        let results = service
            .handle_batch(&batch, Deadline::after(&manual, INVOCATION))
            .await;
        for (body, result) in batch.into_iter().zip(results) {
            match result {
                Ok(outcome) => assert_eq!(outcome.decision, "applied", "{outcome:?}"),
                Err(error) if error.is_retryable() => pending.push_back(body),
                Err(error) => panic!("lost: {error}"),
            }
        }
    }

    let requests = sim.server.sim.lock().requests.clone();
    let api: Vec<_> = requests
        .iter()
        .filter(|r| r.path != "/oauth/token")
        .collect();
    let refused = api.iter().filter(|r| r.status == 429).count();
    println!(
        "{AGENTS} agents: {} Genesys calls (minimum {}), {refused} refused, waits {:?}",
        api.len(),
        minimum_calls(AGENTS),
        manual.sleeps()
    );
    assert_eq!(refused, 0, "the client waited for the window, drew no 429");
    let minimum = minimum_calls(AGENTS);
    assert!(
        api.len() * 10 <= minimum * 12,
        "{} Genesys calls against a minimum of {minimum}",
        api.len()
    );
    assert_eq!(deliveries, AGENTS / BATCH, "nothing had to come back");
    let windows = api.len().div_ceil(requests_per_window as usize);
    assert_eq!(
        manual.sleeps().len(),
        windows - 1,
        "one wait per spent window: {:?}",
        manual.sleeps()
    );
    assert_eq!(
        sim.server.sim.lock().mutations.len(),
        AGENTS,
        "one write each"
    );
    let trigger = TriggerId::parse("town-hall").expect("id");
    let records = store.by_trigger(&trigger).await.expect("audit");
    assert_eq!(records.len(), AGENTS);
    assert!(records.iter().all(|r| r.kind == DecisionKind::Applied));
    assert_eq!(queue.sent().len(), AGENTS, "one notification each");
    for user in [&users[0], &users[AGENTS - 1]] {
        let presence = genesys
            .get_presence(user, Deadline::after(&manual, INVOCATION))
            .await
            .expect("presence");
        assert_eq!(presence.system_presence, SystemPresence::Meeting);
    }
}

async fn add_agents(sim: &TestSim) -> Vec<UserId> {
    let mut users = Vec::with_capacity(AGENTS);
    let mut state = sim.server.sim.lock();
    for index in 0..AGENTS {
        let id = format!("30000000-0000-4000-8000-{index:012}");
        let user: seed::UserSeed = serde_json::from_value(json!({
            "id": id, "name": format!("Agent {index}"), "email": format!("c{index}@example.com"),
            "managementUnitId": seed::DEMO_MANAGEMENT_UNIT,
        }))
        .expect("user seed");
        state.upsert_user(user).expect("user added");
        users.push(UserId::parse(&id).expect("uuid"));
    }
    users
}

fn start_event(index: usize, user: &UserId, now: chrono::DateTime<chrono::Utc>) -> String {
    json!({
        "version": "0", "id": format!("town-hall-{index}"), "detail-type": "Calendar Event Started",
        "source": "presence-autopilot.test", "account": "123456789012", "time": now,
        "region": "us-east-1", "resources": [],
        "detail": {
            "userId": user.as_str(),
            "calendarEventId": "town-hall",
            "start": now - chrono::Duration::minutes(1),
            "end": now + chrono::Duration::minutes(60),
            "showAs": "busy", "responseStatus": "accepted", "subject": "Town hall",
        }
    })
    .to_string()
}
