//! Configuration from the environment, read once at cold start. Names match `infra/template.yaml`
//! and the README's configuration table.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub notifications_queue_url: String,
    /// Secrets Manager id (name or ARN) of the Genesys OAuth client secret.
    pub genesys_secret_id: String,
    /// A policy TOML file; the built-in default policy when unset.
    pub policy_path: Option<PathBuf>,
    /// WFM business units to search for shifts; when empty each agent's unit is looked up.
    pub wfm_business_unit_ids: Vec<String>,
    pub audit_retention: Duration,
    pub secret_cache: Duration,
    pub idempotency_ttl: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "environment variable {}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |variable: &'static str| {
            lookup(variable)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError {
                    variable,
                    reason: "is required".to_owned(),
                })
        };
        let seconds = |variable: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match lookup(variable).filter(|v| !v.trim().is_empty()) {
                None => Ok(Duration::from_secs(default)),
                Some(raw) => raw
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ConfigError {
                        variable,
                        reason: format!("{raw:?} is not a whole number"),
                    }),
            }
        };
        let days = seconds("AUDIT_RETENTION_DAYS", 400)?;
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            notifications_queue_url: required("NOTIFICATIONS_QUEUE_URL")?,
            genesys_secret_id: required("GENESYS_SECRET_ID")?,
            policy_path: lookup("POLICY_PATH")
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
            wfm_business_unit_ids: lookup("WFM_BUSINESS_UNIT_IDS")
                .map(|raw| {
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            audit_retention: days * 86_400,
            secret_cache: seconds("SECRET_CACHE_SECONDS", 300)?,
            idempotency_ttl: seconds("IDEMPOTENCY_TTL_SECONDS", 86_400)?,
        })
    }
}

impl From<&Config> for shared::service::bootstrap::TransitionSettings {
    fn from(config: &Config) -> Self {
        Self {
            table_name: config.table_name.clone(),
            notifications_queue_url: config.notifications_queue_url.clone(),
            genesys_secret_id: config.genesys_secret_id.clone(),
            policy_path: config.policy_path.clone(),
            wfm_business_unit_ids: config.wfm_business_unit_ids.clone(),
            audit_retention: config.audit_retention,
            secret_cache: config.secret_cache,
            idempotency_ttl: config.idempotency_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const REQUIRED: [(&str, &str); 3] = [
        ("TABLE_NAME", "t"),
        ("NOTIFICATIONS_QUEUE_URL", "http://q"),
        ("GENESYS_SECRET_ID", "s"),
    ];

    #[test]
    fn defaults_apply() {
        let config = Config::from_lookup(env(&REQUIRED)).expect("valid");
        assert_eq!(config.audit_retention, Duration::from_secs(400 * 86_400));
        assert_eq!(config.idempotency_ttl, Duration::from_secs(86_400));
        assert!(config.policy_path.is_none() && config.wfm_business_unit_ids.is_empty());
    }

    #[test]
    fn errors_name_the_variable() {
        let error = Config::from_lookup(env(&REQUIRED[..2])).expect_err("missing");
        assert_eq!(error.variable, "GENESYS_SECRET_ID");
        let mut bad = REQUIRED.to_vec();
        bad.push(("AUDIT_RETENTION_DAYS", "forever"));
        assert_eq!(
            Config::from_lookup(env(&bad)).expect_err("bad").variable,
            "AUDIT_RETENTION_DAYS"
        );
    }

    #[test]
    fn business_units_are_a_comma_list() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("WFM_BUSINESS_UNIT_IDS", " bu-1, bu-2 ,"));
        let config = Config::from_lookup(env(&pairs)).expect("valid");
        assert_eq!(config.wfm_business_unit_ids, vec!["bu-1", "bu-2"]);
    }
}
