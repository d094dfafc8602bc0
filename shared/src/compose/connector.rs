//! Cold-start wiring of the calendar connector's two functions: the public notification
//! endpoint (`calendar-notify`) and the sync worker (`calendar-sync`).

use std::sync::Arc;
use std::time::Duration;

use crate::aws::bus::EventBridgeBus;
use crate::aws::connections::DynamoConnections;
use crate::aws::secrets::secrets_manager_source;
use crate::aws::sync_queue::SqsSyncQueue;
use crate::calendar::{CalendarError, ClientStateKey};
use crate::clock::{Clock, SystemClock};
use crate::compose::{BootError, genesys_client, load_policy};
use crate::config::{ConfigError, Env};
use crate::genesys::GroupRoster;
use crate::graph::{GraphClient, GraphSettings};
use crate::ports::SecretDocument;
use crate::ports::{SecretSource, StoreError};
use crate::service::calendar_notify::NotifyService;
use crate::service::calendar_sync::{SyncService, SyncSettings};
use crate::service::calendar_upkeep::UpkeepService;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorBootError {
    #[error("Graph secret: {0}")]
    Secret(#[from] StoreError),
    #[error("Graph secret: field clientStateKey: {0}")]
    ClientStateKey(String),
    #[error("Graph client: {0}")]
    Graph(#[from] CalendarError),
    #[error(transparent)]
    Boot(#[from] BootError),
}

/// Variables both connector functions read (names as in `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    pub table_name: String,
    pub graph_secret_id: String,
}

impl ConnectorSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            graph_secret_id: env.required("GRAPH_SECRET_ID")?,
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
            page_size: u32::try_from(env.number("GRAPH_PAGE_SIZE", 50)?).unwrap_or(50),
        })
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

/// The endpoint: the client-state key (read once), the subscription index, the sync queue.
pub async fn notify_service(
    aws: &aws_config::SdkConfig,
    settings: &ConnectorSettings,
    sync_queue_url: &str,
) -> Result<NotifyService, ConnectorBootError> {
    let doc = secrets(aws, Arc::new(SystemClock))
        .get(&settings.graph_secret_id)
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

/// The sync worker: Graph (app credentials from the secret), the connections, the bus.
pub async fn sync_service(
    aws: &aws_config::SdkConfig,
    settings: &SyncFunctionSettings,
) -> Result<SyncService, ConnectorBootError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let doc = secrets(aws, clock.clone())
        .get(&settings.connector.graph_secret_id)
        .await?;
    let mut graph =
        GraphSettings::from_secret(&doc)?.with_notification_base(&settings.notification_base_url);
    graph.page_size = settings.page_size;
    Ok(SyncService {
        calendar: Arc::new(GraphClient::new(graph, clock.clone())?),
        connections: Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.connector.table_name,
        )),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(aws),
            &settings.event_bus_name,
            clock.clone(),
        )),
        key: client_state_key(&doc)?,
        clock,
        settings: settings.sync.clone(),
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
            budget: usize::try_from(env.number("UPKEEP_BUDGET", 500)?).unwrap_or(500),
        })
    }
}

/// The upkeep: the roster from Genesys, Graph for user matching and deletions, the table, the
/// sync queue, the policy (for `opt_out`).
pub async fn upkeep_service(
    aws: &aws_config::SdkConfig,
    settings: &UpkeepFunctionSettings,
) -> Result<UpkeepService, ConnectorBootError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let policy = load_policy(settings.policy_path.as_deref())?;
    let secrets = secrets(aws, clock.clone());
    let doc = secrets.get(&settings.connector.graph_secret_id).await?;
    let graph = GraphSettings::from_secret(&doc)?;
    let genesys = genesys_client(secrets, &settings.genesys_secret_id, clock.clone())?;
    Ok(UpkeepService {
        roster: Arc::new(GroupRoster::new(genesys, &settings.roster_group_id)),
        calendar: Arc::new(GraphClient::new(graph, clock.clone())?),
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
