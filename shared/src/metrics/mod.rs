//! Metrics written as CloudWatch Embedded Metric Format (EMF) lines.
//!
//! A handler counts what happened during an invocation into [`Metrics`] and
//! flushes once at its end: JSON lines on standard output that CloudWatch
//! Logs turns into metrics, so no metric costs an API call. Lambda runs one
//! invocation at a time per container, so a flush holds exactly that
//! invocation's figures.
//!
//! Every metric carries the dimension `Function` (`create-order`,
//! `poll-order`, `scan-stalled`, `deliver-webhook`). Every counter a function declares is
//! written on every flush, zeros included, so an alarm on it always has
//! data. Supplier errors are also written per kind (`ErrorKind`) and supplier
//! latency per operation (`Operation`), on lines of their own; timings are
//! distributions (every value is written), so CloudWatch gives percentiles.
//!
//! Why not a metrics crate: the `metrics` facade keeps one global recorder
//! per process (tests run many handlers in one process, each with its own
//! figures), and the EMF recorders built on it write what was touched, so
//! every handler would have to touch every counter on every invocation to
//! keep the zeros the alarms rely on.

mod emf;
mod metered;

pub use metered::Metered;

use crate::domain::budget::Priority;
use crate::foxreload::{Operation, SupplierError};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A counter foxrelay writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// New orders accepted by `POST /orders` (answered 202, not a replay).
    OrdersCreated,
    /// FoxReload `GET /orders/{id}` calls.
    Polls,
    /// Orders that ended `completed` and whose event went out.
    OrdersCompleted,
    /// Orders that ended otherwise (cancelled, failed, abandoned, not placed)
    /// and whose event went out.
    OrdersFailed,
    /// Non-terminal orders older than the stall threshold, seen by a sweep.
    StalledOrders,
    /// Polling chains the sweep started again.
    RevivedChains,
    /// Order events the sweep published because the first publish was lost.
    RepublishedEvents,
    /// FoxReload calls that failed, of any kind.
    SupplierErrors,
    /// `POST /orders` answered 502 or 503 because FoxReload failed or
    /// refused us (not the caller): what an alarm on FoxReload being down
    /// during creates counts. Handled answers are not Lambda errors.
    SupplierErrorResponses,
    /// `POST /orders` answered 503 `busy`: the stack's own FoxReload budget
    /// had no slot for the create within its reach.
    CreatesThrottled,
    /// Payments FoxReload refused (a 4xx to pay: balance, account).
    PaymentRefusals,
    /// Reconciliations that found our order and claimed it.
    ReconciliationsClaimed,
    /// Reconciliations that found for sure that no order of ours was made.
    ReconciliationsNothing,
    /// Reconciliations that could not decide (the list unreadable, no time
    /// left, or look-alikes of another buyer): nothing claimed or bought.
    ReconciliationsUndecided,
    /// Orders completed with fewer codes than units and no item error.
    ShortDeliveries,
    /// Webhook deliveries an endpoint answered with a 2xx.
    WebhooksDelivered,
    /// Webhook tries that failed (an error, a non-2xx, no answer in time, a
    /// breaker open) and were queued to be tried again.
    WebhookRetries,
    /// Webhook deliveries sent to the webhook dead-letter queue: tries run
    /// out, or one that can never succeed.
    WebhooksDeadLettered,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::OrdersCreated => "OrdersCreated",
            Self::Polls => "Polls",
            Self::OrdersCompleted => "OrdersCompleted",
            Self::OrdersFailed => "OrdersFailed",
            Self::StalledOrders => "StalledOrders",
            Self::RevivedChains => "RevivedChains",
            Self::RepublishedEvents => "RepublishedEvents",
            Self::SupplierErrors => "SupplierErrors",
            Self::SupplierErrorResponses => "SupplierErrorResponses",
            Self::CreatesThrottled => "CreatesThrottled",
            Self::PaymentRefusals => "PaymentRefusals",
            Self::ReconciliationsClaimed => "ReconciliationsClaimed",
            Self::ReconciliationsNothing => "ReconciliationsNothing",
            Self::ReconciliationsUndecided => "ReconciliationsUndecided",
            Self::ShortDeliveries => "ShortDeliveries",
            Self::WebhooksDelivered => "WebhooksDelivered",
            Self::WebhookRetries => "WebhookRetries",
            Self::WebhooksDeadLettered => "WebhooksDeadLettered",
        }
    }
}

/// A timing foxrelay writes as a distribution, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timing {
    /// From the order's acceptance (`POST /orders`) to its event published:
    /// the figure the polling schedule optimises.
    TimeToNotify,
    /// One FoxReload call, written per operation (dimension `Operation`).
    SupplierLatency,
}

impl Timing {
    pub fn name(self) -> &'static str {
        match self {
            Self::TimeToNotify => "TimeToNotify",
            Self::SupplierLatency => "SupplierLatency",
        }
    }
}

/// Polls an ended order took, per product and schedule (learned polling's
/// figure; with [`Timing::TimeToNotify`] on the same lines).
pub const POLLS_PER_ORDER: &str = "PollsPerOrder";
/// The dimension per-product figures are written by: the order's product,
/// or `(several)` for an order of more than one.
pub const PRODUCT: &str = "Product";
/// The dimension saying how the order was polled: `learned` or `default`.
pub const SCHEDULE: &str = "Schedule";

/// One ended order, as the per-product figures count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub product: String,
    pub schedule: &'static str,
    pub polls: u64,
    /// `None` for an order FoxReload did not end (abandoned, never placed).
    pub time_to_notify: Option<Duration>,
}

/// The dimension every metric is written with: which function wrote it.
pub const FUNCTION: &str = "Function";
/// The dimension supplier errors are also written by.
pub const ERROR_KIND: &str = "ErrorKind";
/// The dimension budget slots are written by (with [`FUNCTION`]).
pub const PRIORITY: &str = "Priority";
/// Slots of the FoxReload budget granted, by priority.
pub const BUDGET_GRANTED: &str = "BudgetGranted";
/// FoxReload calls not sent for want of a slot, by priority.
pub const BUDGET_DENIED: &str = "BudgetDenied";
/// The shared FoxReload budget, in requests per second, as last seen.
pub const FOXRELOAD_BUDGET: &str = "FoxReloadBudget";
/// The dimension supplier latency is written by (with [`FUNCTION`]).
pub const OPERATION: &str = "Operation";

/// What a function writes: its name (the `Function` dimension) and the
/// counters it writes on every flush, zeros included.
#[derive(Clone, Copy, Debug)]
pub struct MetricSet {
    pub function: &'static str,
    pub declared: &'static [Metric],
}

/// Where flushed lines go.
#[derive(Clone, Debug)]
enum Sink {
    /// Standard output, where Lambda's log capture and EMF pick them up.
    Stdout,
    /// Kept in memory (tests, and the local runner, which prints events on
    /// its standard output).
    Memory(Arc<Mutex<Vec<String>>>),
}

/// Polls per order and times to notify (ms) of one product and schedule.
type EndedFigures = (Vec<u64>, Vec<u64>);

/// What an invocation counted and timed.
#[derive(Debug, Default)]
struct Figures {
    counts: BTreeMap<Metric, u64>,
    supplier_errors: BTreeMap<&'static str, u64>,
    time_to_notify: Vec<u64>,
    latency: BTreeMap<&'static str, Vec<u64>>,
    /// (product, schedule) → (polls, times to notify in ms).
    ended: BTreeMap<(String, &'static str), EndedFigures>,
    /// Priority → (slots granted, calls refused) of the FoxReload budget.
    budget: BTreeMap<&'static str, (u64, u64)>,
    /// The FoxReload budget last seen, in requests per second.
    budget_rps: Option<f64>,
}

/// The most lines in-memory metrics keep (the newest).
const MEMORY_LINES: usize = 10_000;

/// One function's metrics; cheap to clone (clones share the figures).
#[derive(Clone, Debug)]
pub struct Metrics {
    namespace: Arc<str>,
    set: MetricSet,
    figures: Arc<Mutex<Figures>>,
    sink: Sink,
}

impl Metrics {
    /// Metrics of `set` written as EMF lines on standard output.
    pub fn stdout(namespace: &str, set: MetricSet) -> Self {
        Self::with_sink(namespace, set, Sink::Stdout)
    }

    /// Metrics whose lines are kept; [`Metrics::lines`] returns them.
    pub fn in_memory(namespace: &str, set: MetricSet) -> Self {
        Self::with_sink(namespace, set, Sink::Memory(Arc::default()))
    }

    fn with_sink(namespace: &str, set: MetricSet, sink: Sink) -> Self {
        Self {
            namespace: namespace.into(),
            set,
            figures: Arc::default(),
            sink,
        }
    }

    /// The function these metrics are written for.
    pub fn function(&self) -> &'static str {
        self.set.function
    }

    pub fn add(&self, metric: Metric, n: u64) {
        *lock(&self.figures).counts.entry(metric).or_default() += n;
    }

    /// One order's time from acceptance to its event published.
    pub fn time_to_notify(&self, took: Duration) {
        lock(&self.figures).time_to_notify.push(millis(took));
    }

    /// One ended order, for the per-product figures.
    pub fn ended(&self, order: &Ended) {
        let mut figures = lock(&self.figures);
        let (polls, notify) = figures
            .ended
            .entry((order.product.clone(), order.schedule))
            .or_default();
        polls.push(order.polls);
        if let Some(took) = order.time_to_notify {
            notify.push(millis(took));
        }
    }

    /// Counts one failed FoxReload call, in total and by its kind.
    pub fn supplier_error(&self, error: &SupplierError) {
        let mut figures = lock(&self.figures);
        *figures.counts.entry(Metric::SupplierErrors).or_default() += 1;
        *figures.supplier_errors.entry(error.kind()).or_default() += 1;
    }

    /// Counts one slot of the FoxReload budget granted, or one call refused
    /// for want of one, by the caller's priority.
    pub fn budget_slot(&self, priority: Priority, granted: bool) {
        let mut figures = lock(&self.figures);
        let (given, refused) = figures.budget.entry(priority.as_str()).or_default();
        if granted {
            *given += 1;
        } else {
            *refused += 1;
        }
    }

    /// The FoxReload budget as this container last saw it.
    pub fn budget_rate(&self, rps: f64) {
        lock(&self.figures).budget_rps = Some(rps);
    }

    /// Times one FoxReload call (answered or not).
    pub fn supplier_latency(&self, operation: Operation, took: Duration) {
        lock(&self.figures)
            .latency
            .entry(operation.key())
            .or_default()
            .push(millis(took));
    }

    /// Writes the figures since the last flush and starts again from zero.
    pub fn flush(&self) {
        let figures = std::mem::take(&mut *lock(&self.figures));
        let lines = emf::render(&self.namespace, self.set, &figures, now_millis());
        match &self.sink {
            Sink::Stdout => {
                // One write per line, so a line never interleaves with a log
                // line written by another thread.
                let mut out = std::io::stdout().lock();
                for line in lines {
                    let _ = out.write_all(format!("{line}\n").as_bytes());
                }
                let _ = out.flush();
            }
            Sink::Memory(kept) => {
                let mut kept = lock(kept);
                kept.extend(lines);
                let excess = kept.len().saturating_sub(MEMORY_LINES);
                kept.drain(..excess);
            }
        }
    }

    /// The lines flushed so far (in-memory metrics only).
    pub fn lines(&self) -> Vec<String> {
        match &self.sink {
            Sink::Stdout => Vec::new(),
            Sink::Memory(kept) => lock(kept).clone(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while counting leaves the figures usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn millis(took: Duration) -> u64 {
    u64::try_from(took.as_millis()).unwrap_or(u64::MAX)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
