//! The `transition` use case: an event becomes a decision, the decision becomes (at most) one
//! presence write, and every decision leaves one audit record.
//!
//! One event, in the order a reader meets it (docs/architecture.md walks it step by step):
//! - [`inbound`]: parse, whose event it is, handled before? (idempotency), audited refusals;
//! - here: read state → screen → live presence, routing status, shift → [`decide`](crate::decide);
//! - [`record`]: carry the decision out; apply and restore through
//! - [`protocol`]: claim the state → compare-and-set the presence → commit state + audit + outbox;
//! - [`bulk`]: the same for a batch of starts, with one bulk read and one bulk write.
//!
//! A lost race re-reads and re-decides; the claim makes sure only one invocation writes Genesys.

mod bulk;
mod inbound;
mod outcome;
mod protocol;
mod record;
mod targets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use inbound::EventHold;
pub use inbound::{UNATTRIBUTED_USER, bounded_event_id, event_id_of};
pub use outcome::{Outcome, OutcomeKind, StageTimings, TransitionError};
pub use targets::Targets;

use crate::clock::{Clock, Deadline};
use crate::decide::{Context, Operator, ShiftView, Trigger, decide, screen};
use crate::events::{self, CalendarAction, EventError, InboundEvent, ParsedEvent};
use crate::model::{PresenceSnapshot, RoutingStatus, UserId};
use crate::policy::Policy;
use crate::ports::{AuditLog, IdempotencyStore, PresenceApi, ShiftSource, StateStore};
use crate::state::UserState;
use record::{Attempt, Persisted};

/// Who an event is about, with its e-mail and trigger; or the refusal (and whom it concerns).
type Subject<'a> = Result<(UserId, Option<&'a str>, Trigger<'a>), (Option<UserId>, EventError)>;

/// Re-reads after a lost race before giving up (the event is then retried by its source).
/// Each round has one winner, so this bounds how many concurrent writers of one user all finish.
const MAX_ATTEMPTS: u32 = 16;

#[derive(Debug, Clone)]
pub struct TransitionDeps {
    pub presence: Arc<dyn PresenceApi>,
    pub shifts: Arc<dyn ShiftSource>,
    pub state: Arc<dyn StateStore>,
    pub audit: Arc<dyn AuditLog>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
    pub policy: Arc<Policy>,
    /// The policy's presence names as definition ids, resolved at first use.
    pub targets: Arc<Targets>,
    /// How long an event id is remembered as handled.
    pub idempotency_ttl: Duration,
    /// How old a presence read may be and still stand for the compare-and-set's own read
    /// (zero: every write reads again first, one round trip more).
    pub presence_fresh_for: Duration,
}

#[derive(Debug)]
pub struct TransitionService {
    deps: TransitionDeps,
    /// E-mail → user id, for the life of the Lambda instance.
    users_by_email: Mutex<HashMap<String, UserId>>,
}

/// The inputs of a decision that need Genesys calls, fetched once per attempt.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    current: PresenceSnapshot,
    /// When `current` was read (by the service's clock).
    read_at: DateTime<Utc>,
    routing: Option<RoutingStatus>,
    shift: Option<ShiftView>,
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

    /// Handles one SQS body of the burst queue (a bus event, a Scheduler schedule's input).
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
        let (user, email, trigger) = match self.subject(parsed, deadline).await? {
            Ok(subject) => subject,
            Err((user, error)) => return self.reject_once(parsed, user, &error, deadline).await,
        };
        let hold = EventHold::new(&parsed.event_id, deadline, self.deps.idempotency_ttl);
        let event = Some(&parsed.event_id[..]);
        let mut result = self
            .decide_and_apply(&user, email, &trigger, (event, Some(&hold)), deadline)
            .await;
        if let Ok(outcome) = result.as_mut() {
            let auth = self.deps.presence.take_auth_timings();
            outcome.timings.secret_ms = auth.secret_ms;
            outcome.timings.token_ms = auth.token_ms;
        }
        self.settle_event(&hold, &result).await?;
        result
    }

    /// One event whose id the caller already claimed (the bulk path's fallback).
    async fn process(
        &self,
        parsed: &ParsedEvent,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let event_id = Some(parsed.event_id.as_str());
        match self.subject(parsed, deadline).await? {
            Ok((user, email, trigger)) => {
                self.decide_and_apply(&user, email, &trigger, (event_id, None), deadline)
                    .await
            }
            Err((user, error)) => self.reject(event_id.map(str::to_owned), user, &error).await,
        }
    }

    /// Whose event it is and what it triggers, or why it cannot be handled (and for whom).
    async fn subject<'a>(
        &self,
        parsed: &'a ParsedEvent,
        deadline: Deadline,
    ) -> Result<Subject<'a>, TransitionError> {
        let (action, entry) = match &parsed.event {
            InboundEvent::Presence(observed) => {
                let trigger = Trigger::PresenceChanged(&observed.snapshot);
                return Ok(Ok((observed.user_id.clone(), None, trigger)));
            }
            InboundEvent::Calendar { action, entry } => (action, entry),
        };
        let user = match self.resolve_user(entry, deadline).await? {
            Ok(user) => user,
            Err(error) => return Ok(Err((None, error))),
        };
        let trigger = match action {
            CalendarAction::Started => Trigger::Started(entry),
            CalendarAction::Ended => Trigger::Ended(entry),
            CalendarAction::Upserted | CalendarAction::Deleted => {
                let error = EventError {
                    field: "detail-type".to_owned(),
                    reason: "planning events go to schedule-check, not transition".to_owned(),
                };
                return Ok(Err((Some(user), error)));
            }
        };
        Ok(Ok((user, entry.user.email.as_deref(), trigger)))
    }

    /// The sweep's entry point: a deferred start is due, or an end was missed.
    pub async fn reevaluate(
        &self,
        user: &UserId,
        trigger: &Trigger<'_>,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        self.decide_and_apply(user, None, trigger, (None, None), deadline)
            .await
    }

    /// An operator ends our override for `user` now (`autopilot release`): the same protocol
    /// as an end, audited with the operator's name; the presence is restored only if still ours.
    pub async fn release(
        &self,
        user: &UserId,
        operator: &Operator,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        self.decide_and_apply(
            user,
            None,
            &Trigger::Released(operator),
            (None, None),
            deadline,
        )
        .await
    }

    /// Read → screen → live inputs → decide → record, again after a lost race (bounded).
    /// `hold`: the event's idempotency record rides on this decision's writes; without it,
    /// the caller holds the event's key (or there is no event: a sweep, a release).
    async fn decide_and_apply(
        &self,
        user: &UserId,
        email: Option<&str>,
        trigger: &Trigger<'_>,
        (event_id, hold): (Option<&str>, Option<&EventHold>),
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let (mut read_ms, mut persist_ms) = (0_u64, 0_u64);
        let event_key = hold.map(EventHold::key);
        // A container's first event resolves the targets (secret, token, definitions): that
        // chain and the first read of the state do not depend on each other, so they overlap.
        let started = Instant::now();
        let ((targets, targets_ms), (first_read, mut state_read_ms)) = tokio::join!(
            async { (self.targets(deadline).await, elapsed_ms(started)) },
            async {
                let read = self.deps.state.get_for_event(user, event_key).await;
                (read, elapsed_ms(started))
            }
        );
        let targets = targets?;
        let mut first_read = Some(first_read?);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.step_aside(attempt).await;
            }
            let (state, record) = match first_read.take() {
                Some(read) => read,
                None => {
                    let read_started = Instant::now();
                    let read = self.deps.state.get_for_event(user, event_key).await?;
                    state_read_ms += elapsed_ms(read_started);
                    read
                }
            };
            let now = self.deps.clock.now();
            if let Some(ended) = hold.and_then(|hold| hold.screen(record, now)) {
                return ended;
            }
            let state = state.unwrap_or_else(|| UserState::new(user.clone(), now));
            let base = Context {
                now,
                policy: &self.deps.policy,
                targets,
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
                    read_ms += elapsed_ms(read_started);
                    let cx = Context {
                        current: Some(&live.current),
                        routing: live.routing.as_ref(),
                        shift: live.shift,
                        ..base
                    };
                    (decide(trigger, &cx), Some(live))
                }
            };
            let at = Attempt {
                user,
                email,
                trigger,
                event_id,
                hold,
                read: &state,
                live: live.as_ref(),
                deadline,
            };
            let persist_started = Instant::now();
            let persisted = self.persist(&at, decided).await?;
            persist_ms += elapsed_ms(persist_started);
            if let Persisted::Done(mut outcome) = persisted {
                outcome.timings.targets_ms = targets_ms;
                outcome.timings.state_read_ms = state_read_ms;
                outcome.timings.genesys_read_ms = read_ms;
                outcome.timings.store_ms =
                    persist_ms.saturating_sub(outcome.timings.genesys_write_ms);
                return Ok(outcome);
            }
        }
        Err(TransitionError::Contended {
            user_id: user.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The live presence; for a start (or a re-evaluation of one), routing status and shift too.
    async fn live(
        &self,
        user: &UserId,
        trigger: &Trigger<'_>,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<Live, TransitionError> {
        let current = self.deps.presence.presence(user, deadline).await?;
        let read_at = self.deps.clock.now();
        if !matches!(trigger, Trigger::Started(_) | Trigger::Reevaluate) {
            return Ok(Live {
                current,
                read_at,
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
            read_at,
            routing: Some(routing.unwrap_or(RoutingStatus::OffQueue)),
            shift: Some(shift),
        })
    }

    /// The live snapshot, if it was read recently enough to stand for the write's own read.
    fn fresh<'a>(&self, live: Option<&'a Live>) -> Option<&'a PresenceSnapshot> {
        let live = live?;
        let age = (self.deps.clock.now() - live.read_at).to_std().ok()?;
        (age <= self.deps.presence_fresh_for).then_some(&live.current)
    }
}

/// Whole milliseconds since `started` (the stage timings' unit).
fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}
