//! The policy file: which presence each trigger sets, which calendar entries count, when the
//! WFM schedule allows a change. Parsed and validated once at cold start; a bad policy fails
//! init with a message naming the key.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::model::PresenceDefinition;
use crate::model::{ActivityCategory, PresenceDefinitionId, SystemPresence};

/// The policy used when none is configured; also the documented example (`docs/policy.md`).
pub const DEFAULT_POLICY: &str = include_str!("default-policy.toml");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy: {message}")]
    Parse { message: String },
    #[error("policy key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------- the file as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    meeting: TriggerSection,
    focus: TriggerSection,
    #[serde(default)]
    calendar: CalendarSection,
    #[serde(default)]
    shift: ShiftSection,
    #[serde(default)]
    agents: AgentsSection,
    #[serde(default)]
    messages: MessagesSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MessagesSection {
    time_format: String,
}

impl Default for MessagesSection {
    fn default() -> Self {
        Self {
            time_format: DEFAULT_TIME_FORMAT.to_owned(),
        }
    }
}

/// `{start}` and `{end}` as "14:30 CET": the hour and minute in the agent's zone, with its
/// abbreviation.
const DEFAULT_TIME_FORMAT: &str = "%H:%M %Z";
/// Longest `messages.time_format` accepted (a status message is short).
const TIME_FORMAT_MAX_CHARS: usize = 40;

/// How `{start}` and `{end}` read: a chrono strftime format, checked when the policy loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat(String);

impl TimeFormat {
    fn parse(key: &str, raw: &str) -> Result<Self, PolicyError> {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerSection {
    presence: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    show_subject: bool,
    allowed_activities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CalendarSection {
    skip_tentative: bool,
    skip_all_day: bool,
    skip_out_of_office: bool,
    min_minutes: u32,
}

impl Default for CalendarSection {
    fn default() -> Self {
        Self {
            skip_tentative: true,
            skip_all_day: true,
            skip_out_of_office: true,
            min_minutes: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ShiftSection {
    when_no_shift: String,
}

impl Default for ShiftSection {
    fn default() -> Self {
        Self {
            when_no_shift: "allow".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AgentsSection {
    never_override: Vec<String>,
    opt_out: Vec<String>,
    interaction_recheck_seconds: u64,
    end_grace_seconds: u64,
}

impl Default for AgentsSection {
    fn default() -> Self {
        Self {
            never_override: vec!["Offline".to_owned()],
            opt_out: Vec::new(),
            interaction_recheck_seconds: 60,
            end_grace_seconds: 300,
        }
    }
}

// ---------------------------------------------------------------- the validated policy

/// A presence named in the policy: a system presence, or an org secondary presence by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceName {
    System(SystemPresence),
    Label(String),
}

impl PresenceName {
    fn parse(raw: &str) -> Self {
        match SystemPresence::parse(raw) {
            SystemPresence::Other(_) => Self::Label(raw.trim().to_owned()),
            system => Self::System(system),
        }
    }
}

/// A status message with `{subject}`, `{start}` and `{end}` placeholders (times in the agent's
/// zone, in the policy's `messages.time_format`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate(String);

const PLACEHOLDERS: [&str; 3] = ["subject", "start", "end"];

impl MessageTemplate {
    fn parse(key: &str, raw: &str, show_subject: bool) -> Result<Self, PolicyError> {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerPolicy {
    pub presence: PresenceName,
    pub message: MessageTemplate,
    pub show_subject: bool,
    /// WFM activity categories during which the change is allowed.
    pub allowed_activities: BTreeSet<ActivityCategory>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoShift {
    Allow,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub meeting: TriggerPolicy,
    pub focus: TriggerPolicy,
    pub skip_tentative: bool,
    pub skip_all_day: bool,
    pub skip_out_of_office: bool,
    /// Entries shorter than this many minutes are skipped (0: none).
    pub min_minutes: u32,
    pub when_no_shift: NoShift,
    /// Presences we never change (an Offline agent stays offline).
    pub never_override: Vec<SystemPresence>,
    /// Lower-cased e-mails and user ids that opted out.
    pub opt_out: HashSet<String>,
    /// How long a deferral waits before the sweep looks again.
    pub interaction_recheck: Duration,
    /// How long after an override's end the sweep restores it without an end event.
    pub end_grace: Duration,
    /// How `{start}` and `{end}` read in messages.
    pub time_format: TimeFormat,
    /// Which policy this is: `sha256:` and the first 16 hex digits of the file's text. Every
    /// decision's audit record carries it.
    pub version: String,
}

impl Policy {
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Parse {
            message: e.to_string().trim().to_owned(),
        })?;
        let when_no_shift = match file.shift.when_no_shift.as_str() {
            "allow" => NoShift::Allow,
            "skip" => NoShift::Skip,
            other => {
                return Err(invalid(
                    "shift.when_no_shift",
                    format!("{other:?} is not `allow` or `skip`"),
                ));
            }
        };
        let never_override = file
            .agents
            .never_override
            .iter()
            .enumerate()
            .map(|(index, raw)| match SystemPresence::parse(raw) {
                SystemPresence::Other(_) => Err(invalid(
                    &format!("agents.never_override[{index}]"),
                    format!("{raw:?} is not a system presence"),
                )),
                system => Ok(system),
            })
            .collect::<Result<_, _>>()?;
        if file.agents.interaction_recheck_seconds == 0 {
            return Err(invalid(
                "agents.interaction_recheck_seconds",
                "must be at least 1",
            ));
        }
        Ok(Self {
            meeting: trigger("meeting", file.meeting)?,
            focus: trigger("focus", file.focus)?,
            skip_tentative: file.calendar.skip_tentative,
            skip_all_day: file.calendar.skip_all_day,
            skip_out_of_office: file.calendar.skip_out_of_office,
            min_minutes: bounded_minutes(file.calendar.min_minutes)?,
            when_no_shift,
            never_override,
            opt_out: file
                .agents
                .opt_out
                .iter()
                .map(|s| s.trim().to_lowercase())
                .collect(),
            interaction_recheck: Duration::from_secs(file.agents.interaction_recheck_seconds),
            end_grace: Duration::from_secs(file.agents.end_grace_seconds),
            time_format: TimeFormat::parse("messages.time_format", &file.messages.time_format)?,
            version: version_of(text),
        })
    }

    /// Whether any message shows the subject (`{subject}` with `show_subject = true`): the
    /// calendar connector puts subjects on the bus only then.
    pub fn shows_subjects(&self) -> bool {
        [&self.meeting, &self.focus]
            .iter()
            .any(|t| t.show_subject && t.message.uses("subject"))
    }

    /// Resolves the trigger presences to definition ids of this org.
    pub fn resolve(
        &self,
        definitions: &[PresenceDefinition],
    ) -> Result<ResolvedTargets, PolicyError> {
        Ok(ResolvedTargets {
            meeting: resolve_one("meeting.presence", &self.meeting.presence, definitions)?,
            focus: resolve_one("focus.presence", &self.focus.presence, definitions)?,
        })
    }
}

/// The version of a policy text: its digest, so the same file has the same version anywhere.
fn version_of(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A day at most: a longer minimum would skip every entry.
fn bounded_minutes(minutes: u32) -> Result<u32, PolicyError> {
    if minutes > 1440 {
        return Err(invalid("calendar.min_minutes", "at most 1440 (a day)"));
    }
    Ok(minutes)
}

fn trigger(section: &str, raw: TriggerSection) -> Result<TriggerPolicy, PolicyError> {
    if raw.presence.trim().is_empty() {
        return Err(invalid(
            &format!("{section}.presence"),
            "must name a presence",
        ));
    }
    let allowed_activities = raw
        .allowed_activities
        .iter()
        .enumerate()
        .map(|(index, name)| {
            serde_json::from_value::<ActivityCategory>(serde_json::Value::String(name.clone()))
                .ok()
                .filter(|c| *c != ActivityCategory::Unknown)
                .ok_or_else(|| {
                    invalid(
                        &format!("{section}.allowed_activities[{index}]"),
                        format!("{name:?} is not one of OnQueueWork, Break, Meal, Meeting, OffQueueWork, TimeOff, Training, Unavailable"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(TriggerPolicy {
        presence: PresenceName::parse(&raw.presence),
        message: MessageTemplate::parse(
            &format!("{section}.message"),
            &raw.message,
            raw.show_subject,
        )?,
        show_subject: raw.show_subject,
        allowed_activities,
    })
}

/// A trigger's target: the definition id and its system presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub definition_id: PresenceDefinitionId,
    pub system_presence: SystemPresence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTargets {
    pub meeting: Target,
    pub focus: Target,
}

fn resolve_one(
    key: &str,
    name: &PresenceName,
    definitions: &[PresenceDefinition],
) -> Result<Target, PolicyError> {
    let active = definitions.iter().filter(|d| !d.deactivated);
    let found = match name {
        PresenceName::System(system) => {
            let mut candidates: Vec<&PresenceDefinition> =
                active.filter(|d| d.system_presence == *system).collect();
            candidates.sort_by_key(|d| !d.is_primary());
            candidates.into_iter().next()
        }
        PresenceName::Label(label) => {
            let wanted = label.to_lowercase();
            let mut matching = active.filter(|d| d.label().to_lowercase() == wanted);
            let first = matching.next();
            if first.is_some() && matching.next().is_some() {
                return Err(invalid(
                    key,
                    format!("more than one presence definition is labelled {label:?}"),
                ));
            }
            first
        }
    };
    let found = found.ok_or_else(|| {
        invalid(
            key,
            format!("no active presence definition matches {name:?}"),
        )
    })?;
    Ok(Target {
        definition_id: PresenceDefinitionId::parse(&found.id)
            .map_err(|e| invalid(key, e.to_string()))?,
        system_presence: found.system_presence.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definitions() -> Vec<PresenceDefinition> {
        serde_json::from_value(serde_json::json!([
            {"id": "bbdff279-7ae1-48ea-bade-7831d7234c64", "type": "System", "systemPresence": "Meeting", "languageLabels": {"en_US": "Meeting"}},
            {"id": "31fe3bac-dea6-44b7-bed7-47f91660a1a0", "type": "System", "systemPresence": "Busy", "languageLabels": {"en_US": "Busy"}},
            {"id": "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a", "type": "User", "systemPresence": "Busy", "languageLabels": {"en_US": "Focus Time"}},
            {"id": "old", "type": "User", "systemPresence": "Busy", "languageLabels": {"en_US": "Old Focus"}, "deactivated": true}
        ]))
        .expect("valid definitions")
    }

    #[test]
    fn default_policy_parses_and_resolves() {
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("default policy is valid");
        assert_eq!(
            policy.meeting.presence,
            PresenceName::System(SystemPresence::Meeting)
        );
        assert!(
            policy
                .meeting
                .allowed_activities
                .contains(&ActivityCategory::Meeting)
        );
        assert!(
            !policy
                .meeting
                .allowed_activities
                .contains(&ActivityCategory::OnQueueWork)
        );
        let targets = policy.resolve(&definitions()).expect("resolves");
        assert_eq!(
            targets.meeting.definition_id.as_str(),
            "bbdff279-7ae1-48ea-bade-7831d7234c64"
        );
        assert_eq!(
            targets.focus.definition_id.as_str(),
            "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                DEFAULT_POLICY.replace("when_no_shift = \"allow\"", "when_no_shift = \"maybe\""),
                "shift.when_no_shift",
            ),
            (
                DEFAULT_POLICY.replace("\"Training\"]", "\"Lunch\"]"),
                "allowed_activities",
            ),
            (
                DEFAULT_POLICY.replace("In a meeting", "In {topic}"),
                "meeting.message",
            ),
            (
                DEFAULT_POLICY.replace("In a meeting", "In {subject}"),
                "show_subject",
            ),
            (
                DEFAULT_POLICY.replace(
                    "never_override = [\"Offline\"]",
                    "never_override = [\"Asleep\"]",
                ),
                "agents.never_override[0]",
            ),
            (
                DEFAULT_POLICY.replace("[calendar]", "[calendar]\nskip_everything = true"),
                "skip_everything",
            ),
            (
                DEFAULT_POLICY.replace(
                    "interaction_recheck_seconds = 60",
                    "interaction_recheck_seconds = \"soon\"",
                ),
                "interaction_recheck_seconds",
            ),
        ];
        for (text, key) in cases {
            let error = Policy::from_toml(&text).expect_err(key).to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn unresolvable_presence_names_the_key() {
        let text = DEFAULT_POLICY.replace("presence = \"Focus Time\"", "presence = \"Old Focus\"");
        let policy = Policy::from_toml(&text).expect("parses");
        let error = policy
            .resolve(&definitions())
            .expect_err("deactivated label")
            .to_string();
        assert!(error.contains("focus.presence"), "{error}");
    }

    #[test]
    fn a_time_format_that_cannot_show_a_time_is_refused_naming_the_key() {
        for (format, says) in [
            ("%Q", "not a valid strftime format"),
            ("", "must not be empty"),
            ("{end}", "must not contain"),
            (
                "%H:%M %Z and a great deal of other text here",
                "longer than",
            ),
        ] {
            let text = DEFAULT_POLICY.replace(
                r#"time_format = "%H:%M %Z""#,
                &format!("time_format = {format:?}"),
            );
            assert_ne!(text, DEFAULT_POLICY);
            let error = Policy::from_toml(&text).expect_err(format).to_string();
            assert!(error.contains("messages.time_format"), "{error}");
            assert!(error.contains(says), "{format:?}: {error}");
        }
    }

    #[test]
    fn the_same_text_has_the_same_version_and_a_changed_one_another() {
        let one = Policy::from_toml(DEFAULT_POLICY).expect("valid");
        let again = Policy::from_toml(DEFAULT_POLICY).expect("valid");
        let changed =
            Policy::from_toml(&DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 5"))
                .expect("valid");
        assert_eq!(one.version, again.version);
        assert_ne!(one.version, changed.version);
        assert_eq!(one.version.len(), "sha256:".len() + 16);
    }

    #[test]
    fn a_minimum_length_over_a_day_is_refused() {
        let text = DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 1441");
        assert_ne!(text, DEFAULT_POLICY);
        let error = Policy::from_toml(&text).expect_err("refused").to_string();
        assert!(error.contains("calendar.min_minutes"), "{error}");
    }

    #[test]
    fn subjects_are_shown_only_by_a_message_that_uses_them() {
        let default = Policy::from_toml(DEFAULT_POLICY).expect("valid");
        assert!(!default.shows_subjects());
        let allowed_only =
            DEFAULT_POLICY.replacen("show_subject = false", "show_subject = true", 1);
        assert!(
            !Policy::from_toml(&allowed_only)
                .expect("valid")
                .shows_subjects()
        );
        let shown = allowed_only.replacen(
            r#"message = "In a meeting until {end}""#,
            r#"message = "{subject} until {end}""#,
            1,
        );
        assert_ne!(shown, allowed_only);
        assert!(Policy::from_toml(&shown).expect("valid").shows_subjects());
    }

    #[test]
    fn message_renders_placeholders_and_keeps_subject_private_by_default() {
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("valid");
        let start = DateTime::parse_from_rfc3339("2026-03-19T14:00:00Z")
            .expect("time")
            .to_utc();
        let end = DateTime::parse_from_rfc3339("2026-03-19T14:30:00Z")
            .expect("time")
            .to_utc();
        let utc = chrono_tz::Tz::UTC;
        let format = &policy.time_format;
        let text = policy
            .meeting
            .message
            .render(Some("Layoffs"), (start, end), utc, format);
        assert_eq!(text, "In a meeting until 14:30 UTC");
        let with_subject =
            MessageTemplate::parse("k", "{subject} ({start}-{end})", true).expect("allowed");
        assert_eq!(
            with_subject.render(Some("Standup"), (start, end), utc, format),
            "Standup (14:00 UTC-14:30 UTC)"
        );
    }
}
