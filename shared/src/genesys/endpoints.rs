//! The typed Genesys Cloud endpoints the functions use: presence (single, bulk, our
//! compare-and-set), presence definitions, routing status, groups, users, WFM.

use reqwest::Method;

use super::client::{BULK_LIMIT, Call, path_segment, snapshot_of};
use super::wire::{
    ActivityCode, ActivityCodeListing, AgentManagementUnit, AgentManagementUnitReference,
    AsyncScheduleSearchResponse, BulkPresenceChange, BusinessUnitListing, DefinitionListing,
    MemberListing, PresenceChange, PresenceDefinition, RoutingStatusInfo, ScheduleSearchOutcome,
    ScheduleSearchRequest, User, UserListing, UserPresence, UserSearchResponse,
};
use super::{CasOutcome, GenesysClient, GenesysError};
use crate::clock::Deadline;
use crate::model::{PresenceSnapshot, RoutingStatus, SnapshotTag, UserId};

impl GenesysClient {
    pub async fn get_presence(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<PresenceSnapshot, GenesysError> {
        let presence: UserPresence = self
            .call(
                &Call::get(format!("/api/v2/users/{user}/presences/purecloud")),
                deadline,
            )
            .await?;
        snapshot_of(&presence)
    }

    pub async fn patch_presence(
        &self,
        user: &UserId,
        change: &PresenceChange,
        deadline: Deadline,
    ) -> Result<PresenceSnapshot, GenesysError> {
        let call = Call::with_body(
            Method::PATCH,
            format!("/api/v2/users/{user}/presences/purecloud"),
            change,
        )?;
        let presence: UserPresence = self.call(&call, deadline).await?;
        snapshot_of(&presence)
    }

    /// Our own If-Match: read the presence, write only if its tag is `expected`. `seen` is a
    /// snapshot the caller read moments ago and judges fresh enough to stand for that read.
    ///
    /// Genesys offers no conditional write, so a change landing between our read and our PATCH
    /// (one round trip, typically tens of milliseconds) is still overwritten; the presence
    /// events that follow let the caller notice it (see docs/genesys-client.md).
    pub async fn compare_and_set_presence(
        &self,
        user: &UserId,
        expected: &SnapshotTag,
        change: &PresenceChange,
        seen: Option<&PresenceSnapshot>,
        deadline: Deadline,
    ) -> Result<CasOutcome, GenesysError> {
        let current = match seen {
            Some(seen) => seen.clone(),
            None => self.get_presence(user, deadline).await?,
        };
        if current.tag() != *expected {
            return Ok(CasOutcome::Refused { current });
        }
        let after = self.patch_presence(user, change, deadline).await?;
        Ok(CasOutcome::Applied {
            before: current,
            after,
        })
    }

    /// Presences of many users, 50 per call; users Genesys does not know are left out.
    pub async fn bulk_get_presences(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, GenesysError> {
        let mut found = Vec::with_capacity(users.len());
        for chunk in users.chunks(BULK_LIMIT) {
            let ids: Vec<&str> = chunk.iter().map(UserId::as_str).collect();
            let mut call = Call::get("/api/v2/users/presences/purecloud/bulk".to_owned());
            call.query.push(("id", ids.join(",")));
            let items: Vec<UserPresence> = self.call(&call, deadline).await?;
            for item in &items {
                let user = item
                    .user_id
                    .as_deref()
                    .and_then(|id| UserId::parse(id).ok())
                    .ok_or_else(|| GenesysError::Decode {
                        message: "bulk presence item without a valid userId".to_owned(),
                        correlation_id: None,
                    })?;
                found.push((user, snapshot_of(item)?));
            }
        }
        Ok(found)
    }

    /// Sets many users' presences, 50 per call; returns each user's new snapshot.
    pub async fn bulk_put_presences(
        &self,
        changes: &[(UserId, PresenceChange)],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, GenesysError> {
        let mut applied = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(BULK_LIMIT) {
            let body: Vec<BulkPresenceChange> = chunk
                .iter()
                .map(|(user, change)| BulkPresenceChange {
                    id: user.as_str().to_owned(),
                    change: change.clone(),
                })
                .collect();
            let call = Call::with_body(
                Method::PUT,
                "/api/v2/users/presences/bulk".to_owned(),
                &body,
            )?;
            let items: Vec<UserPresence> = self.call(&call, deadline).await?;
            if items.len() != chunk.len() {
                return Err(GenesysError::Decode {
                    message: format!(
                        "bulk PUT answered {} presences for {} users",
                        items.len(),
                        chunk.len()
                    ),
                    correlation_id: None,
                });
            }
            for ((user, _), item) in chunk.iter().zip(&items) {
                applied.push((user.clone(), snapshot_of(item)?));
            }
        }
        Ok(applied)
    }

    // ------------------------------------------------------------ definitions, users, routing

    /// Active presence definitions (system and org secondary) from `/api/v2/presence/definitions`.
    pub async fn presence_definitions(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<PresenceDefinition>, GenesysError> {
        let mut call = Call::get("/api/v2/presence/definitions".to_owned());
        call.query.push(("deactivated", "false".to_owned()));
        let listing: DefinitionListing = self.call(&call, deadline).await?;
        Ok(listing.entities)
    }

    pub async fn routing_status(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<RoutingStatusInfo, GenesysError> {
        self.call(
            &Call::get(format!("/api/v2/users/{user}/routingstatus")),
            deadline,
        )
        .await
    }

    /// Routing statuses of many users, 100 per call (`GET /api/v2/users?id=…&expand=routingStatus`).
    /// Users Genesys does not return are OFF_QUEUE, as the single-user endpoint reports them.
    pub async fn routing_statuses(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, RoutingStatus)>, GenesysError> {
        const PAGE: usize = 100;
        let mut statuses = Vec::with_capacity(users.len());
        for chunk in users.chunks(PAGE) {
            let ids: Vec<&str> = chunk.iter().map(UserId::as_str).collect();
            let mut call = Call::get("/api/v2/users".to_owned());
            call.query.push(("id", ids.join(",")));
            call.query.push(("expand", "routingStatus".to_owned()));
            call.query.push(("pageSize", PAGE.to_string()));
            let listing: UserListing = self.call(&call, deadline).await?;
            for user in chunk {
                let status = listing
                    .entities
                    .iter()
                    .find(|e| e.id == user.as_str())
                    .and_then(|e| e.routing_status.as_ref())
                    .map_or(RoutingStatus::OffQueue, |r| r.status.clone());
                statuses.push((user.clone(), status));
            }
        }
        Ok(statuses)
    }

    /// Every member of a group (`GET /api/v2/groups/{groupId}/members`), all pages; the
    /// calendar roster. At most `max_pages` pages of 100, so a wrong group cannot run forever.
    pub async fn group_members(
        &self,
        group_id: &str,
        max_pages: u32,
        deadline: Deadline,
    ) -> Result<Vec<User>, GenesysError> {
        const PAGE: u32 = 100;
        let group_id = path_segment("groupId", group_id)?;
        let mut members = Vec::new();
        for page in 1..=max_pages {
            let mut call = Call::get(format!("/api/v2/groups/{group_id}/members"));
            call.query.push(("pageSize", PAGE.to_string()));
            call.query.push(("pageNumber", page.to_string()));
            let listing: MemberListing = self.call(&call, deadline).await?;
            members.extend(listing.entities);
            if listing.page_count.is_none_or(|count| page >= count) {
                return Ok(members);
            }
        }
        Err(GenesysError::Decode {
            message: format!("group {group_id} has more than {max_pages} pages of members"),
            correlation_id: None,
        })
    }

    /// The user with exactly this e-mail, if any.
    pub async fn find_user_by_email(
        &self,
        email: &str,
        deadline: Deadline,
    ) -> Result<Option<User>, GenesysError> {
        let body = serde_json::json!({
            "pageSize": 2,
            "pageNumber": 1,
            "query": [{"type": "EXACT", "fields": ["email"], "value": email}],
        });
        let call = Call::with_body(Method::POST, "/api/v2/users/search".to_owned(), &body)?;
        let response: UserSearchResponse = self.call(&call, deadline).await?;
        Ok(response.results.into_iter().find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }

    // ------------------------------------------------------------ WFM

    pub async fn agent_management_unit(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<AgentManagementUnit, GenesysError> {
        let mut call = Call::get(format!(
            "/api/v2/workforcemanagement/agents/{user}/managementunit"
        ));
        call.query.push(("expand", "businessUnit".to_owned()));
        let reference: AgentManagementUnitReference = self.call(&call, deadline).await?;
        let business_unit = reference
            .business_unit
            .ok_or_else(|| GenesysError::Decode {
                message: "agent management unit without businessUnit".to_owned(),
                correlation_id: None,
            })?;
        Ok(AgentManagementUnit {
            management_unit_id: reference.management_unit.id,
            business_unit_id: business_unit.id,
        })
    }

    /// The ids of the org's WFM business units (`GET /api/v2/workforcemanagement/businessunits`).
    pub async fn business_units(&self, deadline: Deadline) -> Result<Vec<String>, GenesysError> {
        let listing: BusinessUnitListing = self
            .call(
                &Call::get("/api/v2/workforcemanagement/businessunits".to_owned()),
                deadline,
            )
            .await?;
        Ok(listing.entities.into_iter().map(|unit| unit.id).collect())
    }

    pub async fn search_schedules(
        &self,
        business_unit_id: &str,
        request: &ScheduleSearchRequest,
        deadline: Deadline,
    ) -> Result<ScheduleSearchOutcome, GenesysError> {
        let bu = path_segment("businessUnitId", business_unit_id)?;
        let call = Call::with_body(
            Method::POST,
            format!("/api/v2/workforcemanagement/businessunits/{bu}/agentschedules/search"),
            request,
        )?;
        let response: AsyncScheduleSearchResponse = self.call(&call, deadline).await?;
        match (response.status.as_str(), response.result) {
            ("Complete", Some(result)) => Ok(ScheduleSearchOutcome::Complete(result)),
            ("Processing", _) | ("Complete", None) => Ok(ScheduleSearchOutcome::Processing {
                operation_id: response.operation_id,
            }),
            (status, _) => Err(GenesysError::Server {
                status: 500,
                message: format!("schedule search ended with status {status}"),
                correlation_id: None,
            }),
        }
    }

    pub async fn activity_codes(
        &self,
        business_unit_id: &str,
        deadline: Deadline,
    ) -> Result<Vec<ActivityCode>, GenesysError> {
        let bu = path_segment("businessUnitId", business_unit_id)?;
        let listing: ActivityCodeListing = self
            .call(
                &Call::get(format!(
                    "/api/v2/workforcemanagement/businessunits/{bu}/activitycodes"
                )),
                deadline,
            )
            .await?;
        Ok(listing.entities)
    }

    // ------------------------------------------------------------ transport
}
