//! The order as the API shows it.

use foxrelay_shared::domain::event::DeliveredCodeRecord;
use foxrelay_shared::store::OrderRecord;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

/// `/orders/{orderId}`.
pub fn location(order_id: &str) -> String {
    format!("/orders/{order_id}")
}

/// The order with what it delivered: per-item outcomes and the codes, once
/// it has ended.
pub fn finished_order_json(order: &OrderRecord, codes: &[DeliveredCodeRecord]) -> Value {
    let mut view = order_json(order);
    view["itemOutcomes"] = json!(order.items);
    view["codes"] = json!(codes);
    view
}

/// The order's JSON: status, items, supplier order, errors, timestamps.
pub fn order_json(order: &OrderRecord) -> Value {
    let time = |t: time::OffsetDateTime| t.format(&Rfc3339).ok();
    json!({
        "orderId": order.order_id,
        "status": order.status.as_str(),
        "supplierOrderId": order.supplier_order_id,
        "supplierStatus": order.supplier_status,
        "customerReference": order.customer_reference,
        "totalPrice": order.total_price,
        "items": order.lines,
        "paymentError": order.payment_error,
        "lastError": order.last_error,
        "cancelReason": order.cancel_reason,
        "createdAt": time(order.created_at),
        "updatedAt": time(order.updated_at),
    })
}
