//! Who hears about a change: the subscriber document, one JSON secret in Secrets Manager
//! (schema in docs/delivery.md). Every credential in it stays wrapped; `Debug` shows none of them,
//! nor a webhook URL's path or query (which may carry a token).

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::signing::WebhookSecret;
use crate::model::UserId;
use crate::ports::{SecretError, SecretSource};

pub use crate::model::SubscriberId;

/// A subscriber's URL. `Debug` shows scheme and host only.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// A fingerprint of the full URL: a disable recorded for one URL does not outlive a change
    /// of the configured URL.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_str().as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EndpointUrl({}://{}/…)",
            self.0.scheme(),
            self.0.host_str().unwrap_or("?")
        )
    }
}

impl<'de> Deserialize<'de> for EndpointUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = SecretString::deserialize(deserializer)?;
        // url's parse errors describe the problem, not the input.
        Url::parse(secrecy::ExposeSecret::expose_secret(&raw))
            .map(Self)
            .map_err(|err| serde::de::Error::custom(format!("not a valid URL ({err})")))
    }
}

/// A generic webhook endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSubscriber {
    pub id: SubscriberId,
    pub url: EndpointUrl,
    /// Newest first; several during a rotation (each signs, receivers accept any).
    pub secrets: Vec<WebhookSecret>,
    /// User ids or e-mails; absent = every user.
    #[serde(default)]
    pub user_filter: Option<Vec<String>>,
    /// The teams (policy profiles) whose daily look-ahead this endpoint receives; `"*"` = every
    /// team. Absent = none: a team's notice is a new kind, sent only to those who ask for it.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
}

/// Slack: one user token per user (a user token may only set its own user's status), and a bot
/// token that posts each team's daily look-ahead in the team's channel.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackConfig {
    /// user id or e-mail → `xoxp-…` token.
    #[serde(default)]
    pub tokens: BTreeMap<String, SecretString>,
    /// `xoxb-…` with `chat:write`: posts the team notices.
    #[serde(default)]
    pub bot_token: Option<SecretString>,
    /// team (policy profile) or `*` → the channel id its look-ahead is posted in.
    #[serde(default)]
    pub team_channels: BTreeMap<String, String>,
    /// Tests point this at the stub; default `https://slack.com/api/`.
    #[serde(default)]
    pub api_base_url: Option<String>,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("users", &self.tokens.keys().collect::<Vec<_>>())
            .field("bot_token", &self.bot_token.as_ref().map(|_| "[REDACTED]"))
            .field("team_channels", &self.team_channels)
            .field("api_base_url", &self.api_base_url)
            .finish_non_exhaustive()
    }
}

/// Microsoft Teams through Graph with application (client-credentials) permissions.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamsConfig {
    pub tenant_id: String,
    /// The app's client id; also the presence `sessionId`.
    pub client_id: String,
    pub client_secret: SecretString,
    /// user id or e-mail → Entra ID (AAD) object id.
    pub users: BTreeMap<String, String>,
    #[serde(default)]
    pub graph_base_url: Option<String>,
    #[serde(default)]
    pub login_base_url: Option<String>,
}

impl fmt::Debug for TeamsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("users", &self.users.len())
            .field("graph_base_url", &self.graph_base_url)
            .field("login_base_url", &self.login_base_url)
            .finish()
    }
}

/// The whole subscriber document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriberConfig {
    #[serde(default)]
    pub webhooks: Vec<WebhookSubscriber>,
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    #[serde(default)]
    pub teams: Option<TeamsConfig>,
}

impl SubscriberConfig {
    /// Reads and validates the document; errors name the secret and field, never a value.
    pub async fn load(source: &dyn SecretSource, secret: &str) -> Result<Self, SecretError> {
        let document = source.get(secret).await?;
        let config: Self = document.deserialize()?;
        config.validate(secret)
    }

    fn validate(mut self, secret: &str) -> Result<Self, SecretError> {
        let field_error = |field: String, reason: &str| SecretError::Field {
            secret: secret.to_owned(),
            field,
            reason: reason.to_owned(),
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, hook) in self.webhooks.iter_mut().enumerate() {
            if hook.secrets.is_empty() {
                return Err(field_error(
                    format!("webhooks[{i}].secrets"),
                    "needs at least one",
                ));
            }
            let reserved = [SubscriberId::SLACK, SubscriberId::TEAMS];
            if reserved.contains(&hook.id.as_str()) || !seen.insert(hook.id.clone()) {
                return Err(field_error(
                    format!("webhooks[{i}].id"),
                    "duplicate or reserved",
                ));
            }
            if let Some(filter) = &mut hook.user_filter {
                for entry in filter.iter_mut() {
                    *entry = normalise_user_key(entry);
                }
            }
        }
        if let Some(slack) = &mut self.slack {
            if !slack.team_channels.is_empty() && slack.bot_token.is_none() {
                return Err(field_error(
                    "slack.botToken".to_owned(),
                    "is required with slack.teamChannels (the team notices are posted with it)",
                ));
            }
            slack.tokens = std::mem::take(&mut slack.tokens)
                .into_iter()
                .map(|(k, v)| (normalise_user_key(&k), v))
                .collect();
        }
        if let Some(teams) = &mut self.teams {
            teams.users = std::mem::take(&mut teams.users)
                .into_iter()
                .map(|(k, v)| (normalise_user_key(&k), v))
                .collect();
        }
        Ok(self)
    }
}

/// User ids and e-mails compare case-insensitively.
fn normalise_user_key(key: &str) -> String {
    key.trim().to_lowercase()
}

impl SlackConfig {
    /// The channel a team's notices are posted in, and the token to post with.
    pub fn team_channel(&self, team: &str) -> Option<(&SecretString, &str)> {
        let channel = self
            .team_channels
            .get(team)
            .or_else(|| self.team_channels.get("*"))?;
        Some((self.bot_token.as_ref()?, channel.as_str()))
    }
}

/// The value `map` holds for a user, by user id first, then by e-mail.
pub(crate) fn lookup_user<'a, V>(
    map: &'a BTreeMap<String, V>,
    user: &UserId,
    email: Option<&str>,
) -> Option<&'a V> {
    map.get(&normalise_user_key(user.as_str()))
        .or_else(|| email.and_then(|e| map.get(&normalise_user_key(e))))
}

impl WebhookSubscriber {
    /// Whether this endpoint wants notifications about `user`.
    pub fn wants_team(&self, team: &str) -> bool {
        self.teams
            .as_ref()
            .is_some_and(|teams| teams.iter().any(|t| t == "*" || t == team))
    }

    pub fn wants(&self, user: &UserId, email: Option<&str>) -> bool {
        let Some(filter) = &self.user_filter else {
            return true;
        };
        let user = normalise_user_key(user.as_str());
        let email = email.map(normalise_user_key);
        filter
            .iter()
            .any(|entry| *entry == user || Some(entry) == email.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::ports::SecretDocument;

    const DOC: &str = r#"{
        "webhooks": [
            {"id": "ops", "url": "https://hooks.example.com/in?token=url-s3cret",
             "secrets": ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
             "userFilter": ["Ada@Example.com"]}
        ],
        "slack": {"tokens": {"ada@example.com": "xoxp-slack-s3cret"}},
        "teams": {"tenantId": "t", "clientId": "c", "clientSecret": "graph-s3cret",
                  "users": {"9ED7D9F6-0C59-4360-AC54-40DD35EB9C2F": "aad-1"}}
    }"#;

    fn parse(json: &str) -> Result<SubscriberConfig, SecretError> {
        let doc = SecretDocument::parse("subs", SecretString::from(json.to_owned()))?;
        doc.deserialize::<SubscriberConfig>()?.validate("subs")
    }

    #[test]
    fn parses_normalises_and_never_shows_a_secret() {
        let config = parse(DOC).expect("valid");
        let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("id");

        assert!(config.webhooks[0].wants(&user, Some("ADA@example.com")));
        assert!(!config.webhooks[0].wants(&user, Some("bob@example.com")));
        let slack = config.slack.as_ref().expect("slack");
        let token = lookup_user(&slack.tokens, &user, Some("Ada@Example.com")).expect("token");
        assert_eq!(token.expose_secret(), "xoxp-slack-s3cret");
        let teams = config.teams.as_ref().expect("teams");
        assert_eq!(
            lookup_user(&teams.users, &user, None).map(String::as_str),
            Some("aad-1")
        );

        let shown = format!("{config:?}");
        for secret in ["url-s3cret", "xoxp-slack", "graph-s3cret", "C2FVsBQ"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("hooks.example.com"), "{shown}");
    }

    #[test]
    fn invalid_documents_name_the_problem_without_the_value() {
        let bad_secret = DOC.replace("whsec_C2FV", "C2FV");
        let err = parse(&bad_secret).expect_err("no prefix");
        assert!(err.to_string().contains("whsec_"), "{err}");
        assert!(!err.to_string().contains("C2FV"), "{err}");

        let bad_url = DOC.replace("https://hooks.example.com/in?token=url-s3cret", "::nope::");
        let err = parse(&bad_url).expect_err("bad url");
        assert!(err.to_string().contains("not a valid URL"), "{err}");
        assert!(!err.to_string().contains("nope"), "{err}");

        let err = parse(r#"{"webhooks":[{"id":"slack","url":"https://x.example","secrets":["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]}]}"#)
            .expect_err("reserved id");
        assert_eq!(
            err.to_string(),
            "secret subs: field webhooks[0].id: duplicate or reserved"
        );
    }
}
