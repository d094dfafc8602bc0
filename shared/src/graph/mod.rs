//! Microsoft Graph as the connector's `CalendarApi`: app-only client-credentials tokens
//! (cached, single-flight), `calendarView/delta` pages in UTC, and event subscriptions.
//! Facts: `../shared/reference/calendar-apis.md` §1–§3.

pub mod event;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::calendar::{
    CalendarError, CreatedSubscription, DeltaCursor, DeltaPage, NewSubscription, Subscription,
};
use crate::calendar_client::{transport, utc_time};
use crate::clock::{Clock, Deadline};
use crate::genesys::token::{AccessToken, Fetched, TokenCache};
use crate::model::UserId;
use crate::ports::CalendarApi;
use crate::ports::SecretDocument;
use crate::ports::SecretError;

pub const GRAPH_BASE_URL: &str = "https://graph.microsoft.com";
pub const LOGIN_BASE_URL: &str = "https://login.microsoftonline.com";
/// Outlook allows 4 concurrent requests per app and mailbox.
pub const MAILBOX_CONCURRENCY: usize = 4;

/// The Entra app and where our endpoint is, from the Graph secret:
/// `{"tenantId","clientId","clientSecret","clientStateKey","graphBaseUrl"?,"loginBaseUrl"?}`.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub graph_base_url: String,
    pub login_base_url: String,
    /// Items per delta page (`Prefer: odata.maxpagesize`).
    pub page_size: u32,
    /// Where Graph posts change and lifecycle notifications.
    pub notification_url: String,
    pub lifecycle_url: String,
}

impl GraphSettings {
    /// The app's settings from its secret; notification URLs empty until
    /// `with_notification_base` sets them (only the sync worker creates subscriptions).
    pub fn from_secret(doc: &SecretDocument) -> Result<Self, SecretError> {
        let plain = |field: &str| doc.string(field).map(|s| s.expose_secret().to_owned());
        let optional = |field: &str, default: &str| {
            doc.optional_string(field).map(|value| {
                value.map_or_else(|| default.to_owned(), |s| s.expose_secret().to_owned())
            })
        };
        Ok(Self {
            tenant_id: plain("tenantId")?,
            client_id: plain("clientId")?,
            client_secret: doc.string("clientSecret")?,
            graph_base_url: optional("graphBaseUrl", GRAPH_BASE_URL)?,
            login_base_url: optional("loginBaseUrl", LOGIN_BASE_URL)?,
            page_size: 50,
            notification_url: String::new(),
            lifecycle_url: String::new(),
        })
    }

    /// Graph posts to `{base}/graph/notify` and `{base}/graph/lifecycle` (the Function URL).
    pub fn with_notification_base(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        self.notification_url = format!("{base}{}", crate::calendar::NOTIFY_PATH);
        self.lifecycle_url = format!("{base}{}", crate::calendar::LIFECYCLE_PATH);
        self
    }
}

#[derive(Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    settings: GraphSettings,
    tokens: TokenCache,
    clock: Arc<dyn Clock>,
    mailboxes: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl GraphClient {
    pub fn new(settings: GraphSettings, clock: Arc<dyn Clock>) -> Result<Self, CalendarError> {
        let http = crate::tls::client_builder()
            // Creating a subscription waits for Graph's own 10 s handshake with our endpoint.
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| transport("client", &e))?;
        Ok(Self {
            http,
            settings,
            tokens: TokenCache::default(),
            clock,
            mailboxes: Mutex::new(HashMap::new()),
        })
    }

    fn v1(&self, path: &str) -> String {
        format!(
            "{}/v1.0/{path}",
            self.settings.graph_base_url.trim_end_matches('/')
        )
    }

    async fn token(&self) -> Result<AccessToken, CalendarError> {
        self.tokens
            .get(self.clock.now(), || async {
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    self.settings.login_base_url.trim_end_matches('/'),
                    self.settings.tenant_id
                );
                let form = [
                    ("client_id", self.settings.client_id.as_str()),
                    ("client_secret", self.settings.client_secret.expose_secret()),
                    ("scope", "https://graph.microsoft.com/.default"),
                    ("grant_type", "client_credentials"),
                ];
                let response = self
                    .http
                    .post(url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| transport("token", &e))?;
                wire::token(response)
                    .await
                    .map(|(value, expires_in)| Fetched { value, expires_in })
            })
            .await
    }

    /// The semaphore bounding our concurrent requests to one mailbox.
    fn mailbox(&self, key: &str) -> Arc<Semaphore> {
        let mut mailboxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        mailboxes
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAILBOX_CONCURRENCY)))
            .clone()
    }

    /// One authorised call; a 401 drops the token and tries once more with a new one.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        prefer: &[String],
        deadline: Deadline,
    ) -> Result<(StatusCode, Value), CalendarError> {
        let mut refreshed = false;
        loop {
            let remaining = deadline.remaining(self.clock.as_ref());
            if remaining.is_zero() {
                return Err(CalendarError::Transport {
                    operation,
                    message: "deadline reached before the call".to_owned(),
                });
            }
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .timeout(remaining)
                .header("Authorization", token.bearer());
            for preference in prefer {
                request = request.header("Prefer", preference);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| transport(operation, &e))?;
            if response.status() == StatusCode::UNAUTHORIZED && !refreshed {
                self.tokens.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            return wire::answer(operation, response).await;
        }
    }

    fn checked_link<'a>(&self, link: &'a str) -> Result<&'a str, CalendarError> {
        // A stored link is followed with our token: it must point at Graph and nowhere else.
        let base = format!("{}/", self.settings.graph_base_url.trim_end_matches('/'));
        if link.starts_with(&base) {
            Ok(link)
        } else {
            Err(CalendarError::Protocol {
                operation: "calendarView/delta",
                message: "a delta or next link does not point at the Graph base URL".to_owned(),
            })
        }
    }
}

#[async_trait]
impl CalendarApi for GraphClient {
    async fn delta_page(
        &self,
        owner: &UserId,
        cursor: &DeltaCursor,
        deadline: Deadline,
    ) -> Result<DeltaPage, CalendarError> {
        const OPERATION: &str = "calendarView/delta";
        let (url, mailbox) = match cursor {
            DeltaCursor::Window {
                calendar_user_id,
                window,
            } => {
                let mut url = url::Url::parse(&self.v1(&format!(
                    "users/{}/calendarView/delta",
                    wire::path_segment(calendar_user_id)
                )))
                .map_err(|e| CalendarError::Protocol {
                    operation: OPERATION,
                    message: e.to_string(),
                })?;
                url.query_pairs_mut()
                    .append_pair("startDateTime", &utc_time(window.start))
                    .append_pair("endDateTime", &utc_time(window.end));
                (url.to_string(), calendar_user_id.clone())
            }
            DeltaCursor::Link(link) => {
                let link = self.checked_link(link)?;
                (link.to_owned(), wire::mailbox_of(link))
            }
        };
        let prefer = [
            format!("odata.maxpagesize={}", self.settings.page_size),
            "outlook.timezone=\"UTC\"".to_owned(),
        ];
        let permit = self.mailbox(&mailbox);
        let _permit = permit
            .acquire()
            .await
            .map_err(|_| CalendarError::Transport {
                operation: OPERATION,
                message: "mailbox limiter closed".to_owned(),
            })?;
        let (_, body) = self
            .call(OPERATION, Method::GET, &url, None, &prefer, deadline)
            .await?;
        wire::delta_page(body, owner)
    }

    async fn create_subscription(
        &self,
        request: &NewSubscription,
        deadline: Deadline,
    ) -> Result<CreatedSubscription, CalendarError> {
        let body = json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": self.settings.notification_url,
            "lifecycleNotificationUrl": self.settings.lifecycle_url,
            "resource": format!("users/{}/events", request.calendar_user_id),
            "expirationDateTime": utc_time(request.expires_at),
            "clientState": request.client_state.expose_secret(),
            "latestSupportedTlsVersion": "v1_2",
        });
        let (_, answer) = self
            .call(
                "create subscription",
                Method::POST,
                &self.v1("subscriptions"),
                Some(&body),
                &[],
                deadline,
            )
            .await?;
        let (id, expires_at) = wire::subscription(answer, "create subscription")?;
        Ok(CreatedSubscription {
            id,
            expires_at,
            resource_id: None,
        })
    }

    async fn renew_subscription(
        &self,
        subscription: &Subscription,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<DateTime<Utc>, CalendarError> {
        let body = json!({ "expirationDateTime": utc_time(until) });
        let url = self.v1(&format!(
            "subscriptions/{}",
            wire::path_segment(&subscription.id)
        ));
        let (_, answer) = self
            .call(
                "renew subscription",
                Method::PATCH,
                &url,
                Some(&body),
                &[],
                deadline,
            )
            .await?;
        wire::subscription(answer, "renew subscription").map(|(_, expiry)| expiry)
    }

    async fn delete_subscription(
        &self,
        _calendar_user_id: &str,
        subscription: &Subscription,
        deadline: Deadline,
    ) -> Result<bool, CalendarError> {
        let url = self.v1(&format!(
            "subscriptions/{}",
            wire::path_segment(&subscription.id)
        ));
        match self
            .call(
                "delete subscription",
                Method::DELETE,
                &url,
                None,
                &[],
                deadline,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(CalendarError::NotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn calendar_user_id(
        &self,
        email: &str,
        deadline: Deadline,
    ) -> Result<Option<String>, CalendarError> {
        let url = self.v1(&format!("users/{}", wire::path_segment(email)));
        match self
            .call("user by UPN", Method::GET, &url, None, &[], deadline)
            .await
        {
            Ok((_, user)) => Ok(user["id"].as_str().map(str::to_owned)),
            Err(CalendarError::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }
}
