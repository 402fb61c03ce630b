//! Where each item lives: its partition and sort keys (the item layout is in
//! the module above), and the sweep's opaque cursor.

use super::Item;
use super::codec::s;
use crate::store::{AlertSlot, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Name of the sparse index of non-terminal orders.
pub const PENDING_INDEX: &str = "pending-orders";

pub(super) const PENDING: &str = "PENDING";

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

pub(super) fn order_key(order_id: &str) -> Item {
    key(format!("ORDER#{order_id}"), "ORDER")
}

pub(super) fn claim_key(supplier_order_id: &str) -> Item {
    key(format!("SUPPLIER#{supplier_order_id}"), "CLAIM")
}

pub(super) fn idempotency_key(key_text: &str) -> Item {
    key(format!("IDEMPOTENCY#{key_text}"), "IDEMPOTENCY")
}

pub(super) fn stack_alert_key(name: &str) -> Item {
    key(format!("ALERT#{name}"), "ALERT")
}

pub(super) fn clock_key() -> Item {
    key("CLOCK#foxreload".to_owned(), "OFFSET")
}

/// A product's completion-time summary (learned polling).
pub(super) fn summary_key(product_id: &str) -> Item {
    key(format!("LEARN#{product_id}"), "SUMMARY")
}

pub(super) fn budget_key() -> Item {
    key("BUDGET#foxreload".to_owned(), "SHARED")
}

/// That event `event_id` reached endpoint `endpoint` (deliver-webhook).
pub(super) fn delivered_key(event_id: &str, endpoint: &str) -> Item {
    key(
        format!("WEBHOOK#{event_id}"),
        &format!("DELIVERED#{endpoint}"),
    )
}

/// A webhook endpoint's circuit breaker.
pub(super) fn breaker_key(endpoint: &str) -> Item {
    key(format!("WEBHOOK#{endpoint}"), "BREAKER")
}

pub(super) fn sweep_key() -> Item {
    key("SWEEP#scan-stalled".to_owned(), "CURSOR")
}

/// The partition of an order's codes: apart from every item create-order
/// may write, so its role can be denied writing there (IAM's
/// `dynamodb:LeadingKeys`).
pub(super) fn codes_pk(order_id: &str) -> String {
    format!("CODES#{order_id}")
}

/// Codes sort by their position: `CODE#000042`.
pub(super) fn code_sk(index: u32) -> String {
    format!("CODE#{index:06}")
}

pub(super) fn alert_attribute(slot: AlertSlot) -> &'static str {
    match slot {
        AlertSlot::Stall => "stallAlertedAt",
        AlertSlot::Reconcile => "reconcileAlertedAt",
        AlertSlot::LongRunning => "longRunningAlertedAt",
        AlertSlot::ChainStuck => "chainStuckAlertedAt",
        AlertSlot::NotNotified => "notNotifiedAlertedAt",
    }
}

/// The index's LastEvaluatedKey as an opaque cursor (JSON of its strings).
pub(super) fn key_to_cursor(key: &Item) -> String {
    let strings: std::collections::BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(name, value)| value.as_s().ok().map(|v| (name.as_str(), v.as_str())))
        .collect();
    serde_json::to_string(&strings).expect("strings are JSON")
}

pub(super) fn cursor_to_key(cursor: &str) -> Result<Item, StoreError> {
    let strings: HashMap<String, String> =
        serde_json::from_str(cursor).map_err(|e| StoreError::Corrupt {
            key: "SWEEP#scan-stalled".into(),
            reason: format!("cursor: {e}"),
        })?;
    Ok(strings.into_iter().map(|(k, v)| (k, s(v))).collect())
}
