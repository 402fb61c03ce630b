//! Paying an order claimed, and keeping what FoxReload said.

use crate::clock::Clock;
use crate::foxreload::{Supplier, SupplierError, SupplierOrder, SupplierStatus};
use crate::store::{PlacementStore, SupplierProblem, SupplierState};
use tracing::{info, warn};

/// Pays an `active` supplier order from the account balance and stores the
/// outcome: FoxReload's status after it, or why it was refused (a refusal
/// such as `BALANCE_NOT_ENOUGH` is kept on the order; the order is polled on,
/// so its cancellation is published). Returns FoxReload's status after a
/// payment it confirmed.
pub async fn pay(
    store: &impl PlacementStore,
    supplier: &impl Supplier,
    clock: &impl Clock,
    order_id: &str,
    supplier_order: &SupplierOrder,
) -> Option<SupplierStatus> {
    if supplier_order.status != SupplierStatus::Active {
        return None;
    }
    let (status, refusal) = match supplier.pay_order(&supplier_order.id).await {
        Ok(paid) => (Some(paid.status), None),
        // Not sent (the stack's budget): nothing to record; the next poll
        // pays it.
        Err(error @ SupplierError::Throttled { .. }) => {
            info!(%error, "payment held back by the FoxReload budget");
            return None;
        }
        Err(error) => {
            warn!(%error, "payment not confirmed");
            (None, Some(SupplierProblem::from(&error)))
        }
    };
    let stored = status.as_ref().map(SupplierState::after_payment);
    if let Err(error) = store
        .record_payment(order_id, stored.as_ref(), refusal.as_ref(), clock.now())
        .await
    {
        // The next poll reads FoxReload's status anyway.
        warn!(%error, "payment outcome not stored");
    }
    status
}
