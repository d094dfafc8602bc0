//! The edge for calendar events that outside forwarders still post in a calendar service's own
//! shape (a Microsoft Graph `event`, a Google Calendar `Event`, with `userEmail` or `userId`
//! added): each is read by its adapter's parser (`graph::event`, `google::event`) and becomes
//! our canonical event (docs/events.md) before the domain parser sees it. An event that cannot
//! be read travels on as `detail.unreadable`, so the refusal is audited naming the same field.
//! Everything else passes through untouched.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::events::{CalendarEntry, EventError, FOCUS_ENDED, FOCUS_STARTED, UserRef, limits};
use crate::state::TriggerKind;
use crate::{google, graph};

/// An SQS body: the canonical form of a provider-shaped calendar event, else the body itself.
pub fn canonical_body(raw: &str) -> Cow<'_, str> {
    if raw.len() > limits::EVENT_BYTES {
        return Cow::Borrowed(raw);
    }
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return Cow::Borrowed(raw);
    };
    match translated(&value) {
        Some(detail) => {
            let mut event = value;
            event["detail"] = detail;
            Cow::Owned(event.to_string())
        }
        None => Cow::Borrowed(raw),
    }
}

/// A decoded event: the canonical form of a provider-shaped calendar event, else itself.
pub fn canonical_event(mut event: Value) -> Value {
    if let Some(detail) = translated(&event) {
        event["detail"] = detail;
    }
    event
}

/// The canonical detail of a provider-shaped calendar event, or `None` for anything else.
fn translated(event: &Value) -> Option<Value> {
    let detail = event.get("detail").filter(|d| d.is_object())?;
    let kind = match event.get("detail-type").and_then(Value::as_str) {
        Some(FOCUS_STARTED | FOCUS_ENDED) => TriggerKind::Focus,
        _ => TriggerKind::Meeting,
    };
    let read: Result<CalendarEntry, EventError> =
        if detail.get("kind").and_then(Value::as_str) == Some("calendar#event") {
            google::event::from_google(detail)
        } else if graph::event::is_graph(detail) {
            graph::event::from_graph(kind, detail)
        } else {
            return None;
        };
    Some(match read {
        Ok(entry) => {
            let owner = UserRef {
                user_id: entry.user.user_id.clone(),
                email: entry.user.email.clone(),
            };
            entry.canonical(&owner, true, chrono::SecondsFormat::AutoSi)
        }
        Err(error) => json!({"unreadable": {"field": error.field, "reason": error.reason}}),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::events::{CalendarAction, InboundEvent, Response, ShowAs, parse_json};

    fn fixture(name: &str) -> String {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn entry(raw: &str) -> (CalendarAction, CalendarEntry) {
        match parse_json(&canonical_body(raw)).expect("readable").event {
            InboundEvent::Calendar { action, entry } => (action, entry),
            other => panic!("{other:?}"),
        }
    }

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).expect("valid").to_utc()
    }

    #[test]
    fn a_graph_event_becomes_our_canonical_event() {
        let raw = fixture("graph-event-started.json");
        let canonical: Value = serde_json::from_str(&canonical_body(&raw)).expect("json");
        assert!(
            canonical["detail"].get("@odata.etag").is_none(),
            "{canonical}"
        );
        let (action, entry) = entry(&raw);
        assert_eq!(action, CalendarAction::Started);
        assert_eq!(entry.user.email.as_deref(), Some("ben@example.com"));
        assert_eq!(entry.trigger_id.as_str(), "AAMkAGIAAAoZDOFAAA=");
        assert_eq!(
            (entry.start, entry.end),
            (at("2026-03-19T14:00:00Z"), at("2026-03-19T14:30:00Z"))
        );
    }

    #[test]
    fn a_google_focus_block_becomes_a_focus_trigger() {
        let (_, entry) = entry(&fixture("google-focus-started.json"));
        assert_eq!(entry.kind, TriggerKind::Focus);
        assert_ne!(entry.show_as, ShowAs::Free);
        assert_ne!(entry.response, Response::Declined);
    }

    #[test]
    fn an_unreadable_graph_event_is_refused_naming_the_field_it_broke_on() {
        let mut event: Value =
            serde_json::from_str(&fixture("graph-event-started.json")).expect("json");
        event["detail"]["start"]["timeZone"] = json!("Atlantis Standard Time");
        let error = parse_json(&canonical_body(&event.to_string())).expect_err("refused");
        assert_eq!(error.field, "detail.start.timeZone", "{error}");
    }

    #[test]
    fn canonical_and_other_events_pass_untouched() {
        for name in [
            "calendar-event-started.json",
            "genesys-presence.json",
            "malformed-missing-end.json",
        ] {
            let raw = fixture(name);
            assert!(matches!(canonical_body(&raw), Cow::Borrowed(_)), "{name}");
        }
        assert!(matches!(canonical_body("not json"), Cow::Borrowed(_)));
    }
}
