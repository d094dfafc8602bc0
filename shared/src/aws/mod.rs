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
pub mod ssm;
#[cfg(feature = "cli")]
pub mod stack_outputs;
pub mod sync_queue;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

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

/// `sdk_error` for Secrets Manager.
pub(crate) fn secret_error<E, R>(
    operation: &'static str,
    err: SdkError<E, R>,
) -> crate::ports::SecretError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use crate::ports::SecretError;
    match sdk_error(operation, err) {
        StoreError::Throttled { operation } => SecretError::Throttled { operation },
        other => SecretError::Sdk {
            operation,
            message: other.to_string(),
        },
    }
}

/// `sdk_error` for a queue, the bus or the scheduler.
pub(crate) fn messaging_error<E, R>(
    operation: &'static str,
    err: SdkError<E, R>,
) -> crate::ports::MessagingError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use crate::ports::MessagingError;
    match sdk_error(operation, err) {
        StoreError::Throttled { operation } => MessagingError::Throttled { operation },
        StoreError::Refused { operation, message } => {
            MessagingError::Refused { operation, message }
        }
        other => MessagingError::Sdk {
            operation,
            message: other.to_string(),
        },
    }
}

/// For a cancelled `TransactWriteItems`, whether each item (in the request's order) failed its
/// condition; `None` for any other failure.
pub(crate) fn failed_conditions<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<bool>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
        err.as_service_error()
    else {
        return None;
    };
    Some(
        cancel
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code() == Some("ConditionalCheckFailed"))
            .collect(),
    )
}

/// One DynamoDB item, attribute name → value.
pub(crate) type DynamoItem = HashMap<String, AttributeValue>;

/// BatchGetItem's limit of keys per call.
const BATCH_GET_KEYS: usize = 100;

/// What `batch_get` read: the items found, and the keys DynamoDB still left unprocessed after
/// every round (throttled throughout); each caller decides what those mean.
#[derive(Debug, Default)]
pub(crate) struct BatchRead {
    pub items: Vec<DynamoItem>,
    pub unprocessed: Vec<DynamoItem>,
}

/// Reads `keys` from `table` in BatchGetItem calls of at most 100 keys, asking again for the
/// keys DynamoDB left unprocessed, up to `rounds` calls per chunk.
pub(crate) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<DynamoItem>,
    consistent: bool,
    rounds: u32,
) -> Result<BatchRead, StoreError> {
    let mut read = BatchRead::default();
    for chunk in keys.chunks(BATCH_GET_KEYS) {
        let mut pending = chunk.to_vec();
        for _ in 0..rounds {
            if pending.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(consistent)
                .build()
                .map_err(|e| StoreError::Invalid(format!("request could not be built: {e}")))?;
            let mut answer = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            if let Some(found) = answer.responses.as_mut().and_then(|r| r.remove(table)) {
                read.items.extend(found);
            }
            if let Some(left) = answer
                .unprocessed_keys
                .as_mut()
                .and_then(|l| l.remove(table))
            {
                pending = left.keys;
            }
        }
        read.unprocessed.extend(pending);
    }
    Ok(read)
}
