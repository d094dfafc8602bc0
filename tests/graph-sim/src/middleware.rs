//! The outermost layer of the Graph-facing routes: `request-id` / `client-request-id` headers,
//! Graph error bodies that name the same ids, and the request log (`GET /sim/requests`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::Sim;
use crate::error::GraphError;
use crate::state::RequestRecord;

pub async fn observe(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| request_id.clone(), str::to_owned);
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let mailbox = sim.lock().mailbox_of(&path);

    let mut response = next.run(request).await;

    let date = sim.lock().now().format("%Y-%m-%dT%H:%M:%S").to_string();
    if let Some(error) = response.extensions().get::<GraphError>().cloned() {
        error.rewrite(&mut response, &request_id, &client_request_id, &date);
    }
    let headers = response.headers_mut();
    for (name, value) in [
        ("request-id", &request_id),
        ("client-request-id", &client_request_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    let mut state = sim.lock();
    let at = state.now();
    state.record_request(RequestRecord {
        seq: 0,
        at,
        method,
        path,
        query,
        mailbox,
        status: response.status().as_u16(),
        request_id,
    });
    response
}
