//! Genesys Cloud Platform API v2 client: region hosts, client-credentials tokens (single
//! flight), retries within a deadline, the error model, and our compare-and-set on presence.

mod client;
mod credentials;
mod endpoints;
mod error;
mod hosts;
mod presence;
mod rate;
mod roster;
pub(crate) mod token;
pub mod wire;

pub use crate::ports::{AuthTimings, CasOutcome};
pub use client::{BULK_LIMIT, GenesysClient, GenesysConfig, RetryPolicy};
pub use credentials::{
    ClientCredentials, CredentialSource, GenesysCredentials, GenesysSecretCredentials,
    StaticCredentials,
};
pub use error::GenesysError;
pub use hosts::{GenesysHosts, REGIONS};
pub use roster::{GenesysTeams, GroupRoster};
