//! `GET /v1.0/users/{id | userPrincipalName}` (directory lookup; not limited by the mailbox
//! access policy, so the outsider resolves too).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::Sim;
use crate::calendar::base_url;
use crate::error::{GraphError, graph_json};

pub async fn get_user(
    State(sim): State<Arc<Sim>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let state = sim.lock();
    let found = state.user(&user).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{user}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    })?;
    let seed = &found.seed;
    let body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users/$entity", base_url(&headers)),
        "businessPhones": [],
        "displayName": seed.display_name,
        "givenName": null,
        "jobTitle": null,
        "mail": seed.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": null,
        "surname": null,
        "userPrincipalName": seed.user_principal_name,
        "id": seed.id,
    });
    Ok(graph_json(StatusCode::OK, &body))
}
