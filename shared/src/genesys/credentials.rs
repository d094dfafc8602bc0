//! OAuth client credentials as a port: the Lambda reads them from Secrets Manager, tests pass
//! them directly. The secret is wrapped so `Debug` and logs never show it.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{GenesysError, GenesysHosts};
use crate::ports::{SecretDocument, SecretError, SecretSource};

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Where this client lives, when the credentials say (the secret's region or base URLs).
    pub hosts: Option<GenesysHosts>,
}

impl ClientCredentials {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            hosts: None,
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

/// The Genesys OAuth client-credentials secret:
/// `{"clientId","clientSecret","region", "apiBaseUrl"?, "loginBaseUrl"?}`.
#[derive(Debug, Clone)]
pub struct GenesysCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The Genesys region host, e.g. `mypurecloud.com` or `usw2.pure.cloud`.
    pub region: String,
    /// Overrides for tests and the simulator; derived from `region` when absent.
    pub api_base_url: Option<String>,
    pub login_base_url: Option<String>,
}

impl GenesysCredentials {
    pub fn from_document(doc: &SecretDocument) -> Result<Self, SecretError> {
        let plain = |field: &str| doc.string(field).map(|s| s.expose_secret().to_owned());
        let optional_plain = |field: &str| {
            doc.optional_string(field)
                .map(|s| s.map(|s| s.expose_secret().to_owned()))
        };
        Ok(Self {
            client_id: plain("clientId")?,
            client_secret: doc.string("clientSecret")?,
            region: plain("region")?,
            api_base_url: optional_plain("apiBaseUrl")?,
            login_base_url: optional_plain("loginBaseUrl")?,
        })
    }

    /// The hosts these credentials name: `apiBaseUrl` (and `loginBaseUrl`), else the region's.
    pub fn hosts(&self) -> Result<GenesysHosts, GenesysError> {
        Ok(match (&self.api_base_url, &self.login_base_url) {
            (Some(api), Some(login)) => GenesysHosts {
                api_base: GenesysHosts::single_base(api)?.api_base,
                login_base: GenesysHosts::single_base(login)?.login_base,
            },
            (Some(api), None) => GenesysHosts::single_base(api)?,
            _ => GenesysHosts::for_region(&self.region)?,
        })
    }

    pub async fn load(source: &dyn SecretSource, secret_name: &str) -> Result<Self, SecretError> {
        Self::from_document(&*source.get(secret_name).await?)
    }
}

/// The Genesys client's credentials read from a secret: a 401 from Genesys asks for a forced
/// refresh, so a rotated client secret is picked up without a cold start.
#[derive(Debug, Clone)]
pub struct GenesysSecretCredentials {
    source: Arc<dyn SecretSource>,
    secret_name: String,
}

impl GenesysSecretCredentials {
    pub fn new(source: Arc<dyn SecretSource>, secret_name: impl Into<String>) -> Self {
        Self {
            source,
            secret_name: secret_name.into(),
        }
    }
}

#[async_trait]
impl CredentialSource for GenesysSecretCredentials {
    async fn client_credentials(&self, refresh: bool) -> Result<ClientCredentials, GenesysError> {
        let document = if refresh {
            self.source.force_refresh(&self.secret_name).await
        } else {
            self.source.get(&self.secret_name).await
        };
        let credentials = document
            .and_then(|doc| GenesysCredentials::from_document(&doc))
            .map_err(|e| GenesysError::Credentials {
                retryable: e.is_retryable(),
                message: e.to_string(),
            })?;
        let hosts = credentials.hosts().map_err(|e| GenesysError::Credentials {
            retryable: false,
            message: e.to_string(),
        })?;
        Ok(ClientCredentials {
            client_id: credentials.client_id,
            client_secret: credentials.client_secret,
            hosts: Some(hosts),
        })
    }
}
