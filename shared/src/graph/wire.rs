//! Graph's wire shapes: token answers, error bodies, delta pages and subscriptions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use crate::calendar::{CalendarError, DeltaItem, DeltaPage};
use crate::calendar_client::{TokenRefusal, clipped, token_answer};
use crate::model::UserId;

/// Used when a 429 carries no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A path segment with everything outside the unreserved set percent-encoded.
pub(super) fn path_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The mailbox a Graph link is about (`/users/{id}/...`), for the per-mailbox limit.
pub(super) fn mailbox_of(link: &str) -> String {
    link.split("/users/")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or("")
        .to_owned()
}

pub(super) async fn token(
    response: reqwest::Response,
) -> Result<(SecretString, u64), CalendarError> {
    token_answer(response)
        .await?
        .map_err(TokenRefusal::into_auth_error)
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get("Retry-After")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

/// The status and JSON body of a successful answer, or the error it means.
pub(super) async fn answer(
    operation: &'static str,
    response: reqwest::Response,
) -> Result<(StatusCode, Value), CalendarError> {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        return Err(CalendarError::Throttled {
            operation,
            retry_after: retry_after(&response),
        });
    }
    let text = response
        .text()
        .await
        .map_err(|e| CalendarError::Transport {
            operation,
            message: e.to_string(),
        })?;
    if status.is_success() {
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| CalendarError::Protocol {
                operation,
                message: format!("body is not JSON: {e}"),
            })?
        };
        return Ok((status, body));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    let message = clipped(body["error"]["message"].as_str().unwrap_or(""));
    Err(match status {
        StatusCode::GONE => CalendarError::SyncStateGone { operation },
        StatusCode::NOT_FOUND => CalendarError::NotFound { operation },
        StatusCode::FORBIDDEN => CalendarError::AccessDenied { operation, code },
        StatusCode::UNAUTHORIZED => CalendarError::Auth { operation, message },
        _ => CalendarError::Status {
            operation,
            status: status.as_u16(),
            code,
            message,
        },
    })
}

pub(super) fn delta_page(body: Value, owner: &UserId) -> Result<DeltaPage, CalendarError> {
    const OPERATION: &str = "calendarView/delta";
    let protocol = |message: &str| CalendarError::Protocol {
        operation: OPERATION,
        message: message.to_owned(),
    };
    let Value::Object(mut page) = body else {
        return Err(protocol("the page is not a JSON object"));
    };
    let link = |page: &serde_json::Map<String, Value>, key: &str| {
        page.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let next_link = link(&page, "@odata.nextLink");
    let delta_link = link(&page, "@odata.deltaLink");
    if next_link.is_none() == delta_link.is_none() {
        return Err(protocol(
            "a page must carry exactly one of nextLink and deltaLink",
        ));
    }
    let Some(Value::Array(values)) = page.remove("value") else {
        return Err(protocol("the page has no value array"));
    };
    let mut items = Vec::with_capacity(values.len());
    for value in values {
        let id = value["id"]
            .as_str()
            .ok_or_else(|| protocol("an item has no id"))?
            .to_owned();
        if value.get("@removed").is_some() {
            items.push(DeltaItem::Removed { id });
        } else {
            items.push(super::event::read(owner, &value));
        }
    }
    Ok(DeltaPage {
        items,
        next_link,
        delta_link,
    })
}

pub(super) fn subscription(
    body: Value,
    operation: &'static str,
) -> Result<(String, DateTime<Utc>), CalendarError> {
    let protocol = |message: String| CalendarError::Protocol { operation, message };
    let id = body["id"]
        .as_str()
        .ok_or_else(|| protocol("the subscription has no id".to_owned()))?;
    let expiry = body["expirationDateTime"]
        .as_str()
        .ok_or_else(|| protocol("the subscription has no expirationDateTime".to_owned()))?;
    let expiry = DateTime::parse_from_rfc3339(expiry)
        .map_err(|e| protocol(format!("expirationDateTime: {e}")))?;
    Ok((id.to_owned(), expiry.to_utc()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn owner() -> UserId {
        UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid")
    }

    #[test]
    fn delta_pages_split_changes_from_removals() {
        let page = delta_page(json!({
            "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/u/calendarView/delta?$deltatoken=x",
            "value": [
                {"id": "a", "subject": "Standup"},
                {"@odata.type": "#microsoft.graph.event", "id": "b", "@removed": {"reason": "deleted"}}
            ]
        }), &owner())
        .expect("valid page");
        assert_eq!(page.items.len(), 2);
        assert!(matches!(&page.items[1], DeltaItem::Removed { id } if id == "b"));
        assert!(page.next_link.is_none() && page.delta_link.is_some());
    }

    #[test]
    fn malformed_pages_are_protocol_errors() {
        for body in [
            json!([]),
            json!({"value": []}),
            json!({"@odata.nextLink": "a", "@odata.deltaLink": "b", "value": []}),
            json!({"@odata.deltaLink": "b", "value": [{"subject": "no id"}]}),
        ] {
            assert!(matches!(
                delta_page(body, &owner()),
                Err(CalendarError::Protocol { .. })
            ));
        }
    }

    #[test]
    fn mailboxes_and_segments() {
        assert_eq!(
            mailbox_of("https://g/v1.0/users/abc/calendarView/delta?$skiptoken=1"),
            "abc"
        );
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }
}
