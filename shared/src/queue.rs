//! The poll queue port and its SQS adapter.

use crate::domain::PollMessage;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::SdkError;
use std::future::Future;
use std::time::Duration;

pub use crate::domain::schedule::MAX_DELAY;

/// The `DelaySeconds` SQS is given for `delay`: whole seconds (rounded down),
/// at most 900.
pub fn delay_seconds(delay: Duration) -> i32 {
    delay.min(MAX_DELAY).as_secs() as i32
}

/// Why a poll message could not be sent. Always worth a retry later: the
/// order stays recoverable through its stored next-poll time.
#[derive(Debug, thiserror::Error)]
#[error("the poll message for order {order_id} could not be sent: {source}")]
pub struct QueueError {
    pub order_id: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The poll queue port.
pub trait PollQueue: Send + Sync {
    /// Sends `message`, visible after `delay` (capped at 15 minutes).
    fn send(
        &self,
        message: &PollMessage,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The SQS adapter of [`PollQueue`] (a standard queue: `DelaySeconds` works
/// per message only there).
#[derive(Clone, Debug)]
pub struct SqsPollQueue {
    client: Client,
    queue_url: String,
}

impl SqsPollQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl PollQueue for SqsPollQueue {
    async fn send(&self, message: &PollMessage, delay: Duration) -> Result<(), QueueError> {
        let seconds = delay_seconds(delay);
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.to_json())
            .delay_seconds(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e: SdkError<_>| QueueError {
                order_id: message.order_id.clone(),
                source: Box::new(e),
            })
    }
}
