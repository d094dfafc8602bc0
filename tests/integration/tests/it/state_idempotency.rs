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
use presence_autopilot::ports::{Begin, IdempotencyStore, StateStore, StoreError};
use presence_autopilot::state::{Notification, NotificationKind, UserState};
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

#[tokio::test]
async fn completing_with_a_sent_outbox_empties_it_in_the_same_write_unless_the_state_moved() {
    let (client, table) = moto::new_table().await;
    let clock = ManualClock::starting_at(start());
    let store = DynamoStore::new(client, table, Arc::new(clock.clone()));
    let deadline = Deadline::after(&clock, Duration::from_secs(30));
    let user = UserId::parse("00000000-0000-4000-8000-000000000071").expect("id");
    let with_outbox = |state: &UserState| {
        let mut next = state.clone();
        next.outbox.push(Notification::for_change(
            user.clone(),
            start(),
            state.version + 1,
            NotificationKind::PresenceApplied,
            serde_json::json!({}),
        ));
        next
    };

    // Sent, and nobody wrote since: one transaction empties the outbox and stores the outcome.
    let committed = store
        .put(&with_outbox(&UserState::new(user.clone(), start())))
        .await
        .expect("commit");
    let Begin::Started(lease) = store.begin("evt-o1", deadline, TTL).await.expect("begin") else {
        panic!("first delivery must start");
    };
    let mut emptied = committed.clone();
    emptied.outbox.clear();
    let both = store
        .complete_with_sent_outbox(&lease, &serde_json::json!({"n": 1}), TTL, &emptied)
        .await
        .expect("complete");
    assert!(both);
    let stored = store.get(&user).await.expect("get").expect("state");
    assert!(stored.outbox.is_empty(), "{stored:?}");
    assert_eq!(stored.version, committed.version + 1);
    assert_eq!(
        store.begin("evt-o1", deadline, TTL).await.expect("begin"),
        Begin::AlreadyCompleted(serde_json::json!({"n": 1}))
    );

    // Someone committed since (their outbox included ours): the outcome alone is stored and
    // their state is left as they wrote it.
    let theirs = store
        .put(&with_outbox(&stored))
        .await
        .expect("their commit");
    let Begin::Started(lease) = store.begin("evt-o2", deadline, TTL).await.expect("begin") else {
        panic!("first delivery must start");
    };
    let mut stale = stored.clone();
    stale.outbox.clear();
    let both = store
        .complete_with_sent_outbox(&lease, &serde_json::json!({"n": 2}), TTL, &stale)
        .await
        .expect("complete");
    assert!(!both);
    assert_eq!(store.get(&user).await.expect("get"), Some(theirs));
    assert_eq!(
        store.begin("evt-o2", deadline, TTL).await.expect("begin"),
        Begin::AlreadyCompleted(serde_json::json!({"n": 2}))
    );

    // A lease taken over meanwhile: neither is written.
    clock.advance(Duration::from_secs(31));
    let Begin::Started(crashed) = store.begin("evt-o3", deadline, TTL).await.expect("begin") else {
        panic!("first delivery must start");
    };
    let later = Deadline::after(&clock, Duration::from_secs(60));
    clock.advance(Duration::from_secs(31));
    let Begin::Started(_taker) = store.begin("evt-o3", later, TTL).await.expect("begin") else {
        panic!("an expired claim is taken over");
    };
    let current = store.get(&user).await.expect("get").expect("state");
    let mut emptied = current.clone();
    emptied.outbox.clear();
    let lost = store
        .complete_with_sent_outbox(&crashed, &serde_json::json!({"n": 3}), TTL, &emptied)
        .await;
    assert!(
        matches!(lost, Err(StoreError::LeaseLost { .. })),
        "{lost:?}"
    );
    assert_eq!(store.get(&user).await.expect("get"), Some(current));
}
