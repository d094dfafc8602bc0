//! What the simulator starts with: the tenant, app registrations (client id + secret), users and
//! the knobs of the simulated service. `Seed::default()` is the documented demo seed
//! (`graph-sim --print-default-seed`); `--seed FILE` loads JSON, and every field left out of the
//! file keeps its default value.

use serde::{Deserialize, Serialize};

pub const TENANT_ID: &str = "00000000-0000-0000-0000-0000000000aa";
pub const CLIENT_ID: &str = "graph-client";
pub const CLIENT_SECRET: &str = "graph-secret";
/// The only scope the client-credentials flow accepts for Graph.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

pub const AGENT1: &str = "00000000-0000-0000-0000-00000000a001";
pub const AGENT2: &str = "00000000-0000-0000-0000-00000000a002";
pub const AGENT3: &str = "00000000-0000-0000-0000-00000000a003";
pub const AGENT4: &str = "00000000-0000-0000-0000-00000000a004";
pub const AGENT5: &str = "00000000-0000-0000-0000-00000000a005";
/// A mailbox outside the application access policy: calendar calls answer 403.
pub const OUTSIDER: &str = "00000000-0000-0000-0000-00000000b001";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    pub tenant_id: String,
    pub clients: Vec<ClientSeed>,
    pub users: Vec<UserSeed>,
    /// Cap on `expirationDateTime` (reference §2.3: 4,230 min for Outlook events).
    pub max_subscription_minutes: i64,
    /// Real Graph requires https; local test endpoints are http.
    pub allow_http_notification_urls: bool,
    /// How long the validation handshake waits for the echo (real Graph: 10 s).
    pub handshake_timeout_ms: u64,
    /// In-flight requests per mailbox before 429 `ApplicationThrottled` (real Outlook: 4).
    pub mailbox_concurrency: usize,
    /// calendarView/delta page size when no `Prefer: odata.maxpagesize` is sent.
    pub default_page_size: usize,
    /// Delays before each retry of a failed notification delivery; then it is dropped.
    pub delivery_retry_ms: Vec<u64>,
    /// A notification endpoint slower than this counts as failed (real Graph: 3 s).
    pub notification_timeout_ms: u64,
    /// Active subscriptions per mailbox before 403 `ExtensionError` (real Graph: 1,000).
    pub max_subscriptions_per_mailbox: usize,
}

impl Default for Seed {
    fn default() -> Self {
        let agent = |id: &str, n: u8| UserSeed {
            id: id.to_owned(),
            user_principal_name: format!("agent{n}@contoso.example"),
            mail: format!("agent{n}@contoso.example"),
            display_name: format!("Agent {n}"),
            allowed: true,
        };
        Self {
            tenant_id: TENANT_ID.to_owned(),
            clients: vec![ClientSeed {
                client_id: CLIENT_ID.to_owned(),
                client_secret: CLIENT_SECRET.to_owned(),
            }],
            users: vec![
                agent(AGENT1, 1),
                agent(AGENT2, 2),
                agent(AGENT3, 3),
                agent(AGENT4, 4),
                agent(AGENT5, 5),
                UserSeed {
                    id: OUTSIDER.to_owned(),
                    user_principal_name: "outsider@contoso.example".to_owned(),
                    mail: "outsider@contoso.example".to_owned(),
                    display_name: "Outsider".to_owned(),
                    allowed: false,
                },
            ],
            max_subscription_minutes: 4230,
            allow_http_notification_urls: true,
            handshake_timeout_ms: 10_000,
            mailbox_concurrency: 4,
            default_page_size: 10,
            delivery_retry_ms: vec![1000, 5000],
            notification_timeout_ms: 3000,
            max_subscriptions_per_mailbox: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientSeed {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSeed {
    /// Entra object id (a UUID).
    pub id: String,
    pub user_principal_name: String,
    #[serde(default)]
    pub mail: String,
    #[serde(default)]
    pub display_name: String,
    /// Inside the application access policy / RBAC scope; `false` answers 403 on calendar calls.
    #[serde(default = "yes")]
    pub allowed: bool,
}

fn yes() -> bool {
    true
}

impl Seed {
    /// Rejects seeds the simulator cannot serve sensibly.
    pub fn validate(&self) -> Result<(), String> {
        if self.tenant_id.trim().is_empty() {
            return Err("tenant_id: must not be empty".to_owned());
        }
        if self.mailbox_concurrency == 0 || self.default_page_size == 0 {
            return Err("mailbox_concurrency and default_page_size must be at least 1".to_owned());
        }
        if self.max_subscription_minutes < 45 {
            return Err("max_subscription_minutes: must be at least 45".to_owned());
        }
        for (index, user) in self.users.iter().enumerate() {
            if user.id.trim().is_empty() || user.user_principal_name.trim().is_empty() {
                return Err(format!(
                    "users[{index}]: id and user_principal_name are required"
                ));
            }
            let clash = self.users[..index].iter().any(|other| {
                other.id.eq_ignore_ascii_case(&user.id)
                    || other
                        .user_principal_name
                        .eq_ignore_ascii_case(&user.user_principal_name)
            });
            if clash {
                return Err(format!(
                    "users[{index}]: duplicate id or user_principal_name"
                ));
            }
        }
        Ok(())
    }
}
