//! Faults on the bulk presence endpoint during a batch of ends (the all-hands' 11:00): whatever
//! the bulk write's answer, no agent stays off queue and each end is recorded once.

use std::time::Duration;

use genesys_sim::seed::DEMO_BUSINESS_UNIT;
use presence_autopilot::clock::Deadline;
use presence_autopilot::model::SystemPresence;
use presence_autopilot::policy::DEFAULT_POLICY;
use presence_autopilot::state::DecisionKind;
use serde_json::json;

use crate::support::all_hands::add_agents;
use crate::support::transition::Harness;

const AGENTS: usize = 6;
const BULK_PUT: &str = "/api/v2/users/presences/bulk";

/// `AGENTS` agents in a meeting applied by one batch of starts; their ends, not yet delivered.
async fn in_a_meeting(h: &Harness) -> (Vec<String>, Vec<String>) {
    let users: Vec<String> = add_agents(&h.sim, AGENTS, "40000000")
        .iter()
        .map(|user| user.as_str().to_owned())
        .collect();
    let edge = |detail: &str, prefix: &str| -> Vec<String> {
        users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                h.calendar(detail, &format!("{prefix}-{i}"), user, "all-hands", -1, 60)
            })
            .collect()
    };
    let starts = edge("Calendar Event Started", "start");
    let applied = h.service.handle_batch(&starts, h.deadline()).await;
    assert!(
        applied
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.decision == "applied")),
        "{applied:?}"
    );
    let ends = edge("Calendar Event Ended", "end");
    (users, ends)
}

/// The ends again, as the queue redelivers what failed; each must now be answered.
async fn redeliver(h: &Harness, ends: &[String]) -> Vec<String> {
    h.service
        .handle_batch(ends, h.deadline())
        .await
        .into_iter()
        .map(|result| {
            result
                .expect("the redelivery is answered")
                .decision
                .to_string()
        })
        .collect()
}

async fn everyone_back_and_recorded_once(h: &Harness, users: &[String]) {
    for user in users {
        assert_eq!(
            h.presence_of(user).await.system_presence,
            SystemPresence::Available,
            "{user} is back"
        );
        let kinds = h.audit_kinds(user).await;
        assert_eq!(
            kinds,
            [DecisionKind::Applied, DecisionKind::Restored],
            "{user}: one record for the end"
        );
    }
}

#[tokio::test]
async fn a_bulk_restore_answered_after_the_deadline_leaves_no_agent_stuck() {
    let h = Harness::with_policy(DEFAULT_POLICY, vec![DEMO_BUSINESS_UNIT.to_owned()]).await;
    let (users, ends) = in_a_meeting(&h).await;
    // The bulk PUT is served, but only after our deadline: we cannot know it landed.
    h.sim
        .inject_fault(
            json!({"method": "PUT", "path": BULK_PUT, "count": 1, "kind": "latency", "ms": 1500}),
        )
        .await;
    let short = Deadline::after(&h.clock, Duration::from_millis(700));

    let first = h.service.handle_batch(&ends, short).await;

    assert!(
        first
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.is_retryable())),
        "every end is given back for redelivery: {first:?}"
    );
    // The slow write still lands, as it would on Genesys (the control surface counts nothing).
    let landed = std::time::Instant::now();
    while h.sim.server.sim.lock().mutations.len() < 2 * AGENTS {
        assert!(
            landed.elapsed() < Duration::from_secs(10),
            "the bulk PUT never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // a poll interval, not a wait for an outcome
    }

    let again = redeliver(&h, &ends).await;

    assert_eq!(
        h.sim.server.sim.lock().mutations.len(),
        2 * AGENTS,
        "the landed restore is not written again: {again:?}"
    );
    assert_eq!(
        again,
        vec!["restored"; AGENTS],
        "recorded as ours, not as a hand change"
    );
    everyone_back_and_recorded_once(&h, &users).await;
}

#[tokio::test]
async fn a_bulk_restore_refused_by_a_503_storm_is_redelivered_and_restores() {
    let h = Harness::with_policy(DEFAULT_POLICY, vec![DEMO_BUSINESS_UNIT.to_owned()]).await;
    let (users, ends) = in_a_meeting(&h).await;
    h.sim
        .inject_fault(json!({"method": "PUT", "path": BULK_PUT, "count": 20, "kind": "status", "status": 503}))
        .await;

    let first = h.service.handle_batch(&ends, h.deadline()).await;

    assert!(
        first
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.is_retryable())),
        "{first:?}"
    );
    assert_eq!(
        h.sim.server.sim.lock().mutations.len(),
        AGENTS,
        "nothing restored yet"
    );
    h.sim
        .control(reqwest::Method::DELETE, "/sim/faults", json!({}))
        .await;

    let again = redeliver(&h, &ends).await;

    assert_eq!(again, vec!["restored"; AGENTS]);
    everyone_back_and_recorded_once(&h, &users).await;
}
