//! Function URL request in, endpoint call, Function URL response out.

use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::service::calendar_notify::{
    EndpointRequest, EndpointResponse, MAX_BODY_BYTES, NotifyService,
};
use presence_autopilot::telemetry::{self, Unit};

pub type FunctionUrlRequest = LambdaFunctionUrlRequest;

/// The request as the endpoint sees it; a body that is not valid base64 is an empty one (and
/// refused as such).
pub fn endpoint_request(
    request: &LambdaFunctionUrlRequest,
) -> Result<EndpointRequest, EndpointResponse> {
    let raw = request.body.as_deref().unwrap_or("");
    // Base64 is 4/3 of the bytes: refuse what cannot fit before decoding it.
    if raw.len() > MAX_BODY_BYTES / 3 * 4 + 4 {
        return Err(EndpointResponse {
            status: 413,
            content_type: "text/plain; charset=utf-8",
            body: "body too large".to_owned(),
        });
    }
    let body = if request.is_base64_encoded {
        STANDARD.decode(raw).unwrap_or_default()
    } else {
        raw.as_bytes().to_vec()
    };
    Ok(EndpointRequest {
        method: request
            .request_context
            .http
            .method
            .clone()
            .unwrap_or_default(),
        path: request.raw_path.clone().unwrap_or_default(),
        raw_query: request.raw_query_string.clone().unwrap_or_default(),
        // Function URLs lower-case header names; a value that is not text is left out.
        headers: request
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?;
                Some((name.as_str().to_ascii_lowercase(), value.to_owned()))
            })
            .collect(),
        body,
    })
}

pub fn function_url_response(response: EndpointResponse) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(response.content_type),
    );
    // Never sniffed as HTML, whatever a validation token holds.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let mut out = LambdaFunctionUrlResponse::default();
    out.status_code = i64::from(response.status);
    out.headers = headers;
    out.body = Some(response.body);
    out.is_base64_encoded = false;
    out
}

pub async fn handle(
    service: &NotifyService,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, Diagnostic> {
    let (request, context) = event.into_parts();
    Ok(respond(service, &request, &context.request_id).await)
}

/// The answer to one request; failures to queue become a 503 so Graph delivers again.
pub async fn respond(
    service: &NotifyService,
    request: &LambdaFunctionUrlRequest,
    request_id: &str,
) -> LambdaFunctionUrlResponse {
    let request = match endpoint_request(request) {
        Ok(request) => request,
        Err(refused) => return function_url_response(refused),
    };
    match service.handle(&request).await {
        Ok(handled) => {
            let report = &handled.report;
            // Counts only: never a token, a client state or an item's content.
            tracing::info!(
                request_id,
                status = handled.response.status,
                handshake = report.handshake,
                items = report.items,
                accepted = report.accepted,
                unknown = report.unknown,
                forged = report.forged,
                enqueued = report.enqueued,
                "notification request"
            );
            if !report.handshake {
                let count = |n: usize| n as f64;
                telemetry::emit(
                    &[("Function", "calendar-notify")],
                    &[
                        ("NotificationsAccepted", count(report.accepted), Unit::Count),
                        ("NotificationsUnknown", count(report.unknown), Unit::Count),
                        ("NotificationsForged", count(report.forged), Unit::Count),
                    ],
                );
            }
            function_url_response(handled.response)
        }
        Err(error) => {
            tracing::error!(request_id, %error, "could not queue the sync work");
            function_url_response(EndpointResponse {
                status: 503,
                content_type: "text/plain; charset=utf-8",
                body: "try again".to_owned(),
            })
        }
    }
}
