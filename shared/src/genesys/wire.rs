//! Request and response bodies of the Platform API v2 endpoints the functions use. Unknown
//! fields are ignored, as the official SDKs do, so additive API changes never break us.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    ActivityCategory, PresenceDefinitionId, PresenceSnapshot, RoutingStatus, SystemPresence,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceDefinitionRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_presence: Option<String>,
}

/// `UserPresence` (single GET/PATCH) and `UcUserPresence` (bulk GET, which adds `userId`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPresence {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub presence_definition: Option<PresenceDefinitionRef>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub modified_date: Option<DateTime<Utc>>,
}

impl UserPresence {
    /// The snapshot we version on; definition and modifiedDate are required for that.
    pub fn snapshot(&self) -> Result<PresenceSnapshot, &'static str> {
        let definition = self
            .presence_definition
            .as_ref()
            .ok_or("presenceDefinition")?;
        let definition_id =
            PresenceDefinitionId::parse(&definition.id).map_err(|_| "presenceDefinition.id")?;
        Ok(PresenceSnapshot {
            definition_id,
            system_presence: SystemPresence::parse(
                definition.system_presence.as_deref().unwrap_or_default(),
            ),
            message: self.message.clone().unwrap_or_default(),
            modified_date: self.modified_date.ok_or("modifiedDate")?,
        })
    }
}

/// Body of a presence PATCH: any of definition, message, primary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_definition: Option<DefinitionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

impl PresenceChange {
    pub fn to(definition: &PresenceDefinitionId, message: Option<String>) -> Self {
        Self {
            presence_definition: Some(DefinitionId {
                id: definition.as_str().to_owned(),
            }),
            message,
            primary: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionId {
    pub id: String,
}

/// One item of the bulk PUT (`MutableUserPresence`); `id` is the user id.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkPresenceChange {
    pub id: String,
    #[serde(flatten)]
    pub change: PresenceChange,
}

pub use crate::model::PresenceDefinition;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DefinitionListing {
    #[serde(default)]
    pub entities: Vec<PresenceDefinition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingStatusInfo {
    #[serde(default)]
    pub user_id: Option<String>,
    pub status: RoutingStatus,
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /api/v2/users?id=…&expand=routingStatus` items.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserWithRouting {
    pub id: String,
    #[serde(default)]
    pub routing_status: Option<RoutingStatusInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UserListing {
    #[serde(default)]
    pub entities: Vec<UserWithRouting>,
}

/// `GET /api/v2/groups/{groupId}/members` (a `UserEntityListing`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberListing {
    #[serde(default)]
    pub entities: Vec<User>,
    #[serde(default)]
    pub page_count: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UserSearchResponse {
    #[serde(default)]
    pub results: Vec<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EntityRef {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentManagementUnitReference {
    pub management_unit: EntityRef,
    #[serde(default)]
    pub business_unit: Option<EntityRef>,
}

/// Where an agent sits in WFM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentManagementUnit {
    pub management_unit_id: String,
    pub business_unit_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSearchRequest {
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    pub user_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AsyncScheduleSearchResponse {
    pub status: String,
    #[serde(default)]
    pub operation_id: Option<String>,
    #[serde(default)]
    pub result: Option<ScheduleSearchResult>,
}

/// The answer to a schedule search: at once, or later (WFM computes large searches async).
#[derive(Debug, Clone)]
pub enum ScheduleSearchOutcome {
    Complete(ScheduleSearchResult),
    Processing { operation_id: Option<String> },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSearchResult {
    #[serde(default)]
    pub business_unit_time_zone: Option<String>,
    #[serde(default)]
    pub agent_schedules: Vec<AgentSchedule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSchedule {
    pub user: ScheduleUser,
    #[serde(default)]
    pub shifts: Vec<Shift>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleUser {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shift {
    #[serde(default)]
    pub id: Option<String>,
    pub start_date: DateTime<Utc>,
    pub length_minutes: i64,
    #[serde(default)]
    pub activities: Vec<ScheduledActivity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledActivity {
    pub start_date: DateTime<Utc>,
    pub length_minutes: i64,
    pub activity_code_id: String,
    #[serde(default)]
    pub description: Option<String>,
}

impl ScheduledActivity {
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        at >= self.start_date
            && at < self.start_date + chrono::Duration::minutes(self.length_minutes)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityCode {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    pub category: ActivityCategory,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BusinessUnitListing {
    #[serde(default)]
    pub entities: Vec<EntityRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ActivityCodeListing {
    #[serde(default)]
    pub entities: Vec<ActivityCode>,
}

/// Genesys `ErrorBody`, the fields we use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// The token endpoint's answers.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TokenError {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}
