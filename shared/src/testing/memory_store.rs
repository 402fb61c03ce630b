//! The order store in memory, for the fast test tier. It keeps every
//! condition the DynamoDB adapter writes, and what DynamoDB keeps of each
//! value (milliseconds for instants compared in conditions, whole seconds
//! for a key's expiry), so a flow behaves the same on either: the contract
//! suite (`testing::contract`) runs the same cases against both.
//!
//! What it does not model, so what the fast tier cannot show:
//! - items of earlier layouts (legacy codes, orders without POST records),
//!   unreadable items, and TTL deletions (an expired key stays until it is
//!   claimed again, as DynamoDB allows);
//! - the pending index's lag: DynamoDB's index is eventually consistent,
//!   this one is not (reconciliation missing an order created a moment
//!   ago, or the sweep seeing one just notified, is the integration
//!   tier's);
//! - a last page exactly full: DynamoDB may hand back a cursor to an empty
//!   page, this store does not (callers take both);
//! - a write that committed in part: [`MemoryStore::fail`] makes a whole
//!   method fail as an unavailable store would, changing nothing; a
//!   persist cut between its transactions, or one that committed but
//!   failed reading the order back, is tested against moto.

use crate::domain::OrderStatus;
use crate::domain::event::DeliveredCodeRecord;
use crate::domain::learning::{Contribution, Summary};
use crate::domain::reconcile::ClockOffset;
use crate::store::{
    AlertSlot, Begin, Claim, Ended, IdempotencyClaim, IdempotencyRecord, IdempotencyStore,
    NotifyMarks, OrderAlerts, OrderReader, OrderRecord, PendingPage, Persisted, PlacementStore,
    PollChain, PollRecord, StackAlerts, StoreError, StoredResponse, SummaryReader, SummaryStore,
    SupplierProblem, SupplierState, SweepStore, Terminal, missing_codes, pending_sort_key,
    utc_text,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::OffsetDateTime;

/// An instant as DynamoDB keeps one stored in epoch milliseconds.
pub fn millis(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.unix_timestamp_nanos();
    OffsetDateTime::from_unix_timestamp_nanos(nanos - nanos.rem_euclid(1_000_000))
        .expect("a truncated instant is in range")
}

/// A duration as kept in whole milliseconds.
fn whole_ms(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

/// One order item and what it carries beyond the record.
#[derive(Clone, Debug)]
struct StoredOrder {
    record: OrderRecord,
    /// In the pending index.
    pending: bool,
    /// Whether a link was ever claimed (`claimedSeq` exists).
    link_claimed: bool,
    /// The alert slots other than the stall one (kept on the record).
    alerted: HashMap<&'static str, OffsetDateTime>,
    unreadable_alerted: bool,
}

impl StoredOrder {
    fn alert(&self, slot: AlertSlot) -> Option<OffsetDateTime> {
        match slot {
            AlertSlot::Stall => self.record.stall_alerted_at,
            other => self.alerted.get(slot_name(other)).copied(),
        }
    }

    fn set_alert(&mut self, slot: AlertSlot, at: Option<OffsetDateTime>) {
        match (slot, at) {
            (AlertSlot::Stall, at) => self.record.stall_alerted_at = at,
            (other, Some(at)) => {
                self.alerted.insert(slot_name(other), at);
            }
            (other, None) => {
                self.alerted.remove(slot_name(other));
            }
        }
    }

    fn still_creating(&self) -> bool {
        matches!(
            self.record.status,
            OrderStatus::Creating | OrderStatus::Reconciling
        )
    }

    /// `creating`, with `posts` POSTs recorded: as a create settling it
    /// knows it.
    fn as_the_create_knows(&self, posts: usize) -> bool {
        let counted = if self.record.posts_recorded {
            self.record.posted_at.len() == posts
        } else {
            posts == 0
        };
        self.record.status == OrderStatus::Creating && counted
    }
}

fn slot_name(slot: AlertSlot) -> &'static str {
    match slot {
        AlertSlot::Stall => "stall",
        AlertSlot::Reconcile => "reconcile",
        AlertSlot::LongRunning => "longRunning",
        AlertSlot::ChainStuck => "chainStuck",
        AlertSlot::NotNotified => "notNotified",
    }
}

/// A new order as `begin` writes it: only the fields an intent has, each
/// kept as DynamoDB keeps it.
fn as_begun(order: &OrderRecord) -> OrderRecord {
    OrderRecord {
        posted_at: order.posted_at.iter().copied().map(millis).collect(),
        posts_recorded: true,
        next_poll_due_at: order.next_poll_due_at.map(millis),
        claimed_seq: 0,
        lease_until: None,
        poll_count: 0,
        last_delay: None,
        last_polled_at: None,
        consecutive_errors: 0,
        needs_attention: None,
        handed_over: false,
        items: Vec::new(),
        code_count: 0,
        terminal_at: None,
        notified_at: None,
        stall_alerted_at: None,
        revivals: 0,
        revived_at_polls: None,
        paid_at: None,
        last_seen_open_at: None,
        ..order.clone()
    }
}

#[derive(Debug, Default)]
struct State {
    orders: BTreeMap<String, StoredOrder>,
    /// Supplier order id → our order id.
    claims: BTreeMap<String, String>,
    keys: BTreeMap<String, IdempotencyRecord>,
    codes: BTreeMap<String, Vec<DeliveredCodeRecord>>,
    clock: Option<ClockOffset>,
    stack_alerts: BTreeMap<String, OffsetDateTime>,
    sweep_cursor: Option<String>,
    summaries: BTreeMap<String, Summary>,
    budget: Option<crate::domain::budget::Shared>,
    /// When the stack's next FoxReload request is due.
    next_due: Option<Duration>,
    /// How many FoxReload slots were granted.
    granted: u64,
    /// How many of them were busy ([`crate::domain::budget::busy`]).
    busy: u64,
    /// When the limiter's current run began.
    run_from: Option<Duration>,
    /// When the stack last began sending after a quiet spell.
    sending_from: Option<Duration>,
    /// The end of the slots creates booked, and of the span the last cut
    /// kept for the creates it voided.
    creates_due: Option<Duration>,
    creates_until: Option<Duration>,
    /// Supplier order id → our order that claims it just before anyone
    /// next asks whether it is claimed (a race, played on cue).
    claim_on_look: BTreeMap<String, String>,
}

/// The in-memory adapter of every store port. Clones share the same items,
/// as two containers share one table.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// Method name → failures left to answer.
    faults: Arc<Mutex<HashMap<&'static str, u32>>>,
    /// Method name → how long each call takes (tokio time).
    delays: Arc<Mutex<HashMap<&'static str, Duration>>>,
    /// Slots asked for that others win first, as a race among many
    /// containers would (answered `contended`, nothing taken).
    races: Arc<Mutex<u32>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` asks for a slot lose a race to other
    /// containers: no slot, `contended`, the limiter as it stands.
    pub fn race(&self, times: u32) {
        *self.races.lock().expect("race count") = times;
    }

    /// Makes the next `times` calls of `method` (a port method's name, e.g.
    /// `"persist_terminal"`) fail as an unavailable store, changing nothing.
    pub fn fail(&self, method: &'static str, times: u32) {
        self.faults
            .lock()
            .expect("fault table")
            .insert(method, times);
    }

    /// Makes every call of `method` take `by` (tokio time, so a paused
    /// test clock moves on) before it acts: a slow store.
    pub fn slow(&self, method: &'static str, by: Duration) {
        self.delays.lock().expect("delay table").insert(method, by);
    }

    /// Every order stored, by id (for assertions).
    pub fn orders(&self) -> Vec<OrderRecord> {
        self.state()
            .orders
            .values()
            .map(|o| o.record.clone())
            .collect()
    }

    /// Which of our orders holds each claimed supplier order.
    pub fn claims(&self) -> BTreeMap<String, String> {
        self.state().claims.clone()
    }

    /// Makes `order_id` claim `supplier_order_id` (as active) just before
    /// the next [`PlacementStore::is_claimed`] of it: another worker's claim
    /// landing in the middle of a reconciliation.
    pub fn claim_on_look(&self, supplier_order_id: &str, order_id: &str) {
        self.state()
            .claim_on_look
            .insert(supplier_order_id.to_owned(), order_id.to_owned());
    }

    /// Whether the order is in the pending index.
    pub fn is_pending(&self, order_id: &str) -> bool {
        self.state()
            .orders
            .get(order_id)
            .is_some_and(|order| order.pending)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("store state")
    }

    /// The state, after `method`'s delay if it is [`slow`](Self::slow),
    /// unless it is set to fail now.
    async fn enter(&self, method: &'static str) -> Result<MutexGuard<'_, State>, StoreError> {
        let delay = self
            .delays
            .lock()
            .expect("delay table")
            .get(method)
            .copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut faults = self.faults.lock().expect("fault table");
        if let Some(left) = faults.get_mut(method)
            && *left > 0
        {
            *left -= 1;
            return Err(StoreError::Unavailable {
                operation: method,
                source: "injected store failure".into(),
            });
        }
        drop(faults);
        Ok(self.state())
    }
}

/// Claims `supplier_order_id` for `order_id` in `state`, as the port's
/// conditional write does.
fn claim_in(
    state: &mut State,
    order_id: &str,
    supplier_order_id: &str,
    supplier: &SupplierState,
    now: OffsetDateTime,
) -> Claim {
    if state.claims.contains_key(supplier_order_id) {
        return Claim::TakenByAnother;
    }
    let Some(order) = state
        .orders
        .get_mut(order_id)
        .filter(|o| o.record.supplier_order_id.is_none() && o.still_creating())
    else {
        return Claim::OrderMoved;
    };
    let record = &mut order.record;
    record.supplier_order_id = Some(supplier_order_id.to_owned());
    record.supplier_status = Some(supplier.said().to_owned());
    if let Some(status) = supplier.status() {
        record.status = status;
    }
    record.updated_at = now;
    record.last_error = None;
    state
        .claims
        .insert(supplier_order_id.to_owned(), order_id.to_owned());
    Claim::Claimed
}

fn conflict(operation: &'static str, id: &str) -> StoreError {
    StoreError::Conflict {
        operation,
        order_id: id.to_owned(),
    }
}

impl OrderReader for MemoryStore {
    async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let state = self.enter("order").await?;
        Ok(state.orders.get(order_id).map(|o| o.record.clone()))
    }

    async fn codes(&self, order_id: &str) -> Result<Vec<DeliveredCodeRecord>, StoreError> {
        let state = self.enter("codes").await?;
        Ok(state.codes.get(order_id).cloned().unwrap_or_default())
    }
}

impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        order: &OrderRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Begin, StoreError> {
        let mut state = self.enter("begin").await?;
        if let Some(claim) = claim
            && let Some(held) = state.keys.get(&claim.key)
            && held.expires_at.unix_timestamp() >= order.created_at.unix_timestamp()
        {
            return Ok(Begin::KeyTaken(held.clone()));
        }
        if state.orders.contains_key(&order.order_id) {
            return Err(conflict("begin order", &order.order_id));
        }
        let record = as_begun(order);
        state.orders.insert(
            order.order_id.clone(),
            StoredOrder {
                pending: !record.status.is_terminal(),
                record,
                link_claimed: false,
                alerted: HashMap::new(),
                unreadable_alerted: false,
            },
        );
        if let Some(claim) = claim {
            state.keys.insert(
                claim.key.clone(),
                IdempotencyRecord {
                    key: claim.key.clone(),
                    fingerprint: claim.fingerprint.clone(),
                    order_id: order.order_id.clone(),
                    holder: claim.holder.clone(),
                    locked_until: millis(claim.locked_until),
                    expires_at: OffsetDateTime::from_unix_timestamp(
                        claim.expires_at.unix_timestamp(),
                    )
                    .expect("whole seconds are in range"),
                    response: None,
                },
            );
        }
        Ok(Begin::Started)
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let state = self.enter("idempotency").await?;
        Ok(state.keys.get(key).cloned())
    }

    async fn take_over(
        &self,
        record: &IdempotencyRecord,
        holder: &str,
        locked_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("take_over").await?;
        let Some(held) = state.keys.get_mut(&record.key) else {
            return Ok(false);
        };
        if held.holder != record.holder
            || held.locked_until >= millis(now)
            || held.response.is_some()
        {
            return Ok(false);
        }
        held.holder = holder.to_owned();
        held.locked_until = millis(locked_until);
        Ok(true)
    }

    async fn finish(
        &self,
        key: &str,
        holder: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("finish").await?;
        match state.keys.get_mut(key) {
            Some(held) if held.holder == holder && held.response.is_none() => {
                held.response = Some(response.clone());
                Ok(())
            }
            _ => Err(conflict("finish idempotency key", key)),
        }
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let mut state = self.enter("release").await?;
        if state
            .keys
            .get(key)
            .is_some_and(|held| held.holder == holder && held.response.is_none())
        {
            state.keys.remove(key);
        }
        Ok(())
    }
}

impl PlacementStore for MemoryStore {
    async fn record_post(
        &self,
        order_id: &str,
        seen: usize,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("record_post").await?;
        let Some(order) = state.orders.get_mut(order_id) else {
            return Ok(false);
        };
        if order.record.supplier_order_id.is_some()
            || !order.still_creating()
            || !order.record.posts_recorded
            || order.record.posted_at.len() != seen
        {
            return Ok(false);
        }
        order.record.posted_at.push(millis(at));
        order.record.updated_at = at;
        Ok(true)
    }

    async fn mark_posts_known(&self, order_id: &str, known: usize) -> Result<(), StoreError> {
        let mut state = self.enter("mark_posts_known").await?;
        if let Some(order) = state.orders.get_mut(order_id)
            && order.record.posts_known < known
        {
            order.record.posts_known = known;
        }
        Ok(())
    }

    async fn mark_post_refused(&self, order_id: &str, index: usize) -> Result<(), StoreError> {
        let mut state = self.enter("mark_post_refused").await?;
        if let Some(order) = state.orders.get_mut(order_id)
            && let Err(at) = order.record.posts_refused.binary_search(&index)
        {
            order.record.posts_refused.insert(at, index);
        }
        Ok(())
    }

    async fn is_claimed(&self, supplier_order_id: &str) -> Result<bool, StoreError> {
        let mut state = self.enter("is_claimed").await?;
        if let Some(order_id) = state.claim_on_look.remove(supplier_order_id) {
            let now = state
                .orders
                .get(&order_id)
                .map_or(OffsetDateTime::UNIX_EPOCH, |o| o.record.updated_at);
            let active = SupplierState::claimed(&crate::foxreload::SupplierStatus::Active);
            claim_in(&mut state, &order_id, supplier_order_id, &active, now);
        }
        Ok(state.claims.contains_key(supplier_order_id))
    }

    async fn claim_supplier_order(
        &self,
        order_id: &str,
        supplier_order_id: &str,
        supplier: &SupplierState,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let mut state = self.enter("claim_supplier_order").await?;
        Ok(claim_in(
            &mut state,
            order_id,
            supplier_order_id,
            supplier,
            now,
        ))
    }

    async fn record_payment(
        &self,
        order_id: &str,
        supplier: Option<&SupplierState>,
        refusal: Option<&SupplierProblem>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("record_payment").await?;
        let Some(order) = state
            .orders
            .get_mut(order_id)
            .filter(|o| o.record.supplier_order_id.is_some() && !o.record.status.is_terminal())
        else {
            return Err(conflict("record payment", order_id));
        };
        let record = &mut order.record;
        record.updated_at = now;
        if let Some(supplier) = supplier {
            record.supplier_status = Some(supplier.said().to_owned());
            record.paid_at = record.paid_at.or(Some(millis(now)));
            if let Some(status) = supplier.status() {
                record.status = status;
            }
        }
        if let Some(problem) = refusal {
            record.payment_error = Some(problem.clone());
        }
        Ok(())
    }

    async fn mark_not_placed(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("mark_not_placed").await?;
        let Some(order) = state
            .orders
            .get_mut(order_id)
            .filter(|o| o.as_the_create_knows(posts))
        else {
            return Err(conflict("mark order not placed", order_id));
        };
        order.record.status = OrderStatus::NotPlaced;
        order.record.last_error = Some(problem.clone());
        order.record.updated_at = now;
        order.pending = false;
        Ok(())
    }

    async fn mark_reconciling(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("mark_reconciling").await?;
        let Some(order) = state
            .orders
            .get_mut(order_id)
            .filter(|o| o.as_the_create_knows(posts))
        else {
            return Err(conflict("mark order reconciling", order_id));
        };
        order.record.status = OrderStatus::Reconciling;
        order.record.last_error = Some(problem.clone());
        order.record.updated_at = now;
        Ok(())
    }

    async fn schedule_poll(
        &self,
        order_id: &str,
        seq: u64,
        due_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("schedule_poll").await?;
        let Some(order) = state
            .orders
            .get_mut(order_id)
            .filter(|o| o.record.poll_seq < seq)
        else {
            return Err(conflict("schedule poll", order_id));
        };
        order.record.poll_seq = seq;
        order.record.next_poll_due_at = Some(millis(due_at));
        order.record.updated_at = now;
        Ok(())
    }

    async fn clock_offset(&self) -> Result<Option<ClockOffset>, StoreError> {
        Ok(self.enter("clock_offset").await?.clock)
    }

    async fn save_clock_offset(
        &self,
        measure: &ClockOffset,
        stale_after: Duration,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("save_clock_offset").await?;
        let kept = ClockOffset {
            offset: time::Duration::milliseconds(measure.offset.whole_milliseconds() as i64),
            uncertainty: whole_ms(measure.uncertainty),
            sampled_at: millis(measure.sampled_at),
        };
        let replace = match state.clock {
            None => true,
            Some(stored) => {
                stored.uncertainty >= kept.uncertainty
                    || stored.sampled_at < millis(measure.sampled_at - stale_after)
            }
        };
        if replace {
            state.clock = Some(kept);
        }
        Ok(())
    }

    async fn unsettled_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let state = self.enter("unsettled_between").await?;
        let (low, high) = (utc_text(from), format!("{}~", utc_text(to)));
        let mut found: Vec<(String, OrderRecord)> = state
            .orders
            .values()
            .filter(|o| o.pending && o.still_creating() && o.record.supplier_order_id.is_none())
            .map(|o| (pending_sort_key(&o.record), o.record.clone()))
            .filter(|(sort, _)| *sort >= low && *sort <= high)
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().map(|(_, order)| order).collect())
    }
}

impl PollChain for MemoryStore {
    async fn claim_link(
        &self,
        order_id: &str,
        seq: u64,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("claim_link").await?;
        let Some(order) = state.orders.get_mut(order_id) else {
            return Ok(false);
        };
        let record = &order.record;
        let free = !order.link_claimed
            || record.claimed_seq < seq
            || (record.claimed_seq == seq && record.lease_until.is_some_and(|l| l < millis(now)));
        if record.poll_seq != seq || !free {
            return Ok(false);
        }
        order.link_claimed = true;
        order.record.claimed_seq = seq;
        order.record.lease_until = Some(millis(lease_until));
        Ok(true)
    }

    async fn record_poll(
        &self,
        order_id: &str,
        seq: u64,
        poll: &PollRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("record_poll").await?;
        let Some(order) = state
            .orders
            .get_mut(order_id)
            .filter(|o| o.link_claimed && o.record.claimed_seq == seq && o.record.poll_seq == seq)
        else {
            return Err(conflict("record poll", order_id));
        };
        let record = &mut order.record;
        record.poll_seq = poll.next_seq;
        record.next_poll_due_at = Some(millis(poll.next_due));
        record.last_delay = Some(whole_ms(poll.nominal_delay));
        if poll.polled {
            record.poll_count += 1;
            record.last_polled_at = Some(millis(poll.now));
        }
        record.consecutive_errors = poll.consecutive_errors;
        record.updated_at = poll.now;
        if let Some(status) = poll.status {
            record.status = status;
            record.last_seen_open_at = Some(millis(poll.now));
        }
        if let Some(supplier_status) = &poll.supplier_status {
            record.supplier_status = Some(supplier_status.clone());
        }
        record.plan_step = poll.plan_step;
        record.last_error = poll.error.clone();
        record.needs_attention = poll.needs_attention.clone();
        Ok(())
    }

    async fn persist_terminal(
        &self,
        order: &OrderRecord,
        terminal: &Terminal,
    ) -> Result<Ended, StoreError> {
        let mut state = self.enter("persist_terminal").await?;
        let Some(stored) = state.orders.get(&order.order_id) else {
            return Err(conflict("persist terminal status", &order.order_id));
        };
        if stored.record.status.is_terminal() {
            return Ok(Ended {
                persisted: Persisted::AlreadyTerminal,
                order: stored.record.clone(),
            });
        }
        let stored = state.codes.entry(order.order_id.clone()).or_default();
        let (missing, unlisted) = missing_codes(stored, &terminal.codes);
        stored.extend(missing);
        let count = stored.len() as u32;
        let record = &mut state
            .orders
            .get_mut(&order.order_id)
            .expect("checked above")
            .record;
        record.status = terminal.status;
        record.items = terminal.items.clone();
        record.code_count = count;
        record.terminal_at = Some(millis(terminal.at));
        record.updated_at = terminal.at;
        record.supplier_status = terminal.supplier_status.clone();
        record.cancel_reason = terminal.cancel_reason.clone();
        Ok(Ended {
            persisted: Persisted::Committed { unlisted },
            order: record.clone(),
        })
    }
}

impl NotifyMarks for MemoryStore {
    async fn mark_notified(&self, order_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut state = self.enter("mark_notified").await?;
        if let Some(order) = state.orders.get_mut(order_id)
            && order.record.status.is_terminal()
            && order.record.notified_at.is_none()
        {
            order.record.notified_at = Some(millis(now));
            order.pending = false;
        }
        Ok(())
    }
}

/// Sets a last-alerted mark to `now` unless it is at or after
/// `realert_before`.
fn claim_mark(
    mark: Option<OffsetDateTime>,
    realert_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    match mark {
        Some(at) if at >= millis(realert_before) => None,
        _ => Some(millis(now)),
    }
}

impl OrderAlerts for MemoryStore {
    async fn claim_alert(
        &self,
        order_id: &str,
        slot: AlertSlot,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("claim_alert").await?;
        let Some(order) = state.orders.get_mut(order_id) else {
            return Ok(false);
        };
        let Some(claimed) = claim_mark(order.alert(slot), realert_before, now) else {
            return Ok(false);
        };
        order.set_alert(slot, Some(claimed));
        Ok(true)
    }

    async fn release_alert(
        &self,
        order_id: &str,
        slot: AlertSlot,
        claimed_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("release_alert").await?;
        if let Some(order) = state.orders.get_mut(order_id)
            && order.alert(slot) == Some(millis(claimed_at))
        {
            order.set_alert(slot, None);
        }
        Ok(())
    }
}

impl StackAlerts for MemoryStore {
    async fn claim_stack_alert(
        &self,
        name: &str,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("claim_stack_alert").await?;
        let mark = state.stack_alerts.get(name).copied();
        let Some(claimed) = claim_mark(mark, realert_before, now) else {
            return Ok(false);
        };
        state.stack_alerts.insert(name.to_owned(), claimed);
        Ok(true)
    }

    async fn release_stack_alert(
        &self,
        name: &str,
        claimed_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("release_stack_alert").await?;
        if state.stack_alerts.get(name) == Some(&millis(claimed_at)) {
            state.stack_alerts.remove(name);
        }
        Ok(())
    }
}

impl SweepStore for MemoryStore {
    async fn pending(&self, limit: u32, start: Option<&str>) -> Result<PendingPage, StoreError> {
        let state = self.enter("pending").await?;
        let mut index: Vec<(String, &OrderRecord)> = state
            .orders
            .values()
            .filter(|o| o.pending)
            .map(|o| (pending_sort_key(&o.record), &o.record))
            .filter(|(sort, _)| start.is_none_or(|after| sort.as_str() > after))
            .collect();
        index.sort_by(|a, b| a.0.cmp(&b.0));
        let take = (limit.max(1) as usize).min(index.len());
        let more = index.len() > take;
        let page = &index[..take];
        Ok(PendingPage {
            orders: page.iter().map(|(_, order)| (*order).clone()).collect(),
            unreadable: Vec::new(),
            items_read: page.len() as u64,
            next: more
                .then(|| page.last().map(|(sort, _)| sort.clone()))
                .flatten(),
        })
    }

    async fn sweep_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(self.enter("sweep_cursor").await?.sweep_cursor.clone())
    }

    async fn save_sweep_cursor(
        &self,
        cursor: Option<&str>,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.enter("save_sweep_cursor").await?.sweep_cursor = cursor.map(str::to_owned);
        Ok(())
    }

    async fn claim_unreadable_alert(
        &self,
        pk: &str,
        _now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("claim_unreadable_alert").await?;
        let order = pk
            .strip_prefix("ORDER#")
            .and_then(|id| state.orders.get_mut(id));
        match order {
            Some(order) if !order.unreadable_alerted => {
                order.unreadable_alerted = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revive_chain(
        &self,
        seen: &OrderRecord,
        overdue_before: OffsetDateTime,
        now: OffsetDateTime,
        streak: u32,
        due: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if seen.next_poll_due_at.is_none() && seen.updated_at >= overdue_before {
            // Still being placed (create-order may be paying it).
            return Ok(false);
        }
        let mut state = self.enter("revive_chain").await?;
        let Some(order) = state.orders.get_mut(&seen.order_id) else {
            return Ok(false);
        };
        let record = &mut order.record;
        let overdue = match record.next_poll_due_at {
            None => record.updated_at == seen.updated_at,
            Some(due) => due < millis(overdue_before),
        };
        let unleased = record.lease_until.is_none_or(|lease| lease < millis(now));
        if record.poll_seq != seen.poll_seq
            || !overdue
            || !unleased
            || record.status.is_terminal()
            || record.status == OrderStatus::Creating
        {
            return Ok(false);
        }
        record.poll_seq = seen.poll_seq + 1;
        record.next_poll_due_at = Some(millis(due));
        record.updated_at = now;
        record.revivals = streak;
        record.revived_at_polls = Some(seen.poll_count);
        Ok(true)
    }

    async fn hand_over_create(
        &self,
        seen: &OrderRecord,
        seq: u64,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("hand_over_create").await?;
        if let Some(key) = &seen.idempotency_key
            && let Some(held) = state.keys.get(key)
        {
            let settled_elsewhere = held.locked_until < millis(now)
                || held.response.is_some()
                || held.order_id != seen.order_id;
            if !settled_elsewhere {
                return Ok(false);
            }
        }
        let Some(order) = state.orders.get_mut(&seen.order_id) else {
            return Ok(false);
        };
        let record = &mut order.record;
        if record.status != OrderStatus::Creating
            || record.supplier_order_id.is_some()
            || record.poll_seq >= seq
        {
            return Ok(false);
        }
        record.status = OrderStatus::Reconciling;
        record.last_error = Some(problem.clone());
        record.poll_seq = seq;
        record.next_poll_due_at = Some(millis(now));
        record.updated_at = now;
        record.handed_over = true;
        Ok(true)
    }
}

impl SummaryReader for MemoryStore {
    async fn summary(&self, product_id: &str) -> Result<Summary, StoreError> {
        let state = self.enter("summary").await?;
        Ok(state.summaries.get(product_id).cloned().unwrap_or_default())
    }
}

impl SummaryStore for MemoryStore {
    async fn add_observation(
        &self,
        product_id: &str,
        contribution: &Contribution,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("add_observation").await?;
        state
            .summaries
            .entry(product_id.to_owned())
            .or_default()
            .add(contribution);
        Ok(())
    }
}

impl crate::store::BudgetStore for MemoryStore {
    async fn budget(&self) -> Result<Option<crate::domain::budget::Shared>, StoreError> {
        let state = self.enter("budget").await?;
        Ok(state.budget)
    }

    async fn swap_budget(
        &self,
        seen: Option<&crate::domain::budget::Shared>,
        next: &crate::domain::budget::Shared,
    ) -> Result<bool, StoreError> {
        let mut state = self.enter("swap_budget").await?;
        // As DynamoDB compares it: the rate, and the cool-down in whole
        // milliseconds.
        let compared = |b: crate::domain::budget::Shared| {
            let b = stored_budget(b);
            (b.base.to_bits(), b.cool_until)
        };
        if state.budget.map(compared) != seen.copied().map(compared) {
            return Ok(false);
        }
        // As DynamoDB writes it: the limiter (and a run) restarts at the
        // end of the cool-down to the microsecond; a cool-down of a quiet
        // spell or more begins the stack's sending there too.
        let cut = seen.is_none_or(|seen| next.cut_at > seen.cut_at);
        let restart = Self::kept_due(next.cool_until);
        let long = next.cool_until.saturating_sub(next.cut_at) >= crate::domain::budget::QUIET;
        let mut next = stored_budget(*next);
        if cut {
            state.next_due = Some(restart);
            state.run_from = Some(restart);
            if long {
                state.sending_from = Some(restart);
            }
            next.busy_at_cut = state.busy;
            // The creates' span, moved on by the cool-down (both kept in
            // whole milliseconds).
            state.creates_until = Some(
                state.creates_due.unwrap_or_default() + next.cool_until.saturating_sub(next.cut_at),
            );
        } else {
            // A cool-down made longer: the creates' span moves on with it.
            let longer = seen.map_or(Duration::ZERO, |seen| {
                next.cool_until
                    .saturating_sub(stored_budget(*seen).cool_until)
            });
            if !longer.is_zero() {
                state.creates_until = Some(state.creates_until.unwrap_or_default() + longer);
            }
            next.busy_at_cut = state.budget.map_or(0, |b| b.busy_at_cut);
        }
        state.budget = Some(next);
        Ok(true)
    }

    async fn take_slot(
        &self,
        ask: &crate::store::SlotAsk,
    ) -> Result<crate::store::Taken, StoreError> {
        use crate::domain::budget::{Slot, for_read, slot};
        let mut state = self.enter("take_slot").await?;
        let cool_until = state.budget.map_or(Duration::ZERO, |b| b.cool_until);
        {
            let mut races = self.races.lock().expect("race count");
            if *races > 0 {
                *races -= 1;
                return Ok(crate::store::Taken {
                    slot: Slot::Wait(Self::kept_due(ask.interval)),
                    budget: state.budget,
                    due: state.next_due,
                    serial: None,
                    busy: state.busy,
                    run_from: state.run_from,
                    sending_from: state.sending_from,
                    creates_until: state.creates_until,
                    contended: true,
                });
            }
        }
        let (now, interval) = (Self::kept_due(ask.now), Self::kept_due(ask.interval));
        let answer = slot(state.next_due, cool_until, now, interval, ask.ahead);
        let answer = if ask.create {
            answer
        } else {
            for_read(answer, now, ask.ahead, interval, state.creates_until)
        };
        let serial = match answer {
            Slot::Go { at, next, from } => {
                let quiet = state.next_due.is_none_or(|due| {
                    due.saturating_add(crate::domain::budget::QUIET) <= Self::kept_due(at)
                });
                if from == crate::domain::budget::SlotFrom::Now && quiet {
                    state.sending_from = Some(Self::kept_due(at));
                }
                // (A run not yet kept begins at its first slot.)
                if from.begins_run() || state.run_from.is_none() {
                    state.run_from = Some(Self::kept_due(at));
                }
                state.next_due = Some(Self::kept_due(next));
                if ask.create {
                    state.creates_due = state.next_due;
                }
                state.granted += 1;
                state.busy += u64::from(crate::domain::budget::busy(from, at, state.run_from));
                Some(state.granted)
            }
            Slot::Wait(_) => None,
        };
        Ok(crate::store::Taken {
            slot: answer,
            budget: state.budget,
            due: state.next_due,
            serial,
            busy: state.busy,
            run_from: state.run_from,
            sending_from: state.sending_from,
            creates_until: state.creates_until,
            contended: false,
        })
    }
}

impl MemoryStore {
    /// The limiter's next due instant as DynamoDB keeps it (microseconds).
    fn kept_due(at: Duration) -> Duration {
        Duration::from_micros(u64::try_from(at.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A budget state as DynamoDB keeps one (its instant in milliseconds).
fn stored_budget(shared: crate::domain::budget::Shared) -> crate::domain::budget::Shared {
    crate::domain::budget::Shared {
        cool_until: std::time::Duration::from_millis(shared.cool_until.as_millis() as u64),
        cut_at: std::time::Duration::from_millis(shared.cut_at.as_millis() as u64),
        ..shared
    }
}

#[cfg(test)]
mod contract {
    use super::MemoryStore;

    crate::store_contract!(async { MemoryStore::new() });
}
