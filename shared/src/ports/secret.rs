//! One secret's JSON object, the domain type `SecretSource` hands out, and where raw secrets
//! come from.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::SecretError;

/// Fetches one secret's raw value from wherever secrets live (Secrets Manager); the secret
/// cache (`secret_cache`) makes a `SecretSource` of it.
#[async_trait]
pub trait SecretFetcher: Send + Sync + fmt::Debug {
    async fn fetch(&self, name: &str) -> Result<SecretString, SecretError>;
}

/// One secret's JSON object. Fields are read on demand and handed out wrapped again.
pub struct SecretDocument {
    name: String,
    raw: SecretString,
}

impl fmt::Debug for SecretDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretDocument")
            .field("name", &self.name)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

impl SecretDocument {
    /// Accepts only a JSON object; the error names the secret, never its content.
    pub fn parse(name: &str, raw: SecretString) -> Result<Self, SecretError> {
        match serde_json::from_str::<serde_json::Value>(raw.expose_secret()) {
            Ok(serde_json::Value::Object(_)) => Ok(Self {
                name: name.to_owned(),
                raw,
            }),
            Ok(_) => Err(SecretError::Field {
                secret: name.to_owned(),
                field: "(root)".to_owned(),
                reason: "expected a JSON object".to_owned(),
            }),
            // serde_json's syntax errors carry a position, not the input; keep only that anyway.
            Err(err) => Err(SecretError::Field {
                secret: name.to_owned(),
                field: "(root)".to_owned(),
                reason: format!("not JSON (line {}, column {})", err.line(), err.column()),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A required string field.
    pub fn string(&self, field: &str) -> Result<SecretString, SecretError> {
        self.optional_string(field)?
            .ok_or_else(|| SecretError::Field {
                secret: self.name.clone(),
                field: field.to_owned(),
                reason: "missing".to_owned(),
            })
    }

    /// An optional string field: absent or null is None, any other type is an error.
    pub fn optional_string(&self, field: &str) -> Result<Option<SecretString>, SecretError> {
        let parsed: serde_json::Value =
            serde_json::from_str(self.raw.expose_secret()).map_err(|_| SecretError::Field {
                secret: self.name.clone(),
                field: "(root)".to_owned(),
                reason: "not JSON".to_owned(),
            })?;
        match parsed.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(value)) if value.trim().is_empty() => {
                Err(self.field_error(field, "is empty"))
            }
            Some(serde_json::Value::String(value)) => Ok(Some(SecretString::from(value.clone()))),
            Some(other) => Err(self.field_error(
                field,
                &format!("expected a string, found {}", json_type(other)),
            )),
        }
    }

    /// The whole document as `T`. Errors name the secret, the position and what was expected,
    /// never the offending value (serde's "invalid type/value" messages quote it, so those are
    /// cut to their "expected ..." part).
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, SecretError> {
        serde_json::from_str(self.raw.expose_secret()).map_err(|err| {
            let message = err.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned();
            let reason = if message.starts_with("invalid ") {
                match message.split_once(", expected ") {
                    Some((_, expected)) => format!("wrong type or value, expected {expected}"),
                    None => "wrong type or value".to_owned(),
                }
            } else {
                message
            };
            SecretError::Field {
                secret: self.name.clone(),
                field: format!("(line {}, column {})", err.line(), err.column()),
                reason,
            }
        })
    }

    fn field_error(&self, field: &str, reason: &str) -> SecretError {
        SecretError::Field {
            secret: self.name.clone(),
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
