//! SSM Parameter Store as the `PolicySource`: one String parameter the stack creates (its
//! Intelligent-Tiering takes a policy past 4 KB to the advanced tier, up to 8 KB).

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};

use super::sdk_error;
use crate::ports::{PolicySource, StoreError, StoredPolicy};

/// The largest value an advanced-tier parameter holds.
pub const MAX_POLICY_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone)]
pub struct SsmPolicy {
    client: Client,
    name: String,
}

impl SsmPolicy {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }
}

#[async_trait]
impl PolicySource for SsmPolicy {
    async fn fetch(&self) -> Result<StoredPolicy, StoreError> {
        let answer = self
            .client
            .get_parameter()
            .name(&self.name)
            .send()
            .await
            .map_err(|err| {
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found())
                {
                    StoreError::NotFound {
                        what: format!("policy parameter {}", self.name),
                    }
                } else {
                    sdk_error("GetParameter", err)
                }
            })?;
        let parameter = answer.parameter.ok_or_else(|| StoreError::NotFound {
            what: format!("policy parameter {}", self.name),
        })?;
        Ok(StoredPolicy {
            text: parameter.value.unwrap_or_default(),
            revision: parameter.version.to_string(),
        })
    }

    async fn store(&self, text: &str) -> Result<String, StoreError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(StoreError::Invalid(format!(
                "the policy is {} bytes; a parameter holds at most {MAX_POLICY_BYTES}",
                text.len()
            )));
        }
        let answer = self
            .client
            .put_parameter()
            .name(&self.name)
            .value(text)
            .r#type(ParameterType::String)
            .tier(ParameterTier::IntelligentTiering)
            .overwrite(true)
            .send()
            .await
            .map_err(|err| sdk_error("PutParameter", err))?;
        Ok(answer.version.to_string())
    }
}
