//! The next link: what this one found recorded, the chain moved on in one
//! conditional write, the next message sent (or the order abandoned past
//! the horizon, unless it is paid).

use super::{
    Finding, Handled, PollError, PollOrderStore, Poller, age, moving_on, paid, unit, unsettled,
};
use foxrelay_shared::domain::learning::{NextPoll, next_poll};
use foxrelay_shared::domain::schedule::{MAX_DELAY, Next};
use foxrelay_shared::domain::{OrderStatus, PollKind, PollMessage};
use foxrelay_shared::events::OpsAlert;
use foxrelay_shared::foxreload::{SupplierError, THROTTLED};
use foxrelay_shared::store::{AlertSlot, OrderRecord, PollRecord, SupplierProblem};
use std::time::Duration;
use time::OffsetDateTime;
use tracing::{info, warn};

/// How often a paid order past the horizon is alerted again.
const LONG_RUNNING_REALERT: Duration = Duration::from_secs(24 * 3_600);
use foxrelay_shared::clock::Clock;
use foxrelay_shared::events::EventPublisher;
use foxrelay_shared::foxreload::Supplier;
use foxrelay_shared::queue::PollQueue;

impl<S, Q, F, P, C> Poller<S, Q, F, P, C>
where
    S: PollOrderStore,
    Q: PollQueue,
    F: Supplier,
    P: EventPublisher,
    C: Clock,
{
    /// Sends an alert of `slot`'s kind about `order` unless one was sent
    /// within the re-alert interval.
    pub(super) async fn alert_once(
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
    pub(super) async fn failed_poll(
        &self,
        order: &OrderRecord,
        seq: u64,
        error: &SupplierError,
    ) -> Result<Handled, PollError> {
        if !matches!(error, SupplierError::Throttled { .. }) {
            warn!(%error, "poll failed");
        }
        let finding = Finding::Problem {
            problem: SupplierProblem::from(error),
            at_least: error.retry_after(),
        };
        self.next_link(order, seq, finding).await
    }

    /// Records what link `seq` found and sends the next link, or abandons
    /// the order past the horizon.
    pub(super) async fn next_link(
        &self,
        order: &OrderRecord,
        seq: u64,
        finding: Finding,
    ) -> Result<Handled, PollError> {
        if let Finding::Problem { problem, at_least } = &finding
            && problem.kind == THROTTLED
        {
            return self.held_back(order, seq, *at_least).await;
        }
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
        let NextPoll { next, step } = next_poll(
            order.poll_plan.as_ref().map(|planned| &planned.plan),
            order.plan_step.map(|s| s as usize),
            &self.options.schedule,
            (now - order.clock_start()).try_into().unwrap_or_default(),
            age,
            order.last_delay,
            unit(),
        );
        let (nominal, delay) = match next {
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
            // Past the plan, the last planned poll made stays: the plan is
            // never started again.
            plan_step: step.and_then(|s| u32::try_from(s).ok()).or(order.plan_step),
            polled: true,
            now,
        };
        self.move_on(order, seq, &record, kind, delay).await
    }

    /// Stores what link `seq` did and sends the next link, `delay` later.
    async fn move_on(
        &self,
        order: &OrderRecord,
        seq: u64,
        record: &PollRecord,
        kind: PollKind,
        delay: Duration,
    ) -> Result<Handled, PollError> {
        moving_on();
        self.store.record_poll(&order.order_id, seq, record).await?;
        let message = PollMessage {
            order_id: order.order_id.clone(),
            seq: record.next_seq,
            kind,
        };
        if let Err(error) = self.queue.send(&message, delay).await {
            // The due time is stored: scan-stalled revives the chain.
            warn!(%error, "next poll message not sent");
        }
        Ok(Handled::Continued {
            next_seq: record.next_seq,
        })
    }

    /// A link whose FoxReload call the stack's budget held back (others
    /// came first): the chain goes on after `wait` and a little jitter,
    /// with nothing counted: no poll, no failure, the plan where it was.
    async fn held_back(
        &self,
        order: &OrderRecord,
        seq: u64,
        wait: Option<Duration>,
    ) -> Result<Handled, PollError> {
        let now = self.clock.now();
        // Past the horizon, an order not paid for ends as it would have:
        // held back or not, it is never left unnotified.
        if age(order, now) >= self.options.schedule.horizon && !paid(order.status) {
            return self.abandon(order).await;
        }
        // Spread over up to twice the wait (at most HELD_BACK_MOST more):
        // links held back together (a batch of messages that came at once)
        // come back a few at a time, at about the pace the budget takes
        // them, not in the same bunch again.
        let wait = wait.unwrap_or(HELD_BACK).max(held_back_wait(order, now));
        let delay = (wait + wait.min(HELD_BACK_MOST).mul_f64(unit())).min(MAX_DELAY);
        info!(
            wait_ms = delay.as_millis() as u64,
            "poll held back by the FoxReload budget"
        );
        let next_seq = seq + 1;
        let record = PollRecord {
            status: None,
            supplier_status: None,
            error: order.last_error.clone(),
            consecutive_errors: order.consecutive_errors,
            needs_attention: order.needs_attention.clone(),
            next_seq,
            next_due: now + delay,
            nominal_delay: order.last_delay.unwrap_or(delay),
            plan_step: order.plan_step,
            polled: false,
            now,
        };
        let kind = if unsettled(order) {
            PollKind::Reconcile
        } else {
            PollKind::Poll
        };
        self.move_on(order, seq, &record, kind, delay).await
    }
}

/// How long a link held back at `now` waits at least before it asks again:
/// a quarter of the time the order has been held back since its poll was
/// first due (its last poll and the delay chosen then; its creation, never
/// polled), from [`HELD_BACK`] to [`HELD_BACK_MOST`]. A backlog of
/// held-back polls does not go round every second, yet none waits long
/// once the budget has room again (a wait grown to half a minute left
/// the budget idle while polls slept); and a poll made starts the count
/// again, so an order held back once in a while over a long life is not
/// kept waiting longer for it.
fn held_back_wait(order: &OrderRecord, now: OffsetDateTime) -> Duration {
    let first_due = match (order.last_polled_at, order.last_delay) {
        (Some(polled), Some(delay)) => time::Duration::try_from(delay)
            .ok()
            .and_then(|delay| polled.checked_add(delay))
            .unwrap_or(polled),
        (Some(polled), None) => polled,
        (None, _) => order.created_at,
    };
    let held: Duration = (now - first_due).try_into().unwrap_or_default();
    (held / 4).clamp(HELD_BACK, HELD_BACK_MOST)
}

/// The least a held-back link waits (SQS delays are whole seconds); as much
/// again at most is added at random.
const HELD_BACK: Duration = Duration::from_secs(1);

/// The longest a held-back link waits (before the random part), however
/// long it was held back, unless the budget says its next slot is further.
const HELD_BACK_MOST: Duration = Duration::from_secs(8);
