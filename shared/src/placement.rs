//! Placing an order at FoxReload without buying twice, or taking another
//! buyer's order: the POST and the reconciliation that create-order and
//! poll-order share.
//!
//! Every POST's send time is recorded on the order before it is sent (the
//! first one with the intent), so reconciliation knows the windows in which
//! one of our POSTs could have made an order. FoxReload's order list is
//! then read back, page after page, until it is older than those windows,
//! and each entry is compared exactly ([`crate::domain::reconcile`]). An
//! entry that cannot be evaluated is fetched by id; still unreadable, or
//! more fitting candidates than our undecided orders that could own them,
//! and the answer is *ambiguous*: nothing is claimed, nothing is bought, and
//! poll-order alerts operations. "Nothing" is an answer only when the list
//! was read back far enough, twice, after every window closed.

use crate::clock::Clock;
use crate::domain::OrderStatus;
use crate::domain::reconcile::{
    ClockOffset, Fit, Margins, Owners, Verdict, Wanted, Window, closes, decide, doubted_windows,
    fit, opens, resembles, windows,
};
use crate::foxreload::{
    CreateOrderRequest, PageRequest, Supplier, SupplierError, SupplierOrder, SupplierStatus,
};
use crate::store::{
    Claim, OrderRecord, PlacementStore, StoreError, SupplierProblem, SupplierState,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

/// The most a POST may be sent after the time recorded for it; well inside
/// [`Margins::margin`], which widens every window.
pub const SEND_SLACK: Duration = Duration::from_millis(800);

/// Figures of a reconciliation.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Orders asked for per page of the list.
    pub page_size: u32,
    /// Pages read at most; a list not read back far enough within them
    /// leaves the answer undecided.
    pub max_pages: u32,
    /// How the windows are widened.
    pub margins: Margins,
    /// Whether our orders are FoxReload mock orders.
    pub is_mock: bool,
    /// Pause before the re-check of a list that showed nothing.
    pub recheck_delay: Duration,
    /// The time one FoxReload call may take: none starts with less left.
    pub call_budget: Duration,
    /// A stored clock measure older than this is replaced by any new one.
    pub clock_stale_after: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            page_size: 50,
            max_pages: 20,
            margins: Margins::default(),
            is_mock: false,
            recheck_delay: Duration::from_secs(1),
            call_budget: Duration::from_secs(9),
            clock_stale_after: Duration::from_secs(600),
        }
    }
}

/// How a reconciliation ended.
#[derive(Clone, Debug)]
pub enum Found {
    /// Our order now holds this supplier order.
    Claimed(SupplierOrder),
    /// Read back far enough, twice, after our POSTs' windows closed: nothing
    /// of ours is there, and buying again is safe.
    Nothing,
    /// The list could not be read far enough, or no time was left: try
    /// again later.
    Undecided(SupplierProblem),
    /// Candidates that cannot be told apart from somebody else's: nothing
    /// is claimed or bought until they can, or an operator settles it.
    Ambiguous {
        problem: SupplierProblem,
        candidates: Vec<String>,
    },
    /// Our order moved on meanwhile (another worker settled it).
    Moved,
}

/// A problem saying why a create could not be decided.
pub fn undecided(why: impl Into<String>) -> SupplierProblem {
    SupplierProblem {
        kind: "undecided".into(),
        status: None,
        code: None,
        detail: Some(why.into()),
    }
}

/// The kind of an undecided reconciliation that waits for other orders of
/// ours whose POSTs may still be in flight.
pub const OWNERS_IN_FLIGHT: &str = "owners_in_flight";

/// How one POST ended.
#[derive(Debug)]
pub enum Posted {
    /// Made, and now held by our order.
    Claimed(SupplierOrder),
    /// Made, but another of our orders claimed it first (it reconciled onto
    /// it while our answer was in flight): reconcile to find ours.
    TakenByAnother,
    /// Not sent: another worker recorded a POST or settled the order.
    Moved,
    /// Not sent: its send time could not be recorded close enough to the
    /// send (the store is slow): undecided, try again later.
    NotSent,
    /// Sent and failed.
    Failed(SupplierError),
}

impl ReconcileOptions {
    /// These options for the FoxReload client `settings` build: a call may
    /// take the client's timeout and a second more, a POST is in flight for
    /// at most that timeout, and mock orders are what we ask for.
    pub fn fitted_to(mut self, settings: &crate::settings::FoxReloadSettings) -> Self {
        self.call_budget = settings.request_timeout + crate::settings::CALL_SLACK;
        self.margins.request_timeout = settings.request_timeout;
        self.is_mock = settings.mock_orders;
        self
    }

    /// Whether a FoxReload call still fits before `deadline`.
    pub fn time_left(&self, deadline: Instant) -> bool {
        Instant::now() + self.call_budget <= deadline
    }

    /// Sleeps `pause` if there is time for it and a call after it.
    pub async fn pause(&self, pause: Duration, deadline: Instant) -> bool {
        if Instant::now() + pause + self.call_budget > deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }

    /// POSTs `request` for `order_id` and claims what it made. `posts` is
    /// the number of POSTs recorded on the order (counted up as this one is
    /// recorded); `recorded` the send time already recorded for this one
    /// (the intent's, for create-order's first POST). A POST is sent only
    /// within [`SEND_SLACK`] of the time recorded for it: a slow store
    /// write first records a fresh time, so the windows reconciliation
    /// matches in always hold the real send. A successful create also
    /// measures FoxReload's clock.
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
        let mut recorded = recorded;
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
        // connection) stays unknown, so it is never counted as sure to have
        // made an order.
        if !matches!(outcome, Err(SupplierError::Unreachable { .. })) {
            mark_known(store, order_id, *posts).await;
        }
        let created = match outcome {
            Ok(created) => created,
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

    /// Looks through FoxReload's orders for `order`'s, claiming it when it
    /// is told apart for sure.
    pub async fn run(
        &self,
        store: &impl PlacementStore,
        supplier: &impl Supplier,
        clock: &impl Clock,
        order: &OrderRecord,
        deadline: Instant,
    ) -> Result<Found, StoreError> {
        // A measure is used as it stands now: its offset stays the centre,
        // only less sure with age. An absurd one is not used.
        let now = clock.now();
        let measured = store
            .clock_offset()
            .await?
            .map(|m| m.aged(now))
            .filter(ClockOffset::is_plausible);
        let windows = windows(&order.posted_at, measured.as_ref(), &self.margins);
        // Whatever FoxReload's clock says, an order our POST made exists by
        // the time its timeout and the margin have passed.
        let last_post = order.posted_at.iter().max().copied();
        if let Some(last) = last_post {
            let closed = last + self.margins.request_timeout + self.margins.margin + SEND_SLACK;
            let wait: Duration = (closed - clock.now()).try_into().unwrap_or_default();
            if !wait.is_zero() && !self.pause(wait, deadline).await {
                return Ok(Found::Undecided(undecided(
                    "a POST may still be in flight and no time is left to wait for it",
                )));
            }
        }
        // "Nothing" takes two looks; orders of ours in flight are waited
        // for (until they settle) a few times before leaving it undecided.
        let (mut nothing, mut waits) = (0, 0);
        loop {
            match self
                .look(
                    store,
                    supplier,
                    clock,
                    order,
                    &windows,
                    measured.as_ref(),
                    deadline,
                )
                .await?
            {
                Found::Nothing => {
                    nothing += 1;
                    if nothing == 2 {
                        return Ok(Found::Nothing);
                    }
                    if !self.pause(self.recheck_delay, deadline).await {
                        return Ok(Found::Undecided(undecided("no time left to re-check")));
                    }
                }
                Found::Undecided(problem) if problem.kind == OWNERS_IN_FLIGHT && waits < 3 => {
                    waits += 1;
                    // A quarter of the time an order in flight takes to
                    // settle, at least the re-check delay.
                    let settle = self.margins.request_timeout + self.margins.margin + SEND_SLACK;
                    let pause = self.recheck_delay.max(settle / 4).min(settle);
                    if !self.pause(pause, deadline).await {
                        return Ok(Found::Undecided(problem));
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// One read of the list back past the windows, and a decision.
    #[allow(clippy::too_many_arguments)]
    async fn look(
        &self,
        store: &impl PlacementStore,
        supplier: &impl Supplier,
        clock: &impl Clock,
        order: &OrderRecord,
        windows: &[Window],
        measured: Option<&ClockOffset>,
        deadline: Instant,
    ) -> Result<Found, StoreError> {
        let wanted = Wanted {
            lines: &order.lines,
            total_price: order.total_price.as_deref(),
            is_mock: self.is_mock,
        };
        // Look-alikes that would be ours were the measure off keep the
        // answer from being "nothing there".
        let wide = doubted_windows(&order.posted_at, measured, &self.margins);
        // Orders of ours whose POSTs were answered (or timed out) before now
        // are in the list as read; later ones may not be.
        let snapshot = clock.now();
        let mut listed = match self
            .read_back(supplier, &wanted, windows, &wide, deadline)
            .await
        {
            Ok(listed) => listed,
            Err(found) => return Ok(found),
        };
        let mut fitting = listed.fitting;
        let mut unknown = Vec::new();
        for (id, why) in listed.unknown {
            // The list may abbreviate entries: the order itself may say.
            if !self.time_left(deadline) {
                return Ok(Found::Undecided(undecided(
                    "no time left to read unclear entries",
                )));
            }
            match supplier
                .get_order(&id)
                .await
                .map(|full| (fit(&wanted, windows, &full), full))
            {
                Ok((Fit::Fits(at), _)) => {
                    fitting.insert(id, at);
                }
                Ok((Fit::No, full)) => {
                    if resembles(&wanted, &wide, &full) {
                        listed.near.insert(id);
                    }
                }
                Ok((Fit::Unknown(why), _)) => unknown.push(format!("{id} ({why})")),
                Err(error) => unknown.push(format!("{id} ({why}; read failed: {error})")),
            }
        }
        if !unknown.is_empty() {
            warn!(entries = ?unknown, "FoxReload orders that cannot be evaluated");
            return Ok(Found::Ambiguous {
                problem: ambiguous(format!(
                    "FoxReload orders that may be ours cannot be evaluated: {}",
                    unknown.join(", ")
                )),
                candidates: unknown,
            });
        }
        let fitting: Vec<(String, OffsetDateTime)> = fitting.into_iter().collect();
        // Other orders of ours settle while this one looks: the candidates
        // still free and the orders that could own them are read until the
        // free ones are the same before and after the owners were counted.
        for _ in 0..5 {
            let unclaimed = unclaimed(store, &fitting).await?;
            if unclaimed.is_empty() {
                return self.nothing_unless_alike(store, &listed.near).await;
            }
            let owners = self
                .owners(store, order, &unclaimed, measured, snapshot, &listed.others)
                .await?;
            if self::unclaimed(store, &unclaimed).await? != unclaimed {
                continue;
            }
            let id = match decide(&unclaimed, owners, windows) {
                Verdict::Nothing => return self.nothing_unless_alike(store, &listed.near).await,
                Verdict::Wait => {
                    info!(
                        ?owners,
                        "orders of ours still in flight could own the candidates"
                    );
                    return Ok(Found::Undecided(SupplierProblem {
                        kind: OWNERS_IN_FLIGHT.into(),
                        detail: Some(format!(
                            "{} orders of ours whose POSTs may still be in flight could own the \
                             candidates; looking again once they have settled",
                            owners.in_flight
                        )),
                        ..undecided("")
                    }));
                }
                Verdict::Ambiguous(candidates) => {
                    warn!(
                        ?candidates,
                        ?owners,
                        "more candidates than orders of ours sure to own them"
                    );
                    let certain = owners.settled - owners.unsure;
                    return Ok(Found::Ambiguous {
                        problem: ambiguous(format!(
                            "{} FoxReload orders fit and only {certain} of ours are sure to own \
                             one{}: {}",
                            candidates.len(),
                            if owners.unsure > 0 {
                                " (an order whose POST may never have been sent counts for \
                                 none while other buyers' orders are listed)"
                            } else {
                                ""
                            },
                            candidates.join(", ")
                        )),
                        candidates,
                    });
                }
                Verdict::Claim(id) => id,
            };
            let status = listed
                .orders
                .get(&id)
                .map_or(SupplierStatus::Active, |o| o.status.clone());
            match store
                .claim_supplier_order(
                    &order.order_id,
                    &id,
                    &SupplierState::claimed(&status),
                    clock.now(),
                )
                .await?
            {
                Claim::Claimed => {
                    info!(supplier_order_id = %id, "reconciled onto an existing supplier order");
                    let found = match listed.orders.get(&id) {
                        Some(found) => found.clone(),
                        None => match supplier.get_order(&id).await {
                            Ok(found) => found,
                            // Claimed; the next poll reads it.
                            Err(_) => SupplierOrder {
                                id: id.clone(),
                                status,
                                created_at: None,
                                payment_expires_at: None,
                                cancel_reason: None,
                                total_price: None,
                                is_mock: None,
                                items: Vec::new(),
                            },
                        },
                    };
                    return Ok(Found::Claimed(found));
                }
                Claim::TakenByAnother => continue,
                Claim::OrderMoved => return Ok(Found::Moved),
            }
        }
        Ok(Found::Undecided(undecided(
            "the candidates kept being claimed by other orders while deciding",
        )))
    }

    /// "Nothing there", unless an unclaimed look-alike near our POSTs
    /// could be ours under a wrong measure: then ambiguous.
    async fn nothing_unless_alike(
        &self,
        store: &impl PlacementStore,
        near: &BTreeSet<String>,
    ) -> Result<Found, StoreError> {
        let mut alike = Vec::new();
        for id in near {
            if !store.is_claimed(id).await? {
                alike.push(id.clone());
            }
        }
        if alike.is_empty() {
            return Ok(Found::Nothing);
        }
        warn!(?alike, "no exact match, but look-alikes near our POSTs");
        Ok(Found::Ambiguous {
            problem: ambiguous(format!(
                "no FoxReload order matches exactly, but look-alikes were made near our POSTs: {}",
                alike.join(", ")
            )),
            candidates: alike,
        })
    }

    /// Reads the list from the newest order back until a whole page is
    /// older than every `wide` window (or the list ends), sorting entries as
    /// they are read. A whole page, not one entry: FoxReload may list by
    /// commit order, so an order stamped early can sit above ours.
    async fn read_back(
        &self,
        supplier: &impl Supplier,
        wanted: &Wanted<'_>,
        windows: &[Window],
        wide: &[Window],
        deadline: Instant,
    ) -> Result<Listed, Found> {
        let oldest = opens(wide);
        let nearby = |at: OffsetDateTime| {
            let minute = time::Duration::minutes(1);
            matches!((opens(wide), closes(wide)), (Some(from), Some(to))
                if from - minute <= at && at <= to + minute)
        };
        let mut listed = Listed::default();
        let mut page = PageRequest::first(self.page_size);
        for read in 0..self.max_pages {
            if !self.time_left(deadline) {
                return Err(Found::Undecided(undecided(format!(
                    "no time left to read the order list past page {read}"
                ))));
            }
            let got = supplier.list_orders(&page).await.map_err(|error| {
                warn!(%error, "order list unreadable; undecided");
                Found::Undecided(SupplierProblem::from(&error))
            })?;
            let newest = got
                .orders
                .iter()
                .map(|o| o.created_at.as_ref().and_then(|t| t.parsed))
                .collect::<Option<Vec<_>>>()
                .and_then(|times| times.into_iter().max());
            let reached = matches!((newest, oldest), (Some(n), Some(o)) if n < o);
            for entry in got.orders {
                match fit(wanted, windows, &entry) {
                    Fit::Fits(at) => {
                        listed.fitting.insert(entry.id.clone(), at);
                    }
                    Fit::No => {
                        if resembles(wanted, wide, &entry) {
                            listed.near.insert(entry.id.clone());
                        }
                        if let Some(at) = entry.created_at.as_ref().and_then(|t| t.parsed)
                            && nearby(at)
                        {
                            listed.others.push((entry.id.clone(), at));
                        }
                        continue;
                    }
                    Fit::Unknown(why) => {
                        listed.unknown.insert(entry.id.clone(), why);
                    }
                }
                listed.orders.insert(entry.id.clone(), entry);
            }
            match got.next {
                _ if reached => return Ok(listed),
                None => return Ok(listed),
                Some(next) => page = next,
            }
        }
        Err(Found::Undecided(undecided(format!(
            "the order list was not read back past our POSTs within {} pages",
            self.max_pages
        ))))
    }

    /// Our undecided orders (this one included) that could own one of
    /// `candidates`: the same request, with a window holding one. Those
    /// whose last POST may still have been in flight when the list was read
    /// (`snapshot`) are counted apart; those that may never have sent it
    /// are unsure when the list shows orders that are nobody's of ours
    /// (`others`: listed, not fitting, near in time).
    #[allow(clippy::too_many_arguments)]
    async fn owners(
        &self,
        store: &impl PlacementStore,
        order: &OrderRecord,
        candidates: &[(String, OffsetDateTime)],
        measured: Option<&ClockOffset>,
        snapshot: OffsetDateTime,
        others: &[(String, OffsetDateTime)],
    ) -> Result<Owners, StoreError> {
        let in_flight_for = self.margins.request_timeout + self.margins.margin + SEND_SLACK;
        let settled = |o: &OrderRecord| {
            o.posted_at
                .iter()
                .max()
                .is_none_or(|last| *last + in_flight_for <= snapshot)
        };
        // Answered by now, had it been sent: its invocation died unknowing.
        let maybe_unsent = |o: &OrderRecord| o.posts_known < o.posted_at.len() && settled(o);
        let mut owners = Owners {
            settled: 1,
            ..Owners::default()
        };
        let mut maybe_unsent_count = usize::from(maybe_unsent(order));
        if let (Some(first), Some(last)) = (
            candidates.iter().map(|(_, at)| *at).min(),
            candidates.iter().map(|(_, at)| *at).max(),
        ) {
            // Created up to an hour before (a POST made later by poll-order
            // counts from its own time), in our clock.
            let offset = measured.map_or(time::Duration::ZERO, |m| m.offset);
            let slack =
                self.margins.unmeasured + self.margins.request_timeout + self.margins.margin;
            let from = first - offset - time::Duration::hours(1);
            let to = last - offset + slack;
            let shape = request_shape(order);
            let could_own = |other: &OrderRecord| {
                let theirs = windows(&other.posted_at, measured, &self.margins);
                other.order_id != order.order_id
                    && other.supplier_order_id.is_none()
                    && matches!(
                        other.status,
                        OrderStatus::Creating | OrderStatus::Reconciling
                    )
                    && request_shape(other) == shape
                    && candidates
                        .iter()
                        .any(|(_, at)| theirs.iter().any(|w| w.contains(*at)))
            };
            for other in store.unsettled_between(from, to).await? {
                // The index lags: each is confirmed by a consistent read.
                if !could_own(&other) {
                    continue;
                }
                let Some(now) = store
                    .order(&other.order_id)
                    .await?
                    .filter(|now| could_own(now))
                else {
                    continue;
                };
                if settled(&now) {
                    owners.settled += 1;
                    maybe_unsent_count += usize::from(maybe_unsent(&now));
                } else {
                    owners.in_flight += 1;
                }
            }
        }
        // Orders made too recently may be ours with a claim on its way.
        let older: Vec<(String, OffsetDateTime)> = others
            .iter()
            .filter(|(_, at)| {
                *at - measured.map_or(time::Duration::ZERO, |m| m.offset) + in_flight_for
                    <= snapshot
            })
            .cloned()
            .collect();
        if maybe_unsent_count > 0 && foreign_listed(store, &older, order).await? {
            owners.unsure = maybe_unsent_count;
        }
        Ok(owners)
    }
}

/// Most listed orders (the nearest to our POSTs) checked for a claim of
/// ours.
const FOREIGN_CHECKS: usize = 100;

/// Whether some of `others` (listed orders near ours that fit none of its
/// windows) are held by no order of ours: then another buyer uses the
/// account, and an order of ours that may never have been sent is no proof
/// that a candidate is ours.
async fn foreign_listed(
    store: &impl PlacementStore,
    others: &[(String, OffsetDateTime)],
    order: &OrderRecord,
) -> Result<bool, StoreError> {
    // The nearest to our POSTs first.
    let first = order.posted_at.iter().min().copied();
    let mut nearest: Vec<&(String, OffsetDateTime)> = others.iter().collect();
    nearest.sort_by_key(|(_, at)| first.map(|f| (*at - f).abs()));
    for (id, _) in nearest.into_iter().take(FOREIGN_CHECKS) {
        if !store.is_claimed(id).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records that the outcome of `order_id`'s first `known` POSTs is known.
/// A failure to record it only makes a later reconciliation more careful.
async fn mark_known(store: &impl PlacementStore, order_id: &str, known: usize) {
    if let Err(error) = store.mark_posts_known(order_id, known).await {
        warn!(%error, "a POST's outcome was not recorded as known");
    }
}

/// The candidates no order of ours holds yet.
async fn unclaimed(
    store: &impl PlacementStore,
    candidates: &[(String, OffsetDateTime)],
) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
    let mut free = Vec::new();
    for (id, at) in candidates {
        if !store.is_claimed(id).await? {
            free.push((id.clone(), *at));
        }
    }
    Ok(free)
}

/// What a read of the list found that could be ours.
#[derive(Default)]
struct Listed {
    fitting: BTreeMap<String, OffsetDateTime>,
    /// Not ours by the measure, but alike and near our POSTs.
    near: BTreeSet<String>,
    /// Every other order made within a minute of the wide windows (what
    /// tells whether another buyer uses the account).
    others: Vec<(String, OffsetDateTime)>,
    unknown: BTreeMap<String, &'static str>,
    orders: BTreeMap<String, SupplierOrder>,
}

fn ambiguous(detail: String) -> SupplierProblem {
    SupplierProblem {
        kind: "reconcile_ambiguous".into(),
        status: None,
        code: None,
        detail: Some(detail),
    }
}

/// An order's request as FoxReload would see it: lines (in any order) and
/// price.
fn request_shape(order: &OrderRecord) -> (Vec<String>, Option<String>) {
    let mut lines: Vec<String> = order
        .lines
        .iter()
        .map(|line| serde_json::to_string(line).expect("a line is plain JSON"))
        .collect();
    lines.sort_unstable();
    (lines, order.total_price.clone())
}

/// Pays an `active` supplier order from the account balance and stores the
/// outcome: FoxReload's status after it, or why it was refused (a refusal
/// such as `BALANCE_NOT_ENOUGH` is kept on the order; the order is polled on,
/// so its cancellation is published). Returns FoxReload's status after a
/// payment it confirmed.
pub async fn pay(
    store: &impl PlacementStore,
    supplier: &impl Supplier,
    clock: &impl Clock,
    order_id: &str,
    supplier_order: &SupplierOrder,
) -> Option<SupplierStatus> {
    if supplier_order.status != SupplierStatus::Active {
        return None;
    }
    let (status, refusal) = match supplier.pay_order(&supplier_order.id).await {
        Ok(paid) => (Some(paid.status), None),
        Err(error) => {
            warn!(%error, "payment not confirmed");
            (None, Some(SupplierProblem::from(&error)))
        }
    };
    let stored = status.as_ref().map(SupplierState::after_payment);
    if let Err(error) = store
        .record_payment(order_id, stored.as_ref(), refusal.as_ref(), clock.now())
        .await
    {
        // The next poll reads FoxReload's status anyway.
        warn!(%error, "payment outcome not stored");
    }
    status
}
