//! What a calendar service's event becomes on the bus: the fields the planner reads (Graph or
//! Google shape, nothing more), its mirror entry and the `Calendar Event Upserted` entry.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::events::{self, CALENDAR_EVENT_UPSERTED, InboundEvent};
use crate::model::UserId;
use crate::ports::{BusEntry, MirroredEvent};

/// Graph event fields the planner reads; the rest (bodies, attendees) never reach the bus.
const GRAPH_FIELDS: [&str; 12] = [
    "id",
    "@odata.etag",
    "subject",
    "start",
    "end",
    "showAs",
    "isAllDay",
    "isCancelled",
    "responseStatus",
    "type",
    "seriesMasterId",
    "sensitivity",
];

/// Google event fields the planner reads; of the attendees only the agent's own entry is kept.
const GOOGLE_FIELDS: [&str; 12] = [
    "kind",
    "id",
    "etag",
    "status",
    "summary",
    "start",
    "end",
    "eventType",
    "transparency",
    "visibility",
    "recurringEventId",
    "organizer",
];

fn is_google(value: &Value) -> bool {
    value["kind"].as_str() == Some("calendar#event")
}

/// The event cut to what the planner reads, with the agent it belongs to.
fn event_detail(user: &UserId, value: &Value) -> Value {
    let google = is_google(value);
    let kept: &[&str] = if google {
        &GOOGLE_FIELDS
    } else {
        &GRAPH_FIELDS
    };
    let mut detail = Map::new();
    for key in kept {
        if let Some(field) = value.get(*key) {
            detail.insert((*key).to_owned(), field.clone());
        }
    }
    if google {
        let own: Vec<Value> = value["attendees"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|attendee| attendee["self"] == Value::Bool(true))
            .cloned()
            .collect();
        if !own.is_empty() {
            detail.insert("attendees".to_owned(), Value::Array(own));
        }
    }
    detail.insert("userId".to_owned(), Value::String(user.to_string()));
    Value::Object(detail)
}

/// Whether the event's subject stays off the bus (Graph `sensitivity`, Google `visibility`).
fn is_private(value: &Value) -> bool {
    if is_google(value) {
        matches!(
            value["visibility"].as_str(),
            Some("private" | "confidential")
        )
    } else {
        value["sensitivity"]
            .as_str()
            .is_some_and(|sensitivity| sensitivity != "normal")
    }
}

/// The mirror entry of a changed event, or (when our own parser refuses it) the trimmed
/// detail to forward so the planner records the refusal.
pub(super) fn changed_event(user: &UserId, value: &Value) -> Result<MirroredEvent, Value> {
    let detail = event_detail(user, value);
    let envelope = json!({"id": "sync", "detail-type": CALENDAR_EVENT_UPSERTED, "detail": detail});
    let parsed = events::parse_value(envelope).ok();
    let Some(InboundEvent::Calendar { entry, .. }) = parsed.map(|p| p.event) else {
        // Forwarded only to be refused and audited: never with its subject.
        let mut refused = detail;
        if let Some(fields) = refused.as_object_mut() {
            fields.remove("subject");
            fields.remove("summary");
        }
        return Err(refused);
    };
    let canonical = entry.canonical_detail(user, false);
    // Graph's `changeKey` and Google's `etag` change with every version of the event.
    let fingerprint = match value["changeKey"].as_str().or(value["etag"].as_str()) {
        Some(version) => version.to_owned(),
        None => {
            let digest = Sha256::digest(canonical.to_string().as_bytes());
            digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
        }
    };
    Ok(MirroredEvent {
        event_id: entry.trigger_id.as_str().to_owned(),
        fingerprint,
        end: entry.end,
        detail: canonical,
    })
}

/// The Upserted entry: canonical detail, with the subject only for a `normal` event.
pub(super) fn upserted(value: &Value, mirrored: &MirroredEvent) -> BusEntry {
    let mut detail = mirrored.detail.clone();
    let subject = value["subject"].as_str().or(value["summary"].as_str());
    if let (false, Some(subject)) = (is_private(value), subject) {
        detail["subject"] = Value::String(subject.to_owned());
    }
    BusEntry {
        detail_type: CALENDAR_EVENT_UPSERTED,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("2b2e8fb3-2d8e-4a42-9f3f-2c5a7f0e4a11").expect("uuid")
    }

    fn google_event(visibility: &str) -> Value {
        json!({
            "kind": "calendar#event", "id": "ev1", "etag": "\"3\"", "status": "confirmed",
            "summary": "Salary review", "visibility": visibility,
            "description": "never read",
            "start": {"dateTime": "2026-03-19T10:00:00Z"}, "end": {"dateTime": "2026-03-19T11:00:00Z"},
            "organizer": {"email": "boss@example.com"},
            "attendees": [
                {"email": "boss@example.com", "responseStatus": "accepted"},
                {"email": "me@example.com", "self": true, "responseStatus": "declined"}
            ]
        })
    }

    #[test]
    fn a_google_event_keeps_only_the_agents_own_attendee_entry() {
        let detail = event_detail(&user(), &google_event("default"));
        assert_eq!(detail["attendees"].as_array().map(Vec::len), Some(1));
        assert_eq!(detail["attendees"][0]["email"], "me@example.com");
        assert!(detail.get("description").is_none());
        let mirrored = changed_event(&user(), &google_event("default")).expect("parsed");
        assert_eq!(mirrored.fingerprint, "\"3\"");
        assert_eq!(mirrored.detail["responseStatus"], "declined");
        let entry = upserted(&google_event("default"), &mirrored);
        assert_eq!(entry.detail["subject"], "Salary review");
    }

    #[test]
    fn a_private_google_event_reaches_the_bus_without_its_summary() {
        for visibility in ["private", "confidential"] {
            let event = google_event(visibility);
            let mirrored = changed_event(&user(), &event).expect("parsed");
            let entry = upserted(&event, &mirrored);
            assert!(entry.detail.get("subject").is_none(), "{visibility}");
        }
    }
}
