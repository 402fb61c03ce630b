//! The EMF lines of one flush.

use super::{
    BUDGET_DENIED, BUDGET_GRANTED, ERROR_KIND, FOXRELOAD_BUDGET, FUNCTION, Figures, Metric,
    MetricSet, OPERATION, POLLS_PER_ORDER, PRIORITY, PRODUCT, SCHEDULE, Timing,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The most values EMF takes for one metric on one line.
const VALUES_PER_LINE: usize = 100;

/// The lines for `figures`: one with every declared (or counted) counter
/// and the first times to notify; then one per supplier error kind; then
/// supplier latency per operation; then any values left over.
pub(super) fn render(
    namespace: &str,
    set: MetricSet,
    figures: &Figures,
    timestamp: u64,
) -> Vec<String> {
    let line = Line {
        namespace,
        function: set.function,
        timestamp,
    };
    let mut totals: BTreeMap<Metric, u64> = set.declared.iter().map(|m| (*m, 0)).collect();
    for (metric, n) in &figures.counts {
        *totals.entry(*metric).or_default() += n;
    }
    let mut notify = figures.time_to_notify.chunks(VALUES_PER_LINE);
    let mut lines = Vec::new();
    let first_notify = notify.next();
    if !totals.is_empty() || first_notify.is_some() {
        let mut values: Vec<(&str, &str, Value)> = totals
            .iter()
            .map(|(metric, n)| (metric.name(), "Count", json!(n)))
            .collect();
        if let Some(chunk) = first_notify {
            values.push((Timing::TimeToNotify.name(), "Milliseconds", json!(chunk)));
        }
        lines.push(line.render(None, &values));
    }
    for (kind, n) in &figures.supplier_errors {
        lines.push(line.render(
            Some((ERROR_KIND, kind)),
            &[(Metric::SupplierErrors.name(), "Count", json!(n))],
        ));
    }
    for (operation, took) in &figures.latency {
        for chunk in took.chunks(VALUES_PER_LINE) {
            lines.push(line.render(
                Some((OPERATION, operation)),
                &[(Timing::SupplierLatency.name(), "Milliseconds", json!(chunk))],
            ));
        }
    }
    for chunk in notify {
        lines.push(line.render(
            None,
            &[(Timing::TimeToNotify.name(), "Milliseconds", json!(chunk))],
        ));
    }
    for (priority, (granted, denied)) in &figures.budget {
        lines.push(line.render(
            Some((PRIORITY, priority)),
            &[
                (BUDGET_GRANTED, "Count", json!(granted)),
                (BUDGET_DENIED, "Count", json!(denied)),
            ],
        ));
    }
    if let Some(rps) = figures.budget_rps {
        lines.push(line.render(None, &[(FOXRELOAD_BUDGET, "Count/Second", json!(rps))]));
    }
    for ((product, schedule), (polls, notify)) in &figures.ended {
        let dimensions = [(PRODUCT, product.as_str()), (SCHEDULE, *schedule)];
        for chunk in polls.chunks(VALUES_PER_LINE) {
            lines.push(line.render_with(&dimensions, &[(POLLS_PER_ORDER, "Count", json!(chunk))]));
        }
        for chunk in notify.chunks(VALUES_PER_LINE) {
            lines.push(line.render_with(
                &dimensions,
                &[(Timing::TimeToNotify.name(), "Milliseconds", json!(chunk))],
            ));
        }
    }
    lines
}

struct Line<'a> {
    namespace: &'a str,
    function: &'a str,
    timestamp: u64,
}

impl Line<'_> {
    /// One EMF line: `values` (name, unit, value) with the `Function`
    /// dimension and `extra`, when given.
    fn render(&self, extra: Option<(&str, &str)>, values: &[(&str, &str, Value)]) -> String {
        self.render_with(extra.as_slice(), values)
    }

    /// One EMF line with the `Function` dimension and every one of
    /// `extra`.
    fn render_with(&self, extra: &[(&str, &str)], values: &[(&str, &str, Value)]) -> String {
        let mut dimensions = vec![FUNCTION];
        let mut line = Map::new();
        line.insert(FUNCTION.into(), self.function.into());
        for (name, value) in extra {
            dimensions.push(name);
            line.insert((*name).into(), (*value).into());
        }
        let metrics: Vec<_> = values
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
            .collect();
        for (name, _, value) in values {
            line.insert((*name).into(), value.clone());
        }
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimensions],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(line).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Metrics, Timing};
    use super::*;
    use crate::foxreload::{Operation, SupplierError};
    use std::time::Duration;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).expect("an EMF line is one JSON object")
    }

    fn set(declared: &'static [Metric]) -> MetricSet {
        MetricSet {
            function: "poll-order",
            declared,
        }
    }

    fn names(line: &Value) -> Vec<String> {
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn declared_metrics_are_written_as_zero_with_the_function_dimension() {
        let metrics =
            Metrics::in_memory("ns", set(&[Metric::StalledOrders, Metric::RevivedChains]));
        metrics.flush();
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        let line = parse(&lines[0]);
        assert_eq!(line["StalledOrders"], 0);
        assert_eq!(line["RevivedChains"], 0);
        assert_eq!(line[FUNCTION], "poll-order");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ns");
        assert_eq!(directive["Dimensions"], json!([[FUNCTION]]));
        assert_eq!(names(&line), ["StalledOrders", "RevivedChains"]);
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn a_flush_writes_the_counts_since_the_last_one() {
        let metrics = Metrics::in_memory("ns", set(&[Metric::Polls]));
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
        let metrics = Metrics::in_memory("ns", set(&[Metric::Polls]));
        let op = Operation::GetOrder;
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
                assert_eq!(directive["Dimensions"], json!([[FUNCTION, ERROR_KIND]]));
                assert_eq!(l[FUNCTION], "poll-order");
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

    #[test]
    fn timings_are_written_as_distributions_in_milliseconds() {
        let metrics = Metrics::in_memory("ns", set(&[Metric::OrdersCompleted]));
        metrics.time_to_notify(Duration::from_millis(12_345));
        metrics.time_to_notify(Duration::from_secs(3));
        metrics.supplier_latency(Operation::GetOrder, Duration::from_millis(80));
        metrics.supplier_latency(Operation::GetOrder, Duration::from_millis(120));
        metrics.supplier_latency(Operation::CreateOrder, Duration::from_millis(900));
        metrics.flush();
        let lines: Vec<_> = metrics.lines().iter().map(|l| parse(l)).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["TimeToNotify"], json!([12_345, 3_000]));
        let units: Vec<_> = lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert_eq!(
            units,
            [
                ("OrdersCompleted", "Count"),
                ("TimeToNotify", "Milliseconds")
            ]
        );
        let by_operation: BTreeMap<_, _> = lines[1..]
            .iter()
            .map(|l| {
                let directive = &l["_aws"]["CloudWatchMetrics"][0];
                assert_eq!(directive["Dimensions"], json!([[FUNCTION, OPERATION]]));
                assert_eq!(names(l), [Timing::SupplierLatency.name()]);
                (
                    l[OPERATION].as_str().unwrap().to_owned(),
                    l["SupplierLatency"].clone(),
                )
            })
            .collect();
        assert_eq!(
            by_operation,
            BTreeMap::from([
                ("create_order".to_owned(), json!([900])),
                ("get_order".to_owned(), json!([80, 120])),
            ])
        );
    }

    #[test]
    fn no_line_holds_more_than_a_hundred_values_of_a_metric() {
        let metrics = Metrics::in_memory("ns", set(&[]));
        for ms in 0..250 {
            metrics.time_to_notify(Duration::from_millis(ms));
            metrics.supplier_latency(Operation::ListOrders, Duration::from_millis(ms));
        }
        metrics.flush();
        let lines: Vec<_> = metrics.lines().iter().map(|l| parse(l)).collect();
        let mut notified = Vec::new();
        let mut timed = Vec::new();
        for line in &lines {
            for (name, kept) in [
                ("TimeToNotify", &mut notified),
                ("SupplierLatency", &mut timed),
            ] {
                if let Some(values) = line[name].as_array() {
                    assert!(values.len() <= VALUES_PER_LINE);
                    kept.extend(values.iter().map(|v| v.as_u64().unwrap()));
                }
            }
        }
        let all: Vec<u64> = (0..250).collect();
        assert_eq!(notified, all);
        assert_eq!(timed, all);
    }

    #[test]
    fn ended_orders_are_written_per_product_and_schedule() {
        let metrics = Metrics::in_memory("ns", set(&[]));
        let ended = |product: &str, schedule, polls, ms: Option<u64>| super::super::Ended {
            product: product.to_owned(),
            schedule,
            polls,
            time_to_notify: ms.map(Duration::from_millis),
        };
        metrics.ended(&ended("p1", "learned", 1, Some(2_500)));
        metrics.ended(&ended("p1", "learned", 2, Some(3_000)));
        metrics.ended(&ended("p1", "default", 4, None));
        metrics.flush();
        let lines: Vec<_> = metrics.lines().iter().map(|l| parse(l)).collect();
        let of = |schedule: &str, metric: &str| -> Vec<Value> {
            lines
                .iter()
                .filter(|l| l[SCHEDULE] == schedule && l.get(metric).is_some())
                .map(|l| {
                    let directive = &l["_aws"]["CloudWatchMetrics"][0];
                    assert_eq!(
                        directive["Dimensions"],
                        json!([[FUNCTION, PRODUCT, SCHEDULE]])
                    );
                    assert_eq!(l[PRODUCT], "p1");
                    l[metric].clone()
                })
                .collect()
        };
        assert_eq!(of("learned", POLLS_PER_ORDER), vec![json!([1, 2])]);
        assert_eq!(of("learned", "TimeToNotify"), vec![json!([2500, 3000])]);
        assert_eq!(of("default", POLLS_PER_ORDER), vec![json!([4])]);
        assert!(of("default", "TimeToNotify").is_empty());
    }
}
