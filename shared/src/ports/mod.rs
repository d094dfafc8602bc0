//! Every port of the domain crate, in one place: small traits speaking domain types only.
//! Adapters (`aws`, `genesys`, `wfm`, `graph`, `delivery`) implement them and translate their
//! own errors; fakes (`fakes`) implement them for tests. No SDK type crosses these signatures.
//!
//! - here: the stores (state, audit chain, idempotency, secrets, notification queue, schedules);
//! - [`platform`]: Genesys Cloud presence, routing status, schedules, roster;
//! - [`calendar`]: the calendar connectors;
//! - [`clock`]: time and deadlines;
//! - [`delivery`]: webhook dispatch;
//! - [`dead_letters`]: the dead-letter queues, for replay by the people on call.

mod calendar;
mod clock;
mod dead_letters;
mod delivery;
mod platform;
mod secret;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use calendar::*;
pub use dead_letters::*;
pub use delivery::*;
pub use platform::*;
pub use secret::{SecretDocument, SecretFetcher};

use crate::decide::ShiftWindow;
use crate::model::UserId;
use crate::state::{
    AuditEntry, AuditRecord, ChainBreak, ChainReport, Notification, NotificationId, TriggerId,
    UserState,
};
pub use clock::{Clock, Deadline};

/// A lost optimistic-concurrency race: the stored version was not the one the caller read.
/// The caller re-reads and re-decides; it never overwrites.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user {user_id}: state changed since version {expected_version} was read")]
pub struct Conflict {
    pub user_id: UserId,
    pub expected_version: u64,
}

/// Every failure of the infrastructure ports (table, queues, secrets, bus, schedules). Messages
/// name what failed, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The audit head kept moving under us (many concurrent writers for one user).
    #[error("user {user_id}: audit chain head still contended after {attempts} attempts")]
    ChainContended { user_id: UserId, attempts: u32 },
    #[error("idempotency key {key}: the record is no longer ours (expired and taken over)")]
    LeaseLost { key: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{operation}: throttled by the service")]
    Throttled { operation: &'static str },
    /// The service refused the request itself (malformed, an item or key too large): the same
    /// call can never succeed.
    #[error("{operation} refused: {message}")]
    Refused {
        operation: &'static str,
        message: String,
    },
    #[error("{operation} failed: {message}")]
    Sdk {
        operation: &'static str,
        message: String,
    },
    /// A stored item does not have the shape we wrote (hand-edited, or an old format).
    #[error("stored {item} is corrupt: field {field}: {reason}")]
    Corrupt {
        item: String,
        field: String,
        reason: String,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The team's staffing guard has no free slot: the write that would take one was refused
    /// as a whole.
    #[error("team {team:?}: every slot of its staffing guard is taken")]
    OverCap { team: String },
}

/// A secret that could not be had, as the services see it. Never carries the secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {secret} not found")]
    Missing { secret: String },
    /// The secret exists but a field is absent or of the wrong type.
    #[error("secret {secret}: field {field}: {reason}")]
    Field {
        secret: String,
        field: String,
        reason: String,
    },
    #[error("{operation}: throttled by the service")]
    Throttled { operation: &'static str },
    #[error("{operation} failed: {message}")]
    Sdk {
        operation: &'static str,
        message: String,
    },
}

impl SecretError {
    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Sdk { .. })
    }
}

/// A failed call to a queue, the event bus or the scheduler, as the services see it: what may
/// be done next. (The table's and the secrets' failures are `StoreError`.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    #[error("{operation}: throttled by the service")]
    Throttled { operation: &'static str },
    /// Refused as such (malformed, too large): the same call can never succeed.
    #[error("{operation} refused: {message}")]
    Refused {
        operation: &'static str,
        message: String,
    },
    #[error("{operation} failed: {message}")]
    Sdk {
        operation: &'static str,
        message: String,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl MessagingError {
    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Sdk { .. })
    }
}

impl StoreError {
    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Sdk { .. } | Self::ChainContended { .. }
        )
    }
}

/// What `StateStore::commit` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub state: UserState,
    pub audit: AuditRecord,
}

/// An event's idempotency record, written inside a state or audit write so that taking the
/// event, and later completing it, costs no call of its own. The write succeeds only while
/// nobody else holds the event (an unexpired lease of another token) or has completed it; if
/// not, the whole write is refused with `StoreError::LeaseLost`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMark {
    pub lease: Lease,
    /// How long the record is kept, from now.
    pub ttl: Duration,
    pub status: MarkStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MarkStatus {
    /// Taken until the invocation's deadline (Powertools' IN_PROGRESS).
    InProgress { until: DateTime<Utc> },
    /// Done: this outcome answers later deliveries.
    Completed(serde_json::Value),
}

/// An event's idempotency record as read with the state (an expired one reads as none).
#[derive(Debug, Clone, PartialEq)]
pub enum EventRecord {
    InProgress { owner: String, until: DateTime<Utc> },
    Completed(serde_json::Value),
}

/// The policy as stored, with the store's own revision (SSM Parameter Store: its version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub text: String,
    pub revision: String,
}

/// Where the policy lives between deployments (the stack's parameter).
#[async_trait]
pub trait PolicySource: Send + Sync + fmt::Debug {
    /// The stored policy; `StoreError::NotFound` if there is none.
    async fn fetch(&self) -> Result<StoredPolicy, StoreError>;

    /// Stores a new text (already checked by the caller); the new revision.
    async fn store(&self, text: &str) -> Result<String, StoreError>;
}

/// Per-user presence state under optimistic concurrency.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The stored state with its version, or None if the user was never stored.
    async fn get(&self, user: &UserId) -> Result<Option<UserState>, StoreError> {
        Ok(self.get_for_event(user, None).await?.0)
    }

    /// The state read together with the idempotency record under `event_key` (one read).
    async fn get_for_event(
        &self,
        user: &UserId,
        event_key: Option<&str>,
    ) -> Result<(Option<UserState>, Option<EventRecord>), StoreError>;

    /// Writes `state` as version `state.version + 1` if the stored version is still
    /// `state.version` (0: if nothing is stored). A lost race is `StoreError::Conflict`.
    async fn put(&self, state: &UserState) -> Result<UserState, StoreError> {
        self.put_marked(state, None).await
    }

    /// `put`, with the event's record in the same atomic write when `mark` is given.
    async fn put_marked(
        &self,
        state: &UserState,
        mark: Option<&EventMark>,
    ) -> Result<UserState, StoreError>;

    /// `put` plus one audit record, atomically: state, record and chain head move in a single
    /// transaction or not at all. A moved chain head is retried inside (bounded); a version
    /// conflict is returned as `StoreError::Conflict`.
    async fn commit(&self, state: &UserState, audit: AuditEntry) -> Result<Committed, StoreError> {
        self.commit_marked(state, audit, None).await
    }

    /// `commit`, with the event's record in the same transaction when `mark` is given.
    async fn commit_marked(
        &self,
        state: &UserState,
        audit: AuditEntry,
        mark: Option<&EventMark>,
    ) -> Result<Committed, StoreError>;

    /// Users whose `due_at` is at or before `before`, earliest first, at most `limit`.
    async fn due(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, StoreError>;
}

/// The tamper-evident decision log: every decision appends one record.
#[async_trait]
pub trait AuditLog: Send + Sync + fmt::Debug {
    /// Appends a record for a decision that changed no state.
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        self.append_marked(entry, None).await
    }

    /// `append`, with the event's record in the same transaction when `mark` is given.
    async fn append_marked(
        &self,
        entry: AuditEntry,
        mark: Option<&EventMark>,
    ) -> Result<AuditRecord, StoreError>;
}

/// Reading the decision log: the operators' questions (`autopilot why`, `audit`, `day`), never
/// on the hot path.
#[async_trait]
pub trait AuditQueries: Send + Sync + fmt::Debug {
    /// A user's records with `from <= at < to`, oldest first.
    async fn by_user(
        &self,
        user: &UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Every record about one trigger, across users, oldest first.
    async fn by_trigger(&self, trigger: &TriggerId) -> Result<Vec<AuditRecord>, StoreError>;

    /// Every user with a chain (one scan of the heads; for `autopilot audit verify --all`).
    async fn users(&self) -> Result<Vec<UserId>, StoreError>;

    /// Re-reads the user's whole chain in seq order. `Ok(Err(break))` names the first bad record.
    async fn verify_chain(
        &self,
        user: &UserId,
    ) -> Result<Result<ChainReport, ChainBreak>, StoreError>;
}

/// Proof that this caller holds an idempotency key; `complete` and `release` need it so a
/// worker whose record was taken over cannot overwrite the new owner's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub token: String,
}

/// What `IdempotencyStore::begin` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The caller now owns the key and must `complete` or `release` it.
    Started(Lease),
    /// Done before: here is the stored outcome.
    AlreadyCompleted(serde_json::Value),
    /// Someone else is processing it and their deadline has not passed.
    InProgress { until: DateTime<Utc> },
}

/// At-least-once deduplication with Powertools semantics (see docs/data-model.md).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + fmt::Debug {
    /// Claims `key` until `deadline` (the Lambda's remaining time); the record expires `ttl`
    /// after now. A record whose TTL or IN_PROGRESS deadline has passed is taken over.
    async fn begin(
        &self,
        key: &str,
        deadline: Deadline,
        ttl: Duration,
    ) -> Result<Begin, StoreError>;

    /// Stores the outcome; later `begin`s return it until the record expires (`ttl` from now).
    /// Refused (`LeaseLost`) if someone else holds the key or completed it; a key never taken
    /// (its decision's writes carried no lease) is completed as well.
    async fn complete(
        &self,
        lease: &Lease,
        outcome: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Gives the key up after a failure so a retry of the event can run it again.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;
}

/// JSON-valued secrets, cached in memory.
#[async_trait]
pub trait SecretSource: Send + Sync + fmt::Debug {
    /// The secret, from the cache while it is fresh.
    async fn get(&self, name: &str) -> Result<std::sync::Arc<SecretDocument>, SecretError>;

    /// Fetches the secret again now (after a 401: the secret was rotated).
    async fn force_refresh(
        &self,
        name: &str,
    ) -> Result<std::sync::Arc<SecretDocument>, SecretError>;
}

/// How one notification of a batch fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        notification_id: NotificationId,
        message_id: String,
    },
    Failed {
        notification_id: NotificationId,
        code: String,
        message: String,
    },
}

impl SendOutcome {
    pub fn notification_id(&self) -> NotificationId {
        match self {
            Self::Sent {
                notification_id, ..
            }
            | Self::Failed {
                notification_id, ..
            } => *notification_id,
        }
    }

    pub fn is_sent(&self) -> bool {
        matches!(self, Self::Sent { .. })
    }
}

/// The outgoing notification queue.
#[async_trait]
pub trait NotificationQueue: Send + Sync + fmt::Debug {
    /// Sends every notification; one outcome per notification, in input order. Entries the
    /// service rejects are retried a bounded number of times before they are reported `Failed`.
    async fn send(
        &self,
        notifications: &[Notification],
    ) -> Result<Vec<SendOutcome>, MessagingError>;
}

/// Published schedules kept in the table, so transitions rarely call WFM.
#[async_trait]
pub trait ShiftCache: Send + Sync + fmt::Debug {
    async fn get(&self, users: &[UserId]) -> Result<HashMap<UserId, ShiftWindow>, StoreError>;
    async fn put(
        &self,
        user: &UserId,
        window: &ShiftWindow,
        ttl: Duration,
    ) -> Result<(), StoreError>;
}

/// A one-time schedule that fires an event at a moment (EventBridge Scheduler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSchedule {
    /// Derived from user and trigger, so planning the same thing twice is one schedule.
    pub name: String,
    pub at: DateTime<Utc>,
    /// The event the target receives, as JSON.
    pub input: String,
}

#[async_trait]
pub trait Schedules: Send + Sync + fmt::Debug {
    /// Creates the schedule, or moves it if one of that name exists.
    async fn upsert(&self, schedule: &PlannedSchedule) -> Result<(), MessagingError>;
    /// Deletes it; `false` if there was none.
    async fn delete(&self, name: &str) -> Result<bool, MessagingError>;
}

/// Why a team's floor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("team {team:?} is not a profile of the policy; its teams are {known}")]
    UnknownTeam { team: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
}

impl FloorError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::UnknownTeam { .. } => false,
            Self::Store(err) => err.is_retryable(),
            Self::Platform(err) => err.is_retryable(),
        }
    }
}

/// A team's members over a range, each with their published schedule and known meetings: what
/// the forecast and the daily look-ahead read (adapter: `operator::floor::StoredFloor`).
#[async_trait]
pub trait TeamFloor: Send + Sync + fmt::Debug {
    async fn team(
        &self,
        policy: &crate::policy::Policy,
        team: &str,
        range: (DateTime<Utc>, DateTime<Utc>),
        deadline: Deadline,
    ) -> Result<Vec<crate::decide::forecast::Member>, FloorError>;
}
