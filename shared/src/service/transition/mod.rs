//! The `transition` use case: an event becomes a decision, the decision becomes (at most) one
//! presence write, and every decision leaves one audit record.
//!
//! One event, in the order a reader meets it (docs/architecture.md walks it step by step):
//! - [`inbound`]: whose event it is, audited refusals;
//! - [`ledger`]: handled before? (idempotency) — the event's record rides on the writes below,
//!   which report back what they did with it ([`ledger::RecordWrites`]), and the ledger ends it;
//! - here, the orchestrator: read state → screen → live presence, routing status, shift →
//!   [`decide`](crate::decide) → record, again after a lost race;
//! - [`record`]: carry the decision out; apply and restore through
//! - [`protocol`]: claim the state → compare-and-set the presence → commit state + audit + outbox;
//! - [`bulk`]: the same for a batch of starts, with one bulk read and one bulk write.
//!
//! A lost race re-reads and re-decides; the claim makes sure only one invocation writes Genesys.

mod bulk;
mod guard;
mod inbound;
mod ledger;
mod outcome;
mod protocol;
mod record;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

pub use bulk::Edge;
pub use inbound::{UNATTRIBUTED_USER, bounded_event_id, event_id_of};
use ledger::{EventHold, Handled, RecordWrites};
pub use outcome::{Outcome, OutcomeKind, StageTimings, TransitionError};
pub use targets::Targets;

use crate::clock::{Clock, Deadline};
use crate::decide::{Context, Operator, ShiftAt, ShiftView, Trigger, decide, screen};
use crate::events::{self, CalendarAction, CalendarEntry, EventError, InboundEvent, ParsedEvent};
use crate::model::{PresenceSnapshot, RoutingStatus, UserId};
use crate::policy::{LivePolicy, Policy, ResolvedTargets};
use crate::ports::{
    AuditLog, EventRecord, IdempotencyStore, PresenceApi, PresenceCatalog, RoutingStatuses,
    ShiftSource, StateStore, TeamDirectory, UserDirectory,
};
use crate::state::UserState;
use record::{Attempt, Persisted};

/// Who an event is about, with its e-mail and trigger; or the refusal (and whom it concerns).
type Subject<'a> = Result<(UserId, Option<&'a str>, Trigger<'a>), (Option<UserId>, EventError)>;

/// Re-reads after a lost race before giving up (the event is then retried by its source).
/// Each round has one winner, so this bounds how many concurrent writers of one user all finish.
const MAX_ATTEMPTS: u32 = 16;

#[derive(Debug, Clone)]
pub struct TransitionDeps {
    /// The Genesys platform, by concern (one client in production).
    pub presence: Arc<dyn PresenceApi>,
    pub routing: Arc<dyn RoutingStatuses>,
    pub users: Arc<dyn UserDirectory>,
    pub catalog: Arc<dyn PresenceCatalog>,
    pub shifts: Arc<dyn ShiftSource>,
    /// Team membership, for the policy's profiles (called only when it has profiles).
    pub teams: Arc<dyn TeamDirectory>,
    pub state: Arc<dyn StateStore>,
    pub audit: Arc<dyn AuditLog>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
    /// The policy in force (replaced by a refresh from the store).
    pub policy: Arc<LivePolicy>,
    /// The policy's presence names as definition ids, resolved at first use of each version.
    pub targets: Arc<Targets>,
    /// Looks at the stored policy now and then (None: the policy is the deployed file's).
    pub policy_refresh: Option<Arc<crate::service::policy_refresh::PolicyRefresh>>,
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
    /// A percentage guard's cap per team and when it was counted (`guard::CAP_FRESH_FOR`).
    caps: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
}

/// What the planner and the sweep ask of the transition use case (implemented by
/// [`TransitionService`]): one copy of the rules, reached through a narrow port.
#[async_trait::async_trait]
pub trait Transitions: Send + Sync + std::fmt::Debug {
    /// The Genesys user a calendar entry belongs to, or why it names none.
    async fn resolve_user(
        &self,
        entry: &CalendarEntry,
        deadline: Deadline,
    ) -> Result<Result<UserId, EventError>, TransitionError>;

    /// Handles an event once per event id (a start or end that is due now).
    async fn handle(
        &self,
        parsed: ParsedEvent,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError>;

    /// Decides again, with no event of their own, for the sweep's due users (a deferred start,
    /// a missed end), sharing bulk calls; one result per user, in order.
    async fn reevaluate_due(
        &self,
        due: Vec<(UserState, Edge)>,
        deadline: Deadline,
    ) -> Vec<Result<Outcome, TransitionError>>;

    /// Takes a newer stored policy if one is due to be looked at (see `PolicyRefresh`).
    async fn refresh_policy(&self, deadline: Deadline);

    /// Refuses an event: one `Rejected` audit record naming the reason.
    async fn reject(
        &self,
        event_id: Option<String>,
        user: Option<UserId>,
        error: &EventError,
    ) -> Result<Outcome, TransitionError>;
}

#[async_trait::async_trait]
impl Transitions for TransitionService {
    async fn resolve_user(
        &self,
        entry: &CalendarEntry,
        deadline: Deadline,
    ) -> Result<Result<UserId, EventError>, TransitionError> {
        TransitionService::resolve_user(self, entry, deadline).await
    }

    async fn handle(
        &self,
        parsed: ParsedEvent,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        TransitionService::handle(self, parsed, deadline).await
    }

    async fn reevaluate_due(
        &self,
        due: Vec<(UserState, Edge)>,
        deadline: Deadline,
    ) -> Vec<Result<Outcome, TransitionError>> {
        TransitionService::reevaluate_due(self, due, deadline).await
    }

    async fn refresh_policy(&self, deadline: Deadline) {
        TransitionService::refresh_policy(self, deadline).await;
    }

    async fn reject(
        &self,
        event_id: Option<String>,
        user: Option<UserId>,
        error: &EventError,
    ) -> Result<Outcome, TransitionError> {
        TransitionService::reject(self, event_id, user, error).await
    }
}

/// The inputs of a decision that need Genesys calls, fetched once per attempt.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    current: PresenceSnapshot,
    /// When `current` was read (by the service's clock).
    read_at: DateTime<Utc>,
    routing: Option<RoutingStatus>,
    shift: Option<ShiftView>,
    /// The agent's WFM business unit's zone, read with the shift.
    zone: Option<chrono_tz::Tz>,
}

impl TransitionService {
    pub fn new(deps: TransitionDeps) -> Self {
        Self {
            deps,
            users_by_email: Mutex::default(),
            caps: Mutex::default(),
        }
    }

    pub fn deps(&self) -> &TransitionDeps {
        &self.deps
    }

    /// Takes a newer stored policy if it is due to be looked at (and valid); the decisions of
    /// this invocation use the policy in force when each starts.
    pub async fn refresh_policy(&self, deadline: Deadline) {
        if let Some(refresh) = &self.deps.policy_refresh {
            refresh.refresh_if_due(deadline).await;
        }
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
        let mut handled = self
            .decide_and_record(&user, email, &trigger, (event, Some(&hold)), deadline)
            .await;
        if let Ok(outcome) = handled.result.as_mut() {
            let auth = self.deps.presence.take_auth_timings();
            outcome.timings.secret_ms = auth.secret_ms;
            outcome.timings.token_ms = auth.token_ms;
        }
        self.settle_event(&hold, &handled).await?;
        handled.result
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
        self.decide_and_apply(user, None, trigger, None, deadline)
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
        self.decide_and_apply(user, None, &Trigger::Released(operator), None, deadline)
            .await
    }

    /// A decision with no event of its own to record (a sweep, a release, the bulk path's
    /// fallback, whose caller holds the event's key).
    async fn decide_and_apply(
        &self,
        user: &UserId,
        email: Option<&str>,
        trigger: &Trigger<'_>,
        event_id: Option<&str>,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        self.decide_and_record(user, email, trigger, (event_id, None), deadline)
            .await
            .result
    }

    /// Read → screen → live inputs → decide → record, again after a lost race (bounded).
    /// `hold`: the event's idempotency record rides on this decision's writes, and what they
    /// did with it comes back with the result; without it, the caller holds the event's key
    /// (or there is no event: a sweep, a release).
    async fn decide_and_record(
        &self,
        user: &UserId,
        email: Option<&str>,
        trigger: &Trigger<'_>,
        (event_id, hold): (Option<&str>, Option<&EventHold>),
        deadline: Deadline,
    ) -> Handled {
        let mut writes = RecordWrites::default();
        let mut timings = StageTimings::default();
        let event_key = hold.map(EventHold::key);
        // A container's first event resolves the targets (secret, token, definitions): that
        // chain and the first read of the state do not depend on each other, so they overlap.
        let started = Instant::now();
        let ((targets, targets_ms), (first_read, state_read_ms)) = tokio::join!(
            async { (self.targets(deadline).await, elapsed_ms(started)) },
            async {
                let read = self.deps.state.get_for_event(user, event_key).await;
                (read, elapsed_ms(started))
            }
        );
        (timings.targets_ms, timings.state_read_ms) = (targets_ms, state_read_ms);
        let targets = match targets {
            Ok(targets) => targets,
            Err(error) => return Handled::failed(error, writes),
        };
        let mut first_read = Some(first_read);
        let attempt = Attempted {
            user,
            email,
            trigger,
            event_id,
            hold,
            targets: &targets,
            deadline,
        };
        // The team's guard refused a slot: the next round decides knowing it is full.
        let mut full = false;
        for round in 0..MAX_ATTEMPTS {
            if round > 0 && !full {
                self.step_aside(round).await;
            }
            let read = match first_read.take() {
                Some(read) => read,
                None => {
                    let read_started = Instant::now();
                    let read = self.deps.state.get_for_event(user, event_key).await;
                    timings.state_read_ms += elapsed_ms(read_started);
                    read
                }
            };
            let read = match read {
                Ok(read) => read,
                Err(error) => return Handled::failed(error, writes),
            };
            match self.attempt(&attempt, read, full, &mut timings).await {
                Ok(Step::Ended(result)) => return Handled { result, writes },
                Ok(Step::Persisted(Persisted::Done {
                    mut outcome,
                    completed,
                })) => {
                    writes.completed = completed;
                    let write_ms = outcome.timings.genesys_write_ms;
                    outcome.timings = StageTimings {
                        genesys_write_ms: write_ms,
                        store_ms: timings.store_ms.saturating_sub(write_ms),
                        ..timings
                    };
                    return Handled {
                        result: Ok(outcome),
                        writes,
                    };
                }
                Ok(Step::Persisted(Persisted::Retry { leased })) => writes.leased |= leased,
                Ok(Step::Persisted(Persisted::Full)) => full = true,
                Ok(Step::Persisted(Persisted::Failed { error, leased })) => {
                    writes.leased |= leased;
                    return Handled::failed(error, writes);
                }
                Err(error) => return Handled::failed(error, writes),
            }
        }
        let contended = TransitionError::Contended {
            user_id: user.clone(),
            attempts: MAX_ATTEMPTS,
        };
        Handled::failed(contended, writes)
    }

    /// One round: screen the event's record, decide on what was read (reading Genesys only when
    /// the stored state cannot decide alone), and record the decision.
    async fn attempt(
        &self,
        at: &Attempted<'_, '_>,
        (state, record): (Option<UserState>, Option<EventRecord>),
        full: bool,
        timings: &mut StageTimings,
    ) -> Result<Step, TransitionError> {
        let now = self.deps.clock.now();
        if let Some(ended) = at.hold.and_then(|hold| hold.screen(record, now)) {
            return Ok(Step::Ended(ended));
        }
        let state = state.unwrap_or_else(|| UserState::new(at.user.clone(), now));
        let whole = self.deps.policy.current();
        let policy = self
            .profile_of(&whole, at.user, at.email, at.deadline)
            .await?;
        let base = Context {
            now,
            policy,
            targets: at.targets,
            state: &state,
            email: at.email,
            current: None,
            routing: None,
            shift: None,
            zone: None,
            guard: None,
        };
        let (decided, live) = match screen(at.trigger, &base) {
            Some(decided) => (decided, None),
            None => {
                let read_started = Instant::now();
                let live = self.live(at.user, at.trigger, now, at.deadline).await?;
                timings.genesys_read_ms += elapsed_ms(read_started);
                let guard = self
                    .guard_check(policy, at.user, at.trigger, (now, full), at.deadline)
                    .await?;
                let cx = Context {
                    current: Some(&live.current),
                    routing: live.routing.as_ref(),
                    shift: live.shift,
                    zone: live.zone,
                    guard,
                    ..base
                };
                (decide(at.trigger, &cx), Some(live))
            }
        };
        let attempt = Attempt {
            policy,
            user: at.user,
            email: at.email,
            trigger: at.trigger,
            event_id: at.event_id,
            hold: at.hold,
            read: &state,
            live: live.as_ref(),
            deadline: at.deadline,
        };
        let persist_started = Instant::now();
        let persisted = self.persist(&attempt, decided).await;
        timings.store_ms += elapsed_ms(persist_started);
        Ok(Step::Persisted(persisted?))
    }

    /// The agent's profile: the first whose selector matches (groups and the management unit
    /// looked up only when a profile names them), else the policy's own sections.
    pub(crate) async fn profile_of<'p>(
        &self,
        policy: &'p Policy,
        user: &UserId,
        email: Option<&str>,
        deadline: Deadline,
    ) -> Result<&'p Policy, TransitionError> {
        if policy.profiles.is_empty() {
            return Ok(policy);
        }
        let mut groups = std::collections::HashSet::new();
        for group in policy.groups_named() {
            if self
                .deps
                .teams
                .group_members(&group, deadline)
                .await?
                .contains(user)
            {
                groups.insert(group);
            }
        }
        let management_unit = if policy.selects_by_management_unit() {
            self.deps.teams.management_unit(user, deadline).await?
        } else {
            None
        };
        Ok(policy.profile_for(&crate::policy::Agent {
            user,
            email,
            groups: &groups,
            management_unit: management_unit.as_deref(),
        }))
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
                zone: None,
            });
        }
        let users = std::slice::from_ref(user);
        let routing = self
            .deps
            .routing
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
            .unwrap_or(ShiftAt::UNKNOWN);
        Ok(Live {
            current,
            read_at,
            routing: Some(routing.unwrap_or(RoutingStatus::OffQueue)),
            shift: Some(shift.view),
            zone: shift.zone,
        })
    }

    /// The live snapshot, if it was read recently enough to stand for the write's own read.
    fn fresh<'a>(&self, live: Option<&'a Live>) -> Option<&'a PresenceSnapshot> {
        let live = live?;
        let age = (self.deps.clock.now() - live.read_at).to_std().ok()?;
        (age <= self.deps.presence_fresh_for).then_some(&live.current)
    }
}

/// What a decision is about, the same in every round of [`TransitionService::decide_and_record`].
struct Attempted<'a, 'b> {
    user: &'a UserId,
    email: Option<&'a str>,
    trigger: &'a Trigger<'b>,
    event_id: Option<&'a str>,
    hold: Option<&'a EventHold>,
    targets: &'a ResolvedTargets,
    deadline: Deadline,
}

/// How one round ended.
enum Step {
    /// The event's record ended it before a decision (an earlier outcome, or another holder).
    Ended(Result<Outcome, TransitionError>),
    Persisted(Persisted),
}

/// Whole milliseconds since `started` (the stage timings' unit).
fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}
