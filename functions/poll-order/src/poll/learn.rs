//! What an ended order tells about its product: it was still open at its
//! last poll that read it open, and had ended by the poll that saw the end,
//! both on its clock (from payment, or from placement when we never paid).
//! Added to the product's summary after the event is out, with additions
//! only; a failure here costs one observation, never a delivery.
//!
//! Only orders of one product teach: an order of several ends with its
//! slowest item, which says little about any one of them.

use super::{PollOrderStore, Poller};
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::learning::observation;
use foxrelay_shared::events::EventPublisher;
use foxrelay_shared::foxreload::Supplier;
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::OrderRecord;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::{info, warn};

/// The order's one product, if it has exactly one.
pub(super) fn product_of(order: &OrderRecord) -> Option<&str> {
    let first = order.lines.first()?.product_id.as_str();
    order
        .lines
        .iter()
        .all(|line| line.product_id == first)
        .then_some(first)
}

impl<S, Q, F, P, C> Poller<S, Q, F, P, C>
where
    S: PollOrderStore,
    Q: PollQueue,
    F: Supplier,
    P: EventPublisher,
    C: Clock,
{
    /// Adds `order`'s end, seen at `ended_at`, to its product's summary.
    pub(super) async fn learn(&self, order: &OrderRecord, ended_at: OffsetDateTime) {
        let Some(product) = product_of(order) else {
            return;
        };
        let start = order.clock_start();
        let since_start = |at: OffsetDateTime| Duration::try_from(at - start).ok();
        let Some(by) = since_start(ended_at) else {
            return;
        };
        let seen = observation(order.last_seen_open_at.and_then(since_start), by);
        let summary = match self.store.summary(product).await {
            Ok(summary) => summary,
            Err(error) => {
                warn!(%error, product_id = product, "summary not read; observation not kept");
                return;
            }
        };
        let contribution = self.options.learning.decay.learn(&seen, &summary);
        match self.store.add_observation(product, &contribution).await {
            Ok(()) => info!(
                product_id = product,
                ended_after_secs = seen.after.as_secs_f64(),
                ended_by_secs = seen.by.as_secs_f64(),
                "observation kept"
            ),
            Err(error) => warn!(%error, product_id = product, "observation not kept"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foxrelay_shared::domain::OrderLine;

    fn line(product: &str) -> OrderLine {
        OrderLine {
            product_id: product.to_owned(),
            quantity: 1,
            note: None,
        }
    }

    #[test]
    fn only_an_order_of_one_product_teaches() {
        let mut order = foxrelay_shared::testing::seed::intent("o", OffsetDateTime::UNIX_EPOCH);
        order.lines = vec![line("a"), line("a")];
        assert_eq!(product_of(&order), Some("a"));
        order.lines = vec![line("a"), line("b")];
        assert_eq!(product_of(&order), None);
        order.lines = Vec::new();
        assert_eq!(product_of(&order), None);
    }
}
