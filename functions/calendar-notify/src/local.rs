//! The handler over plain HTTP: each request becomes the Function URL event Lambda would send.

use std::sync::Arc;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use presence_autopilot::service::calendar_notify::NotifyService;

async fn serve(
    State(service): State<Arc<NotifyService>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = LambdaFunctionUrlRequest::default();
    request.headers = headers;
    request.raw_path = Some(uri.path().to_owned());
    request.raw_query_string = Some(uri.query().unwrap_or("").to_owned());
    request.request_context.http.method = Some(method.to_string());
    request.body = Some(String::from_utf8_lossy(&body).into_owned());
    request.is_base64_encoded = false;
    let answer = crate::handler::respond(&service, &request, "local").await;
    let status = u16::try_from(answer.status_code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, answer.headers, answer.body.unwrap_or_default()).into_response()
}

/// Every path to the handler, as the Function URL does.
pub fn router(service: Arc<NotifyService>) -> axum::Router {
    axum::Router::new().fallback(serve).with_state(service)
}
