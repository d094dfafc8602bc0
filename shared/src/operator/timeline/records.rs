//! What the page reads from audit records: decision kinds, details, presence names.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::state::{AuditRecord, DecisionKind, PresenceRef};

/// Display names of presence definitions, falling back to the id.
pub(super) struct Names<'a>(pub(super) &'a HashMap<String, String>);

impl Names<'_> {
    pub(super) fn of<'r>(&'r self, presence: &'r PresenceRef) -> &'r str {
        let id = presence.definition_id.as_str();
        self.0.get(id).map_or(id, String::as_str)
    }

    pub(super) fn with_message(&self, presence: &PresenceRef) -> String {
        match presence.message.trim() {
            "" => self.of(presence).to_owned(),
            message => format!("{} “{message}”", self.of(presence)),
        }
    }
}

/// The decision kinds drawn; `None` for delivery outcomes.
pub(super) fn kind_name(kind: DecisionKind) -> Option<&'static str> {
    Some(match kind {
        DecisionKind::Applied => "applied",
        DecisionKind::Skipped => "skipped",
        DecisionKind::Deferred => "deferred",
        DecisionKind::Rejected => "rejected",
        DecisionKind::Restored => "restored",
        DecisionKind::Kept => "kept",
        DecisionKind::DeliveryDelivered
        | DecisionKind::DeliveryRetryScheduled
        | DecisionKind::DeliveryParked
        | DecisionKind::DeliveryDisabled => return None,
    })
}

pub(super) fn detail_str<'r>(record: &'r AuditRecord, key: &str) -> Option<&'r str> {
    record.details.get(key)?.as_str()
}

fn detail_time(value: &serde_json::Value, key: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value.get(key)?.as_str()?).ok()?;
    Some(parsed.with_timezone(&Utc))
}

pub(super) fn deferred_until(record: &AuditRecord) -> Option<DateTime<Utc>> {
    detail_time(&record.details, "deferredUntil")
}

/// `details.calendar` of a start or end record (absent on records written before it existed).
pub(super) fn calendar_of(record: &AuditRecord) -> Option<(&str, DateTime<Utc>, DateTime<Utc>)> {
    let calendar = record.details.get("calendar")?;
    let kind = calendar.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    Some((
        kind,
        detail_time(calendar, "start")?,
        detail_time(calendar, "end")?,
    ))
}
