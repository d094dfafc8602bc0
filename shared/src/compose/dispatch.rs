//! webhook-dispatch's configuration, read once from the environment (names as in `infra/` and
//! docs/delivery.md; a missing or bad variable is an error that names it), and the dispatcher
//! built from it.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use crate::aws::dynamo::DynamoStore;
use crate::aws::endpoints::DynamoEndpoints;
use crate::aws::secrets::secrets_manager_source;
use crate::aws::sqs::SqsVisibility;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Env};
use crate::delivery::RetrySchedule;
use crate::delivery::http::{GuardedHttp, HttpLimits, TransportFailure};
use crate::delivery::slack::SlackClient;
use crate::delivery::ssrf::{SystemResolver, UrlPolicy};
use crate::delivery::teams::TeamsClient;
use crate::delivery::webhook::WebhookSender;
use crate::service::dispatch::{DispatchSettings, Dispatcher};

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDispatchSettings {
    /// `TABLE_NAME`: the state table (audit chain, delivery markers, disabled endpoints).
    pub table_name: String,
    /// `NOTIFICATIONS_QUEUE_URL`: the queue this function consumes (for visibility changes).
    pub queue_url: String,
    /// `SUBSCRIBERS_SECRET_ID`: the Secrets Manager secret with the subscriber document.
    pub subscribers_secret_id: String,
    /// `SUBSCRIBERS_CACHE_SECONDS` (default 300): how long the document is cached.
    pub subscribers_cache: Duration,
    /// `ALLOW_LOOPBACK_HTTP` (default false): local development only.
    pub allow_loopback_http: bool,
    /// `DELIVERY_TIMEOUT_MS` (default 15000): total time per HTTP request.
    pub delivery_timeout: Duration,
    /// `MAX_RESPONSE_BYTES` (default 65536): response bytes read at most.
    pub max_response_bytes: usize,
    /// `MAX_RECEIVE_COUNT` (default 8): must equal the queue's redrive `maxReceiveCount`.
    pub max_receive_count: u32,
    /// `RETRY_SCHEDULE_SECONDS` (comma-separated; default the standard schedule) and
    /// `RETRY_JITTER` (fraction, default 0.1).
    pub schedule: RetrySchedule,
}

impl WebhookDispatchSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads from any lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from(&Env::from_fn(lookup))
    }

    pub fn from(env: &Env<'_>) -> Result<Self, ConfigError> {
        let invalid = |variable: &'static str, reason: String| ConfigError { variable, reason };
        let timeout_ms = env.number("DELIVERY_TIMEOUT_MS", 15_000)?;
        if timeout_ms == 0 {
            return Err(invalid(
                "DELIVERY_TIMEOUT_MS",
                "must be positive".to_owned(),
            ));
        }
        let max_receive_count = u32::try_from(env.number("MAX_RECEIVE_COUNT", 8)?)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "MAX_RECEIVE_COUNT",
                    "must be 1..=1000 (SQS's range)".to_owned(),
                )
            })?;
        let jitter = match env.optional("RETRY_JITTER") {
            None => 0.1,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|j| (0.0..=1.0).contains(j))
                .ok_or_else(|| {
                    invalid(
                        "RETRY_JITTER",
                        format!("expected a fraction 0..=1, got {v:?}"),
                    )
                })?,
        };
        let steps = match env.optional("RETRY_SCHEDULE_SECONDS") {
            None => RetrySchedule::standard().steps().to_vec(),
            Some(v) => v
                .split(',')
                .map(|step| step.trim().parse::<u64>().map(Duration::from_secs))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    invalid(
                        "RETRY_SCHEDULE_SECONDS",
                        format!("expected comma-separated whole seconds, got {v:?}"),
                    )
                })?,
        };
        let cap = RetrySchedule::SQS_MAX_VISIBILITY - Duration::from_secs(15 * 60);
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            queue_url: env.required("NOTIFICATIONS_QUEUE_URL")?,
            subscribers_secret_id: env.required("SUBSCRIBERS_SECRET_ID")?,
            subscribers_cache: env.seconds("SUBSCRIBERS_CACHE_SECONDS", 300)?,
            allow_loopback_http: env.flag("ALLOW_LOOPBACK_HTTP", false)?,
            delivery_timeout: Duration::from_millis(timeout_ms),
            max_response_bytes: usize::try_from(env.number("MAX_RESPONSE_BYTES", 65_536)?)
                .unwrap_or(usize::MAX),
            max_receive_count,
            schedule: RetrySchedule::new(steps, jitter, cap),
        })
    }
}

/// Every adapter of the dispatcher, built once per container.
pub fn dispatcher(
    aws: &aws_config::SdkConfig,
    settings: &WebhookDispatchSettings,
) -> Result<Dispatcher, TransportFailure> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let limits = HttpLimits {
        timeout: settings.delivery_timeout,
        max_response_bytes: settings.max_response_bytes,
    };
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        &settings.table_name,
        Arc::clone(&clock),
    ));
    let policy = UrlPolicy {
        allow_loopback: settings.allow_loopback_http,
    };
    Ok(Dispatcher {
        secrets: Arc::new(secrets_manager_source(
            aws_sdk_secretsmanager::Client::new(aws),
            Arc::clone(&clock),
            settings.subscribers_cache,
        )),
        subscribers_secret: settings.subscribers_secret_id.clone(),
        webhooks: Arc::new(WebhookSender::new(
            GuardedHttp::new(policy, Arc::new(SystemResolver), limits),
            Arc::clone(&clock),
        )),
        slack: Arc::new(SlackClient::new(limits)?),
        teams: Arc::new(TeamsClient::new(limits, Arc::clone(&clock))?),
        audit: store.clone(),
        markers: store,
        endpoints: Arc::new(DynamoEndpoints::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.table_name,
        )),
        visibility: Arc::new(SqsVisibility::new(
            aws_sdk_sqs::Client::new(aws),
            &settings.queue_url,
        )),
        clock,
        settings: DispatchSettings {
            schedule: settings.schedule.clone(),
            max_receive_count: settings.max_receive_count,
            ..DispatchSettings::default()
        },
        rng: Mutex::new(fastrand::Rng::new()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const REQUIRED: [(&str, &str); 3] = [
        ("TABLE_NAME", "state"),
        (
            "NOTIFICATIONS_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/n",
        ),
        ("SUBSCRIBERS_SECRET_ID", "subscribers"),
    ];

    #[test]
    fn defaults_apply_and_overrides_parse() {
        let config = WebhookDispatchSettings::from_lookup(lookup(&REQUIRED)).expect("valid");
        assert_eq!(config.delivery_timeout, Duration::from_secs(15));
        assert!(!config.allow_loopback_http);
        assert_eq!(config.max_receive_count, 8);
        assert_eq!(config.schedule, RetrySchedule::standard());

        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            ("ALLOW_LOOPBACK_HTTP", "true"),
            ("RETRY_SCHEDULE_SECONDS", "1, 2"),
            ("RETRY_JITTER", "0"),
        ]);
        let config = WebhookDispatchSettings::from_lookup(lookup(&pairs)).expect("valid");
        assert!(config.allow_loopback_http);
        assert_eq!(
            config.schedule.steps(),
            &[Duration::from_secs(1), Duration::from_secs(2)]
        );
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        let err =
            WebhookDispatchSettings::from_lookup(lookup(&REQUIRED[..2])).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "environment variable SUBSCRIBERS_SECRET_ID: is required"
        );
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("DELIVERY_TIMEOUT_MS", "soon"));
        let err = WebhookDispatchSettings::from_lookup(lookup(&pairs)).expect_err("bad");
        assert_eq!(err.variable, "DELIVERY_TIMEOUT_MS");
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ALLOW_LOOPBACK_HTTP", "yes"));
        assert_eq!(
            WebhookDispatchSettings::from_lookup(lookup(&pairs)).map_err(|e| e.variable),
            Err("ALLOW_LOOPBACK_HTTP")
        );
    }
}
