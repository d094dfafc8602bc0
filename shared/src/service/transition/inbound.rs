//! The way in: whose event it is, whether it was handled before (idempotency), and the audited
//! refusal of events that cannot be handled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Outcome, OutcomeKind, StageTimings, TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::events::{self, CalendarEntry, EventError, InboundEvent, ParsedEvent};
use crate::model::UserId;
use crate::ports::{Begin, EventMark, EventRecord, Lease, MarkStatus, StoreError};
use crate::state::{AuditEntry, DecisionKind};

pub use crate::model::UNATTRIBUTED_USER;

/// The event being handled and this invocation's token for it. Its idempotency record rides
/// on the writes the decision makes anyway: the claim takes it (a lease), the commit completes
/// it (the outcome), so handling an event once costs no call of its own.
#[derive(Debug)]
pub(super) struct EventHold {
    pub event_id: String,
    lease: Lease,
    until: Deadline,
    ttl: Duration,
    /// A write took the lease: it is given back if the event fails.
    leased: AtomicBool,
    /// A write stored the outcome: nothing is left to complete.
    completed: AtomicBool,
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
            leased: AtomicBool::new(false),
            completed: AtomicBool::new(false),
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

    pub(super) fn wrote(&self, mark: &EventMark) {
        let flag = match mark.status {
            MarkStatus::InProgress { .. } => &self.leased,
            MarkStatus::Completed(_) => &self.completed,
        };
        flag.store(true, Ordering::Release);
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
        result: &Result<Outcome, TransitionError>,
    ) -> Result<(), TransitionError> {
        let settled = match result {
            Ok(outcome) => outcome.duplicate || hold.completed.load(Ordering::Acquire),
            Err(_) => !hold.leased.load(Ordering::Acquire),
        };
        if settled {
            return Ok(());
        }
        // No write of ours carried the record, so another delivery of the event may have
        // decided too and completed it first: both decisions stand.
        self.conclude(&hold.lease, result, OtherDelivery::MayHaveCompleted)
            .await
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

    /// `finish` whose own failure is logged: the event's result is what the caller reports.
    pub(super) async fn finish_quietly(
        &self,
        lease: &Lease,
        result: &Result<Outcome, TransitionError>,
    ) {
        if let Err(error) = self.finish(lease, result).await {
            tracing::warn!(%error, "could not record the idempotency outcome");
        }
    }

    /// The Genesys user a calendar entry belongs to (looked up by e-mail when needed).
    pub async fn resolve_user(
        &self,
        entry: &CalendarEntry,
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

    /// A failure no retry can cure (the store refused the request as such) still leaves a trace:
    /// a `Rejected` record with the bounded reason, before the message goes to its DLQ.
    pub(super) async fn audit_failure(&self, parsed: &ParsedEvent, error: &TransitionError) {
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
            decision: OutcomeKind::Rejected,
            reason: Some(error.to_string()),
            duplicate: false,
            timings: StageTimings::default(),
        })
    }
}

/// The event id of a raw event, for the record of its rejection (bounded: the id may be the
/// very thing that was too long).
pub fn event_id_of(raw: &str) -> Option<String> {
    if raw.len() > events::limits::EVENT_BYTES {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(bounded_event_id))
}

/// An event id short enough for an audit record.
pub fn bounded_event_id(id: &str) -> String {
    if id.len() <= events::limits::EVENT_ID {
        id.to_owned()
    } else {
        crate::model::preview(id)
    }
}
