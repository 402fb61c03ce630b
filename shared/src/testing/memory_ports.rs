//! In-memory adapters of the queue, publisher and clock ports, for the
//! fast test tier. Each keeps what it was given, in order, and can be told
//! to fail the next calls as its AWS service would (a retryable error).
//!
//! [`TestClock`] runs on tokio's clock: under a paused runtime
//! (`#[tokio::test(start_paused = true)]`) the time the handlers read and
//! the deadlines they keep (`tokio::time::Instant`) move together, only
//! when the test advances them or every task waits.

use crate::clock::Clock;
use crate::domain::PollMessage;
use crate::domain::event::OrderEvent;
use crate::events::{EventPublisher, OpsAlert, PublishError};
use crate::queue::{MAX_DELAY, PollQueue, QueueError};
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// Failures left to answer, per adapter.
#[derive(Debug, Default)]
struct Failures(Mutex<u32>);

impl Failures {
    fn set(&self, times: u32) {
        *self.0.lock().expect("failure count") = times;
    }

    /// Whether this call fails (and one failure fewer is left).
    fn take(&self) -> bool {
        let mut left = self.0.lock().expect("failure count");
        let fail = *left > 0;
        *left = left.saturating_sub(fail as u32);
        fail
    }
}

/// One poll message sent, with the delay it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub message: PollMessage,
    /// As SQS keeps it: at most 15 minutes.
    pub delay: Duration,
}

/// The in-memory poll queue: messages wait here until a test takes them.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<Sent>>,
    failures: Failures,
    slow: Mutex<Duration>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` sends fail.
    pub fn fail(&self, times: u32) {
        self.failures.set(times);
    }

    /// Makes every send take `by` (tokio time) before the message is
    /// queued: a slow SQS.
    pub fn slow(&self, by: Duration) {
        *self.slow.lock().expect("queue delay") = by;
    }

    /// Every message sent and not taken yet, oldest first; they are taken.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().expect("queue"))
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.sent.lock().expect("queue").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PollQueue for MemoryQueue {
    async fn send(&self, message: &PollMessage, delay: Duration) -> Result<(), QueueError> {
        let slow = *self.slow.lock().expect("queue delay");
        if !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        if self.failures.take() {
            return Err(QueueError {
                order_id: message.order_id.clone(),
                source: "injected queue failure".into(),
            });
        }
        self.sent.lock().expect("queue").push(Sent {
            message: message.clone(),
            delay: delay.min(MAX_DELAY),
        });
        Ok(())
    }
}

/// The in-memory publisher: every event and alert published, in order.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    events: Mutex<Vec<OrderEvent>>,
    alerts: Mutex<Vec<OpsAlert>>,
    event_failures: Failures,
    alert_failures: Failures,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` order events fail to publish.
    pub fn fail_events(&self, times: u32) {
        self.event_failures.set(times);
    }

    /// Makes the next `times` alerts fail to publish.
    pub fn fail_alerts(&self, times: u32) {
        self.alert_failures.set(times);
    }

    pub fn events(&self) -> Vec<OrderEvent> {
        self.events.lock().expect("events").clone()
    }

    pub fn alerts(&self) -> Vec<OpsAlert> {
        self.alerts.lock().expect("alerts").clone()
    }

    /// The kinds of the alerts published, in order.
    pub fn alert_kinds(&self) -> Vec<String> {
        self.alerts().into_iter().map(|a| a.kind).collect()
    }
}

impl EventPublisher for MemoryPublisher {
    async fn publish_order_event(&self, event: &OrderEvent) -> Result<(), PublishError> {
        if self.event_failures.take() {
            return Err(PublishError {
                what: format!("the event of order {}", event.order_id),
                source: "injected publish failure".into(),
            });
        }
        self.events.lock().expect("events").push(event.clone());
        Ok(())
    }

    async fn publish_alert(&self, alert: &OpsAlert) -> Result<(), PublishError> {
        if self.alert_failures.take() {
            return Err(PublishError {
                what: format!("the {} alert", alert.kind),
                source: "injected publish failure".into(),
            });
        }
        self.alerts.lock().expect("alerts").push(alert.clone());
        Ok(())
    }
}

/// A wall clock that reads tokio's: `start` plus the tokio time elapsed
/// since it was made.
#[derive(Clone, Copy, Debug)]
pub struct TestClock {
    start: OffsetDateTime,
    origin: Instant,
}

impl TestClock {
    /// Reads `start` now.
    pub fn starting_at(start: OffsetDateTime) -> Self {
        Self {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        self.start + (Instant::now() - self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PollKind;

    #[tokio::test(start_paused = true)]
    async fn the_test_clock_moves_with_tokio_time_only() {
        let start = time::macros::datetime!(2026-11-30 12:00 UTC);
        let clock = TestClock::starting_at(start);
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + time::Duration::seconds(90));
    }

    #[tokio::test]
    async fn a_failed_send_keeps_nothing_and_the_next_one_is_kept() {
        let queue = MemoryQueue::new();
        let message = PollMessage {
            order_id: "o".into(),
            seq: 1,
            kind: PollKind::Poll,
        };
        queue.fail(1);
        assert!(queue.send(&message, Duration::from_secs(5)).await.is_err());
        assert!(queue.is_empty());
        queue
            .send(&message, Duration::from_secs(3_600))
            .await
            .unwrap();
        assert_eq!(
            queue.take(),
            [Sent {
                message,
                delay: MAX_DELAY
            }]
        );
        assert!(queue.is_empty());
    }
}
