//! The policy file: which presence each trigger sets, which calendar entries count, when the
//! WFM schedule allows a change. Parsed and validated once at cold start; a bad policy fails
//! init with a message naming the key.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde::Deserialize;

use crate::model::PresenceDefinition;

mod live;
mod message;
mod profiles;
mod rules;
use crate::model::{ActivityCategory, PresenceDefinitionId, SystemPresence};
use crate::state::TriggerKind;
pub use live::LivePolicy;
use message::DEFAULT_TIME_FORMAT;
pub use message::{MessageTemplate, TimeFormat};
pub use profiles::{Agent, Cap, DEFAULT_PROFILE, Guard, Selector};
pub use rules::{EntryKind, Rule, RuleAction, SubjectMatch};

/// The policy used when none is configured; also the documented example (`docs/policy.md`).
pub const DEFAULT_POLICY: &str = include_str!("../default-policy.toml");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy: {message}")]
    Parse { message: String },
    #[error("policy key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub(super) fn invalid(key: &str, message: impl Into<String>) -> PolicyError {
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
    #[serde(default)]
    rules: Vec<rules::RuleSection>,
    guard: Option<profiles::GuardSection>,
    #[serde(default)]
    profiles: Vec<toml::Table>,
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
    /// The profile these sections are (`default`: the policy's own).
    pub profile: String,
    /// Who the profile is for (empty for the default).
    pub selector: Selector,
    /// Meeting rules, in order: the first that matches an entry decides it.
    pub rules: Vec<Rule>,
    /// The staffing guard of this profile's team, if it has one.
    pub guard: Option<Guard>,
    /// The named profiles, in order (only on the default).
    pub profiles: Vec<Policy>,
}

impl Policy {
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let parse_error = |e: toml::de::Error| PolicyError::Parse {
            message: e.to_string().trim().to_owned(),
        };
        let file: PolicyFile = toml::from_str(text).map_err(parse_error)?;
        let mut base: toml::Table = toml::from_str(text).map_err(parse_error)?;
        base.remove("profiles");
        let version = version_of(text);
        let raw_profiles = file.profiles.clone();
        let mut policy = Self::build("", file, &version, DEFAULT_PROFILE)?;
        let mut taken = std::collections::HashSet::new();
        for (index, table) in raw_profiles.into_iter().enumerate() {
            let overlaid = profiles::overlay(index, table, &base, &mut taken)?;
            let prefix = format!("profiles.{}.", overlaid.name);
            let file = PolicyFile::deserialize(overlaid.merged).map_err(|e| {
                invalid(
                    prefix.trim_end_matches('.'),
                    e.to_string().trim().to_owned(),
                )
            })?;
            let mut profile = Self::build(&prefix, file, &version, &overlaid.name)?;
            profile.selector = overlaid.selector;
            policy.profiles.push(profile);
        }
        for profile in policy.all_profiles() {
            let counted = !profile.selector.groups.is_empty() || !profile.selector.users.is_empty();
            if matches!(
                profile.guard.as_ref().map(|g| g.cap),
                Some(Cap::PercentOnQueue(_))
            ) && !counted
            {
                let key = if profile.profile == DEFAULT_PROFILE {
                    "guard.max_percent_on_queue".to_owned()
                } else {
                    format!("profiles.{}.guard.max_percent_on_queue", profile.profile)
                };
                return Err(invalid(
                    &key,
                    "a share needs a team whose members can be counted: a profile selected by groups or users",
                ));
            }
        }
        Ok(policy)
    }

    /// One profile's sections, checked; `prefix` is put before every key an error names.
    fn build(
        prefix: &str,
        file: PolicyFile,
        version: &str,
        profile: &str,
    ) -> Result<Self, PolicyError> {
        let key = |k: &str| format!("{prefix}{k}");
        let when_no_shift = match file.shift.when_no_shift.as_str() {
            "allow" => NoShift::Allow,
            "skip" => NoShift::Skip,
            other => {
                return Err(invalid(
                    &key("shift.when_no_shift"),
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
                    &key(&format!("agents.never_override[{index}]")),
                    format!("{raw:?} is not a system presence"),
                )),
                system => Ok(system),
            })
            .collect::<Result<_, _>>()?;
        if file.agents.interaction_recheck_seconds == 0 {
            return Err(invalid(
                &key("agents.interaction_recheck_seconds"),
                "must be at least 1",
            ));
        }
        if file.calendar.min_minutes > 1440 {
            return Err(invalid(
                &key("calendar.min_minutes"),
                "at most 1440 (a day)",
            ));
        }
        Ok(Self {
            meeting: trigger(&key("meeting"), file.meeting)?,
            focus: trigger(&key("focus"), file.focus)?,
            skip_tentative: file.calendar.skip_tentative,
            skip_all_day: file.calendar.skip_all_day,
            skip_out_of_office: file.calendar.skip_out_of_office,
            min_minutes: file.calendar.min_minutes,
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
            time_format: TimeFormat::parse(
                &key("messages.time_format"),
                &file.messages.time_format,
            )?,
            version: version.to_owned(),
            profile: profile.to_owned(),
            selector: Selector::default(),
            rules: rules::parse_rules(prefix, file.rules)?,
            guard: profiles::parse_guard(prefix, file.guard)?,
            profiles: Vec::new(),
        })
    }

    /// The profile for `agent`: the first whose selector matches, else the policy's own.
    pub fn profile_for(&self, agent: &Agent<'_>) -> &Policy {
        self.profiles
            .iter()
            .find(|p| p.selector.selects(agent))
            .unwrap_or(self)
    }

    /// Whether agents are told apart by team (profiles) or counted by one (a guard): then
    /// each is decided on the one-event path.
    pub fn has_teams(&self) -> bool {
        self.all_profiles().any(|p| p.guard.is_some()) || !self.profiles.is_empty()
    }

    /// The policy and its profiles, the default first.
    pub fn all_profiles(&self) -> impl Iterator<Item = &Policy> {
        std::iter::once(self).chain(self.profiles.iter())
    }

    /// A profile by name (`default`: the policy's own).
    pub fn profile(&self, name: &str) -> Option<&Policy> {
        self.all_profiles().find(|p| p.profile == name)
    }

    /// The Genesys groups the selectors and guards name: an agent's membership of these (and
    /// no other) is looked up.
    pub fn groups_named(&self) -> std::collections::BTreeSet<String> {
        self.all_profiles()
            .flat_map(|p| {
                p.selector
                    .groups
                    .iter()
                    .chain(p.guard.iter().flat_map(|g| g.exempt_groups.iter()))
            })
            .cloned()
            .collect()
    }

    /// Whether a selector names a management unit (then each agent's is looked up).
    pub fn selects_by_management_unit(&self) -> bool {
        self.profiles
            .iter()
            .any(|p| !p.selector.management_units.is_empty())
    }

    /// The rule named `name` in this profile.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// What a start of `kind` sets, as decided by `rule` (what it leaves out, from the kind's
    /// section) or by the kind's section alone.
    pub fn trigger_for(&self, kind: TriggerKind, rule: Option<&Rule>) -> TriggerPolicy {
        let section = match kind {
            TriggerKind::Meeting => &self.meeting,
            TriggerKind::Focus => &self.focus,
        };
        match rule.map(|r| &r.action) {
            Some(RuleAction::Set {
                presence,
                message,
                show_subject,
                allowed_activities,
            }) => TriggerPolicy {
                presence: presence.clone(),
                message: message.clone().unwrap_or_else(|| section.message.clone()),
                show_subject: if message.is_some() {
                    *show_subject
                } else {
                    section.show_subject
                },
                allowed_activities: allowed_activities
                    .clone()
                    .unwrap_or_else(|| section.allowed_activities.clone()),
            },
            _ => section.clone(),
        }
    }

    /// Whether subjects must leave the calendar connector: a message shows them or a rule
    /// matches on them, in any profile.
    pub fn needs_subjects(&self) -> bool {
        self.all_profiles()
            .any(|p| p.shows_subjects() || p.rules.iter().any(Rule::reads_subject))
    }

    /// Whether any message shows the subject (`{subject}` with `show_subject = true`): the
    /// calendar connector puts subjects on the bus only then.
    pub fn shows_subjects(&self) -> bool {
        let rule_messages = self.rules.iter().filter_map(|r| match &r.action {
            RuleAction::Set {
                message: Some(message),
                show_subject: true,
                ..
            } => Some(message),
            _ => None,
        });
        [&self.meeting, &self.focus]
            .iter()
            .filter(|t| t.show_subject)
            .map(|t| &t.message)
            .chain(rule_messages)
            .any(|m| m.uses("subject"))
    }

    /// Resolves every presence the policy names (sections and rules, in every profile) to a
    /// definition of this org; the first that does not resolve is named by its key.
    pub fn resolve(
        &self,
        definitions: &[PresenceDefinition],
    ) -> Result<ResolvedTargets, PolicyError> {
        let mut targets = ResolvedTargets::default();
        for profile in self.all_profiles() {
            let prefix = if profile.profile == DEFAULT_PROFILE {
                String::new()
            } else {
                format!("profiles.{}.", profile.profile)
            };
            let rules = profile
                .rules
                .iter()
                .enumerate()
                .filter_map(|(index, rule)| {
                    Some((format!("{prefix}rules[{index}].presence"), rule.presence()?))
                });
            let named = [
                (
                    format!("{prefix}meeting.presence"),
                    &profile.meeting.presence,
                ),
                (format!("{prefix}focus.presence"), &profile.focus.presence),
            ]
            .into_iter()
            .chain(rules);
            for (key, name) in named {
                if targets.get(name).is_none() {
                    targets.insert(name.clone(), resolve_one(&key, name, definitions)?);
                }
            }
        }
        Ok(targets)
    }
}

/// The version of a policy text: its digest, so the same file has the same version anywhere.
pub fn version_of(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn trigger(section: &str, raw: TriggerSection) -> Result<TriggerPolicy, PolicyError> {
    if raw.presence.trim().is_empty() {
        return Err(invalid(
            &format!("{section}.presence"),
            "must name a presence",
        ));
    }
    Ok(TriggerPolicy {
        presence: PresenceName::parse(&raw.presence),
        message: MessageTemplate::parse(
            &format!("{section}.message"),
            &raw.message,
            raw.show_subject,
        )?,
        show_subject: raw.show_subject,
        allowed_activities: activities(
            &format!("{section}.allowed_activities"),
            &raw.allowed_activities,
        )?,
    })
}

/// WFM activity categories by name, each checked.
fn activities(key: &str, names: &[String]) -> Result<BTreeSet<ActivityCategory>, PolicyError> {
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            serde_json::from_value::<ActivityCategory>(serde_json::Value::String(name.clone()))
                .ok()
                .filter(|c| *c != ActivityCategory::Unknown)
                .ok_or_else(|| {
                    invalid(
                        &format!("{key}[{index}]"),
                        format!("{name:?} is not one of OnQueueWork, Break, Meal, Meeting, OffQueueWork, TimeOff, Training, Unavailable"),
                    )
                })
        })
        .collect()
}

/// A trigger's target: the definition id and its system presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub definition_id: PresenceDefinitionId,
    pub system_presence: SystemPresence,
}

/// The policy's presences as this org's definitions, by the name the policy gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedTargets {
    by_name: std::collections::BTreeMap<String, (PresenceName, Target)>,
}

impl ResolvedTargets {
    fn key(name: &PresenceName) -> String {
        match name {
            PresenceName::System(system) => format!("system:{system}"),
            PresenceName::Label(label) => format!("label:{}", label.to_lowercase()),
        }
    }

    pub fn get(&self, name: &PresenceName) -> Option<&Target> {
        self.by_name.get(&Self::key(name)).map(|(_, target)| target)
    }

    pub fn insert(&mut self, name: PresenceName, target: Target) {
        self.by_name.insert(Self::key(&name), (name, target));
    }

    /// Every name with its definition, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&PresenceName, &Target)> {
        self.by_name.values().map(|(name, target)| (name, target))
    }
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
mod tests;
