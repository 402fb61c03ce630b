//! poll-order: the SQS-triggered polling chain.
//!
//! This release processes no poll message yet (issue #4 builds the chain):
//! it reports every message of a batch as a failure, so SQS keeps it for
//! redelivery and, past the redrive bound, moves it to the dead-letter queue.
//! Nothing is deleted unread.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use foxrelay_shared::startup::Context;
use lambda_runtime::LambdaEvent;
use std::convert::Infallible;
use tracing::{instrument, warn};

/// The poll-order handler; built once per container.
pub struct Handler {
    #[allow(dead_code)] // used by the polling chain (issue #4)
    context: Context,
}

impl Handler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }

    #[instrument(skip_all, fields(messages = event.payload.records.len()))]
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        let failures: Vec<BatchItemFailure> = event
            .payload
            .records
            .into_iter()
            .map(|record| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.unwrap_or_default();
                failure
            })
            .collect();
        if !failures.is_empty() {
            warn!(
                kept = failures.len(),
                "poll messages kept for redelivery: polling is not enabled in this release"
            );
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        Ok(response)
    }
}
