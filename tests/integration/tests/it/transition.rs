//! The transition use case end to end: the Genesys simulator, DynamoDB and SQS on moto.

use genesys_sim::seed::{self, DEMO_AGENTS};
use presence_autopilot::model::SystemPresence;
use presence_autopilot::policy::DEFAULT_POLICY;
use presence_autopilot::state::DecisionKind;
use serde_json::json;

use crate::support::transition::Harness;

const STARTED: &str = "Calendar Event Started";
const ENDED: &str = "Calendar Event Ended";

fn ada() -> &'static str {
    DEMO_AGENTS[0].0
}

fn dee() -> &'static str {
    DEMO_AGENTS[3].0
}

#[tokio::test]
async fn meeting_start_sets_meeting_and_its_end_restores_the_previous_presence() {
    let h = Harness::start().await;
    let start = h.calendar(STARTED, "e-1", "ada@example.com", "m-1", -1, 30);

    let outcome = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("handled");

    assert_eq!(outcome.decision, "applied", "{outcome:?}");
    let during = h.presence_of(ada()).await;
    assert_eq!(during.system_presence, SystemPresence::Meeting);
    assert!(
        during.message.starts_with("In a meeting until"),
        "{}",
        during.message
    );
    assert!(
        !during.message.contains("Confidential"),
        "the subject stays private"
    );

    let end = h.calendar(ENDED, "e-2", "ada@example.com", "m-1", -1, 30);
    let outcome = h
        .service
        .handle_json(&end, h.deadline())
        .await
        .expect("handled");

    assert_eq!(outcome.decision, "restored", "{outcome:?}");
    let after = h.presence_of(ada()).await;
    assert_eq!(
        (after.system_presence, after.message.as_str()),
        (SystemPresence::Available, "")
    );
    assert_eq!(
        h.audit_kinds(ada()).await,
        vec![DecisionKind::Applied, DecisionKind::Restored]
    );
    let notifications = h.notifications().await;
    let kinds: Vec<&str> = notifications
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["presenceApplied", "presenceRestored"]);
    assert_eq!(
        notifications[0]["payload"]["presence"]["systemPresence"],
        "Meeting"
    );
    assert_eq!(notifications[0]["payload"]["email"], "ada@example.com");
    let state = h.store.as_ref();
    let stored = presence_autopilot::ports::StateStore::get(
        state,
        &presence_autopilot::model::UserId::parse(ada()).expect("uuid"),
    )
    .await
    .expect("get")
    .expect("state");
    // The outbox holds the last commit's notification; the relay sent each commit's once.
    let kinds: Vec<_> = stored.outbox.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, vec!["presenceRestored"]);
    assert!(
        h.notifications().await.is_empty(),
        "nothing is relayed twice"
    );
}

#[tokio::test]
async fn a_change_made_during_the_meeting_is_not_restored_over() {
    let h = Harness::start().await;
    h.service
        .handle_json(
            &h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("start");
    h.sim.set_presence_as(ada(), "Busy", "agent").await;

    let outcome = h
        .service
        .handle_json(
            &h.calendar(ENDED, "e-2", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("end");

    assert_eq!(outcome.decision, "skipped");
    assert_eq!(
        outcome.reason.as_deref(),
        Some("the presence was changed by someone else")
    );
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Busy
    );
    let audit = h.audit(ada()).await;
    assert_eq!(
        audit.last().map(|r| (r.kind, r.reason.clone())),
        Some((DecisionKind::Skipped, outcome.reason))
    );
    assert_eq!(h.patches(ada()), 1, "only the start wrote");
}

#[tokio::test]
async fn genesys_presence_events_mark_foreign_changes_and_recognise_our_own() {
    let h = Harness::start().await;
    h.service
        .handle_json(
            &h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("start");
    h.sim.set_presence_as(ada(), "Busy", "supervisor").await;
    // The events Genesys emitted: our Meeting, then the supervisor's Busy.
    let events = h.sim.server.sim.lock().events.clone();
    assert_eq!(events.len(), 2);

    let ours = h
        .service
        .handle_json(&events[0].to_string(), h.deadline())
        .await
        .expect("own change");
    let theirs = h
        .service
        .handle_json(&events[1].to_string(), h.deadline())
        .await
        .expect("foreign change");

    assert_eq!(ours.decision, "ignored", "no ping-pong on our own write");
    assert_eq!(theirs.decision, "skipped");
    // Even if the supervisor puts Meeting back with our exact message, the end leaves it alone.
    let end = h
        .service
        .handle_json(
            &h.calendar(ENDED, "e-2", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("end");
    assert_eq!(
        end.reason.as_deref(),
        Some("the presence was changed by someone else")
    );
    assert_eq!(
        h.audit_kinds(ada()).await,
        vec![
            DecisionKind::Applied,
            DecisionKind::Skipped,
            DecisionKind::Skipped
        ]
    );
}

#[tokio::test]
async fn overlapping_meetings_keep_meeting_until_the_last_one_ends() {
    let h = Harness::start().await;
    let d = || h.deadline();
    assert_eq!(
        h.service
            .handle_json(&h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30), d())
            .await
            .expect("1")
            .decision,
        "applied"
    );
    assert_eq!(
        h.service
            .handle_json(&h.calendar(STARTED, "e-2", ada(), "m-2", -1, 60), d())
            .await
            .expect("2")
            .decision,
        "kept"
    );
    assert_eq!(
        h.service
            .handle_json(&h.calendar(ENDED, "e-3", ada(), "m-1", -1, 30), d())
            .await
            .expect("3")
            .decision,
        "kept"
    );
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );
    assert_eq!(
        h.service
            .handle_json(&h.calendar(ENDED, "e-4", ada(), "m-2", -1, 60), d())
            .await
            .expect("4")
            .decision,
        "restored"
    );
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );
    assert_eq!(h.patches(ada()), 2);
}

#[tokio::test]
async fn a_focus_block_sets_the_org_focus_presence() {
    let h = Harness::start().await;
    let focus = h.calendar("Focus Started", "f-1", dee(), "focus-1", 0, 60);

    let outcome = h
        .service
        .handle_json(&focus, h.deadline())
        .await
        .expect("focus");

    assert_eq!(
        outcome.decision, "applied",
        "Dee has no shift and the policy allows that"
    );
    let during = h.presence_of(dee()).await;
    assert_eq!(during.definition_id.as_str(), seed::FOCUS_TIME);
    let end = h
        .service
        .handle_json(
            &h.calendar("Focus Ended", "f-2", dee(), "focus-1", 0, 60),
            h.deadline(),
        )
        .await
        .expect("end");
    assert_eq!(end.decision, "restored");
}

#[tokio::test]
async fn a_duplicate_event_makes_one_patch() {
    let h = Harness::start().await;
    let start = h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30);
    let first = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("first");
    let second = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("second");

    assert_eq!(
        (first.decision.as_str(), first.duplicate),
        ("applied", false)
    );
    assert_eq!(
        (second.decision.as_str(), second.duplicate),
        ("applied", true),
        "the stored outcome"
    );
    assert_eq!(h.patches(ada()), 1);
    assert_eq!(h.audit_kinds(ada()).await, vec![DecisionKind::Applied]);
}

#[tokio::test]
async fn an_end_before_its_start_changes_nothing() {
    let h = Harness::start().await;
    let end = h
        .service
        .handle_json(
            &h.calendar(ENDED, "e-2", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("end");
    let start = h
        .service
        .handle_json(
            &h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("start");

    assert_eq!(
        (end.decision.as_str(), start.decision.as_str()),
        ("skipped", "skipped")
    );
    assert_eq!(
        start.reason.as_deref(),
        Some("the end of this trigger arrived before its start")
    );
    assert_eq!(h.patches(ada()), 0);
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );
}

#[tokio::test]
async fn ten_concurrent_starts_for_one_user_make_one_patch() {
    let h = Harness::start().await;
    let events: Vec<String> = (0..10)
        .map(|i| {
            h.calendar(
                STARTED,
                &format!("e-{i}"),
                ada(),
                &format!("m-{i}"),
                -1,
                30 + i,
            )
        })
        .collect();

    let results = futures::future::join_all(
        events
            .iter()
            .map(|e| h.service.handle_json(e, h.deadline())),
    )
    .await;

    let decisions: Vec<String> = results
        .into_iter()
        .map(|r| r.expect("handled").decision.to_string())
        .collect();
    assert_eq!(
        decisions.iter().filter(|d| *d == "applied").count(),
        1,
        "{decisions:?}"
    );
    assert_eq!(
        decisions.iter().filter(|d| *d == "kept").count(),
        9,
        "{decisions:?}"
    );
    assert_eq!(h.patches(ada()), 1);
    let kinds = h.audit_kinds(ada()).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == DecisionKind::Applied)
            .count(),
        1
    );
    assert_eq!(kinds.len(), 10);
}

#[tokio::test]
async fn an_agent_on_an_interaction_is_deferred() {
    let h = Harness::start().await;
    h.sim
        .control(
            reqwest::Method::PUT,
            &format!("/sim/users/{}/routingstatus", ada()),
            json!({"status": "INTERACTING"}),
        )
        .await;

    let outcome = h
        .service
        .handle_json(
            &h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30),
            h.deadline(),
        )
        .await
        .expect("start");

    assert_eq!(outcome.decision, "deferred", "{outcome:?}");
    assert_eq!(h.patches(ada()), 0, "never pulled off the call");
    assert_eq!(h.audit_kinds(ada()).await, vec![DecisionKind::Deferred]);
    let kinds: Vec<String> = h
        .notifications()
        .await
        .iter()
        .filter_map(|n| n["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kinds, vec!["changeDeferred"]);
}

#[tokio::test]
async fn on_queue_work_follows_the_policy() {
    for (allow_on_queue, expected) in [(false, "skipped"), (true, "applied")] {
        let policy = if allow_on_queue {
            DEFAULT_POLICY.replace(
                r#"allowed_activities = ["Meeting", "OffQueueWork", "Training"]"#,
                r#"allowed_activities = ["Meeting", "OffQueueWork", "Training", "OnQueueWork"]"#,
            )
        } else {
            DEFAULT_POLICY.to_owned()
        };
        let h = Harness::with_policy(&policy, Vec::new()).await;
        let now = h.now();
        h.sim
            .control(
                reqwest::Method::PUT,
                &format!("/sim/users/{}/shifts", ada()),
                json!([{"startDate": now - chrono::Duration::hours(1), "activities": [
                    {"startDate": now - chrono::Duration::hours(1), "lengthMinutes": 240, "activityCodeId": "0"}]}]),
            )
            .await;

        let outcome = h
            .service
            .handle_json(
                &h.calendar(STARTED, "e-1", ada(), "m-1", -1, 30),
                h.deadline(),
            )
            .await
            .expect("start");

        assert_eq!(
            outcome.decision, expected,
            "allow on-queue: {allow_on_queue}: {outcome:?}"
        );
        if !allow_on_queue {
            assert_eq!(
                outcome.reason.as_deref(),
                Some("the scheduled activity (OnQueueWork) does not allow this change")
            );
        }
    }
}

#[tokio::test]
async fn no_shift_follows_the_policy() {
    for (when_no_shift, expected) in [("allow", "applied"), ("skip", "skipped")] {
        let policy = DEFAULT_POLICY.replace(
            r#"when_no_shift = "allow""#,
            &format!(r#"when_no_shift = "{when_no_shift}""#),
        );
        let h = Harness::with_policy(&policy, Vec::new()).await;
        let outcome = h
            .service
            .handle_json(
                &h.calendar(STARTED, "e-1", dee(), "m-1", -1, 30),
                h.deadline(),
            )
            .await
            .expect("start");
        assert_eq!(outcome.decision, expected, "{when_no_shift}: {outcome:?}");
    }
}

#[tokio::test]
async fn rate_limits_mid_batch_are_waited_out_within_the_deadline() {
    let h = Harness::start().await;
    h.sim
        .inject_fault(
            json!({"method": "PATCH", "path": "/api/v2/users/*/presences/purecloud", "count": 2,
                             "kind": "status", "status": 429, "retryAfterSeconds": 3}),
        )
        .await;
    let users = [DEMO_AGENTS[0].0, DEMO_AGENTS[1].0, DEMO_AGENTS[2].0];

    for (i, user) in users.iter().enumerate() {
        let outcome = h
            .service
            .handle_json(
                &h.calendar(STARTED, &format!("e-{i}"), user, "m-1", -1, 30),
                h.deadline(),
            )
            .await
            .expect("handled");
        assert_eq!(outcome.decision, "applied", "{user}");
    }

    assert!(
        h.clock.sleeps().iter().filter(|w| w.as_secs() >= 3).count() >= 2,
        "waited Retry-After: {:?}",
        h.clock.sleeps()
    );
    for user in users {
        assert_eq!(
            h.presence_of(user).await.system_presence,
            SystemPresence::Meeting,
            "{user}"
        );
    }
}

#[tokio::test]
async fn malformed_events_are_rejected_naming_the_field() {
    let h = Harness::start().await;
    let missing_end = include_str!("../../../fixtures/malformed-missing-end.json");
    let unknown_email = h.calendar(STARTED, "e-2", "nobody@example.com", "m-1", -1, 30);

    let first = h
        .service
        .handle_json(missing_end, h.deadline())
        .await
        .expect("rejected, not an error");
    let second = h
        .service
        .handle_json(&unknown_email, h.deadline())
        .await
        .expect("rejected");
    let garbage = h
        .service
        .handle_json("{\"detail-type\": 5}", h.deadline())
        .await
        .expect("rejected");

    assert!(
        first.is_rejected()
            && first
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("detail.end")),
        "{first:?}"
    );
    assert!(
        second.is_rejected()
            && second
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("detail.userEmail")),
        "{second:?}"
    );
    assert!(garbage.is_rejected(), "{garbage:?}");
    let unattributed = h
        .audit(presence_autopilot::service::transition::UNATTRIBUTED_USER)
        .await;
    assert_eq!(unattributed.len(), 3, "one Rejected audit record each");
    assert!(
        unattributed
            .iter()
            .all(|r| r.kind == DecisionKind::Rejected)
    );
}

#[tokio::test]
async fn two_hundred_users_starting_one_meeting_share_bulk_calls() {
    let h = Harness::with_policy(DEFAULT_POLICY, vec![seed::DEMO_BUSINESS_UNIT.to_owned()]).await;
    let mut users = Vec::new();
    for index in 0..200 {
        let id = format!("10000000-0000-4000-8000-{index:012}");
        h.sim
            .control(
                reqwest::Method::POST,
                "/sim/users",
                json!({"id": id, "name": format!("Agent {index}"), "email": format!("a{index}@example.com"),
                       "managementUnitId": seed::DEMO_MANAGEMENT_UNIT}),
            )
            .await;
        users.push(id);
    }
    h.sim
        .control(reqwest::Method::DELETE, "/sim/requests", json!({}))
        .await;
    let bodies: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            h.calendar(
                STARTED,
                &format!("all-hands-{i}"),
                user,
                "all-hands",
                -1,
                60,
            )
        })
        .collect();

    let table = crate::support::moto::CallCounter::start(h.store.table()).await;
    let results = h.service.handle_batch(&bodies, h.deadline()).await;
    let calls = table.take().await;

    // Per user: the state read with the event's record, the schedule's cache put (cold here),
    // the claim taking the event's lease, the commit completing it: no call of the event's own.
    let per_user = |operation: &str| calls.get(operation).copied().unwrap_or(0);
    assert_eq!(
        (per_user("BatchGetItem"), per_user("TransactWriteItems")),
        (200, 400),
        "{calls:?}"
    );
    assert_eq!(
        per_user("UpdateItem"),
        0,
        "no completion of its own: {calls:?}"
    );
    assert!(
        per_user("PutItem") <= 200,
        "at most the cache puts: {calls:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.decision == "applied")),
        "{:?}",
        results
            .iter()
            .find(|r| r.as_ref().map_or(true, |o| o.decision != "applied"))
    );
    let requests = h.sim.server.sim.lock().requests.clone();
    let presence_calls = requests
        .iter()
        .filter(|r| r.path.contains("/presences"))
        .count();
    assert!(presence_calls <= 10, "{presence_calls} presence calls");
    assert_eq!(
        requests.iter().filter(|r| r.method == "PATCH").count(),
        0,
        "no per-user writes"
    );
    let mutations = h.sim.server.sim.lock().mutations.clone();
    assert_eq!(mutations.len(), 200);
    for user in [&users[0], &users[199]] {
        assert_eq!(
            h.presence_of(user).await.system_presence,
            SystemPresence::Meeting
        );
        assert_eq!(h.audit_kinds(user).await, vec![DecisionKind::Applied]);
    }
    assert_eq!(h.notifications().await.len(), 200);
}

#[tokio::test]
async fn a_batch_reports_only_its_bad_records() {
    let h = Harness::start().await;
    let bodies = vec![
        h.calendar(STARTED, "b-1", DEMO_AGENTS[0].0, "m-1", -1, 30),
        include_str!("../../../fixtures/malformed-missing-end.json").to_owned(),
        h.calendar(STARTED, "b-3", DEMO_AGENTS[1].0, "m-1", -1, 30),
        "not json".to_owned(),
    ];

    let results = h.service.handle_batch(&bodies, h.deadline()).await;

    let decisions: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map(|o| o.decision.as_str()).unwrap_or("error"))
        .collect();
    assert_eq!(
        decisions,
        vec!["applied", "rejected", "applied", "rejected"]
    );
}

#[tokio::test]
async fn a_rate_limited_bulk_write_is_retried_within_the_deadline() {
    let h = Harness::start().await;
    h.sim
        .inject_fault(
            json!({"method": "PUT", "path": "/api/v2/users/presences/bulk", "count": 1,
                             "kind": "status", "status": 429, "retryAfterSeconds": 2}),
        )
        .await;
    let bodies: Vec<String> = DEMO_AGENTS[..3]
        .iter()
        .enumerate()
        .map(|(i, (user, _, _))| h.calendar(STARTED, &format!("b-{i}"), user, "m-1", -1, 30))
        .collect();

    let results = h.service.handle_batch(&bodies, h.deadline()).await;

    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.decision == "applied")),
        "{results:?}"
    );
    assert_eq!(
        h.sim.count_requests("PUT", "/api/v2/users/presences/bulk"),
        2,
        "one 429, one retry"
    );
    assert!(
        h.clock.sleeps().iter().any(|w| w.as_secs() >= 2),
        "waited Retry-After: {:?}",
        h.clock.sleeps()
    );
    for (user, _, _) in &DEMO_AGENTS[..3] {
        assert_eq!(
            h.presence_of(user).await.system_presence,
            SystemPresence::Meeting
        );
    }
}

#[tokio::test]
async fn starts_naming_only_an_e_mail_share_the_bulk_calls_too() {
    let h = Harness::with_policy(DEFAULT_POLICY, vec![seed::DEMO_BUSINESS_UNIT.to_owned()]).await;
    let mut emails = Vec::new();
    for index in 0..5 {
        let email = format!("mail{index}@example.com");
        h.sim
            .control(
                reqwest::Method::POST,
                "/sim/users",
                json!({"id": format!("20000000-0000-4000-8000-{index:012}"), "name": format!("Mail {index}"),
                       "email": email, "managementUnitId": seed::DEMO_MANAGEMENT_UNIT}),
            )
            .await;
        emails.push(email);
    }
    let bodies: Vec<String> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| h.calendar(STARTED, &format!("by-mail-{i}"), email, "standup", -1, 15))
        .collect();
    h.sim
        .control(reqwest::Method::DELETE, "/sim/requests", json!({}))
        .await;

    let results = h.service.handle_batch(&bodies, h.deadline()).await;

    let decisions: Vec<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .map_or_else(|e| e.to_string(), |o| o.decision.to_string())
        })
        .collect();
    assert_eq!(decisions, vec!["applied"; emails.len()]);
    let requests = h.sim.server.sim.lock().requests.clone();
    let patches = requests.iter().filter(|r| r.method == "PATCH").count();
    let bulk_writes = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/presences"))
        .count();
    assert_eq!(
        (patches, bulk_writes),
        (0, 1),
        "one bulk write, no single PATCH"
    );
}
