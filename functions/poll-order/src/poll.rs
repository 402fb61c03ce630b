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

use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::event::delivered;
use foxrelay_shared::domain::schedule::{MAX_DELAY, Next, Schedule};
use foxrelay_shared::domain::{OrderStatus, PollKind, PollMessage};
use foxrelay_shared::events::{EventPublisher, OpsAlert};
use foxrelay_shared::foxreload::{Supplier, SupplierError, SupplierOrder};
use foxrelay_shared::notify::{NotifyError, notify};
use foxrelay_shared::placement::{Found, Posted, ReconcileOptions, pay};
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::{
    AlertSlot, NotifyMarks, OrderAlerts, OrderRecord, Persisted, PlacementStore, PollChain,
    PollRecord, StoreError, SupplierProblem, Terminal,
};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

/// How the chain behaves; every figure has a default.
#[derive(Clone, Debug)]
pub struct PollOptions {
    pub schedule: Schedule,
    /// How long a worker holds a link: longer than the function's timeout.
    pub lease: Duration,
    /// Failed polls in a row before operations are alerted.
    pub error_bound: u32,
    /// POSTs an order may have in all (create-order's included) before
    /// poll-order stops buying again for it.
    pub max_posts: usize,
    /// How often an order that stays ambiguous is alerted again.
    pub realert_after: Duration,
    pub is_mock: bool,
    /// Pay orders this worker settles (as create-order does).
    pub auto_pay: bool,
    /// Time one message may take, well inside the visibility timeout.
    pub message_budget: Duration,
    pub reconcile: ReconcileOptions,
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
        }
    }
}

/// What became of a message that was handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// A duplicate, a stale link, or an order already notified.
    Dropped(&'static str),
    /// Polled; the chain goes on.
    Continued { next_seq: u64 },
    /// The order ended and its event was published.
    Finished(OrderStatus),
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
/// notified, and claim alerts about orders (the template's
/// `PollOrderFunction` grants no more).
pub trait PollOrderStore: PlacementStore + PollChain + NotifyMarks + OrderAlerts {}

impl<T: PlacementStore + PollChain + NotifyMarks + OrderAlerts> PollOrderStore for T {}

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
        tokio::time::timeout(
            self.options.message_budget,
            tracing::Instrument::instrument(self.link(message, deadline), span),
        )
        .await
        .map_err(|_| PollError::OutOfTime)?
    }

    async fn link(&self, message: PollMessage, deadline: Instant) -> Result<Handled, PollError> {
        let order = self
            .store
            .order(&message.order_id)
            .await?
            .ok_or_else(|| PollError::UnknownOrder(message.order_id.clone()))?;
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

    /// Finishes an order create-order left undecided, under the same
    /// never-buy-twice rules, then polls it on.
    async fn settle(
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
            Found::Nothing if order.posted_at.len() < self.options.max_posts => {
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
    async fn pay(&self, order: &OrderRecord, mut found: SupplierOrder) -> SupplierOrder {
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
            // Left for the next reconciliation to find one of ours.
            Posted::TakenByAnother => Found::Undecided(foxrelay_shared::placement::undecided(
                "the new order was claimed by another of ours",
            )),
            Posted::Failed(error) => Found::Undecided(SupplierProblem::from(&error)),
        })
    }

    /// Sends an alert of `slot`'s kind about `order` unless one was sent
    /// within the re-alert interval.
    async fn alert_once(
        &self,
        order: &OrderRecord,
        slot: AlertSlot,
        kind: &str,
        message: &str,
        problem: &SupplierProblem,
    ) {
        let now = self.clock.now();
        let realert = match slot {
            AlertSlot::LongRunning => LONG_RUNNING_REALERT,
            _ => self.options.realert_after,
        };
        match self
            .store
            .claim_alert(&order.order_id, slot, now - realert, now)
            .await
        {
            Ok(true) => {
                let alert = OpsAlert::for_order(order, kind, message, Some(problem), now);
                if let Err(error) = self.publisher.publish_alert(&alert).await {
                    warn!(%error, "operations alert not sent");
                    if let Err(error) = self.store.release_alert(&order.order_id, slot, now).await {
                        warn!(%error, "alert claim not given back");
                    }
                }
            }
            Ok(false) => {}
            Err(error) => warn!(%error, "alert not claimed"),
        }
    }

    /// A poll that failed: counted, flagged past the bound, and the chain goes
    /// on (at least `Retry-After` later).
    async fn failed_poll(
        &self,
        order: &OrderRecord,
        seq: u64,
        error: &SupplierError,
    ) -> Result<Handled, PollError> {
        warn!(%error, "poll failed");
        let finding = Finding::Problem {
            problem: SupplierProblem::from(error),
            at_least: error.retry_after(),
        };
        self.next_link(order, seq, finding).await
    }

    /// Records what link `seq` found and sends the next link, or abandons
    /// the order past the horizon.
    async fn next_link(
        &self,
        order: &OrderRecord,
        seq: u64,
        finding: Finding,
    ) -> Result<Handled, PollError> {
        let (status, supplier_status, problem, at_least) = match finding {
            // An end read by a payment just made is `processing` here: the
            // next poll finishes the order with its codes.
            Finding::Read(found) => (
                Some(OrderStatus::open_from_supplier(&found.status)),
                Some(found.status.as_str().to_owned()),
                None,
                None,
            ),
            Finding::Nothing => (None, None, None, None),
            Finding::Problem { problem, at_least } => (None, None, Some(problem), at_least),
        };
        let now = self.clock.now();
        let age = age(order, now);
        let (nominal, delay) = match self.options.schedule.next(age, order.last_delay, unit()) {
            Next::Abandon if !paid(status.unwrap_or(order.status)) => {
                return self.abandon(order).await;
            }
            Next::Abandon => {
                // Paid for: its codes are never given up. Polled on at the
                // slow cap, and operations hear of it once a day.
                self.alert_once(
                    order,
                    AlertSlot::LongRunning,
                    "long_running",
                    "the order is paid and has not ended past the polling horizon; it is still polled",
                    &problem.clone().unwrap_or_else(|| {
                        foxrelay_shared::placement::undecided("past the polling horizon")
                    }),
                )
                .await;
                let slow = self.options.schedule.slow_cap;
                (slow, slow.max(at_least.unwrap_or_default()))
            }
            Next::Poll { nominal, delay } => (nominal, delay.max(at_least.unwrap_or_default())),
        };
        let delay = delay.min(MAX_DELAY);
        let consecutive_errors = if problem.is_some() {
            order.consecutive_errors + 1
        } else {
            0
        };
        let needs_attention = (consecutive_errors >= self.options.error_bound)
            .then(|| format!("{consecutive_errors} failed polls in a row"));
        if needs_attention.is_some() && order.needs_attention.is_none() {
            self.alert(
                order,
                "needs_attention",
                "FoxReload polls keep failing",
                &problem,
            )
            .await;
        }
        let next_seq = seq + 1;
        let kind = if status.is_none() && unsettled(order) {
            PollKind::Reconcile
        } else {
            PollKind::Poll
        };
        let record = PollRecord {
            status,
            supplier_status,
            error: problem,
            consecutive_errors,
            needs_attention,
            next_seq,
            next_due: now + delay,
            nominal_delay: nominal,
            now,
        };
        self.store
            .record_poll(&order.order_id, seq, &record)
            .await?;
        let message = PollMessage {
            order_id: order.order_id.clone(),
            seq: next_seq,
            kind,
        };
        if let Err(error) = self.queue.send(&message, delay).await {
            // The due time is stored: scan-stalled revives the chain.
            warn!(%error, "next poll message not sent");
        }
        Ok(Handled::Continued { next_seq })
    }

    /// Stores the order's end (codes first), then publishes.
    async fn finish(
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
        self.notify(stored).await
    }

    /// A handed-over create that reconciliation found nowhere: nothing was
    /// bought; the order ends `not_placed`, published.
    async fn not_placed(&self, order: &OrderRecord) -> Result<Handled, PollError> {
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
    async fn abandon(&self, order: &OrderRecord) -> Result<Handled, PollError> {
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
    async fn notify(&self, order: OrderRecord) -> Result<Handled, PollError> {
        notify(&self.store, &self.publisher, &order, self.clock.now()).await?;
        Ok(Handled::Finished(order.status))
    }

    async fn alert(
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

/// How often a paid order past the horizon is alerted again.
const LONG_RUNNING_REALERT: Duration = Duration::from_secs(24 * 3_600);

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
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}
