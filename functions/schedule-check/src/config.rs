//! Configuration from the environment, read once at cold start. Names match
//! `infra/template.yaml` and the README's configuration table.

use presence_autopilot::compose::{SchedulerTarget, TransitionSettings};
use presence_autopilot::config::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct Config {
    /// The decision path it shares with `transition`.
    pub transition: TransitionSettings,
    pub scheduler: SchedulerTarget,
    /// Due items one sweep run handles at most.
    pub sweep_budget: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    pub fn from(env: &Env<'_>) -> Result<Self, ConfigError> {
        let sweep_budget = env.number("SWEEP_BUDGET", 200)?;
        if sweep_budget == 0 {
            return Err(ConfigError {
                variable: "SWEEP_BUDGET",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(Self {
            transition: TransitionSettings::from_env(env)?,
            scheduler: SchedulerTarget {
                group: env.required("SCHEDULE_GROUP_NAME")?,
                target_arn: env.required("BURST_QUEUE_ARN")?,
                role_arn: env.required("SCHEDULER_ROLE_ARN")?,
                dead_letter_arn: env.required("SCHEDULER_DLQ_ARN")?,
            },
            sweep_budget: usize::try_from(sweep_budget).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, &str); 6] = [
        ("TABLE_NAME", "t"),
        ("GENESYS_SECRET_ID", "s"),
        ("SCHEDULE_GROUP_NAME", "presence-autopilot"),
        ("BURST_QUEUE_ARN", "arn:aws:sqs:us-east-1:1:burst"),
        ("SCHEDULER_ROLE_ARN", "arn:aws:iam::1:role/scheduler"),
        ("SCHEDULER_DLQ_ARN", "arn:aws:sqs:us-east-1:1:scheduler-dlq"),
    ];

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> Env<'a> {
        Env::from_pairs(pairs)
    }

    #[test]
    fn reads_the_scheduler_target_and_budget() {
        let config = Config::from(&env(&ALL)).expect("valid");
        assert_eq!(config.sweep_budget, 200);
        assert_eq!(config.scheduler.group, "presence-autopilot");
    }

    #[test]
    fn errors_name_the_variable() {
        let error = Config::from(&env(&ALL[..5])).expect_err("missing");
        assert_eq!(error.variable, "SCHEDULER_DLQ_ARN");
        let mut zero = ALL.to_vec();
        zero.push(("SWEEP_BUDGET", "0"));
        assert_eq!(
            Config::from(&env(&zero)).expect_err("zero").variable,
            "SWEEP_BUDGET"
        );
    }
}
