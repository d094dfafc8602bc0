//! Inbound events parsed into the domain: calendar and focus triggers (our canonical detail, a
//! Microsoft Graph `event`, a Google Calendar `Event`) and Genesys presence events. Every error
//! names the field that was wrong.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::{PresenceDefinitionId, PresenceSnapshot, SystemPresence, UserId, preview};
use crate::state::{TriggerId, TriggerKind};

pub(crate) mod fields;
mod presence;

use fields::*;
use presence::*;

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
    /// The calendar's time zone (`detail.timeZone`), for the times in messages when WFM gives
    /// none.
    pub zone: Option<chrono_tz::Tz>,
    /// The entry's categories (Outlook's `categories`; Google has none), for meeting rules.
    pub categories: Vec<String>,
    /// How many people besides the calendar's owner take part (rooms and other resources not
    /// counted); None: the calendar did not say.
    pub others: Option<u32>,
    /// The organiser's e-mail, lower-cased, for the staffing guard's exempt organisers.
    pub organizer: Option<String>,
}

impl CalendarEntry {
    /// The entry as our canonical `detail` (docs/events.md), for `user`; the subject only when
    /// asked for (a planned event is stored by EventBridge Scheduler until it fires).
    pub fn canonical_detail(&self, user: &UserId, with_subject: bool) -> Value {
        let owner = UserRef {
            user_id: Some(user.clone()),
            email: None,
        };
        self.canonical(&owner, with_subject, chrono::SecondsFormat::Secs)
    }

    /// The canonical `detail` naming `owner` by id and/or e-mail, times to `precision`.
    pub fn canonical(
        &self,
        owner: &UserRef,
        with_subject: bool,
        precision: chrono::SecondsFormat,
    ) -> Value {
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
            "calendarEventId": self.trigger_id.as_str(),
            "start": self.start.to_rfc3339_opts(precision, true),
            "end": self.end.to_rfc3339_opts(precision, true),
            "showAs": show_as,
            "isAllDay": self.all_day,
            "isCancelled": self.cancelled,
            "responseStatus": response,
            "kind": match self.kind { TriggerKind::Meeting => "meeting", TriggerKind::Focus => "focus" },
        });
        if let Some(user) = &owner.user_id {
            detail["userId"] = Value::String(user.to_string());
        }
        if let Some(email) = &owner.email {
            detail["userEmail"] = Value::String(email.clone());
        }
        if let (true, Some(subject)) = (with_subject, &self.subject) {
            detail["subject"] = Value::String(subject.clone());
        }
        if let Some(zone) = self.zone {
            detail["timeZone"] = Value::String(zone.name().to_owned());
        }
        if !self.categories.is_empty() {
            detail["categories"] = Value::from(self.categories.clone());
        }
        if let Some(others) = self.others {
            detail["otherAttendees"] = Value::from(others);
        }
        if let Some(organizer) = &self.organizer {
            detail["organizerEmail"] = Value::String(organizer.clone());
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
    /// Categories on one entry (Outlook shows a handful; more is not a person's labelling).
    pub const CATEGORIES: usize = 32;
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
    if let Some(unreadable) = detail.get("unreadable") {
        return Err(refusal(unreadable));
    }
    let entry = from_canonical(kind, detail)?;
    Ok(InboundEvent::Calendar { action, entry })
}

/// A calendar event its connector or ingress could not read travels as our canonical event with
/// `unreadable: {field, reason}`, so the planner records the refusal naming the same field.
fn refusal(unreadable: &Value) -> EventError {
    let field = text_in(unreadable, "detail.unreadable", "field", limits::SHORT);
    let reason = text_in(unreadable, "detail.unreadable", "reason", limits::SUBJECT);
    match (field, reason) {
        // Only a path into the detail: a sender cannot make the refusal name anything else.
        (Ok(Some(field)), Ok(Some(reason)))
            if field.starts_with("detail.") && !field.contains(char::is_whitespace) =>
        {
            error(field, crate::model::clipped(reason, 300))
        }
        (Ok(Some(_)), Ok(Some(_))) => error(
            "detail.unreadable.field",
            "must name a field of the event's detail",
        ),
        (Err(wrong), _) | (_, Err(wrong)) => wrong,
        _ => error("detail.unreadable", "must name a field and a reason"),
    }
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
    let mut entry = with_common_fields(detail, "calendarEventId", times, show_as, response)?;
    entry.others = count(detail, "otherAttendees")?;
    entry.organizer = email_at(detail, "detail", "organizerEmail")?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::event::from_google;

    /// What the domain parser makes of an event as it arrives: provider shapes (Graph, Google)
    /// through the ingress first, as the functions pass them.
    fn parse(raw: &str) -> Result<ParsedEvent, EventError> {
        parse_json(&crate::ingress::canonical_body(raw))
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A fixture as it reaches the domain parser: provider shapes through the ingress first.
    fn calendar_entry(name: &str) -> (CalendarAction, CalendarEntry) {
        let raw = fixture(name);
        match parse(&raw).expect(name).event {
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
        let parsed = parse(&fixture("genesys-presence.json")).expect("valid");
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
    fn an_unreadable_event_is_refused_naming_its_field_and_nothing_else() {
        let event = |field: &str, reason: &str| {
            serde_json::json!({
                "id": "e-1",
                "detail-type": "Calendar Event Upserted",
                "detail": {"userId": "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f",
                           "calendarEventId": "m-1",
                           "unreadable": {"field": field, "reason": reason}},
            })
            .to_string()
        };
        let refused = parse(&event("detail.start.timeZone", "unknown zone")).expect_err("refused");
        assert_eq!(
            (refused.field.as_str(), refused.reason.as_str()),
            ("detail.start.timeZone", "unknown zone")
        );
        let forged = parse(&event("id", "x")).expect_err("refused");
        assert_eq!(forged.field, "detail.unreadable.field");
        let long = parse(&event("detail.end", &"r".repeat(900))).expect_err("refused");
        assert!(long.reason.len() <= 310, "{}", long.reason.len());
    }

    #[test]
    fn errors_name_the_field() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let with = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut event = base.clone();
            edit(&mut event);
            parse(&event.to_string()).expect_err("invalid").field
        };
        assert_eq!(
            parse(&fixture("malformed-missing-end.json"))
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
            parse(&mars.to_string()).expect_err("zone").field,
            "detail.start.timeZone"
        );
        assert_eq!(parse("not json").expect_err("garbage").field, "(body)");
    }

    #[test]
    fn the_calendars_zone_is_read_by_iana_or_windows_name_and_kept_in_the_canonical_detail() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let zone_of = |name: &str| {
            let mut event = base.clone();
            event["detail"]["timeZone"] = name.into();
            parse(&event.to_string()).map(|parsed| match parsed.event {
                InboundEvent::Calendar { entry, .. } => entry,
                other => panic!("{other:?}"),
            })
        };
        let paris = zone_of("Europe/Paris").expect("IANA");
        assert_eq!(paris.zone, Some(chrono_tz::Tz::Europe__Paris));
        let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("id");
        assert_eq!(
            paris.canonical_detail(&user, false)["timeZone"],
            "Europe/Paris"
        );
        let windows = zone_of("W. Europe Standard Time").expect("Windows");
        assert_eq!(windows.zone, Some(chrono_tz::Tz::Europe__Berlin));
        let refused = zone_of("Mars/Olympus_Mons").expect_err("refused");
        assert_eq!(refused.field, "detail.timeZone", "{refused}");
        let (_, without) = calendar_entry("calendar-event-started.json");
        assert_eq!(without.zone, None, "no zone: the entry has none");
    }

    #[test]
    fn wrong_types_and_unknown_values_are_refused_not_defaulted() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let refuse = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut event = base.clone();
            edit(&mut event);
            let error = parse(&event.to_string()).expect_err("refused");
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
            parse(&odd.to_string()).expect_err("showAs").field,
            "detail.showAs"
        );
        let mut unknown = graph.clone();
        unknown["detail"]["showAs"] = "unknown".into();
        assert!(
            parse(&unknown.to_string()).is_ok(),
            "Graph's own `unknown` is accepted"
        );

        let google: serde_json::Value =
            serde_json::from_str(&fixture("google-focus-started.json")).expect("json");
        let mut ownerless = google.clone();
        for key in ["attendees", "organizer", "creator", "userEmail", "userId"] {
            ownerless["detail"].as_object_mut().map(|d| d.remove(key));
        }
        let error = parse(&ownerless.to_string()).expect_err("no owner");
        assert_eq!(error.field, "detail.attendees");
        assert!(!error.reason.contains("userEmail"), "{}", error.reason);
        let mut odd_type = google.clone();
        odd_type["detail"]["eventType"] = "lunch".into();
        assert_eq!(
            parse(&odd_type.to_string()).expect_err("type").field,
            "detail.eventType"
        );
    }

    #[test]
    fn echoed_values_are_cut_short() {
        let base: serde_json::Value =
            serde_json::from_str(&fixture("calendar-event-started.json")).expect("json");
        let mut event = base.clone();
        event["detail"]["start"] = "y".repeat(200).into();
        let error = parse(&event.to_string()).expect_err("bad start");
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
            let (_, entry) = match parse(&event.to_string()).expect(zone).event {
                InboundEvent::Calendar { action, entry } => (action, entry),
                other => panic!("{other:?}"),
            };
            assert_eq!(entry.start, at(utc), "{zone} {wall}");
        }
    }
}
