//! Events as `events.list` returns them: the Event resource JSON, the short form of cancelled
//! items, and the list of items a calendar shows with or without `singleEvents` expansion.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::calendar::{Calendar, Event, Instance};
use crate::model::{EventType, Fields, When};
use crate::state::{millis, seconds};

/// One entry of a calendar listing, with what filters and sync need.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub stamp: u64,
    pub moved: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub cancelled: bool,
    /// A cancelled occurrence of a live series (listed even without `showDeleted` when
    /// `singleEvents` is false).
    pub cancelled_occurrence: bool,
    pub event_type: EventType,
    pub summary: String,
    pub ical_uid: String,
    pub updated: DateTime<Utc>,
    pub body: Value,
}

impl Item {
    pub fn overlaps(&self, min: Option<DateTime<Utc>>, max: Option<DateTime<Utc>>) -> bool {
        min.is_none_or(|min| self.end > min) && max.is_none_or(|max| self.start < max)
    }
}

pub fn when(value: When) -> Value {
    match value {
        When::DateTime(at) => json!({"dateTime": seconds(at), "timeZone": "UTC"}),
        When::Date(day) => json!({"date": day.format("%Y-%m-%d").to_string()}),
    }
}

pub fn etag(stamp: u64) -> String {
    format!("\"{stamp}\"")
}

fn person(email: &str, owner: &str) -> Value {
    let mut person = json!({"email": email});
    if email.eq_ignore_ascii_case(owner) {
        person["self"] = json!(true);
    }
    person
}

/// Organizer first, then guests, then the owner (`self: true`); none for status events and for
/// an event the owner has to themself.
fn attendees(fields: &Fields, owner: &str) -> Option<Value> {
    let own_event = fields.organizer.eq_ignore_ascii_case(owner);
    if fields.event_type.is_status()
        || (own_event && fields.guests.is_empty() && fields.response == "accepted")
    {
        return None;
    }
    let mut list: Vec<Value> = Vec::new();
    let mut seen: Vec<String> = vec![owner.to_ascii_lowercase()];
    if !own_event {
        list.push(
            json!({"email": fields.organizer, "organizer": true, "responseStatus": "accepted"}),
        );
        seen.push(fields.organizer.to_ascii_lowercase());
    }
    for guest in &fields.guests {
        if !seen.contains(&guest.to_ascii_lowercase()) {
            seen.push(guest.to_ascii_lowercase());
            list.push(json!({"email": guest, "responseStatus": "needsAction"}));
        }
    }
    let mut me = json!({"email": owner, "self": true, "responseStatus": fields.response});
    if own_event {
        me["organizer"] = json!(true);
    }
    list.push(me);
    Some(Value::Array(list))
}

fn status_properties(event_type: EventType) -> Option<(&'static str, Value)> {
    match event_type {
        EventType::Default => None,
        EventType::FocusTime => Some((
            "focusTimeProperties",
            json!({"autoDeclineMode": "declineOnlyNewConflictingInvitations",
                   "chatStatus": "doNotDisturb",
                   "declineMessage": "Declined because I am in focus time."}),
        )),
        EventType::OutOfOffice => Some((
            "outOfOfficeProperties",
            json!({"autoDeclineMode": "declineAllConflictingInvitations",
                   "declineMessage": "Declined because I am out of office."}),
        )),
        EventType::WorkingLocation => Some((
            "workingLocationProperties",
            json!({"type": "homeOffice", "homeOffice": {}}),
        )),
    }
}

/// What a full Event resource is made of besides its fields.
struct Header<'a> {
    id: &'a str,
    ical_uid: &'a str,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    stamp: u64,
    sequence: u32,
}

fn full(owner: &str, header: &Header<'_>, fields: &Fields) -> Map<String, Value> {
    let eid =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{} {owner}", header.id));
    let mut body = Map::new();
    let mut put = |key: &str, value: Value| {
        body.insert(key.to_owned(), value);
    };
    put("kind", json!("calendar#event"));
    put("etag", json!(etag(header.stamp)));
    put("id", json!(header.id));
    put("status", json!(fields.status));
    put(
        "htmlLink",
        json!(format!("https://www.google.com/calendar/event?eid={eid}")),
    );
    put("created", json!(millis(header.created)));
    put("updated", json!(millis(header.updated)));
    put("summary", json!(fields.summary));
    put("creator", person(&fields.organizer, owner));
    put("organizer", person(&fields.organizer, owner));
    put("start", when(fields.start));
    put("end", when(fields.end));
    // Google leaves out the default values of these two.
    if fields.transparency != "opaque" {
        put("transparency", json!(fields.transparency));
    }
    if fields.visibility != "default" {
        put("visibility", json!(fields.visibility));
    }
    put("iCalUID", json!(header.ical_uid));
    put("sequence", json!(header.sequence));
    if let Some(list) = attendees(fields, owner) {
        put("attendees", list);
    }
    put(
        "reminders",
        json!({"useDefault": !fields.event_type.is_status()}),
    );
    put("eventType", json!(fields.event_type.as_str()));
    if let Some((key, properties)) = status_properties(fields.event_type) {
        put(key, properties);
    }
    body
}

/// A single event or a series master (with `recurrence`).
pub fn event(owner: &str, event: &Event) -> Value {
    let header = Header {
        id: &event.id,
        ical_uid: &event.ical_uid,
        created: event.created,
        updated: event.updated,
        stamp: event.stamp,
        sequence: event.sequence,
    };
    let mut body = full(owner, &header, &event.fields);
    if let Some(rule) = event.rule {
        body.insert("recurrence".to_owned(), json!([rule.rrule()]));
    }
    Value::Object(body)
}

/// One occurrence of a series (`recurringEventId`, `originalStartTime`).
pub fn instance(owner: &str, series: &Event, instance: &Instance) -> Value {
    let header = Header {
        id: &instance.id,
        ical_uid: &series.ical_uid,
        created: series.created,
        updated: instance.updated,
        stamp: instance.stamp,
        sequence: instance.sequence,
    };
    let mut body = full(owner, &header, &instance.fields);
    body.insert("recurringEventId".to_owned(), json!(series.id));
    body.insert("originalStartTime".to_owned(), when(instance.original));
    Value::Object(body)
}

/// A deleted event as incremental sync reports it: only `id` is guaranteed.
pub fn deleted(id: &str, stamp: u64) -> Value {
    json!({"kind": "calendar#event", "etag": etag(stamp), "id": id, "status": "cancelled"})
}

/// A cancelled occurrence of a live series: `id`, `recurringEventId`, `originalStartTime`.
pub fn cancelled_occurrence(series: &str, id: &str, original: When, stamp: u64) -> Value {
    json!({"kind": "calendar#event", "etag": etag(stamp), "id": id, "status": "cancelled",
           "recurringEventId": series, "originalStartTime": when(original)})
}

fn item(event: &Event, id: String, fields: &Fields, stamp: u64, body: Value) -> Item {
    Item {
        id,
        stamp,
        moved: event.moved,
        start: fields.start.instant(),
        end: fields.end.instant(),
        cancelled: false,
        cancelled_occurrence: false,
        event_type: fields.event_type,
        summary: fields.summary.clone(),
        ical_uid: event.ical_uid.clone(),
        updated: event.updated,
        body,
    }
}

/// A series' occurrences; cancelled ones short, vanished ones (series moved) as cancelled.
fn occurrences(owner: &str, event: &Event, only_exceptions: bool, out: &mut Vec<Item>) {
    for original in event.originals() {
        let occurrence = event.instance(original);
        if only_exceptions && !occurrence.exception {
            continue;
        }
        let exception_stamp = event.exceptions.get(&original).map(|x| x.stamp);
        let (stamp, body, short) = if event.cancelled {
            (
                occurrence.stamp,
                deleted(&occurrence.id, occurrence.stamp),
                true,
            )
        } else if occurrence.cancelled {
            let stamp = exception_stamp.unwrap_or(occurrence.stamp);
            let body = cancelled_occurrence(&event.id, &occurrence.id, original, stamp);
            (stamp, body, true)
        } else {
            let body = instance(owner, event, &occurrence);
            (occurrence.stamp, body, false)
        };
        let mut entry = item(
            event,
            occurrence.id.clone(),
            &occurrence.fields,
            stamp,
            body,
        );
        entry.moved = occurrence.moved;
        entry.updated = occurrence.updated;
        entry.cancelled = short;
        entry.cancelled_occurrence = short && !event.cancelled;
        out.push(entry);
    }
    for gone in &event.vanished {
        let id = event.instance_id(gone.original);
        let body = cancelled_occurrence(&event.id, &id, gone.original, gone.stamp);
        let mut entry = item(event, id, &event.fields, gone.stamp, body);
        let at = gone.original.instant();
        (entry.start, entry.end, entry.updated) = (at, at, gone.updated);
        entry.cancelled = true;
        entry.cancelled_occurrence = true;
        out.push(entry);
    }
}

/// Every item of the calendar: occurrences instead of masters when `single_events`, else
/// masters plus their exceptions. Cancelled ones included (filters decide).
pub fn items(calendar: &Calendar, single_events: bool) -> Vec<Item> {
    let owner = calendar.email.as_str();
    let mut out = Vec::new();
    for event in &calendar.events {
        if event.rule.is_some() && single_events {
            occurrences(owner, event, false, &mut out);
            continue;
        }
        let body = if event.cancelled {
            deleted(&event.id, event.stamp)
        } else {
            self::event(owner, event)
        };
        let mut entry = item(event, event.id.clone(), &event.fields, event.stamp, body);
        entry.cancelled = event.cancelled;
        if let Some(last) = event.originals().last() {
            // A master spans its whole series for timeMin/timeMax.
            let length = event.fields.end.instant() - event.fields.start.instant();
            entry.end = last.instant() + length;
        }
        out.push(entry);
        if event.rule.is_some() && !event.cancelled {
            occurrences(owner, event, true, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Freq, Patch, Rule};

    fn fields(owner: &str) -> Fields {
        let at = |t: &str| {
            When::DateTime(
                DateTime::parse_from_rfc3339(t)
                    .expect("a time")
                    .with_timezone(&Utc),
            )
        };
        Fields {
            summary: "sync".to_owned(),
            start: at("2030-01-15T09:00:00Z"),
            end: at("2030-01-15T09:30:00Z"),
            event_type: EventType::Default,
            transparency: "opaque".to_owned(),
            visibility: "default".to_owned(),
            status: "confirmed".to_owned(),
            organizer: "boss@example.com".to_owned(),
            guests: vec![owner.to_owned(), "peer@example.com".to_owned()],
            response: "needsAction".to_owned(),
        }
    }

    #[test]
    fn single_events_expands_with_one_edited_and_one_cancelled_occurrence() {
        let owner = "a@example.com";
        let now = Utc::now();
        let mut calendar = Calendar::new(owner);
        let rule = Rule {
            freq: Freq::Weekly,
            count: 3,
        };
        let id = calendar
            .create(Some("repeat01".to_owned()), fields(owner), Some(rule), now)
            .expect("created")
            .id
            .clone();
        let renamed = Patch {
            summary: Some("moved sync".to_owned()),
            ..Patch::default()
        };
        calendar
            .update(&format!("{id}_20300122T090000Z"), &renamed, now)
            .expect("edited");
        calendar
            .cancel(&format!("{id}_20300129T090000Z"), now)
            .expect("cancelled");

        let expanded = items(&calendar, true);
        let bodies: Vec<&Value> = expanded.iter().map(|i| &i.body).collect();
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[0]["summary"], "sync");
        assert_eq!(bodies[0]["recurringEventId"], "repeat01");
        assert_eq!(bodies[1]["summary"], "moved sync");
        assert_eq!(bodies[2]["status"], "cancelled");
        assert_eq!(
            bodies[2]["originalStartTime"]["dateTime"],
            "2030-01-29T09:00:00Z"
        );
        assert!(bodies[2].get("summary").is_none());
        let me = &bodies[0]["attendees"][2];
        assert_eq!(
            (me["self"].clone(), me["email"].clone()),
            (json!(true), json!(owner))
        );

        let masters = items(&calendar, false);
        assert_eq!(masters.len(), 3, "the master and its two exceptions");
        assert_eq!(
            masters[0].body["recurrence"],
            json!(["RRULE:FREQ=WEEKLY;COUNT=3"])
        );
    }
}
