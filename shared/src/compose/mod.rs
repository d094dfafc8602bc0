//! The composition root: the functions (at cold start) and the tests build the services here,
//! from adapters — AWS ones, the Genesys client from its secret, the policy resolved against the
//! org's presence definitions. The clock is injected; endpoints come from the AWS config
//! (`AWS_ENDPOINT_URL`) and the Genesys secret (`apiBaseUrl`).

pub mod connector;
pub mod dispatch;
mod functions;
pub mod lookahead;

pub use crate::aws::scheduler::SchedulerTarget;
pub use dispatch::WebhookDispatchSettings;
pub use functions::{
    TransitionFunction, calendar_notify, calendar_sync, calendar_upkeep, outbox_relay,
    schedule_check, transition, webhook_dispatch,
};
pub use lookahead::{LookaheadSettings, lookahead};

use std::sync::Arc;
use std::time::Duration;

use crate::aws::dynamo::DynamoStore;
use crate::aws::secrets::secrets_manager_source;
use crate::aws::ssm::SsmPolicy;
use crate::clock::{Clock, SystemClock};
use crate::genesys::{
    GenesysClient, GenesysConfig, GenesysError, GenesysSecretCredentials, GenesysTeams,
};
use crate::policy::{DEFAULT_POLICY, Policy, PolicyError};
use crate::ports::{
    AuditLog, IdempotencyStore, PolicySource, SecretError, SecretSource, ShiftCache, StateStore,
};
use crate::service::policy_refresh::PolicyRefresh;
use crate::service::transition::{Targets, TransitionDeps};
use crate::wfm::{CachedShifts, WfmShifts};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("policy file {path}: {message}")]
    PolicyFile { path: String, message: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("Genesys secret: {0}")]
    Secret(#[from] SecretError),
    #[error("Genesys: {0}")]
    Genesys(#[from] GenesysError),
    #[error("policy parameter {name}: {message}")]
    PolicyStore { name: String, message: String },
}

/// What the transition path needs to know, whichever function runs it.
#[derive(Debug, Clone)]
pub struct TransitionSettings {
    pub table_name: String,
    pub genesys_secret_id: String,
    pub policy_path: Option<std::path::PathBuf>,
    /// The SSM parameter holding the policy (it wins over `policy_path`); looked at again every
    /// `policy_refresh`.
    pub policy_parameter: Option<String>,
    pub policy_refresh: Duration,
    pub wfm_business_unit_ids: Vec<String>,
    pub audit_retention: Duration,
    pub secret_cache: Duration,
    pub idempotency_ttl: Duration,
    /// How long a cached WFM schedule answers without asking WFM again.
    pub shift_cache: Duration,
    /// How old a presence read may be and still stand for the compare-and-set's own read.
    pub presence_fresh_for: Duration,
}

impl TransitionSettings {
    /// The transition path's variables (both `transition` and `schedule-check` read them).
    pub fn from_env(env: &crate::config::Env<'_>) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            genesys_secret_id: env.required("GENESYS_SECRET_ID")?,
            policy_path: env.optional("POLICY_PATH").map(std::path::PathBuf::from),
            policy_parameter: env.optional("POLICY_PARAMETER"),
            policy_refresh: env.seconds("POLICY_REFRESH_SECONDS", 60)?,
            wfm_business_unit_ids: env.list("WFM_BUSINESS_UNIT_IDS"),
            audit_retention: Duration::from_secs(env.number("AUDIT_RETENTION_DAYS", 400)? * 86_400),
            secret_cache: env.seconds("SECRET_CACHE_SECONDS", 300)?,
            idempotency_ttl: env.seconds("IDEMPOTENCY_TTL_SECONDS", 86_400)?,
            shift_cache: env.seconds("SHIFT_CACHE_SECONDS", 900)?,
            presence_fresh_for: Duration::from_millis(env.number("PRESENCE_FRESH_FOR_MS", 1000)?),
        })
    }
}

/// The policy at cold start: the stack's parameter when named (with the source to refresh it
/// from), else the file, else the built-in one. An invalid one fails the cold start, naming
/// the key: there is no earlier good one to keep yet.
pub async fn read_policy(
    aws: &aws_config::SdkConfig,
    path: Option<&std::path::Path>,
    parameter: Option<&str>,
) -> Result<(Policy, Option<Arc<SsmPolicy>>), BootError> {
    let Some(name) = parameter else {
        return Ok((load_policy(path)?, None));
    };
    let source = Arc::new(SsmPolicy::new(aws_sdk_ssm::Client::new(aws), name));
    let stored = source.fetch().await.map_err(|e| BootError::PolicyStore {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    Ok((Policy::from_toml(&stored.text)?, Some(source)))
}

pub fn load_policy(path: Option<&std::path::Path>) -> Result<Policy, BootError> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path).map_err(|e| BootError::PolicyFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?,
        None => DEFAULT_POLICY.to_owned(),
    };
    Ok(Policy::from_toml(&text)?)
}

/// The Genesys client for the OAuth client stored in `secret_id`, with credentials re-read from
/// the secret after a 401. Nothing is read here: the secret (and the hosts its region or
/// `apiBaseUrl` names) is read at the first call, so a cold start makes no network call.
pub fn genesys_client(
    secrets: Arc<dyn SecretSource>,
    secret_id: &str,
    clock: Arc<dyn Clock>,
) -> Result<GenesysClient, BootError> {
    Ok(GenesysClient::new(
        GenesysConfig::from_credentials(),
        Arc::new(GenesysSecretCredentials::new(secrets, secret_id)),
        clock,
    )?)
}

/// The transition path wired on AWS (or moto, through `AWS_ENDPOINT_URL`).
#[derive(Debug)]
pub struct Wired {
    pub deps: TransitionDeps,
    pub shifts: Arc<CachedShifts>,
    pub store: Arc<DynamoStore>,
}

/// Everything `TransitionService` needs, on AWS, on the system clock.
pub async fn transition_deps(
    aws: &aws_config::SdkConfig,
    settings: &TransitionSettings,
) -> Result<TransitionDeps, BootError> {
    Ok(wire(aws, settings, Arc::new(SystemClock)).await?.deps)
}

/// The AWS adapters and the Genesys client from `settings`, assembled on `clock`.
pub async fn wire(
    aws: &aws_config::SdkConfig,
    settings: &TransitionSettings,
    clock: Arc<dyn Clock>,
) -> Result<Wired, BootError> {
    let secrets: Arc<dyn SecretSource> = Arc::new(secrets_manager_source(
        aws_sdk_secretsmanager::Client::new(aws),
        clock.clone(),
        settings.secret_cache,
    ));
    let genesys = genesys_client(secrets, &settings.genesys_secret_id, clock.clone())?;
    let store = Arc::new(
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.table_name,
            clock.clone(),
        )
        .with_audit_retention(settings.audit_retention),
    );
    let (policy, source) = read_policy(
        aws,
        settings.policy_path.as_deref(),
        settings.policy_parameter.as_deref(),
    )
    .await?;
    let (mut deps, shifts) = assemble_transition(TransitionParts {
        genesys,
        store: store.clone(),
        clock: clock.clone(),
        policy,
        business_units: settings.wfm_business_unit_ids.clone(),
        shift_cache: settings.shift_cache,
        idempotency_ttl: settings.idempotency_ttl,
        presence_fresh_for: settings.presence_fresh_for,
    })
    .await?;
    deps.policy_refresh = source.map(|source| {
        Arc::new(PolicyRefresh::new(
            source,
            deps.policy.clone(),
            deps.catalog.clone(),
            clock,
            settings.policy_refresh,
        ))
    });
    Ok(Wired {
        deps,
        shifts,
        store,
    })
}

/// The adapters the transition path is assembled from (the functions' AWS ones, or a test's).
#[derive(Debug)]
pub struct TransitionParts<S> {
    pub genesys: GenesysClient,
    /// State, audit chain, idempotency and the shift cache (one DynamoDB table in production).
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
    pub policy: Policy,
    pub business_units: Vec<String>,
    /// How long a cached WFM schedule answers without asking WFM again.
    pub shift_cache: Duration,
    pub idempotency_ttl: Duration,
    /// How old a presence read may be and still stand for the compare-and-set's own read.
    pub presence_fresh_for: Duration,
}

/// The policy resolved against the org's presence definitions, WFM behind the shift cache, and
/// the ports of `TransitionService`.
pub async fn assemble_transition<S>(
    parts: TransitionParts<S>,
) -> Result<(TransitionDeps, Arc<CachedShifts>), BootError>
where
    S: StateStore + AuditLog + IdempotencyStore + ShiftCache + 'static,
{
    let TransitionParts {
        genesys,
        store,
        clock,
        policy,
        business_units,
        shift_cache,
        idempotency_ttl,
        presence_fresh_for,
    } = parts;
    let wfm = WfmShifts::new(genesys.clone(), clock.clone(), business_units);
    let shifts = Arc::new(CachedShifts::new(
        wfm,
        store.clone(),
        clock.clone(),
        shift_cache,
    ));
    let deps = TransitionDeps {
        teams: Arc::new(GenesysTeams::new(genesys.clone(), clock.clone())),
        routing: Arc::new(genesys.clone()),
        users: Arc::new(genesys.clone()),
        catalog: Arc::new(genesys.clone()),
        presence: Arc::new(genesys),
        shifts: shifts.clone(),
        state: store.clone(),
        audit: store.clone(),
        idempotency: store,
        clock,
        policy: Arc::new(policy.into()),
        // Resolved at the first event, so a cold start makes no Genesys call.
        targets: Arc::new(Targets::lazy()),
        policy_refresh: None,
        idempotency_ttl,
        presence_fresh_for,
    };
    Ok((deps, shifts))
}
