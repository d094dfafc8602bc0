//! Groups: `GET /api/v2/groups/{groupId}/members` (the SDK's `get_group_members`, a
//! `UserEntityListing`) and the control route that sets a group's members.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::Sim;
use crate::api::{page_listing, user_json};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersQuery {
    page_size: Option<u32>,
    page_number: Option<u32>,
}

pub async fn members(
    State(sim): State<Arc<Sim>>,
    Path(group_id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<MembersQuery>,
) -> Result<Response, ApiError> {
    let page_size = query.page_size.unwrap_or(25);
    let page_number = query.page_number.unwrap_or(1);
    if page_size == 0 || page_size > 100 {
        return Err(ApiError::invalid_value("pageSize", &page_size.to_string()));
    }
    if page_number == 0 {
        return Err(ApiError::invalid_value("pageNumber", "0"));
    }
    let state = sim.lock();
    let ids = state.groups.get(&group_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "general.resource.not.found",
            format!("Group {group_id} not found."),
        )
    })?;
    let users = ids
        .iter()
        .filter_map(|id| state.users.get(id))
        .map(user_json)
        .collect();
    let base = format!("/api/v2/groups/{group_id}/members");
    Ok(Json(page_listing(users, page_size, page_number, &base)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetMembers {
    member_ids: Vec<String>,
}

/// `PUT /sim/groups/{groupId}/members {"memberIds": [...]}`: creates the group if needed.
pub async fn set_members(
    State(sim): State<Arc<Sim>>,
    Path(group_id): Path<String>,
    Json(body): Json<SetMembers>,
) -> Response {
    let mut state = sim.lock();
    state
        .groups
        .insert(group_id.clone(), body.member_ids.clone());
    Json(json!({"id": group_id, "memberIds": body.member_ids})).into_response()
}
