//! Placing an order at FoxReload without buying twice: the reconciliation
//! both create-order and poll-order run after an ambiguous create.
//!
//! FoxReload's recent orders are listed and matched against ours
//! ([`crate::domain::reconcile::candidates`]); the oldest unclaimed match is
//! claimed with the store's conditional write, so a supplier order is held by
//! exactly one of our orders. Nothing found, the list is read once more after
//! a short pause (the re-check) before the caller may buy again.

use crate::clock::Clock;
use crate::domain::reconcile::{CLOCK_SKEW, candidates};
use crate::foxreload::{Supplier, SupplierOrder, SupplierStatus};
use crate::store::{Claim, OrderRecord, OrderStore, StoreError, SupplierProblem};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// Figures of a reconciliation.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// How many recent orders to read.
    pub list_limit: u32,
    /// Margin for the difference between our clock and FoxReload's.
    pub clock_skew: Duration,
    /// Pause before the re-check.
    pub recheck_delay: Duration,
    /// The time one FoxReload call may take: none starts with less left.
    pub call_budget: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            list_limit: 20,
            clock_skew: CLOCK_SKEW,
            recheck_delay: Duration::from_secs(1),
            call_budget: Duration::from_secs(9),
        }
    }
}

/// How a reconciliation ended.
#[derive(Clone, Debug)]
pub enum Found {
    /// Our order now holds this supplier order.
    Claimed(SupplierOrder),
    /// Twice, nothing of ours: buying again is as safe as it gets.
    Nothing,
    /// The list could not be read, or no time was left.
    Undecided(SupplierProblem),
    /// Our order moved on meanwhile (another worker settled it).
    Moved,
}

/// A problem saying why a create could not be decided.
pub fn undecided(why: &str) -> SupplierProblem {
    SupplierProblem {
        kind: "undecided".into(),
        status: None,
        code: None,
        detail: Some(why.into()),
    }
}

impl ReconcileOptions {
    /// Whether a FoxReload call still fits before `deadline`.
    pub fn time_left(&self, deadline: Instant) -> bool {
        Instant::now() + self.call_budget <= deadline
    }

    /// Sleeps `pause` if there is time for it and a call after it.
    pub async fn pause(&self, pause: Duration, deadline: Instant) -> bool {
        if Instant::now() + pause + self.call_budget > deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }

    /// Looks through FoxReload's recent orders for `order`, twice, claiming
    /// the oldest unclaimed match.
    pub async fn run(
        &self,
        store: &impl OrderStore,
        supplier: &impl Supplier,
        clock: &impl Clock,
        order: &OrderRecord,
        deadline: Instant,
    ) -> Result<Found, StoreError> {
        let not_before = order.created_at - self.clock_skew;
        for look in 0..2 {
            if look > 0 && !self.pause(self.recheck_delay, deadline).await {
                return Ok(Found::Undecided(undecided("no time left to re-check")));
            }
            if !self.time_left(deadline) {
                return Ok(Found::Undecided(undecided("no time left to reconcile")));
            }
            let recent = match supplier.list_recent_orders(self.list_limit).await {
                Ok(recent) => recent,
                Err(error) => {
                    warn!(%error, "recent orders unreadable; undecided");
                    return Ok(Found::Undecided(SupplierProblem::from(&error)));
                }
            };
            for candidate in candidates(&order.lines, not_before, &recent) {
                if store.is_claimed(&candidate.id).await? {
                    continue;
                }
                let claim = store
                    .claim_supplier_order(
                        &order.order_id,
                        &candidate.id,
                        candidate.status.as_str(),
                        clock.now(),
                    )
                    .await?;
                match claim {
                    Claim::Claimed => {
                        info!(supplier_order_id = %candidate.id, "reconciled onto an existing supplier order");
                        return Ok(Found::Claimed(candidate.clone()));
                    }
                    Claim::TakenByAnother => continue,
                    Claim::OrderMoved => return Ok(Found::Moved),
                }
            }
        }
        Ok(Found::Nothing)
    }
}

/// Pays an `active` supplier order from the account balance and stores the
/// outcome: FoxReload's status after it, or why it was refused (a refusal
/// such as `BALANCE_NOT_ENOUGH` is kept on the order; the order is polled on,
/// so its cancellation is published). Returns FoxReload's status after a
/// payment it confirmed.
pub async fn pay(
    store: &impl OrderStore,
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
        Err(error) => {
            warn!(%error, "payment not confirmed");
            (None, Some(SupplierProblem::from(&error)))
        }
    };
    let stored = status.as_ref().map(SupplierStatus::as_str);
    if let Err(error) = store
        .record_payment(order_id, stored, refusal.as_ref(), clock.now())
        .await
    {
        // The next poll reads FoxReload's status anyway.
        warn!(%error, "payment outcome not stored");
    }
    status
}
