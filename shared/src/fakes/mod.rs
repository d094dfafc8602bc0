//! In-memory fakes of the storage ports, with the same conditional semantics as the DynamoDB,
//! Secrets Manager and SQS adapters (version conflicts, one chain per user, Powertools takeover),
//! for unit tests of services and handlers. Enabled by the `test-helpers` feature.

pub mod calendar;
pub mod contract;
pub mod delivery;
pub mod floor;
pub mod platform;
pub mod table_contract;
pub mod world;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::clock::{Clock, Deadline};
use crate::model::UserId;
use crate::ports::SecretDocument;
use crate::ports::{
    AuditLog, AuditQueries, Begin, Committed, Conflict, EventMark, EventRecord, IdempotencyStore,
    Lease, MarkStatus, NotificationQueue, SecretSource, SendOutcome, StateStore, StoreError,
};
use crate::state::{
    AuditEntry, AuditRecord, ChainBreak, ChainHead, ChainReport, Notification, NotificationId,
    SlotChange, TriggerId, UserState, verify_records,
};
use crate::wfm::ShiftWindow;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another test thread panicked; the data is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[derive(Debug, Clone, PartialEq)]
enum IdempotencyStatus {
    InProgress { until: DateTime<Utc> },
    Completed(serde_json::Value),
}

#[derive(Debug, Clone)]
struct IdempotencyRecord {
    status: IdempotencyStatus,
    expires_at: DateTime<Utc>,
    token: String,
}

#[derive(Debug, Default)]
struct Tables {
    states: HashMap<UserId, UserState>,
    audit: HashMap<UserId, Vec<AuditRecord>>,
    // Kept apart from the records, as the DynamoDB head item is, so `tamper` cannot move it.
    heads: HashMap<UserId, ChainHead>,
    idempotency: HashMap<String, IdempotencyRecord>,
    shifts: HashMap<UserId, ShiftWindow>,
    /// Each team's guard: who holds a slot.
    guards: HashMap<String, std::collections::BTreeSet<UserId>>,
}

/// State store, audit log, idempotency store and shift cache over one in-memory "table".
#[derive(Debug, Clone)]
pub struct InMemoryStore {
    clock: Arc<dyn Clock>,
    tables: Arc<Mutex<Tables>>,
}

impl InMemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tables: Arc::new(Mutex::new(Tables::default())),
        }
    }

    /// Every audit record of a user, in seq order.
    pub fn audit_records(&self, user: &UserId) -> Vec<AuditRecord> {
        lock(&self.tables)
            .audit
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// Edits the stored records behind the store's back, as an attacker with table access would.
    pub fn tamper(&self, user: &UserId, edit: impl FnOnce(&mut Vec<AuditRecord>)) {
        edit(lock(&self.tables).audit.entry(user.clone()).or_default());
    }

    fn check_version(tables: &Tables, state: &UserState) -> Result<(), StoreError> {
        let stored = tables.states.get(&state.user_id).map_or(0, |s| s.version);
        if stored == state.version {
            Ok(())
        } else {
            Err(Conflict {
                user_id: state.user_id.clone(),
                expected_version: state.version,
            }
            .into())
        }
    }

    fn next_state(&self, state: &UserState) -> UserState {
        let mut next = state.clone();
        next.version += 1;
        next.updated_at = self.clock.now();
        next.slot_change = None;
        next
    }

    /// The stored state of `user`.
    pub fn state_of(&self, user: &UserId) -> Option<UserState> {
        lock(&self.tables).states.get(user).cloned()
    }

    /// Who holds a slot of `team`'s guard.
    pub fn slot_holders(&self, team: &str) -> Vec<UserId> {
        lock(&self.tables)
            .guards
            .get(team)
            .map(|holders| holders.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks the state's guard change as DynamoDB's condition would: a take is refused when
    /// `cap` others hold a slot.
    fn check_slot(tables: &Tables, state: &UserState) -> Result<(), StoreError> {
        let Some(SlotChange::Take { team, cap }) = &state.slot_change else {
            return Ok(());
        };
        let holders = tables.guards.get(team);
        let held = holders.is_some_and(|h| h.contains(&state.user_id));
        let count = holders.map_or(0, |h| h.len());
        if held || count < *cap as usize {
            Ok(())
        } else {
            Err(StoreError::OverCap { team: team.clone() })
        }
    }

    /// Applies the state's guard change (checked first by `check_slot`, under the same lock).
    fn write_slot(tables: &mut Tables, state: &UserState) {
        let Some(change) = &state.slot_change else {
            return;
        };
        let holders = tables.guards.entry(change.team().to_owned()).or_default();
        match change {
            SlotChange::Take { .. } | SlotChange::Retake { .. } => {
                holders.insert(state.user_id.clone());
            }
            SlotChange::Release { .. } => {
                holders.remove(&state.user_id);
            }
        }
    }

    /// Checks `mark` as DynamoDB's condition would: refused while someone else holds the event
    /// or has completed it.
    fn check_mark(&self, tables: &Tables, mark: Option<&EventMark>) -> Result<(), StoreError> {
        let Some(mark) = mark else { return Ok(()) };
        let now = self.clock.now();
        let holdable = match tables.idempotency.get(&mark.lease.key) {
            None => true,
            Some(existing) => {
                existing.expires_at < now
                    || matches!(existing.status, IdempotencyStatus::InProgress { until }
                        if until < now || existing.token == mark.lease.token)
            }
        };
        if holdable {
            Ok(())
        } else {
            Err(StoreError::LeaseLost {
                key: mark.lease.key.clone(),
            })
        }
    }

    /// Writes `mark` (checked first by `check_mark`, under the same lock).
    fn write_mark(&self, tables: &mut Tables, mark: Option<&EventMark>) {
        let Some(mark) = mark else { return };
        let status = match &mark.status {
            MarkStatus::InProgress { until } => IdempotencyStatus::InProgress {
                until: to_millis(*until),
            },
            MarkStatus::Completed(outcome) => IdempotencyStatus::Completed(outcome.clone()),
        };
        tables.idempotency.insert(
            mark.lease.key.clone(),
            IdempotencyRecord {
                status,
                expires_at: self.clock.now() + to_chrono(mark.ttl),
                token: mark.lease.token.clone(),
            },
        );
    }

    fn link(&self, tables: &mut Tables, entry: AuditEntry) -> AuditRecord {
        let user = entry.user_id.clone();
        let record = AuditRecord::link(entry, tables.heads.get(&user), self.clock.now());
        tables.heads.insert(user.clone(), record.head());
        tables.audit.entry(user).or_default().push(record.clone());
        record
    }
}

#[async_trait]
impl StateStore for InMemoryStore {
    async fn get_for_event(
        &self,
        user: &UserId,
        event_key: Option<&str>,
    ) -> Result<(Option<UserState>, Option<EventRecord>), StoreError> {
        let tables = lock(&self.tables);
        let now = self.clock.now();
        let event = event_key
            .and_then(|key| tables.idempotency.get(key))
            .filter(|record| record.expires_at >= now)
            .map(|record| match &record.status {
                IdempotencyStatus::InProgress { until } => EventRecord::InProgress {
                    owner: record.token.clone(),
                    until: *until,
                },
                IdempotencyStatus::Completed(outcome) => EventRecord::Completed(outcome.clone()),
            });
        Ok((tables.states.get(user).cloned(), event))
    }

    async fn put_marked(
        &self,
        state: &UserState,
        mark: Option<&EventMark>,
    ) -> Result<UserState, StoreError> {
        let mut tables = lock(&self.tables);
        Self::check_version(&tables, state)?;
        self.check_mark(&tables, mark)?;
        Self::check_slot(&tables, state)?;
        let next = self.next_state(state);
        tables.states.insert(next.user_id.clone(), next.clone());
        self.write_mark(&mut tables, mark);
        Self::write_slot(&mut tables, state);
        Ok(next)
    }

    async fn commit_marked(
        &self,
        state: &UserState,
        audit: AuditEntry,
        mark: Option<&EventMark>,
    ) -> Result<Committed, StoreError> {
        if audit.user_id != state.user_id {
            return Err(StoreError::Invalid(
                "audit entry is for another user".to_owned(),
            ));
        }
        let mut tables = lock(&self.tables);
        Self::check_version(&tables, state)?;
        self.check_mark(&tables, mark)?;
        Self::check_slot(&tables, state)?;
        let next = self.next_state(state);
        tables.states.insert(next.user_id.clone(), next.clone());
        let record = self.link(&mut tables, audit);
        self.write_mark(&mut tables, mark);
        Self::write_slot(&mut tables, state);
        Ok(Committed {
            state: next,
            audit: record,
        })
    }

    async fn due(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, StoreError> {
        let tables = lock(&self.tables);
        let mut due: Vec<(UserId, DateTime<Utc>)> = tables
            .states
            .values()
            .filter_map(|s| {
                s.due_at
                    .filter(|d| *d <= before)
                    .map(|d| (s.user_id.clone(), d))
            })
            .collect();
        due.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        due.truncate(limit);
        Ok(due)
    }
}

/// A time as the table keeps it: to the millisecond (`inProgressExpiry` is epoch milliseconds).
fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// Cached schedules are kept until replaced (the TTL is the table's business in DynamoDB).
#[async_trait]
// Named in full so tests that `use super::*` keep `put`/`get` meaning the state store's.
impl crate::ports::ShiftCache for InMemoryStore {
    async fn get(&self, users: &[UserId]) -> Result<HashMap<UserId, ShiftWindow>, StoreError> {
        let tables = lock(&self.tables);
        Ok(users
            .iter()
            .filter_map(|user| Some((user.clone(), tables.shifts.get(user)?.clone())))
            .collect())
    }

    async fn put(
        &self,
        user: &UserId,
        window: &ShiftWindow,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        lock(&self.tables)
            .shifts
            .insert(user.clone(), window.clone());
        Ok(())
    }
}

#[async_trait]
impl AuditLog for InMemoryStore {
    async fn append_marked(
        &self,
        entry: AuditEntry,
        mark: Option<&EventMark>,
    ) -> Result<AuditRecord, StoreError> {
        let mut tables = lock(&self.tables);
        self.check_mark(&tables, mark)?;
        let record = self.link(&mut tables, entry);
        self.write_mark(&mut tables, mark);
        Ok(record)
    }
}

#[async_trait]
impl AuditQueries for InMemoryStore {
    async fn by_user(
        &self,
        user: &UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut found: Vec<AuditRecord> = self
            .audit_records(user)
            .into_iter()
            .filter(|r| from <= r.at && r.at < to)
            .collect();
        found.sort_by_key(|r| (r.at, r.seq));
        Ok(found)
    }

    async fn by_trigger(&self, trigger: &TriggerId) -> Result<Vec<AuditRecord>, StoreError> {
        let tables = lock(&self.tables);
        let mut found: Vec<AuditRecord> = tables
            .audit
            .values()
            .flatten()
            .filter(|r| r.trigger_id.as_ref() == Some(trigger))
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.at, &a.user_id, a.seq).cmp(&(b.at, &b.user_id, b.seq)));
        Ok(found)
    }

    async fn users(&self) -> Result<Vec<UserId>, StoreError> {
        let mut users: Vec<UserId> = lock(&self.tables).heads.keys().cloned().collect();
        users.sort();
        Ok(users)
    }

    async fn verify_chain(
        &self,
        user: &UserId,
    ) -> Result<Result<ChainReport, ChainBreak>, StoreError> {
        let tables = lock(&self.tables);
        let records = tables.audit.get(user).map_or(&[][..], Vec::as_slice);
        Ok(verify_records(user, records, tables.heads.get(user)))
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryStore {
    async fn begin(
        &self,
        key: &str,
        deadline: Deadline,
        ttl: Duration,
    ) -> Result<Begin, StoreError> {
        let now = self.clock.now();
        let mut tables = lock(&self.tables);
        if let Some(existing) = tables.idempotency.get(key) {
            // Powertools: `attribute_not_exists OR expiry < now OR (INPROGRESS AND deadline < now)`.
            let takeover = existing.expires_at < now
                || matches!(existing.status, IdempotencyStatus::InProgress { until } if until < now);
            if !takeover {
                return Ok(match &existing.status {
                    IdempotencyStatus::Completed(outcome) => {
                        Begin::AlreadyCompleted(outcome.clone())
                    }
                    IdempotencyStatus::InProgress { until } => Begin::InProgress { until: *until },
                });
            }
        }
        let token = ulid::Ulid::new().to_string();
        tables.idempotency.insert(
            key.to_owned(),
            IdempotencyRecord {
                status: IdempotencyStatus::InProgress {
                    until: to_millis(deadline.0),
                },
                expires_at: now + to_chrono(ttl),
                token: token.clone(),
            },
        );
        Ok(Begin::Started(Lease {
            key: key.to_owned(),
            token,
        }))
    }

    async fn complete(
        &self,
        lease: &Lease,
        outcome: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mark = EventMark {
            lease: lease.clone(),
            ttl,
            status: MarkStatus::Completed(outcome.clone()),
        };
        let mut tables = lock(&self.tables);
        self.check_mark(&tables, Some(&mark))?;
        self.write_mark(&mut tables, Some(&mark));
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut tables = lock(&self.tables);
        match tables.idempotency.get(&lease.key) {
            Some(record)
                if record.token == lease.token
                    && matches!(record.status, IdempotencyStatus::InProgress { .. }) =>
            {
                tables.idempotency.remove(&lease.key);
                Ok(())
            }
            _ => Err(StoreError::LeaseLost {
                key: lease.key.clone(),
            }),
        }
    }
}

/// Secrets held in memory; `set` rotates one. No cache: every read sees the current value.
#[derive(Debug, Clone, Default)]
pub struct FakeSecrets {
    values: Arc<Mutex<HashMap<String, String>>>,
    forced_refreshes: Arc<Mutex<Vec<String>>>,
}

impl FakeSecrets {
    pub fn set(&self, name: &str, json: &str) {
        lock(&self.values).insert(name.to_owned(), json.to_owned());
    }

    /// Names passed to `force_refresh`, in order.
    pub fn forced_refreshes(&self) -> Vec<String> {
        lock(&self.forced_refreshes).clone()
    }

    fn read(&self, name: &str) -> Result<Arc<SecretDocument>, crate::ports::SecretError> {
        let raw = lock(&self.values).get(name).cloned().ok_or_else(|| {
            crate::ports::SecretError::Missing {
                secret: name.to_owned(),
            }
        })?;
        Ok(Arc::new(SecretDocument::parse(
            name,
            SecretString::from(raw),
        )?))
    }
}

#[async_trait]
impl SecretSource for FakeSecrets {
    async fn get(&self, name: &str) -> Result<Arc<SecretDocument>, crate::ports::SecretError> {
        self.read(name)
    }

    async fn force_refresh(
        &self,
        name: &str,
    ) -> Result<Arc<SecretDocument>, crate::ports::SecretError> {
        lock(&self.forced_refreshes).push(name.to_owned());
        self.read(name)
    }
}

/// A queue that records what was sent; `fail` makes chosen notifications fail.
#[derive(Debug, Clone, Default)]
pub struct FakeQueue {
    sent: Arc<Mutex<Vec<Notification>>>,
    failing: Arc<Mutex<HashSet<NotificationId>>>,
}

impl FakeQueue {
    pub fn sent(&self) -> Vec<Notification> {
        lock(&self.sent).clone()
    }

    pub fn fail(&self, id: NotificationId) {
        lock(&self.failing).insert(id);
    }
}

#[async_trait]
impl NotificationQueue for FakeQueue {
    async fn send(
        &self,
        notifications: &[Notification],
    ) -> Result<Vec<SendOutcome>, crate::ports::MessagingError> {
        let failing = lock(&self.failing).clone();
        let mut sent = lock(&self.sent);
        Ok(notifications
            .iter()
            .map(|n| {
                let id = n.notification_id;
                if failing.contains(&id) {
                    SendOutcome::Failed {
                        notification_id: id,
                        code: "InternalError".to_owned(),
                        message: "injected failure".to_owned(),
                    }
                } else {
                    sent.push(n.clone());
                    SendOutcome::Sent {
                        notification_id: id,
                        message_id: format!("fake-{id}"),
                    }
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::{DecisionKind, NotificationKind};

    fn setup() -> (ManualClock, InMemoryStore) {
        let clock =
            ManualClock::starting_at(DateTime::from_timestamp(1_770_000_000, 0).expect("time"));
        let store = InMemoryStore::new(Arc::new(clock.clone()));
        (clock, store)
    }

    fn user() -> UserId {
        UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid id")
    }

    #[tokio::test]
    async fn stale_version_is_a_typed_conflict_and_nothing_is_written() {
        let (clock, store) = setup();
        let first = store
            .put(&UserState::new(user(), clock.now()))
            .await
            .expect("create");
        assert_eq!(first.version, 1);

        let mut stale = first.clone();
        stale.changed_by_other = true;
        store.put(&first).await.expect("second write");
        let err = store.put(&stale).await.expect_err("stale");

        assert!(matches!(
            err,
            StoreError::Conflict(Conflict {
                expected_version: 1,
                ..
            })
        ));
        let stored = store.get(&user()).await.expect("get").expect("exists");
        assert_eq!(stored.version, 2);
        assert!(!stored.changed_by_other);
    }

    #[tokio::test]
    async fn commit_writes_state_and_chained_audit_together_or_not_at_all() {
        let (clock, store) = setup();
        store
            .append(AuditEntry::new(user(), DecisionKind::Skipped))
            .await
            .expect("append");
        let committed = store
            .commit(
                &UserState::new(user(), clock.now()),
                AuditEntry::new(user(), DecisionKind::Applied),
            )
            .await
            .expect("commit");
        assert_eq!(committed.audit.seq, 2);

        let stale = UserState::new(user(), clock.now());
        let err = store
            .commit(&stale, AuditEntry::new(user(), DecisionKind::Applied))
            .await;

        assert!(matches!(err, Err(StoreError::Conflict(_))));
        assert_eq!(store.audit_records(&user()).len(), 2);
        assert!(store.verify_chain(&user()).await.expect("verify").is_ok());
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let (_, store) = setup();
        for _ in 0..3 {
            store
                .append(AuditEntry::new(user(), DecisionKind::Kept))
                .await
                .expect("append");
        }
        store.tamper(&user(), |records| {
            records[0].reason = Some("edited".to_owned())
        });
        let verdict = store.verify_chain(&user()).await.expect("verify");
        assert_eq!(verdict, Err(ChainBreak::HashMismatch { seq: 1 }));

        store.tamper(&user(), |records| {
            records.pop();
            records[0].reason = None;
        });
        let verdict = store.verify_chain(&user()).await.expect("verify");
        assert_eq!(
            verdict,
            Err(ChainBreak::HeadMismatch {
                head_seq: 3,
                last_seq: 2
            })
        );
    }

    #[tokio::test]
    async fn idempotency_runs_once_returns_outcome_and_allows_takeover_after_deadline() {
        let (clock, store) = setup();
        let ttl = Duration::from_secs(3600);
        let deadline = Deadline::after(&clock, Duration::from_secs(30));

        let Begin::Started(lease) = store.begin("evt-1", deadline, ttl).await.expect("begin")
        else {
            panic!("first begin must start");
        };
        assert!(matches!(
            store.begin("evt-1", deadline, ttl).await.expect("begin"),
            Begin::InProgress { .. }
        ));

        clock.advance(Duration::from_secs(31));
        // The taker runs under its own deadline.
        let taker_deadline = Deadline::after(&clock, Duration::from_secs(30));
        let Begin::Started(taken) = store
            .begin("evt-1", taker_deadline, ttl)
            .await
            .expect("begin")
        else {
            panic!("expired in-progress must be taken over");
        };
        let late = store
            .complete(&lease, &serde_json::json!({"by": "old"}), ttl)
            .await;
        assert!(matches!(late, Err(StoreError::LeaseLost { .. })));

        store
            .complete(&taken, &serde_json::json!({"by": "new"}), ttl)
            .await
            .expect("complete");
        let again = store
            .begin("evt-1", Deadline::after(&clock, Duration::ZERO), ttl)
            .await;
        assert_eq!(
            again.expect("begin"),
            Begin::AlreadyCompleted(serde_json::json!({"by": "new"}))
        );

        clock.advance(ttl + Duration::from_secs(1));
        let after_ttl = store.begin("evt-1", deadline, ttl).await.expect("begin");
        assert!(matches!(after_ttl, Begin::Started(_)));
    }

    #[tokio::test]
    async fn released_key_can_start_again() {
        let (clock, store) = setup();
        let deadline = Deadline::after(&clock, Duration::from_secs(30));
        let ttl = Duration::from_secs(60);
        let Begin::Started(lease) = store.begin("k", deadline, ttl).await.expect("begin") else {
            panic!("must start");
        };
        store.release(&lease).await.expect("release");
        assert!(matches!(
            store.begin("k", deadline, ttl).await,
            Ok(Begin::Started(_))
        ));
    }

    #[tokio::test]
    async fn due_lists_users_in_due_order() {
        let (clock, store) = setup();
        let later = UserId::parse("11111111-0c59-4360-ac54-40dd35eb9c2f").expect("id");
        let mut a = UserState::new(user(), clock.now());
        a.due_at = Some(clock.now() + chrono::Duration::seconds(10));
        let mut b = UserState::new(later.clone(), clock.now());
        b.due_at = Some(clock.now() + chrono::Duration::seconds(5));
        store.put(&a).await.expect("a");
        store.put(&b).await.expect("b");

        let due = store
            .due(clock.now() + chrono::Duration::seconds(7), 10)
            .await
            .expect("due");

        assert_eq!(
            due.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
            vec![later]
        );
    }

    #[tokio::test]
    async fn fake_queue_reports_injected_failures() {
        let (clock, _) = setup();
        let queue = FakeQueue::default();
        let kind = NotificationKind::PresenceApplied;
        let a = Notification::for_change(user(), clock.now(), 1, kind, serde_json::Value::Null);
        let b = Notification::for_change(user(), clock.now(), 2, kind, serde_json::Value::Null);
        queue.fail(b.notification_id);

        let outcomes = queue.send(&[a.clone(), b]).await.expect("send");

        assert!(outcomes[0].is_sent() && !outcomes[1].is_sent());
        assert_eq!(queue.sent(), vec![a]);
    }
}
