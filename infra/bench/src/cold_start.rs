//! Cold start and memory of each function's release binary: started as
//! Lambda starts it, against a local Lambda Runtime API, with its settings
//! and SDK clients built as in production (pointed at moto), then invoked.
//!
//! - init: process start until the runtime first asks for an event;
//! - first answer: process start until the first invocation is answered
//!   (init plus one real handler run against moto);
//! - warm: the second invocation's round trip;
//! - peak RSS: the process's high-water mark (`VmHWM`) after both.

use crate::lab::{Lab, http_request};
use crate::table::{Section, fixed, ratio};
use axum::http::Method;
use foxrelay_shared::settings::names;
use foxrelay_shared::testing::{FunctionProcess, Outcome, RuntimeApi, sqs_batch};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 5;
/// Published lambda-perf figures (maxday.github.io/lambda-perf): hello-world
/// init duration and memory used.
const RUST_HELLO: (f64, f64) = (14.0, 15.0);
const NODE_22_HELLO: (f64, f64) = (124.0, 73.0);

struct Run {
    init: Duration,
    first_answer: Duration,
    warm: Duration,
    peak_rss_kib: u64,
}

/// Builds the four release binaries (beside this one) and returns their
/// directory.
fn build_functions() -> Result<PathBuf, String> {
    let dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("the benchmark binary has no directory")?
        .to_owned();
    if dir.file_name().and_then(|n| n.to_str()) != Some("release") {
        eprintln!("note: cold start figures are for release builds; run with --release");
    }
    crate::progress::step("building the four function binaries (release; minutes from cold)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "-p",
        "create-order",
        "-p",
        "poll-order",
        "-p",
        "scan-stalled",
        "-p",
        "deliver-webhook",
    ]);
    if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
        command.arg("--release");
    }
    let status = command.status().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the functions failed: {status}"));
    }
    Ok(dir)
}

/// The webhook endpoint deliver-webhook is started with; its invocation
/// never reaches it (the order it is asked to deliver is not in the table,
/// so the delivery is dead-lettered).
const BENCH_ENDPOINTS: &str = r#"[{"id": "shop", "url": "https://hooks.example.com/foxrelay"}]"#;

/// Each function's invocation, and whether it must finish its work (no
/// message kept for redelivery). poll-order's message names an order not
/// in the table, which it keeps for redelivery, as it would a poll that
/// overtook its order's write: one read of the table.
fn events() -> [(&'static str, Value, bool); 4] {
    let http = serde_json::to_value(http_request(
        Method::GET,
        "/orders/00000000-0000-4000-8000-000000000000",
        None,
        None,
    ))
    .expect("a request serializes");
    let order = "00000000-0000-4000-8000-000000000000";
    let poll = json!({"orderId": order, "seq": 1, "kind": "poll"}).to_string();
    let sqs = sqs_batch(&[("m1", &poll)]);
    let retry = json!({"eventId": "evt-1", "orderId": order, "endpoint": "shop",
                       "attempt": 1, "notBeforeMs": 0})
    .to_string();
    let delivery = sqs_batch(&[("m1", &retry)]);
    let scheduled = json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-28T10:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}});
    [
        ("create-order", http, true),
        ("poll-order", sqs, false),
        ("scan-stalled", scheduled, true),
        ("deliver-webhook", delivery, true),
    ]
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn one_run(
    binary: &Path,
    env: &[(&str, String)],
    event: &Value,
    must_finish: bool,
) -> Result<Run, String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let process = FunctionProcess::spawn(&binary.to_string_lossy(), &api, env)
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let answer = |outcome: Option<Outcome>| match outcome {
        // A batch answered with messages kept for redelivery did not do
        // its work: no figure for it.
        Some(Outcome::Response(response))
            if must_finish
                && response["batchItemFailures"]
                    .as_array()
                    .is_some_and(|kept| !kept.is_empty()) =>
        {
            Err(format!("{} kept messages: {response}", binary.display()))
        }
        Some(Outcome::Response(_)) => Ok(()),
        Some(Outcome::Error(error)) => Err(format!("{} failed: {error}", binary.display())),
        None => Err(format!("{} answered nothing", binary.display())),
    };
    answer(api.invoke(event.clone(), Duration::from_secs(30)).await)?;
    let first_answer = started.elapsed();
    let init = api.ready_at().map_or(first_answer, |ready| ready - started);
    let warm_start = Instant::now();
    answer(api.invoke(event.clone(), Duration::from_secs(30)).await)?;
    let warm = warm_start.elapsed();
    let peak_rss_kib = process.id().and_then(peak_rss_kib).unwrap_or_default();
    let _ = process.stop().await;
    Ok(Run {
        init,
        first_answer,
        warm,
        peak_rss_kib,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

pub async fn run(lab: &Lab) -> Result<Section, String> {
    let dir = build_functions()?;
    let stack = lab.stack(lab.clients().await).await?;
    let sim = foxreload_sim::Simulator::start(foxreload_sim::SimConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut env: Vec<(&str, String)> = stack
        .resources
        .function_environment(&stack.template)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|(name, value)| {
            names::DEPLOYED
                .iter()
                .chain(names::CODES)
                .chain(names::WEBHOOKS)
                .find(|n| **n == name && **n != names::WEBHOOK_ENDPOINTS)
                .map(|n| (*n, value))
        })
        .collect();
    env.push((names::WEBHOOK_ENDPOINTS, BENCH_ENDPOINTS.into()));
    env.push((names::FOXRELOAD_BASE_URL, sim.base_url()));
    env.push((names::FOXRELOAD_API_KEY, sim.api_key().to_owned()));
    env.push((names::AWS_ENDPOINT_URL, lab.moto.endpoint_url()));
    env.push(("RUST_LOG", "warn".into()));

    let mut section = Section::new(
        "Cold start and memory",
        &format!(
            "Each release binary started {RUNS} times against a local Lambda Runtime API \
             with its production start-up (settings, SDK clients, the API key), pointed at moto; \
             medians. init: start until it asks for its first event; first answer: start until \
             the first invocation (one real handler run against moto) is answered. \
             Reference rows are lambda-perf's published hello-world figures (init, memory used); \
             ratios compare init and memory with them."
        ),
        &[
            "function",
            "stripped binary MB",
            "init ms",
            "first answer ms",
            "warm invocation ms",
            "peak RSS MB",
            "init vs Rust hello",
            "init vs Node.js 22",
            "RSS vs Node.js 22",
        ],
    );
    for (function, event, must_finish) in events() {
        let binary = dir.join(function);
        let size = std::fs::metadata(&binary)
            .map_err(|e| format!("{}: {e}", binary.display()))?
            .len();
        let mut runs = Vec::new();
        for run in 1..=RUNS {
            crate::progress::step(format_args!("{function}: start {run} of {RUNS}"));
            runs.push(one_run(&binary, &env, &event, must_finish).await?);
        }
        let init = median(runs.iter().map(|r| ms(r.init)).collect());
        let rss = median(
            runs.iter()
                .map(|r| r.peak_rss_kib as f64 / 1_024.0)
                .collect(),
        );
        section.row(vec![
            function.to_owned(),
            fixed(size as f64 / 1_000_000.0, 1),
            fixed(init, 1),
            fixed(median(runs.iter().map(|r| ms(r.first_answer)).collect()), 1),
            fixed(median(runs.iter().map(|r| ms(r.warm)).collect()), 1),
            fixed(rss, 1),
            ratio(init, RUST_HELLO.0),
            ratio(init, NODE_22_HELLO.0),
            ratio(rss, NODE_22_HELLO.1),
        ]);
    }
    for (name, (init, memory)) in [
        ("Rust hello-world (lambda-perf)", RUST_HELLO),
        ("Node.js 22 hello-world (lambda-perf)", NODE_22_HELLO),
    ] {
        section.row(vec![
            name.to_owned(),
            "–".into(),
            fixed(init, 0),
            "–".into(),
            "–".into(),
            fixed(memory, 0),
            ratio(init, RUST_HELLO.0),
            ratio(init, NODE_22_HELLO.0),
            ratio(memory, NODE_22_HELLO.1),
        ]);
    }
    Ok(section)
}
