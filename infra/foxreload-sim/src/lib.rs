//! An in-memory FoxReload public API, served over real HTTP.
//!
//! Tests start one in-process on a free port ([`Simulator::start`]); the
//! local stack runs the `foxreload-sim` binary. It follows FoxReload's public
//! API as our client sees it, including the odd-but-legal shapes a faithful
//! peer must produce: `totalPrice` as a string but item `price` as a number,
//! extra fields (`customer`), activation entries without `code`, list
//! envelopes of several forms, and undocumented statuses.
//!
//! What happens to an order is chosen by what it buys: the catalog holds one
//! product per [`Behaviour`] (slow, never, failed, partial, throttled, stalled
//! create, ...). Order status is never stored; it derives from the clock
//! whenever the order is read, with the figures of [`Timing`].
//!
//! Besides FoxReload's routes (all under `/api`, all requiring `X-API-Key`),
//! the server answers a few of its own, without key:
//! - `GET /__admin/counters`: the [`Counters`] as JSON;
//! - `POST /__admin/reset`: forget orders and counters (204);
//! - `GET /__admin/orders/{id}`: the order as a read would render it, without
//!   counting the read or applying read faults;
//! - `POST /__admin/clock/advance?ms=N`: move the simulator's clock forward;
//! - `POST /__admin/orders`: place an order "from another buyer" on the same
//!   key: a create body plus `offsetMs` (when, against the simulator's now;
//!   negative is in the past) and `paid` (pay it at once); it is listed like
//!   any other and counted only in `foreignOrders`.
//!
//! As a process: `foxreload-sim --addr 127.0.0.1:8090 --api-key KEY
//! [--fast-ms N] [--slow-secs N] [--envelope offset|cursor|bare]
//! [--balance-cents N]` prints its base URL on one line once listening and
//! stops on Ctrl-C or SIGTERM.

mod catalog;
mod codes;
mod error;
mod http;
mod money;
mod order;
mod request;
mod state;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use catalog::{
    Behaviour, MAX_QUANTITY, MIN_QUANTITY, PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION,
    PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_GARBAGE, PRODUCT_MANY, PRODUCT_NEVER, PRODUCT_PARTIAL,
    PRODUCT_PLAYER, PRODUCT_POOR, PRODUCT_SHORT, PRODUCT_SLOW, PRODUCT_STALL_CREATE,
    PRODUCT_TWENTY_FIVE_SECONDS, PRODUCT_TWO_SECONDS, PRODUCT_UNKNOWN_STATUS, Product, catalog,
    product,
};
pub use http::{API_KEY_HEADER, router};
pub use order::MANY_CODES_PER_UNIT;
pub use request::MAX_ITEMS;
pub use state::{
    DEFAULT_LIST_LIMIT, GARBAGE_READS, MAX_LIST_LIMIT, RETRY_AFTER_SECS, SERVER_ERROR_READS,
    SimState, THROTTLED_READS,
};

/// How long a graceful stop may wait for requests in flight before the
/// server task is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a simulator behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The only `X-API-Key` accepted.
    pub api_key: String,
    /// How fast orders move.
    pub timing: Timing,
    /// The shape of `GET /api/orders/`.
    pub list_envelope: ListEnvelope,
    /// The account balance that pays for orders, in cents.
    pub balance_cents: i64,
    /// How far FoxReload's clock runs ahead of ours (negative: behind), in
    /// milliseconds: every timestamp it writes is off by this much.
    pub clock_skew_ms: i64,
    /// How `createdAt` (and every other timestamp) is written.
    pub time_format: TimeFormat,
    /// The largest list page the server gives, whatever `limit` asks.
    pub list_page_cap: usize,
    /// FoxReload's rate limit, as far as the simulator plays one: none by
    /// default.
    pub rate_limit: RateLimit,
}

/// A rate limit: requests (authenticated, to FoxReload's own routes) per
/// whole second of the wall clock, over all routes and per endpoint.
/// A request over either limit is answered `429` (`THROTTLED`), with
/// `Retry-After` when `retry_after_secs` is set, and does nothing else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Over every endpoint; `None`: no limit.
    pub per_second: Option<u32>,
    /// Per endpoint ([`Endpoint`]); absent: no limit of its own.
    pub per_endpoint: BTreeMap<Endpoint, u32>,
    /// The `Retry-After` a refusal carries, in seconds; `None`: no header.
    pub retry_after_secs: Option<u64>,
}

/// FoxReload's endpoints, as rate limits and counters name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Endpoint {
    CreateOrder,
    PayOrder,
    GetOrder,
    ListOrders,
    GetProduct,
}

/// How the simulator writes timestamps: FoxReload publishes no format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339 in UTC with microseconds (`2026-11-27T10:00:00.123456Z`).
    #[default]
    Rfc3339,
    /// Unix time in milliseconds, as a number.
    EpochMillis,
    /// `2026-11-27 10:00:00`, UTC without saying so.
    SpaceSeparated,
    /// Text no reader can take for an instant (`"recently"`).
    Unreadable,
}

impl Default for SimConfig {
    /// Key `sim-key`, default timing, the offset envelope, and a balance of
    /// one million dollars (far less than one `product_poor`).
    fn default() -> Self {
        SimConfig {
            api_key: "sim-key".to_owned(),
            timing: Timing::default(),
            list_envelope: ListEnvelope::Offset,
            balance_cents: 100_000_000,
            clock_skew_ms: 0,
            time_format: TimeFormat::Rfc3339,
            list_page_cap: MAX_LIST_LIMIT,
            rate_limit: RateLimit::default(),
        }
    }
}

/// How fast orders move. Every transition is measured from a stored
/// timestamp when the order is read, so these can be changed per simulator
/// without any background task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `paid` → `processing`. Default 200 ms.
    pub paid_to_processing: Duration,
    /// `processing` → terminal for ordinary products. Default 1 s.
    pub fast_fulfilment: Duration,
    /// `processing` → `completed` for `product_slow`. Default 180 s.
    pub slow_fulfilment: Duration,
    /// `active` and unpaid → `cancelled` / `payment_expiration`. Default 15 min.
    pub payment_window: Duration,
    /// How long `product_stall_create` holds the create response after
    /// committing the order. Default 30 s.
    pub create_stall: Duration,
    /// How long `product_unknown_status` reports `on_hold` once processing,
    /// before completing. Default 2 s.
    pub unknown_status_for: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            paid_to_processing: Duration::from_millis(200),
            fast_fulfilment: Duration::from_secs(1),
            slow_fulfilment: Duration::from_secs(180),
            payment_window: Duration::from_secs(15 * 60),
            create_stall: Duration::from_secs(30),
            unknown_status_for: Duration::from_secs(2),
        }
    }
}

/// The shape of the list answer, which FoxReload does not publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListEnvelope {
    /// `{"items": [...], "limit", "offset", "total"}`; pages by `offset`.
    #[default]
    Offset,
    /// `{"items": [...], "limit", "nextCursor"}`; pages by `cursor`
    /// (`nextCursor` is null on the last page; `offset` is ignored).
    Cursor,
    /// A bare JSON array; pages by `offset`.
    BareArray,
}

/// How one of the next creates fails (see [`Simulator::fail_next_creates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateFault {
    /// The HTTP status answered.
    pub status: u16,
    /// FoxReload's error `code` in the body, if any.
    pub code: Option<&'static str>,
    /// Whether the order is committed first (a 5xx after the fact: the
    /// client cannot tell it from one that made nothing).
    pub commit: bool,
}

/// What the simulator was asked, for tests to assert on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Per product id: create requests that committed an order holding it
    /// (counted once per request, however many of its items hold it).
    pub creates_by_product: BTreeMap<String, u64>,
    /// Per order id: authenticated `GET /api/orders/{id}` requests, including
    /// faulted ones and ids that do not exist.
    pub gets_by_order: BTreeMap<String, u64>,
    /// Per order id: authenticated pay requests, whatever their outcome.
    pub pays_by_order: BTreeMap<String, u64>,
    /// Authenticated list requests.
    pub list_calls: u64,
    /// Orders committed.
    pub orders_created: u64,
    /// Orders placed through `POST /__admin/orders` "by another buyer" (not
    /// in the other counters), by id.
    pub foreign_orders: Vec<String>,
    /// Authenticated requests that reached FoxReload's routes, served or
    /// refused for the rate limit, per whole second (Unix time; the last
    /// hour).
    pub requests_by_second: BTreeMap<i64, u64>,
    /// Of those, the ones refused for the rate limit (`429`), per second.
    pub rate_limited_by_second: BTreeMap<i64, u64>,
    /// Of those, the reads of one order (`GET /api/orders/{id}`), per
    /// second.
    pub reads_by_second: BTreeMap<i64, u64>,
}

/// A running simulator. Dropping it stops the server too; [`Simulator::shutdown`]
/// also waits for it.
pub struct Simulator {
    addr: SocketAddr,
    state: SimState,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Simulator {
    /// Serves `config` on `127.0.0.1` on a free port.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Serves `config` on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = SimState::new(config);
        let app = router(state.clone());
        let stopping = state.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopping.shutting_down().await })
                .await
        });
        tracing::info!(%addr, "FoxReload simulator listening");
        Ok(Simulator {
            addr,
            state,
            task: Some(task),
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accepted `X-API-Key`.
    pub fn api_key(&self) -> &str {
        &self.state.config().api_key
    }

    /// The shared state behind the server.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// A snapshot of the counters (what `GET /__admin/counters` answers).
    pub fn counters(&self) -> Counters {
        self.state.counters()
    }

    /// The order exactly as a read would render it now, without counting a
    /// read or applying read faults.
    pub fn order(&self, id: &str) -> Option<Value> {
        self.state.order(id)
    }

    /// The codes delivered for order `id`, by the rule foxrelay documents:
    /// each `externalData` entry's `code`, or the whole entry as JSON.
    pub fn codes(&self, id: &str) -> Option<Vec<String>> {
        let order = self.order(id)?;
        Some(
            order["items"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| item["externalData"].as_array().cloned().unwrap_or_default())
                .map(|entry| match entry.get("code").and_then(Value::as_str) {
                    Some(code) if !code.is_empty() => code.to_owned(),
                    _ => entry.to_string(),
                })
                .collect(),
        )
    }

    /// Forgets every order and counter and restores the configured balance.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// The balance left, in cents.
    pub fn balance_cents(&self) -> i64 {
        self.state.balance_cents()
    }

    /// Places an order "from another buyer" on the same key, as
    /// `POST /__admin/orders` does: `body` is a create body plus `offsetMs`
    /// and `paid`. Returns the order as a read renders it.
    pub fn place_foreign(&self, body: &Value) -> Result<Value, String> {
        self.state.place_foreign(body).map_err(|e| e.detail)
    }

    /// The next creates fail as `faults` say, in order, whatever they buy.
    pub fn fail_next_creates(&self, faults: Vec<CreateFault>) {
        self.state.fail_next_creates(faults);
    }

    /// Moves the simulator's clock forward, so tests can cross payment
    /// windows and fulfilment times without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.state.advance_clock(by);
    }

    /// Stops accepting connections, lets requests in flight finish (a stalled
    /// create is cut short), and waits for the server to end, at most a few
    /// seconds.
    pub async fn shutdown(mut self) {
        self.state.begin_shutdown();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.state.begin_shutdown();
    }
}
