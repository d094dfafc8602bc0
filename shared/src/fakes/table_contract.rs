//! The contract of the table's ports (the user's state, the audit chain, idempotency records),
//! run against `InMemoryStore` here and against `DynamoStore` on the local AWS stand-in
//! (`tests/integration`, `contracts.rs`), so the fake every use-case test stands on cannot drift
//! from the adapter. Each check goes through the ports' own methods and panics naming what broke.

use std::time::Duration;

use serde_json::json;

use crate::clock::{Clock, Deadline, ManualClock};
use crate::model::UserId;
use crate::ports::{
    AuditLog, AuditQueries, Begin, EventMark, EventRecord, IdempotencyStore, Lease, MarkStatus,
    StateStore, StoreError,
};
use crate::state::{AuditEntry, DecisionKind, SlotChange, TriggerId, UserState};

/// One table seen through its ports, on the clock the store reads.
#[derive(Debug)]
pub struct Table<'a> {
    pub state: &'a dyn StateStore,
    pub log: &'a dyn AuditLog,
    pub audit: &'a dyn AuditQueries,
    pub idempotency: &'a dyn IdempotencyStore,
    pub clock: &'a ManualClock,
}

const TTL: Duration = Duration::from_secs(3_600);

fn entry(user: &UserId, kind: DecisionKind, trigger: &str) -> AuditEntry {
    let mut entry = AuditEntry::new(user.clone(), kind);
    entry.trigger_id = Some(TriggerId::parse(trigger).expect("a trigger id"));
    entry
}

/// Versions, conditional writes, commits with their chained audit record, the due index.
pub async fn state_and_audit(table: &Table<'_>, user: UserId) {
    let (state, audit, now) = (table.state, table.audit, table.clock.now());
    assert_eq!(
        state.get(&user).await.expect("read"),
        None,
        "never stored reads as none"
    );

    let first = state
        .put(&UserState::new(user.clone(), now))
        .await
        .expect("the first write");
    assert_eq!(first.version, 1, "the first write is version 1");
    let stale = state.put(&UserState::new(user.clone(), now)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "a write from version 0 after version 1 is a conflict: {stale:?}"
    );

    let mut next = first.clone();
    next.due_at = Some(now + chrono::Duration::minutes(5));
    let committed = state
        .commit(&next, entry(&user, DecisionKind::Applied, "contract-m1"))
        .await
        .expect("a commit");
    assert_eq!(
        committed.state.version, 2,
        "a commit writes the next version"
    );
    assert_eq!(committed.audit.seq, 1, "the chain starts at 1");
    let lost = state
        .commit(&first, entry(&user, DecisionKind::Kept, "contract-m1"))
        .await;
    assert!(
        matches!(lost, Err(StoreError::Conflict(_))),
        "a commit from a stale version is a conflict: {lost:?}"
    );
    let stored = state.get(&user).await.expect("read").expect("stored");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.due_at, next.due_at, "the due time is kept");

    let second = audit_after_an_append(table, &user).await;
    let hour = chrono::Duration::hours(1);
    let records = audit
        .by_user(&user, now - hour, now + hour)
        .await
        .expect("records");
    let kinds: Vec<DecisionKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [DecisionKind::Applied, DecisionKind::Skipped],
        "the lost commit wrote no record; oldest first"
    );
    assert_eq!(
        records[1].prev_hash, records[0].hash,
        "record 2 links to record 1"
    );
    assert_eq!(records[1], second);
    let report = audit
        .verify_chain(&user)
        .await
        .expect("read")
        .expect("intact");
    assert_eq!(report.records, 2);
    let trigger = TriggerId::parse("contract-m1").expect("id");
    let about = audit.by_trigger(&trigger).await.expect("by trigger");
    assert_eq!(about.len(), 1, "only the commit's record names contract-m1");
    assert!(audit.users().await.expect("users").contains(&user));

    let due = |before| async move { state.due(before, 10).await.expect("due") };
    let at = next.due_at.expect("set");
    assert_eq!(
        due(at - chrono::Duration::seconds(1)).await,
        [],
        "not due yet"
    );
    assert_eq!(due(at).await, [(user.clone(), at)], "due at its time");
}

/// A record appended on its own (a decision that changed no state) continues the chain.
async fn audit_after_an_append(table: &Table<'_>, user: &UserId) -> crate::state::AuditRecord {
    let record = table
        .log
        .append(entry(user, DecisionKind::Skipped, "contract-m2"))
        .await
        .expect("an append");
    assert_eq!(record.seq, 2, "the append follows the commit's record");
    record
}

fn deadline(table: &Table<'_>) -> Deadline {
    Deadline::after(table.clock, Duration::from_secs(30))
}

/// An event's record carried by the state's own writes: taken (in progress), refused to
/// another holder, completed by the commit, read back with the state.
pub async fn event_marks(table: &Table<'_>, user: UserId) {
    let (state, now) = (table.state, table.clock.now());
    let key = "contract#e-1";
    let lease = Lease {
        key: key.to_owned(),
        token: "token-a".to_owned(),
    };
    let until = now + chrono::Duration::nanoseconds(30_000_000_123);
    let taking = EventMark {
        lease: lease.clone(),
        ttl: TTL,
        status: MarkStatus::InProgress { until },
    };
    let claimed = state
        .put_marked(&UserState::new(user.clone(), now), Some(&taking))
        .await
        .expect("a claim taking the event");
    let (_, record) = state.get_for_event(&user, Some(key)).await.expect("read");
    let kept = chrono::DateTime::from_timestamp_millis(until.timestamp_millis()).expect("in range");
    assert_eq!(
        record,
        Some(EventRecord::InProgress {
            owner: "token-a".to_owned(),
            until: kept
        }),
        "the claim took the event (its deadline kept to the millisecond)"
    );

    let rival = EventMark {
        lease: Lease {
            key: key.to_owned(),
            token: "token-b".to_owned(),
        },
        ..taking.clone()
    };
    let refused = state.put_marked(&claimed, Some(&rival)).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost { .. })),
        "another holder's write is refused whole: {refused:?}"
    );
    let unchanged = state.get(&user).await.expect("read").expect("stored");
    assert_eq!(
        unchanged.version, claimed.version,
        "nothing of the refused write landed"
    );

    let outcome = json!({"decision": "applied"});
    let completing = EventMark {
        status: MarkStatus::Completed(outcome.clone()),
        ..taking
    };
    state
        .commit_marked(
            &claimed,
            entry(&user, DecisionKind::Applied, "contract-e"),
            Some(&completing),
        )
        .await
        .expect("the commit completes the event");
    let (_, record) = state.get_for_event(&user, Some(key)).await.expect("read");
    assert_eq!(record, Some(EventRecord::Completed(outcome.clone())));
    let begun = table.idempotency.begin(key, deadline(table), TTL).await;
    assert_eq!(
        begun.expect("begin"),
        Begin::AlreadyCompleted(outcome),
        "a later delivery gets the stored outcome"
    );
}

/// Keys taken, completed, released and taken over after their holder's deadline.
pub async fn idempotency(table: &Table<'_>) {
    let store = table.idempotency;
    let Begin::Started(lease) = store
        .begin("contract#k-1", deadline(table), TTL)
        .await
        .expect("begin")
    else {
        panic!("a new key is started");
    };
    let again = store.begin("contract#k-1", deadline(table), TTL).await;
    assert!(
        matches!(again, Ok(Begin::InProgress { .. })),
        "a key held until a later deadline is in progress: {again:?}"
    );
    store
        .complete(&lease, &json!({"n": 1}), TTL)
        .await
        .expect("complete");
    assert_eq!(
        store
            .begin("contract#k-1", deadline(table), TTL)
            .await
            .expect("begin"),
        Begin::AlreadyCompleted(json!({"n": 1}))
    );

    let Begin::Started(released) = store
        .begin("contract#k-2", deadline(table), TTL)
        .await
        .expect("begin")
    else {
        panic!("a new key is started");
    };
    store.release(&released).await.expect("release");
    let retaken = store.begin("contract#k-2", deadline(table), TTL).await;
    assert!(
        matches!(retaken, Ok(Begin::Started(_))),
        "a released key is taken again: {retaken:?}"
    );

    let short = Deadline::after(table.clock, Duration::from_secs(5));
    let Begin::Started(stale) = store
        .begin("contract#k-3", short, TTL)
        .await
        .expect("begin")
    else {
        panic!("a new key is started");
    };
    table.clock.advance(Duration::from_secs(6));
    let taken_over = store.begin("contract#k-3", deadline(table), TTL).await;
    assert!(
        matches!(taken_over, Ok(Begin::Started(_))),
        "a key past its holder's deadline is taken over: {taken_over:?}"
    );
    let late = store.complete(&stale, &json!({"n": 3}), TTL).await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "the old holder cannot complete it: {late:?}"
    );
}

/// The staffing guard: slots are taken in the state's own write, so `cap` concurrent takers
/// win and the others' writes are refused whole (no state written); a holder may write again,
/// a release frees a slot for the next taker, a retake holds one whatever the count.
pub async fn staffing_guard(table: &Table<'_>) {
    const TEAM: &str = "contract-team";
    const CAP: u32 = 10;
    let now = table.clock.now();
    let users: Vec<UserId> = (0..50)
        .map(|i| UserId::parse(&format!("00000000-0000-4000-8000-{i:012}")).expect("id"))
        .collect();
    let taking = |user: &UserId| {
        let mut state = UserState::new(user.clone(), now);
        state.slot = Some(TEAM.to_owned());
        state.slot_change = Some(SlotChange::Take {
            team: TEAM.to_owned(),
            cap: CAP,
        });
        state
    };
    let take = |state: UserState| async move {
        // A transaction that collided with another on the guard item is a lost race: the
        // service reads again and decides again; here the same write is sent again.
        for _ in 0..100 {
            match table.state.put(&state).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
        panic!("50 rounds of conflicts for one take");
    };
    let results = futures::future::join_all(users.iter().map(|u| take(taking(u)))).await;
    let won: Vec<UserState> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let refused: Vec<&UserId> = results
        .iter()
        .zip(&users)
        .filter(|(r, _)| matches!(r, Err(StoreError::OverCap { team }) if team == TEAM))
        .map(|(_, u)| u)
        .collect();
    let answers: Vec<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .map_or_else(ToString::to_string, |_| "taken".to_owned())
        })
        .collect();
    assert_eq!(
        won.len(),
        CAP as usize,
        "exactly the cap take a slot: {answers:?}"
    );
    assert_eq!(refused.len(), users.len() - CAP as usize, "{answers:?}");
    assert_eq!(
        table.state.get(refused[0]).await.expect("read"),
        None,
        "a refused take writes no state"
    );
    assert!(
        won.iter().all(|s| s.slot_change.is_none()),
        "a stored state carries no change"
    );

    // A holder writes again with its take: holding a slot counts as having one.
    let holder = won[0].clone();
    let mut again = holder.clone();
    again.slot_change = Some(SlotChange::Take {
        team: TEAM.to_owned(),
        cap: CAP,
    });
    let holder = take(again).await.expect("a holder keeps its slot");

    // A release frees one slot, in the commit with its audit record.
    let released = holder.clone().releasing_slot();
    table
        .state
        .commit(
            &released,
            entry(&holder.user_id, DecisionKind::Restored, "g-1"),
        )
        .await
        .expect("committed");
    take(taking(refused[0]))
        .await
        .expect("the freed slot is taken");
    assert!(
        matches!(
            take(taking(refused[1])).await,
            Err(StoreError::OverCap { .. })
        ),
        "full again"
    );
    // A retake holds a slot whatever the count (the agent is still off queue).
    let mut retake = UserState::new(refused[1].clone(), now);
    retake.slot = Some(TEAM.to_owned());
    retake.slot_change = Some(SlotChange::Retake {
        team: TEAM.to_owned(),
    });
    table
        .state
        .put(&retake)
        .await
        .expect("a retake is not refused");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fakes::InMemoryStore;

    fn user() -> UserId {
        UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid")
    }

    fn table<'a>(store: &'a InMemoryStore, clock: &'a ManualClock) -> Table<'a> {
        Table {
            state: store,
            log: store,
            audit: store,
            idempotency: store,
            clock,
        }
    }

    fn fresh() -> (InMemoryStore, ManualClock) {
        let clock = ManualClock::starting_at(chrono::Utc::now());
        (InMemoryStore::new(Arc::new(clock.clone())), clock)
    }

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_state_and_audit_contract() {
        let (store, clock) = fresh();
        state_and_audit(&table(&store, &clock), user()).await;
    }

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_event_mark_contract() {
        let (store, clock) = fresh();
        event_marks(&table(&store, &clock), user()).await;
    }

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_idempotency_contract() {
        let (store, clock) = fresh();
        idempotency(&table(&store, &clock)).await;
    }

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_staffing_guard_contract() {
        let (store, clock) = fresh();
        staffing_guard(&table(&store, &clock)).await;
        assert_eq!(
            store.slot_holders("contract-team").len(),
            11,
            "10, and the retake"
        );
    }
}
