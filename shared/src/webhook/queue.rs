//! The webhook queue port: a delivery to try again (after a delay), or one
//! out of tries, kept in the dead-letter queue with why.

use super::message::Delivery;
use crate::queue::MAX_DELAY;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use std::future::Future;
use std::time::Duration;

/// Why a delivery could not be queued: the message that carried it is
/// kept for redelivery, so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[error("delivery of event {event_id} to endpoint {endpoint} could not be queued: {source}")]
pub struct QueueError {
    pub event_id: String,
    pub endpoint: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where deliveries wait.
pub trait WebhookQueue: Send + Sync {
    /// Sends `delivery`, visible after `delay` (at most 15 minutes).
    fn retry(
        &self,
        delivery: &Delivery,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Keeps `delivery`, out of tries, in the dead-letter queue, saying
    /// why its last try failed.
    fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The SQS adapter of [`WebhookQueue`].
#[derive(Clone, Debug)]
pub struct SqsWebhookQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

impl SqsWebhookQueue {
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }

    fn failed(
        delivery: &Delivery,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> QueueError {
        let (event_id, endpoint) = (delivery.event_id.clone(), delivery.endpoint.clone());
        move |source| QueueError {
            event_id,
            endpoint,
            source,
        }
    }
}

/// `DelaySeconds` for `delay`: rounded up, so a message never comes back
/// before it is due (and is sent again at once); at most 15 minutes.
fn delay_seconds(delay: Duration) -> i32 {
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    i32::try_from(seconds.min(MAX_DELAY.as_secs())).unwrap_or(0)
}

fn body(delivery: &Delivery) -> String {
    serde_json::to_string(delivery).expect("a delivery is plain JSON")
}

impl WebhookQueue for SqsWebhookQueue {
    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body(delivery))
            .delay_seconds(delay_seconds(delay))
            .send()
            .await
            .map(drop)
            .map_err(|e| Self::failed(delivery)(Box::new(e)))
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let shown: String = reason.chars().take(1_000).collect();
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(if shown.is_empty() { "-".into() } else { shown })
            .build()
            .map_err(|e| Self::failed(delivery)(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body(delivery))
            .message_attributes("reason", reason)
            .send()
            .await
            .map(drop)
            .map_err(|e| Self::failed(delivery)(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::delay_seconds;
    use std::time::Duration;

    #[test]
    fn a_delay_is_rounded_up_to_whole_seconds_and_capped_at_fifteen_minutes() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(500)), 1);
        assert_eq!(delay_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(delay_seconds(Duration::from_secs(5)), 5);
        assert_eq!(delay_seconds(Duration::from_secs(36_000)), 900);
    }
}
