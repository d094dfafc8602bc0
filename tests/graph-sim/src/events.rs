//! Calendar events as Graph models them, one [`Mailbox`] per user, and the changes "someone
//! else" makes through the control surface. Every change stamps the touched events with the
//! mailbox's next change sequence number; deleted events stay as tombstones so a delta round can
//! report them as `@removed`.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::state::{graph_time, random_token};

pub const SHOW_AS: [&str; 6] = [
    "free",
    "tentative",
    "busy",
    "oof",
    "workingElsewhere",
    "unknown",
];
pub const RESPONSES: [&str; 6] = [
    "none",
    "organizer",
    "tentativelyAccepted",
    "accepted",
    "declined",
    "notResponded",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    SingleInstance,
    Occurrence,
    Exception,
    SeriesMaster,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleInstance => "singleInstance",
            Self::Occurrence => "occurrence",
            Self::Exception => "exception",
            Self::SeriesMaster => "seriesMaster",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organizer {
    pub name: String,
    pub address: String,
}

/// Everything a new event needs (control `POST .../events` and `.../series`).
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub show_as: String,
    pub is_all_day: bool,
    pub response: String,
    pub is_organizer: bool,
    pub organizer: Organizer,
}

/// The fields a control `PATCH` may change.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    pub subject: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub show_as: Option<String>,
    pub is_all_day: Option<bool>,
    pub response: Option<String>,
    pub is_organizer: Option<bool>,
    pub organizer: Option<Organizer>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub change_key: String,
    pub ical_uid: String,
    pub subject: String,
    pub is_all_day: bool,
    pub is_cancelled: bool,
    pub is_organizer: bool,
    pub show_as: String,
    pub event_type: EventType,
    pub series_master_id: Option<String>,
    pub response: String,
    pub response_time: Option<DateTime<Utc>>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub organizer: Organizer,
    /// The mailbox change sequence of the last change to this event.
    pub seq: u64,
    /// Deleted, or an occurrence cancelled out of its series: a tombstone.
    pub deleted: bool,
}

/// The zone `start`/`end` are rendered in (`Prefer: outlook.timezone`).
#[derive(Debug, Clone)]
pub struct Zone {
    /// Echoed in `timeZone` as the client spelled it.
    pub name: String,
    pub tz: Tz,
}

impl Zone {
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            tz: Tz::UTC,
        }
    }

    /// An IANA name (`Europe/Berlin`) or a Windows name (`Pacific Standard Time`).
    pub fn parse(name: &str) -> Option<Self> {
        let tz = name.parse::<Tz>().ok().or_else(|| {
            name.parse::<windows_timezones::WindowsTimezone>()
                .ok()
                .map(Tz::from)
        })?;
        Some(Self {
            name: name.to_owned(),
            tz,
        })
    }

    fn date_time(&self, at: DateTime<Utc>) -> Value {
        let local = at.with_timezone(&self.tz);
        let ticks = at.timestamp_subsec_nanos() % 1_000_000_000 / 100;
        json!({
            "dateTime": format!("{}.{ticks:07}", local.format("%Y-%m-%dT%H:%M:%S")),
            "timeZone": self.name,
        })
    }
}

impl Event {
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.change_key)
    }

    /// In a calendarView of `[start, end)`: not deleted, not a series master, overlapping.
    pub fn in_view(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let overlaps = if self.start == self.end {
            self.start >= start && self.start < end
        } else {
            self.start < end && self.end > start
        };
        !self.deleted && self.event_type != EventType::SeriesMaster && overlaps
    }

    /// The event as Graph returns it.
    pub fn render(&self, zone: &Zone) -> Value {
        let response_time = self
            .response_time
            .map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), graph_time);
        json!({
            "@odata.etag": self.etag(),
            "id": self.id,
            "createdDateTime": graph_time(self.created),
            "lastModifiedDateTime": graph_time(self.last_modified),
            "changeKey": self.change_key,
            "iCalUId": self.ical_uid,
            "subject": self.subject,
            "isAllDay": self.is_all_day,
            "isCancelled": self.is_cancelled,
            "isOrganizer": self.is_organizer,
            "showAs": self.show_as,
            "sensitivity": "normal",
            "type": self.event_type.as_str(),
            "seriesMasterId": self.series_master_id,
            "originalStartTimeZone": "UTC",
            "originalEndTimeZone": "UTC",
            "responseStatus": {"response": self.response, "time": response_time},
            "start": zone.date_time(self.start),
            "end": zone.date_time(self.end),
            "organizer": {"emailAddress": {
                "name": self.organizer.name,
                "address": self.organizer.address,
            }},
        })
    }
}

/// The delta entry for an event that left the view.
pub fn removed(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
}

/// What a change did, for the change notification: the id a `users/{id}/events` subscriber
/// knows (the series master for any change inside a series).
#[derive(Debug, Clone)]
pub struct Change {
    pub event_id: String,
    pub change_type: ChangeType,
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    NotFound,
    Invalid(String),
}

#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    /// Monotonic change sequence; the last number handed to a change.
    pub seq: u64,
    /// Every event ever created, tombstones included, in creation order.
    pub events: Vec<Event>,
}

fn new_event_id() -> String {
    format!("AAMkAD{}AAA=", random_token(2))
}

fn new_change_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}

fn new_ical_uid() -> String {
    format!(
        "040000008200E00074C5B7101A82E00800000000{}",
        uuid::Uuid::new_v4().simple().to_string().to_uppercase()
    )
}

impl Event {
    fn from_spec(spec: &EventSpec, event_type: EventType, seq: u64, now: DateTime<Utc>) -> Self {
        Self {
            id: new_event_id(),
            created: now,
            last_modified: now,
            change_key: new_change_key(),
            ical_uid: new_ical_uid(),
            subject: spec.subject.clone(),
            is_all_day: spec.is_all_day,
            is_cancelled: false,
            is_organizer: spec.is_organizer,
            show_as: spec.show_as.clone(),
            event_type,
            series_master_id: None,
            response: spec.response.clone(),
            response_time: None,
            start: spec.start,
            end: spec.end,
            organizer: spec.organizer.clone(),
            seq,
            deleted: false,
        }
    }

    fn touch(&mut self, seq: u64, now: DateTime<Utc>) {
        self.seq = seq;
        self.last_modified = now;
        self.change_key = new_change_key();
    }

    /// Applies the non-time fields of `patch`.
    fn apply_fields(&mut self, patch: &EventPatch, now: DateTime<Utc>) {
        if let Some(subject) = &patch.subject {
            self.subject.clone_from(subject);
        }
        if let Some(show_as) = &patch.show_as {
            self.show_as.clone_from(show_as);
        }
        if let Some(all_day) = patch.is_all_day {
            self.is_all_day = all_day;
        }
        if let Some(response) = &patch.response {
            self.response.clone_from(response);
            self.response_time = Some(now);
        }
        if let Some(is_organizer) = patch.is_organizer {
            self.is_organizer = is_organizer;
        }
        if let Some(organizer) = &patch.organizer {
            self.organizer = organizer.clone();
        }
    }
}

impl Mailbox {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn index(&self, id: &str) -> Result<usize, EditError> {
        self.events
            .iter()
            .position(|e| e.id == id && !e.deleted)
            .ok_or(EditError::NotFound)
    }

    /// A live (not deleted) event.
    pub fn get(&self, id: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.id == id && !e.deleted)
    }

    /// Indices of the live instances (occurrences and exceptions) of a series.
    fn members(&self, master_id: &str) -> Vec<usize> {
        (0..self.events.len())
            .filter(|&i| {
                let e = &self.events[i];
                !e.deleted && e.series_master_id.as_deref() == Some(master_id)
            })
            .collect()
    }

    /// The change to notify about after touching `self.events[index]`.
    fn change_for(&self, index: usize, change_type: ChangeType) -> Change {
        let event = &self.events[index];
        let (notified, change_type) = match &event.series_master_id {
            Some(master) => (
                self.events
                    .iter()
                    .find(|e| &e.id == master)
                    .unwrap_or(event),
                ChangeType::Updated,
            ),
            None => (event, change_type),
        };
        Change {
            event_id: notified.id.clone(),
            change_type,
            etag: notified.etag(),
        }
    }

    pub fn create(&mut self, spec: &EventSpec, now: DateTime<Utc>) -> (Event, Change) {
        let seq = self.next_seq();
        let event = Event::from_spec(spec, EventType::SingleInstance, seq, now);
        self.events.push(event.clone());
        let change = self.change_for(self.events.len() - 1, ChangeType::Created);
        (event, change)
    }

    /// A daily-style series: `count` occurrences `interval_days` apart, starting at `spec`.
    pub fn create_series(
        &mut self,
        spec: &EventSpec,
        count: u32,
        interval_days: u32,
        now: DateTime<Utc>,
    ) -> (Event, Vec<Event>, Change) {
        let seq = self.next_seq();
        let master = Event::from_spec(spec, EventType::SeriesMaster, seq, now);
        let occurrences: Vec<Event> = (0..count)
            .map(|n| {
                let shift = Duration::days(i64::from(n) * i64::from(interval_days));
                let mut occurrence = Event::from_spec(spec, EventType::Occurrence, seq, now);
                occurrence.start = spec.start + shift;
                occurrence.end = spec.end + shift;
                occurrence.series_master_id = Some(master.id.clone());
                occurrence
            })
            .collect();
        let change = Change {
            event_id: master.id.clone(),
            change_type: ChangeType::Created,
            etag: master.etag(),
        };
        self.events.push(master.clone());
        self.events.extend(occurrences.iter().cloned());
        (master, occurrences, change)
    }

    /// Changes an event. On a series master, the fields apply to every instance and a new
    /// start/end moves every (unmodified) occurrence by the same amount; on an occurrence, any
    /// change turns it into an `exception`.
    pub fn update(
        &mut self,
        id: &str,
        patch: &EventPatch,
        now: DateTime<Utc>,
    ) -> Result<(Event, Change), EditError> {
        let index = self.index(id)?;
        let old = self.events[index].clone();
        let start = patch.start.unwrap_or(old.start);
        let end = patch.end.unwrap_or(old.end);
        if end < start {
            return Err(EditError::Invalid(
                "end: must not be before start".to_owned(),
            ));
        }
        let seq = self.next_seq();
        if old.event_type == EventType::SeriesMaster {
            let shift = start - old.start;
            let length = end - start;
            for member in self.members(id) {
                let instance = &mut self.events[member];
                instance.apply_fields(patch, now);
                if instance.event_type == EventType::Occurrence {
                    instance.start += shift;
                    instance.end = instance.start + length;
                }
                instance.touch(seq, now);
            }
        }
        let event = &mut self.events[index];
        event.apply_fields(patch, now);
        event.start = start;
        event.end = end;
        if event.event_type == EventType::Occurrence {
            event.event_type = EventType::Exception;
        }
        event.touch(seq, now);
        let event = event.clone();
        Ok((event, self.change_for(index, ChangeType::Updated)))
    }

    /// The organizer cancelled: a single meeting (or a whole series) stays with
    /// `isCancelled: true`; one instance of a series leaves the view.
    pub fn cancel(&mut self, id: &str, now: DateTime<Utc>) -> Result<(Event, Change), EditError> {
        let index = self.index(id)?;
        let seq = self.next_seq();
        let event_type = self.events[index].event_type;
        match event_type {
            EventType::Occurrence | EventType::Exception => {
                let event = &mut self.events[index];
                event.is_cancelled = true;
                event.deleted = true;
                event.touch(seq, now);
            }
            EventType::SeriesMaster | EventType::SingleInstance => {
                let mut targets = self.members(id);
                targets.push(index);
                for target in targets {
                    let event = &mut self.events[target];
                    event.is_cancelled = true;
                    event.touch(seq, now);
                }
            }
        }
        let event = self.events[index].clone();
        Ok((event, self.change_for(index, ChangeType::Updated)))
    }

    /// The user declined (a series master: every instance).
    pub fn decline(&mut self, id: &str, now: DateTime<Utc>) -> Result<(Event, Change), EditError> {
        let patch = EventPatch {
            response: Some("declined".to_owned()),
            ..EventPatch::default()
        };
        let index = self.index(id)?;
        let seq = self.next_seq();
        let mut targets = self.members(id);
        targets.push(index);
        for target in targets {
            let event = &mut self.events[target];
            event.apply_fields(&patch, now);
            event.touch(seq, now);
        }
        let event = self.events[index].clone();
        Ok((event, self.change_for(index, ChangeType::Updated)))
    }

    /// Deletes an event (a series master: with all its instances), leaving tombstones.
    pub fn delete(&mut self, id: &str, now: DateTime<Utc>) -> Result<Change, EditError> {
        let index = self.index(id)?;
        let seq = self.next_seq();
        let mut targets = self.members(id);
        targets.push(index);
        for target in targets {
            let event = &mut self.events[target];
            event.deleted = true;
            event.touch(seq, now);
        }
        Ok(self.change_for(index, ChangeType::Deleted))
    }
}
