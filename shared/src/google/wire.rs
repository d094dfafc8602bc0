//! Google's wire shapes: token answers, the error model, `events.list` pages and channels.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use crate::calendar::{CalendarError, CreatedSubscription, DeltaItem};
use crate::calendar_client::{clipped, token_answer};
use crate::model::UserId;

/// Google sends no `Retry-After` on rate limits; this is the first backoff step.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The token endpoint's answer. `invalid_grant` means this agent cannot be impersonated (no
/// such user, or delegation withdrawn); `unauthorized_client` means delegation or the scope is
/// not set up for the service account at all.
pub(super) async fn token(
    response: reqwest::Response,
) -> Result<(SecretString, u64), CalendarError> {
    token_answer(response).await?.map_err(|refusal| {
        if refusal.code == "invalid_grant" && refusal.status == StatusCode::BAD_REQUEST {
            CalendarError::AccessDenied {
                operation: "token",
                code: format!("invalid_grant: {}", refusal.message),
            }
        } else {
            refusal.into_auth_error()
        }
    })
}

/// `error.errors[0].reason` of Google's error model.
fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn is_rate_limit(status: StatusCode, reason: &str) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded"))
}

/// The JSON body of a successful answer (`Null` when empty), or the error it means.
pub(super) async fn answer(
    operation: &'static str,
    response: reqwest::Response,
) -> Result<Value, CalendarError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("Retry-After")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(FIRST_BACKOFF, Duration::from_secs);
    let text = response
        .text()
        .await
        .map_err(|e| CalendarError::Transport {
            operation,
            message: e.to_string(),
        })?;
    if status.is_success() {
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(&text).map_err(|e| CalendarError::Protocol {
            operation,
            message: format!("body is not JSON: {e}"),
        });
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let reason = reason(&body).to_owned();
    let message = clipped(body["error"]["message"].as_str().unwrap_or(""));
    if is_rate_limit(status, &reason) {
        return Err(CalendarError::Throttled {
            operation,
            retry_after,
        });
    }
    Err(match status {
        StatusCode::GONE => CalendarError::SyncStateGone { operation },
        StatusCode::NOT_FOUND => CalendarError::NotFound { operation },
        StatusCode::FORBIDDEN => CalendarError::AccessDenied {
            operation,
            code: reason,
        },
        StatusCode::UNAUTHORIZED => CalendarError::Auth { operation, message },
        _ => CalendarError::Status {
            operation,
            status: status.as_u16(),
            code: reason,
            message,
        },
    })
}

/// One `events.list` page: its items (cancelled ones as removals) and the two tokens.
pub(super) struct EventsPage {
    pub items: Vec<DeltaItem>,
    pub next_page_token: Option<String>,
    pub next_sync_token: Option<String>,
}

pub(super) fn events_page(body: Value, owner: &UserId) -> Result<EventsPage, CalendarError> {
    const OPERATION: &str = "events.list";
    let protocol = |message: &str| CalendarError::Protocol {
        operation: OPERATION,
        message: message.to_owned(),
    };
    let Value::Object(mut page) = body else {
        return Err(protocol("the page is not a JSON object"));
    };
    let token = |page: &serde_json::Map<String, Value>, key: &str| {
        page.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let next_page_token = token(&page, "nextPageToken");
    let next_sync_token = token(&page, "nextSyncToken");
    if next_page_token.is_none() == next_sync_token.is_none() {
        return Err(protocol(
            "a page must carry exactly one of nextPageToken and nextSyncToken",
        ));
    }
    let values = match page.remove("items") {
        Some(Value::Array(values)) => values,
        // Google leaves `items` out of an empty page.
        None => Vec::new(),
        Some(_) => return Err(protocol("items is not an array")),
    };
    let mut items = Vec::with_capacity(values.len());
    for value in values {
        let id = value["id"]
            .as_str()
            .ok_or_else(|| protocol("an item has no id"))?
            .to_owned();
        // A deleted event, or a cancelled occurrence of a series: only its id is promised.
        if value["status"].as_str() == Some("cancelled") {
            items.push(DeltaItem::Removed { id });
        } else {
            items.push(super::event::read(owner, &value));
        }
    }
    Ok(EventsPage {
        items,
        next_page_token,
        next_sync_token,
    })
}

/// The channel `events.watch` created. `expiration` is int64 milliseconds, sent as a string.
pub(super) fn channel(body: &Value) -> Result<CreatedSubscription, CalendarError> {
    const OPERATION: &str = "events.watch";
    let protocol = |message: String| CalendarError::Protocol {
        operation: OPERATION,
        message,
    };
    let field = |key: &str| {
        body[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| protocol(format!("the channel has no {key}")))
    };
    let expiration = match &body["expiration"] {
        Value::String(ms) => ms.parse::<i64>().ok(),
        Value::Number(ms) => ms.as_i64(),
        _ => None,
    }
    .ok_or_else(|| protocol("the channel has no expiration in milliseconds".to_owned()))?;
    let expires_at: DateTime<Utc> = DateTime::from_timestamp_millis(expiration)
        .ok_or_else(|| protocol(format!("expiration {expiration} is out of range")))?;
    Ok(CreatedSubscription {
        id: field("id")?,
        expires_at,
        resource_id: Some(field("resourceId")?),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn owner() -> UserId {
        UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid")
    }

    #[test]
    fn cancelled_items_are_removals_and_the_sync_token_ends_the_round() {
        let page = events_page(json!({
            "kind": "calendar#events",
            "nextSyncToken": "CPDAlvWDx70CEPDAlvWDx70CGAU=",
            "items": [
                {"kind": "calendar#event", "id": "a", "status": "confirmed",
                 "start": {"dateTime": "2026-03-19T10:00:00Z"}, "end": {"dateTime": "2026-03-19T11:00:00Z"}},
                {"kind": "calendar#event", "id": "b", "status": "cancelled"},
                {"kind": "calendar#event", "id": "c_20260319T090000Z", "status": "cancelled",
                 "recurringEventId": "c", "originalStartTime": {"dateTime": "2026-03-19T09:00:00Z"}}
            ]
        }), &owner())
        .expect("valid page");
        assert!(matches!(&page.items[0], DeltaItem::Changed(_)));
        assert!(matches!(&page.items[1], DeltaItem::Removed { id } if id == "b"));
        assert!(matches!(&page.items[2], DeltaItem::Removed { id } if id == "c_20260319T090000Z"));
        assert!(page.next_page_token.is_none());
        assert_eq!(
            page.next_sync_token.as_deref(),
            Some("CPDAlvWDx70CEPDAlvWDx70CGAU=")
        );
    }

    #[test]
    fn malformed_pages_are_protocol_errors() {
        for body in [
            json!([]),
            json!({"items": []}),
            json!({"nextPageToken": "a", "nextSyncToken": "b"}),
            json!({"nextSyncToken": "b", "items": [{"status": "confirmed"}]}),
            json!({"nextSyncToken": "b", "items": {}}),
        ] {
            assert!(matches!(
                events_page(body, &owner()),
                Err(CalendarError::Protocol { .. })
            ));
        }
    }

    #[test]
    fn channels_carry_their_resource_and_expiry_in_milliseconds() {
        let created = channel(&json!({
            "kind": "api#channel", "id": "c1", "resourceId": "r1",
            "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/a/events",
            "expiration": "1774519200000"
        }))
        .expect("channel");
        assert_eq!(created.resource_id.as_deref(), Some("r1"));
        assert_eq!(created.expires_at.timestamp(), 1_774_519_200);
        assert!(channel(&json!({"id": "c1", "resourceId": "r1"})).is_err());
    }
}
