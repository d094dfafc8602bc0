//! `DynamoStore` as `StateStore` against moto: optimistic concurrency, commit, the due index.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use presence_autopilot::aws::dynamo::DynamoStore;
use presence_autopilot::clock::{Clock, SystemClock};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{AuditQueries, Conflict, StateStore, StoreError};
use presence_autopilot::state::{
    ActiveTrigger, AuditEntry, DecisionKind, TriggerId, TriggerKind, UserState,
};
use tokio::sync::Barrier;

use crate::support::moto;

fn user(n: u32) -> UserId {
    UserId::parse(&format!("00000000-0000-4000-8000-{n:012}")).expect("valid id")
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_770_000_000 + seconds, 0).expect("valid time")
}

async fn store() -> DynamoStore {
    let (client, table) = moto::new_table().await;
    DynamoStore::new(client, table, Arc::new(SystemClock))
}

fn add_task(state: &mut UserState, task: usize) {
    state.active_triggers.insert(
        TriggerId::parse(&format!("task-{task}")).expect("id"),
        ActiveTrigger {
            kind: TriggerKind::Meeting,
            ends_at: at(3600),
            rule: None,
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_writers_one_wins_the_rest_conflict_then_retry_without_loss() {
    let store = Arc::new(store().await);
    let seeded = store
        .put(&UserState::new(user(1), SystemClock.now()))
        .await
        .expect("seed");
    assert_eq!(seeded.version, 1);
    let barrier = Arc::new(Barrier::new(20));

    let tasks: Vec<_> = (0..20)
        .map(|task| {
            let (store, barrier, read) = (Arc::clone(&store), Arc::clone(&barrier), seeded.clone());
            tokio::spawn(async move {
                let mut mine = read;
                add_task(&mut mine, task);
                barrier.wait().await;
                let first = store.put(&mine).await;
                let first_won = first.is_ok();
                let conflict = matches!(
                    first,
                    Err(StoreError::Conflict(Conflict {
                        expected_version: 1,
                        ..
                    }))
                );
                // Lost: re-read, re-apply our change, try again (never overwrite).
                let mut attempts = 1;
                if !first_won {
                    loop {
                        attempts += 1;
                        assert!(attempts <= 60, "task {task} kept losing");
                        let mut fresh = store.get(&user(1)).await.expect("get").expect("exists");
                        add_task(&mut fresh, task);
                        match store.put(&fresh).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict(_)) => continue,
                            Err(other) => panic!("task {task}: {other}"),
                        }
                    }
                }
                (first_won, conflict)
            })
        })
        .collect();
    let results: Vec<(bool, bool)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();

    assert_eq!(results.iter().filter(|(won, _)| *won).count(), 1);
    assert_eq!(results.iter().filter(|(_, conflict)| *conflict).count(), 19);
    let last = store.get(&user(1)).await.expect("get").expect("exists");
    assert_eq!(last.version, 21);
    assert_eq!(last.active_triggers.len(), 20, "an update was lost");
}

#[tokio::test]
async fn commit_is_atomic_a_version_conflict_writes_neither_state_nor_audit() {
    let store = store().await;
    let first = UserState::new(user(2), SystemClock.now());
    let committed = store
        .commit(&first, AuditEntry::new(user(2), DecisionKind::Applied))
        .await
        .expect("commit");
    assert_eq!((committed.state.version, committed.audit.seq), (1, 1));

    // A stale writer (read version 0) loses; the audit record it carried must not appear.
    let err = store
        .commit(&first, AuditEntry::new(user(2), DecisionKind::Restored))
        .await
        .expect_err("stale");

    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict {
                expected_version: 0,
                ..
            })
        ),
        "{err}"
    );
    let records = store
        .by_user(&user(2), at(-1_000_000_000), at(1_000_000_000))
        .await;
    assert_eq!(records.expect("query").len(), 1);
    let stored = store.get(&user(2)).await.expect("get").expect("exists");
    assert_eq!(stored.version, 1);
    assert!(store.verify_chain(&user(2)).await.expect("verify").is_ok());
}

#[tokio::test]
async fn due_index_lists_only_users_due_by_then_earliest_first() {
    let store = store().await;
    for (n, due) in [
        (3, Some(at(30))),
        (4, Some(at(10))),
        (5, None),
        (6, Some(at(90))),
    ] {
        let mut state = UserState::new(user(n), at(0));
        state.due_at = due;
        store.put(&state).await.expect("put");
    }
    // Moving a due time must move the index entry too (the whole item is replaced).
    let mut six = store.get(&user(6)).await.expect("get").expect("exists");
    six.due_at = Some(at(20));
    store.put(&six).await.expect("move due");

    let due = store.due(at(30), 10).await.expect("due");

    assert_eq!(
        due,
        vec![(user(4), at(10)), (user(6), at(20)), (user(3), at(30))]
    );
    assert_eq!(store.due(at(30), 1).await.expect("due").len(), 1);
    assert!(store.due(at(30), 0).await.expect("due").is_empty());
}

/// The stand-in answers the next `count` BatchGetItem calls on `table` as a throttled DynamoDB
/// does: nothing read, every key unprocessed.
async fn leave_unprocessed(table: &str, count: u32) {
    moto::inject_fault(
        "DynamoDB_20120810.BatchGetItem",
        "ProvisionedThroughputExceededException",
        400,
        count,
        "unprocessed",
        table,
    )
    .await;
}

#[tokio::test]
async fn keys_left_unprocessed_are_asked_again_and_a_throttled_read_falls_back_to_the_state_alone()
{
    let store = store().await;
    let table = store.table().to_owned();
    let stored = store
        .put(&UserState::new(user(7), SystemClock.now()))
        .await
        .expect("seed");

    leave_unprocessed(&table, 2).await;
    let read = store
        .get(&user(7))
        .await
        .expect("read after two unprocessed rounds");
    assert_eq!(read.map(|s| s.version), Some(stored.version));

    let calls = moto::CallCounter::start(&table).await;
    leave_unprocessed(&table, 5).await;
    let read = store
        .get(&user(7))
        .await
        .expect("read when every round was throttled");
    assert_eq!(
        read.map(|s| s.version),
        Some(stored.version),
        "the state alone"
    );
    let made = calls.take().await;
    assert_eq!(
        (made.get("BatchGetItem"), made.get("GetItem")),
        (Some(&5), Some(&1)),
        "five rounds, then the state alone: {made:?}"
    );
    moto::clear_faults(&table).await;
}

#[tokio::test]
async fn subscription_owners_throttled_in_every_round_is_a_retryable_error_not_an_empty_answer() {
    use presence_autopilot::aws::connections::DynamoConnections;
    use presence_autopilot::ports::ConnectionStore;

    let (client, table) = moto::new_table().await;
    let connections = DynamoConnections::new(client, &table);
    leave_unprocessed(&table, 5).await;

    let error = connections
        .subscription_owners(&["subscription-1".to_owned()])
        .await
        .expect_err("throttled throughout");

    assert!(
        matches!(
            error,
            StoreError::Throttled {
                operation: "BatchGetItem"
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    moto::clear_faults(&table).await;
}
