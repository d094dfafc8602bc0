//! The fault suite (docs/reliability.md): each test injects one fault on the real wire — the
//! local AWS stand-in's control endpoint, the Genesys simulator's faults — and counts what was
//! lost. Every figure in the reliability table comes from an assertion here.

use std::sync::Arc;
use std::time::Duration;

use genesys_sim::seed::DEMO_AGENTS;
use presence_autopilot::aws::secrets::secrets_manager_source;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::genesys::GenesysSecretCredentials;
use presence_autopilot::genesys::{CredentialSource, GenesysError};
use presence_autopilot::model::{SystemPresence, UserId};
use presence_autopilot::ports::{AuditQueries, SecretSource, StateStore, StoreError};
use presence_autopilot::service::transition::{TransitionError, UNATTRIBUTED_USER};
use presence_autopilot::state::{AuditEntry, DecisionKind, UserState};

use crate::support::moto;
use crate::support::transition::Harness;

const STARTED: &str = "Calendar Event Started";
const ENDED: &str = "Calendar Event Ended";
const DYNAMODB: &str = "DynamoDB_20120810";

fn ada() -> &'static str {
    DEMO_AGENTS[0].0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_starts_for_one_user_apply_exactly_once() {
    let h = Harness::start().await;
    let mut pending: Vec<String> = (0..50)
        .map(|i| {
            h.calendar(
                STARTED,
                &format!("c-{i}"),
                ada(),
                &format!("m-{i}"),
                -1,
                30 + i,
            )
        })
        .collect();
    let mut decisions = Vec::new();
    let mut redeliveries = 0;
    // At-least-once: what fails retryably is delivered again, as SQS would.
    for _round in 0..10 {
        let results = futures::future::join_all(pending.iter().map(|event| {
            let service = h.service.clone();
            let deadline = h.deadline();
            let event = event.clone();
            tokio::spawn(async move { (service.handle_json(&event, deadline).await, event) })
        }))
        .await;
        pending = Vec::new();
        for joined in results {
            match joined.expect("task") {
                (Ok(outcome), _) => decisions.push((outcome.decision, outcome.reason)),
                (Err(error), event) => {
                    assert!(error.is_retryable(), "{error}");
                    pending.push(event);
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        redeliveries += pending.len();
    }
    assert!(pending.is_empty(), "{} events never handled", pending.len());
    println!("50 concurrent starts: {redeliveries} redeliveries");
    let count = |wanted: &str| decisions.iter().filter(|(d, _)| d == wanted).count();
    let odd: Vec<_> = decisions.iter().filter(|(d, _)| d != "kept").collect();
    assert_eq!(count("applied"), 1, "{odd:?}");
    assert_eq!(count("kept"), 49, "{odd:?}");
    assert_eq!(h.patches(ada()), 1);
    assert_eq!(
        h.audit(ada()).await.len(),
        50,
        "one record per event, none lost"
    );
    let user = UserId::parse(ada()).expect("uuid");
    assert!(h.store.verify_chain(&user).await.expect("verify").is_ok());
}

/// The event's idempotency record rides on the state claim and the commit, so every delivery
/// reads and decides before any of them holds the event: the claim's transaction is the point
/// where all but one learn it is taken.
#[tokio::test]
async fn the_same_start_delivered_eight_times_concurrently_applies_once_with_one_record() {
    let h = Harness::start().await;
    let event = h.calendar(STARTED, "dup-1", ada(), "m-1", -1, 30);
    let mut outcomes = Vec::new();
    let mut pending = 8;
    for _round in 0..10 {
        let results = futures::future::join_all((0..pending).map(|_| {
            let (service, deadline, event) = (h.service.clone(), h.deadline(), event.clone());
            tokio::spawn(async move { service.handle_json(&event, deadline).await })
        }))
        .await;
        pending = 0;
        for joined in results {
            match joined.expect("task") {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    assert!(error.is_retryable(), "{error}");
                    pending += 1;
                }
            }
        }
        if pending == 0 {
            break;
        }
    }
    assert_eq!(pending, 0, "deliveries never handled");
    assert_eq!(h.patches(ada()), 1, "{outcomes:?}");
    let firsts: Vec<_> = outcomes.iter().filter(|o| !o.duplicate).collect();
    assert_eq!(firsts.len(), 1, "{outcomes:?}");
    assert_eq!(firsts[0].decision, "applied");
    assert!(
        outcomes.iter().all(|o| o.decision == "applied"),
        "duplicates answer with the stored outcome: {outcomes:?}"
    );
    let records = h.audit(ada()).await;
    let of_event: Vec<_> = records
        .iter()
        .filter(|r| r.event_id.as_deref() == Some("dup-1"))
        .collect();
    assert_eq!(of_event.len(), 1, "{records:?}");
    assert_eq!(of_event[0].kind, DecisionKind::Applied);
}

/// The burst queue delivers a batch twice at once (at-least-once, two containers): the bulk
/// path claims, decides and settles its users concurrently in each, and still every agent is
/// applied once, with one record, whatever each delivery answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_batch_delivered_twice_concurrently_applies_each_agent_once() {
    let h = Harness::with_policy(
        presence_autopilot::policy::DEFAULT_POLICY,
        vec![genesys_sim::seed::DEMO_BUSINESS_UNIT.to_owned()],
    )
    .await;
    let users: Vec<String> = (0..24)
        .map(|index| format!("20000000-0000-4000-8000-{index:012}"))
        .collect();
    for (index, id) in users.iter().enumerate() {
        h.sim
            .control(
                reqwest::Method::POST,
                "/sim/users",
                serde_json::json!({"id": id, "name": format!("Agent {index}"),
                    "email": format!("b{index}@example.com"),
                    "managementUnitId": genesys_sim::seed::DEMO_MANAGEMENT_UNIT}),
            )
            .await;
    }
    let bodies: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, user)| h.calendar(STARTED, &format!("batch-{i}"), user, "all-hands", -1, 60))
        .collect();

    // Each delivery gives back what failed retryably, as the queue would redeliver it.
    let mut pending = vec![bodies.clone(), bodies];
    let mut outcomes = Vec::new();
    for _round in 0..10 {
        let deliveries = futures::future::join_all(pending.drain(..).map(|batch| {
            let (service, deadline) = (h.service.clone(), h.deadline());
            tokio::spawn(async move {
                let results = service.handle_batch(&batch, deadline).await;
                (batch, results)
            })
        }))
        .await;
        for joined in deliveries {
            let (batch, results) = joined.expect("task");
            let mut again = Vec::new();
            for (body, result) in batch.into_iter().zip(results) {
                match result {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(error) => {
                        assert!(error.is_retryable(), "{error}");
                        again.push(body);
                    }
                }
            }
            if !again.is_empty() {
                pending.push(again);
            }
        }
        if pending.is_empty() {
            break;
        }
    }
    assert!(pending.is_empty(), "deliveries never handled: {pending:?}");
    assert_eq!(
        outcomes.len(),
        48,
        "both deliveries of every start answered"
    );
    assert!(
        outcomes.iter().all(|o| o.decision == "applied"),
        "a duplicate answers with the stored outcome: {outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 24);
    assert_eq!(
        h.sim.server.sim.lock().mutations.len(),
        24,
        "one write per agent"
    );
    for (i, user) in users.iter().enumerate() {
        assert_eq!(
            h.presence_of(user).await.system_presence,
            SystemPresence::Meeting
        );
        let records = h.audit(user).await;
        assert_eq!(records.len(), 1, "{user}: {records:?}");
        assert_eq!(records[0].kind, DecisionKind::Applied);
        assert_eq!(
            records[0].event_id.as_deref(),
            Some(format!("batch-{i}").as_str())
        );
    }
}

/// A decision that writes nothing (our own change echoed back) completes the event on its own;
/// if another delivery of the event completed it between our read and that write, DynamoDB
/// refuses the write's condition. Both deliveries decided the same: not a failure.
#[tokio::test]
async fn an_echo_completed_meanwhile_by_another_delivery_is_not_a_failure() {
    let h = Harness::start().await;
    let start = h.calendar(STARTED, "echo-1", ada(), "m-1", -1, 30);
    h.service
        .handle_json(&start, h.deadline())
        .await
        .expect("start");
    let echo = h.sim.server.sim.lock().events[0].clone();
    let echo_id = echo["id"].as_str().expect("event id").to_owned();
    // What DynamoDB answers when the record was completed since we read it.
    moto::inject_fault_at(
        &format!("{DYNAMODB}.UpdateItem"),
        "ConditionalCheckFailedException",
        400,
        1,
        h.store.table(),
        &echo_id,
    )
    .await;
    let outcome = h
        .service
        .handle_json(&echo.to_string(), h.deadline())
        .await
        .expect("not a failure");
    assert_eq!(outcome.decision, "ignored");
    let kinds = h.audit_kinds(ada()).await;
    assert_eq!(kinds, vec![DecisionKind::Applied], "no rejection recorded");
    moto::clear_faults(h.store.table()).await;
}

#[tokio::test]
async fn dynamodb_throttling_before_any_effect_is_retryable_and_the_redelivery_applies() {
    let h = Harness::start().await;
    let event = h.calendar(STARTED, "t-1", ada(), "m-1", -1, 30);
    // Every attempt of the SDK's own retries is throttled, from the first write on (the
    // state claim, a transaction carrying the event's lease).
    for (write, code) in [
        (
            "TransactWriteItems",
            "ProvisionedThroughputExceededException",
        ),
        ("PutItem", "ProvisionedThroughputExceededException"),
        ("UpdateItem", "ThrottlingException"),
    ] {
        let target = format!("{DYNAMODB}.{write}");
        moto::inject_fault(&target, code, 400, 20, "before", h.store.table()).await;
    }
    let error = h
        .service
        .handle_json(&event, h.deadline())
        .await
        .expect_err("throttled");
    assert!(error.is_retryable(), "{error}");
    assert!(
        matches!(error, TransitionError::Store(StoreError::Throttled { .. })),
        "{error}"
    );
    assert_eq!(h.patches(ada()), 0, "nothing happened");
    moto::clear_faults(h.store.table()).await;

    let outcome = h
        .service
        .handle_json(&event, h.deadline())
        .await
        .expect("redelivery");
    assert_eq!(outcome.decision, "applied");
    assert_eq!(h.patches(ada()), 1);
}

#[tokio::test]
async fn a_crash_between_claim_and_commit_does_not_block_the_user() {
    let h = Harness::start().await;
    let start = h.calendar(STARTED, "k-1", ada(), "m-1", -1, 30);
    // The commit after the PATCH (the transaction that moves the audit chain head) never
    // lands, as if the function died there; the claim before it does.
    moto::inject_fault_at(
        &format!("{DYNAMODB}.TransactWriteItems"),
        "InternalServerError",
        500,
        50,
        h.store.table(),
        "AUDITHEAD",
    )
    .await;
    let error = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect_err("commit lost");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(
        h.patches(ada()),
        1,
        "the PATCH went out before the commit failed"
    );
    moto::clear_faults(h.store.table()).await;

    // The redelivery finds the claim and does not write Genesys a second time.
    let again = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("redelivery");
    assert_eq!(h.patches(ada()), 1, "{again:?}");
    // The end restores the presence the agent had: the user is not stuck in Meeting.
    let end = h.calendar(ENDED, "k-2", ada(), "m-1", -1, 30);
    let ended = h
        .service
        .handle_json(&end, h.deadline())
        .await
        .expect("end");
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Available,
        "start {again:?}, end {ended:?}"
    );
}

#[tokio::test]
async fn sqs_failing_at_the_relay_keeps_the_notification_in_the_stream_for_the_next_batch() {
    let h = Harness::start().await;
    let queue = h
        .queue_url
        .rsplit('/')
        .next()
        .expect("queue name")
        .to_owned();
    moto::inject_fault(
        "AmazonSQS.SendMessageBatch",
        "InternalError",
        500,
        20,
        "before",
        &queue,
    )
    .await;
    let start = h.calendar(STARTED, "q-1", ada(), "m-1", -1, 30);
    let applied = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("applied");
    assert_eq!(
        applied.decision, "applied",
        "the transition does not touch SQS"
    );
    let report = h.relay.relay().await;
    assert!(
        report.retry_from.is_some(),
        "reported for retry: {report:?}"
    );
    assert_eq!(report.relayed, 0);
    moto::clear_faults(&queue).await;

    // The next batch starts again from the failed record: its notification, then the end's.
    let end = h.calendar(ENDED, "q-2", ada(), "m-1", -1, 30);
    assert_eq!(
        h.service
            .handle_json(&end, h.deadline())
            .await
            .expect("end")
            .decision,
        "restored"
    );
    let kinds: Vec<String> = h
        .notifications()
        .await
        .iter()
        .map(|n| n["kind"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        kinds,
        vec!["presenceApplied", "presenceRestored"],
        "none lost, in order"
    );
}

#[tokio::test]
async fn a_retried_transaction_that_had_committed_is_recognised_not_cancelled() {
    let (client, table) = moto::new_table().await;
    let store = presence_autopilot::aws::dynamo::DynamoStore::new(
        client,
        table.clone(),
        Arc::new(SystemClock),
    );
    let user = UserId::parse("00000000-0000-4000-8000-000000000777").expect("uuid");
    let state = UserState::new(user.clone(), chrono::Utc::now());
    // The transaction commits, then its answer is lost: the SDK sends it again.
    moto::inject_fault(
        &format!("{DYNAMODB}.TransactWriteItems"),
        "InternalServerError",
        500,
        1,
        "after",
        &table,
    )
    .await;
    let committed = store
        .commit(&state, AuditEntry::new(user.clone(), DecisionKind::Applied))
        .await
        .expect("the retry is answered with the first call's success");
    assert_eq!((committed.state.version, committed.audit.seq), (1, 1));
    let stored = store.get(&user).await.expect("get").expect("stored");
    assert_eq!(stored.version, 1, "written once");
    let report = store
        .verify_chain(&user)
        .await
        .expect("verify")
        .expect("intact");
    assert_eq!(report.records, 1, "one audit record, not two");
}

#[tokio::test]
async fn secrets_manager_down_or_throttled_is_retryable() {
    let client = moto::secrets_manager();
    let name = moto::unique_name("genesys");
    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"clientId":"c","clientSecret":"s","region":"eu_west_1"}"#)
        .send()
        .await
        .expect("create");
    let source = Arc::new(secrets_manager_source(
        client,
        Arc::new(SystemClock),
        Duration::from_secs(60),
    ));
    for code in ["InternalServiceError", "ThrottlingException"] {
        moto::inject_fault(
            "secretsmanager.GetSecretValue",
            code,
            if code == "ThrottlingException" {
                400
            } else {
                500
            },
            20,
            "before",
            &name,
        )
        .await;
        let error = source.force_refresh(&name).await.expect_err(code);
        assert!(error.is_retryable(), "{code}: {error}");
        let credentials = GenesysSecretCredentials::new(source.clone(), name.clone());
        let genesys = credentials.client_credentials(true).await.expect_err(code);
        assert!(
            matches!(
                genesys,
                GenesysError::Credentials {
                    retryable: true,
                    ..
                }
            ),
            "{code}: {genesys}"
        );
        moto::clear_faults(&name).await;
    }
    assert!(
        source.force_refresh(&name).await.is_ok(),
        "back once the service is"
    );
}

#[tokio::test]
async fn oversized_events_are_rejected_and_their_audit_record_is_written() {
    let h = Harness::start().await;
    let base: serde_json::Value =
        serde_json::from_str(&h.calendar(STARTED, "o-1", ada(), "m-1", -1, 30)).expect("json");
    let mut long_id = base.clone();
    long_id["id"] = "i".repeat(3_000).into();
    let mut long_trigger = base.clone();
    long_trigger["id"] = "o-2".into();
    long_trigger["detail"]["calendarEventId"] = "c".repeat(200_000).into();
    let mut huge = base.clone();
    huge["id"] = "o-3".into();
    huge["detail"]["subject"] = "s".repeat(1_000_000).into();
    let mut wrong_type = base.clone();
    wrong_type["id"] = "o-4".into();
    wrong_type["detail"]["showAs"] = 7.into();
    let cases = [
        (long_id, "id: longer than 512 bytes"),
        (
            long_trigger,
            "detail.calendarEventId: longer than 1024 bytes",
        ),
        (huge, "(body): "),
        (wrong_type, "detail.showAs: must be a string, got a number"),
    ];
    for (event, expected) in &cases {
        let outcome = h
            .service
            .handle_json(&event.to_string(), h.deadline())
            .await
            .expect("a rejection is an outcome, not an error");
        assert_eq!(outcome.decision, "rejected");
        let reason = outcome.reason.clone().unwrap_or_default();
        assert!(reason.contains(expected), "{reason}");
        assert!(reason.len() < 300, "{} bytes", reason.len());
    }
    assert_eq!(h.patches(ada()), 0);
    let unattributed = UserId::parse(UNATTRIBUTED_USER).expect("uuid");
    let from = h.now() - chrono::Duration::days(1);
    let to = h.now() + chrono::Duration::days(1);
    let records = h
        .store
        .by_user(&unattributed, from, to)
        .await
        .expect("audit");
    let rejected = records
        .iter()
        .filter(|r| r.kind == DecisionKind::Rejected)
        .count();
    assert_eq!(rejected, cases.len(), "every rejection audited, none lost");
}

#[tokio::test]
async fn a_genesys_503_storm_fails_retryably_and_the_redelivery_applies() {
    let h = Harness::start().await;
    h.sim
        .inject_fault(
            serde_json::json!({"method": "PATCH", "path": "/api/v2/users/*/presences/purecloud",
            "count": 4, "kind": "status", "status": 503}),
        )
        .await;
    let start = h.calendar(STARTED, "s-1", ada(), "m-1", -1, 30);
    let error = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect_err("503 storm");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(
        h.patches(ada()),
        4,
        "the client's four attempts, then it gave up"
    );
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );

    // The storm is over when SQS delivers the event again.
    let outcome = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("redelivery");
    assert_eq!(outcome.decision, "applied");
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );
}

#[tokio::test]
async fn genesys_slower_than_the_deadline_leaves_no_agent_stuck() {
    let h = Harness::start().await;
    // The PATCH is served, but only after our deadline: we cannot know it landed.
    h.sim
        .inject_fault(
            serde_json::json!({"method": "PATCH", "path": "/api/v2/users/*/presences/purecloud",
            "count": 1, "kind": "latency", "ms": 1500}),
        )
        .await;
    let start = h.calendar(STARTED, "w-1", ada(), "m-1", -1, 30);
    let short = presence_autopilot::clock::Deadline::after(&h.clock, Duration::from_millis(700));
    let error = h
        .service
        .handle_json(&start, short)
        .await
        .expect_err("too slow");
    assert!(error.is_retryable(), "{error}");
    // The slow PATCH still lands on the simulator, as it would on Genesys: wait for it.
    let landed = std::time::Instant::now();
    // (through the control surface, which neither needs a token nor counts against the limit).
    let writes = || async {
        let all = h
            .sim
            .control(
                reqwest::Method::GET,
                "/sim/mutations",
                serde_json::Value::Null,
            )
            .await;
        all.as_array()
            .map_or(0, |all| all.iter().filter(|m| m["userId"] == ada()).count())
    };
    while writes().await == 0 {
        assert!(
            landed.elapsed() < Duration::from_secs(10),
            "the PATCH never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // a poll interval, not a wait for an outcome
    }

    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );

    // The redelivery finds the unsettled claim and writes nothing over it.
    let again = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect("redelivery");
    assert_eq!(writes().await, 1, "{again:?}");
    // The end restores: the live presence is the one the claim was setting.
    let end = h.calendar(ENDED, "w-2", ada(), "m-1", -1, 30);
    let ended = h
        .service
        .handle_json(&end, h.deadline())
        .await
        .expect("end");
    assert_eq!(
        h.presence_of(ada()).await.system_presence,
        SystemPresence::Available,
        "start {again:?}, end {ended:?}"
    );
}

#[tokio::test]
async fn a_request_dynamodb_refuses_is_not_retried_and_leaves_a_record() {
    let h = Harness::start().await;
    // As DynamoDB answers a key or item over its limits: the same call can never succeed.
    // The first write is the state claim (a transaction carrying the event's lease).
    moto::inject_fault(
        &format!("{DYNAMODB}.TransactWriteItems"),
        "ValidationException",
        400,
        1,
        "before",
        h.store.table(),
    )
    .await;
    let start = h.calendar(STARTED, "v-1", ada(), "m-1", -1, 30);
    let error = h
        .service
        .handle_json(&start, h.deadline())
        .await
        .expect_err("refused");
    assert!(
        matches!(error, TransitionError::Store(StoreError::Refused { .. })),
        "{error}"
    );
    assert!(!error.is_retryable(), "{error}");
    assert_eq!(h.patches(ada()), 0);
    let records = h.audit(ada()).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].kind, DecisionKind::Rejected);
    let reason = records[0].reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("failed, not retryable: TransactWriteItems refused"),
        "{reason}"
    );
}
