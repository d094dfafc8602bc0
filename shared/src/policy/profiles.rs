//! Profiles: named variations of the policy for a team, chosen per agent by a selector (a
//! Genesys group, a WFM management unit, or named users), each with an optional staffing guard.

use std::collections::HashSet;

use serde::Deserialize;

use super::{PolicyError, invalid};
use crate::model::UserId;

/// Longest profile name: it is part of the staffing guard's key and every audit record.
const PROFILE_NAME_MAX: usize = 64;
/// The name of the policy's own sections, as a profile.
pub const DEFAULT_PROFILE: &str = "default";

/// Who a profile is for. Any one match selects it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Genesys group ids.
    pub groups: Vec<String>,
    /// WFM management unit ids.
    pub management_units: Vec<String>,
    /// Lower-cased e-mails and user ids.
    pub users: HashSet<String>,
}

/// What the selectors may look at for one agent: only what the policy's selectors need is
/// looked up (see `Policy::groups_named`, `Policy::selects_by_management_unit`).
#[derive(Debug, Clone, Copy)]
pub struct Agent<'a> {
    pub user: &'a UserId,
    pub email: Option<&'a str>,
    /// The policy's groups this agent belongs to.
    pub groups: &'a HashSet<String>,
    pub management_unit: Option<&'a str>,
}

impl Selector {
    pub fn selects(&self, agent: &Agent<'_>) -> bool {
        self.users.contains(agent.user.as_str())
            || agent
                .email
                .is_some_and(|email| self.users.contains(&email.to_lowercase()))
            || self.groups.iter().any(|g| agent.groups.contains(g))
            || agent
                .management_unit
                .is_some_and(|mu| self.management_units.iter().any(|m| m == mu))
    }
}

/// How many of a team's agents the calendar may hold off queue at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Agents(u32),
    /// This percentage of the team's agents WFM schedules on queue at that moment (rounded
    /// down).
    PercentOnQueue(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub cap: Cap,
    /// Lower-cased organiser e-mails whose meetings always apply.
    pub exempt_organizers: HashSet<String>,
    /// Genesys group ids whose members the guard never holds back.
    pub exempt_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GuardSection {
    max_off_queue: Option<u32>,
    max_percent_on_queue: Option<u32>,
    #[serde(default)]
    exempt_organizers: Vec<String>,
    #[serde(default)]
    exempt_groups: Vec<String>,
}

pub(super) fn parse_guard(
    prefix: &str,
    raw: Option<GuardSection>,
) -> Result<Option<Guard>, PolicyError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let cap = match (raw.max_off_queue, raw.max_percent_on_queue) {
        (Some(agents), None) => Cap::Agents(agents),
        (None, Some(percent)) if (1..=100).contains(&percent) => Cap::PercentOnQueue(percent),
        (None, Some(_)) => {
            return Err(invalid(
                &format!("{prefix}guard.max_percent_on_queue"),
                "must be from 1 to 100",
            ));
        }
        _ => {
            return Err(invalid(
                &format!("{prefix}guard"),
                "needs exactly one of max_off_queue or max_percent_on_queue",
            ));
        }
    };
    for (index, email) in raw.exempt_organizers.iter().enumerate() {
        if !email.contains('@') {
            return Err(invalid(
                &format!("{prefix}guard.exempt_organizers[{index}]"),
                format!("{email:?} is not an e-mail address"),
            ));
        }
    }
    Ok(Some(Guard {
        cap,
        exempt_organizers: raw
            .exempt_organizers
            .iter()
            .map(|e| e.trim().to_lowercase())
            .collect(),
        exempt_groups: ids(&format!("{prefix}guard.exempt_groups"), raw.exempt_groups)?,
    }))
}

/// A profile as written: its selector, and any policy sections it changes.
pub(super) struct ProfileTable {
    pub name: String,
    pub selector: Selector,
    /// The policy's sections with the profile's keys laid over them.
    pub merged: toml::Table,
}

/// Reads `profiles[index]` over `base` (the policy's own sections): a section the profile
/// names has its keys replaced one by one; `rules` is replaced whole.
pub(super) fn overlay(
    index: usize,
    mut profile: toml::Table,
    base: &toml::Table,
    taken: &mut HashSet<String>,
) -> Result<ProfileTable, PolicyError> {
    let key = format!("profiles[{index}]");
    let name = match profile.remove("name") {
        Some(toml::Value::String(name)) => name.trim().to_owned(),
        _ => return Err(invalid(&format!("{key}.name"), "is required (a string)")),
    };
    let valid = !name.is_empty()
        && name.len() <= PROFILE_NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid || name == DEFAULT_PROFILE {
        return Err(invalid(
            &format!("{key}.name"),
            format!(
                "{name:?} must be 1 to {PROFILE_NAME_MAX} letters, digits, `-` or `_`, and not {DEFAULT_PROFILE:?}"
            ),
        ));
    }
    if !taken.insert(name.clone()) {
        return Err(invalid(
            &format!("{key}.name"),
            format!("{name:?} names an earlier profile too"),
        ));
    }
    let key = format!("profiles.{name}");
    let mut list = |field: &str| -> Result<Vec<String>, PolicyError> {
        match profile.remove(field) {
            None => Ok(Vec::new()),
            Some(value) => {
                let raw: Vec<String> = value
                    .try_into()
                    .map_err(|_| invalid(&format!("{key}.{field}"), "must be a list of strings"))?;
                ids(&format!("{key}.{field}"), raw)
            }
        }
    };
    let selector = Selector {
        groups: list("groups")?,
        management_units: list("management_units")?,
        users: list("users")?.iter().map(|u| u.to_lowercase()).collect(),
    };
    if selector == Selector::default() {
        return Err(invalid(
            &key,
            "selects nobody: give groups, management_units or users",
        ));
    }
    if profile.contains_key("profiles") {
        return Err(invalid(&format!("{key}.profiles"), "profiles do not nest"));
    }
    let mut merged = base.clone();
    for (section, value) in profile {
        match (merged.get_mut(&section), value) {
            (Some(toml::Value::Table(into)), toml::Value::Table(keys)) => into.extend(keys),
            (_, value) => {
                merged.insert(section, value);
            }
        }
    }
    Ok(ProfileTable {
        name,
        selector,
        merged,
    })
}

/// Ids as written (trimmed, none empty).
fn ids(key: &str, raw: Vec<String>) -> Result<Vec<String>, PolicyError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, id)| {
            let id = id.trim().to_owned();
            if id.is_empty() || id.len() > 256 {
                Err(invalid(
                    &format!("{key}[{index}]"),
                    "must be 1 to 256 bytes",
                ))
            } else {
                Ok(id)
            }
        })
        .collect()
}
