//! Status messages: the template with its placeholders and how its times read.

use chrono::{DateTime, Utc};

use super::{PolicyError, invalid};

/// `{start}` and `{end}` as "14:30 CET": the hour and minute in the agent's zone, with its
/// abbreviation.
pub(super) const DEFAULT_TIME_FORMAT: &str = "%H:%M %Z";
/// Longest `messages.time_format` accepted (a status message is short).
const TIME_FORMAT_MAX_CHARS: usize = 40;

/// How `{start}` and `{end}` read: a chrono strftime format, checked when the policy loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat(String);

impl TimeFormat {
    pub(super) fn parse(key: &str, raw: &str) -> Result<Self, PolicyError> {
        use chrono::format::{Item, StrftimeItems};
        if raw.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
        if raw.chars().count() > TIME_FORMAT_MAX_CHARS {
            return Err(invalid(
                key,
                format!("longer than {TIME_FORMAT_MAX_CHARS} characters"),
            ));
        }
        if raw.contains('{') || raw.contains('}') {
            return Err(invalid(key, "must not contain `{` or `}`"));
        }
        if StrftimeItems::new(raw).any(|item| matches!(item, Item::Error)) {
            return Err(invalid(
                key,
                format!("{raw:?} is not a valid strftime format (e.g. \"%H:%M %Z\")"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// `at` in `zone`, in this format.
    pub fn show(&self, at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
        at.with_timezone(&zone).format(&self.0).to_string()
    }
}

impl Default for TimeFormat {
    fn default() -> Self {
        Self(DEFAULT_TIME_FORMAT.to_owned())
    }
}

/// A status message with `{subject}`, `{start}` and `{end}` placeholders (times in the agent's
/// zone, in the policy's `messages.time_format`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate(String);

const PLACEHOLDERS: [&str; 3] = ["subject", "start", "end"];

impl MessageTemplate {
    pub(super) fn parse(key: &str, raw: &str, show_subject: bool) -> Result<Self, PolicyError> {
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| invalid(key, "an opening `{` has no closing `}`"))?;
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(invalid(
                    key,
                    format!(
                        "unknown placeholder {{{name}}}; use {{subject}}, {{start}} or {{end}}"
                    ),
                ));
            }
            if name == "subject" && !show_subject {
                return Err(invalid(
                    key,
                    "uses {subject} but show_subject is false: meeting subjects stay private unless allowed",
                ));
            }
            rest = &after[close + 1..];
        }
        Ok(Self(raw.to_owned()))
    }

    /// Whether the template has the `{name}` placeholder.
    pub fn uses(&self, name: &str) -> bool {
        self.0.contains(&format!("{{{name}}}"))
    }

    pub fn render(
        &self,
        subject: Option<&str>,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        zone: chrono_tz::Tz,
        format: &TimeFormat,
    ) -> String {
        self.0
            .replace("{subject}", subject.unwrap_or_default())
            .replace("{start}", &format.show(start, zone))
            .replace("{end}", &format.show(end, zone))
            .trim()
            .to_owned()
    }
}
