//! Reconciliation: after an ambiguous create, which of FoxReload's recent
//! orders could be ours.
//!
//! FoxReload has no idempotency key and no reference field, so an order is
//! recognised by what it holds (the same products in the same quantities)
//! and when it was made (not before our intent was recorded, less a margin
//! for clock skew). Which candidate is actually taken is decided by the
//! store's claim: a supplier order is claimed by exactly one of our orders.

use super::order::OrderLine;
use crate::foxreload::SupplierOrder;
use std::time::Duration;
use time::OffsetDateTime;

/// Default margin for the difference between our clock and FoxReload's.
pub const CLOCK_SKEW: Duration = Duration::from_secs(120);

/// FoxReload orders in `recent` that hold exactly `lines` (products and
/// quantities, in any order) and were created at or after `not_before`,
/// oldest first. Orders whose creation time cannot be read are never
/// candidates: claiming a stranger's order is as wrong as buying twice.
pub fn candidates<'a>(
    lines: &[OrderLine],
    not_before: OffsetDateTime,
    recent: &'a [SupplierOrder],
) -> Vec<&'a SupplierOrder> {
    let wanted = shape(
        lines
            .iter()
            .map(|l| (l.product_id.as_str(), Some(l.quantity))),
    );
    let mut found: Vec<(&SupplierOrder, OffsetDateTime)> = recent
        .iter()
        .filter_map(|order| {
            let created = order.created_at.as_ref()?.parsed?;
            let held = shape(
                order
                    .items
                    .iter()
                    .map(|i| (i.product_id().unwrap_or_default(), i.quantity)),
            );
            (created >= not_before && held == wanted).then_some((order, created))
        })
        .collect();
    found.sort_by_key(|(_, created)| *created);
    found.into_iter().map(|(order, _)| order).collect()
}

fn shape<'a>(items: impl Iterator<Item = (&'a str, Option<u32>)>) -> Vec<(&'a str, Option<u32>)> {
    let mut shape: Vec<_> = items.collect();
    shape.sort_unstable();
    shape
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn order(id: &str, created: &str, items: serde_json::Value) -> SupplierOrder {
        serde_json::from_value(
            json!({"id": id, "status": "active", "createdAt": created, "items": items}),
        )
        .unwrap()
    }

    fn line(product: &str, quantity: u32) -> OrderLine {
        OrderLine {
            product_id: product.into(),
            quantity,
            note: None,
        }
    }

    #[test]
    fn only_same_items_made_after_the_intent_match_oldest_first() {
        let two = json!([{"product": {"id": "a"}, "quantity": 1}, {"product": {"id": "b"}, "quantity": 2}]);
        let recent = vec![
            order(
                "newer",
                "2026-11-28T10:00:09Z",
                json!([{"product": {"id": "b"}, "quantity": 2}, {"product": {"id": "a"}, "quantity": 1}]),
            ),
            order("older", "2026-11-28T10:00:05Z", two.clone()),
            order("before-intent", "2026-11-28T09:00:00Z", two.clone()),
            order(
                "other-quantity",
                "2026-11-28T10:00:06Z",
                json!([{"product": {"id": "a"}, "quantity": 1}, {"product": {"id": "b"}, "quantity": 3}]),
            ),
            order(
                "subset",
                "2026-11-28T10:00:07Z",
                json!([{"product": {"id": "a"}, "quantity": 1}]),
            ),
            order("no-time", "soon", two),
        ];
        let found: Vec<_> = candidates(
            &[line("a", 1), line("b", 2)],
            datetime!(2026-11-28 10:00:00 UTC),
            &recent,
        )
        .into_iter()
        .map(|o| o.id.as_str())
        .collect();
        assert_eq!(found, vec!["older", "newer"]);
    }
}
