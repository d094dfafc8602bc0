//! An all-hands: a thousand agents whose meeting starts at the same minute and ends at the same
//! minute, both edges handed to transition as the burst queue does (batches of `BATCH`), against
//! one token's rate window.
//! Genesys calls are counted, never timed: the client's waits for the window go through a clock
//! that also moves the simulator's (otherwise frozen) clock, so nothing sleeps. State, audit and
//! notifications are in memory here; their round trips are counted per transition in
//! `round_trips`, and a burst on the local AWS stand-in is `make bench`'s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use genesys_sim::seed::{self, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use presence_autopilot::clock::Clock;
use presence_autopilot::clock::Deadline;
use presence_autopilot::compose::{TransitionParts, assemble_transition};
use presence_autopilot::fakes::InMemoryStore;
use presence_autopilot::model::{SystemPresence, UserId};
use presence_autopilot::policy::{DEFAULT_POLICY, Policy};
use presence_autopilot::ports::{AuditQueries, StateStore};
use presence_autopilot::service::transition::TransitionService;
use presence_autopilot::state::{DecisionKind, NotificationKind, TriggerId};
use serde_json::json;

use crate::support::sim::TestSim;

const AGENTS: usize = 1_000;
/// The burst queue's `BatchSize` (infra/template.yaml).
const BATCH: usize = 100;
/// A window the burst must wait out (the real one is 300 a minute): 25 calls per 30 s.
const WINDOW: (u32, u32) = (25, 30);
/// Per invocation: the function's 120 s timeout (infra/template.yaml) less its answer margin.
const INVOCATION: Duration = Duration::from_secs(115);

/// The fewest Genesys API calls the per-call limits allow for `agents` starts: presence reads
/// and bulk writes take 50 users, the users listing (routing status) and the schedule search
/// 100; the presence definitions, the business units and their activity codes are read once.
fn minimum_calls(agents: usize) -> usize {
    let per = |size: usize| agents.div_ceil(size);
    per(50) + per(100) + per(100) + per(50) + 3
}

/// The fewest Genesys API calls for `agents` ends: presence reads and bulk writes take 50 users
/// (the definitions are known from the start).
fn minimum_restore_calls(agents: usize) -> usize {
    2 * agents.div_ceil(50)
}

/// What one edge of a burst cost.
#[derive(Debug)]
struct Burst {
    edge: &'static str,
    agents: usize,
    minimum: usize,
    calls: usize,
    refused: usize,
    deliveries: usize,
    waits: Vec<Duration>,
    /// Real time spent, waits not included (they are simulated).
    working: Duration,
}

impl Burst {
    fn report(&self, (requests, seconds): (u32, u32)) {
        let waited: Duration = self.waits.iter().sum();
        let minimum = self.minimum;
        let floor =
            Duration::from_secs_f64(minimum as f64 * f64::from(seconds) / f64::from(requests));
        println!(
            "| {} {} | {requests} per {seconds} s | {} ({:.2}× the minimum {minimum}) | {} | {} | {:.1} s waited + {:.1} s working = {:.1} s (floor {:.1} s) |",
            self.agents,
            self.edge,
            self.calls,
            self.calls as f64 / minimum as f64,
            self.refused,
            self.deliveries,
            waited.as_secs_f64(),
            self.working.as_secs_f64(),
            (waited + self.working).as_secs_f64(),
            floor.as_secs_f64(),
        );
    }
}

#[tokio::test]
async fn a_thousand_agents_are_all_applied_then_restored_within_the_rate_window_without_a_429() {
    let (starts, ends) = run(AGENTS, WINDOW).await;
    for burst in [&starts, &ends] {
        burst.report(WINDOW);
        assert_eq!(
            burst.refused, 0,
            "the client waited for the window, drew no 429"
        );
        assert!(
            burst.calls * 10 <= burst.minimum * 12,
            "{} Genesys calls against a minimum of {} ({})",
            burst.calls,
            burst.minimum,
            burst.edge
        );
        assert_eq!(burst.deliveries, AGENTS / BATCH, "nothing had to come back");
    }
    let windows = starts.calls.div_ceil(WINDOW.0 as usize);
    assert_eq!(
        starts.waits.len(),
        windows - 1,
        "one wait per spent window: {:?}",
        starts.waits
    );
}

/// `make bench`: ten thousand agents under the real limit (300 a minute). Ignored by `make
/// test` for its length, not its outcome; it asserts the same as the thousand.
#[tokio::test]
#[ignore = "a benchmark: make bench runs it"]
async fn ten_thousand_agents_under_the_real_rate_limit() {
    let window = (300, 60);
    let (starts, ends) = run(10_000, window).await;
    for burst in [&starts, &ends] {
        burst.report(window);
        assert_eq!(burst.refused, 0);
        assert!(burst.calls * 10 <= burst.minimum * 12, "{burst:?}");
    }
}

/// `agents` starts of one meeting, then its `agents` ends, through `handle_batch`, `BATCH` at a
/// time, with the simulator allowing `window` = (requests, seconds) per token; checks that every
/// agent was applied, then restored, exactly once each, audited and notified.
async fn run(agents: usize, window: (u32, u32)) -> (Burst, Burst) {
    let sim = TestSim::start().await;
    let (clock, manual) = sim.linked_clock();
    let genesys = sim.client_on((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), clock.clone());
    let store = Arc::new(InMemoryStore::new(clock.clone()));
    let (deps, _) = assemble_transition(TransitionParts {
        genesys: genesys.clone(),
        store: store.clone(),
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
    let users = add_agents(&sim, agents);
    let (requests_per_window, window_seconds) = window;
    sim.control(
        reqwest::Method::PUT,
        "/sim/ratelimit",
        json!({"requestsPerWindow": requests_per_window, "windowSeconds": window_seconds}),
    )
    .await;
    let now = manual.now();
    let meeting = AllHands {
        sim: &sim,
        service: &service,
        manual: &manual,
        users: &users,
        now,
    };
    let starts = meeting
        .play("Started", "applied", minimum_calls(agents))
        .await;
    assert_eq!(
        sim.server.sim.lock().mutations.len(),
        agents,
        "one write each"
    );
    let trigger = TriggerId::parse("town-hall").expect("id");
    let records = store.by_trigger(&trigger).await.expect("audit");
    assert_eq!(records.len(), agents);
    assert!(records.iter().all(|r| r.kind == DecisionKind::Applied));
    // What the outbox relay sends: the notification each commit put in the user's outbox.
    let mut notified = 0;
    for user in &users {
        let state = store.get(user).await.expect("state").expect("stored");
        let kinds: Vec<_> = state.outbox.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NotificationKind::PresenceApplied], "{user}");
        notified += 1;
    }
    assert_eq!(notified, agents, "one notification each");
    for presence in first_and_last(&genesys, &manual, &users).await {
        assert_eq!(presence, SystemPresence::Meeting);
    }

    // The meeting ends for everyone at the same minute.
    let ends = meeting
        .play("Ended", "restored", minimum_restore_calls(agents))
        .await;
    assert_eq!(
        sim.server.sim.lock().mutations.len(),
        2 * agents,
        "one restore each"
    );
    let records = store.by_trigger(&trigger).await.expect("audit");
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == DecisionKind::Restored)
            .count(),
        agents
    );
    for presence in first_and_last(&genesys, &manual, &users).await {
        assert_ne!(presence, SystemPresence::Meeting);
    }
    (starts, ends)
}

/// One meeting of every agent, against the simulator.
struct AllHands<'a> {
    sim: &'a TestSim,
    service: &'a TransitionService,
    manual: &'a presence_autopilot::clock::ManualClock,
    users: &'a [UserId],
    now: chrono::DateTime<chrono::Utc>,
}

impl AllHands<'_> {
    /// One edge (`edge`: "Started" or "Ended") for every agent, delivered as the burst queue
    /// does; every outcome must be `outcome`. What it cost in Genesys calls, waits and time.
    async fn play(&self, edge: &'static str, outcome: &str, minimum: usize) -> Burst {
        let (sim, service, manual, users, now) =
            (self.sim, self.service, self.manual, self.users, self.now);
        sim.control(reqwest::Method::DELETE, "/sim/requests", json!({}))
            .await;
        let events: Vec<String> = users
            .iter()
            .enumerate()
            .map(|(i, user)| edge_event(i, user, now, edge))
            .collect();
        let waits_before = manual.sleeps().len();
        let started = Instant::now();
        let deliveries = deliver(service, manual, events, outcome).await;
        let working = started.elapsed();
        let requests = sim.server.sim.lock().requests.clone();
        let api: Vec<_> = requests
            .iter()
            .filter(|r| r.path != "/oauth/token")
            .collect();
        Burst {
            edge: if edge == "Started" { "starts" } else { "ends" },
            agents: users.len(),
            minimum,
            calls: api.len(),
            refused: api.iter().filter(|r| r.status == 429).count(),
            deliveries,
            waits: manual.sleeps()[waits_before..].to_vec(),
            working,
        }
    }
}

/// The first and the last agent's presence, as Genesys holds it.
async fn first_and_last(
    genesys: &presence_autopilot::genesys::GenesysClient,
    manual: &presence_autopilot::clock::ManualClock,
    users: &[UserId],
) -> Vec<SystemPresence> {
    let mut found = Vec::new();
    for user in [&users[0], &users[users.len() - 1]] {
        let presence = genesys
            .get_presence(user, Deadline::after(manual, INVOCATION))
            .await
            .expect("presence");
        found.push(presence.system_presence);
    }
    found
}

/// The events, `BATCH` at a time, as the burst queue delivers them; a record that failed
/// retryably comes back in a later batch (SQS). Every outcome must be `expected`.
async fn deliver(
    service: &TransitionService,
    manual: &presence_autopilot::clock::ManualClock,
    events: Vec<String>,
    expected: &str,
) -> usize {
    let agents = events.len();
    let mut pending: VecDeque<String> = events.into();
    let mut deliveries = 0;
    while !pending.is_empty() {
        deliveries += 1;
        assert!(
            deliveries <= 2 * agents / BATCH,
            "the burst does not converge"
        );
        let batch: Vec<String> = pending.drain(..BATCH.min(pending.len())).collect();
        let results = service
            .handle_batch(&batch, Deadline::after(manual, INVOCATION))
            .await;
        for (body, result) in batch.into_iter().zip(results) {
            match result {
                Ok(outcome) => assert_eq!(outcome.decision, expected, "{outcome:?}"),
                Err(error) if error.is_retryable() => pending.push_back(body),
                Err(error) => panic!("lost: {error}"),
            }
        }
    }
    deliveries
}

fn add_agents(sim: &TestSim, agents: usize) -> Vec<UserId> {
    let mut users = Vec::with_capacity(agents);
    let mut state = sim.server.sim.lock();
    for index in 0..agents {
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

/// The meeting's start or end (`edge`: "Started" or "Ended") for one agent.
fn edge_event(
    index: usize,
    user: &UserId,
    now: chrono::DateTime<chrono::Utc>,
    edge: &str,
) -> String {
    json!({
        "version": "0", "id": format!("town-hall-{edge}-{index}"), "detail-type": format!("Calendar Event {edge}"),
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
