//! Configuration from the environment, read once at cold start. Names match
//! `infra/template.yaml` and the README's configuration table.

use presence_autopilot::config::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the relayed notifications go (webhook-dispatch consumes it).
    pub notifications_queue_url: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    pub fn from(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            notifications_queue_url: env.required("NOTIFICATIONS_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_required_and_named_when_missing() {
        let error = Config::from(&Env::from_pairs(&[])).expect_err("missing");
        assert_eq!(error.variable, "NOTIFICATIONS_QUEUE_URL");
        let pairs = [("NOTIFICATIONS_QUEUE_URL", "http://q")];
        let config = Config::from(&Env::from_pairs(&pairs)).expect("valid");
        assert_eq!(config.notifications_queue_url, "http://q");
    }
}
