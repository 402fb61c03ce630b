//! Notifying a finished order: its event is built from what is stored
//! (codes included), published, and only then is the order marked
//! notified. The one way an order's event goes out: poll-order when the
//! order ends, the sweep when that publish failed. Every copy is the same
//! event (same id), so subscribers deduplicate.

use crate::domain::event::OrderEvent;
use crate::events::{EventPublisher, PublishError, order_event};
use crate::settings::EventCodes;
use crate::store::{NotifyMarks, OrderRecord, StoreError};
use time::OffsetDateTime;
use tracing::info;

/// Why a notification did not complete: the order stays un-notified, and
/// is notified again by a redelivery or by the sweep.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Publishes `order`'s event (it must have ended) and marks it notified
/// at `now`. With [`EventCodes::Omitted`] no code is read: the event
/// carries their count only.
pub async fn notify(
    store: &impl NotifyMarks,
    publisher: &impl EventPublisher,
    order: &OrderRecord,
    now: OffsetDateTime,
    codes: EventCodes,
) -> Result<OrderEvent, NotifyError> {
    let codes = match codes {
        EventCodes::Included => Some(store.codes(&order.order_id).await?),
        EventCodes::Omitted => None,
    };
    let event = order_event(order, codes);
    publisher.publish_order_event(&event).await?;
    store.mark_notified(&order.order_id, now).await?;
    info!(order_id = %order.order_id, event_id = %event.event_id, kind = %event.kind, "event published");
    Ok(event)
}
