//! Generic webhooks: the notification JSON, signed the Standard Webhooks way, POSTed through
//! the SSRF guard.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use async_trait::async_trait;

use super::http::GuardedHttp;
use super::messages::WebhookMessage;
use super::retry::AttemptOutcome;
use super::signing::SignatureHeaders;
use super::subscribers::WebhookSubscriber;
use crate::clock::Clock;
use crate::ports::Channel;
use crate::state::Notification;

pub const USER_AGENT_VALUE: &str = "presence-autopilot-webhooks/1";

#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: GuardedHttp,
    clock: Arc<dyn Clock>,
}

impl WebhookSender {
    pub fn new(http: GuardedHttp, clock: Arc<dyn Clock>) -> Self {
        Self { http, clock }
    }

    /// The body every subscriber gets: the notification as on the queue (docs/events.md).
    pub fn body(notification: &Notification) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(notification)
    }

    /// One attempt. `webhook-id` is the notification id, so it is the same on every retry;
    /// the timestamp is the attempt's, as receivers reject ones more than 5 minutes old.
    pub async fn deliver(
        &self,
        subscriber: &WebhookSubscriber,
        notification: &Notification,
    ) -> AttemptOutcome {
        let body = match Self::body(notification) {
            Ok(body) => body,
            // Never an empty signed body: the same notification cannot encode on a retry either.
            Err(error) => {
                return AttemptOutcome::permanent(format!("notification not encodable: {error}"));
            }
        };
        let now = self.clock.now();
        let signed = SignatureHeaders::sign(
            &notification.notification_id.to_string(),
            now.timestamp(),
            &body,
            &subscriber.secrets,
        );
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in [
            (SignatureHeaders::ID, &signed.webhook_id),
            (SignatureHeaders::TIMESTAMP, &signed.webhook_timestamp),
            (SignatureHeaders::SIGNATURE, &signed.webhook_signature),
        ] {
            // Ids, digits and base64 are always valid header values.
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        match self
            .http
            .post(subscriber.url.url(), headers, body, now)
            .await
        {
            Ok(reply) => AttemptOutcome::from_status(&reply),
            Err(err) => AttemptOutcome::from_guarded(&err),
        }
    }
}
#[async_trait]
impl Channel<WebhookMessage> for WebhookSender {
    async fn send(&self, message: &WebhookMessage) -> AttemptOutcome {
        self.deliver(&message.subscriber, &message.notification)
            .await
    }
}
