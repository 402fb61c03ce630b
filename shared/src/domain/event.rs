//! The order event published when an order ends, and what it is made of.

use super::order::{OrderLine, OrderStatus};
use super::supplier::{DeliveredCode, SupplierItem, SupplierOrder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SNS refuses messages over 256 KiB; an event larger than this is sent
/// without its codes (`codesIncluded: false`), which subscribers then read
/// with `GET /orders/{orderId}`.
pub const MAX_EVENT_BYTES: usize = 240 * 1024;

/// How one delivered entry was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// The entry's `code` field.
    Code,
    /// The whole entry as JSON (activation data without `code`).
    Data,
}

/// One delivered code, as stored and as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredCodeRecord {
    /// Position among all of the order's codes, from 0.
    pub index: u32,
    /// Which of the order's items it belongs to, from 0.
    pub item_index: u32,
    pub product_id: String,
    /// The secret. Never logged.
    pub code: String,
    pub kind: CodeKind,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemOutcome {
    pub product_id: String,
    pub quantity: Option<u32>,
    /// Entries delivered for this item.
    pub delivered: u32,
    /// FoxReload's per-item error (a completed order can carry one).
    pub error: Option<String>,
    /// Units FoxReload delivered no entry for (fewer entries than units);
    /// absent when none is missing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ItemOutcome {
    /// Short, and FoxReload said nothing of it: operations must look.
    pub fn is_silently_short(&self) -> bool {
        self.missing > 0 && self.error.is_none()
    }
}

/// The version of the event's shape (`schemaVersion`); its JSON Schema is
/// `schemas/order-event.v1.json`. Fields may be added within a version;
/// none is removed or changes meaning without a new one.
pub const SCHEMA_VERSION: u32 = 1;
/// Who publishes the event (`source`, CloudEvents' `source`).
pub const SOURCE: &str = "foxrelay";

/// The event: one per finished order; every copy is identical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub schema_version: u32,
    pub source: String,
    pub order_id: String,
    /// The caller that placed the order (`None` for orders placed before
    /// callers were recorded): subscribers route on it.
    pub placed_by: Option<String>,
    pub supplier_order_id: Option<String>,
    pub status: String,
    pub customer_reference: Option<String>,
    pub items: Vec<ItemOutcome>,
    pub codes: Vec<DeliveredCodeRecord>,
    pub codes_included: bool,
    pub code_count: u32,
    pub cancel_reason: Option<String>,
    pub occurred_at: String,
}

/// `order.completed`, `order.cancelled`, `order.failed`, `order.abandoned`
/// (or `order.not_placed`).
pub fn event_type(status: OrderStatus) -> String {
    format!("order.{}", status.as_str())
}

/// The event id: derived from the order and its terminal status, formatted
/// as a UUID, so every copy of an order's event carries the same one.
pub fn event_id(order_id: &str, status: OrderStatus) -> String {
    let digest = Sha256::digest(format!("foxrelay:{order_id}:{}", status.as_str()).as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What a finished supplier order delivered: per item, its outcome; and
/// every code or activation entry, in order. Nothing is dropped: an entry
/// without `code` is kept whole as JSON.
pub fn delivered(
    lines: &[OrderLine],
    order: &SupplierOrder,
) -> (Vec<ItemOutcome>, Vec<DeliveredCodeRecord>) {
    let product_of = |index: usize, item: &SupplierItem| {
        item.product_id()
            .or_else(|| lines.get(index).map(|l| l.product_id.as_str()))
            .unwrap_or_default()
            .to_owned()
    };
    let items = order
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let delivered = item.external_data.len() as u32;
            ItemOutcome {
                product_id: product_of(index, item),
                quantity: item.quantity,
                delivered,
                error: item.error.clone(),
                missing: item.quantity.unwrap_or(0).saturating_sub(delivered),
            }
        })
        .collect();
    let codes = order
        .delivered()
        .enumerate()
        .map(|(n, (item_index, item, code))| {
            let (kind, code) = match code {
                DeliveredCode::Code(code) => (CodeKind::Code, code),
                DeliveredCode::Whole(json) => (CodeKind::Data, json),
            };
            DeliveredCodeRecord {
                index: n as u32,
                item_index: item_index as u32,
                product_id: product_of(item_index, item),
                code,
                kind,
            }
        })
        .collect();
    (items, codes)
}

impl OrderEvent {
    /// The JSON to publish: with the codes if it fits SNS's limit, else
    /// without them (`codesIncluded: false`).
    pub fn to_message(&self) -> String {
        let full = serde_json::to_string(self).expect("an event is plain JSON");
        if full.len() <= MAX_EVENT_BYTES {
            return full;
        }
        let slim = OrderEvent {
            codes: Vec::new(),
            codes_included: false,
            ..self.clone()
        };
        serde_json::to_string(&slim).expect("an event is plain JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_stable_per_order_and_status() {
        let a = event_id("o-1", OrderStatus::Completed);
        assert_eq!(a, event_id("o-1", OrderStatus::Completed));
        assert_ne!(a, event_id("o-1", OrderStatus::Cancelled));
        assert_ne!(a, event_id("o-2", OrderStatus::Completed));
        assert_eq!(a.len(), 36);
        assert_eq!(event_type(OrderStatus::Abandoned), "order.abandoned");
    }

    #[test]
    fn an_event_too_large_for_sns_goes_without_its_codes() {
        let code = |index: u32| DeliveredCodeRecord {
            index,
            item_index: 0,
            product_id: "p".into(),
            code: "X".repeat(1_000),
            kind: CodeKind::Code,
        };
        let mut event = OrderEvent {
            event_id: event_id("o", OrderStatus::Completed),
            kind: event_type(OrderStatus::Completed),
            schema_version: SCHEMA_VERSION,
            source: SOURCE.into(),
            order_id: "o".into(),
            placed_by: None,
            supplier_order_id: Some("s".into()),
            status: "completed".into(),
            customer_reference: None,
            items: vec![],
            codes: (0..10).map(code).collect(),
            codes_included: true,
            code_count: 10,
            cancel_reason: None,
            occurred_at: "2026-11-28T10:00:00Z".into(),
        };
        let small: OrderEvent = serde_json::from_str(&event.to_message()).unwrap();
        assert!(small.codes_included && small.codes.len() == 10);
        event.codes = (0..300).map(code).collect();
        event.code_count = 300;
        let message = event.to_message();
        assert!(message.len() <= MAX_EVENT_BYTES);
        let slim: OrderEvent = serde_json::from_str(&message).unwrap();
        assert!(!slim.codes_included && slim.codes.is_empty());
        assert_eq!(slim.code_count, 300);
    }
}
