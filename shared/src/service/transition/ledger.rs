//! The event ledger: whether an event was handled before (idempotency), the record of it that
//! rides on the decision's writes, and how an event is ended: settled, finished, refused once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Outcome, OutcomeKind, TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::events::{EventError, ParsedEvent};
use crate::model::UserId;
use crate::ports::{Begin, EventMark, EventRecord, Lease, MarkStatus, StoreError};

/// The event being handled and this invocation's token for it. Its idempotency record rides
/// on the writes the decision makes anyway: the claim takes it (a lease), the commit completes
/// it (the outcome), so handling an event once costs no call of its own.
#[derive(Debug)]
pub(super) struct EventHold {
    pub event_id: String,
    lease: Lease,
    until: Deadline,
    ttl: Duration,
}

/// What a decision's writes did with the event's record, as the write protocol reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RecordWrites {
    /// A claim took the event's lease: it is given back if the event fails.
    pub leased: bool,
    /// A commit stored the event's outcome: nothing is left to complete.
    pub completed: bool,
}

/// What handling one event came to, and what its writes did with the event's record.
#[derive(Debug)]
pub(super) struct Handled {
    pub result: Result<Outcome, TransitionError>,
    pub writes: RecordWrites,
}

impl Handled {
    pub(super) fn failed(error: impl Into<TransitionError>, writes: RecordWrites) -> Self {
        Self {
            result: Err(error.into()),
            writes,
        }
    }
}

impl EventHold {
    pub(super) fn new(event_id: &str, until: Deadline, ttl: Duration) -> Self {
        Self {
            event_id: event_id.to_owned(),
            lease: Lease {
                key: event_key(event_id),
                token: ulid::Ulid::new().to_string(),
            },
            until,
            ttl,
        }
    }

    pub(super) fn key(&self) -> &str {
        &self.lease.key
    }

    /// The record a claim carries: the event is ours until the deadline.
    pub(super) fn lease_mark(&self) -> EventMark {
        self.mark(MarkStatus::InProgress {
            until: self.until.0,
        })
    }

    /// The record a commit carries: the event's outcome, for later deliveries.
    pub(super) fn completion_mark(&self, outcome: &Outcome) -> Result<EventMark, StoreError> {
        Ok(self.mark(MarkStatus::Completed(stored(outcome)?)))
    }

    fn mark(&self, status: MarkStatus) -> EventMark {
        EventMark {
            lease: self.lease.clone(),
            ttl: self.ttl,
            status,
        }
    }

    /// What the record read with the state means for this invocation: `Some` ends the event
    /// here (an earlier delivery's outcome, or another invocation holds it).
    pub(super) fn screen(
        &self,
        record: Option<EventRecord>,
        now: DateTime<Utc>,
    ) -> Option<Result<Outcome, TransitionError>> {
        match record? {
            EventRecord::Completed(stored) => Some(Ok(stored_outcome(stored, &self.event_id))),
            EventRecord::InProgress { owner, until }
                if owner != self.lease.token && until >= now =>
            {
                Some(Err(TransitionError::InProgress {
                    event_id: self.event_id.clone(),
                }))
            }
            EventRecord::InProgress { .. } => None,
        }
    }

    /// Whether the decision's own writes left the event's record as it should end: its outcome
    /// stored (or an earlier delivery's found), or, after a failure, no lease of ours held.
    pub(super) fn is_settled(&self, handled: &Handled) -> bool {
        match &handled.result {
            Ok(outcome) => outcome.duplicate || handled.writes.completed,
            Err(_) => !handled.writes.leased,
        }
    }
}

fn event_key(event_id: &str) -> String {
    format!("transition#{event_id}")
}

/// An outcome as the idempotency record stores it.
fn stored(outcome: &Outcome) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(outcome)
        .map_err(|error| StoreError::Invalid(format!("outcome not serialisable: {error}")))
}

/// An earlier delivery's stored outcome, marked as a duplicate.
fn stored_outcome(stored: serde_json::Value, event_id: &str) -> Outcome {
    let mut outcome: Outcome = serde_json::from_value(stored)
        .unwrap_or_else(|_| Outcome::new(OutcomeKind::Unknown, Some(event_id), None, None));
    outcome.duplicate = true;
    outcome
}

/// Whether another delivery of the event may have completed it before this one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtherDelivery {
    /// Its record rode on none of our writes: a concurrent delivery can decide and complete it.
    MayHaveCompleted,
    /// We hold its lease: a lost lease is a failure.
    CannotHave,
}

impl TransitionService {
    /// Ends an event whose record rode on the decision's writes: stores the outcome if no write
    /// did, or gives the lease back after a failure so a redelivery runs again.
    pub(super) async fn settle_event(
        &self,
        hold: &EventHold,
        handled: &Handled,
    ) -> Result<(), TransitionError> {
        if hold.is_settled(handled) {
            return Ok(());
        }
        // No write of ours carried the record, so another delivery of the event may have
        // decided too and completed it first: both decisions stand.
        self.conclude(
            &hold.lease,
            &handled.result,
            OtherDelivery::MayHaveCompleted,
        )
        .await
    }

    /// Gives back the lease a claim took on `hold`'s event, so another path can take it.
    pub(super) async fn release_hold(&self, hold: &EventHold) {
        if let Err(error) = self.deps.idempotency.release(&hold.lease).await {
            tracing::warn!(%error, "could not give the event's lease back; it expires with the deadline");
        }
    }

    /// Claims the event id; `Err(outcome)` is the stored outcome of an earlier delivery.
    pub(super) async fn begin(
        &self,
        parsed: &ParsedEvent,
        deadline: Deadline,
    ) -> Result<Result<Lease, Outcome>, TransitionError> {
        let key = event_key(&parsed.event_id);
        match self
            .deps
            .idempotency
            .begin(&key, deadline, self.deps.idempotency_ttl)
            .await?
        {
            Begin::Started(lease) => Ok(Ok(lease)),
            Begin::AlreadyCompleted(stored) => Ok(Err(stored_outcome(stored, &parsed.event_id))),
            Begin::InProgress { .. } => Err(TransitionError::InProgress {
                event_id: parsed.event_id.clone(),
            }),
        }
    }

    /// Stores the outcome, or gives the key back after a failure so a redelivery runs again.
    pub(super) async fn finish(
        &self,
        lease: &Lease,
        result: &Result<Outcome, TransitionError>,
    ) -> Result<(), TransitionError> {
        self.conclude(lease, result, OtherDelivery::CannotHave)
            .await
    }

    /// Completes the leased event with the outcome, or releases it after a failure.
    async fn conclude(
        &self,
        lease: &Lease,
        result: &Result<Outcome, TransitionError>,
        other: OtherDelivery,
    ) -> Result<(), TransitionError> {
        match result {
            Ok(outcome) => {
                let stored = stored(outcome)?;
                let ttl = self.deps.idempotency_ttl;
                match self.deps.idempotency.complete(lease, &stored, ttl).await {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost { key })
                        if other == OtherDelivery::MayHaveCompleted =>
                    {
                        tracing::info!(%key, "another delivery of this event completed it meanwhile");
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Err(_) => {
                if let Err(release) = self.deps.idempotency.release(lease).await {
                    tracing::warn!(error = %release, "could not release the idempotency key; it expires with the deadline");
                }
            }
        }
        Ok(())
    }

    /// The refusal of an event that cannot be handled, once per event id.
    pub(super) async fn reject_once(
        &self,
        parsed: &ParsedEvent,
        user: Option<UserId>,
        error: &EventError,
        deadline: Deadline,
    ) -> Result<Outcome, TransitionError> {
        let lease = match self.begin(parsed, deadline).await? {
            Ok(lease) => lease,
            Err(stored) => return Ok(stored),
        };
        let result = self
            .reject(Some(parsed.event_id.clone()), user, error)
            .await;
        self.finish(&lease, &result).await?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn hold() -> EventHold {
        let clock = ManualClock::starting_at(Utc::now());
        let until = Deadline::after(&clock, Duration::from_secs(30));
        EventHold::new("e-1", until, Duration::from_secs(60))
    }

    fn handled(result: Result<Outcome, TransitionError>, leased: bool, completed: bool) -> Handled {
        Handled {
            result,
            writes: RecordWrites { leased, completed },
        }
    }

    fn applied() -> Outcome {
        Outcome::new(OutcomeKind::Applied, Some("e-1"), None, None)
    }

    fn failure() -> TransitionError {
        TransitionError::InProgress {
            event_id: "e-1".to_owned(),
        }
    }

    #[test]
    fn an_outcome_is_settled_when_a_write_completed_it_or_it_was_a_duplicate() {
        let hold = hold();
        assert!(hold.is_settled(&handled(Ok(applied()), true, true)));
        assert!(
            !hold.is_settled(&handled(Ok(applied()), true, false)),
            "leased, not completed"
        );
        assert!(
            !hold.is_settled(&handled(Ok(applied()), false, false)),
            "no write carried it"
        );
        let mut duplicate = applied();
        duplicate.duplicate = true;
        assert!(hold.is_settled(&handled(Ok(duplicate), false, false)));
    }

    #[test]
    fn a_failure_is_settled_only_when_no_lease_of_ours_is_held() {
        let hold = hold();
        assert!(hold.is_settled(&handled(Err(failure()), false, false)));
        assert!(!hold.is_settled(&handled(Err(failure()), true, false)));
    }

    #[test]
    fn the_record_read_with_the_state_ends_the_event_or_lets_it_go_on() {
        let hold = hold();
        let now = Utc::now();
        let stored = stored(&applied()).expect("serialisable");
        let ended = hold.screen(Some(EventRecord::Completed(stored)), now);
        assert!(matches!(ended, Some(Ok(outcome)) if outcome.duplicate));
        let theirs = EventRecord::InProgress {
            owner: "someone-else".to_owned(),
            until: now + chrono::Duration::seconds(5),
        };
        assert!(matches!(
            hold.screen(Some(theirs), now),
            Some(Err(TransitionError::InProgress { .. }))
        ));
        let expired = EventRecord::InProgress {
            owner: "someone-else".to_owned(),
            until: now - chrono::Duration::seconds(1),
        };
        assert!(
            hold.screen(Some(expired), now).is_none(),
            "an expired lease is taken over"
        );
        assert!(hold.screen(None, now).is_none());
    }
}
