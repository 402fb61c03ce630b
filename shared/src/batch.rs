//! An SQS batch as the queue-fed functions handle it: every message at
//! once, each in the invocation's span; a message that fails is named in
//! the answer (`batchItemFailures`) and delivered again, the others are
//! done. Nothing is deleted unread.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use std::fmt::Display;
use std::future::Future;
use tracing::{Instrument, warn};

/// Runs `handle` on each message's body concurrently; returns what the
/// handled ones gave, and the answer naming every message that failed
/// (each logged as `{what} kept for redelivery`).
pub async fn handle_batch<T, E, Fut>(
    records: Vec<SqsMessage>,
    what: &'static str,
    handle: impl Fn(String) -> Fut,
) -> (Vec<T>, SqsBatchResponse)
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut ids = std::collections::HashMap::new();
    for record in records {
        let id = record.message_id.unwrap_or_default();
        // In the invocation's span, so the message's log lines carry the
        // request and trace ids.
        let task = tasks.spawn(handle(record.body.unwrap_or_default()).in_current_span());
        ids.insert(task.id(), id);
    }
    let mut handled = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (task, failure) = match joined {
            Ok((_, Ok(outcome))) => {
                handled.push(outcome);
                continue;
            }
            Ok((task, Err(error))) => (task, error.to_string()),
            // A panic, in builds that unwind (tests). The release profile
            // aborts instead: the container ends and the whole batch is
            // delivered again.
            Err(error) => (error.id(), format!("the task failed: {error}")),
        };
        let id = ids.remove(&task).unwrap_or_default();
        warn!(message_id = %id, error = %failure, "{what} kept for redelivery");
        let mut item = BatchItemFailure::default();
        item.item_identifier = id;
        failures.push(item);
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    (handled, response)
}
