//! AWS adapters of the storage ports: DynamoDB (state, audit, idempotency), Secrets Manager and
//! SQS. SDK types stay in here.

pub mod delivery;
pub mod dynamo;
pub mod scheduler;
pub mod secrets;
pub mod sqs;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

const THROTTLING_CODES: [&str; 4] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Maps any SDK failure not handled by the caller to `Throttled` or `Sdk`, with the full cause
/// chain (SDK errors never contain request bodies, so no secret reaches the message).
pub(crate) fn sdk_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if err
        .code()
        .is_some_and(|code| THROTTLING_CODES.contains(&code))
    {
        return StoreError::Throttled { operation };
    }
    StoreError::Sdk {
        operation,
        message: DisplayErrorContext(&err).to_string(),
    }
}
