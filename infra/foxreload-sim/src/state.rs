//! The simulator's memory: orders, counters, balance and clock, behind one
//! lock that is never held across an await.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::catalog::Behaviour;
use crate::error::ApiError;
use crate::order::{self, Item, Order, Phase};
use crate::request::NewOrder;
use crate::{Counters, ListEnvelope, SimConfig, Timing};

/// How many first reads of a [`Behaviour::ServerError`] order answer 503.
pub const SERVER_ERROR_READS: u64 = 3;
/// How many first reads of a [`Behaviour::Throttle`] order answer 429.
pub const THROTTLED_READS: u64 = 2;
/// How many first reads of a [`Behaviour::Garbage`] order answer HTML.
pub const GARBAGE_READS: u64 = 2;
/// The `Retry-After` (seconds) sent with the 429 of [`Behaviour::Throttle`].
pub const RETRY_AFTER_SECS: u64 = 2;

/// Seconds of per-second request counts kept.
const KEPT_SECONDS: i64 = 3_600;
/// The list page size when `limit` is absent or unusable.
pub const DEFAULT_LIST_LIMIT: usize = 10;
/// The largest list page; larger `limit`s are clamped to it.
pub const MAX_LIST_LIMIT: usize = 100;

/// A handle on one simulator's state, shared by its HTTP handlers and by the
/// [`crate::Simulator`] that owns the server. Cheap to clone.
#[derive(Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

struct Shared {
    config: SimConfig,
    data: Mutex<Data>,
    shutdown: watch::Sender<bool>,
}

struct Data {
    orders: HashMap<String, Order>,
    next_seq: u64,
    counters: Counters,
    balance_cents: i64,
    /// How far the simulator's clock runs ahead of the wall clock.
    clock_offset: Duration,
    /// How the next creates fail, first first.
    create_faults: std::collections::VecDeque<crate::CreateFault>,
    /// The second the rate limit counts, and what it counted in it: over
    /// every endpoint, and per endpoint.
    rate_window: (i64, u32, HashMap<crate::Endpoint, u32>),
}

impl Data {
    fn now(&self, skew_ms: i64) -> OffsetDateTime {
        let wall = OffsetDateTime::now_utc() + time::Duration::milliseconds(skew_ms);
        order::after(wall, self.clock_offset).unwrap_or(wall)
    }
}

/// What a read of one order answers.
pub(crate) enum Read {
    Order(Value),
    NotFound,
    /// 503 (first reads of [`Behaviour::ServerError`]).
    Unavailable,
    /// 429 with `Retry-After` (first reads of [`Behaviour::Throttle`]).
    Throttled,
    /// 200 with an HTML body (first reads of [`Behaviour::Garbage`]).
    Garbage,
}

/// A validated list request.
pub(crate) struct ListQuery {
    pub limit: usize,
    pub offset: usize,
    pub status: Option<String>,
    /// Only orders listed after this position ([`ListEnvelope::Cursor`]).
    pub before: Option<Position>,
}

/// Where an order stands in the list: newest first by creation time, then
/// by sequence.
pub(crate) type Position = (i128, u64);

fn position(order: &Order) -> Position {
    (order.created_at.unix_timestamp_nanos(), order.seq)
}

/// The opaque `nextCursor` for a page ending at `at`.
pub(crate) fn cursor_for(at: Position) -> String {
    format!("c-{}-{}", at.0, at.1)
}

/// Reads a `cursor` parameter written by [`cursor_for`].
pub(crate) fn parse_cursor(cursor: &str) -> Option<Position> {
    let (nanos, seq) = cursor.strip_prefix("c-")?.rsplit_once('-')?;
    Some((nanos.parse().ok()?, seq.parse().ok()?))
}

impl SimState {
    /// Fresh state: no orders, zero counters, the configured balance.
    pub fn new(config: SimConfig) -> SimState {
        let (shutdown, _) = watch::channel(false);
        let data = Data {
            orders: HashMap::new(),
            next_seq: 0,
            counters: Counters::default(),
            balance_cents: config.balance_cents,
            clock_offset: Duration::ZERO,
            create_faults: std::collections::VecDeque::new(),
            rate_window: (0, 0, HashMap::new()),
        };
        SimState {
            shared: Arc::new(Shared {
                config,
                data: Mutex::new(data),
                shutdown,
            }),
        }
    }

    /// The configuration this simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    fn timing(&self) -> &Timing {
        &self.shared.config.timing
    }

    fn skew(&self) -> i64 {
        self.shared.config.clock_skew_ms
    }

    fn format(&self) -> crate::TimeFormat {
        self.shared.config.time_format
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.shared
            .data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request to `endpoint` and says whether the rate limit lets
    /// it through (a request refused counts against nothing).
    pub fn admit(&self, endpoint: crate::Endpoint) -> bool {
        let limit = &self.config().rate_limit;
        let mut data = self.lock();
        // Read under the lock, and never behind the window: requests
        // counted in order, each second's window opened once.
        let second = OffsetDateTime::now_utc()
            .unix_timestamp()
            .max(data.rate_window.0);
        *data.counters.requests_by_second.entry(second).or_insert(0) += 1;
        if endpoint == crate::Endpoint::GetOrder {
            *data.counters.reads_by_second.entry(second).or_insert(0) += 1;
        }
        // The last hour is kept: a long-running local stack stays small.
        let counters = &mut data.counters;
        for seconds in [
            &mut counters.requests_by_second,
            &mut counters.rate_limited_by_second,
            &mut counters.reads_by_second,
        ] {
            while seconds
                .first_key_value()
                .is_some_and(|(oldest, _)| *oldest <= second - KEPT_SECONDS)
            {
                seconds.pop_first();
            }
        }
        if data.rate_window.0 != second {
            data.rate_window = (second, 0, HashMap::new());
        }
        let (_, all, by_endpoint) = &mut data.rate_window;
        let mine = by_endpoint.get(&endpoint).copied().unwrap_or(0);
        let over = limit.per_second.is_some_and(|most| *all >= most)
            || limit
                .per_endpoint
                .get(&endpoint)
                .is_some_and(|most| mine >= *most);
        if over {
            *data
                .counters
                .rate_limited_by_second
                .entry(second)
                .or_insert(0) += 1;
            return false;
        }
        *all += 1;
        by_endpoint.insert(endpoint, mine + 1);
        true
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// The order as a read would render it now, without counting the read or
    /// applying read faults.
    pub fn order(&self, id: &str) -> Option<Value> {
        let data = self.lock();
        let now = data.now(self.skew());
        data.orders
            .get(id)
            .map(|o| o.render(now, self.timing(), self.format()))
    }

    /// The balance left, in cents.
    pub fn balance_cents(&self) -> i64 {
        self.lock().balance_cents
    }

    /// Forgets every order and counter and restores the configured balance.
    /// The clock is left as it is: time never runs backwards.
    pub fn reset(&self) {
        let mut data = self.lock();
        data.orders.clear();
        data.counters = Counters::default();
        data.rate_window = (0, 0, HashMap::new());
        data.balance_cents = self.shared.config.balance_cents;
    }

    /// Moves the simulator's clock forward: every timed transition (payment
    /// expiry, processing, fulfilment) sees that much more time passed.
    pub fn advance_clock(&self, by: Duration) {
        let mut data = self.lock();
        data.clock_offset = data.clock_offset.saturating_add(by);
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn shutting_down(&self) {
        let mut receiver = self.shared.shutdown.subscribe();
        // The sender lives as long as `self`, so this only returns on shutdown.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }

    pub(crate) fn fail_next_creates(&self, faults: Vec<crate::CreateFault>) {
        self.lock().create_faults.extend(faults);
    }

    /// The fault the next create meets, if one is queued.
    pub(crate) fn next_create_fault(&self) -> Option<crate::CreateFault> {
        self.lock().create_faults.pop_front()
    }

    /// Commits a validated order. Returns its rendering at commit time and,
    /// for [`Behaviour::StallCreate`], how long to hold the response.
    pub(crate) fn create(&self, new: NewOrder) -> (Value, Option<Duration>) {
        let timing = *self.timing();
        let mut data = self.lock();
        let now = data.now(self.skew());
        let products: BTreeSet<&str> = new.items.iter().map(|item| item.product.id).collect();
        for product in products {
            *data
                .counters
                .creates_by_product
                .entry(product.to_owned())
                .or_default() += 1;
        }
        data.counters.orders_created += 1;
        let order = Self::commit(&mut data, new, now, &timing);
        let stall = (order.fault_behaviour() == Some(Behaviour::StallCreate))
            .then_some(timing.create_stall);
        let body = order.render(now, &timing, self.format());
        tracing::info!(order_id = %order.id, total = %body["totalPrice"], "order created");
        data.orders.insert(order.id.clone(), order);
        (body, stall)
    }

    /// Places an order "from another buyer": a create body plus `offsetMs`
    /// (its creation time against now) and `paid` (paid at once, without
    /// touching our balance).
    pub(crate) fn place_foreign(&self, body: &Value) -> Result<Value, ApiError> {
        let new = crate::request::parse_create(body.to_string().as_bytes())?;
        let offset_ms = match body.get("offsetMs") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::validation("offsetMs: An integer is required."))?,
        };
        let paid = body.get("paid").and_then(Value::as_bool).unwrap_or(false);
        let timing = *self.timing();
        let mut data = self.lock();
        let now = data.now(self.skew());
        let at = now + time::Duration::milliseconds(offset_ms);
        let mut order = Self::commit(&mut data, new, at, &timing);
        if paid {
            order.paid_at = Some(at);
            for item in &mut order.items {
                item.delivery = order::draw_delivery(item.product.behaviour, item.quantity, at);
            }
        }
        let body = order.render(now, &timing, self.format());
        data.counters.foreign_orders.push(order.id.clone());
        data.orders.insert(order.id.clone(), order);
        Ok(body)
    }

    fn commit(data: &mut Data, new: NewOrder, at: OffsetDateTime, timing: &Timing) -> Order {
        data.next_seq += 1;
        Order {
            id: uuid::Uuid::new_v4().to_string(),
            seq: data.next_seq,
            created_at: at,
            payment_expires_at: order::after(at, timing.payment_window),
            paid_at: None,
            total_cents: new.total_cents,
            is_mock: new.is_mock,
            items: new
                .items
                .into_iter()
                .map(|item| Item {
                    product: item.product,
                    quantity: item.quantity,
                    note: item.note,
                    delivery: Vec::new(),
                })
                .collect(),
            reads: 0,
        }
    }

    /// Counts one pay attempt on `id`, whatever comes of it.
    pub(crate) fn count_pay(&self, id: &str) {
        *self
            .lock()
            .counters
            .pays_by_order
            .entry(id.to_owned())
            .or_default() += 1;
    }

    /// Pays an active order from the balance (mock orders move no money).
    pub(crate) fn pay(&self, id: &str) -> Result<Value, ApiError> {
        let timing = *self.timing();
        let mut data = self.lock();
        let now = data.now(self.skew());
        let Data {
            orders,
            balance_cents,
            ..
        } = &mut *data;
        let order = orders
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("Order not found."))?;
        let phase = order.phase(now, &timing);
        if phase != Phase::Active {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ORDER_PAYMENT_NOT_POSSIBLE",
                format!(
                    "Order payment is not possible in status {}.",
                    phase.as_str()
                ),
            ));
        }
        if !order.is_mock {
            if *balance_cents < order.total_cents {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BALANCE_NOT_ENOUGH",
                    "Not enough balance to pay for the order.",
                ));
            }
            *balance_cents -= order.total_cents;
        }
        order.paid_at = Some(now);
        for item in &mut order.items {
            item.delivery = order::draw_delivery(item.product.behaviour, item.quantity, now);
        }
        tracing::info!(order_id = %id, "order paid");
        Ok(order.render(now, &timing, self.format()))
    }

    /// Serves one read of `id`: counts it, then applies the read faults of the
    /// order's first product before rendering.
    pub(crate) fn read(&self, id: &str) -> Read {
        let timing = *self.timing();
        let mut data = self.lock();
        let now = data.now(self.skew());
        *data
            .counters
            .gets_by_order
            .entry(id.to_owned())
            .or_default() += 1;
        let Some(order) = data.orders.get_mut(id) else {
            return Read::NotFound;
        };
        order.reads += 1;
        let n = order.reads;
        match order.fault_behaviour() {
            Some(Behaviour::ServerError) if n <= SERVER_ERROR_READS => Read::Unavailable,
            Some(Behaviour::Throttle) if n <= THROTTLED_READS => Read::Throttled,
            Some(Behaviour::Garbage) if n <= GARBAGE_READS => Read::Garbage,
            _ => Read::Order(order.render(now, &timing, self.format())),
        }
    }

    /// Counts one list call.
    pub(crate) fn count_list(&self) {
        self.lock().counters.list_calls += 1;
    }

    /// Recent orders, newest first, filtered by status, in the configured
    /// envelope.
    pub(crate) fn list(&self, query: &ListQuery) -> Value {
        let timing = *self.timing();
        let data = self.lock();
        let now = data.now(self.skew());
        let mut orders: Vec<&Order> = data
            .orders
            .values()
            .filter(|o| {
                query
                    .status
                    .as_deref()
                    .is_none_or(|status| o.phase(now, &timing).as_str() == status)
            })
            .collect();
        orders.sort_unstable_by_key(|o| std::cmp::Reverse(position(o)));
        let limit = query.limit.min(self.shared.config.list_page_cap.max(1));
        let render = |page: &[&Order]| -> Vec<Value> {
            page.iter()
                .map(|o| o.render(now, &timing, self.format()))
                .collect()
        };
        match self.shared.config.list_envelope {
            ListEnvelope::Offset => {
                let page = page(&orders, query.offset, limit);
                json!({
                    "items": render(page),
                    "limit": limit,
                    "offset": query.offset,
                    "total": orders.len(),
                })
            }
            ListEnvelope::Cursor => {
                let older: Vec<&Order> = orders
                    .into_iter()
                    .filter(|o| query.before.is_none_or(|at| position(o) < at))
                    .collect();
                let page = page(&older, 0, limit);
                let next_cursor = if older.len() > page.len() {
                    page.last().map(|o| cursor_for(position(o)))
                } else {
                    None
                };
                json!({
                    "items": render(page),
                    "limit": limit,
                    "nextCursor": next_cursor,
                })
            }
            ListEnvelope::BareArray => Value::Array(render(page(&orders, query.offset, limit))),
        }
    }
}

fn page<T>(all: &[T], offset: usize, limit: usize) -> &[T] {
    let start = offset.min(all.len());
    let end = start.saturating_add(limit).min(all.len());
    &all[start..end]
}
