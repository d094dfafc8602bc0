//! Microsoft Teams through Graph: an app token (client credentials, cached), then
//! `setPresence` / `clearPresence` on the app's own presence session and `setStatusMessage`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{HttpLimits, TransportFailure, client_builder, read_reply};
use super::retry::AttemptOutcome;
use async_trait::async_trait;

use super::messages::{TeamsCall, TeamsMessage};
use super::subscribers::TeamsConfig;
use crate::clock::Clock;
use crate::ports::Channel;

pub const DEFAULT_GRAPH_BASE: &str = "https://graph.microsoft.com/";
pub const DEFAULT_LOGIN_BASE: &str = "https://login.microsoftonline.com/";
pub const SCOPE: &str = "https://graph.microsoft.com/.default";
/// The wire form of each call.
impl TeamsCall {
    fn path(&self) -> &'static str {
        match self {
            Self::SetPresence { .. } => "setPresence",
            Self::ClearPresence => "clearPresence",
            Self::SetStatusMessage { .. } => "setStatusMessage",
        }
    }

    fn body(&self, session_id: &str) -> serde_json::Value {
        match self {
            Self::SetPresence {
                presence,
                expiration,
            } => serde_json::json!({
                "sessionId": session_id,
                "availability": presence.availability,
                "activity": presence.activity,
                "expirationDuration": expiration,
            }),
            Self::ClearPresence => serde_json::json!({ "sessionId": session_id }),
            Self::SetStatusMessage { message, expires } => {
                let mut status = serde_json::json!({
                    "message": {"content": message, "contentType": "text"}
                });
                if let Some(expires) = expires {
                    status["expiryDateTime"] = serde_json::json!({
                        "dateTime": expires.to_rfc3339_opts(SecondsFormat::Secs, true)
                            .trim_end_matches('Z'),
                        "timeZone": "UTC",
                    });
                }
                serde_json::json!({ "statusMessage": status })
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: SecretString,
    expires_in: u64,
}

struct CachedToken {
    /// Tenant and client the token was issued for: a config change invalidates it.
    owner: (String, String),
    token: SecretString,
    expires_at: DateTime<Utc>,
}

/// The Graph client; the token cache lives as long as the Lambda container.
pub struct TeamsClient {
    http: reqwest::Client,
    limits: HttpLimits,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TeamsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsClient")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why a Graph call did not happen or did not succeed, already as an outcome.
type Failed = AttemptOutcome;

impl TeamsClient {
    pub fn new(limits: HttpLimits, clock: Arc<dyn Clock>) -> Result<Self, TransportFailure> {
        let http = client_builder(limits.timeout)
            .build()
            .map_err(|_| TransportFailure::Other("building the HTTP client"))?;
        Ok(Self {
            http,
            limits,
            clock,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Runs the calls for one user in order; the first failure decides the outcome. Calls
    /// are idempotent, so a retry repeating the ones that succeeded is harmless.
    pub async fn apply(
        &self,
        config: &TeamsConfig,
        object_id: &str,
        calls: &[TeamsCall],
    ) -> AttemptOutcome {
        for call in calls {
            let outcome = match self
                .call_with_fresh_token_on_401(config, object_id, call)
                .await
            {
                Ok(outcome) | Err(outcome) => outcome,
            };
            if !matches!(outcome, AttemptOutcome::Delivered { .. }) {
                return outcome;
            }
        }
        AttemptOutcome::Delivered { status: 200 }
    }

    async fn call_with_fresh_token_on_401(
        &self,
        config: &TeamsConfig,
        object_id: &str,
        call: &TeamsCall,
    ) -> Result<AttemptOutcome, Failed> {
        let token = self.token(config, false).await?;
        let first = self.call(config, object_id, call, &token).await?;
        if first.status != 401 {
            return Ok(self.classify(call, first));
        }
        // A token revoked or rotated early: fetch a new one once.
        let token = self.token(config, true).await?;
        let second = self.call(config, object_id, call, &token).await?;
        Ok(self.classify(call, second))
    }

    fn classify(&self, call: &TeamsCall, reply: super::http::HttpReply) -> AttemptOutcome {
        match AttemptOutcome::from_status(&reply) {
            AttemptOutcome::Delivered { status } => AttemptOutcome::Delivered { status },
            AttemptOutcome::Gone { .. } => {
                AttemptOutcome::permanent(format!("teams {}: HTTP 410", call.path()))
            }
            AttemptOutcome::Retryable {
                reason,
                retry_after,
            } => AttemptOutcome::Retryable {
                reason: format!("teams {}: {reason}", call.path()),
                retry_after,
            },
            AttemptOutcome::Permanent { reason } => AttemptOutcome::permanent(format!(
                "teams {}: {reason}{}",
                call.path(),
                graph_code(&reply.body)
            )),
        }
    }

    async fn call(
        &self,
        config: &TeamsConfig,
        object_id: &str,
        call: &TeamsCall,
        token: &SecretString,
    ) -> Result<super::http::HttpReply, Failed> {
        let base = config
            .graph_base_url
            .as_deref()
            .unwrap_or(DEFAULT_GRAPH_BASE);
        let url = Url::parse(base)
            .and_then(|base| {
                base.join(&format!(
                    "v1.0/users/{}/presence/{}",
                    urlencode(object_id),
                    call.path()
                ))
            })
            .map_err(|_| AttemptOutcome::permanent("teams graphBaseUrl is not a valid URL"))?;
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(&call.body(&config.client_id))
            .send()
            .await
            .map_err(|e| AttemptOutcome::from_transport(&TransportFailure::from_reqwest(&e)))?;
        read_reply(response, self.limits.max_response_bytes, self.clock.now())
            .await
            .map_err(|failure| AttemptOutcome::from_transport(&failure))
    }

    /// A cached app token, or a new one from the identity platform.
    async fn token(&self, config: &TeamsConfig, force: bool) -> Result<SecretString, Failed> {
        let owner = (config.tenant_id.clone(), config.client_id.clone());
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if !force
            && let Some(entry) = cached.as_ref()
            && entry.owner == owner
            && now < entry.expires_at
        {
            return Ok(entry.token.clone());
        }
        let base = config
            .login_base_url
            .as_deref()
            .unwrap_or(DEFAULT_LOGIN_BASE);
        let url = Url::parse(base)
            .and_then(|base| {
                base.join(&format!(
                    "{}/oauth2/v2.0/token",
                    urlencode(&config.tenant_id)
                ))
            })
            .map_err(|_| AttemptOutcome::permanent("teams loginBaseUrl is not a valid URL"))?;
        let form = [
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.expose_secret()),
            ("scope", SCOPE),
            ("grant_type", "client_credentials"),
        ];
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| AttemptOutcome::from_transport(&TransportFailure::from_reqwest(&e)))?;
        let reply = read_reply(response, self.limits.max_response_bytes, now)
            .await
            .map_err(|failure| AttemptOutcome::from_transport(&failure))?;
        if reply.status != 200 {
            let outcome = match AttemptOutcome::from_status(&reply) {
                AttemptOutcome::Retryable {
                    reason,
                    retry_after,
                } => AttemptOutcome::Retryable {
                    reason: format!("teams token: {reason}"),
                    retry_after,
                },
                _ => AttemptOutcome::permanent(format!(
                    "teams token: HTTP {}{}",
                    reply.status,
                    oauth_code(&reply.body)
                )),
            };
            return Err(outcome);
        }
        let parsed: TokenReply = serde_json::from_slice(&reply.body)
            .map_err(|_| AttemptOutcome::retryable("teams token: unreadable token response"))?;
        // Renew a minute early so a token never expires mid-call.
        let lifetime = parsed.expires_in.saturating_sub(60);
        let expires_at = now + chrono::Duration::seconds(i64::try_from(lifetime).unwrap_or(0));
        *cached = Some(CachedToken {
            owner,
            token: parsed.access_token.clone(),
            expires_at,
        });
        Ok(parsed.access_token)
    }
}

/// Graph error bodies: `{"error":{"code":"…","message":"…"}}`; only the code is kept.
fn graph_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(sanitize_code))
        .map(|code| format!(" ({code})"))
        .unwrap_or_default()
}

/// OAuth error bodies: `{"error":"invalid_client","error_description":"…"}`; only the code.
fn oauth_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(sanitize_code))
        .map(|code| format!(" ({code})"))
        .unwrap_or_default()
}

fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        .take(64)
        .collect()
}

/// Path segments from configuration (object ids, tenant ids) are escaped, never trusted.
fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[async_trait]
impl Channel<TeamsMessage> for TeamsClient {
    async fn send(&self, message: &TeamsMessage) -> AttemptOutcome {
        self.apply(&message.config, &message.object_id, &message.calls)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::messages::*;
    use crate::model::SystemPresence;
    use crate::state::TriggerKind;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").to_utc()
    }

    #[test]
    fn expiration_is_iso8601_and_clamped() {
        let now = at("2026-03-19T14:00:00Z");
        assert_eq!(
            expiration_duration(now, Some(at("2026-03-19T14:30:00Z"))),
            "PT30M"
        );
        assert_eq!(
            expiration_duration(now, Some(at("2026-03-19T15:30:00Z"))),
            "PT1H30M"
        );
        assert_eq!(
            expiration_duration(now, Some(at("2026-03-19T14:00:10Z"))),
            "PT5M"
        );
        assert_eq!(
            expiration_duration(now, Some(at("2026-03-19T13:00:00Z"))),
            "PT5M"
        );
        assert_eq!(
            expiration_duration(now, Some(at("2026-03-20T14:00:00Z"))),
            "PT4H"
        );
        assert_eq!(
            expiration_duration(now, Some(at("2026-03-19T14:30:01Z"))),
            "PT31M"
        );
        assert_eq!(expiration_duration(now, None), "PT1H");
    }

    #[test]
    fn every_mapping_is_an_allowed_pair() {
        let allowed = [
            ("Available", "Available"),
            ("Busy", "InACall"),
            ("Busy", "InAConferenceCall"),
            ("Away", "Away"),
            ("DoNotDisturb", "Presenting"),
        ];
        for presence in SystemPresence::ALL {
            for trigger in [None, Some(TriggerKind::Meeting), Some(TriggerKind::Focus)] {
                if let Some(pair) = TeamsPresence::for_presence(&presence, trigger) {
                    assert!(
                        allowed.contains(&(pair.availability, pair.activity)),
                        "{presence:?} {trigger:?} -> {pair:?}"
                    );
                }
            }
        }
        assert_eq!(
            TeamsPresence::for_presence(&SystemPresence::Meeting, Some(TriggerKind::Meeting)),
            Some(TeamsPresence::IN_A_CONFERENCE_CALL)
        );
        assert_eq!(
            TeamsPresence::for_presence(&SystemPresence::Busy, Some(TriggerKind::Focus)),
            Some(TeamsPresence::PRESENTING)
        );
    }

    #[test]
    fn status_message_expiry_is_utc_without_offset() {
        let call = TeamsCall::SetStatusMessage {
            message: "In a meeting".to_owned(),
            expires: Some(at("2026-03-19T14:30:00Z")),
        };
        assert_eq!(
            call.body("app"),
            serde_json::json!({"statusMessage": {
                "message": {"content": "In a meeting", "contentType": "text"},
                "expiryDateTime": {"dateTime": "2026-03-19T14:30:00", "timeZone": "UTC"}
            }})
        );
    }
}
