//! The floor as the forecast, the look-ahead and `policy diff` read it: the agents (connected
//! ones, and others a profile names), each with the policies' groups they belong to (and their
//! WFM management unit when a selector names units), their published schedule over the range
//! (one search per business unit and 100 agents) and their mirrored meetings starting in it.
//! Reads only; an adapter over the connector's store, the team directory and WFM.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::json;

use crate::clock::Deadline;
use crate::decide::ShiftWindow;
use crate::decide::forecast::Member;
use crate::decide::replay::{Agent, Meeting};
use crate::events::{InboundEvent, parse_value};
use crate::model::UserId;
use crate::policy::Policy;
use crate::ports::{ConnectionStore, FloorError, TeamDirectory, TeamFloor};
use crate::wfm::WfmShifts;

/// A member of the floor, and whether their calendar is connected (else: no known meetings).
#[derive(Debug, Clone)]
pub struct FloorMember {
    pub agent: Agent,
    pub schedule: Option<ShiftWindow>,
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

/// Reads in flight at once (mirror queries, management-unit lookups).
const READS: usize = 16;

/// Called once per agent read: the command line draws a progress bar with it.
pub type Progress<'a> = &'a (dyn Fn() + Sync);

/// What we store of the floor, and what Genesys says of it.
#[derive(Debug)]
pub struct StoredFloor {
    pub connections: Arc<dyn ConnectionStore>,
    pub teams: Arc<dyn TeamDirectory>,
    pub schedules: WfmShifts,
}

impl StoredFloor {
    /// The agents of `team` (a profile of `policy`): its groups' members and the users it
    /// names by id (counted even without a calendar), and the connected agents it selects.
    pub async fn team_members(
        &self,
        policy: &Policy,
        team: &str,
        range: (DateTime<Utc>, DateTime<Utc>),
        deadline: Deadline,
        progress: Progress<'_>,
    ) -> Result<Vec<FloorMember>, FloorError> {
        let Some(profile) = policy.profile(team) else {
            let known: Vec<&str> = policy.all_profiles().map(|p| p.profile.as_str()).collect();
            return Err(FloorError::UnknownTeam {
                team: team.to_owned(),
                known: known.join(", "),
            });
        };
        let mut named: Vec<UserId> = profile
            .selector
            .users
            .iter()
            .filter_map(|u| UserId::parse(u).ok())
            .collect();
        for group in &profile.selector.groups {
            named.extend(
                self.teams
                    .group_members(group, deadline)
                    .await?
                    .iter()
                    .cloned(),
            );
        }
        let floor = self
            .floor(&[policy], &named, range, deadline, progress)
            .await?;
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

    /// The connected agents and `extra`, over `[from, to)`.
    pub async fn floor(
        &self,
        policies: &[&Policy],
        extra: &[UserId],
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        deadline: Deadline,
        progress: Progress<'_>,
    ) -> Result<Vec<FloorMember>, FloorError> {
        let connections = self.connections.list().await?;
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
            members.insert(
                group.clone(),
                self.teams.group_members(group, deadline).await?,
            );
        }
        let by_unit = policies.iter().any(|p| p.selects_by_management_unit());
        let windows = self
            .schedules
            .windows(&users, from, to, deadline)
            .await
            .map_err(crate::ports::PlatformError::from)?;
        let (windows, members, emails) = (&windows, &members, &emails);
        futures::stream::iter(users)
            .map(|user| async move {
                let schedule = windows.get(&user).cloned();
                let connected = emails.contains_key(&user);
                let meetings = if connected {
                    self.known_meetings(&user, schedule.as_ref(), (from, to))
                        .await?
                } else {
                    Vec::new()
                };
                let management_unit = if by_unit {
                    self.teams.management_unit(&user, deadline).await?
                } else {
                    None
                };
                let groups: HashSet<String> = members
                    .iter()
                    .filter(|(_, found)| found.contains(&user))
                    .map(|(group, _)| group.clone())
                    .collect();
                progress();
                Ok(FloorMember {
                    agent: Agent {
                        email: emails.get(&user).cloned(),
                        user,
                        groups,
                        management_unit,
                    },
                    schedule,
                    meetings,
                    connected,
                })
            })
            .buffered(READS)
            .collect::<Vec<Result<FloorMember, FloorError>>>()
            .await
            .into_iter()
            .collect()
    }

    /// `user`'s mirrored meetings starting in `[from, to)`, each with the WFM activity at its
    /// start.
    async fn known_meetings(
        &self,
        user: &UserId,
        schedule: Option<&ShiftWindow>,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Vec<Meeting>, FloorError> {
        let mut meetings = Vec::new();
        for mirrored in self.connections.mirror(user).await?.into_values() {
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
}

#[async_trait]
impl TeamFloor for StoredFloor {
    async fn team(
        &self,
        policy: &Policy,
        team: &str,
        range: (DateTime<Utc>, DateTime<Utc>),
        deadline: Deadline,
    ) -> Result<Vec<Member>, FloorError> {
        let members = self
            .team_members(policy, team, range, deadline, &|| {})
            .await?;
        Ok(members.into_iter().map(Member::from).collect())
    }
}
