//! The outermost layer of the Google-facing routes: the request log (`GET /sim/requests`), with
//! the user a call was made for.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::Sim;
use crate::auth::Caller;
use crate::state::RequestRecord;

pub async fn observe(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let response = next.run(request).await;
    let sub = response.extensions().get::<Caller>().map(|c| c.sub.clone());
    let mut state = sim.lock();
    let at = state.now();
    state.record_request(RequestRecord {
        seq: 0,
        at,
        method,
        path,
        query,
        sub,
        status: response.status().as_u16(),
    });
    response
}
