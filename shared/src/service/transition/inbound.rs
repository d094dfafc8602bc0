//! The way in: whose event it is (a user id, or an e-mail looked up once per container), and the
//! audited refusal of events that cannot be handled. Whether it was handled before is the
//! [ledger](super::ledger)'s.

use serde_json::json;

use super::{Outcome, OutcomeKind, StageTimings, TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::events::{self, CalendarEntry, EventError, InboundEvent, ParsedEvent};
use crate::model::UserId;
use crate::ports::StoreError;
use crate::state::{AuditEntry, DecisionKind};

pub use crate::model::UNATTRIBUTED_USER;

impl TransitionService {
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
        match self.deps.users.user_by_email(email, deadline).await? {
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
