//! Counters written as CloudWatch Embedded Metric Format (EMF) lines.
//!
//! A handler counts what happened during an invocation into [`Metrics`] and
//! flushes once at its end: one JSON line on standard output that CloudWatch
//! Logs turns into metrics, so no metric costs an API call. Lambda runs one
//! invocation at a time per container, so a flush holds exactly that
//! invocation's counts.
//!
//! Every metric a function declares is written on every flush, zeros
//! included, so an alarm on it always has data. Supplier errors are also
//! written per kind (dimension `ErrorKind`), on lines of their own.

use crate::foxreload::{
    CreateOrderRequest, OrderPage, PageRequest, Supplier, SupplierError, SupplierOrder,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A metric foxrelay writes.
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
        }
    }
}

/// The dimension supplier errors are also written by.
pub const ERROR_KIND: &str = "ErrorKind";

/// Where flushed lines go.
#[derive(Clone, Debug)]
enum Sink {
    /// Standard output, where Lambda's log capture and EMF pick them up.
    Stdout,
    /// Kept in memory (tests, and the local runner, which prints events on
    /// its standard output).
    Memory(Arc<Mutex<Vec<String>>>),
}

#[derive(Debug, Default)]
struct Counts {
    metrics: BTreeMap<Metric, u64>,
    supplier_errors: BTreeMap<&'static str, u64>,
}

/// The most lines in-memory counters keep (the newest).
const MEMORY_LINES: usize = 10_000;

/// One function's counters; cheap to clone (clones share the counts).
#[derive(Clone, Debug)]
pub struct Metrics {
    namespace: Arc<str>,
    declared: Arc<[Metric]>,
    counts: Arc<Mutex<Counts>>,
    sink: Sink,
}

impl Metrics {
    /// Counters for a function that writes `declared` on every flush, as
    /// EMF lines on standard output.
    pub fn stdout(namespace: &str, declared: &[Metric]) -> Self {
        Self::with_sink(namespace, declared, Sink::Stdout)
    }

    /// Counters whose lines are kept; [`Metrics::lines`] returns them.
    pub fn in_memory(namespace: &str, declared: &[Metric]) -> Self {
        Self::with_sink(namespace, declared, Sink::Memory(Arc::default()))
    }

    fn with_sink(namespace: &str, declared: &[Metric], sink: Sink) -> Self {
        Self {
            namespace: namespace.into(),
            declared: declared.into(),
            counts: Arc::default(),
            sink,
        }
    }

    pub fn add(&self, metric: Metric, n: u64) {
        *lock(&self.counts).metrics.entry(metric).or_default() += n;
    }

    /// Counts one failed FoxReload call, in total and by its kind.
    pub fn supplier_error(&self, error: &SupplierError) {
        let mut counts = lock(&self.counts);
        *counts.metrics.entry(Metric::SupplierErrors).or_default() += 1;
        *counts.supplier_errors.entry(error.kind()).or_default() += 1;
    }

    /// Writes the counts since the last flush and starts again from zero.
    pub fn flush(&self) {
        let counts = std::mem::take(&mut *lock(&self.counts));
        let lines = render(&self.namespace, &self.declared, &counts, now_millis());
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

    /// The lines flushed so far (in-memory counters only).
    pub fn lines(&self) -> Vec<String> {
        match &self.sink {
            Sink::Stdout => Vec::new(),
            Sink::Memory(kept) => lock(kept).clone(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while counting leaves the counts usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The EMF lines for `counts`: one line with every declared (or counted)
/// metric and no dimension, then one line per supplier error kind.
fn render(namespace: &str, declared: &[Metric], counts: &Counts, timestamp: u64) -> Vec<String> {
    let mut totals: BTreeMap<Metric, u64> = declared.iter().map(|m| (*m, 0)).collect();
    for (metric, n) in &counts.metrics {
        *totals.entry(*metric).or_default() += n;
    }
    let mut lines = Vec::new();
    if !totals.is_empty() {
        let mut line = serde_json::Map::new();
        line.insert(
            "_aws".into(),
            directive(namespace, timestamp, &[], totals.keys().map(|m| m.name())),
        );
        for (metric, n) in &totals {
            line.insert(metric.name().into(), (*n).into());
        }
        lines.push(serde_json::Value::Object(line).to_string());
    }
    for (kind, n) in &counts.supplier_errors {
        let name = Metric::SupplierErrors.name();
        let line = serde_json::json!({
            "_aws": directive(namespace, timestamp, &[ERROR_KIND], [name].into_iter()),
            ERROR_KIND: kind,
            name: n,
        });
        lines.push(line.to_string());
    }
    lines
}

fn directive<'a>(
    namespace: &str,
    timestamp: u64,
    dimensions: &[&str],
    names: impl Iterator<Item = &'a str>,
) -> serde_json::Value {
    let metrics: Vec<_> = names
        .map(|name| serde_json::json!({ "Name": name, "Unit": "Count" }))
        .collect();
    serde_json::json!({
        "Timestamp": timestamp,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": [dimensions],
            "Metrics": metrics,
        }],
    })
}

/// A [`Supplier`] that counts polls and failed calls into [`Metrics`].
#[derive(Clone, Debug)]
pub struct Metered<F> {
    pub inner: F,
    pub metrics: Metrics,
}

impl<F> Metered<F> {
    fn counted<T>(&self, result: Result<T, SupplierError>) -> Result<T, SupplierError> {
        if let Err(error) = &result {
            self.metrics.supplier_error(error);
        }
        result
    }
}

impl<F: Supplier> Supplier for Metered<F> {
    async fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> Result<SupplierOrder, SupplierError> {
        self.counted(self.inner.create_order(request).await)
    }

    async fn pay_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.counted(self.inner.pay_order(supplier_order_id).await)
    }

    async fn get_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.metrics.add(Metric::Polls, 1);
        self.counted(self.inner.get_order(supplier_order_id).await)
    }

    async fn list_orders(&self, page: &PageRequest) -> Result<OrderPage, SupplierError> {
        self.counted(self.inner.list_orders(page).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).expect("an EMF line is one JSON object")
    }

    #[test]
    fn declared_metrics_are_written_as_zero_when_nothing_happened() {
        let metrics = Metrics::in_memory("ns", &[Metric::StalledOrders, Metric::RevivedChains]);
        metrics.flush();
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        let line = parse(&lines[0]);
        assert_eq!(line["StalledOrders"], 0);
        assert_eq!(line["RevivedChains"], 0);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ns");
        assert_eq!(directive["Dimensions"], serde_json::json!([[]]));
        let names: Vec<_> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["StalledOrders", "RevivedChains"]);
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn a_flush_writes_the_counts_since_the_last_one() {
        let metrics = Metrics::in_memory("ns", &[Metric::Polls]);
        metrics.add(Metric::Polls, 3);
        metrics.clone().add(Metric::Polls, 2);
        metrics.flush();
        metrics.add(Metric::Polls, 1);
        metrics.flush();
        let lines = metrics.lines();
        assert_eq!(parse(&lines[0])["Polls"], 5);
        assert_eq!(parse(&lines[1])["Polls"], 1);
    }

    #[test]
    fn supplier_errors_are_written_in_total_and_per_kind() {
        let metrics = Metrics::in_memory("ns", &[Metric::Polls]);
        let op = crate::foxreload::Operation::GetOrder;
        let busy = SupplierError::RateLimited {
            op,
            retry_after: None,
        };
        metrics.supplier_error(&busy);
        metrics.supplier_error(&busy);
        metrics.supplier_error(&SupplierError::Unavailable {
            op,
            status: 503,
            code: None,
            detail: None,
        });
        metrics.flush();
        let lines: Vec<_> = metrics.lines().iter().map(|l| parse(l)).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["SupplierErrors"], 3);
        assert_eq!(lines[0]["Polls"], 0);
        let by_kind: BTreeMap<_, _> = lines[1..]
            .iter()
            .map(|l| {
                let directive = &l["_aws"]["CloudWatchMetrics"][0];
                assert_eq!(directive["Dimensions"], serde_json::json!([[ERROR_KIND]]));
                (
                    l[ERROR_KIND].as_str().unwrap().to_owned(),
                    l["SupplierErrors"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_kind,
            BTreeMap::from([
                ("rate_limited".to_owned(), 2),
                ("unavailable".to_owned(), 1)
            ])
        );
    }
}
