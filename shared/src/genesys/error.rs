//! The one error type of the Genesys client; every variant that came from a response carries
//! its `inin-correlation-id` so support cases can be traced.

use std::time::Duration;

use crate::ports::PlatformError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesysError {
    #[error(
        "Genesys rate limit hit; retry after {retry_after:?} (correlation id {correlation_id:?})"
    )]
    RateLimited {
        retry_after: Duration,
        correlation_id: Option<String>,
    },
    #[error(
        "Genesys rejected the credentials or token: {code} (correlation id {correlation_id:?})"
    )]
    Unauthorized {
        code: String,
        correlation_id: Option<String>,
    },
    #[error(
        "Genesys OAuth client lacks permission {permission} (correlation id {correlation_id:?})"
    )]
    Forbidden {
        permission: String,
        correlation_id: Option<String>,
    },
    #[error("Genesys resource not found: {message} (correlation id {correlation_id:?})")]
    NotFound {
        message: String,
        correlation_id: Option<String>,
    },
    #[error(
        "Genesys refused the request ({status} {code}): {message} (correlation id {correlation_id:?})"
    )]
    BadRequest {
        status: u16,
        code: String,
        message: String,
        correlation_id: Option<String>,
    },
    #[error("Genesys server error {status}: {message} (correlation id {correlation_id:?})")]
    Server {
        status: u16,
        message: String,
        correlation_id: Option<String>,
    },
    #[error("Genesys call timed out or the deadline left no time for it")]
    Timeout,
    #[error("could not reach Genesys: {message}")]
    Transport { message: String },
    #[error("unexpected Genesys response: {message} (correlation id {correlation_id:?})")]
    Decode {
        message: String,
        correlation_id: Option<String>,
    },
    #[error("Genesys OAuth token request failed: {error}: {description}")]
    Token { error: String, description: String },
    #[error("Genesys client configuration: {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// `retryable`: the secret store was unavailable or throttled, not misconfigured.
    #[error("Genesys credentials unavailable: {message}")]
    Credentials { message: String, retryable: bool },
}

impl GenesysError {
    /// 429, 502, 503 and 504 are worth another try (as the official SDKs do); nothing else.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Server { status, .. } => matches!(status, 502..=504),
            Self::Transport { .. } => true,
            Self::Credentials { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// What the server asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            Self::RateLimited { correlation_id, .. }
            | Self::Unauthorized { correlation_id, .. }
            | Self::Forbidden { correlation_id, .. }
            | Self::NotFound { correlation_id, .. }
            | Self::BadRequest { correlation_id, .. }
            | Self::Server { correlation_id, .. }
            | Self::Decode { correlation_id, .. } => correlation_id.as_deref(),
            _ => None,
        }
    }
}

/// What a Genesys failure means to the services.
impl From<GenesysError> for PlatformError {
    fn from(error: GenesysError) -> Self {
        let message = error.to_string();
        match error {
            GenesysError::RateLimited { retry_after, .. } => Self::RateLimited {
                retry_after,
                message,
            },
            GenesysError::Timeout
            | GenesysError::Transport { .. }
            | GenesysError::Server {
                status: 502 | 504, ..
            } => Self::Unanswered { message },
            GenesysError::Server { status: 503, .. }
            | GenesysError::Credentials {
                retryable: true, ..
            } => Self::Unavailable { message },
            _ => Self::Refused { message },
        }
    }
}
