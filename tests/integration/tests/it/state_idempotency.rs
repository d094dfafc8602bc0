//! `DynamoStore` as `IdempotencyStore` against moto (Powertools semantics).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use presence_autopilot::aws::dynamo::{DynamoStore, TTL_ATTRIBUTE};
use presence_autopilot::clock::{Deadline, ManualClock, SystemClock};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{
    AuditLog, AuditQueries, Begin, EventMark, EventRecord, IdempotencyStore, Lease, MarkStatus,
    StateStore, StoreError,
};
use presence_autopilot::state::{AuditEntry, DecisionKind, UserState};
use tokio::sync::{Barrier, Notify};

use crate::support::moto;

const TTL: Duration = Duration::from_secs(3600);

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_770_000_000, 0).expect("valid time")
}

/// What a handler does with an event: claim it, do the work once, store the outcome. The one
/// that claims it completes only after `others` has been signalled by a delivery that did not
/// claim it (a signal, not a sleep: the race holds however slowly the other task is scheduled).
async fn process(store: &DynamoStore, event_id: &str, runs: &AtomicU32, others: &Notify) -> Begin {
    let begun = store
        .begin(
            event_id,
            Deadline::after(&SystemClock, Duration::from_secs(30)),
            TTL,
        )
        .await
        .expect("begin");
    if let Begin::Started(lease) = &begun {
        runs.fetch_add(1, Ordering::SeqCst);
        // Still in progress when the other delivery arrives.
        tokio::time::timeout(Duration::from_secs(10), others.notified())
            .await
            .expect("the other delivery answered");
        store
            .complete(lease, &serde_json::json!({"applied": true}), TTL)
            .await
            .expect("complete");
    } else {
        others.notify_one();
    }
    begun
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_concurrently_runs_once() {
    let (client, table) = moto::new_table().await;
    let store = Arc::new(DynamoStore::new(client, table, Arc::new(SystemClock)));
    let runs = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(Barrier::new(2));
    let others = Arc::new(Notify::new());

    let deliveries: Vec<_> = (0..2)
        .map(|_| {
            let (store, runs, barrier, others) = (
                Arc::clone(&store),
                Arc::clone(&runs),
                Arc::clone(&barrier),
                Arc::clone(&others),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                process(&store, "evt-1", &runs, &others).await
            })
        })
        .collect();
    let outcomes: Vec<Begin> = futures::future::join_all(deliveries)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();

    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        outcomes
            .iter()
            .filter(|b| matches!(b, Begin::Started(_)))
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|b| matches!(b, Begin::InProgress { .. }))
            .count(),
        1
    );
    // A third delivery after completion gets the stored outcome and does not run.
    let later = process(&store, "evt-1", &runs, &Notify::new()).await;
    assert_eq!(
        later,
        Begin::AlreadyCompleted(serde_json::json!({"applied": true}))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_in_progress_record_is_taken_over_and_the_old_owner_cannot_complete() {
    let (client, table) = moto::new_table().await;
    let clock = ManualClock::starting_at(start());
    let store = DynamoStore::new(client.clone(), table.clone(), Arc::new(clock.clone()));
    let deadline = Deadline::after(&clock, Duration::from_secs(30));

    let Begin::Started(crashed) = store.begin("evt-2", deadline, TTL).await.expect("begin") else {
        panic!("first delivery must start");
    };
    let item = client
        .get_item()
        .table_name(&table)
        .set_key(Some(HashMap::from([
            ("pk".to_owned(), AttributeValue::S("IDEMP#evt-2".to_owned())),
            ("sk".to_owned(), AttributeValue::S("IDEMPOTENCY".to_owned())),
        ])))
        .send()
        .await
        .expect("get")
        .item
        .expect("exists");
    // moto never deletes expired items, so expiry is checked through the attributes.
    let expected_expiry = (start() + chrono::Duration::hours(1))
        .timestamp()
        .to_string();
    assert_eq!(
        item.get(TTL_ATTRIBUTE),
        Some(&AttributeValue::N(expected_expiry))
    );
    let expected_deadline = deadline.0.timestamp_millis().to_string();
    assert_eq!(
        item.get("inProgressExpiry"),
        Some(&AttributeValue::N(expected_deadline))
    );

    clock.advance(Duration::from_secs(29));
    let still = store.begin("evt-2", deadline, TTL).await.expect("begin");
    assert_eq!(still, Begin::InProgress { until: deadline.0 });

    clock.advance(Duration::from_secs(2));
    let next_deadline = Deadline::after(&clock, Duration::from_secs(30));
    let Begin::Started(taker) = store
        .begin("evt-2", next_deadline, TTL)
        .await
        .expect("begin")
    else {
        panic!("an IN_PROGRESS record past its deadline must be taken over");
    };
    let late = store
        .complete(&crashed, &serde_json::json!({"by": "crashed"}), TTL)
        .await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{late:?}"
    );
    store
        .complete(&taker, &serde_json::json!({"by": "taker"}), TTL)
        .await
        .expect("complete");
    let done = store
        .begin("evt-2", next_deadline, TTL)
        .await
        .expect("begin");
    assert_eq!(
        done,
        Begin::AlreadyCompleted(serde_json::json!({"by": "taker"}))
    );
}

#[tokio::test]
async fn a_completed_record_past_its_ttl_runs_again_and_a_released_one_at_once() {
    let (client, table) = moto::new_table().await;
    let clock = ManualClock::starting_at(start());
    let store = DynamoStore::new(client, table, Arc::new(clock.clone()));
    let deadline = || Deadline::after(&clock, Duration::from_secs(30));

    let Begin::Started(lease) = store.begin("evt-3", deadline(), TTL).await.expect("begin") else {
        panic!("must start");
    };
    store
        .complete(&lease, &serde_json::json!(1), TTL)
        .await
        .expect("complete");
    clock.advance(TTL - Duration::from_secs(1));
    assert!(matches!(
        store.begin("evt-3", deadline(), TTL).await,
        Ok(Begin::AlreadyCompleted(_))
    ));
    clock.advance(Duration::from_secs(2));
    let Begin::Started(again) = store.begin("evt-3", deadline(), TTL).await.expect("begin") else {
        panic!("an expired COMPLETED record must not block the event forever");
    };

    store
        .release(&again)
        .await
        .expect("release after a failure");
    assert!(matches!(
        store.begin("evt-3", deadline(), TTL).await,
        Ok(Begin::Started(_))
    ));
}

/// The transition carries the event's record on its own writes (docs/data-model.md): the claim
/// takes the lease, the commit stores the outcome, and a record someone else holds or completed
/// cancels the whole write, state included.
#[tokio::test]
async fn an_event_mark_rides_on_the_state_writes_and_a_foreign_one_refuses_them_whole() {
    let (client, table) = moto::new_table().await;
    let clock = ManualClock::starting_at(start());
    let store = DynamoStore::new(client, table, Arc::new(clock.clone()));
    let user = UserId::parse("00000000-0000-4000-8000-000000000071").expect("id");
    let key = "transition#evt-m1";
    let mark = |token: &str, status: MarkStatus| EventMark {
        lease: Lease {
            key: key.to_owned(),
            token: token.to_owned(),
        },
        ttl: TTL,
        status,
    };
    let until = start() + chrono::Duration::seconds(30);
    let leased = |token: &str| mark(token, MarkStatus::InProgress { until });

    // The claim takes the lease with the state, read back together in one call.
    let claimed = store
        .put_marked(
            &UserState::new(user.clone(), start()),
            Some(&leased("ours")),
        )
        .await
        .expect("claim");
    let (state, record) = store.get_for_event(&user, Some(key)).await.expect("read");
    assert_eq!(state.map(|s| s.version), Some(claimed.version));
    assert_eq!(
        record,
        Some(EventRecord::InProgress {
            owner: "ours".to_owned(),
            until
        })
    );

    // Another delivery's claim is refused whole: the state did not move.
    let theirs = store.put_marked(&claimed, Some(&leased("theirs"))).await;
    assert!(
        matches!(theirs, Err(StoreError::LeaseLost { .. })),
        "{theirs:?}"
    );
    let (state, _) = store.get_for_event(&user, Some(key)).await.expect("read");
    assert_eq!(state.map(|s| s.version), Some(claimed.version));

    // Our commit stores the outcome with the state and the audit record.
    let outcome = serde_json::json!({"decision": "applied"});
    let done = mark("ours", MarkStatus::Completed(outcome.clone()));
    let mut entry = AuditEntry::new(user.clone(), DecisionKind::Applied);
    entry.event_id = Some("evt-m1".to_owned());
    let committed = store
        .commit_marked(&claimed, entry.clone(), Some(&done))
        .await
        .expect("commit");
    let (_, record) = store.get_for_event(&user, Some(key)).await.expect("read");
    assert_eq!(record, Some(EventRecord::Completed(outcome)));

    // Completed: even our own token cannot write the event again, nor can an audit append.
    let again = store
        .commit_marked(&committed.state, entry.clone(), Some(&done))
        .await;
    assert!(
        matches!(again, Err(StoreError::LeaseLost { .. })),
        "{again:?}"
    );
    let appended = store.append_marked(entry, Some(&done)).await;
    assert!(
        matches!(appended, Err(StoreError::LeaseLost { .. })),
        "{appended:?}"
    );
    let day = chrono::Duration::days(1);
    let records = store
        .by_user(&user, start() - day, start() + day)
        .await
        .expect("records");
    assert_eq!(
        records.len(),
        1,
        "no record of a refused write: {records:?}"
    );

    // Past its TTL the record reads as none and may be taken again.
    clock.advance(TTL + Duration::from_secs(1));
    let (_, record) = store.get_for_event(&user, Some(key)).await.expect("read");
    assert_eq!(record, None);
}
