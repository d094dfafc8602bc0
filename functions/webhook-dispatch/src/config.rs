//! The function's configuration, read once from the environment (names as in `infra/` and
//! docs/delivery.md). A missing or bad variable is an error that names it.

use std::time::Duration;

use shared::delivery::RetrySchedule;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
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

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from any lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| {
            get(name).ok_or(ConfigError {
                name,
                reason: "missing".to_owned(),
            })
        };
        let parsed = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| ConfigError {
                    name,
                    reason: format!("expected a whole number, got {v:?}"),
                })
            })
        };
        let allow_loopback_http = match get("ALLOW_LOOPBACK_HTTP").as_deref().map(str::trim) {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(ConfigError {
                    name: "ALLOW_LOOPBACK_HTTP",
                    reason: format!("expected true or false, got {other:?}"),
                });
            }
        };
        let timeout_ms = parsed("DELIVERY_TIMEOUT_MS", 15_000)?;
        if timeout_ms == 0 {
            return Err(ConfigError {
                name: "DELIVERY_TIMEOUT_MS",
                reason: "must be positive".to_owned(),
            });
        }
        let max_receive_count = u32::try_from(parsed("MAX_RECEIVE_COUNT", 8)?)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or(ConfigError {
                name: "MAX_RECEIVE_COUNT",
                reason: "must be 1..=1000 (SQS's range)".to_owned(),
            })?;
        let standard = RetrySchedule::standard();
        let jitter = match get("RETRY_JITTER") {
            None => 0.1,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|j| (0.0..=1.0).contains(j))
                .ok_or(ConfigError {
                    name: "RETRY_JITTER",
                    reason: format!("expected a fraction 0..=1, got {v:?}"),
                })?,
        };
        let steps = match get("RETRY_SCHEDULE_SECONDS") {
            None => standard.steps().to_vec(),
            Some(v) => v
                .split(',')
                .map(|step| step.trim().parse::<u64>().map(Duration::from_secs))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ConfigError {
                    name: "RETRY_SCHEDULE_SECONDS",
                    reason: format!("expected comma-separated whole seconds, got {v:?}"),
                })?,
        };
        let cap = RetrySchedule::SQS_MAX_VISIBILITY - Duration::from_secs(15 * 60);
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            queue_url: required("NOTIFICATIONS_QUEUE_URL")?,
            subscribers_secret_id: required("SUBSCRIBERS_SECRET_ID")?,
            subscribers_cache: Duration::from_secs(parsed("SUBSCRIBERS_CACHE_SECONDS", 300)?),
            allow_loopback_http,
            delivery_timeout: Duration::from_millis(timeout_ms),
            max_response_bytes: usize::try_from(parsed("MAX_RESPONSE_BYTES", 65_536)?)
                .unwrap_or(usize::MAX),
            max_receive_count,
            schedule: RetrySchedule::new(steps, jitter, cap),
        })
    }
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
        let config = Config::from_lookup(lookup(&REQUIRED)).expect("valid");
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
        let config = Config::from_lookup(lookup(&pairs)).expect("valid");
        assert!(config.allow_loopback_http);
        assert_eq!(
            config.schedule.steps(),
            &[Duration::from_secs(1), Duration::from_secs(2)]
        );
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        let err = Config::from_lookup(lookup(&REQUIRED[..2])).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "environment variable SUBSCRIBERS_SECRET_ID: missing"
        );
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("DELIVERY_TIMEOUT_MS", "soon"));
        let err = Config::from_lookup(lookup(&pairs)).expect_err("bad");
        assert_eq!(err.name, "DELIVERY_TIMEOUT_MS");
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ALLOW_LOOPBACK_HTTP", "yes"));
        assert_eq!(
            Config::from_lookup(lookup(&pairs)).map_err(|e| e.name),
            Err("ALLOW_LOOPBACK_HTTP")
        );
    }
}
