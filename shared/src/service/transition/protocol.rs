//! The one write protocol, used by apply, restore and the bulk path:
//!
//! 1. **claim**: a conditional put of the next state; only the invocation that wins writes Genesys;
//! 2. **write**: compare-and-set on the presence (or one bulk write of claimed users);
//! 3. **settle**: commit state + audit record (+ notification in the outbox) in one transaction,
//!    or, when the write failed, give the claim back or keep it (see [`OnUncertainWrite`]).

use std::time::Duration;

use super::ledger::EventHold;
use super::{TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::model::{PresenceSnapshot, UserId};
use crate::ports::{CasOutcome, EventMark, PlatformError, StoreError};
use crate::state::{AuditEntry, ChangePayload, DecisionKind, Notification, NotificationKind};
use crate::state::{PresenceRef, SlotChange, UserState};

/// Recording a write Genesys already took is worth more tries than deciding: giving up leaves
/// the claim unsettled (the end still restores it, but the `Applied` record waits for a retry).
const SETTLE_ATTEMPTS: u32 = 64;

/// A state claim this invocation won: nobody else writes this user's presence until it is
/// settled or released.
pub(super) struct Claim {
    /// The state the decision was made on.
    pub read: UserState,
    /// The state as claimed (its version is the condition of the next write).
    pub claimed: UserState,
    /// The claim also took the event's lease: a failure from here on gives it back.
    pub leased: bool,
}

/// What a failed presence write does with the claim when Genesys may still have taken it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnUncertainWrite {
    /// Applying: keep the claim, unsettled, so nobody writes over it and the end restores the
    /// presence if it shows our target. The worst case is a meeting not applied, never an agent
    /// stuck off queue.
    KeepClaim,
    /// Restoring: give the claim back, marked `restore_sent`; the redelivered end restores if
    /// the presence still carries our tag, and records the restore as landed if it shows the
    /// presence we were restoring to.
    ReleaseClaim,
}

impl TransitionService {
    /// Step 1. `None`: another writer moved the state first; re-read and decide again.
    /// With `hold`, the claim also takes the event's idempotency lease (`None` when someone
    /// else holds or completed the event: the re-read finds out which).
    pub(super) async fn claim(
        &self,
        read: &UserState,
        next: &UserState,
        hold: Option<&EventHold>,
    ) -> Result<Option<Claim>, TransitionError> {
        let lease = hold.map(EventHold::lease_mark);
        match self.deps.state.put_marked(next, lease.as_ref()).await {
            Ok(claimed) => Ok(Some(Claim {
                read: read.clone(),
                claimed,
                leased: lease.is_some(),
            })),
            Err(StoreError::Conflict(_) | StoreError::LeaseLost { .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// Step 3 after a failed write: releases or keeps the claim, and returns the error to report.
    pub(super) async fn fail_write(
        &self,
        claim: &Claim,
        error: PlatformError,
        uncertain: OnUncertainWrite,
    ) -> TransitionError {
        let landed = error.write_may_have_landed();
        let released = match uncertain {
            OnUncertainWrite::KeepClaim if landed => Ok(()),
            OnUncertainWrite::ReleaseClaim if landed => self.release_restore_sent(claim).await,
            _ => self.release_claim(claim).await,
        };
        match released {
            Ok(()) => error.into(),
            Err(release) => release,
        }
    }

    /// Gives back a restore's claim whose write may have landed, with the time it was sent.
    async fn release_restore_sent(&self, claim: &Claim) -> Result<(), TransitionError> {
        let mut back = claim.read.clone();
        if let Some(applied) = back.applied.as_mut() {
            applied.restore_sent = Some(self.deps.clock.now());
        }
        self.put_back(back, claim).await
    }

    /// Writes the state we read back over our claim (our claim's version is the condition).
    pub(super) async fn release_claim(&self, claim: &Claim) -> Result<(), TransitionError> {
        self.put_back(claim.read.clone(), claim).await
    }

    /// Writes `back` over our claim, conditional on its version; a lost race is no error.
    async fn put_back(&self, mut back: UserState, claim: &Claim) -> Result<(), TransitionError> {
        back.version = claim.claimed.version;
        back.updated_at = self.deps.clock.now();
        // The team's guard follows the state back: a slot the claim took is let go, one it let
        // go is held again.
        back.slot_change = match (&claim.claimed.slot, &back.slot) {
            (Some(team), None) => Some(SlotChange::Release { team: team.clone() }),
            (None, Some(team)) => Some(SlotChange::Retake { team: team.clone() }),
            _ => None,
        };
        match self.deps.state.put(&back).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// Step 3 after our apply: record its tag, audit, notify. If an end landed while the write
    /// was in flight (it let the override go), undo our write — unless someone changed it since.
    /// `Ok(true)`: the commit also completed the event (`completes`).
    pub(super) async fn settle_apply(
        &self,
        user: &UserId,
        claimed: UserState,
        after: &PresenceSnapshot,
        entry: AuditEntry,
        payload: ChangePayload,
        completes: Option<&EventMark>,
    ) -> Result<bool, TransitionError> {
        let mut state = claimed;
        for attempt in 0..SETTLE_ATTEMPTS {
            if attempt > 0 {
                // Others keep committing around our claim (kept triggers): step aside a little.
                self.step_aside(attempt).await;
            }
            match state.applied.as_mut() {
                Some(applied) if applied.tag.is_none() => {
                    applied.tag = Some(after.tag());
                    applied.set_at = Some(after.modified_date);
                }
                _ => {
                    self.undo_superseded(user, after, entry, &payload).await?;
                    return Ok(false);
                }
            }
            let notification = Some((NotificationKind::PresenceApplied, payload.clone()));
            match self
                .commit_settling(state.clone(), entry.clone(), notification, completes)
                .await
            {
                Ok(completed) => return Ok(completed),
                Err(TransitionError::Store(StoreError::Conflict(_))) => {
                    state = self.read_state(user).await?;
                }
                Err(other) => return Err(other),
            }
        }
        Err(TransitionError::Contended {
            user_id: user.clone(),
            attempts: SETTLE_ATTEMPTS,
        })
    }

    /// Our claim was superseded by an end while our write was in flight: put the presence back
    /// if it is still ours, and record both the write and its undoing.
    async fn undo_superseded(
        &self,
        user: &UserId,
        after: &PresenceSnapshot,
        entry: AuditEntry,
        payload: &ChangePayload,
    ) -> Result<(), TransitionError> {
        let restore_to = PresenceRef {
            definition_id: payload
                .previous
                .as_ref()
                .map_or_else(|| after.definition_id.clone(), |p| p.definition_id.clone()),
            message: payload
                .previous
                .as_ref()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
        };
        let deadline = Deadline::after(self.deps.clock.as_ref(), Duration::from_secs(5));
        let undone = self
            .deps
            .presence
            .compare_and_set(user, &after.tag(), &restore_to, None, deadline)
            .await?;
        let mut undo = entry.clone();
        undo.kind = if matches!(undone, CasOutcome::Applied { .. }) {
            DecisionKind::Restored
        } else {
            DecisionKind::Skipped
        };
        undo.reason = Some("the trigger ended while our write was in flight".to_owned());
        self.deps.audit.append(entry).await?;
        self.deps.audit.append(undo).await?;
        Ok(())
    }

    /// Commits state + audit (+ a notification in the outbox) or, without state, appends the
    /// audit record; either completes the event when `completes` is given. `Ok(None)`: a lost
    /// race (or the event is someone else's), decide again; `Ok(Some(completed))` otherwise.
    pub(super) async fn commit_or_append(
        &self,
        next: Option<UserState>,
        entry: AuditEntry,
        notification: Option<(NotificationKind, ChangePayload)>,
        completes: Option<&EventMark>,
    ) -> Result<Option<bool>, TransitionError> {
        let result = match next {
            Some(next) => {
                self.commit_notifying(next, entry, notification, completes)
                    .await
            }
            None => self.append_completing(entry, completes).await,
        };
        match result {
            Ok(completed) => Ok(Some(completed)),
            Err(TransitionError::Store(StoreError::Conflict(_) | StoreError::LeaseLost { .. })) => {
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// Appends the audit record of a decision that changed no state, completing the event;
    /// `Ok(true)` when it did.
    pub(super) async fn append_completing(
        &self,
        entry: AuditEntry,
        completes: Option<&EventMark>,
    ) -> Result<bool, TransitionError> {
        self.deps.audit.append_marked(entry, completes).await?;
        Ok(completes.is_some())
    }

    /// `commit_notifying` for a write Genesys already took: if the event's lease was taken over
    /// meanwhile (our deadline passed), the write is still recorded, without the completion.
    pub(super) async fn commit_settling(
        &self,
        next: UserState,
        entry: AuditEntry,
        notification: Option<(NotificationKind, ChangePayload)>,
        completes: Option<&EventMark>,
    ) -> Result<bool, TransitionError> {
        let result = self
            .commit_notifying(next.clone(), entry.clone(), notification.clone(), completes)
            .await;
        match result {
            Err(TransitionError::Store(StoreError::LeaseLost { key })) if completes.is_some() => {
                tracing::warn!(%key, "the event's lease was taken over; recording our write without its outcome");
                self.commit_notifying(next, entry, notification, None).await
            }
            other => other,
        }
    }

    /// State + audit record (+ the notification, through the state's outbox, + the event's
    /// completion) in one transaction; `Ok(true)` when it completed the event.
    pub(super) async fn commit_notifying(
        &self,
        mut next: UserState,
        entry: AuditEntry,
        notification: Option<(NotificationKind, ChangePayload)>,
        completes: Option<&EventMark>,
    ) -> Result<bool, TransitionError> {
        // The outbox holds this commit's notifications only: the table's stream carries each
        // committed state to the outbox relay, which queues what the commit added.
        next.outbox.clear();
        if let Some((kind, payload)) = notification {
            let payload = serde_json::to_value(payload).map_err(|error| {
                StoreError::Invalid(format!("notification not serialisable: {error}"))
            })?;
            next.outbox.push(Notification::for_change(
                next.user_id.clone(),
                self.deps.clock.now(),
                next.version + 1,
                kind,
                payload,
            ));
        }
        self.deps
            .state
            .commit_marked(&next, entry, completes)
            .await?;
        Ok(completes.is_some())
    }

    /// The stored state, or a fresh one for a user never stored.
    pub(super) async fn read_state(&self, user: &UserId) -> Result<UserState, TransitionError> {
        Ok(match self.deps.state.get(user).await? {
            Some(state) => state,
            None => UserState::new(user.clone(), self.deps.clock.now()),
        })
    }

    /// Spreads the losers of a race out a little before they read again.
    pub(super) async fn step_aside(&self, attempt: u32) {
        let wait = Duration::from_millis(fastrand::u64(5..=20) * u64::from(attempt.min(5)));
        self.deps.clock.sleep(wait).await;
    }
}
