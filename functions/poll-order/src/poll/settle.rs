//! Settling an order create-order left undecided: reconciliation under
//! the never-buy-twice rules, a new POST only when it found nothing, then
//! payment.

use super::{Finding, Handled, PollError, PollOrderStore, Poller};
use foxrelay_shared::clock::Clock;
use foxrelay_shared::events::EventPublisher;
use foxrelay_shared::foxreload::Supplier;
use foxrelay_shared::foxreload::SupplierOrder;
use foxrelay_shared::placement::{Found, Posted, pay};
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::{AlertSlot, OrderRecord, SupplierProblem};
use tokio::time::Instant;
use tracing::info;

impl<S, Q, F, P, C> Poller<S, Q, F, P, C>
where
    S: PollOrderStore,
    Q: PollQueue,
    F: Supplier,
    P: EventPublisher,
    C: Clock,
{
    /// Finishes an order create-order left undecided, under the same
    /// never-buy-twice rules, then polls it on.
    pub(super) async fn settle(
        &self,
        order: OrderRecord,
        seq: u64,
        deadline: Instant,
    ) -> Result<Handled, PollError> {
        let found = self
            .options
            .reconcile
            .run(&self.store, &self.supplier, &self.clock, &order, deadline)
            .await?;
        let found = match found {
            // Its client never had an answer: nothing is bought for it now.
            Found::Nothing if order.handed_over => return self.not_placed(&order).await,
            Found::Nothing if !order.posts_recorded => Found::Ambiguous {
                problem: foxrelay_shared::placement::undecided(
                    "placed by an earlier version that did not record when it POSTed: \
                     no match is found, and buying again is left to an operator",
                ),
                candidates: Vec::new(),
            },
            Found::Nothing if order.posts_that_may_have_bought() < self.options.max_posts => {
                self.buy_again(&order, deadline).await?
            }
            other => other,
        };
        match found {
            Found::Claimed(supplier_order) => {
                info!(supplier_order_id = %supplier_order.id, "reconciliation settled the order");
                let supplier_order = if self.options.auto_pay {
                    self.pay(&order, supplier_order).await
                } else {
                    supplier_order
                };
                self.next_link(&order, seq, Finding::Read(supplier_order))
                    .await
            }
            Found::Moved => self.next_link(&order, seq, Finding::Nothing).await,
            Found::Nothing => {
                let problem = foxrelay_shared::placement::undecided(
                    "no matching FoxReload order and no attempt left",
                );
                self.next_link(&order, seq, Finding::problem(problem)).await
            }
            Found::Undecided(problem) => {
                self.next_link(&order, seq, Finding::problem(problem)).await
            }
            Found::Ambiguous { problem, .. } => {
                self.alert_once(
                    &order,
                    AlertSlot::Reconcile,
                    "reconcile_ambiguous",
                    "FoxReload orders fit this order that cannot be told apart from another buyer's: \
                     nothing is claimed or bought until an operator settles it",
                    &problem,
                )
                .await;
                self.next_link(&order, seq, Finding::problem(problem)).await
            }
        }
    }

    /// Pays `found` (if it is `active`) and returns it with FoxReload's
    /// status after a payment it confirmed: the next link records that
    /// status, and a payment that went straight to an end is finished by
    /// the next poll, with its codes.
    pub(super) async fn pay(&self, order: &OrderRecord, mut found: SupplierOrder) -> SupplierOrder {
        if let Some(status) = pay(
            &self.store,
            &self.supplier,
            &self.clock,
            &order.order_id,
            &found,
        )
        .await
        {
            found.status = status;
        }
        found
    }

    /// A new POST for an order reconciliation found nowhere.
    async fn buy_again(&self, order: &OrderRecord, deadline: Instant) -> Result<Found, PollError> {
        let reconcile = &self.options.reconcile;
        if !reconcile.time_left(deadline) {
            return Ok(Found::Undecided(foxrelay_shared::placement::undecided(
                "no time left to buy again",
            )));
        }
        let request = order.supplier_request(self.options.is_mock);
        let mut posts = order.posted_at.len();
        let posted = reconcile
            .post(
                &self.store,
                &self.supplier,
                &self.clock,
                &order.order_id,
                &request,
                &mut posts,
                None,
            )
            .await?;
        Ok(match posted {
            Posted::Claimed(created) => Found::Claimed(created),
            Posted::Moved => Found::Moved,
            Posted::NotSent => Found::Undecided(foxrelay_shared::placement::undecided(
                "the store was too slow to record a POST before sending it",
            )),
            Posted::SlotVoided => Found::Undecided(foxrelay_shared::placement::undecided(
                "a cut of the FoxReload budget voided the POST's slot before it was sent",
            )),
            // Left for the next reconciliation to find one of ours.
            Posted::TakenByAnother => Found::Undecided(foxrelay_shared::placement::undecided(
                "the new order was claimed by another of ours",
            )),
            Posted::Failed(error) => Found::Undecided(SupplierProblem::from(&error)),
        })
    }
}
