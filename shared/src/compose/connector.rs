//! Cold-start wiring of the calendar connector's two functions: the public notification
//! endpoint (`calendar-notify`) and the sync worker (`calendar-sync`).

use std::sync::Arc;
use std::time::Duration;

use crate::aws::bus::EventBridgeBus;
use crate::aws::connections::DynamoConnections;
use crate::aws::secrets::secrets_manager_source;
use crate::aws::sync_queue::SqsSyncQueue;
use crate::calendar::{CalendarError, ClientStateKey, Provider, ProviderRouting};
use crate::clock::{Clock, SystemClock};
use crate::compose::{BootError, genesys_client, read_policy};
use crate::config::{ConfigError, Env};
use crate::genesys::GroupRoster;
use crate::google::{GoogleClient, GoogleSettings};
use crate::graph::{GraphClient, GraphSettings};
use crate::ports::{CalendarApis, SecretDocument, SecretError, SecretSource};
use crate::service::calendar_notify::NotifyService;
use crate::service::calendar_sync::{SyncService, SyncSettings};
use crate::service::calendar_upkeep::UpkeepService;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorBootError {
    #[error("connector secret: {0}")]
    Secret(#[from] SecretError),
    #[error("connector secret: field clientStateKey: {0}")]
    ClientStateKey(String),
    #[error("calendar client: {0}")]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Variables the connector functions read (names as in `infra/template.yaml`). At least one
/// calendar service is configured. The client-state key is read from `CLIENT_STATE_SECRET_ID`,
/// else from the Graph secret, else from the Google one.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    pub table_name: String,
    pub graph_secret_id: Option<String>,
    pub google_secret_id: Option<String>,
    pub client_state_secret_id: String,
    pub routing: ProviderRouting,
}

impl ConnectorSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let graph_secret_id = env.optional("GRAPH_SECRET_ID");
        let google_secret_id = env.optional("GOOGLE_SECRET_ID");
        let key_secret = env.optional("CLIENT_STATE_SECRET_ID");
        let (default, key_secret) = match (&graph_secret_id, &google_secret_id) {
            (Some(graph), _) => (Provider::Microsoft, key_secret.unwrap_or(graph.clone())),
            (None, Some(google)) => (Provider::Google, key_secret.unwrap_or(google.clone())),
            // The endpoint needs only the key.
            (None, None) => (
                Provider::Microsoft,
                key_secret.ok_or(ConfigError {
                    variable: "GRAPH_SECRET_ID",
                    reason: "is required unless GOOGLE_SECRET_ID or CLIENT_STATE_SECRET_ID is set"
                        .to_owned(),
                })?,
            ),
        };
        let google_domains = env
            .list("GOOGLE_WORKSPACE_DOMAINS")
            .into_iter()
            .map(|domain| domain.to_ascii_lowercase())
            .collect::<Vec<_>>();
        if !google_domains.is_empty() && google_secret_id.is_none() {
            return Err(ConfigError {
                variable: "GOOGLE_WORKSPACE_DOMAINS",
                reason: "is set but GOOGLE_SECRET_ID is not".to_owned(),
            });
        }
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            graph_secret_id,
            google_secret_id,
            client_state_secret_id: key_secret,
            routing: ProviderRouting {
                google_domains,
                default,
            },
        })
    }
}

/// The sync worker's own variables.
#[derive(Debug, Clone)]
pub struct SyncFunctionSettings {
    pub connector: ConnectorSettings,
    pub event_bus_name: String,
    /// Where Graph posts notifications: the endpoint's Function URL.
    pub notification_base_url: String,
    pub sync: SyncSettings,
    pub page_size: u32,
    /// The policy the transition decides by (`POLICY_PATH`): whether its messages show
    /// subjects decides whether subjects leave the connector.
    pub policy_path: Option<std::path::PathBuf>,
    /// The stack's policy parameter (`POLICY_PARAMETER`), read at cold start; it wins over the
    /// file.
    pub policy_parameter: Option<String>,
}

impl SyncFunctionSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = SyncSettings::default();
        let days = |variable, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                env.number(variable, default.as_secs() / 86_400)? * 86_400,
            ))
        };
        Ok(Self {
            connector: ConnectorSettings::from_env(env)?,
            event_bus_name: env.required("EVENT_BUS_NAME")?,
            notification_base_url: env.required("NOTIFICATION_BASE_URL")?,
            sync: SyncSettings {
                window_after: days("SYNC_WINDOW_DAYS", defaults.window_after)?,
                subscription_lifetime: Duration::from_secs(
                    env.number(
                        "SUBSCRIPTION_LIFETIME_MINUTES",
                        defaults.subscription_lifetime.as_secs() / 60,
                    )? * 60,
                ),
                ..defaults
            },
            page_size: page_size(env)?,
            policy_path: env.optional("POLICY_PATH").map(std::path::PathBuf::from),
            policy_parameter: env.optional("POLICY_PARAMETER"),
        })
    }
}

/// Largest page asked of a calendar service (Google allows 2,500, Graph decides its own).
const MAX_PAGE_SIZE: u64 = 1000;

/// `CALENDAR_PAGE_SIZE`: Graph's `odata.maxpagesize` and Google's `maxResults`. The older name
/// `GRAPH_PAGE_SIZE` is still read when the new one is absent.
fn page_size(env: &Env<'_>) -> Result<u32, ConfigError> {
    let (variable, size) = match env.optional("CALENDAR_PAGE_SIZE") {
        Some(_) => ("CALENDAR_PAGE_SIZE", env.number("CALENDAR_PAGE_SIZE", 50)?),
        None => ("GRAPH_PAGE_SIZE", env.number("GRAPH_PAGE_SIZE", 50)?),
    };
    match u32::try_from(size) {
        Ok(size) if (1..=MAX_PAGE_SIZE).contains(&u64::from(size)) => Ok(size),
        _ => Err(ConfigError {
            variable,
            reason: format!("{size} is not a page size from 1 to {MAX_PAGE_SIZE}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> Env<'a> {
        Env::from_pairs(pairs)
    }

    #[test]
    fn the_page_size_is_read_under_its_new_name_then_its_old_one_and_bounded() {
        assert_eq!(page_size(&env(&[])).expect("default"), 50);
        assert_eq!(
            page_size(&env(&[("GRAPH_PAGE_SIZE", "20")])).expect("old"),
            20
        );
        let both = [("CALENDAR_PAGE_SIZE", "100"), ("GRAPH_PAGE_SIZE", "20")];
        assert_eq!(page_size(&env(&both)).expect("new wins"), 100);
        let error = page_size(&env(&[("CALENDAR_PAGE_SIZE", "0")])).expect_err("zero");
        assert_eq!(error.variable, "CALENDAR_PAGE_SIZE");
        assert!(error.reason.contains("from 1 to 1000"), "{}", error.reason);
        let huge = [("GRAPH_PAGE_SIZE", "99999999999")];
        assert_eq!(
            page_size(&env(&huge)).expect_err("huge").variable,
            "GRAPH_PAGE_SIZE"
        );
    }
}

fn secrets(aws: &aws_config::SdkConfig, clock: Arc<dyn Clock>) -> Arc<dyn SecretSource> {
    Arc::new(secrets_manager_source(
        aws_sdk_secretsmanager::Client::new(aws),
        clock,
        Duration::from_secs(300),
    ))
}

fn client_state_key(doc: &SecretDocument) -> Result<ClientStateKey, ConnectorBootError> {
    ClientStateKey::new(doc.string("clientStateKey")?).map_err(ConnectorBootError::ClientStateKey)
}

/// The configured calendar clients; `notification_base` is where they send notifications
/// (only the sync worker creates subscriptions).
async fn calendar_apis(
    secrets: &dyn SecretSource,
    settings: &ConnectorSettings,
    notification_base: Option<&str>,
    page_size: u32,
    clock: Arc<dyn Clock>,
) -> Result<CalendarApis, ConnectorBootError> {
    if settings.graph_secret_id.is_none() && settings.google_secret_id.is_none() {
        return Err(ConnectorBootError::Config(ConfigError {
            variable: "GRAPH_SECRET_ID",
            reason: "no calendar service: set GRAPH_SECRET_ID or GOOGLE_SECRET_ID".to_owned(),
        }));
    }
    let mut apis = CalendarApis::default();
    if let Some(id) = &settings.graph_secret_id {
        let mut graph = GraphSettings::from_secret(secrets.get(id).await?.as_ref())?;
        if let Some(base) = notification_base {
            graph = graph.with_notification_base(base);
        }
        graph.page_size = page_size;
        apis.microsoft = Some(Arc::new(GraphClient::new(graph, clock.clone())?));
    }
    if let Some(id) = &settings.google_secret_id {
        let mut google = GoogleSettings::from_secret(secrets.get(id).await?.as_ref())?;
        if let Some(base) = notification_base {
            google = google.with_notification_base(base);
        }
        google.page_size = page_size;
        apis.google = Some(Arc::new(GoogleClient::new(google, clock)?));
    }
    Ok(apis)
}

/// The endpoint: the client-state key (read once), the subscription index, the sync queue.
pub async fn notify_service(
    aws: &aws_config::SdkConfig,
    settings: &ConnectorSettings,
    sync_queue_url: &str,
) -> Result<NotifyService, ConnectorBootError> {
    let doc = secrets(aws, Arc::new(SystemClock))
        .get(&settings.client_state_secret_id)
        .await?;
    Ok(NotifyService {
        connections: Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.table_name,
        )),
        queue: Arc::new(SqsSyncQueue::new(
            aws_sdk_sqs::Client::new(aws),
            sync_queue_url,
        )),
        key: client_state_key(&doc)?,
    })
}

/// The sync worker: the calendar clients (credentials from their secrets), the connections,
/// the bus.
pub async fn sync_service(
    aws: &aws_config::SdkConfig,
    settings: &SyncFunctionSettings,
) -> Result<SyncService, ConnectorBootError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = secrets(aws, clock.clone());
    let key_doc = secrets
        .get(&settings.connector.client_state_secret_id)
        .await?;
    Ok(SyncService {
        calendars: calendar_apis(
            secrets.as_ref(),
            &settings.connector,
            Some(&settings.notification_base_url),
            settings.page_size,
            clock.clone(),
        )
        .await?,
        connections: Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.connector.table_name,
        )),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(aws),
            &settings.event_bus_name,
            clock.clone(),
        )),
        key: client_state_key(&key_doc)?,
        clock,
        settings: SyncSettings {
            subjects: read_policy(
                aws,
                settings.policy_path.as_deref(),
                settings.policy_parameter.as_deref(),
            )
            .await?
            .0
            .needs_subjects(),
            ..settings.sync.clone()
        },
    })
}

/// The upkeep function's own variables.
#[derive(Debug, Clone)]
pub struct UpkeepFunctionSettings {
    pub connector: ConnectorSettings,
    pub genesys_secret_id: String,
    pub roster_group_id: String,
    pub sync_queue_url: String,
    pub policy_path: Option<std::path::PathBuf>,
    pub policy_parameter: Option<String>,
    pub budget: usize,
}

impl UpkeepFunctionSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            connector: ConnectorSettings::from_env(env)?,
            genesys_secret_id: env.required("GENESYS_SECRET_ID")?,
            roster_group_id: env.required("ROSTER_GROUP_ID")?,
            sync_queue_url: env.required("SYNC_QUEUE_URL")?,
            policy_path: env.optional("POLICY_PATH").map(std::path::PathBuf::from),
            policy_parameter: env.optional("POLICY_PARAMETER"),
            budget: usize::try_from(env.number("UPKEEP_BUDGET", 500)?).unwrap_or(500),
        })
    }
}

/// The upkeep: the roster from Genesys, the calendar services for user matching and deletions, the table, the
/// sync queue, the policy (for `opt_out`).
pub async fn upkeep_service(
    aws: &aws_config::SdkConfig,
    settings: &UpkeepFunctionSettings,
) -> Result<UpkeepService, ConnectorBootError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (policy, _) = read_policy(
        aws,
        settings.policy_path.as_deref(),
        settings.policy_parameter.as_deref(),
    )
    .await?;
    let secrets = secrets(aws, clock.clone());
    let calendars = calendar_apis(
        secrets.as_ref(),
        &settings.connector,
        None,
        50,
        clock.clone(),
    )
    .await?;
    let genesys = genesys_client(secrets, &settings.genesys_secret_id, clock.clone())?;
    Ok(UpkeepService {
        roster: Arc::new(GroupRoster::new(genesys, &settings.roster_group_id)),
        calendars,
        routing: settings.connector.routing.clone(),
        connections: Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.connector.table_name,
        )),
        queue: Arc::new(SqsSyncQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &settings.sync_queue_url,
        )),
        policy: Arc::new(policy),
        clock,
        budget: settings.budget,
    })
}
