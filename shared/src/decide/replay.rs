//! Known meetings decided ahead of time: what a start would come to under a policy (the
//! forecast), and the meetings decided differently under two (`autopilot policy diff`). What a start
//! would do is replayed: the agent's profile, the deciding rule or skip, whether the WFM
//! activity then allows the change, and the presence it sets. What only the moment can tell
//! (the live presence, a call in progress, the staffing guard's count) is not.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::decide::{ShiftView, SkipReason, choose};
use crate::events::CalendarEntry;
use crate::model::UserId;
use crate::policy::{NoShift, Policy, PresenceName};

/// An agent as the selectors see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub user: UserId,
    pub email: Option<String>,
    /// The policies' groups the agent belongs to.
    pub groups: HashSet<String>,
    pub management_unit: Option<String>,
}

/// A known meeting, with what WFM schedules at its start (None: the schedule is not known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub entry: CalendarEntry,
    pub shift: Option<ShiftView>,
}

/// What a start would come to under one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    Set {
        presence: String,
        profile: String,
        rule: Option<String>,
    },
    Skipped {
        profile: String,
        reason: String,
    },
}

impl Replayed {
    /// What the agent would see: the presence set, or none. Two skips for different reasons,
    /// or the same presence by another rule, change nothing for the floor.
    pub fn effect(&self) -> Option<&str> {
        match self {
            Self::Set { presence, .. } => Some(presence),
            Self::Skipped { .. } => None,
        }
    }
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Set {
                presence,
                profile,
                rule: Some(rule),
            } => write!(f, "{presence} (rule {rule:?}, profile {profile})"),
            Self::Set {
                presence, profile, ..
            } => write!(f, "{presence} (profile {profile})"),
            Self::Skipped { profile, reason } => write!(f, "skipped: {reason} (profile {profile})"),
        }
    }
}

/// One meeting decided differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub user: UserId,
    pub email: Option<String>,
    pub trigger: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub now: Replayed,
    pub proposed: Replayed,
}

/// What `policy` would do with `meeting`'s start for `agent`.
pub fn replay(policy: &Policy, agent: &Agent, meeting: &Meeting) -> Replayed {
    let profile = policy.profile_for(&crate::policy::Agent {
        user: &agent.user,
        email: agent.email.as_deref(),
        groups: &agent.groups,
        management_unit: agent.management_unit.as_deref(),
    });
    let entry = &meeting.entry;
    let skipped = |reason: SkipReason| Replayed::Skipped {
        profile: profile.profile.clone(),
        reason: reason.describe(),
    };
    let rule = match choose(entry, profile, &agent.user, agent.email.as_deref()) {
        Ok(rule) => rule,
        Err(reason) => return skipped(reason),
    };
    let trigger = profile.trigger_for(entry.kind, rule);
    match meeting.shift {
        Some(ShiftView::Activity(category)) if !trigger.allowed_activities.contains(&category) => {
            skipped(SkipReason::ShiftDisallows(category))
        }
        Some(ShiftView::NoShift) if profile.when_no_shift == NoShift::Skip => {
            skipped(SkipReason::NoShift)
        }
        _ => Replayed::Set {
            presence: match &trigger.presence {
                PresenceName::System(system) => system.to_string(),
                PresenceName::Label(label) => label.clone(),
            },
            profile: profile.profile.clone(),
            rule: rule.map(|r| r.name.clone()),
        },
    }
}

/// Every meeting whose effect (the presence set, or none) differs under `proposed` from under
/// `current`, by agent and start.
pub fn differences(
    current: &Policy,
    proposed: &Policy,
    agents: &[(Agent, Vec<Meeting>)],
) -> Vec<Difference> {
    let mut found: Vec<Difference> = agents
        .iter()
        .flat_map(|(agent, meetings)| {
            meetings.iter().filter_map(move |meeting| {
                let now = replay(current, agent, meeting);
                let then = replay(proposed, agent, meeting);
                (now.effect() != then.effect()).then(|| Difference {
                    user: agent.user.clone(),
                    email: agent.email.clone(),
                    trigger: meeting.entry.trigger_id.as_str().to_owned(),
                    start: meeting.entry.start,
                    end: meeting.entry.end,
                    now,
                    proposed: then,
                })
            })
        })
        .collect();
    found.sort_by(|a, b| (&a.email, &a.user, a.start).cmp(&(&b.email, &b.user, b.start)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Response, ShowAs, UserRef};
    use crate::model::ActivityCategory;
    use crate::policy::DEFAULT_POLICY;
    use crate::state::{TriggerId, TriggerKind};

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-{day:02}T{hour:02}:00:00Z"))
            .expect("time")
            .to_utc()
    }

    fn meeting(
        id: &str,
        (day, hour): (u32, u32),
        minutes: i64,
        shift: Option<ShiftView>,
    ) -> Meeting {
        Meeting {
            entry: CalendarEntry {
                user: UserRef {
                    user_id: None,
                    email: None,
                },
                trigger_id: TriggerId::parse(id).expect("id"),
                kind: TriggerKind::Meeting,
                start: at(day, hour),
                end: at(day, hour) + chrono::Duration::minutes(minutes),
                show_as: ShowAs::Busy,
                all_day: false,
                cancelled: false,
                response: Response::Accepted,
                subject: None,
                zone: None,
                categories: Vec::new(),
                others: Some(2),
                organizer: None,
            },
            shift,
        }
    }

    fn agent(n: u32, groups: &[&str]) -> Agent {
        Agent {
            user: UserId::parse(&format!("00000000-0000-4000-8000-{n:012}")).expect("id"),
            email: Some(format!("agent{n}@example.com")),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            management_unit: None,
        }
    }

    /// A known week of two agents: a proposal that skips entries under 15 minutes, lets the
    /// team leads' meetings set Busy, and ignores a category differs on exactly those meetings.
    #[test]
    fn a_known_week_lists_exactly_the_meetings_decided_differently() {
        let current = Policy::from_toml(DEFAULT_POLICY).expect("valid");
        let proposed = Policy::from_toml(
            &(DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 15")
                + r#"
[[rules]]
name = "ignore-personal"
categories = ["Personal"]
skip = "personal entries are not meetings"

[[profiles]]
name = "leads"
groups = ["g-leads"]

[profiles.meeting]
presence = "Busy"
"#),
        )
        .expect("valid");
        let meeting_activity = Some(ShiftView::Activity(ActivityCategory::Meeting));
        let on_queue = Some(ShiftView::Activity(ActivityCategory::OnQueueWork));
        let mut personal = meeting("personal", (8, 12), 60, meeting_activity);
        personal.entry.categories = vec!["Personal".to_owned()];
        let ada = agent(1, &[]);
        let lead = agent(2, &["g-leads"]);
        let week = vec![
            (
                ada.clone(),
                vec![
                    meeting("standup", (7, 9), 10, meeting_activity),
                    meeting("review", (7, 14), 60, meeting_activity),
                    personal,
                    // On queue then, and short: skipped under both (for different reasons), so
                    // no difference.
                    meeting("on-queue", (9, 10), 5, on_queue),
                ],
            ),
            (
                lead.clone(),
                vec![meeting("planning", (10, 9), 60, meeting_activity)],
            ),
        ];
        let found = differences(&current, &proposed, &week);
        let listed: Vec<(&str, String, String)> = found
            .iter()
            .map(|d| {
                (
                    d.trigger.as_str(),
                    d.now.to_string(),
                    d.proposed.to_string(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "standup",
                    "Meeting (profile default)".to_owned(),
                    "skipped: the entry lasts 10 min; the policy skips entries under 15 min (profile default)"
                        .to_owned()
                ),
                (
                    "personal",
                    "Meeting (profile default)".to_owned(),
                    "skipped: rule \"ignore-personal\": personal entries are not meetings (profile default)"
                        .to_owned()
                ),
                (
                    "planning",
                    "Meeting (profile default)".to_owned(),
                    "Busy (profile leads)".to_owned()
                ),
            ]
        );
        assert!(differences(&current, &current, &week).is_empty());
    }
}
