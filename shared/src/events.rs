//! Inbound events parsed into the domain: calendar and focus triggers (our canonical detail, a
//! Microsoft Graph `event`, a Google Calendar `Event`) and Genesys presence events. Every error
//! names the field that was wrong.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use crate::model::{PresenceDefinitionId, PresenceSnapshot, SystemPresence, UserId, preview};
use crate::state::{TriggerId, TriggerKind};

pub const CALENDAR_EVENT_STARTED: &str = "Calendar Event Started";
pub const CALENDAR_EVENT_ENDED: &str = "Calendar Event Ended";
pub const FOCUS_STARTED: &str = "Focus Started";
pub const FOCUS_ENDED: &str = "Focus Ended";
pub const CALENDAR_EVENT_UPSERTED: &str = "Calendar Event Upserted";
pub const CALENDAR_EVENT_DELETED: &str = "Calendar Event Deleted";
pub const GENESYS_PRESENCE: &str = "v2.users.{id}.presence";

/// Why an event was refused; `field` is a JSON path into the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {field}: {reason}")]
pub struct EventError {
    pub field: String,
    pub reason: String,
}

fn error(field: impl Into<String>, reason: impl Into<String>) -> EventError {
    EventError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Who a calendar event belongs to: a Genesys user id, an e-mail to look up, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub user_id: Option<UserId>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    None,
    Organizer,
    Accepted,
    Tentative,
    Declined,
    NotResponded,
}

/// A calendar entry or focus block, whatever calendar it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEntry {
    pub user: UserRef,
    pub trigger_id: TriggerId,
    pub kind: TriggerKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub show_as: ShowAs,
    pub all_day: bool,
    pub cancelled: bool,
    pub response: Response,
    pub subject: Option<String>,
}

impl CalendarEntry {
    /// The entry as our canonical `detail` (docs/events.md), for `user`; the subject only when
    /// asked for (a planned event is stored by EventBridge Scheduler until it fires).
    pub fn canonical_detail(&self, user: &UserId, with_subject: bool) -> Value {
        let show_as = match self.show_as {
            ShowAs::Free => "free",
            ShowAs::Tentative => "tentative",
            ShowAs::Busy | ShowAs::Unknown => "busy",
            ShowAs::OutOfOffice => "oof",
            ShowAs::WorkingElsewhere => "workingElsewhere",
        };
        let response = match self.response {
            Response::None => "none",
            Response::Organizer => "organizer",
            Response::Accepted => "accepted",
            Response::Tentative => "tentative",
            Response::Declined => "declined",
            Response::NotResponded => "notResponded",
        };
        let mut detail = serde_json::json!({
            "userId": user.as_str(),
            "calendarEventId": self.trigger_id.as_str(),
            "start": self.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end": self.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "showAs": show_as,
            "isAllDay": self.all_day,
            "isCancelled": self.cancelled,
            "responseStatus": response,
            "kind": match self.kind { TriggerKind::Meeting => "meeting", TriggerKind::Focus => "focus" },
        });
        if let (true, Some(subject)) = (with_subject, &self.subject) {
            detail["subject"] = Value::String(subject.clone());
        }
        detail
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarAction {
    Started,
    Ended,
    Upserted,
    Deleted,
}

/// A Genesys `v2.users.{id}.presence` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceObservation {
    pub user_id: UserId,
    pub snapshot: PresenceSnapshot,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEvent {
    Calendar {
        action: CalendarAction,
        entry: CalendarEntry,
    },
    Presence(PresenceObservation),
}

/// An event with the id it is deduplicated by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub event_id: String,
    pub event: InboundEvent,
}

/// Longest accepted values, in bytes; anything longer is refused at parse time with the field
/// named, before it can reach a DynamoDB key or item (docs/events.md, "Limits").
pub mod limits {
    /// A whole event: EventBridge's and SQS's own entry limit.
    pub const EVENT_BYTES: usize = 256 * 1024;
    /// The event `id` (an EventBridge id is a 36-character UUID); part of the idempotency key.
    pub const EVENT_ID: usize = 512;
    /// `calendarEventId` / a Graph or Google event id; part of the trigger index key.
    pub const TRIGGER_ID: usize = 1024;
    /// An e-mail address (RFC 5321: 64 + 1 + 255).
    pub const EMAIL: usize = 320;
    /// A meeting subject, stored only for the presence message.
    pub const SUBJECT: usize = 1024;
    /// A Genesys presence message.
    pub const PRESENCE_MESSAGE: usize = 1024;
    /// Everything else we read as text: kinds, statuses, timestamps, ids of definitions.
    pub const SHORT: usize = 256;
}

/// Parses raw JSON (an SQS body, a Scheduler payload) as an EventBridge event.
pub fn parse_json(raw: &str) -> Result<ParsedEvent, EventError> {
    if raw.len() > limits::EVENT_BYTES {
        return Err(error(
            "(body)",
            format!(
                "{} bytes is larger than the {} bytes an event may have",
                raw.len(),
                limits::EVENT_BYTES
            ),
        ));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| error("(body)", format!("not JSON: {}", preview(&e.to_string()))))?;
    parse_value(value)
}

/// Parses an event already decoded as JSON, checking the envelope field by field so a wrong
/// type names its field (`id: must be a string, got a number`).
pub fn parse_value(value: Value) -> Result<ParsedEvent, EventError> {
    let Value::Object(mut fields) = value else {
        return Err(error(
            "(body)",
            format!("must be a JSON object, got {}", type_name(&value)),
        ));
    };
    for key in ["id", "detail-type", "source", "account", "region", "time"] {
        match fields.get(key) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(error(
                    key,
                    format!("must be a string, got {}", type_name(other)),
                ));
            }
        }
    }
    let id = match fields.remove("id") {
        Some(Value::String(id)) if id.len() > limits::EVENT_ID => {
            return Err(too_long("id", &id, limits::EVENT_ID));
        }
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let detail_type = match fields.remove("detail-type") {
        Some(Value::String(detail_type)) => detail_type,
        _ => return Err(error("detail-type", "is required")),
    };
    let detail = match fields.remove("detail") {
        Some(detail @ Value::Object(_)) => detail,
        Some(_) => return Err(error("detail", "must be a JSON object")),
        None => return Err(error("detail", "is required")),
    };
    parse_parts(id, &detail_type, &detail)
}

pub fn parse(envelope: &EventBridgeEvent<Value>) -> Result<ParsedEvent, EventError> {
    let id = match envelope.id.as_deref() {
        Some(id) if id.len() > limits::EVENT_ID => {
            return Err(too_long("id", id, limits::EVENT_ID));
        }
        other => other.map(str::to_owned),
    };
    parse_parts(id, &envelope.detail_type, &envelope.detail)
}

fn parse_parts(
    id: Option<String>,
    detail_type: &str,
    detail: &Value,
) -> Result<ParsedEvent, EventError> {
    let event_id = id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| error("id", "is required to deduplicate the event"))?;
    if !detail.is_object() {
        return Err(error("detail", "must be a JSON object"));
    }
    let event = match detail_type {
        CALENDAR_EVENT_STARTED => calendar(CalendarAction::Started, TriggerKind::Meeting, detail)?,
        CALENDAR_EVENT_ENDED => calendar(CalendarAction::Ended, TriggerKind::Meeting, detail)?,
        FOCUS_STARTED => calendar(CalendarAction::Started, TriggerKind::Focus, detail)?,
        FOCUS_ENDED => calendar(CalendarAction::Ended, TriggerKind::Focus, detail)?,
        CALENDAR_EVENT_UPSERTED => {
            calendar(CalendarAction::Upserted, TriggerKind::Meeting, detail)?
        }
        CALENDAR_EVENT_DELETED => calendar(CalendarAction::Deleted, TriggerKind::Meeting, detail)?,
        GENESYS_PRESENCE => InboundEvent::Presence(genesys_presence(detail)?),
        other => {
            return Err(error(
                "detail-type",
                format!("unknown detail-type {}", preview(other)),
            ));
        }
    };
    Ok(ParsedEvent { event_id, event })
}

fn calendar(
    action: CalendarAction,
    kind: TriggerKind,
    detail: &Value,
) -> Result<InboundEvent, EventError> {
    let entry = if text(detail, "kind")? == Some("calendar#event") {
        from_google(detail)?
    } else if is_graph(detail) {
        from_graph(kind, detail)?
    } else {
        from_canonical(kind, detail)?
    };
    Ok(InboundEvent::Calendar { action, entry })
}

// ---------------------------------------------------------------- small readers

/// How a JSON value's type is named in a reason.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn too_long(field: impl Into<String>, value: &str, max: usize) -> EventError {
    error(
        field,
        format!("longer than {max} bytes ({} bytes)", value.len()),
    )
}

/// `base.path` as a field name (`base` empty for the envelope itself).
fn field_name(base: &str, path: &str) -> String {
    if base.is_empty() {
        path.to_owned()
    } else {
        format!("{base}.{path}")
    }
}

/// The string at `path` (dot-separated) under `node`: absent, null or blank is `None`; any other
/// type, or more than `max` bytes, is refused naming `base.path`.
fn text_in<'a>(
    node: &'a Value,
    base: &str,
    path: &str,
    max: usize,
) -> Result<Option<&'a str>, EventError> {
    let mut current = node;
    for key in path.split('.') {
        match current.get(key) {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    match current {
        Value::Null => Ok(None),
        Value::String(raw) if raw.len() > max => Err(too_long(field_name(base, path), raw, max)),
        Value::String(raw) => Ok(Some(raw.trim()).filter(|s| !s.is_empty())),
        other => Err(error(
            field_name(base, path),
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

/// A short string under `detail`.
fn text<'a>(detail: &'a Value, path: &str) -> Result<Option<&'a str>, EventError> {
    text_in(detail, "detail", path, limits::SHORT)
}

fn required<'a>(detail: &'a Value, path: &str) -> Result<&'a str, EventError> {
    text(detail, path)?.ok_or_else(|| error(format!("detail.{path}"), "is required"))
}

/// One of `allowed` (the wire spellings), or `None` when absent; anything else is refused.
fn one_of<T: Copy>(
    detail: &Value,
    path: &str,
    allowed: &[(&str, T)],
) -> Result<Option<T>, EventError> {
    let Some(raw) = text(detail, path)? else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, value)| Some(*value))
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            error(
                format!("detail.{path}"),
                format!("{} is not one of {}", preview(raw), names.join(", ")),
            )
        })
}

fn flag(detail: &Value, key: &str) -> Result<bool, EventError> {
    match detail.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(other) => Err(error(
            format!("detail.{key}"),
            format!("must be true or false, got {}", type_name(other)),
        )),
    }
}

fn timestamp(detail: &Value, path: &str) -> Result<DateTime<Utc>, EventError> {
    let raw = required(detail, path)?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.to_utc())
        .map_err(|_| {
            error(
                format!("detail.{path}"),
                format!("{} is not an RFC 3339 timestamp with offset", preview(raw)),
            )
        })
}

fn email_at(node: &Value, base: &str, key: &str) -> Result<Option<String>, EventError> {
    let Some(email) = text_in(node, base, key, limits::EMAIL)? else {
        return Ok(None);
    };
    if !email.contains('@') {
        return Err(error(
            field_name(base, key),
            format!("{} is not an e-mail address", preview(email)),
        ));
    }
    Ok(Some(email.to_lowercase()))
}

fn user_ref(detail: &Value, id_key: &str, email_key: &str) -> Result<UserRef, EventError> {
    let user_id = text(detail, id_key)?
        .map(|raw| UserId::parse(raw).map_err(|e| error(format!("detail.{id_key}"), e.reason)))
        .transpose()?;
    let email = email_at(detail, "detail", email_key)?;
    if user_id.is_none() && email.is_none() {
        return Err(error(
            format!("detail.{email_key}"),
            format!("{email_key} or {id_key} is required"),
        ));
    }
    Ok(UserRef { user_id, email })
}

fn ordered(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), EventError> {
    if end <= start {
        return Err(error("detail.end", "must be after start"));
    }
    Ok(())
}

fn trigger_id(detail: &Value, key: &str) -> Result<TriggerId, EventError> {
    let raw = text_in(detail, "detail", key, limits::TRIGGER_ID)?
        .ok_or_else(|| error(format!("detail.{key}"), "is required"))?;
    TriggerId::parse(raw).map_err(|e| error(format!("detail.{key}"), e.reason))
}

fn subject(detail: &Value, key: &str) -> Result<Option<String>, EventError> {
    Ok(text_in(detail, "detail", key, limits::SUBJECT)?.map(str::to_owned))
}

// ---------------------------------------------------------------- canonical

fn from_canonical(kind: TriggerKind, detail: &Value) -> Result<CalendarEntry, EventError> {
    let start = timestamp(detail, "start")?;
    let end = timestamp(detail, "end")?;
    ordered(start, end)?;
    let show_as = match text(detail, "showAs")?
        .unwrap_or("busy")
        .to_ascii_lowercase()
        .as_str()
    {
        "free" => ShowAs::Free,
        "tentative" => ShowAs::Tentative,
        "busy" => ShowAs::Busy,
        "oof" | "outofoffice" | "out_of_office" => ShowAs::OutOfOffice,
        "workingelsewhere" | "working_elsewhere" => ShowAs::WorkingElsewhere,
        other => {
            return Err(error(
                "detail.showAs",
                format!(
                    "{} is not free, tentative, busy, oof or workingElsewhere",
                    preview(other)
                ),
            ));
        }
    };
    let response = match text(detail, "responseStatus")?
        .unwrap_or("none")
        .to_ascii_lowercase()
        .as_str()
    {
        "none" => Response::None,
        "organizer" => Response::Organizer,
        "accepted" => Response::Accepted,
        "tentative" | "tentativelyaccepted" => Response::Tentative,
        "declined" => Response::Declined,
        "notresponded" | "needsaction" => Response::NotResponded,
        other => {
            return Err(error(
                "detail.responseStatus",
                format!("{} is not a response status", preview(other)),
            ));
        }
    };
    let kind = match text(detail, "kind")?
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => kind,
        Some("meeting") => TriggerKind::Meeting,
        Some("focus") => TriggerKind::Focus,
        Some(other) => {
            return Err(error(
                "detail.kind",
                format!("{} is not meeting or focus", preview(other)),
            ));
        }
    };
    let times = (kind, start, end);
    with_common_fields(detail, "calendarEventId", times, show_as, response)
}

// ---------------------------------------------------------------- Microsoft Graph `event`

fn is_graph(detail: &Value) -> bool {
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
fn graph_time(detail: &Value, key: &str) -> Result<DateTime<Utc>, EventError> {
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

/// A zone by Windows name, IANA name or one of the names of UTC.
pub fn time_zone(name: &str) -> Option<chrono_tz::Tz> {
    use std::str::FromStr;
    if matches!(
        name,
        "UTC" | "Etc/UTC" | "Coordinated Universal Time" | "tzone://Microsoft/Utc"
    ) {
        return Some(chrono_tz::Tz::UTC);
    }
    if let Ok(windows) = windows_timezones::WindowsTimezone::from_str(name) {
        return Some(windows.into());
    }
    chrono_tz::Tz::from_str(name).ok()
}

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

fn from_graph(kind: TriggerKind, detail: &Value) -> Result<CalendarEntry, EventError> {
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

/// The entry from the fields the canonical and the Graph shapes name alike (owner, flags,
/// subject); only the id's key differs.
fn with_common_fields(
    detail: &Value,
    id_key: &str,
    (kind, start, end): (TriggerKind, DateTime<Utc>, DateTime<Utc>),
    show_as: ShowAs,
    response: Response,
) -> Result<CalendarEntry, EventError> {
    Ok(CalendarEntry {
        user: user_ref(detail, "userId", "userEmail")?,
        trigger_id: trigger_id(detail, id_key)?,
        kind,
        start,
        end,
        show_as,
        all_day: flag(detail, "isAllDay")?,
        cancelled: flag(detail, "isCancelled")?,
        response,
        subject: subject(detail, "subject")?,
    })
}

// ---------------------------------------------------------------- Google Calendar `Event`

fn google_time(detail: &Value, key: &str) -> Result<(DateTime<Utc>, bool), EventError> {
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
fn google_self_attendee(detail: &Value) -> Result<Option<(usize, &Value)>, EventError> {
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

fn from_google(detail: &Value) -> Result<CalendarEntry, EventError> {
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
    })
}

/// Whose calendar a Google event is in: named by the forwarder, else the attendee marked
/// `self`, the organizer marked `self`, or the creator.
fn google_owner(
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
fn google_response(me: Option<(usize, &Value)>) -> Result<Option<Response>, EventError> {
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
fn google_show_as(detail: &Value, event_type: &str) -> Result<(ShowAs, bool), EventError> {
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

// ---------------------------------------------------------------- Genesys presence

fn genesys_presence(detail: &Value) -> Result<PresenceObservation, EventError> {
    let topic = required(detail, "topicName")?;
    let user = topic
        .strip_prefix("v2.users.")
        .and_then(|rest| rest.strip_suffix(".presence"))
        .ok_or_else(|| {
            error(
                "detail.topicName",
                format!("{} is not v2.users.{{id}}.presence", preview(topic)),
            )
        })?;
    let user_id = UserId::parse(user).map_err(|e| error("detail.topicName", e.reason))?;
    let definition_id =
        PresenceDefinitionId::parse(required(detail, "eventBody.presenceDefinition.id")?)
            .map_err(|e| error("detail.eventBody.presenceDefinition.id", e.reason))?;
    let system_presence = SystemPresence::parse(
        text(detail, "eventBody.presenceDefinition.systemPresence")?.unwrap_or_default(),
    );
    let modified_date = timestamp(detail, "eventBody.modifiedDate")?;
    // The message is kept as sent (not trimmed): it is compared with what we wrote.
    let message = match detail.get("eventBody").and_then(|b| b.get("message")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(message)) if message.len() > limits::PRESENCE_MESSAGE => {
            return Err(too_long(
                "detail.eventBody.message",
                message,
                limits::PRESENCE_MESSAGE,
            ));
        }
        Some(Value::String(message)) => message.clone(),
        Some(other) => {
            return Err(error(
                "detail.eventBody.message",
                format!("must be a string, got {}", type_name(other)),
            ));
        }
    };
    Ok(PresenceObservation {
        user_id,
        snapshot: PresenceSnapshot {
            definition_id,
            system_presence,
            message,
            modified_date,
        },
        correlation_id: text(detail, "metadata.CorrelationId")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn calendar_entry(name: &str) -> (CalendarAction, CalendarEntry) {
        match parse_json(&fixture(name)).expect(name).event {
            InboundEvent::Calendar { action, entry } => (action, entry),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).expect("valid").to_utc()
    }

    #[test]
    fn canonical_start_and_end() {
        let (action, entry) = calendar_entry("calendar-event-started.json");
        assert_eq!(action, CalendarAction::Started);
        assert_eq!(entry.user.email.as_deref(), Some("ada@example.com"));
        assert_eq!(entry.trigger_id.as_str(), "AAMkAGI2TG93AAA=");
        assert_eq!(
            (entry.kind, entry.start, entry.end),
            (
                TriggerKind::Meeting,
                at("2026-03-19T14:00:00Z"),
                at("2026-03-19T14:30:00Z")
            )
        );
        assert_eq!(
            (entry.show_as, entry.response),
            (ShowAs::Busy, Response::Accepted)
        );
        assert_eq!(entry.subject.as_deref(), Some("Quarterly planning"));
        let (action, ended) = calendar_entry("calendar-event-ended.json");
        assert_eq!(
            (action, ended.trigger_id),
            (CalendarAction::Ended, entry.trigger_id)
        );
    }

    #[test]
    fn focus_events_are_focus_triggers() {
        let (action, entry) = calendar_entry("focus-started.json");
        assert_eq!(
            (action, entry.kind),
            (CalendarAction::Started, TriggerKind::Focus)
        );
        assert_eq!(
            entry.user.user_id.as_ref().map(UserId::as_str),
            Some("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f")
        );
        let (action, _) = calendar_entry("focus-ended.json");
        assert_eq!(action, CalendarAction::Ended);
    }

    #[test]
    fn graph_event_resource_is_normalised() {
        let (_, entry) = calendar_entry("graph-event-started.json");
        assert_eq!(entry.user.email.as_deref(), Some("ben@example.com"));
        assert_eq!(entry.trigger_id.as_str(), "AAMkAGIAAAoZDOFAAA=");
        assert_eq!(
            (entry.start, entry.end),
            (at("2026-03-19T14:00:00Z"), at("2026-03-19T14:30:00Z"))
        );
        assert_eq!(
            (entry.show_as, entry.response),
            (ShowAs::Busy, Response::Accepted)
        );
    }

    #[test]
    fn google_focus_time_is_a_focus_trigger_for_the_calendar_owner() {
        let (_, entry) = calendar_entry("google-focus-started.json");
        assert_eq!(entry.kind, TriggerKind::Focus);
        assert_eq!(entry.user.email.as_deref(), Some("cy@example.com"));
        assert_eq!(entry.start, at("2026-03-19T09:00:00Z"), "offset applied");
        assert_eq!(entry.response, Response::Organizer);
    }

    #[test]
    fn google_shapes_map_to_show_as_and_all_day() {
        let event = |extra: serde_json::Value| {
            let mut detail = serde_json::json!({
                "kind": "calendar#event", "id": "g1", "status": "confirmed",
                "start": {"date": "2026-03-19"}, "end": {"date": "2026-03-20"},
                "attendees": [{"email": "ada@example.com", "self": true, "responseStatus": "declined"}]
            });
            if let (Some(target), serde_json::Value::Object(extra)) =
                (detail.as_object_mut(), extra)
            {
                target.extend(extra);
            }
            from_google(&detail).expect("valid")
        };
        let plain = event(serde_json::json!({}));
        assert!(plain.all_day);
        assert_eq!(
            (plain.response, plain.show_as),
            (Response::Declined, ShowAs::Busy)
        );
        assert_eq!(
            event(serde_json::json!({"transparency": "transparent"})).show_as,
            ShowAs::Free
        );
        assert_eq!(
            event(serde_json::json!({"eventType": "outOfOffice"})).show_as,
            ShowAs::OutOfOffice
        );
        assert!(event(serde_json::json!({"status": "cancelled"})).cancelled);
    }

    #[test]
    fn genesys_presence_event_reads_the_user_from_the_topic() {
        let parsed = parse_json(&fixture("genesys-presence.json")).expect("valid");
        let InboundEvent::Presence(observation) = parsed.event else {
            panic!("presence event")
        };
        assert_eq!(parsed.event_id, "6efd5506-3fd6-09a1-5599-09ae48bd6dd8");
        assert_eq!(
            observation.user_id.as_str(),
            "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
        );
        assert_eq!(observation.snapshot.system_presence, SystemPresence::Busy);
        assert_eq!(observation.snapshot.message, "Helping a colleague");
        assert_eq!(
            observation.snapshot.modified_date,
            at("2026-03-19T14:10:48.120Z")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let with = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut event = base.clone();
            edit(&mut event);
            parse_json(&event.to_string()).expect_err("invalid").field
        };
        assert_eq!(
            parse_json(&fixture("malformed-missing-end.json"))
                .expect_err("no end")
                .field,
            "detail.end"
        );
        assert_eq!(
            with(&|e| e["detail"]["start"] = "yesterday".into()),
            "detail.start"
        );
        assert_eq!(
            with(&|e| e["detail"]["end"] = "2026-03-19T13:00:00Z".into()),
            "detail.end"
        );
        assert_eq!(
            with(&|e| e["detail-type"] = "Calendar Event Exploded".into()),
            "detail-type"
        );
        assert_eq!(
            with(&|e| {
                e["detail"].as_object_mut().map(|d| d.remove("userEmail"));
            }),
            "detail.userEmail"
        );
        assert_eq!(
            with(&|e| e["detail"]["userEmail"] = "not-an-email".into()),
            "detail.userEmail"
        );
        assert_eq!(
            with(&|e| e["detail"]["userId"] = "bob".into()),
            "detail.userId"
        );
        assert_eq!(
            with(&|e| e["detail"]["isAllDay"] = "yes".into()),
            "detail.isAllDay"
        );
        assert_eq!(
            with(&|e| e["detail"]["showAs"] = "sleepy".into()),
            "detail.showAs"
        );
        assert_eq!(
            with(&|e| {
                e.as_object_mut().map(|d| d.remove("id"));
            }),
            "id"
        );
        assert_eq!(
            with(&|e| {
                e.as_object_mut().map(|d| d.remove("detail-type"));
            }),
            "detail-type"
        );
        assert_eq!(with(&|e| e["detail"] = "text".into()), "detail");
        let graph: serde_json::Value =
            serde_json::from_str(&fixture("graph-event-started.json")).expect("json");
        let mut mars = graph.clone();
        mars["detail"]["start"]["timeZone"] = "Mars Standard Time".into();
        assert_eq!(
            parse_json(&mars.to_string()).expect_err("zone").field,
            "detail.start.timeZone"
        );
        assert_eq!(parse_json("not json").expect_err("garbage").field, "(body)");
    }

    #[test]
    fn wrong_types_and_unknown_values_are_refused_not_defaulted() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let refuse = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut event = base.clone();
            edit(&mut event);
            let error = parse_json(&event.to_string()).expect_err("refused");
            (error.field, error.reason)
        };
        assert_eq!(
            refuse(&|e| e["detail"]["showAs"] = 7.into()),
            (
                "detail.showAs".to_owned(),
                "must be a string, got a number".to_owned()
            )
        );
        assert_eq!(
            refuse(&|e| e["detail"]["showAs"] = "maybe".into()).0,
            "detail.showAs"
        );
        assert_eq!(
            refuse(&|e| e["id"] = 5.into()),
            ("id".to_owned(), "must be a string, got a number".to_owned())
        );
        assert_eq!(
            refuse(&|e| e["detail-type"] = serde_json::json!(["Focus Started"])).0,
            "detail-type"
        );
        assert_eq!(
            refuse(&|e| e["detail"]["subject"] = serde_json::json!({"text": "x"})).0,
            "detail.subject"
        );

        let graph: serde_json::Value =
            serde_json::from_str(&fixture("graph-event-started.json")).expect("json");
        let mut odd = graph.clone();
        odd["detail"]["showAs"] = "maybe".into();
        assert_eq!(
            parse_json(&odd.to_string()).expect_err("showAs").field,
            "detail.showAs"
        );
        let mut unknown = graph.clone();
        unknown["detail"]["showAs"] = "unknown".into();
        assert!(
            parse_json(&unknown.to_string()).is_ok(),
            "Graph's own `unknown` is accepted"
        );

        let google: serde_json::Value =
            serde_json::from_str(&fixture("google-focus-started.json")).expect("json");
        let mut ownerless = google.clone();
        for key in ["attendees", "organizer", "creator", "userEmail", "userId"] {
            ownerless["detail"].as_object_mut().map(|d| d.remove(key));
        }
        let error = parse_json(&ownerless.to_string()).expect_err("no owner");
        assert_eq!(error.field, "detail.attendees");
        assert!(!error.reason.contains("userEmail"), "{}", error.reason);
        let mut odd_type = google.clone();
        odd_type["detail"]["eventType"] = "lunch".into();
        assert_eq!(
            parse_json(&odd_type.to_string()).expect_err("type").field,
            "detail.eventType"
        );
    }

    #[test]
    fn echoed_values_are_cut_short() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let mut event = base.clone();
        event["detail"]["start"] = "y".repeat(200).into();
        let error = parse_json(&event.to_string()).expect_err("bad start");
        assert!(error.reason.len() < 150, "{}", error.reason);
        assert!(error.reason.contains("(200 bytes)"), "{}", error.reason);
    }

    #[test]
    fn graph_times_in_windows_and_iana_zones_are_dst_correct() {
        let cases = [
            // (zone, wall clock, UTC): either side of each zone's DST change in 2026.
            (
                "Pacific Standard Time",
                "2026-03-05T10:00:00.0000000",
                "2026-03-05T18:00:00Z",
            ),
            (
                "Pacific Standard Time",
                "2026-03-19T10:00:00.0000000",
                "2026-03-19T17:00:00Z",
            ),
            (
                "W. Europe Standard Time",
                "2026-03-28T12:00:00.0000000",
                "2026-03-28T11:00:00Z",
            ),
            (
                "W. Europe Standard Time",
                "2026-03-30T12:00:00.0000000",
                "2026-03-30T10:00:00Z",
            ),
            (
                "AUS Eastern Standard Time",
                "2026-01-15T09:00:00.0000000",
                "2026-01-14T22:00:00Z",
            ),
            (
                "AUS Eastern Standard Time",
                "2026-06-15T09:00:00.0000000",
                "2026-06-14T23:00:00Z",
            ),
            (
                "India Standard Time",
                "2026-06-15T09:00:00.1234567",
                "2026-06-15T03:30:00.1234567Z",
            ),
            (
                "Europe/Paris",
                "2026-07-01T09:00:00",
                "2026-07-01T07:00:00Z",
            ),
            ("UTC", "2026-07-01T09:00:00.0000000", "2026-07-01T09:00:00Z"),
            // 02:30 never happened on 8 March in Los Angeles: read with the offset before the gap.
            (
                "Pacific Standard Time",
                "2026-03-08T02:30:00.0000000",
                "2026-03-08T10:30:00Z",
            ),
            // 01:30 happened twice on 1 November: the earlier one (still PDT).
            (
                "Pacific Standard Time",
                "2026-11-01T01:30:00.0000000",
                "2026-11-01T08:30:00Z",
            ),
        ];
        let graph: serde_json::Value =
            serde_json::from_str(&fixture("graph-event-started.json")).expect("json");
        for (zone, wall, utc) in cases {
            let mut event = graph.clone();
            event["detail"]["start"] = serde_json::json!({"dateTime": wall, "timeZone": zone});
            event["detail"]["end"] =
                serde_json::json!({"dateTime": "2026-12-31T00:00:00.0000000", "timeZone": zone});
            let (_, entry) = match parse_json(&event.to_string()).expect(zone).event {
                InboundEvent::Calendar { action, entry } => (action, entry),
                other => panic!("{other:?}"),
            };
            assert_eq!(entry.start, at(utc), "{zone} {wall}");
        }
    }
}
