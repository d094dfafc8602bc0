//! The calendar roster from Genesys: the members of one group (`ROSTER_GROUP_ID`).

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
