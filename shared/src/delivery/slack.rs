//! Slack: `users.profile.set` with the user's own token, and `chat.postMessage` of a team's
//! notice with the bot token. Slack answers HTTP 200 with `{"ok":false,"error":…}` on failure,
//! so the body decides, not only the status.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{HttpLimits, TransportFailure, client_builder, read_reply};
use async_trait::async_trait;

use super::messages::{SlackCall, SlackMessage, SlackPost, SlackStatus};
use super::retry::AttemptOutcome;
use crate::ports::Channel;

pub const DEFAULT_API_BASE: &str = "https://slack.com/api/";
/// The request body of `users.profile.set`.
impl SlackStatus {
    fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "profile": {
                "status_text": self.text,
                "status_emoji": self.emoji,
                "status_expiration": self.expiration,
            }
        })
    }
}

/// The request body of `chat.postMessage`: plain text, no link unfurling.
impl SlackPost {
    fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "channel": self.channel,
            "text": self.text,
            "unfurl_links": false,
            "unfurl_media": false,
        })
    }
}

#[derive(Debug, Deserialize)]
struct SlackReply {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Slack errors worth trying again; every other `error` is permanent (bad token, missing scope,
/// text too long…), see https://api.slack.com/methods/users.profile.set.
const RETRYABLE_ERRORS: [&str; 5] = [
    "ratelimited",
    "fatal_error",
    "internal_error",
    "service_unavailable",
    "request_timeout",
];

#[derive(Debug, Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    limits: HttpLimits,
}

impl SlackClient {
    pub fn new(limits: HttpLimits) -> Result<Self, TransportFailure> {
        let http = client_builder(limits.timeout)
            .build()
            .map_err(|_| TransportFailure::Other("building the HTTP client"))?;
        Ok(Self { http, limits })
    }

    /// Sets the status of the token's user.
    pub async fn set_status(
        &self,
        api_base: Option<&str>,
        token: &SecretString,
        status: &SlackStatus,
        now: DateTime<Utc>,
    ) -> AttemptOutcome {
        self.call(api_base, token, ("users.profile.set", &status.body()), now)
            .await
    }

    /// Posts `post` in its channel.
    pub async fn post_message(
        &self,
        api_base: Option<&str>,
        token: &SecretString,
        post: &SlackPost,
        now: DateTime<Utc>,
    ) -> AttemptOutcome {
        self.call(api_base, token, ("chat.postMessage", &post.body()), now)
            .await
    }

    /// One Web API method with a JSON body; the reply's `ok` decides.
    async fn call(
        &self,
        api_base: Option<&str>,
        token: &SecretString,
        (method, body): (&str, &serde_json::Value),
        now: DateTime<Utc>,
    ) -> AttemptOutcome {
        let base = api_base.unwrap_or(DEFAULT_API_BASE);
        let Some(url) = Url::parse(base)
            .ok()
            .and_then(|base| base.join(method).ok())
        else {
            return AttemptOutcome::permanent("slack apiBaseUrl is not a valid URL");
        };
        let sent = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                return AttemptOutcome::from_transport(&TransportFailure::from_reqwest(&err));
            }
        };
        let reply = match read_reply(response, self.limits.max_response_bytes, now).await {
            Ok(reply) => reply,
            Err(failure) => return AttemptOutcome::from_transport(&failure),
        };
        if reply.status != 200 {
            return match AttemptOutcome::from_status(&reply) {
                // Slack's 410 would not mean "disable this endpoint" for a fixed API.
                AttemptOutcome::Gone { .. } => AttemptOutcome::permanent("slack: HTTP 410"),
                AttemptOutcome::Delivered { status } => {
                    AttemptOutcome::retryable(format!("slack: unexpected HTTP {status}"))
                }
                AttemptOutcome::Retryable {
                    reason,
                    retry_after,
                } => AttemptOutcome::Retryable {
                    reason: format!("slack: {reason}"),
                    retry_after,
                },
                AttemptOutcome::Permanent { reason } => {
                    AttemptOutcome::permanent(format!("slack: {reason}"))
                }
            };
        }
        match serde_json::from_slice::<SlackReply>(&reply.body) {
            Ok(SlackReply { ok: true, .. }) => AttemptOutcome::Delivered { status: 200 },
            Ok(SlackReply { error, .. }) => {
                let error = error.unwrap_or_else(|| "unknown_error".to_owned());
                // Slack error codes are short identifiers; keep only such characters.
                let error: String = error
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect();
                let reason = format!("slack: ok=false, error={error}");
                if RETRYABLE_ERRORS.contains(&error.as_str()) {
                    AttemptOutcome::Retryable {
                        reason,
                        retry_after: reply.retry_after,
                    }
                } else {
                    AttemptOutcome::permanent(reason)
                }
            }
            Err(_) => AttemptOutcome::retryable("slack: HTTP 200 without a readable JSON body"),
        }
    }
}

#[async_trait]
impl Channel<SlackMessage> for SlackClient {
    async fn send(&self, message: &SlackMessage) -> AttemptOutcome {
        let base = message.api_base_url.as_deref();
        match &message.call {
            SlackCall::Status(status) => {
                self.set_status(base, &message.token, status, message.now)
                    .await
            }
            SlackCall::Post(post) => {
                self.post_message(base, &message.token, post, message.now)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::messages::*;
    use crate::model::PresenceDefinitionId;
    use crate::model::SystemPresence;
    use crate::state::PresenceView;
    use crate::state::{ChangePayload, NotificationKind};

    fn payload(message: &str, until: Option<DateTime<Utc>>) -> ChangePayload {
        ChangePayload {
            email: None,
            presence: PresenceView {
                definition_id: PresenceDefinitionId::parse("bbdff279-7ae1-48ea-bade-7831d7234c64")
                    .expect("id"),
                system_presence: SystemPresence::Meeting,
                message: message.to_owned(),
            },
            previous: None,
            trigger_kind: None,
            trigger_id: None,
            until,
            reason: None,
        }
    }

    #[test]
    fn applied_sets_text_emoji_and_expiry_restored_clears_and_others_are_silent() {
        let until = DateTime::from_timestamp(1_773_930_600, 0);
        let applied = SlackStatus::for_change(
            NotificationKind::PresenceApplied,
            &payload("In a meeting", until),
        );
        assert_eq!(
            applied,
            Some(SlackStatus {
                text: "In a meeting".to_owned(),
                emoji: ":calendar:".to_owned(),
                expiration: 1_773_930_600,
            })
        );
        let restored =
            SlackStatus::for_change(NotificationKind::PresenceRestored, &payload("x", until));
        assert_eq!(
            restored.map(|s| (s.text, s.expiration)),
            Some((String::new(), 0))
        );
        assert_eq!(
            SlackStatus::for_change(NotificationKind::ChangeSkipped, &payload("x", until)),
            None
        );
    }

    #[test]
    fn text_is_cut_to_100_characters_not_bytes() {
        let long = "é".repeat(150);
        let status =
            SlackStatus::for_change(NotificationKind::PresenceApplied, &payload(&long, None))
                .expect("status");
        assert_eq!(status.text.chars().count(), 100);
        assert_eq!(status.expiration, 0);
        let empty = SlackStatus::for_change(NotificationKind::PresenceApplied, &payload(" ", None))
            .expect("status");
        assert_eq!(empty.text, "Meeting");
    }
}
