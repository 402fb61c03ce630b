//! Issue 16 through the local runner: a burst of orders placed at 50 a
//! second against a simulator limited to 20 requests a second, poll
//! messages taken by four pollers (each its own poll-order "container"),
//! with the stack's FoxReload budget at 50/s (above the limit: it must find
//! it) and with none. The benchmark runs the full burst (500 orders
//! in 10 s, `cargo run --release -p foxrelay-bench -- burst`); this is the
//! same scenario, smaller, so the suite stays quick.

use foxrelay_local::burst::{Burst, BurstReport, run};
use foxrelay_tests::{local_stack_options, unique_prefix};
use foxreload_sim::{SimConfig, Simulator};
use std::time::Duration;

async fn burst(max_rps: u32) -> BurstReport {
    // The handlers' logs, when asked for (`RUST_LOG`).
    if std::env::var_os("RUST_LOG").is_some() {
        foxrelay_shared::telemetry::init_local();
    }
    // Only the stack's options are taken from it: the burst runs its own
    // simulator, with the limit.
    let unused = Simulator::start(SimConfig::default()).await.unwrap();
    let stack = local_stack_options(&unique_prefix(), &unused, &[], 1, Duration::from_secs(3600));
    run(Burst {
        orders: 120,
        over: Duration::from_millis(2_400),
        limit: 20,
        max_rps,
        pollers: 4,
        deadline: Duration::from_secs(240),
        stack,
    })
    .await
    .unwrap()
}

fn report(name: &str, run: &BurstReport) -> String {
    format!(
        "{name}: busiest second after the first 429 {}, {} 429s, {} creates answered 503 busy, \
         {} answered 503 for FoxReload, drained in {:.0} s, lag p50 {:.1} s p95 {:.1} s\n\
         requests/429s a second: {}\n\
         budget rate:granted/busy a second: {}\n\
         503s other than busy: {:?}",
        run.busiest_after_first_429(),
        run.refusals(),
        run.busy.len(),
        run.unavailable,
        run.drain.as_secs_f64(),
        run.lag(0.5).as_secs_f64(),
        run.lag(0.95).as_secs_f64(),
        run.timeline(),
        run.budget_timeline(),
        run.unavailable_why,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "issue 16, open: moto answers in seconds under the burst, so the outcome rests on its timing (the last two runs passed, 19 and 21 in the busiest second after the first 429, the bar 22, no create answered busy; the 500-order benchmark still saw one second of 24); minutes long; run with --ignored"]
async fn a_burst_over_foxreloads_limit_is_sent_within_it_and_every_order_is_notified() {
    // Both runs check that every order was bought once and notified with
    // its own codes.
    let governed = burst(50).await;
    let ungoverned = burst(0).await;
    eprintln!("{}", report("budget 50/s", &governed));
    eprintln!("{}", report("no budget", &ungoverned));
    // After the first 429, FoxReload never sees more than 22 in a second.
    assert!(
        governed.busiest_after_first_429() <= 22,
        "{:?}",
        governed.requests
    );
    // Creates come first: none is refused for the budget while reads go.
    assert!(
        governed.reads_while_creates_refused().is_empty(),
        "reads at {:?} while creates were refused at {:?}",
        governed.reads_while_creates_refused(),
        governed.busy
    );
    // Without a budget, FoxReload is sent more than it takes.
    assert!(ungoverned.refusals() > governed.refusals());
    assert!(ungoverned.busy.is_empty(), "no budget, no busy answer");
}
