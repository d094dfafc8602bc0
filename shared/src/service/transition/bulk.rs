//! A batch of events (SQS bodies): starts for many different users share bulk Genesys calls
//! (presence read and write, routing status, schedules); everything else takes the one-event path.
//!
//! The bulk path is the write protocol with step 2 done once for every claimed user: read each
//! state with its event's record → one bulk read → decide → claim each apply (taking the event's
//! lease) → one bulk write → settle each (its commit completing the event).

mod restore;
mod sweep;

use std::collections::HashMap;
use std::time::Instant;

use futures::stream::{self, StreamExt};

use super::inbound::event_id_of;
use super::ledger::{EventHold, Handled as Ledgered, RecordWrites};
use super::protocol::{Claim, OnUncertainWrite};
use super::record::{AppliedWrite, Attempt, Persisted};
use super::{Live, Outcome, OutcomeKind, TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::decide::{Context, Decision, ShiftAt, Trigger, decide};
use crate::events::{self, CalendarAction, CalendarEntry, InboundEvent, ParsedEvent};
use crate::model::{PresenceSnapshot, RoutingStatus, UserId};
use crate::policy::ResolvedTargets;
use crate::ports::{PlatformError, StoreError};
use crate::state::{PresenceRef, UserState};

type Handled = (usize, Result<Outcome, TransitionError>);

/// How many of a batch's users are claimed, decided and settled at once. Their records are
/// independent (one start per user takes the bulk path); one at a time, a batch of 100 waited
/// for some 500 DynamoDB round trips in a row.
const STORE_CONCURRENCY: usize = 16;
/// How many users' events of a batch (those not in the bulk start) run at once. Each is a few
/// DynamoDB and Genesys round trips; one after another, ten ends waited for each other.
const EVENT_CONCURRENCY: usize = 8;
/// An event of the batch with its position.
type Indexed = (usize, ParsedEvent);
/// Writes that leave nothing for the bulk path to settle: the one-event path settled the event.
const SETTLED_ELSEWHERE: RecordWrites = RecordWrites {
    leased: false,
    completed: true,
};

/// Whose events must keep their batch order: a user (by id, else e-mail); an event naming
/// neither stands alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    User(UserId),
    Email(String),
    Alone(usize),
}

fn owner_of(index: usize, event: &ParsedEvent) -> Owner {
    match &event.event {
        InboundEvent::Presence(observed) => Owner::User(observed.user_id.clone()),
        InboundEvent::Calendar { entry, .. } => match (&entry.user.user_id, &entry.user.email) {
            (Some(user), _) => Owner::User(user.clone()),
            (None, Some(email)) => Owner::Email(email.to_ascii_lowercase()),
            (None, None) => Owner::Alone(index),
        },
    }
}

/// What a bulk item answers to.
enum Source {
    /// An event of the batch, with the hold its record rides on: the claim takes it, the
    /// commit completes it (as on the one-event path), so the event costs no call of its own.
    Event {
        event: Box<ParsedEvent>,
        hold: EventHold,
    },
    /// The sweep: a due deferral or a missed end, with no event of its own.
    Sweep,
}

/// Which edge of an override a bulk path decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Start,
    End,
}

/// A user of the batch whose event id (if any) is claimed and whose state is read.
struct BulkItem {
    index: usize,
    source: Source,
    user: UserId,
    state: UserState,
}

impl BulkItem {
    fn entry(&self) -> Option<&CalendarEntry> {
        match &self.source {
            Source::Event { event, .. } => match &event.event {
                InboundEvent::Calendar { entry, .. } => Some(entry),
                InboundEvent::Presence(_) => None,
            },
            Source::Sweep => None,
        }
    }

    /// What this item decides on: its event's start or end, or the sweep's look again.
    fn trigger(&self, edge: Edge) -> Trigger<'_> {
        match (self.entry(), edge) {
            (Some(entry), Edge::Start) => Trigger::Started(entry),
            (Some(entry), Edge::End) => Trigger::Ended(entry),
            (None, Edge::Start) => Trigger::Reevaluate,
            (None, Edge::End) => Trigger::EndInferred,
        }
    }

    fn email(&self) -> Option<&str> {
        self.entry().and_then(|entry| entry.user.email.as_deref())
    }

    /// The event's hold, which the item's claim and commit carry (none for the sweep).
    fn hold(&self) -> Option<&EventHold> {
        match &self.source {
            Source::Event { hold, .. } => Some(hold),
            Source::Sweep => None,
        }
    }

    fn event_id(&self) -> Option<&str> {
        match &self.source {
            Source::Event { event, .. } => Some(&event.event_id),
            Source::Sweep => None,
        }
    }

    /// The decision context of this item, for recording it (`live`: None when the stored state
    /// decided alone).
    fn attempt<'a>(
        &'a self,
        trigger: &'a Trigger<'a>,
        live: Option<&'a Live>,
        policy: &'a crate::policy::Policy,
        deadline: Deadline,
    ) -> Attempt<'a> {
        Attempt {
            policy,
            user: &self.user,
            email: self.email(),
            trigger,
            event_id: self.event_id(),
            hold: self.hold(),
            read: &self.state,
            live,
            deadline,
        }
    }
}

/// An apply of the batch whose state claim was won.
struct ClaimedApply {
    item: BulkItem,
    live: Live,
    claim: Claim,
    target: PresenceRef,
    restore_to: PresenceRef,
}

/// Everything a start decision looks at, for every user of the batch, in three bulk calls.
struct BulkRead {
    presences: HashMap<UserId, PresenceSnapshot>,
    routing: HashMap<UserId, RoutingStatus>,
    shifts: HashMap<UserId, ShiftAt>,
    /// When the presences were read.
    read_at: chrono::DateTime<chrono::Utc>,
    targets: ResolvedTargets,
}

impl BulkRead {
    /// One user's decision inputs; `None` for a user Genesys does not know.
    fn live(&self, user: &UserId) -> Option<Live> {
        let shift = self.shifts.get(user).copied().unwrap_or(ShiftAt::UNKNOWN);
        Some(Live {
            current: self.presences.get(user)?.clone(),
            read_at: self.read_at,
            routing: Some(
                self.routing
                    .get(user)
                    .cloned()
                    .unwrap_or(RoutingStatus::OffQueue),
            ),
            shift: Some(shift.view),
            zone: shift.zone,
        })
    }
}

impl TransitionService {
    /// One result per body, in order.
    pub async fn handle_batch(
        &self,
        bodies: &[String],
        deadline: Deadline,
    ) -> Vec<Result<Outcome, TransitionError>> {
        self.refresh_policy(deadline).await;
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
        let parsed = self.name_owners(parsed, deadline).await;
        let (starts, ends, mut single) = split_bulk(parsed);
        let mut handled = Vec::new();
        // Each bulk path only pays with two or more; its users have no other event in the batch.
        if starts.len() >= 2 {
            handled.extend(self.handle_bulk_starts(starts, deadline).await);
        } else {
            single.extend(starts);
        }
        if ends.len() >= 2 {
            handled.extend(self.handle_bulk_ends(ends, deadline).await);
        } else {
            single.extend(ends);
        }
        single.sort_by_key(|(index, _)| *index);
        handled.extend(self.handle_each(single, deadline).await);
        in_order(results, handled, "event")
    }

    /// Calendar events that name only an e-mail get their user id (looked up once per
    /// container), so starts can share the bulk calls and one user's events keep their order. An
    /// e-mail no user has is left for the one-event path, which refuses it with the field named.
    async fn name_owners(&self, mut events: Vec<Indexed>, deadline: Deadline) -> Vec<Indexed> {
        for (_, event) in &mut events {
            let InboundEvent::Calendar { entry, .. } = &mut event.event else {
                continue;
            };
            if entry.user.user_id.is_some() || entry.user.email.is_none() {
                continue;
            }
            match self.resolve_user(entry, deadline).await {
                Ok(Ok(user)) => entry.user.user_id = Some(user),
                Ok(Err(_)) => {}
                Err(error) => {
                    tracing::warn!(%error, "user lookup failed; the event takes the one-event path");
                }
            }
        }
        events
    }

    /// The one-event path for each event: different users' events at once
    /// (`EVENT_CONCURRENCY` users), one user's events in batch order, so a start and its end
    /// keep their order.
    async fn handle_each(
        &self,
        events: Vec<(usize, ParsedEvent)>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        let mut groups: Vec<Vec<Indexed>> = Vec::new();
        let mut group_of: HashMap<Owner, usize> = HashMap::new();
        for (index, event) in events {
            let next = groups.len();
            let group = *group_of.entry(owner_of(index, &event)).or_insert(next);
            if group == next {
                groups.push(Vec::new());
            }
            groups[group].push((index, event));
        }
        let handled: Vec<Vec<Handled>> = stream::iter(groups)
            .map(|group| async move {
                let mut handled = Vec::with_capacity(group.len());
                for (index, event) in group {
                    handled.push((index, self.handle(event, deadline).await));
                }
                handled
            })
            .buffer_unordered(EVENT_CONCURRENCY)
            .collect()
            .await;
        handled.into_iter().flatten().collect()
    }

    async fn handle_bulk_starts(
        &self,
        events: Vec<(usize, ParsedEvent)>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        let mut done: Vec<Handled> = Vec::new();
        let pending = self.read_events(events, deadline, &mut done).await;
        self.bulk_starts(pending, done, deadline).await
    }

    /// Starts (or the sweep's deferred starts) whose keys are held and states read: one bulk
    /// read → decide → claim each apply → one bulk write → settle each.
    async fn bulk_starts(
        &self,
        pending: Vec<BulkItem>,
        mut done: Vec<Handled>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        if pending.is_empty() {
            return done;
        }
        if self.deps.policy.current().has_teams() {
            // Profiles and staffing guards are decided per agent (docs/policy.md).
            return self.one_by_one(pending, done, Edge::Start, deadline).await;
        }
        let users: Vec<UserId> = pending.iter().map(|item| item.user.clone()).collect();
        let now = self.deps.clock.now();
        let read = match self.bulk_read(&users, now, deadline).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, "bulk read failed; handling the batch one event at a time");
                return self.one_by_one(pending, done, Edge::Start, deadline).await;
            }
        };
        let decided: Vec<Result<ClaimedApply, Handled>> = stream::iter(pending)
            .map(|item| self.decide_start(item, &read, now, deadline))
            .buffered(STORE_CONCURRENCY)
            .collect()
            .await;
        let mut claims = Vec::new();
        for step in decided {
            match step {
                Ok(claimed) => claims.push(claimed),
                Err(handled) => done.push(handled),
            }
        }
        done.extend(self.write_and_settle(claims, deadline).await);
        done
    }

    /// A bulk read failed: each event gives its key back and takes the one-event path, reporting
    /// its own error (or succeeding, if the cause was brief).
    async fn one_by_one(
        &self,
        items: Vec<BulkItem>,
        mut done: Vec<Handled>,
        edge: Edge,
        deadline: Deadline,
    ) -> Vec<Handled> {
        for item in items {
            let result = match item.source {
                // Nothing of the event's record was taken yet: the one-event path handles it whole.
                Source::Event { event, .. } => self.handle(*event, deadline).await,
                Source::Sweep => {
                    let trigger = if edge == Edge::Start {
                        Trigger::Reevaluate
                    } else {
                        Trigger::EndInferred
                    };
                    self.reevaluate(&item.user, &trigger, deadline).await
                }
            };
            done.push((item.index, result));
        }
        done
    }

    /// Ends the item's event as its writes left it: completed by the commit, or completed now
    /// (a decision whose writes carried no record), or given back after a failure so a
    /// redelivery runs again. The sweep holds no event.
    async fn conclude_item(
        &self,
        item: &BulkItem,
        result: Result<Outcome, TransitionError>,
        writes: RecordWrites,
    ) -> Result<Outcome, TransitionError> {
        let Source::Event { hold, .. } = &item.source else {
            return result;
        };
        let handled = Ledgered { result, writes };
        if let Err(error) = self.settle_event(hold, &handled).await {
            tracing::warn!(%error, "could not record the idempotency outcome");
        }
        handled.result
    }

    /// The one-event path for this item, which reads and decides again (a lost race, a user
    /// Genesys does not know): for an event, the whole path with its own hold, after giving
    /// back a lease this item's claim took; its record is settled there.
    async fn decide_alone(
        &self,
        item: &BulkItem,
        edge: Edge,
        leased: bool,
        deadline: Deadline,
    ) -> (Result<Outcome, TransitionError>, RecordWrites) {
        match &item.source {
            Source::Event { event, hold } => {
                if leased {
                    self.release_hold(hold).await;
                }
                let result = self.handle((**event).clone(), deadline).await;
                (result, SETTLED_ELSEWHERE)
            }
            Source::Sweep => {
                let trigger = item.trigger(edge);
                let result = self.reevaluate(&item.user, &trigger, deadline).await;
                (result, RecordWrites::default())
            }
        }
    }

    /// What a recorded decision came to, with what its writes did with the event's record; a
    /// lost race is decided again on the one-event path.
    async fn concluded(
        &self,
        item: &BulkItem,
        persisted: Result<Persisted, TransitionError>,
        edge: Edge,
        deadline: Deadline,
    ) -> (Result<Outcome, TransitionError>, RecordWrites) {
        match persisted {
            Err(error) => (Err(error), RecordWrites::default()),
            Ok(Persisted::Done { outcome, completed }) => (
                Ok(outcome),
                RecordWrites {
                    leased: false,
                    completed,
                },
            ),
            Ok(Persisted::Retry { leased }) => {
                self.decide_alone(item, edge, leased, deadline).await
            }
            Ok(Persisted::Full) => self.decide_alone(item, edge, false, deadline).await,
            Ok(Persisted::Failed { error, leased }) => (
                Err(error),
                RecordWrites {
                    leased,
                    completed: false,
                },
            ),
        }
    }

    /// Step 1: each user's state read with its event's record (an earlier delivery's outcome
    /// answers a duplicate here); `STORE_CONCURRENCY` events at a time.
    async fn read_events(
        &self,
        events: Vec<(usize, ParsedEvent)>,
        deadline: Deadline,
        done: &mut Vec<Handled>,
    ) -> Vec<BulkItem> {
        let claimed: Vec<Result<Option<BulkItem>, Handled>> = stream::iter(events)
            .map(|(index, event)| self.read_event(index, event, deadline))
            .buffered(STORE_CONCURRENCY)
            .collect()
            .await;
        let mut pending = Vec::new();
        for step in claimed {
            match step {
                Ok(Some(item)) => pending.push(item),
                // Not a start naming a user: `handle_batch` reports it as left unhandled.
                Ok(None) => {}
                Err(handled) => done.push(handled),
            }
        }
        pending
    }

    /// One event of step 1; `Err`: handled already (a duplicate, or a failure).
    async fn read_event(
        &self,
        index: usize,
        event: ParsedEvent,
        deadline: Deadline,
    ) -> Result<Option<BulkItem>, Handled> {
        let InboundEvent::Calendar { entry, .. } = &event.event else {
            return Ok(None);
        };
        let Some(user) = entry.user.user_id.clone() else {
            return Ok(None);
        };
        let hold = EventHold::new(&event.event_id, deadline, self.deps.idempotency_ttl);
        let (state, record) = match self.deps.state.get_for_event(&user, Some(hold.key())).await {
            Ok(read) => read,
            Err(error) => return Err((index, Err(error.into()))),
        };
        // An earlier delivery's outcome, or another invocation holding the event, ends it here.
        if let Some(ended) = hold.screen(record, self.deps.clock.now()) {
            return Err((index, ended));
        }
        let state = state.unwrap_or_else(|| UserState::new(user.clone(), self.deps.clock.now()));
        Ok(Some(BulkItem {
            index,
            source: Source::Event {
                event: Box::new(event),
                hold,
            },
            user,
            state,
        }))
    }

    /// Step 2: one bulk read of everything a start decision looks at.
    async fn bulk_read(
        &self,
        users: &[UserId],
        now: chrono::DateTime<chrono::Utc>,
        deadline: Deadline,
    ) -> Result<BulkRead, TransitionError> {
        let targets = (*self.targets(deadline).await?).clone();
        let presence = &self.deps.presence;
        let presences = presence
            .presences(users, deadline)
            .await?
            .into_iter()
            .collect();
        Ok(BulkRead {
            targets,
            presences,
            read_at: self.deps.clock.now(),
            routing: self
                .deps
                .routing
                .routing_statuses(users, deadline)
                .await?
                .into_iter()
                .collect(),
            shifts: self.deps.shifts.shifts_at(users, now, deadline).await?,
        })
    }

    /// Step 3: decide one start; an apply is claimed and returned for the bulk write, anything
    /// else is recorded on its own (`Err`: handled).
    async fn decide_start(
        &self,
        item: BulkItem,
        read: &BulkRead,
        now: chrono::DateTime<chrono::Utc>,
        deadline: Deadline,
    ) -> Result<ClaimedApply, Handled> {
        let Some(live) = read.live(&item.user) else {
            // A user Genesys does not know: the one-event path refuses it, once per event.
            let (result, writes) = self.decide_alone(&item, Edge::Start, false, deadline).await;
            let result = self.conclude_item(&item, result, writes).await;
            return Err((item.index, result));
        };
        let trigger = item.trigger(Edge::Start);
        let policy_now = self.deps.policy.current();
        let cx = Context {
            now,
            policy: &policy_now,
            targets: &read.targets,
            state: &item.state,
            email: item.email(),
            current: Some(&live.current),
            routing: live.routing.as_ref(),
            shift: live.shift,
            zone: live.zone,
            guard: None,
        };
        let decided = decide(&trigger, &cx);
        let (result, writes) = match (&decided.decision, &decided.next) {
            (Decision::Apply { target, restore_to }, Some(next)) => {
                match self.claim(&item.state, next, item.hold()).await {
                    Ok(Some(claim)) => {
                        let (target, restore_to) = (target.clone(), restore_to.clone());
                        return Ok(ClaimedApply {
                            item,
                            live,
                            claim,
                            target,
                            restore_to,
                        });
                    }
                    // A lost race: the one-event path re-reads and decides again.
                    Ok(None) => self.decide_alone(&item, Edge::Start, false, deadline).await,
                    Err(error) => (Err(error), RecordWrites::default()),
                }
            }
            _ => {
                let policy_now = self.deps.policy.current();
                let at = item.attempt(&trigger, Some(&live), &policy_now, deadline);
                let persisted = self.persist(&at, decided).await;
                self.concluded(&item, persisted, Edge::Start, deadline)
                    .await
            }
        };
        let result = self.conclude_item(&item, result, writes).await;
        Err((item.index, result))
    }

    /// Steps 4 and 5: one bulk write for every claimed apply, then each settled on its own
    /// (`STORE_CONCURRENCY` at a time). The tags were read moments ago by the bulk read; a bulk
    /// PUT cannot be conditional (see docs/genesys-client.md).
    async fn write_and_settle(
        &self,
        claims: Vec<ClaimedApply>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        if claims.is_empty() {
            return Vec::new();
        }
        let changes: Vec<(UserId, PresenceRef)> = claims
            .iter()
            .map(|c| (c.item.user.clone(), c.target.clone()))
            .collect();
        let (written, write_ms) = self.bulk_write(&changes, deadline).await;
        let after = match written {
            Ok(after) => after,
            Err(error) => {
                return stream::iter(claims)
                    .map(|claimed| self.fail_one(claimed, error.clone()))
                    .buffered(STORE_CONCURRENCY)
                    .collect()
                    .await;
            }
        };
        stream::iter(claims)
            .map(|claimed| async {
                let (result, writes, item) =
                    self.settle_one(claimed, &after, write_ms, deadline).await;
                let result = self.conclude_item(&item, result, writes).await;
                (item.index, result)
            })
            .buffered(STORE_CONCURRENCY)
            .collect()
            .await
    }

    /// One bulk PUT of `changes`: each user's presence after it, and how long it took.
    async fn bulk_write(
        &self,
        changes: &[(UserId, PresenceRef)],
        deadline: Deadline,
    ) -> (
        Result<HashMap<UserId, PresenceSnapshot>, PlatformError>,
        u64,
    ) {
        let started = Instant::now();
        let written = self.deps.presence.set_presences(changes, deadline).await;
        let write_ms = started.elapsed().as_millis() as u64;
        (written.map(|after| after.into_iter().collect()), write_ms)
    }

    /// A claimed apply whose bulk write failed: the claim is kept (the write may have landed);
    /// the event's lease is given back, so a redelivery runs it again and finds the claim.
    async fn fail_one(&self, claimed: ClaimedApply, error: PlatformError) -> Handled {
        let failed = self
            .fail_write(&claimed.claim, error, OnUncertainWrite::KeepClaim)
            .await;
        let writes = RecordWrites {
            leased: claimed.claim.leased,
            completed: false,
        };
        let result = self.conclude_item(&claimed.item, Err(failed), writes).await;
        (claimed.item.index, result)
    }

    /// One claimed apply settled on the bulk write's answer (the commit completes the event);
    /// the item comes back for its record.
    async fn settle_one(
        &self,
        claimed: ClaimedApply,
        after: &HashMap<UserId, PresenceSnapshot>,
        write_ms: u64,
        deadline: Deadline,
    ) -> (Result<Outcome, TransitionError>, RecordWrites, BulkItem) {
        let ClaimedApply {
            item,
            live,
            claim,
            target,
            restore_to,
        } = claimed;
        let leased = claim.leased;
        let settled = async {
            let Some(written) = after.get(&item.user) else {
                self.release_claim(&claim).await?;
                let message = format!("bulk PUT returned no presence for {}", item.user);
                return Err(PlatformError::Refused { message }.into());
            };
            let trigger = item.trigger(Edge::Start);
            let policy_now = self.deps.policy.current();
            let at = item.attempt(&trigger, Some(&live), &policy_now, deadline);
            let write = AppliedWrite {
                target: &target,
                restore_to: &restore_to,
                live: &live,
                after: written,
                write_ms,
            };
            let mut audit = at.entry();
            let payload = write.record(&mut audit, &at, &claim.claimed);
            let outcome = Outcome::new(
                OutcomeKind::Applied,
                item.event_id(),
                Some(&item.user),
                None,
            );
            let completes = at.completes(&outcome)?;
            let completed = self
                .settle_apply(
                    &item.user,
                    claim.claimed,
                    written,
                    audit,
                    payload,
                    completes.as_ref(),
                )
                .await?;
            Ok((outcome, completed))
        }
        .await;
        match settled {
            Ok((outcome, completed)) => (Ok(outcome), RecordWrites { leased, completed }, item),
            Err(error) => (
                Err(error),
                RecordWrites {
                    leased,
                    completed: false,
                },
                item,
            ),
        }
    }
}

/// The results by position, filled from `handled`; a position nothing answered for is an
/// error naming `what` was left (never read as a success).
fn in_order(
    mut results: Vec<Option<Result<Outcome, TransitionError>>>,
    handled: Vec<Handled>,
    what: &str,
) -> Vec<Result<Outcome, TransitionError>> {
    for (index, result) in handled {
        results[index] = Some(result);
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(StoreError::Invalid(format!("{what} left unhandled")).into())
            })
        })
        .collect()
}

/// Starts, and ends, naming a user id, one event per user in the batch, can share bulk calls;
/// the rest cannot: (starts, ends, the rest).
fn split_bulk(parsed: Vec<(usize, ParsedEvent)>) -> (Vec<Indexed>, Vec<Indexed>, Vec<Indexed>) {
    let mut per_user: HashMap<UserId, usize> = HashMap::new();
    for (_, event) in &parsed {
        if let InboundEvent::Calendar { entry, .. } = &event.event
            && let Some(user) = &entry.user.user_id
        {
            *per_user.entry(user.clone()).or_default() += 1;
        }
    }
    let (mut starts, mut ends, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for (index, event) in parsed {
        let bulk = match &event.event {
            InboundEvent::Calendar { action, entry } => entry
                .user
                .user_id
                .as_ref()
                .filter(|user| per_user.get(*user) == Some(&1))
                .map(|_| *action),
            InboundEvent::Presence(_) => None,
        };
        match bulk {
            Some(CalendarAction::Started) => starts.push((index, event)),
            Some(CalendarAction::Ended) => ends.push((index, event)),
            _ => rest.push((index, event)),
        }
    }
    (starts, ends, rest)
}
