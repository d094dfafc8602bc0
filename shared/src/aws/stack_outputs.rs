//! A deployed stack's outputs (CloudFormation `DescribeStacks`): what `autopilot --stack NAME`
//! reads instead of five settings exported by hand.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;

use super::sdk_error;
use crate::ports::StoreError;

/// Every output of `stack`, by its key.
pub async fn stack_outputs(
    client: &Client,
    stack: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let answer = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|err| {
            // CloudFormation answers an unknown stack as a ValidationError.
            if err
                .as_service_error()
                .and_then(|e| aws_sdk_cloudformation::error::ProvideErrorMetadata::message(e))
                .is_some_and(|m| m.contains("does not exist"))
            {
                StoreError::NotFound {
                    what: format!("stack {stack}"),
                }
            } else {
                sdk_error("DescribeStacks", err)
            }
        })?;
    let found = answer
        .stacks
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound {
            what: format!("stack {stack}"),
        })?;
    Ok(found
        .outputs
        .unwrap_or_default()
        .into_iter()
        .filter_map(|output| Some((output.output_key?, output.output_value?)))
        .collect())
}
