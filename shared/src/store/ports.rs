//! The store's ports, one per role, mirroring the IAM roles: each function
//! is generic only over the ports its role may use, so what the type
//! system allows and what the template grants say the same thing.
//!
//! | port | used by |
//! |---|---|
//! | [`OrderReader`] | all three |
//! | [`IdempotencyStore`] | create-order |
//! | [`PlacementStore`] | create-order, poll-order (reconciliation) |
//! | [`PollChain`] | poll-order |
//! | [`NotifyMarks`] | poll-order, scan-stalled |
//! | [`OrderAlerts`] | poll-order, scan-stalled |
//! | [`StackAlerts`] | create-order |
//! | [`SweepStore`] | scan-stalled |
//! | [`SummaryReader`] | create-order (plans) |
//! | [`SummaryStore`] | poll-order (observations) |
//!
//! Every write is conditional; an adapter must keep the conditions each
//! method names (the contract suite runs the same cases against each).

use super::record::{
    AlertSlot, Begin, Claim, Ended, IdempotencyClaim, IdempotencyRecord, OrderRecord, PendingPage,
    PollRecord, StoreError, StoredResponse, SupplierProblem, SupplierState, Terminal,
};
use crate::domain::budget;
use crate::domain::event::DeliveredCodeRecord;
use crate::domain::learning::{Contribution, Summary};
use crate::domain::reconcile::ClockOffset;
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// Reads every function makes: an order and its codes.
pub trait OrderReader: Send + Sync {
    /// Reads an order (strongly consistent).
    fn order(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<OrderRecord>, StoreError>> + Send;

    /// The order's codes, in order.
    fn codes(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Vec<DeliveredCodeRecord>, StoreError>> + Send;
}

/// deliver-webhook's marks: which endpoint has which event, and each
/// endpoint's circuit breaker.
pub trait WebhookStore: OrderReader {
    /// Whether event `event_id` reached `endpoint` (answered 2xx).
    fn delivered(
        &self,
        event_id: &str,
        endpoint: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that event `event_id` reached `endpoint` with `status`.
    fn mark_delivered(
        &self,
        event_id: &str,
        endpoint: &str,
        status: u16,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `endpoint`'s breaker (closed when none is stored).
    fn breaker(
        &self,
        endpoint: &str,
    ) -> impl Future<Output = Result<crate::domain::webhook::Breaker, StoreError>> + Send;

    /// Counts a failed request to `endpoint` at `now_ms` (atomically, so
    /// concurrent failures all count); the one that makes a closed breaker
    /// reach [`Breaker::OPEN_AFTER`](crate::domain::webhook::Breaker)
    /// opens it. Returns the failures in a row.
    fn record_failure(
        &self,
        endpoint: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Records that the probe which claimed `endpoint`'s breaker until
    /// `claimed_until_ms` failed: `next` (one more failure, a longer
    /// cool-off), if the breaker is still as the probe left it.
    fn record_failed_probe(
        &self,
        endpoint: &str,
        claimed_until_ms: i64,
        next: &crate::domain::webhook::Breaker,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims `endpoint`'s half-open breaker for one probe: holds it open
    /// until `until_ms`, if it still opens until `seen_open_until_ms` (as
    /// this delivery read it). False: another delivery claimed it, or it
    /// changed meanwhile.
    fn claim_probe(
        &self,
        endpoint: &str,
        seen_open_until_ms: i64,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Closes `endpoint`'s breaker after a success.
    fn close_breaker(&self, endpoint: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// create-order's idempotency keys (`IDEMPOTENCY#`), and the intent stored with
/// a new key.
pub trait IdempotencyStore: Send + Sync {
    /// Stores a new order's intent, and claims its idempotency key, in one
    /// conditional transaction.
    fn begin(
        &self,
        order: &OrderRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> impl Future<Output = Result<Begin, StoreError>> + Send;

    /// Reads an idempotency record (strongly consistent).
    fn idempotency(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    /// Takes over an in-progress record whose holder's lock ran out. Returns
    /// false when someone else moved first.
    fn take_over(
        &self,
        record: &IdempotencyRecord,
        holder: &str,
        locked_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores the answer for a key, if `holder` still holds it.
    fn finish(
        &self,
        key: &str,
        holder: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a key held by `holder`, so a retry starts afresh (used when
    /// nothing was bought).
    fn release(
        &self,
        key: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Buying an order and settling what buying left unsure (create-order, and
/// poll-order's reconciliation): POST records, the supplier-order claim,
/// payment, FoxReload's clock, the first poll.
pub trait PlacementStore: OrderReader {
    /// Records that a new POST is about to be sent at `at`, if the order
    /// still has no supplier order and exactly `seen` POSTs recorded. False
    /// when another worker recorded one, or settled the order, meanwhile:
    /// then nothing may be sent.
    fn record_post(
        &self,
        order_id: &str,
        seen: usize,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that the outcome of the order's first `known` POSTs was
    /// learned (an answer, a refusal, a timeout after sending): they were
    /// sent, or surely not.
    fn mark_posts_known(
        &self,
        order_id: &str,
        known: usize,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that FoxReload refused POST `index` of the order with a
    /// `429` (sure to have made nothing). Idempotent; nothing for an order
    /// that does not exist.
    fn mark_post_refused(
        &self,
        order_id: &str,
        index: usize,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether any of our orders holds this supplier order.
    fn is_claimed(
        &self,
        supplier_order_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims `supplier_order_id` for our order (still `creating` or
    /// `reconciling`, with no supplier order yet) and records its state.
    fn claim_supplier_order(
        &self,
        order_id: &str,
        supplier_order_id: &str,
        state: &SupplierState,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records the outcome of paying: FoxReload's state after it, or why it
    /// was refused. Only an order holding a supplier order and not ended.
    fn record_payment(
        &self,
        order_id: &str,
        state: Option<&SupplierState>,
        refusal: Option<&SupplierProblem>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a create that bought nothing: only the order as the create
    /// knows it, still `creating` with `posts` POSTs recorded (0, not
    /// counted, for an order from before POSTs were recorded) ([`Conflict`]
    /// otherwise: another request that took it over, or recorded a POST
    /// since, keeps it). The same write sent again after its answer was
    /// lost is no conflict.
    ///
    /// [`Conflict`]: StoreError::Conflict
    fn mark_not_placed(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Leaves a create to reconciliation by poll-order: only the order as
    /// the create knows it, as [`PlacementStore::mark_not_placed`].
    fn mark_reconciling(
        &self,
        order_id: &str,
        posts: usize,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that poll message `seq` was (about to be) sent, due at
    /// `due_at`; refused if a message with this or a later number was.
    fn schedule_poll(
        &self,
        order_id: &str,
        seq: u64,
        due_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// FoxReload's clock against ours, as last measured.
    fn clock_offset(&self) -> impl Future<Output = Result<Option<ClockOffset>, StoreError>> + Send;

    /// Keeps a new measure of FoxReload's clock if it is tighter than the
    /// stored one, or the stored one is older than `stale_after`.
    fn save_clock_offset(
        &self,
        measure: &ClockOffset,
        stale_after: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Our orders created between `from` and `to` that still have no
    /// supplier order (`creating` or `reconciling`), read through the
    /// pending index (eventually consistent).
    fn unsettled_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, StoreError>> + Send;
}

/// poll-order's chain of poll messages: one live link at a time, the order's
/// end stored with its codes.
pub trait PollChain: OrderReader {
    /// Lets exactly one worker proceed with poll message `seq`: the live
    /// link of the chain, not claimed yet or claimed by a worker whose lease
    /// ran out. False for duplicates and stale links.
    fn claim_link(
        &self,
        order_id: &str,
        seq: u64,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a poll made under link `seq` and moves the chain on to
    /// `poll.next_seq`.
    fn record_poll(
        &self,
        order_id: &str,
        seq: u64,
        poll: &PollRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the codes and the terminal status (the codes first; the status
    /// commits), and reads the order back. A replay changes nothing; an
    /// order that does not exist is a conflict.
    fn persist_terminal(
        &self,
        order: &OrderRecord,
        terminal: &Terminal,
    ) -> impl Future<Output = Result<Ended, StoreError>> + Send;
}

/// What notifying a finished order writes (poll-order and the sweep).
pub trait NotifyMarks: OrderReader {
    /// Records that the order's event was published; the order leaves the
    /// pending index.
    fn mark_notified(
        &self,
        order_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Claims on alerts about one order, so concurrent workers alert once.
pub trait OrderAlerts: Send + Sync {
    /// Claims the right to send the `slot` alert about an order: true if no
    /// such alert was sent since `realert_before`. Conditional, so concurrent
    /// workers alert once.
    fn claim_alert(
        &self,
        order_id: &str,
        slot: AlertSlot,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives an alert claim back (the alert could not be sent).
    fn release_alert(
        &self,
        order_id: &str,
        slot: AlertSlot,
        claimed_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Claims on alerts about the whole stack (create-order).
pub trait StackAlerts: Send + Sync {
    /// Claims the right to send the alert `name` about the whole stack (not
    /// one order): true if it was not sent since `realert_before`.
    fn claim_stack_alert(
        &self,
        name: &str,
        realert_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives a stack alert claim back (the alert could not be sent).
    fn release_stack_alert(
        &self,
        name: &str,
        claimed_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// scan-stalled's sweep: the pending index, where the sweep stopped, and the
/// repairs it makes.
pub trait SweepStore: OrderReader {
    /// A page of the sparse index of orders not yet ended or not yet
    /// notified, oldest first, from `start` (a cursor from a previous page).
    fn pending(
        &self,
        limit: u32,
        start: Option<&str>,
    ) -> impl Future<Output = Result<PendingPage, StoreError>> + Send;

    /// Where the last sweep stopped, if it did not reach the end.
    fn sweep_cursor(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Records where the sweep stopped (`None`: start from the beginning).
    fn save_sweep_cursor(
        &self,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims the right to alert about a stored item that does not read as
    /// an order, by its key: true the first time only.
    fn claim_unreadable_alert(
        &self,
        pk: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves `order`'s dead chain on to its `poll_seq + 1`, due now: only if
    /// the chain is still where `order` saw it, its next poll is overdue
    /// before `overdue_before` (with no next poll recorded: the order has
    /// not changed since `order.updated_at`, which is before
    /// `overdue_before`), and no worker holds a lease. False otherwise.
    /// The revival is recorded as the `streak`-th in a row without a poll
    /// (against `order.poll_count`), and its link is due at `due`.
    fn revive_chain(
        &self,
        order: &OrderRecord,
        overdue_before: OffsetDateTime,
        now: OffsetDateTime,
        streak: u32,
        due: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Hands an order left `creating` (its create-order invocation died) to
    /// reconciliation: `reconciling`, with poll message `seq` due now, only
    /// if it is still `creating` and no request holds its idempotency key.
    /// False otherwise.
    fn hand_over_create(
        &self,
        order: &OrderRecord,
        seq: u64,
        problem: &SupplierProblem,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Reads of the per-product completion-time summaries (learned polling).
pub trait SummaryReader: Send + Sync {
    /// A product's summary; empty when it has none.
    fn summary(&self, product_id: &str)
    -> impl Future<Output = Result<Summary, StoreError>> + Send;
}

/// What an ended order adds to its product's summary.
pub trait SummaryStore: SummaryReader {
    /// Adds one observation, with additions only (concurrent writers never
    /// lose each other's), and removes the bins it forgets.
    fn add_observation(
        &self,
        product_id: &str,
        contribution: &Contribution,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The FoxReload budget every container shares: one limiter (when the
/// stack's next request is due) and the part of the adaptive budget a
/// `429` changes ([`budget::Shared`]).
pub trait BudgetStore: Send + Sync {
    /// The shared state; `None` before any container wrote one.
    fn budget(&self) -> impl Future<Output = Result<Option<budget::Shared>, StoreError>> + Send;

    /// Replaces the shared state with `next` if it is still `seen` (`None`:
    /// none written yet). False when another container changed it first:
    /// read it again, and decide again. A cut (a later `cut_at`) also moves
    /// the limiter back to the end of its cool-down (slots booked before it
    /// at the old rate are void, and their callers take new ones), and is
    /// stamped with the store's own count of busy slots
    /// ([`budget::Shared::busy_at_cut`]; `next`'s is not kept); any other
    /// swap keeps the stamp. A cut also keeps a span for the creates it
    /// voided ([`Taken::creates_until`]): the creates' slots as booked
    /// ([`SlotAsk::create`]), moved on by the cool-down, in which no read
    /// takes a slot, so that those creates take theirs again first.
    fn swap_budget(
        &self,
        seen: Option<&budget::Shared>,
        next: &budget::Shared,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes the stack's next request slot for a request asked at
    /// `ask.now`, atomically ([`budget::slot`]): at most one request per
    /// slot, whichever containers ask at once, counting it as busy
    /// ([`budget::busy`]) when it comes right after the one before,
    /// two seconds or more into the limiter's run (a slot given to an idle
    /// limiter, or at the end of a cool-down, begins a run; so does a
    /// cut), and noting when the stack began sending again when the slot
    /// comes after the limiter stood idle [`budget::QUIET`] or more. Also
    /// says the shared state as it stands, so each container's view is
    /// fresh with every slot. A read (`ask.create` false) takes no slot in
    /// the span the last cut kept for creates ([`budget::for_read`]).
    fn take_slot(&self, ask: &SlotAsk) -> impl Future<Output = Result<Taken, StoreError>> + Send;
}

/// A request for a slot; instants are time since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotAsk {
    pub now: Duration,
    /// One interval of the budget as the asker sees it.
    pub interval: Duration,
    /// How far ahead it may wait ([`budget::Priority::ahead`]).
    pub ahead: Duration,
    /// When the asker last saw the next request due: where an adapter
    /// guesses the limiter stands before it reads it.
    pub hint: Option<Duration>,
    /// When the asker last saw the limiter's run begin (with `hint`).
    pub run_hint: Option<Duration>,
    /// Whether the asker is a create (a customer is waiting): its slot
    /// counts in the span a cut keeps for creates, and may be taken in it.
    pub create: bool,
}

/// A slot taken, or the wait until one is within reach, and the shared
/// state as read with it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Taken {
    pub slot: budget::Slot,
    pub budget: Option<budget::Shared>,
    /// When the next request is due, after this one.
    pub due: Option<Duration>,
    /// For a slot granted, its serial: how many slots the stack has
    /// granted, this one included (never reset, so two serials a container
    /// saw say how many slots every container took between them).
    pub serial: Option<u64>,
    /// How many busy slots the stack has been granted in all, as the
    /// shared state stands (this one included): what the budget has grown
    /// by since the last cut.
    pub busy: u64,
    /// When the limiter's current run began, as it stands.
    pub run_from: Option<Duration>,
    /// When the stack last began sending after the limiter stood idle for
    /// [`budget::QUIET`] or more (or at the end of a cool-down that long),
    /// as it stands. (Noted by its own write after the slot that began it:
    /// a slot taken in that moment may be told the earlier one.)
    pub sending_from: Option<Duration>,
    /// The end of the span the last cut kept for the creates it voided:
    /// no read is given a slot before it (`None`: no cut kept one).
    pub creates_until: Option<Duration>,
    /// No slot because others took each one this ask tried for, one after
    /// the other (a race among askers, not a limiter booked past reach):
    /// worth asking again at once.
    pub contended: bool,
}

/// The whole store: every port. Adapters implement it all; only tests and
/// the contract suite ask for all of it.
pub trait OrderStore:
    IdempotencyStore
    + PlacementStore
    + PollChain
    + NotifyMarks
    + OrderAlerts
    + StackAlerts
    + SweepStore
    + SummaryStore
    + BudgetStore
{
}

impl<T> OrderStore for T where
    T: IdempotencyStore
        + PlacementStore
        + PollChain
        + NotifyMarks
        + OrderAlerts
        + StackAlerts
        + SweepStore
        + SummaryStore
        + BudgetStore
{
}
