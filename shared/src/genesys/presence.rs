//! `GenesysClient` as the services' `PresenceApi`: Genesys errors become `PlatformError`.

use async_trait::async_trait;

use super::wire::PresenceChange;
use super::{AuthTimings, CasOutcome, GenesysClient, GenesysError};
use crate::clock::Deadline;
use crate::model::{PresenceDefinition, PresenceSnapshot, RoutingStatus, SnapshotTag, UserId};
use crate::ports::{PlatformError, PresenceApi, PresenceCatalog, RoutingStatuses, UserDirectory};
use crate::state::PresenceRef;

fn change(to: &PresenceRef) -> PresenceChange {
    PresenceChange::to(&to.definition_id, Some(to.message.clone()))
}

#[async_trait]
impl PresenceApi for GenesysClient {
    async fn presence(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<PresenceSnapshot, PlatformError> {
        Ok(self.get_presence(user, deadline).await?)
    }

    async fn presences(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, PlatformError> {
        Ok(self.bulk_get_presences(users, deadline).await?)
    }

    async fn compare_and_set(
        &self,
        user: &UserId,
        expected: &SnapshotTag,
        to: &PresenceRef,
        seen: Option<&PresenceSnapshot>,
        deadline: Deadline,
    ) -> Result<CasOutcome, PlatformError> {
        Ok(self
            .compare_and_set_presence(user, expected, &change(to), seen, deadline)
            .await?)
    }

    async fn set_presences(
        &self,
        changes: &[(UserId, PresenceRef)],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, PlatformError> {
        let changes: Vec<(UserId, PresenceChange)> = changes
            .iter()
            .map(|(user, to)| (user.clone(), change(to)))
            .collect();
        Ok(self.bulk_put_presences(&changes, deadline).await?)
    }

    fn take_auth_timings(&self) -> AuthTimings {
        GenesysClient::take_auth_timings(self)
    }
}

#[async_trait]
impl RoutingStatuses for GenesysClient {
    async fn routing_statuses(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, RoutingStatus)>, PlatformError> {
        Ok(GenesysClient::routing_statuses(self, users, deadline).await?)
    }
}

#[async_trait]
impl PresenceCatalog for GenesysClient {
    async fn presence_definitions(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<PresenceDefinition>, PlatformError> {
        Ok(GenesysClient::presence_definitions(self, deadline).await?)
    }
}

#[async_trait]
impl UserDirectory for GenesysClient {
    async fn user_by_email(
        &self,
        email: &str,
        deadline: Deadline,
    ) -> Result<Option<UserId>, PlatformError> {
        match self.find_user_by_email(email, deadline).await? {
            Some(user) => UserId::parse(&user.id).map(Some).map_err(|e| {
                GenesysError::Decode {
                    message: e.to_string(),
                    correlation_id: None,
                }
                .into()
            }),
            None => Ok(None),
        }
    }
}
