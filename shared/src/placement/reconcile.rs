//! Reconciliation: FoxReload's list read back past our POSTs' windows,
//! every entry compared exactly, and a claim only when an entry is ours
//! for sure.

use super::{Found, OWNERS_IN_FLIGHT, ReconcileOptions, SEND_SLACK, ambiguous, undecided};
use crate::clock::Clock;
use crate::domain::OrderStatus;
use crate::domain::reconcile::{
    ClockOffset, Fit, Margins, Owners, Verdict, Wanted, Window, closes, decide, doubted_windows,
    fit, opens, resembles, same_goods, windows,
};
use crate::foxreload::{
    Observation, PageRequest, Reconciled, Supplier, SupplierError, SupplierOrder, SupplierStatus,
    THROTTLED,
};
use crate::store::{
    Claim, OrderRecord, PlacementStore, StoreError, SupplierProblem, SupplierState,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

impl ReconcileOptions {
    /// Looks through FoxReload's orders for `order`'s, claiming it when it
    /// is told apart for sure. The outcome is logged ("reconciliation
    /// decided", field `reconciliation`) and told to the supplier port, which
    /// counts it.
    pub async fn run(
        &self,
        store: &impl PlacementStore,
        supplier: &impl Supplier,
        clock: &impl Clock,
        order: &OrderRecord,
        deadline: Instant,
    ) -> Result<Found, StoreError> {
        let found = self.search(store, supplier, clock, order, deadline).await?;
        let (outcome, detail) = match &found {
            // Held back by the stack's FoxReload budget: not a decision.
            Found::Undecided(problem) if problem.kind == THROTTLED => {
                info!("reconciliation held back by the FoxReload budget");
                return Ok(found);
            }
            Found::Claimed(_) => (Reconciled::Claimed, None),
            Found::Nothing => (Reconciled::Nothing, None),
            Found::Undecided(problem) | Found::Ambiguous { problem, .. } => {
                (Reconciled::Undecided, problem.detail.as_deref())
            }
            // Another worker settled the order: its own reconciliation (if
            // any) was counted there.
            Found::Moved => return Ok(found),
        };
        supplier.observe(Observation::Reconciled(outcome));
        let reconciliation = outcome.as_str();
        if outcome == Reconciled::Undecided {
            warn!(reconciliation, detail, "reconciliation decided");
        } else {
            info!(reconciliation, "reconciliation decided");
        }
        Ok(found)
    }

    async fn search(
        &self,
        store: &impl PlacementStore,
        supplier: &impl Supplier,
        clock: &impl Clock,
        order: &OrderRecord,
        deadline: Instant,
    ) -> Result<Found, StoreError> {
        if order.posts_that_may_have_bought() == 0 {
            // FoxReload refused every POST with a 429: nothing to look for
            // (and no reads of the list while it is refusing).
            return Ok(Found::Nothing);
        }
        // A measure is used as it stands now: its offset stays the centre,
        // only less sure with age. An absurd one is not used.
        let now = clock.now();
        let measured = store
            .clock_offset()
            .await?
            .map(|m| m.aged(now))
            .filter(ClockOffset::is_plausible);
        // A POST FoxReload refused with a 429 made nothing: no window.
        let sent = order.posts_that_may_have_bought_at();
        let windows = windows(&sent, measured.as_ref(), &self.margins);
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
        let mut claims = Claims::default();
        loop {
            match self
                .look(
                    store,
                    supplier,
                    clock,
                    order,
                    &windows,
                    measured.as_ref(),
                    &mut claims,
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
        claims: &mut Claims,
        deadline: Instant,
    ) -> Result<Found, StoreError> {
        let wanted = Wanted {
            lines: &order.lines,
            total_price: order.total_price.as_deref(),
            is_mock: self.is_mock,
        };
        // Look-alikes that would be ours were the measure off keep the
        // answer from being "nothing there".
        let wide = doubted_windows(
            &order.posts_that_may_have_bought_at(),
            measured,
            &self.margins,
        );
        // Read back past our windows, and further when orders of ours that
        // could own the candidates have windows further back.
        let mut oldest = opens(&wide);
        'read: for _ in 0..READS {
            // Orders of ours whose POSTs were answered (or timed out) before
            // now are in the list as read; later ones may not be.
            let snapshot = clock.now();
            let mut listed = match self
                .read_back(supplier, &wanted, windows, &wide, oldest, deadline)
                .await
            {
                Ok(listed) => listed,
                Err(found) => return Ok(found),
            };
            let mut fitting = std::mem::take(&mut listed.fitting);
            let mut unknown = Vec::new();
            for (id, why) in std::mem::take(&mut listed.unknown) {
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
                    Ok((Fit::Fits(at), full)) => {
                        fitting.insert(id.clone(), at);
                        listed.keep(&wanted, full);
                    }
                    Ok((Fit::No, full)) => {
                        if resembles(&wanted, &wide, &full) {
                            listed.near.insert(id);
                        }
                        listed.keep(&wanted, full);
                    }
                    Ok((Fit::Unknown(why), _)) => unknown.push(format!("{id} ({why})")),
                    // Not sent (the stack's budget): looked at again later.
                    Err(error @ SupplierError::Throttled { .. }) => {
                        return Ok(Found::Undecided(SupplierProblem::from(&error)));
                    }
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
            // Other orders of ours settle while this one looks: the
            // candidates still free and the orders that could own them are
            // read until the free ones are the same before and after the
            // owners were counted.
            for _ in 0..5 {
                let unclaimed = claims.unclaimed(store, &fitting).await?;
                if unclaimed.is_empty() {
                    return self.nothing_unless_alike(store, claims, &listed.near).await;
                }
                let (owners, more) = match self
                    .owners(
                        store, claims, order, &wanted, &unclaimed, measured, snapshot, &listed,
                        deadline,
                    )
                    .await?
                {
                    Counted::Owners { owners, more } => (owners, more),
                    Counted::ReadFrom(from) => {
                        oldest = Some(from);
                        continue 'read;
                    }
                    Counted::Changed => continue,
                    Counted::Undecided(why) => return Ok(Found::Undecided(undecided(why))),
                };
                let all: Vec<(String, OffsetDateTime)> =
                    unclaimed.iter().chain(&more).cloned().collect();
                if claims.unclaimed(store, &all).await? != all {
                    continue;
                }
                let id = match decide(&unclaimed, &more, owners, windows) {
                    Verdict::Nothing => {
                        return self.nothing_unless_alike(store, claims, &listed.near).await;
                    }
                    Verdict::Wait => {
                        info!(
                            ?owners,
                            "orders of ours still in flight could own the candidates"
                        );
                        return Ok(Found::Undecided(SupplierProblem {
                            kind: OWNERS_IN_FLIGHT.into(),
                            detail: Some(format!(
                                "{} orders of ours whose POSTs may still be in flight could own \
                                 the candidates; looking again once they have settled",
                                owners.in_flight
                            )),
                            ..undecided("")
                        }));
                    }
                    Verdict::Ambiguous(all) => {
                        warn!(
                            candidates = ?all,
                            ?owners,
                            "more candidates than orders of ours sure to own them"
                        );
                        let certain = owners.settled - owners.unsure;
                        let ids = |entries: &[(String, OffsetDateTime)]| {
                            entries
                                .iter()
                                .map(|(id, _)| id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let theirs = if more.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; and in the windows of the other orders of ours that could \
                                 own them: {}",
                                ids(&more)
                            )
                        };
                        return Ok(Found::Ambiguous {
                            problem: ambiguous(format!(
                                "{} FoxReload orders fit this order or the {} other orders of \
                                 ours that could own its candidates, and only {certain} of ours \
                                 are sure to own one{}. This order's candidates: {}{theirs}",
                                all.len(),
                                owners.settled + owners.in_flight - 1,
                                if owners.unsure > 0 {
                                    " (an order whose POST may never have been sent counts for \
                                     none while other buyers' orders are listed)"
                                } else {
                                    ""
                                },
                                ids(&unclaimed),
                            )),
                            candidates: unclaimed.iter().map(|(id, _)| id.clone()).collect(),
                        });
                    }
                    Verdict::Claim(id) => id,
                };
                // Every candidate has our goods, so it is kept (read in full
                // when its list entry was unclear).
                let status = listed
                    .kept
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
                        let found = match listed.kept.get(&id) {
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
            return Ok(Found::Undecided(undecided(
                "the candidates kept being claimed by other orders while deciding",
            )));
        }
        Ok(Found::Undecided(undecided(format!(
            "the orders of ours that could own the candidates reach further back than {READS} \
             reads of the list"
        ))))
    }

    /// "Nothing there", unless an unclaimed look-alike near our POSTs
    /// could be ours under a wrong measure: then ambiguous.
    async fn nothing_unless_alike(
        &self,
        store: &impl PlacementStore,
        claims: &mut Claims,
        near: &BTreeSet<String>,
    ) -> Result<Found, StoreError> {
        let mut alike = Vec::new();
        for id in near {
            if !claims.is_claimed(store, id).await? {
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
    /// older than `oldest` (at least every `wide` window), or the list ends,
    /// sorting entries as they are read. A whole page, not one entry:
    /// FoxReload may list by commit order, so an order stamped early can sit
    /// above ours.
    async fn read_back(
        &self,
        supplier: &impl Supplier,
        wanted: &Wanted<'_>,
        windows: &[Window],
        wide: &[Window],
        oldest: Option<OffsetDateTime>,
        deadline: Instant,
    ) -> Result<Listed, Found> {
        let oldest = match (oldest, opens(wide)) {
            (Some(asked), Some(ours)) => Some(asked.min(ours)),
            (asked, ours) => asked.or(ours),
        };
        let nearby = |at: OffsetDateTime| {
            let minute = time::Duration::minutes(1);
            matches!((opens(wide), closes(wide)), (Some(from), Some(to))
                if from - minute <= at && at <= to + minute)
        };
        let mut listed = Listed {
            covered: oldest,
            ..Listed::default()
        };
        let mut page = PageRequest::first(self.page_size);
        for read in 0..self.max_pages {
            if !self.time_left(deadline) {
                return Err(Found::Undecided(undecided(format!(
                    "no time left to read the order list past page {read}"
                ))));
            }
            let got = supplier.list_orders(&page).await.map_err(|error| {
                if !matches!(error, SupplierError::Throttled { .. }) {
                    warn!(%error, "order list unreadable; undecided");
                }
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
                    }
                    Fit::Unknown(why) => {
                        listed.unknown.insert(entry.id.clone(), why);
                    }
                }
                if same_goods(wanted, &entry) {
                    listed.kept.insert(entry.id.clone(), entry);
                }
            }
            match got.next {
                _ if reached => return Ok(listed),
                None => {
                    listed.ended = true;
                    return Ok(listed);
                }
                Some(next) => page = next,
            }
        }
        Err(Found::Undecided(undecided(format!(
            "the order list was not read back past our POSTs within {} pages",
            self.max_pages
        ))))
    }

    /// Our undecided orders (this one included) that could own one of
    /// `candidates`: the same request, with a window holding one; and, over
    /// and over until nothing is added, those that could own one of the
    /// unclaimed entries in *their* windows (returned as `more`). Those
    /// whose last POST may still have been in flight when the list was read
    /// (`snapshot`) are counted apart; those that may never have sent it
    /// are unsure when the list shows orders that are nobody's of ours
    /// (`others`: listed, not fitting, near in time).
    #[allow(clippy::too_many_arguments)]
    async fn owners(
        &self,
        store: &impl PlacementStore,
        claims: &mut Claims,
        order: &OrderRecord,
        wanted: &Wanted<'_>,
        candidates: &[(String, OffsetDateTime)],
        measured: Option<&ClockOffset>,
        snapshot: OffsetDateTime,
        listed: &Listed,
        deadline: Instant,
    ) -> Result<Counted, StoreError> {
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
        let offset = measured.map_or(time::Duration::ZERO, |m| m.offset);
        let slack = self.margins.unmeasured + self.margins.request_timeout + self.margins.margin;
        let shape = request_shape(order);
        let mut counted = BTreeSet::from([order.order_id.clone()]);
        let mut pool: BTreeMap<String, OffsetDateTime> = candidates.iter().cloned().collect();
        let mut more = Vec::new();
        // The entries added last: orders of ours owning them are looked for.
        let mut added: Vec<OffsetDateTime> = pool.values().copied().collect();
        let mut reach: Option<OffsetDateTime> = None;
        let mut members: Vec<OrderRecord> = Vec::new();
        let out_of_time = || {
            Counted::Undecided(
                "no time left to count the orders of ours that could own the candidates".to_owned(),
            )
        };
        while let (Some(first), Some(last)) = (added.iter().min(), added.iter().max()) {
            if members.len() > MOST_OWNERS {
                return Ok(Counted::Undecided(format!(
                    "more than {MOST_OWNERS} orders of ours could own the candidates"
                )));
            }
            if !self.time_left(deadline) {
                return Ok(out_of_time());
            }
            // Created up to an hour before (a POST made later by poll-order
            // counts from its own time), in our clock.
            let from = *first - offset - time::Duration::hours(1);
            let to = *last - offset + slack;
            let could_own = |other: &OrderRecord| {
                let theirs = last_window(other, measured, &self.margins);
                !counted.contains(&other.order_id)
                    && other.supplier_order_id.is_none()
                    && matches!(
                        other.status,
                        OrderStatus::Creating | OrderStatus::Reconciling
                    )
                    && request_shape(other) == shape
                    && pool
                        .values()
                        .any(|at| theirs.iter().any(|w| w.contains(*at)))
            };
            let mut joined = Vec::new();
            for other in store.unsettled_between(from, to).await? {
                // The index lags: each is confirmed by a consistent read.
                if !could_own(&other) {
                    continue;
                }
                // A large group takes many reads: the caller keeps the time
                // to record the outcome.
                if !self.time_left(deadline) {
                    return Ok(out_of_time());
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
                joined.push(now);
            }
            added.clear();
            for member in joined {
                counted.insert(member.order_id.clone());
                let theirs = last_window(&member, measured, &self.margins);
                reach = match (reach, opens(&theirs)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                for (id, entry) in &listed.kept {
                    if pool.contains_key(id) {
                        continue;
                    }
                    let at = match fit(wanted, &theirs, entry) {
                        Fit::No => continue,
                        Fit::Fits(at) => at,
                        // Counted as theirs too: one more entry to explain
                        // only makes a claim less likely.
                        Fit::Unknown(why) => match entry.created_at.as_ref().and_then(|t| t.parsed)
                        {
                            Some(at) => at,
                            None => {
                                return Ok(Counted::Undecided(format!(
                                    "FoxReload order {id}, which an order of ours could own, \
                                     cannot be evaluated ({why})"
                                )));
                            }
                        },
                    };
                    if claims.is_claimed(store, id).await? {
                        continue;
                    }
                    pool.insert(id.clone(), at);
                    more.push((id.clone(), at));
                    added.push(at);
                }
                members.push(member);
            }
        }
        // An owner that claimed its own order while it was counted (its
        // entry then skipped as claimed) explains nothing here: count again.
        for member in &members {
            let now = store.order(&member.order_id).await?;
            if now
                .as_ref()
                .is_none_or(|now| now.supplier_order_id.is_some() || now.status != member.status)
            {
                return Ok(Counted::Changed);
            }
        }
        if let (Some(reach), Some(covered)) = (reach, listed.covered)
            && reach < covered
            && !listed.ended
        {
            return Ok(Counted::ReadFrom(reach));
        }
        // Orders made too recently may be ours with a claim on its way;
        // those an order of ours counted here could own are no evidence of
        // another buyer.
        let older: Vec<(String, OffsetDateTime)> = listed
            .others
            .iter()
            .filter(|(id, at)| *at - offset + in_flight_for <= snapshot && !pool.contains_key(id))
            .cloned()
            .collect();
        if maybe_unsent_count > 0 && foreign_listed(store, claims, &older, order).await? {
            owners.unsure = maybe_unsent_count;
        }
        Ok(Counted::Owners { owners, more })
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
    claims: &mut Claims,
    others: &[(String, OffsetDateTime)],
    order: &OrderRecord,
) -> Result<bool, StoreError> {
    // The nearest to our POSTs first.
    let first = order.posted_at.iter().min().copied();
    let mut nearest: Vec<&(String, OffsetDateTime)> = others.iter().collect();
    nearest.sort_by_key(|(_, at)| first.map(|f| (*at - f).abs()));
    for (id, _) in nearest.into_iter().take(FOREIGN_CHECKS) {
        if !claims.is_claimed(store, id).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The FoxReload orders one reconciliation has seen claimed by orders of
/// ours. A claim is never taken back, so each is read from the store once;
/// one not (yet) claimed is read again every time it is asked about.
#[derive(Default)]
struct Claims {
    known: BTreeSet<String>,
}

impl Claims {
    async fn is_claimed(
        &mut self,
        store: &impl PlacementStore,
        supplier_order_id: &str,
    ) -> Result<bool, StoreError> {
        if self.known.contains(supplier_order_id) {
            return Ok(true);
        }
        let claimed = store.is_claimed(supplier_order_id).await?;
        if claimed {
            self.known.insert(supplier_order_id.to_owned());
        }
        Ok(claimed)
    }

    /// The candidates no order of ours holds yet.
    async fn unclaimed(
        &mut self,
        store: &impl PlacementStore,
        candidates: &[(String, OffsetDateTime)],
    ) -> Result<Vec<(String, OffsetDateTime)>, StoreError> {
        let mut free = Vec::new();
        for (id, at) in candidates {
            if !self.is_claimed(store, id).await? {
                free.push((id.clone(), *at));
            }
        }
        Ok(free)
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

/// What a read of the list found that could be ours.
#[derive(Default)]
struct Listed {
    /// Every entry read with our goods (products, quantities, price), the
    /// ones that fit no window of this order's included: an order of ours
    /// with other windows may own one.
    kept: BTreeMap<String, SupplierOrder>,
    /// Every entry made since this instant (FoxReload's clock) was read...
    covered: Option<OffsetDateTime>,
    /// ...or the list ended: every entry was.
    ended: bool,
    fitting: BTreeMap<String, OffsetDateTime>,
    /// Not ours by the measure, but alike and near our POSTs.
    near: BTreeSet<String>,
    /// Every other order made within a minute of the wide windows (what
    /// tells whether another buyer uses the account).
    others: Vec<(String, OffsetDateTime)>,
    unknown: BTreeMap<String, &'static str>,
}

impl Listed {
    /// Keeps `full`, read by id, in place of its list entry.
    fn keep(&mut self, wanted: &Wanted<'_>, full: SupplierOrder) {
        if same_goods(wanted, &full) {
            self.kept.insert(full.id.clone(), full);
        } else {
            self.kept.remove(&full.id);
        }
    }
}

/// How the orders of ours that could own the candidates were counted.
enum Counted {
    /// Counted over their closure: `more` holds the other unclaimed entries
    /// they could own.
    Owners {
        owners: Owners,
        more: Vec<(String, OffsetDateTime)>,
    },
    /// Some of them have windows opening before the list was read back to:
    /// read it back to here (FoxReload's clock) and count again.
    ReadFrom(OffsetDateTime),
    /// One of them settled while it was counted: count again.
    Changed,
    /// They cannot be counted for sure.
    Undecided(String),
}

/// Most reads of the list one look makes, reading further back each time.
const READS: usize = 3;

/// Most orders of ours counted together: a group larger than this (a burst
/// of identical orders whose answers were all lost, their windows linked)
/// is left undecided.
const MOST_OWNERS: usize = 500;

/// The window of `order`'s last POST: the only one its FoxReload order can
/// be in, since a POST is made again only after its earlier ones were
/// found to have made nothing (or surely never left). None when FoxReload
/// refused that POST with a 429: the order owns nothing.
fn last_window(
    order: &OrderRecord,
    measured: Option<&ClockOffset>,
    margins: &Margins,
) -> Vec<Window> {
    let last: Vec<OffsetDateTime> = order.last_post_that_may_have_bought().into_iter().collect();
    windows(&last, measured, margins)
}
