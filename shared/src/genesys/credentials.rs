//! OAuth client credentials as a port: the Lambda reads them from Secrets Manager, tests pass
//! them directly. The secret is wrapped so `Debug` and logs never show it.

use async_trait::async_trait;
use secrecy::SecretString;

use super::GenesysError;

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl ClientCredentials {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
        }
    }
}

#[async_trait]
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// The current credentials; `refresh` bypasses any cache (after a 401, credentials may
    /// have been rotated).
    async fn client_credentials(&self, refresh: bool) -> Result<ClientCredentials, GenesysError>;
}

/// Fixed credentials, for tests and local runs.
#[derive(Debug, Clone)]
pub struct StaticCredentials(pub ClientCredentials);

#[async_trait]
impl CredentialSource for StaticCredentials {
    async fn client_credentials(&self, _refresh: bool) -> Result<ClientCredentials, GenesysError> {
        Ok(self.0.clone())
    }
}
