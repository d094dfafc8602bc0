//! Configuration from the environment, read once at cold start. Names match
//! `infra/template.yaml` and the README's configuration table.

use presence_autopilot::compose::TransitionSettings;
use presence_autopilot::config::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct Config {
    pub transition: TransitionSettings,
    /// The burst queue: a record that failed for a retryable reason is made visible again
    /// after a short backoff (or Genesys's `Retry-After`), not after the queue's 730 s.
    /// Required: a misspelt name must stop the cold start, not quietly slow every retry.
    pub burst_queue_url: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    pub fn from(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            transition: TransitionSettings::from_env(env)?,
            burst_queue_url: env.required("BURST_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> Env<'a> {
        Env::from_pairs(pairs)
    }

    const REQUIRED: [(&str, &str); 3] = [
        ("TABLE_NAME", "t"),
        ("GENESYS_SECRET_ID", "s"),
        ("BURST_QUEUE_URL", "https://sqs.example/q"),
    ];

    #[test]
    fn defaults_apply() {
        let config = Config::from(&env(&REQUIRED)).expect("valid").transition;
        assert_eq!(config.audit_retention, Duration::from_secs(400 * 86_400));
        assert_eq!(config.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(config.shift_cache, Duration::from_secs(900));
        assert!(config.policy_path.is_none() && config.wfm_business_unit_ids.is_empty());
    }

    #[test]
    fn errors_name_the_variable() {
        let error = Config::from(&env(&REQUIRED[..1])).expect_err("missing");
        assert_eq!(error.variable, "GENESYS_SECRET_ID");
        let error = Config::from(&env(&REQUIRED[..2])).expect_err("missing");
        assert_eq!(error.variable, "BURST_QUEUE_URL");
        let mut bad = REQUIRED.to_vec();
        bad.push(("AUDIT_RETENTION_DAYS", "forever"));
        assert_eq!(
            Config::from(&env(&bad)).expect_err("bad").variable,
            "AUDIT_RETENTION_DAYS"
        );
    }
}
