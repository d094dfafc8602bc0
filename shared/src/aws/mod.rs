//! AWS adapters of the storage ports: DynamoDB (state, audit, idempotency), Secrets Manager and
//! SQS. SDK types stay in here.

pub mod bus;
pub mod connections;
pub mod dead_letters;
pub mod dynamo;
pub mod endpoints;
pub mod scheduler;
pub mod secrets;
pub mod sqs;
pub mod sync_queue;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

const THROTTLING_CODES: [&str; 4] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Codes for requests the service refused as such (malformed, too large): the same call can
/// never succeed, so retrying it only delays the dead-letter queue.
const REFUSED_CODES: [&str; 6] = [
    "ValidationException",
    "SerializationException",
    "IdempotentParameterMismatchException",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidRequestException",
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
    if err.code().is_some_and(|code| REFUSED_CODES.contains(&code)) {
        return StoreError::Refused {
            operation,
            message: DisplayErrorContext(&err).to_string(),
        };
    }
    StoreError::Sdk {
        operation,
        message: DisplayErrorContext(&err).to_string(),
    }
}
