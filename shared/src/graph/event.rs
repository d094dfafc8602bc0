//! The Microsoft Graph `event` shape.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::events::fields::*;
use crate::events::{CalendarEntry, EventError, Response, ShowAs};
use crate::model::preview;
use crate::state::TriggerKind;

pub(crate) fn is_graph(detail: &Value) -> bool {
    detail.get("@odata.etag").is_some()
        || detail
            .get("start")
            .and_then(|s| s.get("timeZone"))
            .is_some()
}

/// Graph `dateTimeTimeZone`: a wall-clock time (no offset, up to 7 fractional digits) plus a zone
/// name: a Windows name (`Pacific Standard Time`, mapped by CLDR's `windowsZones.xml`), an IANA
/// name, or UTC. DST-correct through the IANA database; a time in a spring-forward gap is read
/// with the offset before the gap (02:30 that never happened is 03:30), one in a fall-back
/// overlap as the earlier instant.
pub(crate) fn graph_time(detail: &Value, key: &str) -> Result<DateTime<Utc>, EventError> {
    let field = format!("detail.{key}");
    let raw = required(detail, &format!("{key}.dateTime"))?;
    let zone_name = text(detail, &format!("{key}.timeZone"))?.unwrap_or("UTC");
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(raw) {
        return Ok(with_offset.to_utc());
    }
    let zone = time_zone(zone_name).ok_or_else(|| {
        error(
            format!("{field}.timeZone"),
            format!(
                "{} is not a Windows or IANA time zone name",
                preview(zone_name)
            ),
        )
    })?;
    let local = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| {
        error(
            format!("{field}.dateTime"),
            format!("{} is not a date-time", preview(raw)),
        )
    })?;
    Ok(local_to_utc(zone, local))
}

pub use crate::model::time_zone;

/// The instant a wall-clock time in `zone` names (see `graph_time` for gaps and overlaps).
pub fn local_to_utc(zone: chrono_tz::Tz, local: NaiveDateTime) -> DateTime<Utc> {
    use chrono::{LocalResult, Offset, TimeZone};
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.to_utc(),
        LocalResult::None => {
            // No transition happens twice within a day: a day earlier is before the gap.
            let before = zone
                .offset_from_utc_datetime(&(local - chrono::Duration::days(1)))
                .fix();
            (local - before).and_utc()
        }
    }
}

pub(crate) fn from_graph(kind: TriggerKind, detail: &Value) -> Result<CalendarEntry, EventError> {
    let start = graph_time(detail, "start")?;
    let end = graph_time(detail, "end")?;
    ordered(start, end)?;
    let show_as = one_of(
        detail,
        "showAs",
        &[
            ("free", ShowAs::Free),
            ("tentative", ShowAs::Tentative),
            ("busy", ShowAs::Busy),
            ("oof", ShowAs::OutOfOffice),
            ("workingElsewhere", ShowAs::WorkingElsewhere),
            ("unknown", ShowAs::Unknown),
        ],
    )?
    .unwrap_or(ShowAs::Busy);
    let response = one_of(
        detail,
        "responseStatus.response",
        &[
            ("none", Response::None),
            ("organizer", Response::Organizer),
            ("accepted", Response::Accepted),
            ("tentativelyAccepted", Response::Tentative),
            ("declined", Response::Declined),
            ("notResponded", Response::NotResponded),
        ],
    )?
    .unwrap_or(Response::None);
    // A Graph event does not say whose calendar it is in: the forwarder adds it.
    let mut entry = with_common_fields(detail, "id", (kind, start, end), show_as, response)?;
    // Graph lists the organiser apart and the owner among attendees unless they organise: the
    // people listed (rooms and equipment aside) are the others either way.
    entry.others = people_besides_me(
        detail,
        |attendee| attendee.get("type").and_then(Value::as_str) == Some("resource"),
        |_| false,
    )?;
    entry.organizer = email_at(detail, "detail", "organizer.emailAddress.address")?;
    Ok(entry)
}

/// A changed event from `owner`'s calendar view, read into our own terms; what cannot be read
/// is named with the field it broke on.
pub(crate) fn read(owner: &crate::model::UserId, value: &Value) -> crate::calendar::DeltaItem {
    use crate::calendar::{CalendarChange, DeltaItem};
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    let mut detail = value.clone();
    // The calendar's owner, which Graph's event does not carry.
    detail["userId"] = Value::String(owner.to_string());
    match from_graph(TriggerKind::Meeting, &detail) {
        Ok(entry) => DeltaItem::Changed(CalendarChange {
            entry,
            version: value["changeKey"].as_str().map(str::to_owned),
            private: value["sensitivity"]
                .as_str()
                .is_some_and(|sensitivity| sensitivity != "normal"),
        }),
        Err(error) => DeltaItem::Unreadable { id, error },
    }
}

#[cfg(test)]
mod rule_inputs {
    use serde_json::json;

    use super::*;
    use crate::events::{UserRef, parse_json};

    /// What meeting rules read from a Graph event: its categories, the people besides the
    /// owner (rooms not counted) and the organiser; and they survive the canonical shape.
    #[test]
    fn categories_guests_and_organiser_are_read_and_carried() {
        let detail = json!({
            "id": "AAMk-1",
            "userId": "3ce84f47-4e65-4756-a815-67a2b32e58b8",
            "start": {"dateTime": "2026-12-07T10:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-07T11:00:00.0000000", "timeZone": "UTC"},
            "categories": ["Training", "Blue category"],
            "organizer": {"emailAddress": {"address": "Director@Example.com"}},
            "attendees": [
                {"type": "required", "emailAddress": {"address": "ada@example.com"}},
                {"type": "optional", "emailAddress": {"address": "bo@example.com"}},
                {"type": "resource", "emailAddress": {"address": "room-1@example.com"}}
            ]
        });
        let entry = from_graph(TriggerKind::Meeting, &detail).expect("readable");
        assert_eq!(entry.categories, ["Training", "Blue category"]);
        assert_eq!(entry.others, Some(2));
        assert_eq!(entry.organizer.as_deref(), Some("director@example.com"));
        let owner = UserRef {
            user_id: entry.user.user_id.clone(),
            email: None,
        };
        let canonical = entry.canonical(&owner, false, chrono::SecondsFormat::Secs);
        let body = json!({"id": "e", "detail-type": "Calendar Event Started", "source": "t", "detail": canonical});
        let again = match parse_json(&body.to_string()).expect("canonical").event {
            crate::events::InboundEvent::Calendar { entry, .. } => entry,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (again.categories, again.others, again.organizer),
            (entry.categories, entry.others, entry.organizer)
        );
        let mut bad = detail.clone();
        bad["categories"] = json!(["ok", 7]);
        let error = from_graph(TriggerKind::Meeting, &bad).expect_err("a number");
        assert_eq!(error.field, "detail.categories[1]");
    }
}
