//! Transactions: committed, refused by their conditions (which ones), or
//! tried again while DynamoDB cancels them for a reason that passes.

use super::DynamoStore;
use super::errors::{passes, sdk_error};
use crate::store::StoreError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use std::time::Duration;

/// What a failed transaction says about itself.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cancellation {
    /// Cancelled only because conditions failed: which actions, in order.
    Conditions(Vec<bool>),
    /// Cancelled for a reason that passes (`TransactionConflict`,
    /// `ThrottlingError`, `ProvisionedThroughputExceeded`, …): not an answer
    /// about the items, so the transaction is tried again.
    Passing,
    /// Not a cancellation.
    Other,
}

/// Sorts a failed transaction. Only `ConditionalCheckFailed` is a condition
/// failure; an action whose reason is `None` passed. Any other reason, even
/// beside a failed condition, makes the whole answer passing: a condition
/// reported together with a conflict is not trusted until a clean retry.
pub(super) fn cancellation(
    error: &SdkError<TransactWriteItemsError>,
    actions: usize,
) -> Cancellation {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return Cancellation::Other;
    };
    let mut flags = Vec::with_capacity(actions);
    for reason in cancelled.cancellation_reasons() {
        match reason.code() {
            Some("ConditionalCheckFailed") => flags.push(true),
            None | Some("None") | Some("") => flags.push(false),
            // A request DynamoDB will never take: no retry helps.
            Some("ValidationError") => return Cancellation::Other,
            Some(_) => return Cancellation::Passing,
        }
    }
    if flags.len() == actions && flags.contains(&true) {
        Cancellation::Conditions(flags)
    } else {
        Cancellation::Passing
    }
}

/// How a transaction ended, when it did not fail.
#[derive(Debug)]
pub(super) enum Tx {
    Committed,
    /// Refused by its conditions: which actions failed theirs, in order.
    Refused(Vec<bool>),
}

/// Pauses before each new try of a transaction cancelled for a passing
/// reason (jittered by up to the same again).
pub(super) const TX_BACKOFF_MS: [u64; 4] = [20, 80, 250, 600];

impl DynamoStore {
    /// Runs a transaction: committed, or refused by its conditions. A
    /// cancellation for a passing reason (a conflict with another
    /// transaction, throttling) is tried again with backoff and, when it
    /// persists, is a retryable error: never an answer about the items.
    pub(super) async fn transact(
        &self,
        operation: &'static str,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Tx, StoreError> {
        let count = actions.len();
        let mut pauses = TX_BACKOFF_MS.iter();
        // One token for every try: a try whose answer was lost but which
        // committed is not applied again, and its retry answers success
        // rather than failing on its own writes.
        let token = uuid::Uuid::new_v4().to_string();
        loop {
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(&token)
                .send()
                .await
            {
                Ok(_) => return Ok(Tx::Committed),
                Err(error) => error,
            };
            let retry = match cancellation(&error, count) {
                Cancellation::Conditions(flags) => return Ok(Tx::Refused(flags)),
                Cancellation::Passing => true,
                Cancellation::Other => passes(&error),
            };
            match pauses.next() {
                Some(ms) if retry => {
                    let jitter = (uuid::Uuid::new_v4().as_u128() as u64) % (ms + 1);
                    tokio::time::sleep(Duration::from_millis(ms + jitter)).await;
                }
                _ if retry => {
                    return Err(StoreError::Unavailable {
                        operation,
                        source: Box::new(error),
                    });
                }
                _ => return Err(sdk_error(operation, error)),
            }
        }
    }
}
