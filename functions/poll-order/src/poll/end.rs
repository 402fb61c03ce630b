//! An order's end: codes and status stored first, alerts for what an
//! operator must know, then the event published and the order marked
//! notified.

use super::{Handled, PollError, PollOrderStore, Poller};
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::OrderStatus;
use foxrelay_shared::domain::event::delivered;
use foxrelay_shared::events::EventPublisher;
use foxrelay_shared::events::OpsAlert;
use foxrelay_shared::foxreload::Supplier;
use foxrelay_shared::foxreload::SupplierOrder;
use foxrelay_shared::notify::notify;
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::{OrderRecord, Persisted, SupplierProblem, Terminal};
use tracing::{info, warn};

/// The time an ended order's observation may take to be kept.
const LEARN_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// The `Product` of an order of several products in per-product metrics
/// (no product id has parentheses).
pub const SEVERAL_PRODUCTS: &str = "(several)";

impl<S, Q, F, P, C> Poller<S, Q, F, P, C>
where
    S: PollOrderStore,
    Q: PollQueue,
    F: Supplier,
    P: EventPublisher,
    C: Clock,
{
    /// Stores the order's end (codes first), then publishes.
    pub(super) async fn finish(
        &self,
        order: OrderRecord,
        found: &SupplierOrder,
    ) -> Result<Handled, PollError> {
        let (items, codes) = delivered(&order.lines, found);
        let status = OrderStatus::from_supplier(&found.status);
        let terminal = Terminal {
            status,
            supplier_status: Some(found.status.as_str().to_owned()),
            cancel_reason: found.cancel_reason.clone(),
            items,
            codes,
            at: self.clock.now(),
        };
        let ended = self.store.persist_terminal(&order, &terminal).await?;
        let unlisted = match ended.persisted {
            Persisted::Committed { unlisted } => {
                info!(%status, codes = terminal.codes.len(), "order ended; stored");
                unlisted
            }
            Persisted::AlreadyTerminal => {
                info!("order had already ended; nothing rewritten");
                0
            }
        };
        let stored = ended.order;
        if unlisted > 0 {
            self.alert(
                &stored,
                "codes_changed",
                &format!(
                    "{unlisted} code(s) stored from an earlier read are no longer listed by FoxReload; \
                     all are kept and delivered: check them with FoxReload"
                ),
                &None,
            )
            .await;
        }
        if stored.status == OrderStatus::Failed {
            self.alert(
                &stored,
                "failed",
                "FoxReload could not fulfil the order",
                &None,
            )
            .await;
        }
        let short: u32 = stored
            .items
            .iter()
            .filter(|item| item.is_silently_short())
            .map(|item| item.missing)
            .sum();
        if stored.status == OrderStatus::Completed && short > 0 {
            self.alert(
                &stored,
                "short_delivery",
                &format!(
                    "FoxReload completed the order with {short} unit(s) missing and no item error: \
                     ask FoxReload for the missing codes"
                ),
                &None,
            )
            .await;
        }
        let handled = self.notify(stored).await?;
        // Ends FoxReload reached by fulfilling teach the product; a
        // cancellation (an unpaid order expiring) says nothing of how long
        // fulfilment takes. Bounded: it must not cost the message its
        // budget.
        if ended.persisted != Persisted::AlreadyTerminal
            && matches!(status, OrderStatus::Completed | OrderStatus::Failed)
            && tokio::time::timeout(LEARN_BUDGET, self.learn(&order, terminal.at))
                .await
                .is_err()
        {
            warn!("summary not updated in time; observation not kept");
        }
        Ok(handled)
    }

    /// A handed-over create that reconciliation found nowhere: nothing was
    /// bought; the order ends `not_placed`, published.
    pub(super) async fn not_placed(&self, order: &OrderRecord) -> Result<Handled, PollError> {
        let stored = self
            .end_without_codes(order, OrderStatus::NotPlaced)
            .await?;
        info!("interrupted create found nowhere at FoxReload; not placed");
        self.notify(stored).await
    }

    /// Stores an end that brings no codes; the order as stored.
    async fn end_without_codes(
        &self,
        order: &OrderRecord,
        status: OrderStatus,
    ) -> Result<OrderRecord, PollError> {
        let terminal = Terminal {
            status,
            supplier_status: order.supplier_status.clone(),
            cancel_reason: None,
            items: Vec::new(),
            codes: Vec::new(),
            at: self.clock.now(),
        };
        Ok(self.store.persist_terminal(order, &terminal).await?.order)
    }

    /// Past the horizon: the order is abandoned, published and alerted.
    pub(super) async fn abandon(&self, order: &OrderRecord) -> Result<Handled, PollError> {
        let stored = self
            .end_without_codes(order, OrderStatus::Abandoned)
            .await?;
        self.alert(
            &stored,
            "abandoned",
            "the order did not end within the polling horizon",
            &None,
        )
        .await;
        self.notify(stored).await
    }

    /// Publishes a terminal order's event from what is stored, then marks it
    /// notified. A failed publish leaves it un-notified for a retry.
    pub(super) async fn notify(&self, order: OrderRecord) -> Result<Handled, PollError> {
        let now = self.clock.now();
        notify(
            &self.store,
            &self.publisher,
            &order,
            now,
            self.options.event_codes,
        )
        .await?;
        let time_to_notify = (now - order.created_at).try_into().unwrap_or_default();
        // What the schedule optimises: orders FoxReload ended. An abandoned
        // order took the whole horizon by definition, and one never placed
        // was never polled.
        let ended_by_foxreload = !matches!(
            order.status,
            OrderStatus::Abandoned | OrderStatus::NotPlaced
        );
        Ok(Handled::Finished {
            status: order.status,
            time_to_notify,
            short: order.status == OrderStatus::Completed
                && order.items.iter().any(|item| item.is_silently_short()),
            ended: foxrelay_shared::metrics::Ended {
                product: super::learn::product_of(&order)
                    .unwrap_or(SEVERAL_PRODUCTS)
                    .to_owned(),
                schedule: order
                    .poll_plan
                    .as_ref()
                    .map_or("default", |planned| planned.kind.as_str()),
                // The poll that saw the end is not counted on the order.
                polls: order.poll_count + 1,
                time_to_notify: ended_by_foxreload.then_some(time_to_notify),
            },
        })
    }

    pub(super) async fn alert(
        &self,
        order: &OrderRecord,
        kind: &str,
        message: &str,
        problem: &Option<SupplierProblem>,
    ) {
        let alert = OpsAlert::for_order(order, kind, message, problem.as_ref(), self.clock.now());
        if let Err(error) = self.publisher.publish_alert(&alert).await {
            warn!(%error, "operations alert not sent");
        }
    }
}
