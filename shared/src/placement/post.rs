//! One POST: its send time recorded first, sent only close to that time,
//! its outcome marked known once learned, a measure of FoxReload's clock
//! kept, and the order made claimed.

use super::{Posted, ReconcileOptions, SEND_SLACK};
use crate::clock::Clock;
use crate::domain::reconcile::ClockOffset;
use crate::foxreload::{CreateOrderRequest, Operation, Supplier, SupplierError};
use crate::store::{Claim, PlacementStore, StoreError, SupplierState};
use time::OffsetDateTime;
use tracing::warn;

impl ReconcileOptions {
    /// POSTs `request` for `order_id` and claims what it made. `posts` is
    /// the number of POSTs recorded on the order (counted up as this one is
    /// recorded); `recorded` the send time already recorded for this one
    /// (the intent's, for create-order's first POST: the time of the slot
    /// it reserved). A POST is sent only in its slot of the stack's budget
    /// and within [`SEND_SLACK`] of the time recorded for it: a store write
    /// slower than the wait for the slot first records a fresh time, so the
    /// windows reconciliation matches in always hold the real send. A
    /// successful create also measures FoxReload's clock.
    #[allow(clippy::too_many_arguments)]
    pub async fn post(
        &self,
        store: &impl PlacementStore,
        supplier: &impl Supplier,
        clock: &impl Clock,
        order_id: &str,
        request: &CreateOrderRequest,
        posts: &mut usize,
        recorded: Option<OffsetDateTime>,
    ) -> Result<Posted, StoreError> {
        // A slot of the stack's FoxReload budget first, its time recorded
        // as the send time while the slot is waited for (the store write
        // then never makes the POST leave after its slot).
        let slot = match supplier.reserve(Operation::CreateOrder).await {
            Ok(slot) => slot,
            Err(error) => return Ok(Posted::Failed(error)),
        };
        let mut recorded = recorded;
        if recorded.is_none() {
            let at = slot.unwrap_or_else(|| clock.now());
            if !store.record_post(order_id, *posts, at).await? {
                return Ok(Posted::Moved);
            }
            *posts += 1;
            recorded = Some(at);
        }
        match supplier.ready(Operation::CreateOrder).await {
            Ok(()) => {}
            // Recorded, never sent: a cut voided the slot meanwhile.
            Err(SupplierError::Throttled { .. }) if slot.is_some() => {
                return Ok(Posted::SlotVoided);
            }
            Err(error) => return Ok(Posted::Failed(error)),
        }
        // A store slower than the wait: recorded afresh, close to the send.
        for _ in 0..3 {
            if recorded.is_some_and(|at| clock.now() - at <= SEND_SLACK) {
                break;
            }
            let at = clock.now();
            if !store.record_post(order_id, *posts, at).await? {
                return Ok(Posted::Moved);
            }
            *posts += 1;
            recorded = Some(at);
        }
        if recorded.is_none_or(|at| clock.now() - at > SEND_SLACK) {
            // Recorded, never sent: left unknown, so it is never counted as
            // sure to have made an order.
            return Ok(Posted::NotSent);
        }
        let sent = clock.now();
        let outcome = supplier.create_order(request).await;
        // The request left (an answer, or a timeout or broken connection
        // after sending): its outcome is known. One that never left (no
        // connection, or no slot of the stack's budget) stays unknown, so it
        // is never counted as sure to have made an order.
        if !matches!(
            outcome,
            Err(SupplierError::Unreachable { .. } | SupplierError::Throttled { .. })
        ) {
            mark_known(store, order_id, *posts).await;
        }
        if matches!(outcome, Err(SupplierError::RateLimited { .. })) {
            mark_refused(store, order_id, posts.saturating_sub(1)).await;
        }
        let created = match outcome {
            Ok(created) => created,
            // Made ready, then voided by a cut while recording.
            Err(SupplierError::Throttled { .. }) => return Ok(Posted::SlotVoided),
            Err(error) => return Ok(Posted::Failed(error)),
        };
        let answered = clock.now();
        if let Some(stamped) = created.created_at.as_ref().and_then(|t| t.parsed) {
            let measure = ClockOffset::sample(sent, answered, stamped);
            if measure.is_plausible() {
                if let Err(error) = store
                    .save_clock_offset(&measure, self.clock_stale_after)
                    .await
                {
                    warn!(%error, "FoxReload's clock measure not stored");
                }
            } else {
                warn!(
                    offset_ms = measure.offset.whole_milliseconds() as i64,
                    "FoxReload's createdAt is implausibly far from our clock; not used as a measure"
                );
            }
        }
        let claim = store
            .claim_supplier_order(
                order_id,
                &created.id,
                &SupplierState::claimed(&created.status),
                answered,
            )
            .await?;
        Ok(match claim {
            Claim::Claimed => Posted::Claimed(created),
            Claim::TakenByAnother => Posted::TakenByAnother,
            Claim::OrderMoved => Posted::Moved,
        })
    }
}

/// Records that FoxReload refused POST `index` with a `429`: it made
/// nothing, and does not count against the POSTs an order may have. A
/// failure to record it only leaves one fewer attempt.
async fn mark_refused(store: &impl PlacementStore, order_id: &str, index: usize) {
    if let Err(error) = store.mark_post_refused(order_id, index).await {
        warn!(%error, "a POST refused with a 429 was not recorded as such");
    }
}

/// Records that the outcome of `order_id`'s first `known` POSTs is known.
/// A failure to record it only makes a later reconciliation more careful.
async fn mark_known(store: &impl PlacementStore, order_id: &str, known: usize) {
    if let Err(error) = store.mark_posts_known(order_id, known).await {
        warn!(%error, "a POST's outcome was not recorded as known");
    }
}
