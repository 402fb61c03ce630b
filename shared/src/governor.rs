//! The stack's FoxReload budget, spent (issue 16): every FoxReload call of
//! every function first takes a slot of the one limiter the stack shares
//! ([`BudgetStore::take_slot`], one conditional DynamoDB update), waits for
//! it, and only then goes out. A call whose priority finds no slot within
//! its reach is not sent: [`SupplierError::Throttled`], which is not a
//! FoxReload failure (a poll is re-enqueued, a create answered 503 with
//! `Retry-After`). A `429` from FoxReload cuts the shared budget once per
//! cool-down ([`Adaptive`]), which every container sees with its next slot.
//!
//! Who is asking is said by the flow around the calls
//! ([`Asking::scope`]): create-order's calls are creates, poll-order's are
//! first polls, polls or stalled orders by the order's age.

use crate::clock::Clock;
use crate::domain::budget::{
    Adaptive, Granted, PACE_WINDOW, Priority, Shared, Slot, accepted_before, interval, pace,
};
use crate::foxreload::{
    CreateOrderRequest, HeldBy, Observation, Operation, OrderPage, PageRequest, Supplier,
    SupplierError, SupplierOrder,
};
use crate::metrics::Metrics;
use crate::store::{BudgetStore, PlacementStore, SlotAsk};
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tracing::{debug, info, warn};

/// Who is asking for FoxReload calls in a flow, and until when it may wait
/// for a slot.
#[derive(Clone, Copy, Debug)]
pub struct Asking {
    pub priority: Priority,
    /// The latest a slot may be waited for (a request's deadline), if
    /// sooner than the priority's reach.
    pub until: Option<tokio::time::Instant>,
}

tokio::task_local! {
    static ASKING: (Asking, Cell<Option<Admitted>>);
}

impl Asking {
    pub fn new(priority: Priority) -> Self {
        Self {
            priority,
            until: None,
        }
    }

    /// Runs `flow` with its FoxReload calls asked as `self`. The flow (a
    /// whole create or poll) is kept on the heap: it is large, and callers
    /// polling it on a small stack must not hold it there.
    pub async fn scope<T>(self, flow: impl Future<Output = T>) -> T {
        ASKING.scope((self, Cell::new(None)), Box::pin(flow)).await
    }

    /// Who asks in the current flow: a poll when nobody said.
    fn current() -> Self {
        ASKING
            .try_with(|(asking, _)| *asking)
            .unwrap_or(Self::new(Priority::Poll))
    }

    /// Who asks for a call of `op` in the current flow: a create or a
    /// payment is asked as a create whatever the flow (a poll paying the
    /// order it found, or buying again), within the flow's deadline, since
    /// a customer waits for what it buys; any other call as the flow.
    fn for_call(op: Operation) -> Self {
        let mut asking = Self::current();
        if matches!(op, Operation::CreateOrder | Operation::PayOrder) {
            asking.priority = Priority::Create;
        }
        asking
    }
}

/// A slot taken (and waited for): when it was, at what budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Admitted {
    /// The slot, since the Unix epoch (our clock).
    pub at: Duration,
    /// When it was granted (since the Unix epoch).
    pub granted: Duration,
    /// When this container learned of it (the store's answer came).
    pub known: Duration,
    /// The budget it was taken at, in requests per second.
    pub rate: f64,
    /// When the stack last began sending after a quiet spell, as the slot
    /// was granted.
    pub sending_from: Option<Duration>,
}

/// The limiter's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GovernorSettings {
    /// The most requests per second the stack sends FoxReload
    /// (`FOXRELOAD_MAX_RPS`): the budget starts there and never goes over.
    pub max_rps: f64,
}

/// What a container knows of the shared budget: its last view.
#[derive(Debug)]
struct View {
    adaptive: Adaptive,
    /// When it last saw the next request due, and the limiter's run begin.
    hint: Option<Duration>,
    run_hint: Option<Duration>,
    /// The end of the span the last cut kept for creates, as last seen.
    creates_until: Option<Duration>,
    /// Its latest slots, as samples of the stack's pace ([`pace`]).
    samples: VecDeque<Granted>,
    /// The last time it read the shared state (as of just before the read).
    fresh_at: Duration,
    /// Its latest round trips to the shared state (a slot taken or the
    /// budget read), each with when it ended: how far ahead it asks for
    /// slots ([`Governor::lead`]).
    trips: VecDeque<(Duration, Duration)>,
    /// Its latest reservations' spans, each with when it ended: from a
    /// reserved slot known to its flow asking to spend it (the store
    /// writes in between).
    spans: VecDeque<(Duration, Duration)>,
    /// Slots it was granted before this are void: those it booked while
    /// its own cut was being written, which the written cut (moving the
    /// limiter back to the end of its cool-down) grants again.
    void_before: Duration,
    /// FoxReload's clock against ours as last read, and when it was read
    /// (a 429 needs it at once; it changes slowly).
    offset: Option<(Duration, Option<time::Duration>)>,
    /// How many busy slots the stack had been granted, as last told: the
    /// budget has grown with those since the last cut. (As told, not the
    /// most ever told: an item made again starts its count again.)
    busy: u64,
}

/// Why a request whose priority reaches `full` ([`Priority::reach`]) but
/// that could wait `reach` for a slot (less when its deadline is near)
/// found none, the first coming `wait` after that: the budget, when the
/// slot is past the priority's reach too; otherwise the time the request
/// had left.
fn held_by(full: Duration, reach: Duration, wait: Duration) -> HeldBy {
    if reach + wait > full {
        HeldBy::Budget
    } else {
        HeldBy::Deadline
    }
}

/// Keeps `latest`, ended at `at`, among the last [`TRIPS_KEPT`] of
/// `recent`.
fn remembered(recent: &mut VecDeque<(Duration, Duration)>, at: Duration, latest: Duration) {
    if recent.len() >= TRIPS_KEPT {
        recent.pop_front();
    }
    recent.push_back((at, latest));
}

/// The longest of `recent` that ended less than [`TRIPS_FRESH`] before
/// `now`, at most [`MOST_LEAD`].
fn longest(recent: &VecDeque<(Duration, Duration)>, now: Duration) -> Duration {
    recent
        .iter()
        .filter(|(at, _)| now.saturating_sub(*at) < TRIPS_FRESH)
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default()
        .min(MOST_LEAD)
}

/// Most slots a container keeps as samples of the stack's pace.
const SAMPLES_KEPT: usize = 64;

impl View {
    /// The shared state as read at `asked` (`None`: none written yet).
    /// Never goes back to a state older than the one it holds (reads in
    /// flight at once may land in any order).
    fn refreshed(&mut self, shared: Option<Shared>, asked: Duration) {
        if let Some(shared) = shared
            && shared.cut_at >= self.adaptive.state.cut_at
        {
            if shared.cut_at > self.adaptive.state.cut_at {
                // A cut moved the limiter back: where it was seen is no
                // longer where it stands, nor the span it kept for creates.
                self.hint = None;
                self.creates_until = None;
            }
            self.adaptive.state = shared;
        }
        self.fresh_at = self.fresh_at.max(asked);
    }

    /// A round trip to the shared state, asked at `asked`, answered at
    /// `ended`.
    fn tripped(&mut self, asked: Duration, ended: Duration) {
        remembered(&mut self.trips, ended, ended.saturating_sub(asked));
    }

    /// Keeps `granted` as a sample, forgetting those too old to count.
    fn sampled(&mut self, granted: Granted) {
        let oldest = granted.at.saturating_sub(PACE_WINDOW * 2);
        while self
            .samples
            .front()
            .is_some_and(|s| s.at < oldest || self.samples.len() >= SAMPLES_KEPT)
        {
            self.samples.pop_front();
        }
        self.samples.push_back(granted);
    }
}

/// One container's side of the shared budget.
#[derive(Debug)]
pub struct Governor<B, C> {
    store: B,
    clock: C,
    view: Mutex<View>,
    metrics: Option<Metrics>,
}

/// A call the budget did not admit: when to ask again, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub wait: Duration,
    pub by: HeldBy,
}

impl Refused {
    /// What the call for `op` answers.
    pub fn error(self, op: Operation) -> SupplierError {
        SupplierError::Throttled {
            op,
            retry_after: self.wait,
            by: self.by,
        }
    }
}

/// Most slots one call takes when cuts keep voiding the ones it waited for.
const READMITS: usize = 3;

/// Most times a call asks again for a slot after losing the race for one
/// to other containers asking at once.
const RACES: usize = 3;

/// How long after its grant a call may leave without reading the shared
/// budget again first ([`Governor::stands`]): a slot due at once and a
/// store write of a few milliseconds stay well under it.
const LATE: Duration = Duration::from_millis(250);

/// How much later than the slot a read of the shared state made just
/// before it may end (timers wake a little late).
const READ_TOLERANCE: Duration = Duration::from_millis(50);

/// How many round trips (and reservation spans) a container remembers.
const TRIPS_KEPT: usize = 8;

/// How long a round trip (or reservation span) counts: one slow answer
/// leads a container's next slots for a moment, not for good.
const TRIPS_FRESH: Duration = Duration::from_secs(30);

/// The furthest ahead of now a slot is asked for to cover the store's
/// round trip and a reservation's writes.
const MOST_LEAD: Duration = Duration::from_secs(4);

/// How long a container uses the measure of FoxReload's clock it read.
const OFFSET_KEPT: Duration = Duration::from_secs(60);

/// Most attempts at a cut when other containers keep changing the budget.
const CUT_ATTEMPTS: usize = 3;

/// When a create not made ready ([`Supplier::ready`]) is told to come back.
const UNREADY_CREATE_WAIT: Duration = Duration::from_secs(1);

/// How long to wait before asking again when the budget store failed.
const STORE_DOWN_WAIT: Duration = Duration::from_secs(1);

fn since_epoch(at: OffsetDateTime) -> Duration {
    (at - OffsetDateTime::UNIX_EPOCH)
        .try_into()
        .unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B: BudgetStore + PlacementStore, C: Clock> Governor<B, C> {
    pub fn new(store: B, clock: C, settings: GovernorSettings, metrics: Option<Metrics>) -> Self {
        let now = since_epoch(clock.now());
        Self {
            store,
            clock,
            view: Mutex::new(View {
                adaptive: Adaptive::new(settings.max_rps, now),
                hint: None,
                run_hint: None,
                creates_until: None,
                samples: VecDeque::new(),
                fresh_at: Duration::ZERO,
                trips: VecDeque::new(),
                spans: VecDeque::new(),
                void_before: Duration::ZERO,
                offset: None,
                busy: 0,
            }),
            metrics,
        }
    }

    /// Now on this container's clock, since the Unix epoch.
    pub fn now(&self) -> Duration {
        since_epoch(self.clock.now())
    }

    /// The budget as this container last saw it, in requests per second.
    pub fn budget(&self) -> f64 {
        let now = since_epoch(self.clock.now());
        let view = lock(&self.view);
        view.adaptive.rate(now, view.busy)
    }

    /// Takes a slot for a call asked as `asking` and waits for it; or how
    /// long until one is within reach.
    pub async fn admit(&self, asking: Asking) -> Result<Admitted, Refused> {
        for _ in 0..READMITS {
            let admitted = self.take(asking, self.lead()).await?;
            if self.kept(&admitted, true).await {
                return Ok(admitted);
            }
            info!("a slot booked before a cut of the FoxReload budget is taken again");
        }
        Err(Refused {
            wait: STORE_DOWN_WAIT,
            by: HeldBy::Budget,
        })
    }

    /// Whether `admitted`'s slot still stands, just before its call is
    /// sent. A cut since it was granted voids it: it was booked at the old
    /// rate, and the cut moved the limiter back to the end of its
    /// cool-down. A cut this container saw is known for free; a call that
    /// leaves more than [`LATE`] after its grant and after this container
    /// last read the shared state (it waited for its slot, or a store write
    /// came between) reads it again first, so a cut made meanwhile by
    /// another container stops it too, if `may_read` (a read that would
    /// end after the slot is not made: the container's view decides). (A
    /// budget that cannot be read voids nothing.)
    async fn stands(&self, admitted: &Admitted, may_read: bool) -> bool {
        if self.seen_cut_since(admitted) {
            return false;
        }
        if !may_read {
            return true;
        }
        let fresh_at = lock(&self.view).fresh_at;
        let now = self.now();
        if now.saturating_sub(admitted.granted.max(fresh_at)) <= LATE {
            return true;
        }
        let read = self.store.budget().await;
        let ended = self.now();
        match read {
            Ok(shared) => {
                let mut view = lock(&self.view);
                view.tripped(now, ended);
                view.refreshed(shared, now);
                view.adaptive.state.cut_at <= admitted.granted
            }
            Err(_) => true,
        }
    }

    /// Whether this container has seen a cut since `admitted` was
    /// granted (no store read).
    fn seen_cut_since(&self, admitted: &Admitted) -> bool {
        let view = lock(&self.view);
        view.adaptive.state.cut_at > admitted.granted || view.void_before > admitted.granted
    }

    /// Waits until `at`, on the clock slots are given in (not only
    /// tokio's, which may drift from it): a call never leaves before its
    /// slot, nor a create before the send time recorded for it.
    async fn wait_until(&self, at: Duration) {
        while let Some(wait) = at.checked_sub(self.now()).filter(|wait| !wait.is_zero()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// How far ahead of now this container asks for a slot: its longest
    /// recent round trip to the shared state, so that the slot is known
    /// (and the budget read again, if need be) before it comes. Asked for
    /// now, a slot the store answers late for is spent late, when the
    /// answer comes: calls held up alike by a slow store would leave in a
    /// bunch the limiter never granted, instead of an interval apart.
    fn lead(&self) -> Duration {
        let now = self.now();
        longest(&lock(&self.view).trips, now)
    }

    /// How far ahead of now a slot reserved for a call is asked for: the
    /// round trip, and the longest recent span from a reservation to its
    /// call (the writes a create makes while its slot comes).
    fn reserve_lead(&self) -> Duration {
        let now = self.now();
        let view = lock(&self.view);
        (longest(&view.trips, now) + longest(&view.spans, now)).min(MOST_LEAD)
    }

    /// A reserved slot, known at `known`, is asked to be spent now.
    fn spanned(&self, known: Duration) {
        let now = self.now();
        remembered(&mut lock(&self.view).spans, now, now.saturating_sub(known));
    }

    /// Whether `held`, a slot taken (earlier in this flow, or just now), is
    /// kept for the call about to be sent: not voided by a cut (checked
    /// just before it comes, so that the read never makes it leave late),
    /// and waited for.
    async fn kept(&self, held: &Admitted, late_read: bool) -> bool {
        if self.seen_cut_since(held) {
            return false;
        }
        // The shared state, if stale, is read before the slot comes, not
        // after: the read never makes the call leave late. Come too late
        // for that (work held the call up), a call that must leave close to
        // a time recorded for it (`late_read` false: a create) goes on what
        // this container knows; any other reads first.
        let lead = self.lead();
        self.wait_until(held.at.saturating_sub(lead)).await;
        let in_time = self.now() + lead <= held.at + READ_TOLERANCE;
        if !self.stands(held, in_time || late_read).await {
            return false;
        }
        self.wait_until(held.at).await;
        // A cut this container made or saw while it waited voids it too.
        !self.seen_cut_since(held)
    }

    /// The slot a call for `op` is sent in: `held` (taken earlier in this
    /// flow) if it is kept, otherwise a new one, waited for.
    async fn slot_for(
        &self,
        op: Operation,
        held: Option<Admitted>,
    ) -> Result<Admitted, SupplierError> {
        match held {
            Some(held) if self.kept(&held, true).await => Ok(held),
            _ => self
                .admit(Asking::for_call(op))
                .await
                .map_err(|refused| refused.error(op)),
        }
    }

    /// What a call for `op` whose slot a cut voided, and which cannot take
    /// another (a create whose send time was recorded for it), answers.
    fn voided(&self, op: Operation) -> SupplierError {
        SupplierError::Throttled {
            op,
            retry_after: self.cooling_for(),
            by: HeldBy::Budget,
        }
    }

    /// How long the cool-down this container last saw has to run.
    fn cooling_for(&self) -> Duration {
        lock(&self.view)
            .adaptive
            .cool_until()
            .saturating_sub(self.now())
    }

    /// Takes a slot `lead` or more from now (not waited for yet), or how
    /// long until one is within reach.
    async fn take(&self, asking: Asking, lead: Duration) -> Result<Admitted, Refused> {
        let now = self.now();
        let create = asking.priority == Priority::Create;
        let (rate, hint, run_hint, cool_until, creates_until) = {
            let view = lock(&self.view);
            (
                view.adaptive.current(view.busy),
                view.hint,
                view.run_hint,
                view.adaptive.cool_until(),
                view.creates_until.filter(|_| !create),
            )
        };
        let full = asking.priority.reach(rate);
        // Within the priority's reach, and a round trip ahead; near a
        // deadline, no slot after it.
        let reach = match asking.until {
            Some(until) => {
                let room = until.saturating_duration_since(tokio::time::Instant::now());
                if room < lead {
                    self.count(asking.priority, false);
                    // As this container last saw the limiter: free (out of
                    // a cool-down, and booked by creates no further than
                    // the round trip every container asks ahead and than
                    // polls may book) only after the priority's reach, the
                    // budget held it; after the deadline, the time left
                    // did; otherwise the store answers too slowly for it.
                    let deadline = now + room;
                    let booked_until =
                        hint.map(|due| due.saturating_sub(lead + Priority::FirstPoll.reach(rate)));
                    let free_from = booked_until.unwrap_or_default().max(cool_until);
                    let wait = free_from.saturating_sub(now);
                    let by = if wait > lead + full {
                        HeldBy::Budget
                    } else if free_from > deadline {
                        HeldBy::Deadline
                    } else {
                        warn!(
                            round_trip_ms = lead.as_millis() as u64,
                            room_ms = room.as_millis() as u64,
                            "the FoxReload budget's store answers more slowly than the time left"
                        );
                        return Err(Refused {
                            wait: lead,
                            by: HeldBy::Store,
                        });
                    };
                    debug!(
                        priority = asking.priority.as_str(),
                        wait_ms = wait.as_millis() as u64,
                        room_ms = room.as_millis() as u64,
                        held_by = ?by,
                        "no FoxReload slot before the deadline, as last seen"
                    );
                    return Err(Refused { wait, by });
                }
                full.min(room - lead)
            }
            None => full,
        };
        // Not before a cool-down this container knows of, even one the
        // shared budget does not hold yet (its own cut, being written).
        let earliest = (now + lead).max(cool_until);
        let latest = now + lead + reach;
        if earliest > latest {
            return Err(self.held(asking, full, reach, earliest - latest, "cooling down"));
        }
        // Booked past reach as this container last saw the limiter: the
        // store would say the same (the limiter only moves on, but for a
        // cut, which resets what this container knows of it), so no write
        // is spent to hear it. (Held-back polls asking again would
        // otherwise write to the one item as often as they come back.)
        if let Some(due) = hint.filter(|due| *due > latest) {
            return Err(self.held(asking, full, reach, due - latest, "booked, as last seen"));
        }
        // A read, in the span the last cut kept for creates as last seen
        // (the store would refuse it too): held without a write.
        if let Some(until) = creates_until.filter(|until| *until > latest) {
            return Err(self.held(
                asking,
                full,
                reach,
                until - latest,
                "kept for creates, as last seen",
            ));
        }
        let mut ask = SlotAsk {
            now: earliest,
            interval: interval(rate),
            ahead: latest - earliest,
            hint,
            run_hint,
            create,
        };
        let mut races = 0;
        let (taken, known) = loop {
            let asked = self.now();
            let taken = self.store.take_slot(&ask).await;
            let known = self.now();
            let taken = match taken {
                Ok(taken) => taken,
                Err(error) => {
                    warn!(%error, "the FoxReload budget could not be read; the call waits");
                    self.count(asking.priority, false);
                    return Err(Refused {
                        wait: STORE_DOWN_WAIT,
                        by: HeldBy::Store,
                    });
                }
            };
            {
                let mut view = lock(&self.view);
                view.tripped(asked, known);
                view.refreshed(taken.budget, asked);
                view.hint = taken.due;
                view.run_hint = taken.run_from;
                // The span of the cut this container holds as the latest
                // (an answer overtaken by a newer cut's tells an older
                // span).
                if taken
                    .budget
                    .is_none_or(|budget| budget.cut_at >= view.adaptive.state.cut_at)
                {
                    view.creates_until = taken.creates_until;
                }
                view.busy = taken.busy;
                if let (Slot::Go { at, .. }, Some(serial)) = (taken.slot, taken.serial) {
                    view.sampled(Granted { at, serial });
                }
            }
            if !taken.contended {
                break (taken, known);
            }
            // Others took each slot this ask tried for (many asking at
            // once): a race, not the budget. Asked again at once, from
            // where the limiter stands, a few times.
            let earliest = (self.now() + lead).max(cool_until);
            if races >= RACES || earliest > latest {
                self.count(asking.priority, false);
                info!("others kept taking the FoxReload slots this call asked for");
                return Err(Refused {
                    wait: ask.interval,
                    by: HeldBy::Store,
                });
            }
            races += 1;
            ask = SlotAsk {
                now: earliest,
                ahead: latest - earliest,
                hint: taken.due,
                run_hint: taken.run_from,
                ..ask
            };
        };
        match taken.slot {
            Slot::Go { at, .. } => {
                self.count(asking.priority, true);
                if let Some(metrics) = &self.metrics {
                    metrics.budget_rate(rate);
                }
                Ok(Admitted {
                    at,
                    granted: now,
                    known,
                    rate,
                    sending_from: taken.sending_from,
                })
            }
            Slot::Wait(wait) => Err(self.held(asking, full, reach, wait, "booked")),
        }
    }

    /// A call asked as `asking`, whose priority reaches `full` but which
    /// could wait `reach` for a slot, refused: the first comes `wait` after
    /// that (`why`: what holds it).
    fn held(
        &self,
        asking: Asking,
        full: Duration,
        reach: Duration,
        wait: Duration,
        why: &'static str,
    ) -> Refused {
        self.count(asking.priority, false);
        debug!(
            priority = asking.priority.as_str(),
            wait_ms = wait.as_millis() as u64,
            reach_ms = reach.as_millis() as u64,
            why,
            "no FoxReload slot within reach"
        );
        Refused {
            wait,
            by: held_by(full, reach, wait),
        }
    }

    /// FoxReload answered `429` to the call granted `admitted` and sent at
    /// `sent` (our clock): the shared budget is cut (once per cool-down),
    /// from what FoxReload took in its second before that call, estimated
    /// from the stack's pace when this container's slots tell it. This
    /// container slows at once: the shared budget is written a few round
    /// trips later, and its own calls must not go at the old rate
    /// meanwhile.
    pub async fn limited(&self, admitted: Admitted, sent: Duration, retry_after: Option<Duration>) {
        let now = since_epoch(self.clock.now());
        // The slot in FoxReload's clock, when it is measured.
        let theirs = match self.their_offset(now).await {
            Some(offset) if offset.is_negative() => sent.saturating_sub(offset.unsigned_abs()),
            Some(offset) => sent.saturating_add(offset.unsigned_abs()),
            None => sent,
        };
        let (accepted, provisional) = {
            let mut view = lock(&self.view);
            let paced = pace(view.samples.make_contiguous(), admitted.at);
            let rate = paced.map_or(admitted.rate, |paced| paced.min(admitted.rate));
            // Sending began after a quiet spell within FoxReload's second:
            // it took only what was sent since.
            let sending = admitted.sending_from.map(|from| sent.saturating_sub(from));
            let accepted = accepted_before(theirs, rate, sending);
            let provisional = view.adaptive.after_limited(
                now,
                admitted.granted,
                retry_after,
                accepted,
                view.busy,
            );
            if provisional.cut_at >= view.adaptive.state.cut_at {
                view.adaptive.state = provisional;
            }
            (accepted, provisional)
        };
        let shared = self
            .cut_shared(now, admitted.granted, retry_after, accepted)
            .await;
        // The shared state, once known, replaces this container's own cut
        // (unless a newer one came meanwhile); not known (the store failed),
        // its own cut stands, the cautious side.
        let mut view = lock(&self.view);
        if let Some(shared) = shared
            && view.adaptive.state == provisional
        {
            view.adaptive.state = shared;
        }
    }

    /// FoxReload's clock against ours: as this container last read it, or
    /// read again once [`OFFSET_KEPT`] old (`None`: not measured, or the
    /// store failed).
    async fn their_offset(&self, now: Duration) -> Option<time::Duration> {
        if let Some((read_at, offset)) = lock(&self.view).offset
            && now.saturating_sub(read_at) < OFFSET_KEPT
        {
            return offset;
        }
        let offset = self.store.clock_offset().await.ok()?.map(|m| m.offset);
        lock(&self.view).offset = Some((now, offset));
        offset
    }

    /// Cuts the shared budget after a 429 at `now` to a call granted at
    /// `granted`, by a conditional write on the state as read; the shared
    /// state it leaves (`None`: not known, the store failed or others kept
    /// changing it).
    async fn cut_shared(
        &self,
        now: Duration,
        granted: Duration,
        retry_after: Option<Duration>,
        accepted: Option<f64>,
    ) -> Option<Shared> {
        for _ in 0..CUT_ATTEMPTS {
            let seen = match self.store.budget().await {
                Ok(seen) => seen,
                Err(error) => {
                    warn!(%error, "the FoxReload budget could not be read to cut it");
                    return None;
                }
            };
            // Decided from the state as read: the swap holds only on it.
            // (The store stamps a cut with its own count of busy slots.)
            let next = {
                let view = lock(&self.view);
                let mut adaptive = view.adaptive.clone();
                adaptive.state = seen.unwrap_or(Adaptive::new(adaptive.most, Duration::ZERO).state);
                adaptive.after_limited(now, granted, retry_after, accepted, view.busy)
            };
            if seen == Some(next) {
                return seen;
            }
            match self.store.swap_budget(seen.as_ref(), &next).await {
                Ok(true) => {
                    if seen.is_none_or(|seen| next.cut_at > seen.cut_at) {
                        // The limiter now restarts at the end of the
                        // cool-down, where this container may have booked
                        // slots of its own while the write was pending.
                        let landed = self.now();
                        let mut view = lock(&self.view);
                        view.void_before = landed;
                        view.hint = Some(next.cool_until);
                        // The span this cut keeps for creates is the
                        // store's to say.
                        view.creates_until = None;
                    }
                    info!(
                        budget_rps = next.base,
                        cool_down_ms = next.cool_until.saturating_sub(now).as_millis() as u64,
                        "FoxReload budget cut after a 429"
                    );
                    return Some(next);
                }
                Ok(false) => continue,
                Err(error) => {
                    warn!(%error, "the FoxReload budget could not be cut");
                    return None;
                }
            }
        }
        None
    }

    fn count(&self, priority: Priority, granted: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.budget_slot(priority, granted);
        }
    }
}

/// A [`Supplier`] whose calls each take a slot of the stack's budget first
/// (none when `governor` is `None`: governance off).
#[derive(Debug)]
pub struct Governed<F, B, C> {
    pub inner: F,
    pub governor: Option<Arc<Governor<B, C>>>,
}

impl<F: Clone, B, C> Clone for Governed<F, B, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            governor: self.governor.clone(),
        }
    }
}

impl<F, B, C> Governed<F, B, C>
where
    F: Supplier,
    B: BudgetStore + PlacementStore,
    C: Clock,
{
    /// `call` in a slot: one taken before by [`Supplier::ready`] in this
    /// flow, or one taken now (for a create, only one due at once, so that
    /// it leaves close to the time recorded for it).
    async fn governed<T>(
        &self,
        op: Operation,
        call: impl Future<Output = Result<T, SupplierError>>,
    ) -> Result<T, SupplierError> {
        let Some(governor) = &self.governor else {
            return call.await;
        };
        let ready = ASKING.try_with(|(_, ready)| ready.take()).ok().flatten();
        let admitted = match ready {
            // A create made ready just before (its send time recorded since):
            // checked against what this container knows only, since a read
            // of the store here would delay it past the time recorded.
            Some(admitted) if op == Operation::CreateOrder => {
                governor.wait_until(admitted.at).await;
                if governor.seen_cut_since(&admitted) {
                    // Its send time was recorded for that slot: not sent
                    // (its caller records another attempt, in a new slot).
                    info!("a create's slot was voided by a cut of the FoxReload budget; not sent");
                    return Err(governor.voided(op));
                }
                admitted
            }
            // A create must leave within the slack of its recorded send
            // time: only in a slot it was made ready for before recording.
            None if op == Operation::CreateOrder => {
                warn!("a create was not made ready for the FoxReload budget; not sent");
                return Err(SupplierError::Throttled {
                    op,
                    retry_after: UNREADY_CREATE_WAIT,
                    by: HeldBy::Budget,
                });
            }
            // Reserved or made ready before, with work in between; or none.
            held => governor.slot_for(op, held).await?,
        };
        let sent = governor.now();
        let result = call.await;
        if let Err(SupplierError::RateLimited { retry_after, .. }) = &result {
            governor.limited(admitted, sent, *retry_after).await;
        }
        result
    }
}

impl<F, B, C> Supplier for Governed<F, B, C>
where
    F: Supplier,
    B: BudgetStore + PlacementStore,
    C: Clock,
{
    async fn ready(&self, op: Operation) -> Result<(), SupplierError> {
        let Some(governor) = &self.governor else {
            return Ok(());
        };
        // Reserved or made ready already in this flow (not spent since):
        // waited for, and still standing.
        let held = ASKING.try_with(|(_, ready)| ready.take()).ok().flatten();
        let admitted = match held {
            Some(held) if op == Operation::CreateOrder => {
                governor.spanned(held.known);
                if governor.kept(&held, false).await {
                    held
                } else {
                    // Its send time was recorded for that slot.
                    info!("a create's slot was voided by a cut of the FoxReload budget");
                    return Err(governor.voided(op));
                }
            }
            held => governor.slot_for(op, held).await?,
        };
        // Kept for this flow's next call; outside a flow, the slot is
        // spent here (the next call takes its own).
        let _ = ASKING.try_with(|(_, ready)| ready.set(Some(admitted)));
        Ok(())
    }

    async fn reserve(&self, op: Operation) -> Result<Option<OffsetDateTime>, SupplierError> {
        let Some(governor) = &self.governor else {
            return Ok(None);
        };
        // Outside a flow there is nowhere to keep a slot: none is taken.
        let Ok(held) = ASKING.try_with(|(_, ready)| ready.get()) else {
            return Ok(None);
        };
        let admitted = match held {
            Some(held) => held,
            None => {
                let taken = governor
                    .take(Asking::for_call(op), governor.reserve_lead())
                    .await
                    .map_err(|refused| refused.error(op))?;
                let _ = ASKING.try_with(|(_, ready)| ready.set(Some(taken)));
                taken
            }
        };
        Ok(Some(OffsetDateTime::UNIX_EPOCH + admitted.at))
    }

    async fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> Result<SupplierOrder, SupplierError> {
        self.governed(Operation::CreateOrder, self.inner.create_order(request))
            .await
    }

    async fn pay_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.governed(Operation::PayOrder, self.inner.pay_order(supplier_order_id))
            .await
    }

    async fn get_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.governed(Operation::GetOrder, self.inner.get_order(supplier_order_id))
            .await
    }

    async fn list_orders(&self, page: &PageRequest) -> Result<OrderPage, SupplierError> {
        self.governed(Operation::ListOrders, self.inner.list_orders(page))
            .await
    }

    fn observe(&self, observation: Observation) {
        self.inner.observe(observation);
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::foxreload::SupplierStatus;
    use crate::testing::seed::new_order;
    use crate::testing::{MemoryStore, ScriptedSupplier, TestClock};
    use time::macros::datetime;
    use tokio::time::Instant;

    type Stack = Governed<ScriptedSupplier<TestClock>, MemoryStore, TestClock>;

    /// One container's governed supplier over a shared store, at `rps`.
    fn container(store: &MemoryStore, rps: f64) -> (Stack, Metrics) {
        let clock = TestClock::starting_at(datetime!(2026-12-01 12:00 UTC));
        let metrics = Metrics::in_memory(
            "test",
            crate::metrics::MetricSet {
                function: "test",
                declared: &[],
            },
        );
        let governor = Governor::new(
            store.clone(),
            clock,
            GovernorSettings { max_rps: rps },
            Some(metrics.clone()),
        );
        let stack = Governed {
            inner: ScriptedSupplier::new(clock),
            governor: Some(Arc::new(governor)),
        };
        (stack, metrics)
    }

    /// Other containers' creates take four slots at 2/s from `now`: the
    /// next two seconds.
    async fn booked_elsewhere(store: &MemoryStore, now: Duration) {
        for _ in 0..4 {
            let ask = SlotAsk {
                now,
                interval: Duration::from_millis(500),
                ahead: Priority::Create.ahead(),
                hint: None,
                run_hint: None,
                create: true,
            };
            store.take_slot(&ask).await.unwrap();
        }
    }

    /// `n` creates' reads on `stack` at once, each answering when it was
    /// sent (since `start`).
    fn calls_at_once(
        stack: &Arc<Stack>,
        id: &str,
        n: usize,
        start: Instant,
    ) -> Vec<tokio::task::JoinHandle<Duration>> {
        (0..n)
            .map(|_| {
                let (stack, id) = (stack.clone(), id.to_owned());
                tokio::spawn(async move {
                    Asking::new(Priority::Create)
                        .scope(stack.get_order(&id))
                        .await
                        .unwrap();
                    Instant::now() - start
                })
            })
            .collect()
    }

    /// A container at 10/s whose ten calls at once booked a second of
    /// slots, 50 ms on (the first sent): its store, the container, when
    /// they began, and the calls.
    async fn a_second_booked() -> (
        MemoryStore,
        Arc<Stack>,
        Instant,
        Vec<tokio::task::JoinHandle<Duration>>,
    ) {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let stack = Arc::new(stack);
        let id = placed(&stack);
        let start = Instant::now();
        let calls = calls_at_once(&stack, &id, 10, start);
        tokio::time::sleep(Duration::from_millis(50)).await;
        (store, stack, start, calls)
    }

    /// When `calls` were sent, in order.
    async fn sent_times(calls: Vec<tokio::task::JoinHandle<Duration>>) -> Vec<Duration> {
        let mut sent = Vec::new();
        for call in calls {
            sent.push(call.await.unwrap());
        }
        sent.sort();
        sent
    }

    /// A call granted, known and sent at `at` at 10/s: the one a 429
    /// answers.
    fn refused_at(at: Duration) -> Admitted {
        Admitted {
            at,
            granted: at,
            known: at,
            rate: 10.0,
            sending_from: None,
        }
    }

    /// `error` is a call not sent for want of a slot, held back by `by`.
    fn assert_held_by(error: &SupplierError, by: HeldBy) {
        assert!(
            matches!(error, SupplierError::Throttled { by: held, .. } if *held == by),
            "{error:?}"
        );
    }

    /// Every two of `sent` at least `gap` apart.
    fn assert_spaced(sent: &[Duration], gap: Duration) {
        assert!(sent.windows(2).all(|w| w[1] - w[0] >= gap), "{sent:?}");
    }

    /// The one `take_slot` failure set up on `store` is still there: the
    /// store was never asked for a slot since.
    async fn assert_slot_never_asked(store: &MemoryStore, stack: &Stack) {
        let ask = SlotAsk {
            now: stack.governor.as_ref().unwrap().now(),
            interval: Duration::from_millis(100),
            ahead: Duration::ZERO,
            hint: None,
            run_hint: None,
            create: false,
        };
        assert!(store.take_slot(&ask).await.is_err(), "the store was asked");
    }

    fn placed(stack: &Stack) -> String {
        let request = new_order("g").supplier_request(false);
        stack
            .inner
            .place_foreign(&request, datetime!(2026-12-01 11:59 UTC))
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_sent_in_the_stacks_slots_an_interval_apart() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 5.0);
        let id = placed(&stack);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..6 {
            Asking::new(Priority::Create)
                .scope(stack.get_order(&id))
                .await
                .unwrap();
            sent.push(Instant::now() - start);
        }
        let gaps: Vec<u128> = sent.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        assert!(gaps.iter().all(|gap| *gap == 200), "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_finding_no_slot_within_reach_is_not_sent_nor_the_next_asked_of_the_store() {
        let store = MemoryStore::new();
        let (stack, metrics) = container(&store, 2.0);
        let id = placed(&stack);
        // Other containers' creates book the next two seconds.
        booked_elsewhere(&store, since_epoch(datetime!(2026-12-01 12:00 UTC))).await;
        let before = stack.inner.calls(Operation::GetOrder);
        let refused = Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        let SupplierError::Throttled {
            retry_after,
            op,
            by,
        } = refused
        else {
            panic!("{refused:?}")
        };
        assert_eq!(op, Operation::GetOrder);
        assert_eq!(by, HeldBy::Budget);
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(2));
        assert_eq!(stack.inner.calls(Operation::GetOrder), before, "not sent");
        metrics.flush();
        let lines = metrics.lines().join("\n");
        assert!(lines.contains(r#""Priority":"poll""#), "{lines}");
        assert!(lines.contains(r#""BudgetDenied":1"#), "{lines}");
        // This container saw the limiter booked two seconds ahead: the
        // next poll is refused on that alone, with no write (asked, the
        // store would fail, and the refusal be the store's).
        store.fail("take_slot", 1);
        let again = Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        assert_held_by(&again, HeldBy::Budget);
        assert_slot_never_asked(&store, &stack).await;
        // Once the booked slots are near, a poll asks again and is sent.
        tokio::time::advance(Duration::from_millis(1_600)).await;
        Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_pays_the_order_it_found_as_a_create_whatever_the_orders_priority() {
        let store = MemoryStore::new();
        let (stack, metrics) = container(&store, 10.0);
        let id = placed(&stack);
        // Other containers' creates book the next two seconds: past a
        // stalled order's reach, within a create's.
        booked_elsewhere(&store, since_epoch(datetime!(2026-12-01 12:00 UTC))).await;
        let start = Instant::now();
        let (read, paid) = Asking::new(Priority::Stalled)
            .scope(async {
                let read = stack.get_order(&id).await;
                (read, stack.pay_order(&id).await)
            })
            .await;
        assert_held_by(&read.unwrap_err(), HeldBy::Budget);
        assert_eq!(paid.unwrap().status, SupplierStatus::Paid);
        assert_eq!(stack.inner.calls(Operation::PayOrder), 1);
        // In the first slot after the others' (at 2 s).
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        metrics.flush();
        let lines = metrics.lines().join("\n");
        assert!(lines.contains(r#""Priority":"create""#), "{lines}");
        assert!(lines.contains(r#""Priority":"stalled""#), "{lines}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flows_next_call_takes_the_slot_after_its_own_at_a_budget_cut_below_its_reach() {
        let store = MemoryStore::new();
        // 2.5 a second: 400 ms apart, four times a stalled order's 100 ms.
        let (stack, _) = container(&store, 2.5);
        let id = placed(&stack);
        let start = Instant::now();
        let sent = Asking::new(Priority::Stalled)
            .scope(async {
                let mut sent = Vec::new();
                // A read, then a list's pages, then the next order's read.
                for _ in 0..4 {
                    stack.get_order(&id).await.unwrap();
                    sent.push(Instant::now() - start);
                }
                sent
            })
            .await;
        let millis: Vec<u128> = sent.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [0, 400, 800, 1_200]);
        // Two slots booked ahead by others: past its reach, still held.
        let (other, _) = container(&store, 2.5);
        for _ in 0..2 {
            Asking::new(Priority::Create)
                .scope(other.reserve(Operation::CreateOrder))
                .await
                .unwrap();
        }
        let refused = Asking::new(Priority::Stalled)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        assert_held_by(&refused, HeldBy::Budget);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flow_made_ready_sends_its_create_in_the_slot_it_waited_for() {
        let store = MemoryStore::new();
        let (stack, metrics) = container(&store, 1.0);
        // Another container's create took the slot due now.
        let (other, _) = container(&store, 1.0);
        Asking::new(Priority::Create)
            .scope(other.ready(Operation::CreateOrder))
            .await
            .unwrap();
        let request = new_order("g").supplier_request(false);
        let start = Instant::now();
        let created = Asking::new(Priority::Create)
            .scope(async {
                stack.ready(Operation::CreateOrder).await.unwrap();
                let waited = Instant::now() - start;
                let made = stack.create_order(&request).await.unwrap();
                (waited, Instant::now() - start, made)
            })
            .await;
        assert_eq!(created.0, Duration::from_secs(1), "waited for its slot");
        assert_eq!(created.1, created.0, "then sent at once");
        assert_eq!(created.2.status, SupplierStatus::Active);
        metrics.flush();
        let lines = metrics.lines().join("\n");
        assert!(lines.contains(r#""BudgetGranted":1"#), "one slot: {lines}");
        // Not made ready, a create is sent only in a slot due at once.
        let refused = Asking::new(Priority::Create)
            .scope(stack.create_order(&request))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, SupplierError::Throttled { .. }),
            "{refused:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cuts_the_budget_every_container_then_follows() {
        let store = MemoryStore::new();
        let (first, _) = container(&store, 50.0);
        let (second, _) = container(&store, 50.0);
        let id = placed(&first);
        assert_eq!(placed(&second), id);
        let start = Instant::now();
        first.inner.fail(
            Operation::GetOrder,
            SupplierError::RateLimited {
                op: Operation::GetOrder,
                retry_after: Some(Duration::from_secs(2)),
            },
        );
        let limited = Asking::new(Priority::Poll)
            .scope(first.get_order(&id))
            .await
            .unwrap_err();
        assert!(matches!(limited, SupplierError::RateLimited { .. }));
        let shared = store.budget().await.unwrap().expect("cut");
        assert!(shared.base < 50.0 * 0.91, "{shared:?}");
        // The other container waits out the cool-down before its create.
        Asking::new(Priority::Create)
            .scope(second.get_order(&id))
            .await
            .unwrap();
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        assert!(second.governor.as_ref().unwrap().budget() <= shared.base + 0.5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cuts_from_the_pace_the_stack_sent_at_not_from_its_budget() {
        // A budget of 50/s, but the stack has only 25 calls a second to
        // send: one every 40 ms.
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 50.0);
        let id = placed(&stack);
        for _ in 0..45 {
            Asking::new(Priority::Poll)
                .scope(stack.get_order(&id))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        // Refused 0.8 s into FoxReload's second: it took about 0.8 × 25 =
        // 20 in it (not 0.8 × 50 = 40), and the cut goes a little under.
        stack.inner.fail(
            Operation::GetOrder,
            SupplierError::RateLimited {
                op: Operation::GetOrder,
                retry_after: None,
            },
        );
        let into_second = stack.governor.as_ref().unwrap().now().subsec_millis();
        assert_eq!(into_second, 800);
        let limited = Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        assert!(matches!(limited, SupplierError::RateLimited { .. }));
        let cut = store.budget().await.unwrap().expect("cut");
        assert!((cut.base - 19.0).abs() < 0.5, "{cut:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_soon_after_the_stack_began_sending_cuts_to_what_it_sent_since() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 50.0);
        let id = placed(&stack);
        let governor = stack.governor.clone().unwrap();
        // One call, then quiet until half a second into a later FoxReload
        // second, then as fast as the budget allows: every 20 ms.
        let poll = || Asking::new(Priority::Poll).scope(stack.get_order(&id));
        poll().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(governor.now().subsec_millis(), 500);
        while governor.now().subsec_millis() < 800 {
            poll().await.unwrap();
        }
        // Refused 0.8 s into the second: FoxReload took the 15 sent since
        // 0.5 s (a little under: 14.25), not 0.8 × 50 = 40.
        stack.inner.fail(
            Operation::GetOrder,
            SupplierError::RateLimited {
                op: Operation::GetOrder,
                retry_after: None,
            },
        );
        let limited = poll().await.unwrap_err();
        assert!(matches!(limited, SupplierError::RateLimited { .. }));
        let cut = store.budget().await.unwrap().expect("cut");
        assert!((cut.base - 14.25).abs() < 1.0, "{cut:?}");
    }

    /// Another container cuts the shared budget now: to `base`, cooling
    /// down for `cool`.
    async fn cut_elsewhere(store: &MemoryStore, stack: &Stack, base: f64, cool: Duration) {
        let now = stack.governor.as_ref().unwrap().now();
        let seen = store.budget().await.unwrap();
        let cut = crate::domain::budget::Shared {
            base,
            cool_until: now + cool,
            cut_at: now,
            busy_at_cut: 0,
        };
        assert!(store.swap_budget(seen.as_ref(), &cut).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_loses_the_race_for_a_slot_asks_again_and_is_never_refused_as_the_budget() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let id = placed(&stack);
        // Others win the slots this create asks for twice: it asks again,
        // and is sent.
        store.race(2);
        Asking::new(Priority::Create)
            .scope(stack.get_order(&id))
            .await
            .unwrap();
        assert_eq!(stack.inner.calls(Operation::GetOrder), 1);
        // Losing every time: refused, but as the store's race, not as our
        // budget spent (a create is answered unavailable, not busy).
        store.race(10);
        let refused = Asking::new(Priority::Create)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        assert_held_by(&refused, HeldBy::Store);
        assert_eq!(stack.inner.calls(Operation::GetOrder), 1, "not sent");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_cut_the_creates_it_voided_take_their_slots_again_before_any_poll() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let governor = stack.governor.clone().unwrap();
        let id = placed(&stack);
        let start = governor.now();
        // Other containers' creates book the next two seconds; a 429 then
        // cuts the budget, cooling down half a second: their slots are
        // void, and the limiter restarts at start + 0.5 s.
        booked_elsewhere(&store, start).await;
        cut_elsewhere(&store, &stack, 5.0, Duration::from_millis(500)).await;
        // A poll asking now would have the restart within its reach: held,
        // as the span the creates had booked, moved on by the cool-down
        // (to start + 2.5 s), is theirs. Not sent, and counted nowhere as
        // FoxReload's.
        let poll = || Asking::new(Priority::Poll).scope(stack.get_order(&id));
        let held = poll().await.unwrap_err();
        assert!(
            matches!(held, SupplierError::Throttled { by: HeldBy::Budget, retry_after, .. }
                if retry_after == Duration::from_secs(2)),
            "{held:?}"
        );
        assert_eq!(stack.inner.calls(Operation::GetOrder), 0, "not sent");
        // Asked again, it is held on what this container saw: no write.
        store.fail("take_slot", 1);
        assert!(poll().await.is_err());
        assert_slot_never_asked(&store, &stack).await;
        // A create (one the cut voided, asking again) takes the restart.
        Asking::new(Priority::Create)
            .scope(stack.get_order(&id))
            .await
            .unwrap();
        assert_eq!(governor.now() - start, Duration::from_millis(500));
        // Once the span is over, polls are sent again.
        tokio::time::advance(Duration::from_millis(2_000)).await;
        poll().await.unwrap();
        assert_eq!(stack.inner.calls(Operation::GetOrder), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_a_cut_voided_while_work_came_between_is_not_spent() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let id = placed(&stack);
        let request = new_order("g").supplier_request(false);
        let start = Instant::now();
        // A slot reserved (2 s on: others booked up to then), then a slow
        // store write (the send time), during which another container cuts
        // the budget: read just before the slot comes, the cut voids it;
        // the create is not made ready, so never sent.
        booked_elsewhere(&store, stack.governor.as_ref().unwrap().now()).await;
        let refused = Asking::new(Priority::Create)
            .scope(async {
                stack.reserve(Operation::CreateOrder).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                cut_elsewhere(&store, &stack, 5.0, Duration::from_millis(500)).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                stack.ready(Operation::CreateOrder).await?;
                stack.create_order(&request).await
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                SupplierError::Throttled {
                    op: Operation::CreateOrder,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(stack.inner.calls(Operation::CreateOrder), 0, "not sent");
        // Once the span that cut kept for creates is over (the creates'
        // slots, to 2.5 s, moved on by its cool-down): a read made ready,
        // its slot past when work held it up 0.2 s after another cut, reads
        // the shared budget though late: it takes a new slot, at the end of
        // that cut's cool-down.
        tokio::time::advance(Duration::from_secs(3)).await;
        let (cut_at, sent_at) = Asking::new(Priority::Poll)
            .scope(async {
                stack.ready(Operation::GetOrder).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let cut_at = Instant::now() - start;
                cut_elsewhere(&store, &stack, 2.5, Duration::from_millis(500)).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                stack.get_order(&id).await.unwrap();
                (cut_at, Instant::now() - start)
            })
            .await;
        assert_eq!(sent_at, cut_at + Duration::from_millis(500));
        // Within a moment of its grant and with no cut seen, a slot stands
        // without a read of the shared budget.
        store.fail("budget", 100);
        Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_held_up_past_its_slot_is_not_held_up_further_by_a_read_of_the_budget() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let request = new_order("g").supplier_request(false);
        let start = Instant::now();
        // Reading the shared budget takes a second.
        store.slow("budget", Duration::from_secs(1));
        let sent = Asking::new(Priority::Create)
            .scope(async {
                stack.reserve(Operation::CreateOrder).await.unwrap();
                // Writes hold it up 0.3 s past its slot.
                tokio::time::sleep(Duration::from_millis(300)).await;
                stack.ready(Operation::CreateOrder).await.unwrap();
                stack.create_order(&request).await.unwrap();
                Instant::now() - start
            })
            .await;
        // Sent at once: a read now would end a second after its slot (and
        // its send time, recorded for that slot).
        assert_eq!(sent, Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_reserved_is_waited_for_by_whatever_call_spends_it() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 2.0);
        let id = placed(&stack);
        let start = Instant::now();
        // Other containers' creates book the next two seconds.
        booked_elsewhere(&store, stack.governor.as_ref().unwrap().now()).await;
        // Outside a flow there is nowhere to keep a slot: none is taken.
        assert_eq!(stack.reserve(Operation::GetOrder).await.unwrap(), None);
        let (slot, sent) = Asking::new(Priority::Create)
            .scope(async {
                let slot = stack.reserve(Operation::CreateOrder).await.unwrap();
                // Not waited for with `ready`: a read spends it, in time.
                stack.get_order(&id).await.unwrap();
                (slot.unwrap(), Instant::now() - start)
            })
            .await;
        assert_eq!(slot, datetime!(2026-12-01 12:00:02 UTC));
        assert_eq!(sent, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_a_slow_store_holds_up_leave_an_interval_apart_once_its_round_trip_is_known() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let stack = Arc::new(stack);
        let id = placed(&stack);
        // Every slot is known a second after it is asked for.
        store.slow("take_slot", Duration::from_secs(1));
        let start = Instant::now();
        Asking::new(Priority::Create)
            .scope(stack.get_order(&id))
            .await
            .unwrap();
        // Its slot was due when asked: spent late, when the answer came.
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        // Now asked for a round trip ahead: five calls at once, held up
        // alike, each leave in their own slot, not all as the answers come.
        let start = Instant::now();
        let calls = calls_at_once(&stack, &id, 5, start);
        let sent = sent_times(calls).await;
        let expected: Vec<Duration> = (0..5)
            .map(|n| Duration::from_secs(1) + Duration::from_millis(100) * n)
            .collect();
        assert_eq!(sent, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_reserves_its_slot_as_far_ahead_as_its_flows_writes_last_took() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 2.0);
        let request = new_order("g").supplier_request(false);
        let start = Instant::now();
        // A flow: its slot reserved, 1.5 s of writes, then the create.
        let (stack, request) = (&stack, &request);
        let flow = move || {
            Asking::new(Priority::Create).scope(async move {
                let slot = stack.reserve(Operation::CreateOrder).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                stack.ready(Operation::CreateOrder).await.unwrap();
                stack.create_order(request).await.unwrap();
                (slot.unwrap(), Instant::now() - start)
            })
        };
        let at = |offset: Duration| datetime!(2026-12-01 12:00 UTC) + offset;
        // The first reserves the slot due at once: the writes end after it,
        // and the create leaves late.
        let (slot, sent) = flow().await;
        assert_eq!(slot, at(Duration::ZERO));
        assert_eq!(sent, Duration::from_millis(1_500));
        // The next is reserved as far ahead as those writes took, and
        // leaves in its slot.
        let (slot, sent) = flow().await;
        assert_eq!(slot, at(Duration::from_millis(3_000)));
        assert_eq!(sent, Duration::from_millis(3_000));
        assert_eq!(stack.inner.calls(Operation::CreateOrder), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_slows_its_own_container_at_once_while_the_shared_cut_is_written() {
        let (store, stack, start, calls) = a_second_booked().await;
        // The one sent at once was refused at the start of FoxReload's
        // second; writing the cut takes the store two seconds.
        store.slow("swap_budget", Duration::from_secs(2));
        let governor = stack.governor.as_ref().unwrap().clone();
        let now = governor.now();
        let refused = refused_at(now - Duration::from_millis(50));
        let cut = tokio::spawn(async move { governor.limited(refused, refused.at, None).await });
        let sent = sent_times(calls).await;
        cut.await.unwrap();
        // The others went neither at the old rate (every 0.1 s) nor in the
        // cool-down (0.5 s from the 429), though the shared budget was cut
        // only at 2 s: a quarter of the old rate, every 0.4 s.
        assert_eq!(sent[0], Duration::ZERO);
        assert!(sent[1] >= Duration::from_millis(550), "{sent:?}");
        assert_spaced(&sent[1..], Duration::from_millis(390));
        let shared = store.budget().await.unwrap().expect("cut");
        assert_eq!(shared.base, 2.5);
        // The container follows the shared budget. Nine calls a budget's
        // interval apart never kept the limiter booked two seconds running
        // (the store counts no busy slot since the cut): it has not grown.
        let governor = stack.governor.as_ref().unwrap();
        {
            let view = lock(&governor.view);
            assert_eq!(view.adaptive.state, shared);
            assert_eq!(view.busy, shared.busy_at_cut);
        }
        assert_eq!(governor.budget(), 2.5);
        assert!(Instant::now() - start > Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_whose_cut_could_not_be_written_keeps_to_it_without_asking_the_store() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let id = placed(&stack);
        // FoxReload asks for 30 s; the shared budget cannot be read.
        stack.inner.fail(
            Operation::GetOrder,
            SupplierError::RateLimited {
                op: Operation::GetOrder,
                retry_after: Some(Duration::from_secs(30)),
            },
        );
        store.fail("budget", 1);
        let limited = Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        assert!(matches!(limited, SupplierError::RateLimited { .. }));
        assert_eq!(store.budget().await.unwrap(), None, "not cut");
        // Its own cut stands: a poll is held back for the cool-down, told
        // so without a slot asked of the store (which would fail here).
        store.fail("take_slot", 1);
        let held = Asking::new(Priority::Poll)
            .scope(stack.get_order(&id))
            .await
            .unwrap_err();
        let SupplierError::Throttled { retry_after, .. } = held else {
            panic!("{held:?}")
        };
        assert!(retry_after > Duration::from_secs(29), "{retry_after:?}");
        assert_slot_never_asked(&store, &stack).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_made_while_a_call_waits_out_its_last_round_trip_voids_its_slot() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let stack = Arc::new(stack);
        let id = placed(&stack);
        let governor = stack.governor.as_ref().unwrap().clone();
        // Others booked the next two seconds; then each slot is known half
        // a second after it is asked for.
        booked_elsewhere(&store, governor.now()).await;
        store.slow("take_slot", Duration::from_millis(500));
        let start = Instant::now();
        let call = calls_at_once(&stack, &id, 1, start);
        // Its slot (2 s) is checked against the budget at 1.5 s; at 1.7 s
        // this container is answered 429 and cuts, cooling down to 2.2 s.
        tokio::time::sleep(Duration::from_millis(1_700)).await;
        let now = governor.now();
        let refused = refused_at(now);
        governor.limited(refused, now, None).await;
        let sent = sent_times(call).await;
        assert!(sent[0] >= Duration::from_millis(2_200), "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_after_its_containers_429_waits_out_the_cool_down_the_shared_budget_does_not_hold_yet()
     {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let id = placed(&stack);
        let governor = stack.governor.as_ref().unwrap().clone();
        // The shared cut takes two seconds to write.
        store.slow("swap_budget", Duration::from_secs(2));
        let now = governor.now();
        let refused = refused_at(now);
        let cut = tokio::spawn(async move { governor.limited(refused, now, None).await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let start = Instant::now();
        Asking::new(Priority::Create)
            .scope(stack.get_order(&id))
            .await
            .unwrap();
        // Not at once: at the end of its own cool-down (half a second).
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(499),
            "sent at the end of the cool-down"
        );
        cut.await.unwrap();
    }

    /// `stack` reads order `id` while its store takes a second to give a
    /// slot: its container remembers round trips of a second (the store
    /// stays that slow).
    async fn remembers_a_slow_round_trip(store: &MemoryStore, stack: &Stack, id: &str) {
        store.slow("take_slot", Duration::from_secs(1));
        Asking::new(Priority::Create)
            .scope(stack.get_order(id))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_deadline_comes_before_a_round_trip_is_refused_without_asking_the_store() {
        let store = MemoryStore::new();
        let (stack, _) = container(&store, 10.0);
        let id = placed(&stack);
        remembers_a_slow_round_trip(&store, &stack, &id).await;
        // Round trips take a second; this create may wait half of one.
        store.fail("take_slot", 1);
        let asking = Asking {
            priority: Priority::Create,
            until: Some(Instant::now() + Duration::from_millis(500)),
        };
        let refused = asking.scope(stack.get_order(&id)).await.unwrap_err();
        // Held back by the store's pace, not by a spent budget.
        assert_held_by(&refused, HeldBy::Store);
        assert_slot_never_asked(&store, &stack).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_too_late_for_a_round_trip_is_held_by_its_deadline_when_its_reach_has_a_free_slot()
     {
        // Others booked the next 3 s (a create's reach has a free slot),
        // or the next 20 s (it has none).
        for (booked_for, held_by) in [(3, HeldBy::Deadline), (20, HeldBy::Budget)] {
            let store = MemoryStore::new();
            let (stack, _) = container(&store, 2.0);
            let governor = stack.governor.clone().unwrap();
            let id = placed(&stack);
            remembers_a_slow_round_trip(&store, &stack, &id).await;
            store.slow("take_slot", Duration::ZERO);
            let now = governor.now();
            for _ in 0..booked_for * 2 {
                let ask = SlotAsk {
                    now,
                    interval: Duration::from_millis(500),
                    ahead: Duration::from_secs(3_600),
                    hint: None,
                    run_hint: None,
                    create: true,
                };
                store.take_slot(&ask).await.unwrap();
            }
            // This container learns how far the limiter is booked.
            let _ = Asking::new(Priority::Create)
                .scope(stack.reserve(Operation::GetOrder))
                .await;
            // A create with half a second left: no time for a round trip.
            let asking = Asking {
                priority: Priority::Create,
                until: Some(Instant::now() + Duration::from_millis(500)),
            };
            let refused = asking.scope(stack.get_order(&id)).await.unwrap_err();
            assert!(
                matches!(refused, SupplierError::Throttled { by, .. } if by == held_by),
                "booked for {booked_for} s: {refused:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slots_booked_before_a_cut_are_taken_again_at_the_new_rate() {
        let (store, stack, _, calls) = a_second_booked().await;
        // The one sent at once was refused at the start of FoxReload's
        // second: the budget is cut to a quarter, 2.5/s.
        let governor = stack.governor.as_ref().unwrap();
        let now = since_epoch(datetime!(2026-12-01 12:00 UTC));
        governor.limited(refused_at(now), now, None).await;
        let cut = store.budget().await.unwrap().expect("cut");
        assert_eq!(cut.base, 2.5);
        let sent = sent_times(calls).await;
        // The first went before the cut; the others, instead of every
        // 0.1 s, from the end of the cool-down every 0.4 s (a little less
        // once the limiter has been booked two seconds running).
        assert_eq!(sent[0], Duration::ZERO);
        let cool_down = cut.cool_until - now;
        assert!(sent[1] >= cool_down, "{sent:?}");
        assert_spaced(&sent[1..], Duration::from_millis(380));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_budget_nothing_is_asked_of_the_store() {
        let store = MemoryStore::new();
        let (mut stack, _) = container(&store, 1.0);
        stack.governor = None;
        let id = placed(&stack);
        store.fail("take_slot", 100);
        for _ in 0..10 {
            stack.get_order(&id).await.unwrap();
        }
        assert_eq!(store.budget().await.unwrap(), None);
    }
}
