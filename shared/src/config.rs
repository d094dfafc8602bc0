//! Reading configuration from the environment: every error names the variable. Each function's
//! `Config` is built from these once at cold start; names match `infra/template.yaml`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// How a variable's value is found.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Looks variables up (the process environment, or a map in tests).
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<'a> Env<'a> {
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// An environment of exactly these variables (tests).
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Self::from_fn(move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    pub fn optional(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, variable: &'static str) -> Result<String, ConfigError> {
        self.optional(variable).ok_or(ConfigError {
            variable,
            reason: "is required".to_owned(),
        })
    }

    pub fn number(&self, variable: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.optional(variable) {
            None => Ok(default),
            Some(raw) => raw.parse::<u64>().map_err(|_| ConfigError {
                variable,
                reason: format!("{raw:?} is not a whole number"),
            }),
        }
    }

    pub fn seconds(&self, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.number(variable, default).map(Duration::from_secs)
    }

    /// `true`/`1` or `false`/`0`; `default` when unset.
    pub fn flag(&self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(variable).as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ConfigError {
                variable,
                reason: format!("expected true or false, got {other:?}"),
            }),
        }
    }

    /// A comma-separated list; empty when unset.
    pub fn list(&self, variable: &str) -> Vec<String> {
        self.optional(variable)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_errors_name_the_variable() {
        let env = Env::from_fn(|name| match name {
            "A" => Some(" x ".to_owned()),
            "N" => Some("soon".to_owned()),
            "L" => Some(" a, b ,".to_owned()),
            "E" => Some("  ".to_owned()),
            _ => None,
        });
        assert_eq!(env.required("A"), Ok("x".to_owned()));
        assert_eq!(env.required("E").map_err(|e| e.variable), Err("E"));
        assert_eq!(env.number("N", 1).map_err(|e| e.variable), Err("N"));
        assert_eq!(env.number("MISSING", 7), Ok(7));
        assert_eq!(env.list("L"), vec!["a", "b"]);
        assert_eq!(env.flag("MISSING", true), Ok(true));
        assert_eq!(env.flag("A", false).map_err(|e| e.variable), Err("A"));
    }
}
