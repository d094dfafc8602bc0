//! Meeting rules: ordered matches on an entry's subject, categories, kind, length and guests,
//! each setting a presence or skipping with a named reason. The first rule that matches decides.

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;

use super::{MessageTemplate, PolicyError, PresenceName, activities, invalid};
use crate::events::{CalendarEntry, ShowAs};
use crate::model::ActivityCategory;
use crate::state::TriggerKind;

/// Longest subject pattern, in characters; a regex is also bounded in compiled size.
const PATTERN_MAX_CHARS: usize = 256;
const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// Longest rule name and skip reason.
const NAME_MAX_CHARS: usize = 64;
const REASON_MAX_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSection {
    name: String,
    subject_is: Option<String>,
    subject_starts_with: Option<String>,
    subject_contains: Option<String>,
    subject_matches: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    min_minutes: Option<u32>,
    min_others: Option<u32>,
    presence: Option<String>,
    message: Option<String>,
    #[serde(default)]
    show_subject: bool,
    allowed_activities: Option<Vec<String>>,
    skip: Option<String>,
}

/// How a rule reads the subject; every match ignores case.
#[derive(Debug, Clone)]
pub enum SubjectMatch {
    Is(String),
    StartsWith(String),
    Contains(String),
    Matches(regex::Regex),
}

impl PartialEq for SubjectMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Is(a), Self::Is(b))
            | (Self::StartsWith(a), Self::StartsWith(b))
            | (Self::Contains(a), Self::Contains(b)) => a == b,
            (Self::Matches(a), Self::Matches(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for SubjectMatch {}

impl SubjectMatch {
    fn matches(&self, subject: &str) -> bool {
        let subject = subject.to_lowercase();
        match self {
            Self::Is(text) => subject.trim() == text,
            Self::StartsWith(text) => subject.trim_start().starts_with(text.as_str()),
            Self::Contains(text) => subject.contains(text.as_str()),
            Self::Matches(regex) => regex.is_match(&subject),
        }
    }
}

/// Which entries a rule's `kinds` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Meeting,
    Focus,
    OutOfOffice,
}

impl EntryKind {
    fn of(entry: &CalendarEntry) -> Self {
        match (entry.kind, entry.show_as) {
            (_, ShowAs::OutOfOffice) => Self::OutOfOffice,
            (TriggerKind::Focus, _) => Self::Focus,
            (TriggerKind::Meeting, _) => Self::Meeting,
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Set this presence; what the rule leaves out comes from the entry kind's section.
    Set {
        presence: PresenceName,
        message: Option<MessageTemplate>,
        show_subject: bool,
        allowed_activities: Option<BTreeSet<ActivityCategory>>,
    },
    /// Change nothing, for this reason (recorded with the rule's name).
    Skip(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    subject: Option<SubjectMatch>,
    /// Lower-cased; any of them matches.
    categories: Vec<String>,
    kinds: Vec<EntryKind>,
    min_minutes: Option<u32>,
    min_others: Option<u32>,
    pub action: RuleAction,
}

impl Rule {
    /// Whether every condition the rule names holds for `entry`. A condition on something the
    /// calendar did not give (a subject kept private, a guest count unknown) does not hold.
    pub fn matches(&self, entry: &CalendarEntry) -> bool {
        let subject = self.subject.as_ref().is_none_or(|wanted| {
            entry
                .subject
                .as_deref()
                .is_some_and(|subject| wanted.matches(subject))
        });
        let categories = self.categories.is_empty()
            || entry
                .categories
                .iter()
                .any(|c| self.categories.contains(&c.to_lowercase()));
        let kind = self.kinds.is_empty() || self.kinds.contains(&EntryKind::of(entry));
        let long_enough = self
            .min_minutes
            .is_none_or(|min| (entry.end - entry.start).num_minutes() >= i64::from(min));
        let guests = self
            .min_others
            .is_none_or(|min| entry.others.is_some_and(|others| others >= min));
        subject && categories && kind && long_enough && guests
    }

    /// Whether the rule reads the subject (so the connector must pass it on).
    pub fn reads_subject(&self) -> bool {
        self.subject.is_some()
    }

    /// The presence the rule sets, if it sets one.
    pub fn presence(&self) -> Option<&PresenceName> {
        match &self.action {
            RuleAction::Set { presence, .. } => Some(presence),
            RuleAction::Skip(_) => None,
        }
    }
}

/// The rules of one policy (or profile), checked: names unique, one subject match at most,
/// patterns bounded, exactly one action.
pub(super) fn parse_rules(
    prefix: &str,
    sections: Vec<RuleSection>,
) -> Result<Vec<Rule>, PolicyError> {
    let mut names = HashSet::new();
    sections
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let key = format!("{prefix}rules[{index}]");
            let rule = parse_rule(&key, raw)?;
            if !names.insert(rule.name.clone()) {
                return Err(invalid(
                    &format!("{key}.name"),
                    format!("{:?} names an earlier rule too", rule.name),
                ));
            }
            Ok(rule)
        })
        .collect()
}

fn parse_rule(key: &str, raw: RuleSection) -> Result<Rule, PolicyError> {
    let name = raw.name.trim().to_owned();
    if name.is_empty()
        || name.chars().count() > NAME_MAX_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(invalid(
            &format!("{key}.name"),
            format!("must be 1 to {NAME_MAX_CHARS} printable characters"),
        ));
    }
    let subject = subject_match(key, &raw)?;
    let kinds = raw
        .kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| match kind.as_str() {
            "meeting" => Ok(EntryKind::Meeting),
            "focus" => Ok(EntryKind::Focus),
            "out_of_office" => Ok(EntryKind::OutOfOffice),
            other => Err(invalid(
                &format!("{key}.kinds[{index}]"),
                format!("{other:?} is not meeting, focus or out_of_office"),
            )),
        })
        .collect::<Result<_, _>>()?;
    if let Some(min) = raw.min_minutes
        && min > 1440
    {
        return Err(invalid(
            &format!("{key}.min_minutes"),
            "at most 1440 (a day)",
        ));
    }
    let action = match (raw.presence, raw.skip) {
        (Some(presence), None) if !presence.trim().is_empty() => RuleAction::Set {
            presence: PresenceName::parse(&presence),
            message: raw
                .message
                .map(|m| MessageTemplate::parse(&format!("{key}.message"), &m, raw.show_subject))
                .transpose()?,
            show_subject: raw.show_subject,
            allowed_activities: raw
                .allowed_activities
                .map(|names| activities(&format!("{key}.allowed_activities"), &names))
                .transpose()?,
        },
        (None, Some(reason)) => {
            let reason = reason.trim().to_owned();
            if reason.is_empty() || reason.chars().count() > REASON_MAX_CHARS {
                return Err(invalid(
                    &format!("{key}.skip"),
                    format!("must be a reason of 1 to {REASON_MAX_CHARS} characters"),
                ));
            }
            if raw.message.is_some() || raw.allowed_activities.is_some() {
                return Err(invalid(
                    key,
                    "a rule that skips sets no message or allowed_activities",
                ));
            }
            RuleAction::Skip(reason)
        }
        _ => {
            return Err(invalid(
                key,
                "needs exactly one of `presence` (set it) or `skip` (a reason)",
            ));
        }
    };
    Ok(Rule {
        name,
        subject,
        categories: raw
            .categories
            .iter()
            .map(|c| c.trim().to_lowercase())
            .collect(),
        kinds,
        min_minutes: raw.min_minutes,
        min_others: raw.min_others,
        action,
    })
}

fn subject_match(key: &str, raw: &RuleSection) -> Result<Option<SubjectMatch>, PolicyError> {
    let given = [
        ("subject_is", &raw.subject_is),
        ("subject_starts_with", &raw.subject_starts_with),
        ("subject_contains", &raw.subject_contains),
        ("subject_matches", &raw.subject_matches),
    ];
    let mut named = given.iter().filter(|(_, value)| value.is_some());
    let Some((which, Some(pattern))) = named.next() else {
        return Ok(None);
    };
    if let Some((other, _)) = named.next() {
        return Err(invalid(
            &format!("{key}.{other}"),
            format!("a rule matches the subject one way: {which} is given already"),
        ));
    }
    let field = format!("{key}.{which}");
    if pattern.trim().is_empty() || pattern.chars().count() > PATTERN_MAX_CHARS {
        return Err(invalid(
            &field,
            format!("must be 1 to {PATTERN_MAX_CHARS} characters"),
        ));
    }
    let text = pattern.trim().to_lowercase();
    Ok(Some(match *which {
        "subject_is" => SubjectMatch::Is(text),
        "subject_starts_with" => SubjectMatch::StartsWith(text),
        "subject_contains" => SubjectMatch::Contains(text),
        _ => SubjectMatch::Matches(
            regex::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| invalid(&field, format!("not a usable regex: {e}")))?,
        ),
    }))
}
