//! Round trips per transition, counted (never timed): every Genesys request by path and every
//! AWS call by operation, for a warm start and its end. Issue 13 sets the target (at most 3
//! Genesys and 3 DynamoDB calls per transition); these budgets are today's counts, so a change
//! that adds a call fails here and one that removes a call lowers the budget on purpose.

use std::collections::BTreeMap;

use genesys_sim::seed::DEMO_AGENTS;
use presence_autopilot::clock::Clock;
use presence_autopilot::model::UserId;

use crate::support::moto::CallCounter;
use crate::support::transition::Harness;

const STARTED: &str = "Calendar Event Started";
const ENDED: &str = "Calendar Event Ended";

/// What one transition cost, by service.
#[derive(Debug, Default, PartialEq, Eq)]
struct RoundTrips {
    genesys: BTreeMap<String, usize>,
    dynamodb: BTreeMap<String, usize>,
    sqs: BTreeMap<String, usize>,
}

impl RoundTrips {
    fn totals(&self) -> (usize, usize, usize) {
        let sum = |calls: &BTreeMap<String, usize>| calls.values().sum();
        (sum(&self.genesys), sum(&self.dynamodb), sum(&self.sqs))
    }
}

async fn counted(h: &Harness, event: &str) -> RoundTrips {
    let table = CallCounter::start(h.store.table()).await;
    let queue = CallCounter::start(&h.queue_url).await;
    let from = h.sim.served();
    let outcome = h
        .service
        .handle_json(event, h.deadline())
        .await
        .expect("handled");
    assert!(!outcome.is_rejected(), "{outcome:?}");
    let mut genesys = BTreeMap::new();
    for request in h.sim.served_since(from) {
        *genesys.entry(request).or_default() += 1;
    }
    RoundTrips {
        genesys,
        dynamodb: table.take().await,
        sqs: queue.take().await,
    }
}

#[tokio::test]
async fn a_warm_start_and_its_end_stay_within_the_round_trip_budget() {
    let h = Harness::start().await;
    let (warm_user, user) = (DEMO_AGENTS[1].0, DEMO_AGENTS[0].0);
    warm_up(&h, warm_user).await;
    // Steady state: the sweep keeps every agent's published schedule cached.
    let id = UserId::parse(user).expect("user id");
    h.shifts
        .refresh(&[id], h.clock.now(), h.deadline())
        .await
        .expect("schedule cached");

    let start = counted(&h, &h.calendar(STARTED, "e-1", user, "m-1", -1, 30)).await;
    let end = counted(&h, &h.calendar(ENDED, "e-2", user, "m-1", -1, 30)).await;

    println!("start: {start:#?}\nend: {end:#?}");
    // No SQS call, yet nothing unsaid: the relay finds both notifications in the stream.
    let relayed = h.notifications().await;
    let kinds: Vec<_> = relayed
        .iter()
        .filter(|n| n["userId"] == user)
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["presenceApplied", "presenceRestored"]);
    // (Genesys, DynamoDB, SQS) calls.
    assert_eq!(start.totals(), START_BUDGET, "{start:#?}");
    assert_eq!(end.totals(), END_BUDGET, "{end:#?}");
    assert_eq!(
        start.genesys.keys().collect::<Vec<_>>(),
        vec![
            "GET /api/v2/users",
            "GET /api/v2/users/{id}/presences/purecloud",
            "PATCH /api/v2/users/{id}/presences/purecloud",
        ],
        "presence read, routing status, presence write; nothing else"
    );
    for (name, trips) in [("start", &start), ("end", &end)] {
        assert_eq!(
            trips.dynamodb.get("BatchGetItem"),
            Some(&1),
            "{name}: state, chain head, schedule and event record in one read: {trips:#?}"
        );
        assert_eq!(trips.dynamodb.get("GetItem"), None, "{name}: {trips:#?}");
        assert_eq!(
            (
                trips.dynamodb.get("TransactWriteItems"),
                trips.dynamodb.get("PutItem"),
                trips.dynamodb.get("UpdateItem")
            ),
            (Some(&2), None, None),
            "{name}: the claim with the event's lease and the commit with its outcome and \
             notification; no write of the idempotency record or the outbox alone: {trips:#?}"
        );
    }
}

#[tokio::test]
async fn a_start_whose_schedule_is_not_cached_asks_wfm_once() {
    let h = Harness::start().await;
    let (warm_user, user) = (DEMO_AGENTS[1].0, DEMO_AGENTS[0].0);
    warm_up(&h, warm_user).await;

    let start = counted(&h, &h.calendar(STARTED, "e-1", user, "m-1", -1, 30)).await;

    println!("start: {start:#?}");
    assert_eq!(
        start
            .genesys
            .get("POST /api/v2/workforcemanagement/businessunits/{id}/agentschedules/search"),
        Some(&1),
        "{start:#?}"
    );
    assert_eq!(start.totals(), COLD_SCHEDULE_START_BUDGET, "{start:#?}");
}

/// Warm: the token, the business units and activity codes, the connections.
async fn warm_up(h: &Harness, warm_user: &str) {
    for (detail_type, id) in [(STARTED, "w-1"), (ENDED, "w-2")] {
        let event = h.calendar(detail_type, id, warm_user, "warm", -1, 30);
        h.service
            .handle_json(&event, h.deadline())
            .await
            .expect("warm-up");
    }
}

/// A start in steady state. Genesys: presence read, routing status, the PATCH (the decision's
/// read stands for the compare-and-set's). DynamoDB: one BatchGet of state + audit chain head +
/// cached schedule + the event's idempotency record, the state claim carrying the event's lease
/// (a transaction), the commit carrying its outcome and the notification in the state's outbox
/// (a transaction). SQS: none; the outbox relay sends the notification from the table's stream.
const START_BUDGET: (usize, usize, usize) = (3, 3, 0);
/// An end: presence read and PATCH; no routing status, no WFM; DynamoDB as a start.
const END_BUDGET: (usize, usize, usize) = (2, 3, 0);
/// A start before the sweep cached the schedule: one schedule search more, and its cache write.
const COLD_SCHEDULE_START_BUDGET: (usize, usize, usize) = (4, 4, 0);

#[tokio::test]
async fn a_cold_start_makes_no_genesys_call_and_the_first_event_resolves_the_policy_once() {
    let h = Harness::start().await;
    assert_eq!(h.sim.served(), 0, "assembling the service called Genesys");

    let definitions = "GET /api/v2/presence/definitions";
    let from = h.sim.served();
    let first = h.calendar(STARTED, "e-1", DEMO_AGENTS[0].0, "m-1", -1, 30);
    h.service
        .handle_json(&first, h.deadline())
        .await
        .expect("first");
    let calls = h.sim.served_since(from);
    assert_eq!(
        calls.iter().filter(|c| *c == definitions).count(),
        1,
        "{calls:?}"
    );

    let from = h.sim.served();
    let second = h.calendar(STARTED, "e-2", DEMO_AGENTS[1].0, "m-1", -1, 30);
    h.service
        .handle_json(&second, h.deadline())
        .await
        .expect("second");
    assert!(!h.sim.served_since(from).iter().any(|c| c == definitions));
}

#[tokio::test]
async fn a_policy_naming_a_presence_the_org_lacks_fails_the_event_retryably_with_the_key() {
    let policy = presence_autopilot::policy::DEFAULT_POLICY
        .replace("presence = \"Meeting\"", "presence = \"Board Meeting\"");
    let h = Harness::with_policy(&policy, Vec::new()).await;
    let event = h.calendar(STARTED, "e-1", DEMO_AGENTS[0].0, "m-1", -1, 30);

    let error = h
        .service
        .handle_json(&event, h.deadline())
        .await
        .expect_err("unresolvable");

    assert!(
        error.is_retryable(),
        "kept until the policy is fixed: {error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("meeting.presence") && text.contains("Board Meeting"),
        "{text}"
    );
    assert_eq!(h.patches(DEMO_AGENTS[0].0), 0);
}
