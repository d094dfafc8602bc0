//! What a changed calendar event becomes on the bus: its mirror entry (canonical detail without
//! the subject, and the version it was told at) and the `Calendar Event Upserted` entry (the
//! subject only when the policy's messages show subjects, and never for a private event). The calendar's adapter read the service's
//! shape; only our canonical event (docs/events.md) reaches the bus.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::calendar::CalendarChange;
use crate::events::{CALENDAR_EVENT_UPSERTED, EventError};
use crate::model::UserId;
use crate::ports::{BusEntry, MirroredEvent};

/// The mirror entry of a changed event of `user`'s.
pub(super) fn mirrored(user: &UserId, change: &CalendarChange) -> MirroredEvent {
    let canonical = change.entry.canonical_detail(user, false);
    // Graph's `changeKey` and Google's `etag` change with every version of the event.
    let fingerprint = match &change.version {
        Some(version) => version.clone(),
        None => {
            let digest = Sha256::digest(canonical.to_string().as_bytes());
            digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
        }
    };
    MirroredEvent {
        event_id: change.entry.trigger_id.as_str().to_owned(),
        fingerprint,
        end: change.entry.end,
        detail: canonical,
    }
}

/// The Upserted entry: canonical detail, with the subject only when `with_subject` (the policy
/// shows subjects) and the event is not private.
pub(super) fn upserted(
    change: &CalendarChange,
    mirrored: &MirroredEvent,
    with_subject: bool,
) -> BusEntry {
    let mut detail = mirrored.detail.clone();
    if let (true, false, Some(subject)) = (with_subject, change.private, &change.entry.subject) {
        detail["subject"] = Value::String(subject.clone());
    }
    BusEntry {
        detail_type: CALENDAR_EVENT_UPSERTED,
        detail,
    }
}

/// An event the adapter could not read: our canonical event naming what broke, so the planner
/// records the refusal with that field (never with the event's subject: it was not read).
pub(super) fn unreadable(user: &UserId, id: &str, error: &EventError) -> BusEntry {
    BusEntry {
        detail_type: CALENDAR_EVENT_UPSERTED,
        detail: json!({
            "userId": user.as_str(),
            "calendarEventId": id,
            "unreadable": {"field": error.field, "reason": error.reason},
        }),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::fakes::calendar::meeting;

    fn user() -> UserId {
        UserId::parse("2b2e8fb3-2d8e-4a42-9f3f-2c5a7f0e4a11").expect("uuid")
    }

    fn change(private: bool, version: Option<&str>) -> CalendarChange {
        let at = |raw: &str| DateTime::parse_from_rfc3339(raw).expect("valid").to_utc();
        let mut change = meeting(
            "ev1",
            "Salary review",
            at("2026-03-19T10:00:00Z"),
            at("2026-03-19T11:00:00Z"),
        );
        change.private = private;
        change.version = version.map(str::to_owned);
        change
    }

    #[test]
    fn the_mirror_keeps_the_version_and_never_the_subject() {
        let mirrored = mirrored(&user(), &change(false, Some("\"3\"")));
        assert_eq!(mirrored.fingerprint, "\"3\"");
        assert!(mirrored.detail.get("subject").is_none());
        assert_eq!(mirrored.detail["userId"], user().as_str());
        let unversioned = super::mirrored(&user(), &change(false, None));
        assert_eq!(
            unversioned.fingerprint.len(),
            32,
            "a digest of the canonical detail"
        );
    }

    #[test]
    fn a_subject_reaches_the_bus_only_when_messages_show_it_and_never_a_private_one() {
        let open = change(false, None);
        let shown = upserted(&open, &mirrored(&user(), &open), true);
        assert_eq!(shown.detail["subject"], "Salary review");
        let kept = upserted(&open, &mirrored(&user(), &open), false);
        assert!(kept.detail.get("subject").is_none(), "{}", kept.detail);
        let private = change(true, None);
        let entry = upserted(&private, &mirrored(&user(), &private), true);
        assert!(entry.detail.get("subject").is_none(), "{}", entry.detail);
    }
}
