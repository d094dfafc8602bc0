//! What the policy commands replay: the agents (connected ones, and others named), each with
//! the policies' groups they belong to (and their WFM management unit when a selector names
//! units), their published schedule over the range (one search per business unit and 100
//! agents) and their mirrored meetings starting in it.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::json;

use super::{CliError, Operations};
use crate::events::{InboundEvent, parse_value};
use crate::genesys::GenesysTeams;
use crate::model::UserId;
use crate::operator::forecast::Member;
use crate::operator::policy_diff::{Agent, Meeting};
use crate::policy::Policy;
use crate::ports::{ConnectionStore, TeamDirectory};
use crate::wfm::WfmShifts;

/// A member of the floor, and whether their calendar is connected (else: no known meetings).
#[derive(Debug, Clone)]
pub struct FloorMember {
    pub agent: Agent,
    pub schedule: Option<crate::decide::ShiftWindow>,
    pub meetings: Vec<Meeting>,
    pub connected: bool,
}

impl From<FloorMember> for Member {
    fn from(m: FloorMember) -> Self {
        Member {
            agent: m.agent,
            schedule: m.schedule,
            meetings: m.meetings,
        }
    }
}

/// The policy in force: the stack's parameter, as the functions load it.
pub async fn policy_in_force(ops: &Operations, parameter: &str) -> Result<Policy, CliError> {
    use crate::ports::PolicySource as _;
    let stored = crate::aws::ssm::SsmPolicy::new(aws_sdk_ssm::Client::new(&ops.aws), parameter)
        .fetch()
        .await
        .map_err(|e| CliError::Service(format!("policy parameter {parameter}: {e}")))?;
    Policy::from_toml(&stored.text).map_err(|e| {
        CliError::Service(format!(
            "the policy in force ({parameter}) does not load: {e}"
        ))
    })
}

/// The agents of `team` (a profile of `policy`): its groups' members and the users it names by
/// id (counted even without a calendar), and the connected agents it selects; over the range.
pub async fn team(
    ops: &Operations,
    policy: &Policy,
    team: &str,
    range: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<FloorMember>, CliError> {
    let Some(profile) = policy.profile(team) else {
        let names: Vec<&str> = policy.all_profiles().map(|p| p.profile.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--team {team:?}: the policy's teams are {}",
            names.join(", ")
        )));
    };
    let mut named: Vec<UserId> = profile
        .selector
        .users
        .iter()
        .filter_map(|u| UserId::parse(u).ok())
        .collect();
    let teams = GenesysTeams::new(ops.genesys()?.clone(), ops.clock.clone());
    for group in &profile.selector.groups {
        let found = teams
            .group_members(group, ops.deadline())
            .await
            .map_err(|e| CliError::Service(e.to_string()))?;
        named.extend(found.iter().cloned());
    }
    let floor = floor(ops, &teams, &[policy], &named, range).await?;
    Ok(floor
        .into_iter()
        .filter(|m| {
            policy
                .profile_for(&crate::policy::Agent {
                    user: &m.agent.user,
                    email: m.agent.email.as_deref(),
                    groups: &m.agent.groups,
                    management_unit: m.agent.management_unit.as_deref(),
                })
                .profile
                == team
        })
        .collect())
}

/// Reads in flight at once (mirror queries, management-unit lookups).
const READS: usize = 16;

/// The connected agents and `extra`, over `[from, to)`; `teams` caches group members across
/// the calls of one command.
pub async fn floor(
    ops: &Operations,
    teams: &GenesysTeams,
    policies: &[&Policy],
    extra: &[UserId],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<FloorMember>, CliError> {
    let genesys = ops.genesys()?;
    let service = |e: &dyn std::fmt::Display| CliError::Service(e.to_string());
    let store = ops.connections()?;
    let connections = store.list().await?;
    let emails: HashMap<UserId, String> = connections
        .iter()
        .map(|c| (c.user_id.clone(), c.email.clone()))
        .collect();
    let mut seen: HashSet<UserId> = emails.keys().cloned().collect();
    let mut users: Vec<UserId> = connections.iter().map(|c| c.user_id.clone()).collect();
    users.extend(extra.iter().filter(|u| seen.insert((*u).clone())).cloned());
    let groups: BTreeSet<String> = policies.iter().flat_map(|p| p.groups_named()).collect();
    let mut members = HashMap::new();
    for group in &groups {
        let found = teams
            .group_members(group, ops.deadline())
            .await
            .map_err(|e| service(&e))?;
        members.insert(group.clone(), found);
    }
    let by_unit = policies.iter().any(|p| p.selects_by_management_unit());
    let windows = WfmShifts::new(genesys.clone(), ops.clock.clone(), Vec::new())
        .windows(&users, from, to, ops.deadline())
        .await
        .map_err(|e| service(&e))?;
    // Long for a large floor: a bar on stderr when it is a terminal (indicatif hides it
    // otherwise), none in the answer.
    let progress = indicatif::ProgressBar::new(users.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} agents' meetings read")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (store, windows, members, emails) = (&store, &windows, &members, &emails);
    let progress = &progress;
    let read: Result<Vec<FloorMember>, CliError> = futures::stream::iter(users)
        .map(|user| async move {
            let schedule = windows.get(&user).cloned();
            let connected = emails.contains_key(&user);
            let meetings = if connected {
                known_meetings(store, &user, schedule.as_ref(), (from, to)).await?
            } else {
                Vec::new()
            };
            let management_unit = if by_unit {
                teams
                    .management_unit(&user, ops.deadline())
                    .await
                    .map_err(|e| service(&e))?
            } else {
                None
            };
            let in_groups: HashSet<String> = members
                .iter()
                .filter(|(_, found)| found.contains(&user))
                .map(|(group, _)| group.clone())
                .collect();
            progress.inc(1);
            Ok(FloorMember {
                agent: Agent {
                    email: emails.get(&user).cloned(),
                    user,
                    groups: in_groups,
                    management_unit,
                },
                schedule,
                meetings,
                connected,
            })
        })
        .buffered(READS)
        .collect::<Vec<Result<FloorMember, CliError>>>()
        .await
        .into_iter()
        .collect();
    progress.finish_and_clear();
    read
}

/// `user`'s mirrored meetings starting in `[from, to)`, each with the WFM activity at its start.
async fn known_meetings(
    store: &crate::aws::connections::DynamoConnections,
    user: &UserId,
    schedule: Option<&crate::decide::ShiftWindow>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<Meeting>, CliError> {
    let mut meetings = Vec::new();
    for mirrored in store.mirror(user).await?.into_values() {
        let event = json!({"id": "replay", "detail-type": "Calendar Event Upserted",
                           "source": "autopilot", "detail": mirrored.detail});
        let Ok(parsed) = parse_value(event) else {
            continue; // refused when it arrived; nothing the policy decides
        };
        let InboundEvent::Calendar { entry, .. } = parsed.event else {
            continue;
        };
        if entry.start < from || entry.start >= to {
            continue;
        }
        let shift = schedule.and_then(|w| w.view_at(entry.start));
        meetings.push(Meeting { entry, shift });
    }
    meetings.sort_by_key(|m| m.entry.start);
    Ok(meetings)
}
