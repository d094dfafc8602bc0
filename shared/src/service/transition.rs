//! The `transition` use case: an event becomes a decision, the decision becomes (at most) one
//! presence write, and every decision leaves one audit record.
//!
//! Order of work for one user: read state (version) → screen → live presence, routing status,
//! shift → decide → claim the state (conditional put) → compare-and-set the presence → commit
//! state + audit (one transaction) → send the notification from the state's outbox. A lost race
//! re-reads and re-decides; the claim makes sure only one invocation writes Genesys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use crate::clock::{Clock, Deadline};
use crate::decide::{Context, Decided, Decision, ShiftView, SkipReason, Trigger, decide, screen};
use crate::events::{self, CalendarAction, EventError, InboundEvent, ParsedEvent};
use crate::genesys::{CasOutcome, GenesysError};
use crate::model::{PresenceSnapshot, RoutingStatus, UserId};
use crate::policy::{Policy, ResolvedTargets};
use crate::ports::{
    AuditLog, Begin, IdempotencyStore, Lease, NotificationQueue, PresenceApi, ShiftSource,
    StateStore, StoreError,
};
use crate::state::{
    AuditEntry, ChangePayload, DecisionKind, Notification, NotificationKind, PresenceRef,
    PresenceView, TriggerId, UserState,
};

/// Audit records of events that name no usable user are kept under this id.
pub const UNATTRIBUTED_USER: &str = "00000000-0000-0000-0000-000000000000";
/// Re-reads after a lost race before giving up (the event is then retried by its source).
/// Each round has one winner, so this bounds how many concurrent writers of one user all finish.
const MAX_ATTEMPTS: u32 = 16;
/// Recording a write Genesys already took is worth more tries than deciding: giving up leaves
/// the claim unsettled (the end still restores it, but the `Applied` record waits for a retry).
const SETTLE_ATTEMPTS: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Genesys(#[from] GenesysError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event {event_id} is being handled by another invocation")]
    InProgress { event_id: String },
    #[error("user {user_id}: the state kept changing under us; gave up after {attempts} attempts")]
    Contended { user_id: UserId, attempts: u32 },
}

impl TransitionError {
    /// Whether the event should be delivered again (SQS retry, Lambda async retry).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Genesys(error) => error.is_retryable() || matches!(error, GenesysError::Timeout),
            Self::Store(error) => error.is_retryable() || matches!(error, StoreError::Conflict(_)),
            Self::InProgress { .. } | Self::Contended { .. } => true,
        }
    }
}

/// What happened to one event; stored as the idempotency outcome and returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub event_id: Option<String>,
    pub user_id: Option<String>,
    /// applied, restored, kept, skipped, deferred, rejected, ignored.
    pub decision: String,
    pub reason: Option<String>,
    /// True when this event id was handled before and this is the stored outcome.
    #[serde(default)]
    pub duplicate: bool,
    /// Where the time went (logged and emitted as metrics by the handler).
    #[serde(default)]
    pub timings: StageTimings,
}

/// Latency of each stage of one event, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageTimings {
    /// Reading the Genesys credentials (Secrets Manager, when the cache missed).
    pub secret_ms: u64,
    /// OAuth token requests (when the cached token was missing or expired).
    pub token_ms: u64,
    pub genesys_read_ms: u64,
    pub genesys_write_ms: u64,
    pub store_ms: u64,
}

impl Outcome {
    pub fn is_rejected(&self) -> bool {
        self.decision == "rejected"
    }
}

#[derive(Debug, Clone)]
pub struct TransitionDeps {
    pub presence: Arc<dyn PresenceApi>,
    pub shifts: Arc<dyn ShiftSource>,
    pub state: Arc<dyn StateStore>,
    pub audit: Arc<dyn AuditLog>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub queue: Arc<dyn NotificationQueue>,
    pub clock: Arc<dyn Clock>,
    pub policy: Arc<Policy>,
    pub targets: Arc<ResolvedTargets>,
    /// How long an event id is remembered as handled.
    pub idempotency_ttl: Duration,
}

#[derive(Debug)]
pub struct TransitionService {
    deps: TransitionDeps,
    /// E-mail → user id, for the life of the Lambda instance.
    users_by_email: Mutex<HashMap<String, UserId>>,
}

/// The inputs of a decision that need Genesys calls, fetched once per attempt.
#[derive(Debug, Clone)]
struct Live {
    current: PresenceSnapshot,
    routing: Option<RoutingStatus>,
    shift: Option<ShiftView>,
}

/// A start in a bulk batch, between claiming its event id and deciding.
struct BulkItem {
    index: usize,
    event: ParsedEvent,
    lease: Lease,
    user: UserId,
    state: UserState,
}

/// An apply of a bulk batch whose state claim was written.
struct Claimed {
    item: BulkItem,
    live: Live,
    claimed: UserState,
    target: PresenceRef,
    restore_to: PresenceRef,
}

enum Persisted {
    Done(Outcome),
    /// Lost a race (or the presence moved under a claim): re-read and re-decide.
    Retry,
}

impl TransitionService {
    pub fn new(deps: TransitionDeps) -> Self {
        Self {
            deps,
            users_by_email: Mutex::default(),
        }
    }

    pub fn deps(&self) -> &TransitionDeps {
        &self.deps
    }

    /// Handles one raw event (an SQS body, a Scheduler payload).
    pub async fn handle_json(
        &self,
        raw: &str,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        match events::parse_json(raw) {
            Ok(parsed) => self.handle(parsed, deadline).await,
            Err(error) => self.reject(event_id_of(raw), None, &error).await,
        }
    }

    /// Handles one event already decoded as JSON whose envelope did not type-check.
    pub async fn handle_value(
        &self,
        value: serde_json::Value,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let event_id = value
            .get("id")
            .and_then(|id| id.as_str())
            .map(bounded_event_id);
        match events::parse_value(value) {
            Ok(parsed) => self.handle(parsed, deadline).await,
            Err(error) => self.reject(event_id, None, &error).await,
        }
    }

    /// Handles one EventBridge event.
    pub async fn handle_event(
        &self,
        envelope: &aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        match events::parse(envelope) {
            Ok(parsed) => self.handle(parsed, deadline).await,
            Err(error) => {
                let event_id = envelope.id.as_deref().map(bounded_event_id);
                self.reject(event_id, None, &error).await
            }
        }
    }

    /// Handles a parsed event once per event id (Powertools-style idempotency).
    pub async fn handle(
        &self,
        parsed: ParsedEvent,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let result = self.handle_once(&parsed, deadline).await;
        if let Err(error) = &result
            && !error.is_retryable()
        {
            self.audit_failure(&parsed, error).await;
        }
        result
    }

    async fn handle_once(
        &self,
        parsed: &ParsedEvent,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let lease = match self.begin(parsed, deadline).await? {
            Ok(lease) => lease,
            Err(stored) => return Ok(stored),
        };
        let mut result = self.process(parsed, deadline).await;
        if let Ok(outcome) = result.as_mut() {
            let auth = self.deps.presence.take_auth_timings();
            outcome.timings.secret_ms = auth.secret_ms;
            outcome.timings.token_ms = auth.token_ms;
        }
        self.finish(&lease, &result).await?;
        result
    }

    /// Claims the event id; `Err(outcome)` is the stored outcome of an earlier delivery.
    async fn begin(
        &self,
        parsed: &ParsedEvent,
        deadline: Deadline,
    ) -> Result<Result<Lease, Outcome>, TransitionError> {
        let key = format!("transition#{}", parsed.event_id);
        match self
            .deps
            .idempotency
            .begin(&key, deadline, self.deps.idempotency_ttl)
            .await?
        {
            Begin::Started(lease) => Ok(Ok(lease)),
            Begin::AlreadyCompleted(stored) => {
                let mut outcome: Outcome =
                    serde_json::from_value(stored).unwrap_or_else(|_| Outcome {
                        event_id: Some(parsed.event_id.clone()),
                        user_id: None,
                        decision: "unknown".to_owned(),
                        reason: None,
                        duplicate: true,
                        timings: StageTimings::default(),
                    });
                outcome.duplicate = true;
                Ok(Err(outcome))
            }
            Begin::InProgress { .. } => Err(TransitionError::InProgress {
                event_id: parsed.event_id.clone(),
            }),
        }
    }

    /// Stores the outcome, or gives the key back after a failure so a redelivery runs again.
    async fn finish(
        &self,
        lease: &Lease,
        result: &Result<Outcome, TransitionError>,
    ) -> Result<(), TransitionError> {
        match result {
            Ok(outcome) => {
                let stored = serde_json::to_value(outcome).unwrap_or_default();
                self.deps
                    .idempotency
                    .complete(lease, &stored, self.deps.idempotency_ttl)
                    .await?;
            }
            Err(_) => {
                if let Err(release) = self.deps.idempotency.release(lease).await {
                    tracing::warn!(error = %release, "could not release the idempotency key; it expires with the deadline");
                }
            }
        }
        Ok(())
    }

    /// Handles a batch of raw events (SQS bodies), one result per body, in order. Starts for
    /// many different users share bulk Genesys calls (presence read and write, routing status,
    /// schedules); everything else goes through the one-event path.
    pub async fn handle_batch(
        &self,
        bodies: &[String],
        deadline: Deadline,
    ) -> Vec<Result<Outcome, TransitionError>> {
        let mut results: Vec<Option<Result<Outcome, TransitionError>>> =
            (0..bodies.len()).map(|_| None).collect();
        let mut parsed: Vec<(usize, ParsedEvent)> = Vec::new();
        for (index, body) in bodies.iter().enumerate() {
            match events::parse_json(body) {
                Ok(event) => parsed.push((index, event)),
                Err(error) => {
                    results[index] = Some(self.reject(event_id_of(body), None, &error).await)
                }
            }
        }
        // Starts naming a user id, one per user: these can share bulk calls.
        let mut per_user: HashMap<UserId, usize> = HashMap::new();
        for (_, event) in &parsed {
            if let InboundEvent::Calendar { entry, .. } = &event.event
                && let Some(user) = &entry.user.user_id
            {
                *per_user.entry(user.clone()).or_default() += 1;
            }
        }
        let (bulk, single): (Vec<_>, Vec<_>) =
            parsed
                .into_iter()
                .partition(|(_, event)| match &event.event {
                    InboundEvent::Calendar {
                        action: CalendarAction::Started,
                        entry,
                    } => entry
                        .user
                        .user_id
                        .as_ref()
                        .is_some_and(|user| per_user.get(user) == Some(&1)),
                    _ => false,
                });
        if bulk.len() >= 2 {
            for (index, result) in self.handle_bulk_starts(bulk, deadline).await {
                results[index] = Some(result);
            }
        } else {
            for (index, event) in bulk {
                results[index] = Some(self.handle(event, deadline).await);
            }
        }
        for (index, event) in single {
            results[index] = Some(self.handle(event, deadline).await);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Invalid("event left unhandled".to_owned()).into())
                })
            })
            .collect()
    }

    async fn handle_bulk_starts(
        &self,
        events: Vec<(usize, ParsedEvent)>,
        deadline: Deadline,
    ) -> Vec<(usize, Result<Outcome, TransitionError>)> {
        let mut done: Vec<(usize, Result<Outcome, TransitionError>)> = Vec::new();
        // 1. Claim the event ids and read each user's state.
        let mut pending: Vec<BulkItem> = Vec::new();
        for (index, event) in events {
            let lease = match self.begin(&event, deadline).await {
                Ok(Ok(lease)) => lease,
                Ok(Err(stored)) => {
                    done.push((index, Ok(stored)));
                    continue;
                }
                Err(error) => {
                    done.push((index, Err(error)));
                    continue;
                }
            };
            let InboundEvent::Calendar { entry, .. } = &event.event else {
                continue;
            };
            let Some(user) = entry.user.user_id.clone() else {
                continue;
            };
            match self.deps.state.get(&user).await {
                Ok(state) => {
                    let state = state
                        .unwrap_or_else(|| UserState::new(user.clone(), self.deps.clock.now()));
                    pending.push(BulkItem {
                        index,
                        event,
                        lease,
                        user,
                        state,
                    });
                }
                Err(error) => {
                    let result = Err(error.into());
                    self.finish_quietly(&lease, &result).await;
                    done.push((index, result));
                }
            }
        }
        let users: Vec<UserId> = pending.iter().map(|item| item.user.clone()).collect();
        // 2. One bulk read of everything a start decision looks at.
        let now = self.deps.clock.now();
        let live = async {
            let presences: HashMap<UserId, PresenceSnapshot> = self
                .deps
                .presence
                .presences(&users, deadline)
                .await?
                .into_iter()
                .collect();
            let routing: HashMap<UserId, RoutingStatus> = self
                .deps
                .presence
                .routing_statuses(&users, deadline)
                .await?
                .into_iter()
                .collect();
            let shifts = self.deps.shifts.shifts_at(&users, now, deadline).await?;
            Ok::<_, TransitionError>((presences, routing, shifts))
        }
        .await;
        let (presences, routing, shifts) = match live {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!(%error, "bulk read failed; handling the batch one event at a time");
                for item in pending {
                    let _ = self.deps.idempotency.release(&item.lease).await;
                    done.push((item.index, self.handle(item.event, deadline).await));
                }
                return done;
            }
        };
        // 3. Decide; claim the applies, persist everything else on its own.
        let mut claims: Vec<Claimed> = Vec::new();
        for item in pending {
            let InboundEvent::Calendar { entry, .. } = &item.event.event else {
                continue;
            };
            let Some(current) = presences.get(&item.user).cloned() else {
                let error = EventError {
                    field: "detail.userId".to_owned(),
                    reason: format!("no Genesys Cloud user {}", item.user),
                };
                let result = self
                    .reject(
                        Some(item.event.event_id.clone()),
                        Some(item.user.clone()),
                        &error,
                    )
                    .await;
                self.finish_quietly(&item.lease, &result).await;
                done.push((item.index, result));
                continue;
            };
            let live = Live {
                current,
                routing: Some(
                    routing
                        .get(&item.user)
                        .cloned()
                        .unwrap_or(RoutingStatus::OffQueue),
                ),
                shift: Some(
                    shifts
                        .get(&item.user)
                        .copied()
                        .unwrap_or(ShiftView::NoShift),
                ),
            };
            let trigger = Trigger::Started(entry);
            let cx = Context {
                now,
                policy: &self.deps.policy,
                targets: &self.deps.targets,
                state: &item.state,
                email: entry.user.email.as_deref(),
                current: Some(&live.current),
                routing: live.routing.as_ref(),
                shift: live.shift,
            };
            let decided = decide(&trigger, &cx);
            let apply = match (&decided.decision, &decided.next) {
                (Decision::Apply { target, restore_to }, Some(claim)) => {
                    Some((target.clone(), restore_to.clone(), claim.clone()))
                }
                _ => None,
            };
            let Some((target, restore_to, claim)) = apply else {
                let email = entry.user.email.as_deref();
                let persisted = self
                    .persist(
                        &item.user,
                        email,
                        &trigger,
                        Some(&item.event.event_id),
                        &item.state,
                        decided,
                        Some(&live),
                        deadline,
                    )
                    .await;
                let result = match persisted {
                    Ok(Persisted::Done(outcome)) => Ok(outcome),
                    // A lost race: the one-event path re-reads and decides again.
                    Ok(Persisted::Retry) => self.process(&item.event, deadline).await,
                    Err(error) => Err(error),
                };
                self.finish_quietly(&item.lease, &result).await;
                done.push((item.index, result));
                continue;
            };
            match self.deps.state.put(&claim).await {
                Ok(claimed) => claims.push(Claimed {
                    item,
                    live,
                    claimed,
                    target,
                    restore_to,
                }),
                Err(StoreError::Conflict(_)) => {
                    let result = self.process(&item.event, deadline).await;
                    self.finish_quietly(&item.lease, &result).await;
                    done.push((item.index, result));
                }
                Err(error) => {
                    let result = Err(error.into());
                    self.finish_quietly(&item.lease, &result).await;
                    done.push((item.index, result));
                }
            }
        }
        // 4. One bulk write for every claimed apply. The tags were read moments ago by the bulk
        // read; a bulk PUT cannot be conditional (see docs/genesys-client.md).
        let changes: Vec<(UserId, PresenceRef)> = claims
            .iter()
            .map(|c| (c.item.user.clone(), c.target.clone()))
            .collect();
        let started = Instant::now();
        let written = if changes.is_empty() {
            Ok(Vec::new())
        } else {
            self.deps.presence.set_presences(&changes, deadline).await
        };
        let write_ms = started.elapsed().as_millis() as u64;
        let after: HashMap<UserId, PresenceSnapshot> = match written {
            Ok(after) => after.into_iter().collect(),
            Err(error) => {
                for claim in claims {
                    let _ = self.release_claim(&claim.item.state, &claim.claimed).await;
                    let result = Err(TransitionError::Genesys(error.clone()));
                    self.finish_quietly(&claim.item.lease, &result).await;
                    done.push((claim.item.index, result));
                }
                return done;
            }
        };
        // 5. Record each write: state + audit + notification.
        for claim in claims {
            let Claimed {
                item,
                live,
                claimed,
                target,
                restore_to,
            } = claim;
            let InboundEvent::Calendar { entry, .. } = &item.event.event else {
                continue;
            };
            let result = match after.get(&item.user) {
                Some(written) => {
                    let trigger = Trigger::Started(entry);
                    let mut audit = AuditEntry::new(item.user.clone(), DecisionKind::Applied);
                    audit.event_id = Some(item.event.event_id.clone());
                    audit.trigger_id = Some(entry.trigger_id.clone());
                    let applied = AppliedWrite {
                        target: &target,
                        restore_to: &restore_to,
                        live: &live,
                        after: written,
                        write_ms,
                    };
                    let email = entry.user.email.as_deref();
                    let payload = applied.record(
                        &mut audit,
                        &trigger,
                        email,
                        Some(entry.trigger_id.clone()),
                        &claimed,
                    );
                    self.settle_apply(&item.user, claimed, written, audit, payload)
                        .await
                        .map(|()| Outcome {
                            event_id: Some(item.event.event_id.clone()),
                            user_id: Some(item.user.to_string()),
                            decision: "applied".to_owned(),
                            reason: None,
                            duplicate: false,
                            timings: StageTimings::default(),
                        })
                }
                None => {
                    let _ = self.release_claim(&item.state, &claimed).await;
                    let message = format!("bulk PUT returned no presence for {}", item.user);
                    Err(GenesysError::Decode {
                        message,
                        correlation_id: None,
                    }
                    .into())
                }
            };
            self.finish_quietly(&item.lease, &result).await;
            done.push((item.index, result));
        }
        done
    }

    /// `finish` whose own failure is logged: the event's result is what the caller reports.
    async fn finish_quietly(&self, lease: &Lease, result: &Result<Outcome, TransitionError>) {
        if let Err(error) = self.finish(lease, result).await {
            tracing::warn!(%error, "could not record the idempotency outcome");
        }
    }

    async fn process(
        &self,
        parsed: &ParsedEvent,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let event_id = parsed.event_id.as_str();
        match &parsed.event {
            InboundEvent::Calendar { action, entry } => {
                let user = match self.resolve_user(entry, deadline).await? {
                    Ok(user) => user,
                    Err(error) => {
                        return self.reject(Some(event_id.to_owned()), None, &error).await;
                    }
                };
                let email = entry.user.email.as_deref();
                match action {
                    CalendarAction::Started => {
                        self.decide_and_apply(
                            &user,
                            email,
                            &Trigger::Started(entry),
                            Some(event_id),
                            deadline,
                        )
                        .await
                    }
                    CalendarAction::Ended => {
                        self.decide_and_apply(
                            &user,
                            email,
                            &Trigger::Ended(entry),
                            Some(event_id),
                            deadline,
                        )
                        .await
                    }
                    CalendarAction::Upserted | CalendarAction::Deleted => {
                        let error = EventError {
                            field: "detail-type".to_owned(),
                            reason: "planning events go to schedule-check, not transition"
                                .to_owned(),
                        };
                        self.reject(Some(event_id.to_owned()), Some(user), &error)
                            .await
                    }
                }
            }
            InboundEvent::Presence(observed) => {
                self.decide_and_apply(
                    &observed.user_id,
                    None,
                    &Trigger::PresenceChanged(&observed.snapshot),
                    Some(event_id),
                    deadline,
                )
                .await
            }
        }
    }

    /// The sweep's entry point: a deferred start is due, or an end was missed.
    pub async fn reevaluate(
        &self,
        user: &UserId,
        trigger: &Trigger<'_>,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        self.decide_and_apply(user, None, trigger, None, deadline)
            .await
    }

    /// The Genesys user a calendar entry belongs to (looked up by e-mail when needed).
    pub async fn resolve_user(
        &self,
        entry: &events::CalendarEntry,
        deadline: Deadline,
    ) -> Result<Result<UserId, EventError>, TransitionError> {
        if let Some(user) = &entry.user.user_id {
            return Ok(Ok(user.clone()));
        }
        let Some(email) = &entry.user.email else {
            return Ok(Err(EventError {
                field: "detail.userEmail".to_owned(),
                reason: "is required".to_owned(),
            }));
        };
        if let Some(user) = self.users_by_email.lock().await.get(email) {
            return Ok(Ok(user.clone()));
        }
        match self.deps.presence.user_by_email(email, deadline).await? {
            Some(user) => {
                self.users_by_email
                    .lock()
                    .await
                    .insert(email.clone(), user.clone());
                Ok(Ok(user))
            }
            None => Ok(Err(EventError {
                field: "detail.userEmail".to_owned(),
                reason: format!("no Genesys Cloud user has the e-mail {email:?}"),
            })),
        }
    }

    async fn decide_and_apply(
        &self,
        user: &UserId,
        email: Option<&str>,
        trigger: &Trigger<'_>,
        event_id: Option<&str>,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let (mut read_ms, mut persist_ms) = (0_u64, 0_u64);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Spread the losers of a race out a little before they read again.
                let wait = Duration::from_millis(fastrand::u64(5..=20) * u64::from(attempt.min(5)));
                self.deps.clock.sleep(wait).await;
            }
            let state = match self.deps.state.get(user).await? {
                Some(state) => state,
                None => UserState::new(user.clone(), self.deps.clock.now()),
            };
            self.flush_outbox(&state).await;
            let now = self.deps.clock.now();
            let base = Context {
                now,
                policy: &self.deps.policy,
                targets: &self.deps.targets,
                state: &state,
                email,
                current: None,
                routing: None,
                shift: None,
            };
            let (decided, live) = match screen(trigger, &base) {
                Some(decided) => (decided, None),
                None => {
                    let read_started = Instant::now();
                    let live = self.live(user, trigger, now, deadline).await?;
                    read_ms += read_started.elapsed().as_millis() as u64;
                    let cx = Context {
                        current: Some(&live.current),
                        routing: live.routing.as_ref(),
                        shift: live.shift,
                        ..base
                    };
                    (decide(trigger, &cx), Some(live))
                }
            };
            let persist_started = Instant::now();
            let persisted = self
                .persist(
                    user,
                    email,
                    trigger,
                    event_id,
                    &state,
                    decided,
                    live.as_ref(),
                    deadline,
                )
                .await?;
            persist_ms += persist_started.elapsed().as_millis() as u64;
            match persisted {
                Persisted::Done(mut outcome) => {
                    outcome.timings.genesys_read_ms = read_ms;
                    outcome.timings.store_ms =
                        persist_ms.saturating_sub(outcome.timings.genesys_write_ms);
                    return Ok(outcome);
                }
                Persisted::Retry => continue,
            }
        }
        Err(TransitionError::Contended {
            user_id: user.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn live(
        &self,
        user: &UserId,
        trigger: &Trigger<'_>,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<Live, TransitionError> {
        let current = self.deps.presence.presence(user, deadline).await?;
        if !matches!(trigger, Trigger::Started(_) | Trigger::Reevaluate) {
            return Ok(Live {
                current,
                routing: None,
                shift: None,
            });
        }
        let users = std::slice::from_ref(user);
        let routing = self
            .deps
            .presence
            .routing_statuses(users, deadline)
            .await?
            .into_iter()
            .next()
            .map(|(_, status)| status);
        let shift = self
            .deps
            .shifts
            .shifts_at(users, now, deadline)
            .await?
            .remove(user)
            .unwrap_or(ShiftView::NoShift);
        Ok(Live {
            current,
            routing: Some(routing.unwrap_or(RoutingStatus::OffQueue)),
            shift: Some(shift),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn persist(
        &self,
        user: &UserId,
        email: Option<&str>,
        trigger: &Trigger<'_>,
        event_id: Option<&str>,
        read: &UserState,
        decided: Decided,
        live: Option<&Live>,
        deadline: Deadline,
    ) -> Result<Persisted, TransitionError> {
        let trigger_id = trigger_id_of(trigger, read);
        let mut entry = AuditEntry::new(user.clone(), DecisionKind::Skipped);
        entry.event_id = event_id.map(str::to_owned);
        entry.trigger_id = trigger_id.clone();
        entry.details = json!({"trigger": trigger_name(trigger)});
        let outcome = |decision: &str, reason: Option<String>| Outcome {
            event_id: event_id.map(str::to_owned),
            user_id: Some(user.to_string()),
            decision: decision.to_owned(),
            reason,
            duplicate: false,
            timings: StageTimings::default(),
        };
        match decided.decision {
            Decision::Apply { target, restore_to } => {
                let (Some(claim), Some(live)) = (decided.next, live) else {
                    return Err(StoreError::Invalid(
                        "an apply decision without state or live presence".to_owned(),
                    )
                    .into());
                };
                // The claim: only the invocation whose conditional write wins goes on to PATCH.
                let claimed = match self.deps.state.put(&claim).await {
                    Ok(claimed) => claimed,
                    Err(StoreError::Conflict(_)) => return Ok(Persisted::Retry),
                    Err(other) => return Err(other.into()),
                };
                let started = Instant::now();
                let written = self
                    .deps
                    .presence
                    .compare_and_set(user, &live.current.tag(), &target, deadline)
                    .await;
                let write_ms = started.elapsed().as_millis() as u64;
                match written {
                    Ok(CasOutcome::Applied { after, .. }) => {
                        let applied = AppliedWrite {
                            target: &target,
                            restore_to: &restore_to,
                            live,
                            after: &after,
                            write_ms,
                        };
                        let payload = applied.record(
                            &mut entry,
                            trigger,
                            email,
                            trigger_id.clone(),
                            &claimed,
                        );
                        self.settle_apply(user, claimed, &after, entry, payload)
                            .await?;
                        let mut done = outcome("applied", None);
                        done.timings.genesys_write_ms = write_ms;
                        Ok(Persisted::Done(done))
                    }
                    Ok(CasOutcome::Refused { .. }) => {
                        // Changed between our read and our write: give the claim back, decide again.
                        self.release_claim(read, &claimed).await?;
                        Ok(Persisted::Retry)
                    }
                    Err(error) if write_may_have_landed(&error) => {
                        // Genesys may have taken the write: keep the claim, unsettled, so nobody
                        // writes over it and the end restores the presence if it shows our target.
                        Err(error.into())
                    }
                    Err(error) => {
                        self.release_claim(read, &claimed).await?;
                        Err(error.into())
                    }
                }
            }
            Decision::Restore { to } => {
                let Some(claim) = decided.next else {
                    return Err(
                        StoreError::Invalid("a restore decision without state".to_owned()).into(),
                    );
                };
                // Our write's tag; for a claim that never settled (a crash after the PATCH),
                // the live tag the decision was made on.
                let settled = read.applied.as_ref().and_then(|a| a.tag.clone());
                let Some(expected) = settled.or_else(|| live.map(|l| l.current.tag())) else {
                    return Err(StoreError::Invalid(
                        "a restore without the tag of our write".to_owned(),
                    )
                    .into());
                };
                let claimed = match self.deps.state.put(&claim).await {
                    Ok(claimed) => claimed,
                    Err(StoreError::Conflict(_)) => return Ok(Persisted::Retry),
                    Err(other) => return Err(other.into()),
                };
                let ended_by = if matches!(trigger, Trigger::EndInferred) {
                    "the end was inferred by the sweep"
                } else {
                    "the trigger ended"
                };
                let started = Instant::now();
                let written = self
                    .deps
                    .presence
                    .compare_and_set(user, &expected, &to, deadline)
                    .await;
                let write_ms = started.elapsed().as_millis() as u64;
                match written {
                    Ok(CasOutcome::Applied { before, after }) => {
                        entry.kind = DecisionKind::Restored;
                        entry.reason = Some(ended_by.to_owned());
                        entry.before = Some(PresenceRef {
                            definition_id: before.definition_id.clone(),
                            message: before.message.clone(),
                        });
                        entry.after = Some(to.clone());
                        let payload = ChangePayload {
                            email: email.map(str::to_owned),
                            presence: view(&to, &after.system_presence),
                            previous: Some(view(
                                entry.before.as_ref().unwrap_or(&to),
                                &before.system_presence,
                            )),
                            trigger_kind: None,
                            trigger_id: trigger_id.clone(),
                            until: None,
                            reason: Some(ended_by.to_owned()),
                        };
                        self.commit_notifying(
                            claimed,
                            entry,
                            Some((NotificationKind::PresenceRestored, payload)),
                        )
                        .await?;
                        let mut done = outcome("restored", Some(ended_by.to_owned()));
                        done.timings.genesys_write_ms = write_ms;
                        Ok(Persisted::Done(done))
                    }
                    Ok(CasOutcome::Refused { current }) => {
                        let reason = SkipReason::ChangedBySomeoneElse.describe();
                        entry.reason = Some(reason.clone());
                        entry.after = Some(PresenceRef {
                            definition_id: current.definition_id.clone(),
                            message: current.message.clone(),
                        });
                        self.commit_notifying(claimed, entry, None).await?;
                        Ok(Persisted::Done(outcome("skipped", Some(reason))))
                    }
                    Err(error) => {
                        self.release_claim(read, &claimed).await?;
                        Err(error.into())
                    }
                }
            }
            Decision::Keep { active } => {
                entry.kind = DecisionKind::Kept;
                entry.reason = Some(format!("{active} triggers are active; the presence stays"));
                self.commit_or_append(decided.next, entry.clone(), None)
                    .await?
                    .map_or(Ok(Persisted::Retry), |()| {
                        Ok(Persisted::Done(outcome("kept", entry.reason.clone())))
                    })
            }
            Decision::Defer { until, routing } => {
                entry.kind = DecisionKind::Deferred;
                let reason = format!(
                    "the agent is {routing:?}; looking again at {}",
                    until.format("%H:%M:%S UTC")
                );
                entry.reason = Some(reason.clone());
                let notification = live.map(|l| {
                    (
                        NotificationKind::ChangeDeferred,
                        ChangePayload {
                            email: email.map(str::to_owned),
                            presence: view(
                                &PresenceRef {
                                    definition_id: l.current.definition_id.clone(),
                                    message: l.current.message.clone(),
                                },
                                &l.current.system_presence,
                            ),
                            previous: None,
                            trigger_kind: None,
                            trigger_id: trigger_id.clone(),
                            until: Some(until),
                            reason: Some(reason.clone()),
                        },
                    )
                });
                self.commit_or_append(decided.next, entry, notification)
                    .await?
                    .map_or(Ok(Persisted::Retry), |()| {
                        Ok(Persisted::Done(outcome("deferred", Some(reason))))
                    })
            }
            Decision::Skip { reason } => {
                let text = reason.describe();
                if !reason.is_audited() {
                    tracing::info!(user_id = %user, reason = %text, "presence event needs no decision");
                    return Ok(Persisted::Done(outcome("ignored", Some(text))));
                }
                entry.reason = Some(text.clone());
                let notification = (reason == SkipReason::ChangedBySomeoneElse).then(|| {
                    let current = live.map(|l| l.current.clone()).or(match trigger {
                        Trigger::PresenceChanged(observed) => Some((*observed).clone()),
                        _ => None,
                    });
                    current.map(|c| {
                        (
                            NotificationKind::ChangeSkipped,
                            ChangePayload {
                                email: email.map(str::to_owned),
                                presence: view(
                                    &PresenceRef {
                                        definition_id: c.definition_id.clone(),
                                        message: c.message.clone(),
                                    },
                                    &c.system_presence,
                                ),
                                previous: None,
                                trigger_kind: None,
                                trigger_id: trigger_id.clone(),
                                until: None,
                                reason: Some(text.clone()),
                            },
                        )
                    })
                });
                self.commit_or_append(decided.next, entry, notification.flatten())
                    .await?
                    .map_or(Ok(Persisted::Retry), |()| {
                        Ok(Persisted::Done(outcome("skipped", Some(text))))
                    })
            }
            Decision::Reject { reason } => {
                entry.kind = DecisionKind::Rejected;
                entry.reason = Some(reason.clone());
                self.deps.audit.append(entry).await?;
                Ok(Persisted::Done(outcome("rejected", Some(reason))))
            }
        }
    }

    /// After our PATCH: record its tag, audit, notify. If an end landed while the write was in
    /// flight (it let the override go), undo our write — unless someone changed it since.
    async fn settle_apply(
        &self,
        user: &UserId,
        claimed: UserState,
        after: &PresenceSnapshot,
        entry: AuditEntry,
        payload: ChangePayload,
    ) -> Result<(), TransitionError> {
        let mut state = claimed;
        for attempt in 0..SETTLE_ATTEMPTS {
            if attempt > 0 {
                // Others keep committing around our claim (kept triggers): step aside a little.
                let wait = Duration::from_millis(fastrand::u64(5..=20) * u64::from(attempt.min(5)));
                self.deps.clock.sleep(wait).await;
            }
            match state.applied.as_mut() {
                Some(applied) if applied.tag.is_none() => {
                    applied.tag = Some(after.tag());
                    applied.set_at = Some(after.modified_date);
                }
                _ => {
                    // Our claim was superseded by an end: put the presence back if still ours.
                    let restore_to = PresenceRef {
                        definition_id: payload.previous.as_ref().map_or_else(
                            || after.definition_id.clone(),
                            |p| p.definition_id.clone(),
                        ),
                        message: payload
                            .previous
                            .as_ref()
                            .map(|p| p.message.clone())
                            .unwrap_or_default(),
                    };
                    let deadline =
                        Deadline::after(self.deps.clock.as_ref(), Duration::from_secs(5));
                    let undone = self
                        .deps
                        .presence
                        .compare_and_set(user, &after.tag(), &restore_to, deadline)
                        .await?;
                    let mut undo = entry.clone();
                    undo.kind = if matches!(undone, CasOutcome::Applied { .. }) {
                        DecisionKind::Restored
                    } else {
                        DecisionKind::Skipped
                    };
                    undo.reason =
                        Some("the trigger ended while our write was in flight".to_owned());
                    self.deps.audit.append(entry.clone()).await?;
                    self.deps.audit.append(undo).await?;
                    return Ok(());
                }
            }
            match self
                .commit_notifying(
                    state.clone(),
                    entry.clone(),
                    Some((NotificationKind::PresenceApplied, payload.clone())),
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(TransitionError::Store(StoreError::Conflict(_))) => {
                    state = self
                        .deps
                        .state
                        .get(user)
                        .await?
                        .unwrap_or_else(|| UserState::new(user.clone(), self.deps.clock.now()));
                }
                Err(other) => return Err(other),
            }
        }
        Err(TransitionError::Contended {
            user_id: user.clone(),
            attempts: SETTLE_ATTEMPTS,
        })
    }

    /// Writes the state we read back over our claim (our claim's version is the condition).
    async fn release_claim(
        &self,
        read: &UserState,
        claimed: &UserState,
    ) -> Result<(), TransitionError> {
        let mut back = read.clone();
        back.version = claimed.version;
        back.updated_at = self.deps.clock.now();
        match self.deps.state.put(&back).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// Commits state + audit (+ a notification in the outbox) or, without state, appends the
    /// audit record. `Ok(None)`: a lost race, decide again.
    async fn commit_or_append(
        &self,
        next: Option<UserState>,
        entry: AuditEntry,
        notification: Option<(NotificationKind, ChangePayload)>,
    ) -> Result<Option<()>, TransitionError> {
        let Some(next) = next else {
            self.deps.audit.append(entry).await?;
            return Ok(Some(()));
        };
        match self.commit_notifying(next, entry, notification).await {
            Ok(()) => Ok(Some(())),
            Err(TransitionError::Store(StoreError::Conflict(_))) => Ok(None),
            Err(other) => Err(other),
        }
    }

    async fn commit_notifying(
        &self,
        mut next: UserState,
        entry: AuditEntry,
        notification: Option<(NotificationKind, ChangePayload)>,
    ) -> Result<(), TransitionError> {
        if let Some((kind, payload)) = notification {
            let payload = serde_json::to_value(payload).unwrap_or_default();
            next.outbox.push(Notification::for_change(
                next.user_id.clone(),
                self.deps.clock.now(),
                next.version + 1,
                kind,
                payload,
            ));
        }
        let committed = self.deps.state.commit(&next, entry).await?;
        self.flush_outbox(&committed.state).await;
        Ok(())
    }

    /// Sends what the outbox holds, then empties it (conditionally: a concurrent writer keeps
    /// its own view, and a resend is harmless — receivers dedupe on the notification id).
    async fn flush_outbox(&self, state: &UserState) {
        if state.outbox.is_empty() {
            return;
        }
        match self.deps.queue.send(&state.outbox).await {
            Ok(outcomes) if outcomes.iter().all(|o| o.is_sent()) => {
                let mut emptied = state.clone();
                emptied.outbox.clear();
                if let Err(error) = self.deps.state.put(&emptied).await {
                    tracing::debug!(%error, "outbox kept; the next handler of this user resends it");
                }
            }
            Ok(_) => {
                tracing::warn!(user_id = %state.user_id, "some notifications were not queued; kept in the outbox")
            }
            Err(error) => {
                tracing::warn!(user_id = %state.user_id, %error, "notifications not queued; kept in the outbox")
            }
        }
    }

    /// A failure no retry can cure (the store refused the request as such) still leaves a trace:
    /// a `Rejected` record with the bounded reason, before the message goes to its DLQ.
    async fn audit_failure(&self, parsed: &ParsedEvent, error: &TransitionError) {
        let user = match &parsed.event {
            InboundEvent::Calendar { entry, .. } => entry.user.user_id.clone(),
            InboundEvent::Presence(observation) => Some(observation.user_id.clone()),
        };
        let Some(user) = user.or_else(|| UserId::parse(UNATTRIBUTED_USER).ok()) else {
            return;
        };
        let mut entry = AuditEntry::new(user, DecisionKind::Rejected);
        entry.event_id = Some(bounded_event_id(&parsed.event_id));
        entry.reason = Some(format!(
            "failed, not retryable: {}",
            crate::model::clipped(&error.to_string(), 300)
        ));
        entry.details = json!({"retryable": false});
        if let Err(audit) = self.deps.audit.append(entry).await {
            tracing::error!(error = %audit, "the record of a failure could not be written");
        }
    }

    /// Refuses an event: one `Rejected` audit record naming the reason, never a panic.
    pub async fn reject(
        &self,
        event_id: Option<String>,
        user: Option<UserId>,
        error: &EventError,
    ) -> Result<Outcome, TransitionError> {
        let user = user.or_else(|| UserId::parse(UNATTRIBUTED_USER).ok());
        let Some(user) = user else {
            return Err(
                StoreError::Invalid("no user to attribute the rejection to".to_owned()).into(),
            );
        };
        let mut entry = AuditEntry::new(user.clone(), DecisionKind::Rejected);
        entry.event_id = event_id.clone();
        entry.reason = Some(error.to_string());
        entry.details = json!({"field": error.field});
        self.deps.audit.append(entry).await?;
        tracing::warn!(event_id = ?event_id, field = %error.field, reason = %error.reason, "event rejected");
        Ok(Outcome {
            event_id,
            user_id: Some(user.to_string()),
            decision: "rejected".to_owned(),
            reason: Some(error.to_string()),
            duplicate: false,
            timings: StageTimings::default(),
        })
    }
}

/// A presence write of ours that Genesys accepted, and how it is audited and announced.
struct AppliedWrite<'a> {
    target: &'a PresenceRef,
    restore_to: &'a PresenceRef,
    live: &'a Live,
    after: &'a PresenceSnapshot,
    write_ms: u64,
}

impl AppliedWrite<'_> {
    fn record(
        &self,
        entry: &mut AuditEntry,
        trigger: &Trigger<'_>,
        email: Option<&str>,
        trigger_id: Option<TriggerId>,
        claimed: &UserState,
    ) -> ChangePayload {
        entry.kind = DecisionKind::Applied;
        entry.before = Some(self.restore_to.clone());
        entry.after = Some(self.target.clone());
        entry.details = json!({
            "trigger": trigger_name(trigger),
            "genesysWriteMs": self.write_ms,
            "routingStatus": self.live.routing,
            "shift": self.live.shift.map(|s| format!("{s:?}")),
            "tagBefore": self.live.current.tag(),
            "tagAfter": self.after.tag(),
        });
        ChangePayload {
            email: email.map(str::to_owned),
            presence: view(self.target, &self.after.system_presence),
            previous: Some(view(self.restore_to, &self.live.current.system_presence)),
            trigger_kind: claimed
                .applied
                .as_ref()
                .and_then(|a| claimed.active_triggers.get(&a.trigger_id))
                .map(|t| t.kind),
            trigger_id,
            until: claimed.applied.as_ref().map(|a| a.until),
            reason: None,
        }
    }
}

fn view(presence: &PresenceRef, system: &crate::model::SystemPresence) -> PresenceView {
    PresenceView {
        definition_id: presence.definition_id.clone(),
        system_presence: system.clone(),
        message: presence.message.clone(),
    }
}

fn trigger_id_of(trigger: &Trigger<'_>, state: &UserState) -> Option<TriggerId> {
    match trigger {
        Trigger::Started(entry) | Trigger::Ended(entry) => Some(entry.trigger_id.clone()),
        Trigger::Reevaluate | Trigger::EndInferred | Trigger::PresenceChanged(_) => state
            .applied
            .as_ref()
            .map(|a| a.trigger_id.clone())
            .or_else(|| state.active_triggers.keys().next().cloned()),
    }
}

fn trigger_name(trigger: &Trigger<'_>) -> &'static str {
    match trigger {
        Trigger::Started(_) => "started",
        Trigger::Ended(_) => "ended",
        Trigger::Reevaluate => "reevaluate",
        Trigger::EndInferred => "endInferred",
        Trigger::PresenceChanged(_) => "presenceChanged",
    }
}

/// The envelope id of a body that failed to parse, if it has one.
/// Whether a failed presence write may still have been applied: we gave up waiting (timeout, a
/// broken connection) or a gateway answered for Genesys (502, 504). A 503 or any 4xx is a refusal.
fn write_may_have_landed(error: &GenesysError) -> bool {
    matches!(
        error,
        GenesysError::Timeout
            | GenesysError::Transport { .. }
            | GenesysError::Server {
                status: 502 | 504,
                ..
            }
    )
}

/// The event id of a raw event, for the record of its rejection (bounded: the id may be the
/// very thing that was too long).
fn event_id_of(raw: &str) -> Option<String> {
    if raw.len() > events::limits::EVENT_BYTES {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(bounded_event_id))
}

fn bounded_event_id(id: &str) -> String {
    if id.len() <= events::limits::EVENT_ID {
        id.to_owned()
    } else {
        crate::model::preview(id)
    }
}
