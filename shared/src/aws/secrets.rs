//! Secrets Manager as a `SecretFetcher`; wrap it in `SecretCache` for the `SecretSource` port.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::SecretString;

use super::secret_error;
use crate::clock::Clock;
use crate::ports::SecretError;
use crate::secret_cache::{SecretCache, SecretFetcher};

/// Reads a secret's current (`AWSCURRENT`) string value.
#[derive(Debug, Clone)]
pub struct SecretsManagerFetcher {
    client: Client,
}

impl SecretsManagerFetcher {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// The production `SecretSource`: Secrets Manager behind a TTL cache.
pub type SecretsManagerSource = SecretCache<SecretsManagerFetcher>;

pub fn secrets_manager_source(
    client: Client,
    clock: Arc<dyn Clock>,
    ttl: Duration,
) -> SecretsManagerSource {
    SecretCache::new(SecretsManagerFetcher::new(client), clock, ttl)
}

#[async_trait]
impl SecretFetcher for SecretsManagerFetcher {
    async fn fetch(&self, name: &str) -> Result<SecretString, SecretError> {
        let out = match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => out,
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(GetSecretValueError::ResourceNotFoundException(_))
                ) =>
            {
                return Err(SecretError::Missing {
                    secret: name.to_owned(),
                });
            }
            Err(err) => return Err(secret_error("GetSecretValue", err)),
        };
        // Move the string out instead of copying it, so only one plain copy ever exists.
        out.secret_string
            .map(SecretString::from)
            .ok_or_else(|| SecretError::Field {
                secret: name.to_owned(),
                field: "(root)".to_owned(),
                reason: "no string value (binary secrets are not supported)".to_owned(),
            })
    }
}
