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
    with_common_fields(detail, "id", (kind, start, end), show_as, response)
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
