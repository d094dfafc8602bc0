//! The values an event is made of: start/end (`dateTime` or all-day `date`), event type,
//! recurrence rule, the fields as the owner's calendar shows them, and a patch of them.

use chrono::{DateTime, Duration, NaiveDate, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum When {
    DateTime(DateTime<Utc>),
    /// All-day; the calendar's zone is UTC, so the day starts at 00:00Z.
    Date(NaiveDate),
}

impl When {
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            Self::DateTime(at) => at,
            Self::Date(day) => day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        }
    }

    pub fn is_date(self) -> bool {
        matches!(self, Self::Date(_))
    }

    /// The same wall time `by` later (whole days for all-day values).
    pub fn shifted(self, by: Duration) -> Self {
        match self {
            Self::DateTime(at) => Self::DateTime(at + by),
            Self::Date(day) => Self::Date(day + Duration::days(by.num_days())),
        }
    }

    /// The suffix of an instance id: `20260319T090000Z`, or `20260319` for all-day.
    pub fn suffix(self) -> String {
        match self {
            Self::DateTime(at) => at.format("%Y%m%dT%H%M%SZ").to_string(),
            Self::Date(day) => day.format("%Y%m%d").to_string(),
        }
    }

    /// RFC 3339 (`dateTime`) or `YYYY-MM-DD` (`date`).
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::DateTime(at.with_timezone(&Utc)));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(Self::Date)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Default,
    FocusTime,
    OutOfOffice,
    WorkingLocation,
}

impl EventType {
    pub const ALL: [&'static str; 4] = ["default", "focusTime", "outOfOffice", "workingLocation"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::FocusTime => "focusTime",
            Self::OutOfOffice => "outOfOffice",
            Self::WorkingLocation => "workingLocation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "default" => Some(Self::Default),
            "focusTime" => Some(Self::FocusTime),
            "outOfOffice" => Some(Self::OutOfOffice),
            "workingLocation" => Some(Self::WorkingLocation),
            _ => None,
        }
    }

    /// Status events belong to the owner alone: no guests, no responses.
    pub fn is_status(self) -> bool {
        self != Self::Default
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub freq: Freq,
    pub count: u32,
}

impl Rule {
    pub fn step(self) -> Duration {
        match self.freq {
            Freq::Daily => Duration::days(1),
            Freq::Weekly => Duration::days(7),
        }
    }

    pub fn rrule(self) -> String {
        let freq = match self.freq {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
        };
        format!("RRULE:FREQ={freq};COUNT={}", self.count)
    }
}

/// What an event says, as the owner's calendar sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    pub summary: String,
    pub start: When,
    pub end: When,
    pub event_type: EventType,
    pub transparency: String,
    pub visibility: String,
    /// `confirmed` or `tentative`; cancellation is tracked apart.
    pub status: String,
    pub organizer: String,
    /// Guests besides the organizer and the owner.
    pub guests: Vec<String>,
    /// The owner's `responseStatus`.
    pub response: String,
}

/// The fields a control change may set; `None` keeps the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub summary: Option<String>,
    pub start: Option<When>,
    pub end: Option<When>,
    pub event_type: Option<EventType>,
    pub transparency: Option<String>,
    pub visibility: Option<String>,
    pub status: Option<String>,
    pub organizer: Option<String>,
    pub guests: Option<Vec<String>>,
    pub response: Option<String>,
    /// Series only: a new rule.
    pub rule: Option<Rule>,
}

impl Patch {
    pub(crate) fn moves(&self) -> bool {
        self.start.is_some() || self.end.is_some() || self.rule.is_some()
    }

    /// Later values win; an exception accumulates every edit made to it.
    pub(crate) fn merge(&mut self, later: &Patch) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if later.$field.is_some() {
                    self.$field.clone_from(&later.$field);
                }
            )*};
        }
        take!(
            summary,
            start,
            end,
            event_type,
            transparency,
            visibility,
            status,
            organizer,
            guests,
            response
        );
    }
}

impl Fields {
    pub fn apply(&mut self, patch: &Patch) {
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = &patch.$field {
                    self.$field.clone_from(value);
                }
            )*};
        }
        set!(
            summary,
            start,
            end,
            transparency,
            visibility,
            status,
            organizer,
            guests,
            response
        );
        if let Some(event_type) = patch.event_type {
            self.event_type = event_type;
        }
    }

    /// Overlaps `[min, max)`: end after min and start before max (events.list semantics).
    pub fn overlaps(&self, min: Option<DateTime<Utc>>, max: Option<DateTime<Utc>>) -> bool {
        min.is_none_or(|min| self.end.instant() > min)
            && max.is_none_or(|max| self.start.instant() < max)
    }
}
