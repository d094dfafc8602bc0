//! Round trips per transition, counted (never timed): every Genesys request by path and every
//! AWS call by operation, for a warm start and its end. Issue 13 sets the target (at most 3
//! Genesys and 3 DynamoDB calls per transition); these budgets are today's counts, so a change
//! that adds a call fails here and one that removes a call lowers the budget on purpose.

use std::collections::BTreeMap;

use genesys_sim::seed::DEMO_AGENTS;

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
async fn a_warm_start_and_its_end_stay_within_todays_round_trip_budget() {
    let h = Harness::start().await;
    let (warm_user, user) = (DEMO_AGENTS[1].0, DEMO_AGENTS[0].0);
    // Warm: the token, the WFM caches, the connections.
    for (detail_type, id) in [(STARTED, "w-1"), (ENDED, "w-2")] {
        let event = h.calendar(detail_type, id, warm_user, "warm", -1, 30);
        h.service
            .handle_json(&event, h.deadline())
            .await
            .expect("warm-up");
    }

    let start = counted(&h, &h.calendar(STARTED, "e-1", user, "m-1", -1, 30)).await;
    let end = counted(&h, &h.calendar(ENDED, "e-2", user, "m-1", -1, 30)).await;

    println!("start: {start:#?}\nend: {end:#?}");
    // (Genesys, DynamoDB, SQS) calls.
    assert_eq!(start.totals(), START_BUDGET, "{start:#?}");
    assert_eq!(end.totals(), END_BUDGET, "{end:#?}");
}

/// A start for a user whose schedule is not cached yet. Genesys: presence read, routing status,
/// management unit + schedule search (WFM), the compare-and-set's own read and the PATCH.
/// DynamoDB: idempotency claim (Put) and completion (Update), state read, shift cache read
/// (BatchGet) and write (Put), the state claim (Put), the audit chain head read, the commit
/// transaction, the outbox emptied (Put). SQS: the notification.
const START_BUDGET: (usize, usize, usize) = (6, 9, 1);
/// An end: presence read, the compare-and-set's read and PATCH; no routing status, no WFM.
const END_BUDGET: (usize, usize, usize) = (3, 7, 1);
