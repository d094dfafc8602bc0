//! Carrying out one decision for one user: apply and restore go through the write protocol;
//! keep, defer, skip and reject are recorded (state + audit, or audit alone).

use std::time::Instant;

use serde_json::json;

use super::ledger::EventHold;
use super::protocol::{Claim, OnUncertainWrite};
use super::{Live, Outcome, OutcomeKind, TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::decide::{Decided, Decision, SkipReason, Trigger};
use crate::model::{PresenceSnapshot, RoutingStatus, SnapshotTag, SystemPresence, UserId};
use crate::ports::{CasOutcome, EventMark, PlatformError, StoreError};
use crate::state::{
    AuditEntry, ChangePayload, DecisionKind, NotificationKind, PresenceRef, PresenceView,
    TriggerId, UserState,
};

/// One attempt at deciding for one user: what the decision was made on.
pub(super) struct Attempt<'a> {
    /// The policy that decides (its version is in every record).
    pub policy: &'a crate::policy::Policy,
    pub user: &'a UserId,
    pub email: Option<&'a str>,
    pub trigger: &'a Trigger<'a>,
    pub event_id: Option<&'a str>,
    /// The event's idempotency record, carried by this attempt's writes.
    pub hold: Option<&'a EventHold>,
    pub read: &'a UserState,
    pub live: Option<&'a Live>,
    pub deadline: Deadline,
}

/// What recording a decision came to, with what its writes did with the event's record.
#[derive(Debug)]
pub(super) enum Persisted {
    /// Recorded; `completed`: the record's write also stored the event's outcome.
    Done { outcome: Outcome, completed: bool },
    /// Lost a race (or the presence moved under a claim): re-read and re-decide. `leased`: the
    /// claim took the event's lease before the race was lost.
    Retry { leased: bool },
    /// The team's staffing guard refused the claim: decide again, knowing it is full.
    Full,
    /// Failed after a claim took the event's lease (`leased`), which the ledger gives back.
    Failed {
        error: TransitionError,
        leased: bool,
    },
}

impl Attempt<'_> {
    fn trigger_id(&self) -> Option<TriggerId> {
        trigger_id_of(self.trigger, self.read)
    }

    /// The audit record every decision starts from.
    pub(super) fn entry(&self) -> AuditEntry {
        let mut entry = AuditEntry::new(self.user.clone(), DecisionKind::Skipped);
        entry.event_id = self.event_id.map(str::to_owned);
        entry.trigger_id = self.trigger_id();
        entry.details = self.details();
        entry
    }

    /// What every record of this attempt says: the trigger, the policy's version, the agent's
    /// profile and the meeting rule that decided, if one did.
    fn details(&self) -> serde_json::Value {
        let mut details = trigger_details(self.trigger);
        details["policy"] = json!(self.policy.version);
        details["profile"] = json!(self.policy.profile);
        if let Some(rule) = self.deciding_rule() {
            details["rule"] = json!(rule);
        }
        details
    }

    /// The rule that decides a start: found for the entry, or kept with a deferred trigger.
    fn deciding_rule(&self) -> Option<String> {
        match self.trigger {
            Trigger::Started(entry) => {
                match crate::decide::choose(entry, self.policy, self.user, self.email) {
                    Ok(rule) => rule.map(|r| r.name.clone()),
                    Err(SkipReason::Rule { rule, .. }) => Some(rule),
                    Err(_) => None,
                }
            }
            Trigger::Reevaluate => self
                .read
                .active_triggers
                .values()
                .max_by_key(|t| t.ends_at)
                .and_then(|t| t.rule.clone()),
            _ => None,
        }
    }

    fn outcome(&self, kind: OutcomeKind, reason: Option<String>) -> Outcome {
        Outcome::new(kind, self.event_id, Some(self.user), reason)
    }

    /// The event's completion with `outcome`, for the write that records the decision.
    pub(super) fn completes(&self, outcome: &Outcome) -> Result<Option<EventMark>, StoreError> {
        self.hold
            .map(|hold| hold.completion_mark(outcome))
            .transpose()
    }

    /// A notification about the live presence (deferred, skipped).
    fn about_live(
        &self,
        current: &PresenceSnapshot,
        until: Option<chrono::DateTime<chrono::Utc>>,
        reason: &str,
    ) -> ChangePayload {
        ChangePayload {
            email: self.email.map(str::to_owned),
            presence: view(&reference(current), &current.system_presence),
            previous: None,
            trigger_kind: None,
            trigger_id: self.trigger_id(),
            until,
            reason: Some(reason.to_owned()),
        }
    }
}

impl TransitionService {
    pub(super) async fn persist(
        &self,
        at: &Attempt<'_>,
        decided: Decided,
    ) -> Result<Persisted, TransitionError> {
        match decided.decision {
            Decision::Apply { target, restore_to } => {
                self.apply(at, decided.next, &target, &restore_to).await
            }
            Decision::Restore { to } => self.restore(at, decided.next, &to).await,
            Decision::FoundRestored { to } => self.found_restored(at, decided.next, &to).await,
            Decision::Keep { active } => {
                let mut entry = at.entry();
                entry.kind = DecisionKind::Kept;
                let reason = format!("{active} triggers are active; the presence stays");
                entry.reason = Some(reason.clone());
                let outcome = at.outcome(OutcomeKind::Kept, Some(reason));
                let completes = at.completes(&outcome)?;
                let done = self
                    .commit_or_append(decided.next, entry, None, completes.as_ref())
                    .await?;
                Ok(finished(done, outcome))
            }
            Decision::Defer { until, routing } => {
                self.defer(at, decided.next, until, routing).await
            }
            Decision::Wait { until, team, cap } => {
                self.wait(at, decided.next, until, SkipReason::OverCap { team, cap })
                    .await
            }
            Decision::Skip { reason } => self.skip(at, decided.next, reason).await,
            Decision::Reject { reason } => {
                let mut entry = at.entry();
                entry.kind = DecisionKind::Rejected;
                entry.reason = Some(reason.clone());
                let outcome = at.outcome(OutcomeKind::Rejected, Some(reason));
                let completes = at.completes(&outcome)?;
                let done = self
                    .commit_or_append(None, entry, None, completes.as_ref())
                    .await?;
                Ok(finished(done, outcome))
            }
        }
    }

    /// Claim → compare-and-set on the live tag → settle.
    async fn apply(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        target: &PresenceRef,
        restore_to: &PresenceRef,
    ) -> Result<Persisted, TransitionError> {
        let (Some(next), Some(live)) = (next, at.live) else {
            let message = "an apply decision without state or live presence";
            return Err(StoreError::Invalid(message.to_owned()).into());
        };
        let claim = match self.claim(at.read, &next, at.hold).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return Ok(Persisted::Retry { leased: false }),
            Err(TransitionError::Store(StoreError::OverCap { .. })) => return Ok(Persisted::Full),
            Err(error) => return Err(error),
        };
        let leased = claim.leased;
        let written = self
            .apply_claimed(at, claim, live, target, restore_to)
            .await;
        Ok(written.unwrap_or_else(|error| Persisted::Failed { error, leased }))
    }

    /// Apply's compare-and-set and settlement, under a claim this invocation won.
    async fn apply_claimed(
        &self,
        at: &Attempt<'_>,
        claim: Claim,
        live: &Live,
        target: &PresenceRef,
        restore_to: &PresenceRef,
    ) -> Result<Persisted, TransitionError> {
        let started = Instant::now();
        let written = self
            .deps
            .presence
            .compare_and_set(
                at.user,
                &live.current.tag(),
                target,
                self.fresh(Some(live)),
                at.deadline,
            )
            .await;
        let write_ms = started.elapsed().as_millis() as u64;
        match written {
            Ok(CasOutcome::Applied { after, .. }) => {
                let write = AppliedWrite {
                    target,
                    restore_to,
                    live,
                    after: &after,
                    write_ms,
                };
                let mut entry = at.entry();
                let payload = write.record(&mut entry, at, &claim.claimed);
                let mut done = at.outcome(OutcomeKind::Applied, None);
                done.timings.genesys_write_ms = write_ms;
                let completes = at.completes(&done)?;
                let completed = self
                    .settle_apply(
                        at.user,
                        claim.claimed,
                        &after,
                        entry,
                        payload,
                        completes.as_ref(),
                    )
                    .await?;
                Ok(Persisted::Done {
                    outcome: done,
                    completed,
                })
            }
            Ok(CasOutcome::Refused { .. }) => {
                // Changed between our read and our write: give the claim back, decide again.
                self.release_claim(&claim).await?;
                Ok(Persisted::Retry {
                    leased: claim.leased,
                })
            }
            Err(error) => Err(self
                .fail_write(&claim, error, OnUncertainWrite::KeepClaim)
                .await),
        }
    }

    /// Claim → compare-and-set on the tag of our write → commit (restored, or skipped when
    /// someone changed the presence since).
    async fn restore(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        to: &PresenceRef,
    ) -> Result<Persisted, TransitionError> {
        let Some(next) = next else {
            let message = "a restore decision without state";
            return Err(StoreError::Invalid(message.to_owned()).into());
        };
        // Our write's tag; for a claim that never settled (a crash after the PATCH), the live
        // tag the decision was made on.
        let settled = at.read.applied.as_ref().and_then(|a| a.tag.clone());
        let Some(expected) = settled.or_else(|| at.live.map(|l| l.current.tag())) else {
            let message = "a restore without the tag of our write";
            return Err(StoreError::Invalid(message.to_owned()).into());
        };
        let Some(claim) = self.claim(at.read, &next, at.hold).await? else {
            return Ok(Persisted::Retry { leased: false });
        };
        let leased = claim.leased;
        let written = self.restore_claimed(at, claim, &expected, to).await;
        Ok(written.unwrap_or_else(|error| Persisted::Failed { error, leased }))
    }

    /// Restore's compare-and-set and commit, under a claim this invocation won.
    async fn restore_claimed(
        &self,
        at: &Attempt<'_>,
        claim: Claim,
        expected: &SnapshotTag,
        to: &PresenceRef,
    ) -> Result<Persisted, TransitionError> {
        let started = Instant::now();
        let written = self
            .deps
            .presence
            .compare_and_set(at.user, expected, to, self.fresh(at.live), at.deadline)
            .await;
        let write_ms = started.elapsed().as_millis() as u64;
        self.settle_restore(at, claim, to, written, write_ms).await
    }

    /// A restore's write settled: restored (audit, notification, state), skipped because the
    /// presence is no longer ours, or failed with the claim given back (a redelivery restores).
    /// The bulk restore arrives here too, with the guard it checked on its bulk read.
    pub(super) async fn settle_restore(
        &self,
        at: &Attempt<'_>,
        claim: Claim,
        to: &PresenceRef,
        written: Result<CasOutcome, PlatformError>,
        write_ms: u64,
    ) -> Result<Persisted, TransitionError> {
        let ended_by = match at.trigger {
            Trigger::EndInferred => "the end was inferred by the sweep".to_owned(),
            Trigger::Released(operator) => format!("released by {}", operator.0),
            _ => "the trigger ended".to_owned(),
        };
        let mut entry = at.entry();
        match written {
            Ok(CasOutcome::Applied { before, after }) => {
                entry.kind = DecisionKind::Restored;
                entry.reason = Some(ended_by.clone());
                entry.before = Some(reference(&before));
                entry.after = Some(to.clone());
                let payload = ChangePayload {
                    email: at.email.map(str::to_owned),
                    presence: view(to, &after.system_presence),
                    previous: Some(view(&reference(&before), &before.system_presence)),
                    trigger_kind: None,
                    trigger_id: at.trigger_id(),
                    until: None,
                    reason: Some(ended_by.clone()),
                };
                let notification = Some((NotificationKind::PresenceRestored, payload));
                let mut done = at.outcome(OutcomeKind::Restored, Some(ended_by));
                done.timings.genesys_write_ms = write_ms;
                let completes = at.completes(&done)?;
                let completed = self
                    .commit_settling(claim.claimed, entry, notification, completes.as_ref())
                    .await?;
                Ok(Persisted::Done {
                    outcome: done,
                    completed,
                })
            }
            Ok(CasOutcome::Refused { current }) => {
                let reason = SkipReason::ChangedBySomeoneElse.describe();
                entry.reason = Some(reason.clone());
                entry.after = Some(reference(&current));
                let done = at.outcome(OutcomeKind::Skipped, Some(reason));
                let completes = at.completes(&done)?;
                let completed = self
                    .commit_settling(claim.claimed, entry, None, completes.as_ref())
                    .await?;
                Ok(Persisted::Done {
                    outcome: done,
                    completed,
                })
            }
            Err(error) => Err(self
                .fail_write(&claim, error, OnUncertainWrite::ReleaseClaim)
                .await),
        }
    }

    /// The agent is on an interaction: the start waits, audited with the routing status.
    async fn defer(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        until: chrono::DateTime<chrono::Utc>,
        routing: RoutingStatus,
    ) -> Result<Persisted, TransitionError> {
        let waiting = Waiting {
            reason: format!("the agent is {routing:?}"),
            detail: ("routingStatus", json!(routing)),
            kind: NotificationKind::ChangeDeferred,
            tell: true,
        };
        self.record_wait(at, next, until, waiting).await
    }

    /// The team's guard is full: the start waits, audited with the team and its cap; the
    /// agent's subscribers hear why the first time (not at each look again).
    async fn wait(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        until: chrono::DateTime<chrono::Utc>,
        why: SkipReason,
    ) -> Result<Persisted, TransitionError> {
        let guard = match &why {
            SkipReason::OverCap { team, cap } => json!({"team": team, "cap": cap}),
            _ => serde_json::Value::Null,
        };
        let waiting = Waiting {
            reason: why.describe(),
            detail: ("guard", guard),
            kind: NotificationKind::ChangeHeld,
            tell: at.read.deferred_until.is_none(),
        };
        self.record_wait(at, next, until, waiting).await
    }

    /// A start that waits, looked at again at `until`: audited `Deferred`, notified if `tell`.
    async fn record_wait(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        until: chrono::DateTime<chrono::Utc>,
        waiting: Waiting,
    ) -> Result<Persisted, TransitionError> {
        let mut entry = at.entry();
        entry.kind = DecisionKind::Deferred;
        let reason = format!(
            "{}; looking again at {}",
            waiting.reason,
            until.format("%H:%M:%S UTC")
        );
        entry.reason = Some(reason.clone());
        entry.details["deferredUntil"] = json!(until);
        entry.details[waiting.detail.0] = waiting.detail.1;
        let notification = at.live.filter(|_| waiting.tell).map(|live| {
            let payload = at.about_live(&live.current, Some(until), &reason);
            (waiting.kind, payload)
        });
        let outcome = at.outcome(OutcomeKind::Deferred, Some(reason));
        let completes = at.completes(&outcome)?;
        let done = self
            .commit_or_append(next, entry, notification, completes.as_ref())
            .await?;
        Ok(finished(done, outcome))
    }

    /// An earlier restore, whose answer was lost, had landed: audited and notified as the
    /// restore it was; nothing is written to Genesys.
    async fn found_restored(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        to: &PresenceRef,
    ) -> Result<Persisted, TransitionError> {
        let reason = "the trigger ended; our earlier restore, whose answer was lost, had landed";
        let mut entry = at.entry();
        entry.kind = DecisionKind::Restored;
        entry.reason = Some(reason.to_owned());
        entry.after = Some(to.clone());
        let notification = at.live.map(|live| {
            let payload = ChangePayload {
                email: at.email.map(str::to_owned),
                presence: view(to, &live.current.system_presence),
                previous: None,
                trigger_kind: None,
                trigger_id: at.trigger_id(),
                until: None,
                reason: Some(reason.to_owned()),
            };
            (NotificationKind::PresenceRestored, payload)
        });
        let outcome = at.outcome(OutcomeKind::Restored, Some(reason.to_owned()));
        let completes = at.completes(&outcome)?;
        let done = self
            .commit_or_append(next, entry, notification, completes.as_ref())
            .await?;
        Ok(finished(done, outcome))
    }

    async fn skip(
        &self,
        at: &Attempt<'_>,
        next: Option<UserState>,
        reason: SkipReason,
    ) -> Result<Persisted, TransitionError> {
        let text = reason.describe();
        if !reason.is_audited() {
            tracing::info!(user_id = %at.user, reason = %text, "presence event needs no decision");
            return Ok(Persisted::Done {
                outcome: at.outcome(OutcomeKind::Ignored, Some(text)),
                completed: false,
            });
        }
        let mut entry = at.entry();
        entry.reason = Some(text.clone());
        let notification = if reason == SkipReason::ChangedBySomeoneElse {
            let current = at.live.map(|l| &l.current).or(match at.trigger {
                Trigger::PresenceChanged(observed) => Some(*observed),
                _ => None,
            });
            current.map(|c| {
                (
                    NotificationKind::ChangeSkipped,
                    at.about_live(c, None, &text),
                )
            })
        } else {
            None
        };
        let outcome = at.outcome(OutcomeKind::Skipped, Some(text));
        let completes = at.completes(&outcome)?;
        let done = self
            .commit_or_append(next, entry, notification, completes.as_ref())
            .await?;
        Ok(finished(done, outcome))
    }
}

/// `commit_or_append`'s answer as a persisted outcome: `None` was a lost race (no claim, so no
/// lease was taken).
fn finished(committed: Option<bool>, outcome: Outcome) -> Persisted {
    match committed {
        Some(completed) => Persisted::Done { outcome, completed },
        None => Persisted::Retry { leased: false },
    }
}

/// A presence write of ours that Genesys accepted, and how it is audited and announced.
pub(super) struct AppliedWrite<'a> {
    pub target: &'a PresenceRef,
    pub restore_to: &'a PresenceRef,
    pub live: &'a Live,
    pub after: &'a PresenceSnapshot,
    pub write_ms: u64,
}

impl AppliedWrite<'_> {
    pub(super) fn record(
        &self,
        entry: &mut AuditEntry,
        at: &Attempt<'_>,
        claimed: &UserState,
    ) -> ChangePayload {
        entry.kind = DecisionKind::Applied;
        entry.before = Some(self.restore_to.clone());
        entry.after = Some(self.target.clone());
        let mut details = at.details();
        details["genesysWriteMs"] = json!(self.write_ms);
        details["routingStatus"] = json!(self.live.routing);
        details["shift"] = json!(self.live.shift.map(|s| format!("{s:?}")));
        details["tagBefore"] = json!(self.live.current.tag());
        details["tagAfter"] = json!(self.after.tag());
        entry.details = details;
        ChangePayload {
            email: at.email.map(str::to_owned),
            presence: view(self.target, &self.after.system_presence),
            previous: Some(view(self.restore_to, &self.live.current.system_presence)),
            trigger_kind: claimed
                .applied
                .as_ref()
                .and_then(|a| claimed.active_triggers.get(&a.trigger_id))
                .map(|t| t.kind),
            trigger_id: at.trigger_id(),
            until: claimed.applied.as_ref().map(|a| a.until),
            reason: None,
        }
    }
}

fn reference(snapshot: &PresenceSnapshot) -> PresenceRef {
    PresenceRef {
        definition_id: snapshot.definition_id.clone(),
        message: snapshot.message.clone(),
    }
}

fn view(presence: &PresenceRef, system: &SystemPresence) -> PresenceView {
    PresenceView {
        definition_id: presence.definition_id.clone(),
        system_presence: system.clone(),
        message: presence.message.clone(),
    }
}

fn trigger_id_of(trigger: &Trigger<'_>, state: &UserState) -> Option<TriggerId> {
    match trigger {
        Trigger::Started(entry) | Trigger::Ended(entry) => Some(entry.trigger_id.clone()),
        Trigger::Reevaluate
        | Trigger::EndInferred
        | Trigger::PresenceChanged(_)
        | Trigger::Released(_) => state
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
        Trigger::Released(_) => "released",
    }
}

/// What every record says of its trigger: the calendar entry's kind and times (what `autopilot
/// why` and `day` draw), or the operator who released. Bounded: no subject, no free text.
fn trigger_details(trigger: &Trigger<'_>) -> serde_json::Value {
    let mut details = json!({"trigger": trigger_name(trigger)});
    match trigger {
        Trigger::Started(entry) | Trigger::Ended(entry) => {
            details["calendar"] =
                json!({"kind": entry.kind, "start": entry.start, "end": entry.end});
        }
        Trigger::Released(operator) => details["operator"] = json!(operator.0),
        Trigger::Reevaluate | Trigger::EndInferred | Trigger::PresenceChanged(_) => {}
    }
    details
}

/// Why a start waits, for its record and its notification.
struct Waiting {
    reason: String,
    /// The detail naming what it waits on (`routingStatus`, `guard`).
    detail: (&'static str, serde_json::Value),
    kind: NotificationKind,
    /// Whether the agent's subscribers are told (once per wait for the guard).
    tell: bool,
}
