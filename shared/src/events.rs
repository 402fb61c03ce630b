//! The event publisher port, and its SNS adapter: order events to the
//! order-events topic, operations alerts to the ops-alerts topic.

use crate::domain::event::{
    DeliveredCodeRecord, OrderEvent, SCHEMA_VERSION, SOURCE, event_id, event_type,
};
use crate::store::{OrderRecord, SupplierProblem};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};
use std::future::Future;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An alert for operations: what an operator needs to act on an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpsAlert {
    /// `stalled`, `failed`, `abandoned`, `needs_attention`, `stuck_creating`.
    pub kind: String,
    pub order_id: String,
    pub supplier_order_id: Option<String>,
    pub status: String,
    pub age_secs: u64,
    pub last_polled_at: Option<String>,
    /// The last failure, as stored (`kind`, `status`, `code`, `detail`).
    pub last_error: Option<SupplierProblem>,
    pub message: String,
    pub alerted_at: String,
}

impl OpsAlert {
    /// An alert about `order`, as it stands at `now`; `problem` overrides the
    /// order's stored last error.
    pub fn for_order(
        order: &OrderRecord,
        kind: &str,
        message: impl Into<String>,
        problem: Option<&SupplierProblem>,
        now: OffsetDateTime,
    ) -> Self {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        Self {
            kind: kind.to_owned(),
            order_id: order.order_id.clone(),
            supplier_order_id: order.supplier_order_id.clone(),
            status: order.status.as_str().to_owned(),
            age_secs: (now - order.created_at).whole_seconds().max(0) as u64,
            last_polled_at: order.last_polled_at.map(time),
            last_error: problem.or(order.last_error.as_ref()).cloned(),
            message: message.into(),
            alerted_at: time(now),
        }
    }
}

/// The event of a terminal order, from what is stored: every copy is the
/// same (its id, time and content come from the stored order). `codes`:
/// the stored codes, or `None` for an event without them
/// (`ORDER_EVENT_CODES=omitted`: `codesIncluded: false`, `codeCount` from
/// the order).
pub fn order_event(order: &OrderRecord, codes: Option<Vec<DeliveredCodeRecord>>) -> OrderEvent {
    let occurred = order.terminal_at.unwrap_or(order.updated_at);
    let codes_included = codes.is_some();
    let (code_count, codes) = match codes {
        Some(codes) => (codes.len() as u32, codes),
        None => (order.code_count, Vec::new()),
    };
    OrderEvent {
        event_id: event_id(&order.order_id, order.status),
        kind: event_type(order.status),
        schema_version: SCHEMA_VERSION,
        source: SOURCE.to_owned(),
        order_id: order.order_id.clone(),
        placed_by: order.principal.as_ref().map(|p| p.as_str().to_owned()),
        supplier_order_id: order.supplier_order_id.clone(),
        status: order.status.as_str().to_owned(),
        customer_reference: order.customer_reference.clone(),
        items: order.items.clone(),
        code_count,
        codes,
        codes_included,
        cancel_reason: order.cancel_reason.clone(),
        occurred_at: occurred.format(&Rfc3339).unwrap_or_default(),
    }
}

/// Why a publish failed. Always retryable: the order stays un-notified and
/// is published again by redelivery or by scan-stalled.
#[derive(Debug, thiserror::Error)]
#[error("publishing {what} failed: {source}")]
pub struct PublishError {
    pub what: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The publisher port.
pub trait EventPublisher: Send + Sync {
    fn publish_order_event(
        &self,
        event: &OrderEvent,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    fn publish_alert(
        &self,
        alert: &OpsAlert,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// The SNS adapter of [`EventPublisher`].
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: Client,
    order_events_topic: String,
    ops_alerts_topic: String,
}

impl SnsPublisher {
    pub fn new(
        client: Client,
        order_events_topic: impl Into<String>,
        ops_alerts_topic: impl Into<String>,
    ) -> Self {
        Self {
            client,
            order_events_topic: order_events_topic.into(),
            ops_alerts_topic: ops_alerts_topic.into(),
        }
    }

    async fn publish(
        &self,
        topic: &str,
        message: String,
        attributes: &[(&str, &str)],
        what: String,
    ) -> Result<(), PublishError> {
        let mut request = self.client.publish().topic_arn(topic).message(message);
        for &(name, value) in attributes.iter().filter(|(_, value)| !value.is_empty()) {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("data type is set");
            request = request.message_attributes(name, attribute);
        }
        request.send().await.map(|_| ()).map_err(|e| PublishError {
            what,
            source: Box::new(e),
        })
    }
}

impl EventPublisher for SnsPublisher {
    async fn publish_order_event(&self, event: &OrderEvent) -> Result<(), PublishError> {
        self.publish(
            &self.order_events_topic,
            event.to_message(),
            &[
                ("type", &event.kind),
                ("status", &event.status),
                // Subscribers filter on who placed it (a filter policy on
                // `placedBy`); absent for orders from before callers were kept.
                ("placedBy", event.placed_by.as_deref().unwrap_or("")),
            ],
            format!("event {} of order {}", event.event_id, event.order_id),
        )
        .await
    }

    async fn publish_alert(&self, alert: &OpsAlert) -> Result<(), PublishError> {
        self.publish(
            &self.ops_alerts_topic,
            serde_json::to_string(alert).expect("an alert is plain JSON"),
            &[("kind", &alert.kind), ("status", &alert.status)],
            format!("{} alert for order {}", alert.kind, alert.order_id),
        )
        .await
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::order_event;
    use crate::domain::OrderStatus;
    use crate::domain::event::{CodeKind, DeliveredCodeRecord};
    use time::macros::datetime;

    #[test]
    fn an_event_without_codes_carries_the_stored_count_and_says_so() {
        let mut order = crate::testing::seed::intent("o-1", datetime!(2026-12-03 12:00 UTC));
        order.status = OrderStatus::Completed;
        order.code_count = 2;
        let code = |index| DeliveredCodeRecord {
            index,
            item_index: 0,
            product_id: "p".into(),
            code: format!("C-{index}"),
            kind: CodeKind::Code,
        };
        let full = order_event(&order, Some(vec![code(0), code(1)]));
        assert!(full.codes_included);
        assert_eq!((full.codes.len(), full.code_count), (2, 2));
        let slim = order_event(&order, None);
        assert!(!slim.codes_included);
        assert!(slim.codes.is_empty());
        assert_eq!(slim.code_count, 2);
        // The same event otherwise: its id, type and time.
        assert_eq!(
            (slim.event_id, slim.kind, slim.occurred_at),
            (full.event_id, full.kind, full.occurred_at)
        );
    }
}
