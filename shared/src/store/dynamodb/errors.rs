//! Sorting the SDK's failures: what passes with time is
//! [`StoreError::Unavailable`], the rest [`StoreError::Refused`]; a
//! conditional write refused by its condition is an answer, not an error.

use super::Item;
use crate::store::StoreError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};

/// Sorts an SDK failure: throttling, 5xx and transport trouble are
/// retryable; the rest is refused.
pub(super) fn sdk_error<E>(operation: &'static str, error: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = passes(&error);
    let source = Box::new(error);
    if retryable {
        StoreError::Unavailable { operation, source }
    } else {
        StoreError::Refused { operation, source }
    }
}

/// DynamoDB's error codes that pass with time.
const TRANSIENT: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "InternalServerError",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Whether an SDK failure passes with time (throttling, 5xx, transport).
pub(super) fn passes<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    crate::aws::passes_with_time(error, TRANSIENT)
}

/// A conditional write's outcome: written, or refused by its condition;
/// any other failure is an error.
pub(super) fn conditional<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(sdk_error(operation, e)),
    }
}

/// A conditional write that must have been written: a refusal means the
/// item is not in the state expected.
pub(super) fn expected<T, E>(
    operation: &'static str,
    id: &str,
    result: Result<T, SdkError<E>>,
) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if conditional(operation, result)? {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            operation,
            order_id: id.to_owned(),
        })
    }
}

pub(super) fn is_condition_failure<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    matches!(error, SdkError::ServiceError(s) if s.err().code() == Some("ConditionalCheckFailedException"))
}

/// Whether a conditional update that wrote `token` to `attribute` holds:
/// yes if it did; and yes if it was refused only because an earlier attempt
/// of this very update landed (the SDK sends an update again when the
/// answer to one was lost): the item then carries its token and `landed`
/// holds of it. Otherwise (a real refusal) no.
pub(super) fn held_or_landed(
    operation: &'static str,
    result: Result<UpdateItemOutput, SdkError<UpdateItemError>>,
    attribute: &str,
    token: &str,
    landed: impl Fn(&Item) -> bool,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(failure)) => match failure.err() {
            UpdateItemError::ConditionalCheckFailedException(failed) => {
                let mine = failed.item().is_some_and(|item| {
                    item.get(attribute)
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        == Some(token)
                        && landed(item)
                });
                if mine {
                    tracing::warn!(operation, "a write landed though its answer was lost; kept");
                }
                Ok(mine)
            }
            _ => Err(sdk_error(operation, SdkError::ServiceError(failure))),
        },
        Err(error) => Err(sdk_error(operation, error)),
    }
}
