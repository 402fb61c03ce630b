//! One link of an order's polling chain.
//!
//! A poll message proceeds only if it is the chain's live link (its number is
//! the order's `pollSeq`) and no other worker holds it (a conditional write
//! with a lease): duplicates and stale messages are acknowledged without
//! calling FoxReload, so a chain never forks. The link records what it found
//! and moves the chain on in one conditional write, then sends the next
//! message; the due time is stored first, so a lost send is revived by
//! scan-stalled. A terminal order's codes and status are stored before
//! anything is published; the event is then published, and the order marked
//! notified.
//!
//! An order with a learned plan (chosen by create-order, stored on it) is
//! polled at the plan's times, then on the schedule's rails; every order
//! that ends adds what its polls saw to its product's summary (`learn`).
//!
//! `settle` reconciles, `next` moves the chain on, `end` stores and
//! publishes an end.

mod end;
mod learn;
mod next;
mod settle;

use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::budget::Priority;
use foxrelay_shared::domain::learning::Learning;
use foxrelay_shared::domain::schedule::Schedule;
use foxrelay_shared::domain::{OrderStatus, PollMessage};
use foxrelay_shared::events::EventPublisher;
use foxrelay_shared::foxreload::{Supplier, SupplierOrder};
use foxrelay_shared::governor::Asking;
use foxrelay_shared::notify::NotifyError;
use foxrelay_shared::placement::ReconcileOptions;
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::settings::EventCodes;
use foxrelay_shared::store::{
    NotifyMarks, OrderAlerts, OrderRecord, PlacementStore, PollChain, StoreError, SummaryStore,
    SupplierProblem,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// How the chain behaves; every figure has a default.
#[derive(Clone, Debug)]
pub struct PollOptions {
    pub schedule: Schedule,
    /// How long a worker holds a link: longer than the function's timeout.
    pub lease: Duration,
    /// Failed polls in a row before operations are alerted.
    pub error_bound: u32,
    /// POSTs an order may have in all (create-order's included) before
    /// poll-order stops buying again for it; those FoxReload refused with a
    /// `429` (sure to have made nothing) do not count.
    pub max_posts: usize,
    /// How often an order that stays ambiguous is alerted again.
    pub realert_after: Duration,
    pub is_mock: bool,
    /// Pay orders this worker settles (as create-order does).
    pub auto_pay: bool,
    /// Time one message may take, well inside the visibility timeout.
    pub message_budget: Duration,
    pub reconcile: ReconcileOptions,
    /// Learned polling: how summaries forget and are read.
    pub learning: Learning,
    /// Whether order events carry their codes (`ORDER_EVENT_CODES`).
    pub event_codes: EventCodes,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            schedule: Schedule::default(),
            lease: Duration::from_secs(60),
            error_bound: 10,
            max_posts: 5,
            realert_after: Duration::from_secs(3_600),
            is_mock: false,
            auto_pay: true,
            message_budget: foxrelay_shared::settings::POLL_MESSAGE_BUDGET,
            reconcile: ReconcileOptions::default(),
            learning: Learning::new(&Schedule::default(), Duration::from_secs(10), 20),
            event_codes: EventCodes::Included,
        }
    }
}

tokio::task_local! {
    /// Set once the link being handled has begun to move its chain on.
    static MOVING: Arc<AtomicBool>;
}

/// The link being handled begins to move its chain on: from here it
/// finishes, past the message budget if need be
/// ([`foxrelay_shared::settings::POLL_MOVE_GRACE`]).
fn moving_on() {
    let _ = MOVING.try_with(|moving| moving.store(true, Ordering::SeqCst));
}

/// What became of a message that was handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// A duplicate, a stale link, or an order already notified.
    Dropped(&'static str),
    /// Polled; the chain goes on.
    Continued { next_seq: u64 },
    /// The order ended and its event was published.
    Finished {
        status: OrderStatus,
        /// From the order's acceptance to its event published.
        time_to_notify: std::time::Duration,
        /// Completed with units missing and no item error.
        short: bool,
        /// The order's per-product figures.
        ended: foxrelay_shared::metrics::Ended,
    },
}

/// Why a message must be delivered again (or, past the redrive bound, land
/// in the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the message is not a poll message: {0}")]
    Unreadable(String),
    #[error("order {0} does not exist")]
    UnknownOrder(String),
    #[error("message {seq} is ahead of order {order_id}'s chain ({current})")]
    Ahead {
        order_id: String,
        seq: u64,
        current: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] foxrelay_shared::events::PublishError),
    #[error("the message took longer than its budget")]
    OutOfTime,
}

/// What poll-order's role may do with the store: settle placements
/// (reconciliation and payment), move the chain, store the end, mark it
/// notified, claim alerts about orders, and add to the products' summaries
/// (the template's `PollOrderFunction` grants no more).
pub trait PollOrderStore:
    PlacementStore + PollChain + NotifyMarks + OrderAlerts + SummaryStore
{
}

impl<T: PlacementStore + PollChain + NotifyMarks + OrderAlerts + SummaryStore> PollOrderStore
    for T
{
}

impl From<NotifyError> for PollError {
    fn from(error: NotifyError) -> Self {
        match error {
            NotifyError::Store(error) => Self::Store(error),
            NotifyError::Publish(error) => Self::Publish(error),
        }
    }
}

/// What one link found, for the next link to record.
enum Finding {
    /// FoxReload's order as it stands (after a payment made now).
    Read(SupplierOrder),
    /// Nothing new: another worker moved the order on.
    Nothing,
    /// A failed read or an unsettled reconciliation; the next link waits
    /// at least `at_least` (FoxReload's `Retry-After`).
    Problem {
        problem: SupplierProblem,
        at_least: Option<Duration>,
    },
}

impl Finding {
    fn problem(problem: SupplierProblem) -> Self {
        Self::Problem {
            problem,
            at_least: None,
        }
    }
}

/// The chain over its ports.
pub struct Poller<S, Q, F, P, C> {
    pub store: S,
    pub queue: Q,
    pub supplier: F,
    pub publisher: P,
    pub clock: C,
    pub options: PollOptions,
}

impl<S, Q, F, P, C> Poller<S, Q, F, P, C>
where
    S: PollOrderStore,
    Q: PollQueue,
    F: Supplier,
    P: EventPublisher,
    C: Clock,
{
    /// Handles one message body, within the message budget.
    pub async fn handle(&self, body: &str) -> Result<Handled, PollError> {
        let message =
            PollMessage::from_json(body).map_err(|e| PollError::Unreadable(e.to_string()))?;
        let span = tracing::info_span!("poll", order_id = %message.order_id, seq = message.seq);
        let deadline = Instant::now() + self.options.message_budget;
        let moving = Arc::new(AtomicBool::new(false));
        let link = MOVING.scope(
            moving.clone(),
            tracing::Instrument::instrument(self.link(message, deadline), span),
        );
        let mut link = std::pin::pin!(link);
        if let Ok(handled) = tokio::time::timeout_at(deadline, &mut link).await {
            return handled;
        }
        // Out of time. A link that has begun to move the chain on finishes
        // (its next message sent): cut between the two, the chain would
        // stand moved on with no message to carry it, and this one, come
        // again, would be stale. Any other is given up, nothing written.
        if !moving.load(Ordering::SeqCst) {
            return Err(PollError::OutOfTime);
        }
        tokio::time::timeout(foxrelay_shared::settings::POLL_MOVE_GRACE, link)
            .await
            .map_err(|_| PollError::OutOfTime)?
    }

    async fn link(&self, message: PollMessage, deadline: Instant) -> Result<Handled, PollError> {
        let order = self
            .store
            .order(&message.order_id)
            .await?
            .ok_or_else(|| PollError::UnknownOrder(message.order_id.clone()))?;
        // A slot waited for leaves time for the call itself: a payment (a
        // create's priority, which reaches far) may wait for one while the
        // message's time allows.
        let until = deadline
            .checked_sub(self.options.reconcile.call_budget)
            .unwrap_or(deadline);
        let asking = Asking {
            priority: priority(&order, self.clock.now(), self.options.schedule.stall_after),
            until: Some(until),
        };
        asking
            .scope(self.link_order(order, message, deadline))
            .await
    }

    async fn link_order(
        &self,
        order: OrderRecord,
        message: PollMessage,
        deadline: Instant,
    ) -> Result<Handled, PollError> {
        if order.status.is_terminal() {
            if order.notified_at.is_some() {
                return Ok(Handled::Dropped("order already notified"));
            }
            // Stored but never published (a crash or failed publish).
            return self.notify(order).await;
        }
        if message.seq < order.poll_seq {
            return Ok(Handled::Dropped("stale link"));
        }
        if message.seq > order.poll_seq {
            return Err(PollError::Ahead {
                order_id: order.order_id,
                seq: message.seq,
                current: order.poll_seq,
            });
        }
        let now = self.clock.now();
        if !self
            .store
            .claim_link(&order.order_id, message.seq, now + self.options.lease, now)
            .await?
        {
            return Ok(Handled::Dropped("duplicate link"));
        }
        // The order's state decides, not the message's kind: a reconcile
        // message may find the order settled by another worker meanwhile.
        if unsettled(&order) {
            return self.settle(order, message.seq, deadline).await;
        }
        let supplier_order_id = order.supplier_order_id.clone().unwrap_or_default();
        match self.supplier.get_order(&supplier_order_id).await {
            Ok(found) if found.status.is_terminal() => self.finish(order, &found).await,
            Ok(found) => {
                // Not paid yet, and not refused for good: create-order's
                // payment failed on the way, or never ran. Paying an order
                // that is no longer `active` is refused, so this cannot pay
                // twice.
                let found = if self.options.auto_pay && payment_due(&order, &found) {
                    self.pay(&order, found).await
                } else {
                    found
                };
                self.next_link(&order, message.seq, Finding::Read(found))
                    .await
            }
            Err(error) => self.failed_poll(&order, message.seq, &error).await,
        }
    }
}

/// Where an order's FoxReload calls stand in the stack's budget: its first
/// poll before the rest, an order past the stall threshold last.
fn priority(order: &OrderRecord, now: OffsetDateTime, stall_after: Duration) -> Priority {
    if age(order, now) >= stall_after {
        Priority::Stalled
    } else if order.poll_count == 0 {
        Priority::FirstPoll
    } else {
        Priority::Poll
    }
}

/// Whether an `active` supplier order should be paid now: its payment was
/// not refused for good (a refusal such as `BALANCE_NOT_ENOUGH` stands, and
/// the order is left to expire and be published as cancelled).
fn payment_due(order: &OrderRecord, found: &SupplierOrder) -> bool {
    found.status == foxrelay_shared::foxreload::SupplierStatus::Active
        && order
            .payment_error
            .as_ref()
            .is_none_or(|refusal| !matches!(refusal.kind.as_str(), "rejected" | "unauthorized"))
}

/// Whether FoxReload holds our money for the order: paid, or fulfilling.
fn paid(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Paid | OrderStatus::Processing)
}

/// Whether the order still has no supplier order of its own.
fn unsettled(order: &OrderRecord) -> bool {
    matches!(
        order.status,
        OrderStatus::Creating | OrderStatus::Reconciling
    ) || order.supplier_order_id.is_none()
}

fn age(order: &OrderRecord, now: OffsetDateTime) -> Duration {
    (now - order.created_at).try_into().unwrap_or_default()
}

/// A random number in `[0, 1)` for the schedule's jitter.
fn unit() -> f64 {
    foxrelay_shared::plans::random_unit()
}
