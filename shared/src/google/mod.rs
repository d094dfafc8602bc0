//! Google Calendar as the connector's `CalendarApi`: a service account with domain-wide
//! delegation (one JWT-bearer token per agent, cached and single-flight), `events.list`
//! incremental sync (sync and page tokens carried in the stored link), `events.watch` push
//! channels and `channels.stop`. Facts: `../shared/reference/calendar-apis.md` §5–§7.

mod assertion;
pub mod event;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::calendar::{
    CalendarError, CreatedSubscription, DeltaCursor, DeltaPage, GOOGLE_NOTIFY_PATH,
    NewSubscription, Subscription,
};
use crate::calendar_client::{transport, utc_time};
use crate::clock::{Clock, Deadline};
use crate::genesys::token::{AccessToken, Fetched, TokenCache};
use crate::model::UserId;
use crate::ports::{CalendarApi, SecretDocument, SecretError};

use assertion::Signer;

pub const API_BASE_URL: &str = "https://www.googleapis.com";
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Read-only access to events is all the connector needs.
pub const EVENTS_READONLY_SCOPE: &str = "https://www.googleapis.com/auth/calendar.events.readonly";
/// Rate-limit retries inside one call, doubling from `wire::FIRST_BACKOFF`.
const RATE_LIMIT_RETRIES: u32 = 4;

/// The service account and where our endpoint is, from the Google secret: the key file as
/// Google issues it (`client_email`, `private_key`, `private_key_id`?, `token_uri`?) plus
/// `apiBaseUrl`? and `scope`?.
#[derive(Debug)]
pub struct GoogleSettings {
    pub client_email: String,
    signer: Signer,
    pub token_uri: String,
    pub api_base_url: String,
    pub scope: String,
    /// `maxResults` per `events.list` page.
    pub page_size: u32,
    /// Where Google posts channel notifications.
    pub notification_url: String,
}

impl GoogleSettings {
    pub fn from_secret(doc: &SecretDocument) -> Result<Self, CalendarError> {
        let secret = |error: SecretError| CalendarError::Auth {
            operation: "service account",
            message: error.to_string(),
        };
        let plain = |field: &str| {
            doc.string(field)
                .map(|s| s.expose_secret().to_owned())
                .map_err(secret)
        };
        let optional = |field: &str| {
            doc.optional_string(field)
                .map(|value| value.map(|s| s.expose_secret().to_owned()))
                .map_err(secret)
        };
        let private_key = doc.string("private_key").map_err(secret)?;
        Ok(Self {
            client_email: plain("client_email")?,
            signer: Signer::new(private_key.expose_secret(), optional("private_key_id")?)?,
            token_uri: optional("token_uri")?.unwrap_or_else(|| TOKEN_URI.to_owned()),
            api_base_url: optional("apiBaseUrl")?.unwrap_or_else(|| API_BASE_URL.to_owned()),
            scope: optional("scope")?.unwrap_or_else(|| EVENTS_READONLY_SCOPE.to_owned()),
            page_size: 250,
            notification_url: String::new(),
        })
    }

    /// Google posts to `{base}/google/notify` (the Function URL).
    pub fn with_notification_base(mut self, base: &str) -> Self {
        self.notification_url = format!("{}{GOOGLE_NOTIFY_PATH}", base.trim_end_matches('/'));
        self
    }
}

#[derive(Debug)]
pub struct GoogleClient {
    http: reqwest::Client,
    settings: GoogleSettings,
    /// One token per impersonated agent.
    tokens: Mutex<HashMap<String, Arc<TokenCache>>>,
    clock: Arc<dyn Clock>,
}

impl GoogleClient {
    pub fn new(settings: GoogleSettings, clock: Arc<dyn Clock>) -> Result<Self, CalendarError> {
        let http = crate::tls::client_builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| transport("client", &e))?;
        Ok(Self {
            http,
            settings,
            tokens: Mutex::new(HashMap::new()),
            clock,
        })
    }

    fn calendar_url(&self, calendar_id: &str, rest: &str) -> Result<Url, CalendarError> {
        let mut url = Url::parse(&format!(
            "{}/calendar/v3/calendars/",
            self.settings.api_base_url.trim_end_matches('/')
        ))
        .map_err(|e| protocol("calendar URL", e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| {
                protocol(
                    "calendar URL",
                    "the API base cannot carry a path".to_owned(),
                )
            })?
            .pop_if_empty()
            .push(calendar_id)
            .extend(rest.split('/').filter(|segment| !segment.is_empty()));
        Ok(url)
    }

    fn token_cache(&self, subject: &str) -> Arc<TokenCache> {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .entry(subject.to_ascii_lowercase())
            .or_default()
            .clone()
    }

    async fn token(&self, subject: &str) -> Result<(Arc<TokenCache>, AccessToken), CalendarError> {
        let cache = self.token_cache(subject);
        let token = cache
            .get(self.clock.now(), || async {
                let jwt = self.settings.signer.assertion(
                    &self.settings.client_email,
                    subject,
                    &self.settings.scope,
                    &self.settings.token_uri,
                    self.clock.now(),
                )?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", jwt.as_str()),
                ];
                let response = self
                    .http
                    .post(&self.settings.token_uri)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| transport("token", &e))?;
                wire::token(response)
                    .await
                    .map(|(value, expires_in)| Fetched { value, expires_in })
            })
            .await?;
        Ok((cache, token))
    }

    /// One call as `subject`: a 401 gets one new token; a rate limit is waited out with a
    /// doubling backoff while the deadline allows, else returned as `Throttled`.
    async fn call(
        &self,
        operation: &'static str,
        subject: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        deadline: Deadline,
    ) -> Result<Value, CalendarError> {
        let mut refreshed = false;
        let mut throttles = 0;
        loop {
            let remaining = deadline.remaining(self.clock.as_ref());
            if remaining.is_zero() {
                return Err(CalendarError::Transport {
                    operation,
                    message: "deadline reached before the call".to_owned(),
                });
            }
            let (cache, token) = self.token(subject).await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .timeout(remaining)
                .header("Authorization", token.bearer());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| transport(operation, &e))?;
            if response.status() == StatusCode::UNAUTHORIZED && !refreshed {
                cache.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            match wire::answer(operation, response).await {
                Err(CalendarError::Throttled { retry_after, .. })
                    if throttles < RATE_LIMIT_RETRIES =>
                {
                    let wait = retry_after.max(wire::FIRST_BACKOFF * 2u32.pow(throttles))
                        + Duration::from_millis(fastrand::u64(0..250));
                    if wait + Duration::from_secs(1) >= deadline.remaining(self.clock.as_ref()) {
                        return Err(CalendarError::Throttled {
                            operation,
                            retry_after: wait,
                        });
                    }
                    throttles += 1;
                    self.clock.sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// A stored or returned link is followed with an agent's token: it must be an
    /// `events.list` URL of our API base. Returns the URL and the calendar (= agent) it reads.
    fn checked_link(&self, link: &str) -> Result<(Url, String), CalendarError> {
        let refused = || {
            protocol(
                "events.list",
                "a stored link is not an events.list URL of the Google API base".to_owned(),
            )
        };
        let base = self.calendar_url("x", "")?;
        let url = Url::parse(link).map_err(|_| refused())?;
        let base_path = base.path().trim_end_matches("x");
        let calendar = url
            .path()
            .strip_prefix(base_path)
            .and_then(|rest| rest.strip_suffix("/events"))
            .filter(|calendar| !calendar.is_empty() && !calendar.contains('/'))
            .ok_or_else(refused)?;
        if url.origin() != base.origin() {
            return Err(refused());
        }
        let calendar = percent_encoding::percent_decode_str(calendar)
            .decode_utf8()
            .map_err(|_| refused())?
            .into_owned();
        Ok((url, calendar))
    }

    /// The first page of a full sync over the window.
    fn full_sync_url(
        &self,
        calendar_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Url, CalendarError> {
        let mut url = self.calendar_url(calendar_id, "events")?;
        self.common_params(&mut url);
        url.query_pairs_mut()
            .append_pair("timeMin", &utc_time(start))
            .append_pair("timeMax", &utc_time(end));
        Ok(url)
    }

    /// Parameters every page of a chain repeats (an incremental call must match the full one).
    fn common_params(&self, url: &mut Url) {
        url.query_pairs_mut()
            .append_pair("singleEvents", "true")
            .append_pair("showDeleted", "true")
            .append_pair("maxResults", &self.settings.page_size.to_string());
    }
}

/// `url` with `key` set to `value` (replacing any previous one).
fn with_param(url: &Url, key: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(key, value);
    next
}

/// `url` without the window and page parameters, with `syncToken`: the next round's link.
fn sync_link(url: &Url, sync_token: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| {
            !matches!(
                k.as_ref(),
                "timeMin" | "timeMax" | "pageToken" | "syncToken"
            )
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("syncToken", sync_token);
    next
}

fn protocol(operation: &'static str, message: String) -> CalendarError {
    CalendarError::Protocol { operation, message }
}

#[async_trait]
impl CalendarApi for GoogleClient {
    async fn delta_page(
        &self,
        owner: &UserId,
        cursor: &DeltaCursor,
        deadline: Deadline,
    ) -> Result<DeltaPage, CalendarError> {
        const OPERATION: &str = "events.list";
        let (url, calendar) = match cursor {
            DeltaCursor::Window {
                calendar_user_id,
                window,
            } => (
                self.full_sync_url(calendar_user_id, window.start, window.end)?,
                calendar_user_id.clone(),
            ),
            DeltaCursor::Link(link) => self.checked_link(link)?,
        };
        let body = self
            .call(
                OPERATION,
                &calendar,
                Method::GET,
                url.as_str(),
                None,
                deadline,
            )
            .await?;
        let page = wire::events_page(body, owner)?;
        Ok(DeltaPage {
            items: page.items,
            next_link: page
                .next_page_token
                .map(|token| with_param(&url, "pageToken", &token).to_string()),
            delta_link: page
                .next_sync_token
                .map(|token| sync_link(&url, &token).to_string()),
        })
    }

    async fn create_subscription(
        &self,
        request: &NewSubscription,
        deadline: Deadline,
    ) -> Result<CreatedSubscription, CalendarError> {
        let url = self.calendar_url(&request.calendar_user_id, "events/watch")?;
        let body = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "web_hook",
            "address": self.settings.notification_url,
            "token": request.client_state.expose_secret(),
            "expiration": request.expires_at.timestamp_millis(),
        });
        let answer = self
            .call(
                "events.watch",
                &request.calendar_user_id,
                Method::POST,
                url.as_str(),
                Some(&body),
                deadline,
            )
            .await?;
        wire::channel(&answer)
    }

    fn renews_in_place(&self) -> bool {
        false
    }

    async fn renew_subscription(
        &self,
        _subscription: &Subscription,
        _until: DateTime<Utc>,
        _deadline: Deadline,
    ) -> Result<DateTime<Utc>, CalendarError> {
        Err(protocol(
            "channels",
            "Google channels cannot be renewed; a new one replaces them".to_owned(),
        ))
    }

    async fn delete_subscription(
        &self,
        calendar_user_id: &str,
        subscription: &Subscription,
        deadline: Deadline,
    ) -> Result<bool, CalendarError> {
        let Some(resource_id) = &subscription.resource_id else {
            return Err(protocol(
                "channels.stop",
                "the stored channel has no resourceId".to_owned(),
            ));
        };
        let url = format!(
            "{}/calendar/v3/channels/stop",
            self.settings.api_base_url.trim_end_matches('/')
        );
        let body = json!({ "id": subscription.id, "resourceId": resource_id });
        match self
            .call(
                "channels.stop",
                calendar_user_id,
                Method::POST,
                &url,
                Some(&body),
                deadline,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(CalendarError::NotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The agent's primary calendar id (their e-mail), if the service account may act as them:
    /// one `events.list` item of `primary` (`calendars.get` would need a wider scope than
    /// `calendar.events.readonly`).
    async fn calendar_user_id(
        &self,
        email: &str,
        deadline: Deadline,
    ) -> Result<Option<String>, CalendarError> {
        let mut url = self.calendar_url("primary", "events")?;
        url.query_pairs_mut().append_pair("maxResults", "1");
        match self
            .call(
                "events.list",
                email,
                Method::GET,
                url.as_str(),
                None,
                deadline,
            )
            .await
        {
            Ok(_) => Ok(Some(email.to_owned())),
            Err(CalendarError::NotFound { .. }) => Ok(None),
            Err(CalendarError::AccessDenied { code, .. }) if code.starts_with("invalid_grant") => {
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_links_drop_the_window_and_page_and_keep_the_rest() {
        let url = Url::parse(
            "https://www.googleapis.com/calendar/v3/calendars/a%40x.com/events?singleEvents=true&showDeleted=true&maxResults=250&timeMin=2026-03-01T00%3A00%3A00Z&timeMax=2026-03-08T00%3A00%3A00Z&pageToken=p",
        )
        .expect("url");
        let link = sync_link(&url, "s+1/=");
        let pairs: Vec<(String, String)> = link
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("singleEvents", "true"),
                ("showDeleted", "true"),
                ("maxResults", "250"),
                ("syncToken", "s+1/=")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let next = with_param(&link, "pageToken", "q");
        assert!(next.as_str().ends_with("syncToken=s%2B1%2F%3D&pageToken=q"));
    }

    fn client() -> GoogleClient {
        let file: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/google/test-service-account.json"
        ))
        .expect("key file");
        let doc = SecretDocument::parse("google", file.to_string().into()).expect("document");
        let settings = GoogleSettings::from_secret(&doc).expect("settings");
        GoogleClient::new(settings, Arc::new(crate::clock::SystemClock)).expect("client")
    }

    #[test]
    fn only_events_links_of_the_api_base_are_followed() {
        let client = client();
        let (_, calendar) = client
            .checked_link(
                "https://www.googleapis.com/calendar/v3/calendars/a%40x.com/events?syncToken=s",
            )
            .expect("ours");
        assert_eq!(calendar, "a@x.com");
        for foreign in [
            "https://evil.example/calendar/v3/calendars/a%40x.com/events",
            "https://www.googleapis.com.evil.example/calendar/v3/calendars/a/events",
            "https://www.googleapis.com/calendar/v3/calendars/a/events/watch",
            "https://www.googleapis.com/calendar/v3/calendars/../../x/calendars/a/events",
            "https://www.googleapis.com/calendar/v3/calendars//events",
            "http://www.googleapis.com/calendar/v3/calendars/a/events",
        ] {
            assert!(client.checked_link(foreign).is_err(), "{foreign}");
        }
    }
}
