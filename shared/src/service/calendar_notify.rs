//! The public notification endpoint: Graph's validation handshake, change and lifecycle
//! notifications checked item by item (subscription known, `clientState` right), Google's
//! header-only channel notifications (channel known, token right), and the work handed to the
//! sync queue. It answers fast and never acts on what it could not verify.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::calendar::{
    ClientStateKey, GOOGLE_NOTIFY_PATH, LIFECYCLE_PATH, NOTIFY_PATH, SyncReason, SyncRequest,
};
use crate::ports::{ConnectionStore, MessagingError, StoreError, SyncQueue};

/// Largest body accepted. Graph batches notifications, each well under 1 KiB without resource
/// data; this leaves room for hundreds.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Graph's validation tokens are short; anything longer is not one.
pub const MAX_VALIDATION_TOKEN_BYTES: usize = 1024;
/// Items read from one body; more are refused as a whole.
pub const MAX_ITEMS: usize = 1000;
/// Google's notifications have an empty body; a little slack, no more.
pub const MAX_GOOGLE_BODY_BYTES: usize = 1024;
/// Google's limits on what we chose at `events.watch`.
pub const MAX_CHANNEL_ID_CHARS: usize = 64;
pub const MAX_CHANNEL_TOKEN_CHARS: usize = 256;

/// An HTTP request as the endpoint sees it, whatever carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    pub method: String,
    pub path: String,
    /// The query string as sent (still percent-encoded).
    pub raw_query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl EndpointRequest {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl EndpointResponse {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// What one request amounted to, for the log line and the metrics (never the content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyReport {
    pub handshake: bool,
    pub items: usize,
    pub accepted: usize,
    /// Items naming a subscription we do not hold.
    pub unknown: usize,
    /// Items naming one of ours with a wrong `clientState`.
    pub forged: usize,
    pub enqueued: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub response: EndpointResponse,
    pub report: NotifyReport,
}

#[derive(Debug)]
pub struct NotifyService {
    pub connections: Arc<dyn ConnectionStore>,
    pub queue: Arc<dyn SyncQueue>,
    pub key: ClientStateKey,
}

/// One item of a notification body; both change and lifecycle items have these.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    subscription_id: Option<String>,
    client_state: Option<String>,
    lifecycle_event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Body {
    value: Vec<Value>,
}

/// The decoded `validationToken` of a query string, if it has one.
fn validation_token(raw_query: &str) -> Option<String> {
    url::form_urlencoded::parse(raw_query.as_bytes())
        .find(|(key, _)| key == "validationToken")
        .map(|(_, value)| value.into_owned())
}

fn reason_for(lifecycle_event: Option<&str>) -> Option<SyncReason> {
    match lifecycle_event {
        None => Some(SyncReason::Changed),
        Some("reauthorizationRequired") => Some(SyncReason::Reauthorize),
        Some("subscriptionRemoved") => Some(SyncReason::Recreate),
        Some("missed") => Some(SyncReason::Resync),
        Some(_) => None,
    }
}

/// Why a notification could not be taken: the endpoint answers 503, so the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] MessagingError),
}

impl NotifyService {
    pub async fn handle(&self, request: &EndpointRequest) -> Result<Handled, NotifyError> {
        let mut report = NotifyReport::default();
        let plain = |status, body: &str| Handled {
            response: EndpointResponse::text(status, body),
            report: NotifyReport::default(),
        };
        // By suffix: behind `cargo lambda watch` the path keeps its `/lambda-url/<name>` prefix.
        if request.path.ends_with(GOOGLE_NOTIFY_PATH) {
            return self.google(request).await;
        }
        if !request.path.ends_with(NOTIFY_PATH) && !request.path.ends_with(LIFECYCLE_PATH) {
            return Ok(plain(404, "not found"));
        }
        if !request.method.eq_ignore_ascii_case("POST") {
            return Ok(plain(405, "method not allowed"));
        }
        if let Some(token) = validation_token(&request.raw_query) {
            if token.len() > MAX_VALIDATION_TOKEN_BYTES {
                return Ok(plain(400, "validationToken is too long"));
            }
            // Plain text, exactly the decoded token: Graph compares it byte for byte.
            report.handshake = true;
            return Ok(Handled {
                response: EndpointResponse::text(200, token),
                report,
            });
        }
        if request.body.len() > MAX_BODY_BYTES {
            return Ok(plain(413, "body too large"));
        }
        let body: Body = match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(_) => return Ok(plain(400, "body: expected {\"value\": [...]}")),
        };
        if body.value.len() > MAX_ITEMS {
            return Ok(plain(413, "too many items"));
        }
        report.items = body.value.len();
        let requests = self.verified_requests(&body.value, &mut report).await?;
        if !requests.is_empty() {
            self.queue.enqueue(&requests).await?;
        }
        report.enqueued = requests.len();
        Ok(Handled {
            response: EndpointResponse::text(202, ""),
            report,
        })
    }

    /// A Google channel notification: `sync` (the channel is live) is acknowledged; `exists`
    /// and `not_exists` (something changed) enqueue a sync of the channel's agent. Unknown
    /// (stale) channels and wrong tokens are counted and answered 200, so Google does not
    /// retry them and a forger learns nothing.
    async fn google(&self, request: &EndpointRequest) -> Result<Handled, NotifyError> {
        let mut report = NotifyReport::default();
        let refuse = |status, body: &str| {
            Ok(Handled {
                response: EndpointResponse::text(status, body),
                report: NotifyReport::default(),
            })
        };
        if !request.method.eq_ignore_ascii_case("POST") {
            return refuse(405, "method not allowed");
        }
        if request.body.len() > MAX_GOOGLE_BODY_BYTES {
            return refuse(413, "body too large");
        }
        let channel = match request.header("x-goog-channel-id") {
            None | Some("") => return refuse(400, "X-Goog-Channel-ID: missing"),
            Some(id) if id.chars().count() > MAX_CHANNEL_ID_CHARS => {
                return refuse(400, "X-Goog-Channel-ID: longer than 64 characters");
            }
            Some(id) => id.to_owned(),
        };
        let changed = match request.header("x-goog-resource-state") {
            Some("sync") => false,
            Some("exists" | "not_exists") => true,
            None => return refuse(400, "X-Goog-Resource-State: missing"),
            Some(_) => {
                return refuse(
                    400,
                    "X-Goog-Resource-State: not one of sync, exists, not_exists",
                );
            }
        };
        report.items = 1;
        let owners = self
            .connections
            .subscription_owners(std::slice::from_ref(&channel))
            .await?;
        let presented = request
            .header("x-goog-channel-token")
            .filter(|token| token.chars().count() <= MAX_CHANNEL_TOKEN_CHARS)
            .unwrap_or("");
        match owners.get(&channel) {
            None => report.unknown += 1,
            Some(owner) if !self.key.verify(&owner.nonce, presented) => report.forged += 1,
            Some(_) if !changed => {
                report.handshake = true;
                report.accepted += 1;
            }
            Some(owner) => {
                report.accepted += 1;
                self.queue
                    .enqueue(&[SyncRequest {
                        user_id: owner.user_id.clone(),
                        reason: SyncReason::Changed,
                    }])
                    .await?;
                report.enqueued = 1;
            }
        }
        Ok(Handled {
            response: EndpointResponse::text(200, ""),
            report,
        })
    }

    /// The sync requests of the items that name one of our subscriptions with its right
    /// client state, one per agent and reason.
    async fn verified_requests(
        &self,
        values: &[Value],
        report: &mut NotifyReport,
    ) -> Result<Vec<SyncRequest>, StoreError> {
        let items: Vec<Option<Item>> = values
            .iter()
            .map(|value| serde_json::from_value(value.clone()).ok())
            .collect();
        let ids: Vec<String> = items
            .iter()
            .flatten()
            .filter_map(|item| item.subscription_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let owners = if ids.is_empty() {
            HashMap::new()
        } else {
            self.connections.subscription_owners(&ids).await?
        };
        let mut requests = BTreeSet::new();
        for item in items {
            let Some(item) = item else {
                report.unknown += 1;
                continue;
            };
            let owner = item
                .subscription_id
                .as_deref()
                .and_then(|id| owners.get(id));
            let Some(owner) = owner else {
                report.unknown += 1;
                continue;
            };
            let presented = item.client_state.as_deref().unwrap_or("");
            if !self.key.verify(&owner.nonce, presented) {
                report.forged += 1;
                continue;
            }
            let Some(reason) = reason_for(item.lifecycle_event.as_deref()) else {
                report.unknown += 1;
                continue;
            };
            report.accepted += 1;
            requests.insert((owner.user_id.clone(), reason));
        }
        Ok(requests
            .into_iter()
            .map(|(user_id, reason)| SyncRequest { user_id, reason })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_decoded_from_the_raw_query() {
        let raw = "tenant=t1&validationToken=Validation%3A+a%3Cb%26c+%25+d%2Be";
        assert_eq!(
            validation_token(raw).as_deref(),
            Some("Validation: a<b&c % d+e")
        );
        assert_eq!(validation_token("tenant=t1"), None);
    }

    #[test]
    fn lifecycle_events_map_to_reasons() {
        assert_eq!(reason_for(None), Some(SyncReason::Changed));
        assert_eq!(reason_for(Some("missed")), Some(SyncReason::Resync));
        assert_eq!(
            reason_for(Some("subscriptionRemoved")),
            Some(SyncReason::Recreate)
        );
        assert_eq!(
            reason_for(Some("reauthorizationRequired")),
            Some(SyncReason::Reauthorize)
        );
        assert_eq!(reason_for(Some("somethingNew")), None);
    }
}
