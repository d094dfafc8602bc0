//! The Google Calendar `Event` shape.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::events::fields::*;
use crate::events::{CalendarEntry, EventError, Response, ShowAs, UserRef, limits};
use crate::model::{UserId, preview};
use crate::state::TriggerKind;

pub(crate) fn google_time(detail: &Value, key: &str) -> Result<(DateTime<Utc>, bool), EventError> {
    if let Some(raw) = text(detail, &format!("{key}.dateTime"))? {
        let at = DateTime::parse_from_rfc3339(raw).map_err(|_| {
            error(
                format!("detail.{key}.dateTime"),
                format!("{} is not an RFC 3339 timestamp", preview(raw)),
            )
        })?;
        return Ok((at.to_utc(), false));
    }
    let raw = text(detail, &format!("{key}.date"))?
        .ok_or_else(|| error(format!("detail.{key}"), "needs dateTime or date"))?;
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        error(
            format!("detail.{key}.date"),
            format!("{} is not a date", preview(raw)),
        )
    })?;
    Ok((date.and_time(chrono::NaiveTime::MIN).and_utc(), true))
}

/// The attendee marked `self: true`, with its index for error paths.
pub(crate) fn google_self_attendee(detail: &Value) -> Result<Option<(usize, &Value)>, EventError> {
    let attendees = match detail.get("attendees") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(attendees)) => attendees,
        Some(other) => {
            return Err(error(
                "detail.attendees",
                format!("must be an array, got {}", type_name(other)),
            ));
        }
    };
    for (index, attendee) in attendees.iter().enumerate() {
        match attendee.get("self") {
            Some(Value::Bool(true)) => return Ok(Some((index, attendee))),
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(other) => {
                return Err(error(
                    format!("detail.attendees[{index}].self"),
                    format!("must be true or false, got {}", type_name(other)),
                ));
            }
        }
    }
    Ok(None)
}

pub(crate) fn from_google(detail: &Value) -> Result<CalendarEntry, EventError> {
    let (start, all_day_start) = google_time(detail, "start")?;
    let (end, all_day_end) = google_time(detail, "end")?;
    ordered(start, end)?;
    let me = google_self_attendee(detail)?;
    let organizer_is_me = match detail.get("organizer").and_then(|o| o.get("self")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(value)) => *value,
        Some(other) => {
            return Err(error(
                "detail.organizer.self",
                format!("must be true or false, got {}", type_name(other)),
            ));
        }
    };
    let user = google_owner(detail, me, organizer_is_me)?;
    let event_type = one_of(
        detail,
        "eventType",
        &[
            ("default", "default"),
            ("focusTime", "focusTime"),
            ("outOfOffice", "outOfOffice"),
            ("workingLocation", "workingLocation"),
            ("birthday", "birthday"),
            ("fromGmail", "fromGmail"),
        ],
    )?
    .unwrap_or("default");
    let response = match google_response(me)? {
        Some(response) => response,
        None if organizer_is_me => Response::Organizer,
        None => Response::None,
    };
    let (show_as, cancelled) = google_show_as(detail, event_type)?;
    Ok(CalendarEntry {
        user,
        trigger_id: trigger_id(detail, "id")?,
        kind: if event_type == "focusTime" {
            TriggerKind::Focus
        } else {
            TriggerKind::Meeting
        },
        start,
        end,
        show_as,
        all_day: all_day_start || all_day_end,
        cancelled,
        response,
        subject: subject(detail, "summary")?,
        zone: None,
        categories: Vec::new(),
        // Google lists everyone, the organiser and the owner (`self`) included.
        others: people_besides_me(
            detail,
            |attendee| attendee.get("resource").and_then(Value::as_bool) == Some(true),
            |attendee| attendee.get("self").and_then(Value::as_bool) == Some(true),
        )?
        .or(Some(0)),
        organizer: email_at(detail, "detail", "organizer.email")?,
    })
}

/// Whose calendar a Google event is in: named by the forwarder, else the attendee marked
/// `self`, the organizer marked `self`, or the creator.
pub(crate) fn google_owner(
    detail: &Value,
    me: Option<(usize, &Value)>,
    organizer_is_me: bool,
) -> Result<UserRef, EventError> {
    let my_email = match me {
        Some((index, attendee)) => {
            email_at(attendee, &format!("detail.attendees[{index}]"), "email")?
        }
        None => None,
    };
    let organizer_email = email_at(detail, "detail", "organizer.email")?;
    let creator_email = email_at(detail, "detail", "creator.email")?;
    let owner_email = my_email
        .or(organizer_is_me.then_some(organizer_email).flatten())
        .or(creator_email);
    let user_id = text(detail, "userId")?
        .map(|raw| UserId::parse(raw).map_err(|e| error("detail.userId", e.reason)))
        .transpose()?;
    let email = email_at(detail, "detail", "userEmail")?.or(owner_email);
    if user_id.is_none() && email.is_none() {
        return Err(error(
            "detail.attendees",
            "no attendee with self=true, no organizer with self=true and no creator.email: \
             whose calendar this is cannot be told",
        ));
    }
    Ok(UserRef { user_id, email })
}

/// The owner's own answer, if they are an attendee.
pub(crate) fn google_response(me: Option<(usize, &Value)>) -> Result<Option<Response>, EventError> {
    let Some((index, attendee)) = me else {
        return Ok(None);
    };
    let base = format!("detail.attendees[{index}]");
    Ok(
        match text_in(attendee, &base, "responseStatus", limits::SHORT)? {
            None => None,
            Some("accepted") => Some(Response::Accepted),
            Some("declined") => Some(Response::Declined),
            Some("tentative") => Some(Response::Tentative),
            Some("needsAction") => Some(Response::NotResponded),
            Some(other) => {
                return Err(error(
                    format!("{base}.responseStatus"),
                    format!(
                        "{} is not one of needsAction, declined, tentative, accepted",
                        preview(other)
                    ),
                ));
            }
        },
    )
}

/// How the event shows the owner's time, and whether it is cancelled.
pub(crate) fn google_show_as(
    detail: &Value,
    event_type: &str,
) -> Result<(ShowAs, bool), EventError> {
    let status = one_of(
        detail,
        "status",
        &[
            ("confirmed", "confirmed"),
            ("tentative", "tentative"),
            ("cancelled", "cancelled"),
        ],
    )?
    .unwrap_or("confirmed");
    let transparent = one_of(
        detail,
        "transparency",
        &[("opaque", false), ("transparent", true)],
    )?
    .unwrap_or(false);
    let show_as = if event_type == "outOfOffice" {
        ShowAs::OutOfOffice
    } else if transparent {
        ShowAs::Free
    } else if status == "tentative" {
        ShowAs::Tentative
    } else {
        ShowAs::Busy
    };
    Ok((show_as, status == "cancelled"))
}

/// A changed event from `owner`'s calendar, read into our own terms; what cannot be read is
/// named with the field it broke on.
pub(crate) fn read(owner: &UserId, value: &Value) -> crate::calendar::DeltaItem {
    use crate::calendar::{CalendarChange, DeltaItem};
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    let mut detail = value.clone();
    // The calendar's owner, for events whose attendees do not mark the agent as `self`.
    detail["userId"] = Value::String(owner.to_string());
    match from_google(&detail) {
        Ok(entry) => DeltaItem::Changed(CalendarChange {
            entry,
            version: value["etag"].as_str().map(str::to_owned),
            private: matches!(
                value["visibility"].as_str(),
                Some("private" | "confidential")
            ),
        }),
        Err(error) => DeltaItem::Unreadable { id, error },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::calendar::DeltaItem;

    fn owner() -> UserId {
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
    fn the_agents_own_answer_and_the_version_are_read() {
        let DeltaItem::Changed(change) = read(&owner(), &google_event("default")) else {
            panic!("readable");
        };
        assert_eq!(
            change.entry.response,
            Response::Declined,
            "the self attendee's"
        );
        assert_eq!(change.version.as_deref(), Some("\"3\""));
        assert_eq!(change.entry.user.user_id, Some(owner()));
        assert_eq!(change.entry.subject.as_deref(), Some("Salary review"));
        assert!(!change.private);
    }

    #[test]
    fn private_and_confidential_events_are_private() {
        for visibility in ["private", "confidential"] {
            let DeltaItem::Changed(change) = read(&owner(), &google_event(visibility)) else {
                panic!("readable");
            };
            assert!(change.private, "{visibility}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        let mut broken = google_event("default");
        broken["start"] = json!({"dateTime": "the day after tomorrow"});
        let DeltaItem::Unreadable { id, error } = read(&owner(), &broken) else {
            panic!("unreadable");
        };
        assert_eq!(id, "ev1");
        assert!(error.field.starts_with("detail.start"), "{error}");
    }
}
