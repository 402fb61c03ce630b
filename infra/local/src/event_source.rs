//! What Lambda's SQS event source mapping does, on one machine: receive a
//! batch (long poll), hand it to the handler as an `SqsEvent`, delete the
//! messages that succeeded, and leave the reported failures for redelivery,
//! so the queue's redrive policy moves a poison message to the dead-letter
//! queue.
//!
//! For tests it can also deliver every message more than once, out of order,
//! as SQS's at-least-once delivery may.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How batches are received and delivered.
#[derive(Clone, Debug)]
pub struct EventSourceOptions {
    /// Messages per batch (at most 10).
    pub batch_size: i32,
    /// Long-poll wait per receive.
    pub wait: Duration,
    /// Visibility timeout of received messages (the queue's own if unset):
    /// how long a failed message waits before it is delivered again.
    pub visibility: Option<Duration>,
    /// Copies of each message handed to the handler (1 in production).
    pub copies: usize,
    /// Hand a batch's records over in a shuffled order.
    pub shuffle: bool,
    /// The deadline given to the handler, as Lambda's timeout would.
    pub function_timeout: Duration,
}

impl Default for EventSourceOptions {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_secs(20),
            visibility: None,
            copies: 1,
            shuffle: false,
            function_timeout: Duration::from_secs(30),
        }
    }
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: usize,
    pub failed: usize,
}

/// Why a batch could not be received or settled.
#[derive(Debug, thiserror::Error)]
#[error("the SQS event source failed to {what}: {source}")]
pub struct EventSourceError {
    pub what: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// An SQS queue feeding a handler.
#[derive(Clone, Debug)]
pub struct SqsEventSource {
    sqs: Client,
    queue_url: String,
    queue_arn: String,
    options: EventSourceOptions,
}

impl SqsEventSource {
    pub fn new(
        sqs: Client,
        queue_url: impl Into<String>,
        queue_arn: impl Into<String>,
        options: EventSourceOptions,
    ) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            queue_arn: queue_arn.into(),
            options,
        }
    }

    /// Receives one batch, hands it to `handler`, and deletes what succeeded.
    pub async fn run_once<H, Fut>(&self, handler: H) -> Result<BatchReport, EventSourceError>
    where
        H: FnOnce(LambdaEvent<SqsEvent>) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let mut receive = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.options.batch_size.clamp(1, 10))
            .wait_time_seconds(self.options.wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All);
        if let Some(visibility) = self.options.visibility {
            receive = receive.visibility_timeout(visibility.as_secs() as i32);
        }
        let received = receive.send().await.map_err(|e| EventSourceError {
            what: "receive messages",
            source: Box::new(e),
        })?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut records = Vec::new();
        let mut handles = HashMap::new();
        for message in messages {
            let id = message.message_id().unwrap_or_default().to_owned();
            handles.insert(
                id.clone(),
                message.receipt_handle().unwrap_or_default().to_owned(),
            );
            let mut record = SqsMessage::default();
            record.message_id = Some(id);
            record.receipt_handle = message.receipt_handle().map(str::to_owned);
            record.body = message.body().map(str::to_owned);
            record.md5_of_body = message.md5_of_body().map(str::to_owned);
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(self.queue_arn.clone());
            record.aws_region = Some("us-east-1".into());
            for (name, value) in message.attributes().into_iter().flatten() {
                record
                    .attributes
                    .insert(name.as_str().to_owned(), value.clone());
            }
            for _ in 0..self.options.copies.max(1) {
                records.push(record.clone());
            }
        }
        if self.options.shuffle {
            shuffle(&mut records);
        }
        let mut event = SqsEvent::default();
        event.records = records;
        let response = handler(LambdaEvent::new(event, self.context())).await;
        let failed: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let done: Vec<_> = handles
            .iter()
            .filter(|(id, _)| !failed.contains(*id))
            .map(|(id, handle)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(batch_entry_id(id))
                    .receipt_handle(handle)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        if !done.is_empty() {
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| EventSourceError {
                    what: "delete handled messages",
                    source: Box::new(e),
                })?;
            // A message not deleted is delivered again: harmless (every
            // handler is idempotent), but worth a word.
            for failure in deleted.failed() {
                tracing::warn!(entry = %failure.id(), reason = ?failure.message(), "a handled message was not deleted");
            }
        }
        Ok(BatchReport {
            received: handles.len(),
            failed: handles.keys().filter(|id| failed.contains(*id)).count(),
        })
    }

    fn context(&self) -> Context {
        crate::lambda::context(self.options.function_timeout)
    }
}

/// Batch entry ids allow letters, digits, `-` and `_`, at most 80.
fn batch_entry_id(message_id: &str) -> String {
    message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(80)
        .collect()
}

/// A request id for the handler's context.
/// Fisher–Yates with a clock-seeded xorshift: order only, no security.
fn shuffle<T>(items: &mut [T]) {
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}
