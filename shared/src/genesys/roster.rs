//! The calendar roster from Genesys: the members of one group (`ROSTER_GROUP_ID`); and team
//! membership for the policy's profiles (groups' members, agents' management units), cached.

use async_trait::async_trait;

use super::GenesysClient;
use crate::clock::Deadline;
use crate::model::UserId;
use crate::ports::{PlatformError, Roster, RosterMember};

/// A roster of thousands fits; more pages than this means a wrong group.
const MAX_PAGES: u32 = 200;

#[derive(Debug, Clone)]
pub struct GroupRoster {
    client: GenesysClient,
    group_id: String,
}

impl GroupRoster {
    pub fn new(client: GenesysClient, group_id: impl Into<String>) -> Self {
        Self {
            client,
            group_id: group_id.into(),
        }
    }
}

#[async_trait]
impl Roster for GroupRoster {
    async fn members(&self, deadline: Deadline) -> Result<Vec<RosterMember>, PlatformError> {
        let users = self
            .client
            .group_members(&self.group_id, MAX_PAGES, deadline)
            .await?;
        Ok(users
            .into_iter()
            .filter_map(|user| match UserId::parse(&user.id) {
                Ok(user_id) => Some(RosterMember {
                    user_id,
                    email: user.email,
                }),
                Err(error) => {
                    tracing::warn!(%error, "roster member skipped");
                    None
                }
            })
            .collect())
    }
}

/// How long a group's members are kept: a new team member is placed within minutes.
const GROUP_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// Management units change rarely; an agent's is re-read hourly.
const UNIT_TTL: chrono::Duration = chrono::Duration::hours(1);

type Cached<T> =
    std::sync::Mutex<std::collections::HashMap<String, (chrono::DateTime<chrono::Utc>, T)>>;

/// `TeamDirectory` from Genesys: group members (paged) and an agent's WFM management unit,
/// each cached per container.
#[derive(Debug)]
pub struct GenesysTeams {
    client: GenesysClient,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    groups: Cached<std::sync::Arc<std::collections::HashSet<UserId>>>,
    units: Cached<Option<String>>,
}

impl GenesysTeams {
    pub fn new(client: GenesysClient, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        Self {
            client,
            clock,
            groups: Default::default(),
            units: Default::default(),
        }
    }

    fn cached<T: Clone>(&self, cache: &Cached<T>, key: &str, ttl: chrono::Duration) -> Option<T> {
        let now = self.clock.now();
        let cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(at, _)| *at + ttl > now)
            .map(|(_, value)| value.clone())
    }

    fn keep<T>(&self, cache: &Cached<T>, key: &str, value: T) {
        let now = self.clock.now();
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), (now, value));
    }
}

#[async_trait]
impl crate::ports::TeamDirectory for GenesysTeams {
    async fn group_members(
        &self,
        group: &str,
        deadline: Deadline,
    ) -> Result<std::sync::Arc<std::collections::HashSet<UserId>>, PlatformError> {
        if let Some(members) = self.cached(&self.groups, group, GROUP_TTL) {
            return Ok(members);
        }
        let users = self
            .client
            .group_members(group, MAX_PAGES, deadline)
            .await?;
        let members: std::collections::HashSet<UserId> = users
            .into_iter()
            .filter_map(|user| UserId::parse(&user.id).ok())
            .collect();
        let members = std::sync::Arc::new(members);
        self.keep(&self.groups, group, members.clone());
        Ok(members)
    }

    async fn management_unit(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<Option<String>, PlatformError> {
        if let Some(unit) = self.cached(&self.units, user.as_str(), UNIT_TTL) {
            return Ok(unit);
        }
        let unit = match self.client.agent_management_unit(user, deadline).await {
            Ok(found) => Some(found.management_unit_id),
            Err(super::GenesysError::NotFound { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        self.keep(&self.units, user.as_str(), unit.clone());
        Ok(unit)
    }
}
