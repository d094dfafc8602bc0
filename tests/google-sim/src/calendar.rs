//! Calendars and events as Google models them: single events and recurring series (a master
//! with `RRULE:FREQ=DAILY|WEEKLY;COUNT=n`) whose occurrences can be edited or cancelled one by
//! one (exceptions). Every change takes the calendar's next change stamp: it is the event's
//! etag and what sync tokens compare. Deleted events stay as `cancelled` so incremental sync can
//! report them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::model::{Fields, Patch, Rule, When};
use crate::state::random_base32hex;

#[derive(Debug, Clone)]
pub struct Exception {
    pub patch: Patch,
    pub cancelled: bool,
    pub stamp: u64,
    /// Stamp of the last change of its time.
    pub moved: u64,
    pub updated: DateTime<Utc>,
    pub sequence: u32,
}

/// An occurrence that stopped existing because its series was moved or shortened.
#[derive(Debug, Clone)]
pub struct Vanished {
    pub original: When,
    pub stamp: u64,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub ical_uid: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub fields: Fields,
    pub rule: Option<Rule>,
    /// Deleted (a whole series included).
    pub cancelled: bool,
    pub stamp: u64,
    pub moved: u64,
    /// iCalendar SEQUENCE: rises when the time changes.
    pub sequence: u32,
    /// Edited or cancelled occurrences, by original start.
    pub exceptions: BTreeMap<When, Exception>,
    pub vanished: Vec<Vanished>,
}

/// One occurrence of a series as it stands, or a single event.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub original: When,
    pub fields: Fields,
    pub cancelled: bool,
    pub stamp: u64,
    pub moved: u64,
    pub updated: DateTime<Utc>,
    pub sequence: u32,
    /// An edited (or cancelled) occurrence.
    pub exception: bool,
}

impl Event {
    /// Original starts of every occurrence (one for a single event).
    pub fn originals(&self) -> Vec<When> {
        let Some(rule) = self.rule else {
            return vec![self.fields.start];
        };
        (0..rule.count)
            .map(|n| {
                self.fields
                    .start
                    .shifted(rule.step() * i32::try_from(n).unwrap_or(0))
            })
            .collect()
    }

    pub fn instance_id(&self, original: When) -> String {
        format!("{}_{}", self.id, original.suffix())
    }

    /// The occurrence that started at `original`, exception applied.
    pub fn instance(&self, original: When) -> Instance {
        let shift = original.instant() - self.fields.start.instant();
        let mut fields = self.fields.clone();
        fields.start = original;
        fields.end = self.fields.end.shifted(shift);
        let mut instance = Instance {
            id: self.instance_id(original),
            original,
            fields,
            cancelled: self.cancelled,
            stamp: self.stamp,
            moved: self.moved,
            updated: self.updated,
            sequence: self.sequence,
            exception: false,
        };
        if let Some(exception) = self.exceptions.get(&original) {
            instance.fields.apply(&exception.patch);
            instance.cancelled |= exception.cancelled;
            instance.stamp = instance.stamp.max(exception.stamp);
            instance.moved = instance.moved.max(exception.moved);
            instance.updated = instance.updated.max(exception.updated);
            instance.sequence = instance.sequence.max(exception.sequence);
            instance.exception = true;
        }
        instance
    }

    /// The original start whose instance id is `id`, if the series has it.
    fn original_of(&self, id: &str) -> Option<When> {
        self.originals()
            .into_iter()
            .find(|&original| self.instance_id(original) == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    NotFound,
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct Calendar {
    pub email: String,
    /// Opaque, stable id of the watched collection (`X-Goog-Resource-ID`).
    pub resource_id: String,
    /// The last change stamp handed out.
    pub stamp: u64,
    pub events: Vec<Event>,
}

/// Checks start/end of one event: same kind, end not before start.
pub fn check_times(start: When, end: When) -> Result<(), EditError> {
    if start.is_date() != end.is_date() {
        return Err(EditError::Invalid(
            "start/end: both dateTime or both date".to_owned(),
        ));
    }
    if end.instant() < start.instant() {
        return Err(EditError::Invalid(
            "end: must not be before start".to_owned(),
        ));
    }
    Ok(())
}

/// A patch that moves only `start` keeps the duration (`from` is the current span).
fn keep_duration(patch: &mut Patch, from: (When, When)) {
    if let (Some(start), None) = (patch.start, patch.end) {
        let length = from.1.instant() - from.0.instant();
        patch.end = Some(start.shifted(length));
    }
}

impl Calendar {
    pub fn new(email: &str) -> Self {
        Self {
            email: email.to_ascii_lowercase(),
            resource_id: crate::state::resource_id(email),
            stamp: 0,
            events: Vec::new(),
        }
    }

    /// The next change stamp: microseconds of `now`, strictly rising (etag and sync order).
    fn next_stamp(&mut self, now: DateTime<Utc>) -> u64 {
        let micros = u64::try_from(now.timestamp_micros()).unwrap_or(0);
        self.stamp = micros.max(self.stamp + 1);
        self.stamp
    }

    pub fn event(&self, id: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.id == id)
    }

    /// Adds an event; `id` must be new and base32hex (a–v, 0–9), 5–1024 characters.
    pub fn create(
        &mut self,
        id: Option<String>,
        fields: Fields,
        rule: Option<Rule>,
        now: DateTime<Utc>,
    ) -> Result<&Event, EditError> {
        check_times(fields.start, fields.end)?;
        let id = id.unwrap_or_else(|| random_base32hex(26));
        let valid = (5..=1024).contains(&id.len())
            && id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9'));
        if !valid {
            return Err(EditError::Invalid(
                "id: 5–1024 characters of a–v and 0–9 (base32hex)".to_owned(),
            ));
        }
        if self.event(&id).is_some() {
            return Err(EditError::Invalid(format!("id: {id} already exists")));
        }
        let stamp = self.next_stamp(now);
        self.events.push(Event {
            ical_uid: format!("{id}@google.com"),
            id,
            created: now,
            updated: now,
            fields,
            rule,
            cancelled: false,
            stamp,
            moved: stamp,
            sequence: 0,
            exceptions: BTreeMap::new(),
            vanished: Vec::new(),
        });
        let index = self.events.len() - 1;
        Ok(&self.events[index])
    }

    /// Finds a live event or occurrence: `(index, None)` for an event or series master,
    /// `(index, Some(original))` for an occurrence id `{seriesId}_{suffix}`.
    fn locate(&self, id: &str) -> Result<(usize, Option<When>), EditError> {
        let live = |e: &Event| !e.cancelled;
        if let Some(index) = self.events.iter().position(|e| e.id == id && live(e)) {
            return Ok((index, None));
        }
        let (series, _) = id.rsplit_once('_').ok_or(EditError::NotFound)?;
        let index = self
            .events
            .iter()
            .position(|e| e.id == series && live(e) && e.rule.is_some())
            .ok_or(EditError::NotFound)?;
        let original = self.events[index]
            .original_of(id)
            .ok_or(EditError::NotFound)?;
        let cancelled = self.events[index]
            .exceptions
            .get(&original)
            .is_some_and(|x| x.cancelled);
        if cancelled {
            return Err(EditError::NotFound);
        }
        Ok((index, Some(original)))
    }

    /// Edits an event, a whole series, or one occurrence (which becomes an exception).
    pub fn update(&mut self, id: &str, patch: &Patch, now: DateTime<Utc>) -> Result<(), EditError> {
        let (index, original) = self.locate(id)?;
        match original {
            None => self.update_event(index, patch, now),
            Some(original) => self.update_occurrence(index, original, patch, false, now),
        }
    }

    fn update_event(
        &mut self,
        index: usize,
        patch: &Patch,
        now: DateTime<Utc>,
    ) -> Result<(), EditError> {
        let event = &self.events[index];
        if patch.rule.is_some() && event.rule.is_none() {
            return Err(EditError::Invalid(
                "recurrence: only a series can change its rule".to_owned(),
            ));
        }
        let mut patch = patch.clone();
        keep_duration(&mut patch, (event.fields.start, event.fields.end));
        let mut fields = event.fields.clone();
        fields.apply(&patch);
        check_times(fields.start, fields.end)?;
        let before = event.originals();
        let stamp = self.next_stamp(now);
        let event = &mut self.events[index];
        event.fields = fields;
        if let Some(rule) = patch.rule {
            event.rule = Some(rule);
        }
        event.stamp = stamp;
        event.updated = now;
        if patch.moves() {
            event.moved = stamp;
            event.sequence += 1;
        }
        // Occurrences that no longer exist (series moved or shortened) leave as cancelled.
        let after = event.originals();
        for gone in before.into_iter().filter(|o| !after.contains(o)) {
            event.exceptions.remove(&gone);
            if event.rule.is_some() {
                event.vanished.push(Vanished {
                    original: gone,
                    stamp,
                    updated: now,
                });
            }
        }
        Ok(())
    }

    fn update_occurrence(
        &mut self,
        index: usize,
        original: When,
        patch: &Patch,
        cancel: bool,
        now: DateTime<Utc>,
    ) -> Result<(), EditError> {
        if patch.rule.is_some() {
            return Err(EditError::Invalid(
                "recurrence: an occurrence has no rule of its own".to_owned(),
            ));
        }
        let current = self.events[index].instance(original);
        let mut patch = patch.clone();
        keep_duration(&mut patch, (current.fields.start, current.fields.end));
        let mut fields = current.fields.clone();
        fields.apply(&patch);
        check_times(fields.start, fields.end)?;
        let stamp = self.next_stamp(now);
        let exception = self.events[index]
            .exceptions
            .entry(original)
            .or_insert_with(|| Exception {
                patch: Patch::default(),
                cancelled: false,
                stamp,
                moved: 0,
                updated: now,
                sequence: 0,
            });
        exception.patch.merge(&patch);
        exception.cancelled |= cancel;
        exception.stamp = stamp;
        exception.updated = now;
        if patch.moves() {
            exception.moved = stamp;
            exception.sequence += 1;
        }
        Ok(())
    }

    /// Deletes an event or a whole series (status `cancelled`), or cancels one occurrence.
    pub fn cancel(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), EditError> {
        let (index, original) = self.locate(id)?;
        if let Some(original) = original {
            return self.update_occurrence(index, original, &Patch::default(), true, now);
        }
        let stamp = self.next_stamp(now);
        let event = &mut self.events[index];
        event.cancelled = true;
        event.stamp = stamp;
        event.updated = now;
        Ok(())
    }

    /// The owner declines an event, a series, or one occurrence.
    pub fn decline(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), EditError> {
        let (index, _) = self.locate(id)?;
        if self.events[index].fields.event_type.is_status() {
            return Err(EditError::Invalid(
                "a focus time, out-of-office or working-location event has no invitation to decline"
                    .to_owned(),
            ));
        }
        let patch = Patch {
            response: Some("declined".to_owned()),
            ..Patch::default()
        };
        self.update(id, &patch, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventType, Freq};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a valid time")
            .with_timezone(&Utc)
    }

    fn fields(start: &str, end: &str) -> Fields {
        Fields {
            summary: "standup".to_owned(),
            start: When::DateTime(at(start)),
            end: When::DateTime(at(end)),
            event_type: EventType::Default,
            transparency: "opaque".to_owned(),
            visibility: "default".to_owned(),
            status: "confirmed".to_owned(),
            organizer: "a@example.com".to_owned(),
            guests: Vec::new(),
            response: "accepted".to_owned(),
        }
    }

    fn series(calendar: &mut Calendar, now: DateTime<Utc>) -> String {
        let rule = Rule {
            freq: Freq::Daily,
            count: 3,
        };
        let created = calendar
            .create(
                Some("series0001".to_owned()),
                fields("2030-01-15T09:00:00Z", "2030-01-15T09:15:00Z"),
                Some(rule),
                now,
            )
            .expect("created");
        created.id.clone()
    }

    #[test]
    fn occurrences_have_ids_from_their_original_utc_start() {
        let mut calendar = Calendar::new("a@example.com");
        let id = series(&mut calendar, at("2030-01-01T00:00:00Z"));
        let event = calendar.event(&id).expect("stored");
        let ids: Vec<String> = event
            .originals()
            .into_iter()
            .map(|o| event.instance_id(o))
            .collect();
        assert_eq!(
            ids,
            [
                "series0001_20300115T090000Z",
                "series0001_20300116T090000Z",
                "series0001_20300117T090000Z"
            ]
        );
    }

    #[test]
    fn an_edited_occurrence_keeps_its_id_and_shows_its_edit() {
        let now = at("2030-01-01T00:00:00Z");
        let mut calendar = Calendar::new("a@example.com");
        let id = series(&mut calendar, now);
        let moved = Patch {
            start: Some(When::DateTime(at("2030-01-16T11:00:00Z"))),
            ..Patch::default()
        };
        calendar
            .update("series0001_20300116T090000Z", &moved, now)
            .expect("edited");
        let event = calendar.event(&id).expect("stored");
        let second = event.instance(event.originals()[1]);
        assert_eq!(second.id, "series0001_20300116T090000Z");
        assert!(second.exception);
        assert_eq!(
            second.fields.end,
            When::DateTime(at("2030-01-16T11:15:00Z"))
        );
        assert!(second.stamp > event.stamp, "only the occurrence changed");
        assert_eq!(event.instance(event.originals()[0]).stamp, event.stamp);
    }

    #[test]
    fn stamps_rise_even_when_the_clock_stands_still() {
        let now = at("2030-01-01T00:00:00Z");
        let mut calendar = Calendar::new("a@example.com");
        let id = series(&mut calendar, now);
        let first = calendar.stamp;
        calendar
            .cancel(&format!("{id}_20300115T090000Z"), now)
            .expect("cancelled");
        assert!(calendar.stamp > first);
        assert_eq!(
            calendar.cancel(&format!("{id}_20300115T090000Z"), now),
            Err(EditError::NotFound),
            "a cancelled occurrence cannot be cancelled again"
        );
    }

    #[test]
    fn moving_a_series_retires_the_old_occurrences() {
        let now = at("2030-01-01T00:00:00Z");
        let mut calendar = Calendar::new("a@example.com");
        let id = series(&mut calendar, now);
        let moved = Patch {
            start: Some(When::DateTime(at("2030-01-15T10:00:00Z"))),
            ..Patch::default()
        };
        calendar.update(&id, &moved, now).expect("moved");
        let event = calendar.event(&id).expect("stored");
        assert_eq!(event.vanished.len(), 3);
        assert_eq!(event.fields.end, When::DateTime(at("2030-01-15T10:15:00Z")));
    }
}
