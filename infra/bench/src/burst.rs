//! Issue 16's burst: 500 orders placed in 10 s through the local stack
//! (the real handlers, moto, four pollers) against a simulator that
//! refuses what passes 20 requests a second, once with the stack's
//! FoxReload budget (`FOXRELOAD_MAX_RPS=50`, above the limit: it must find
//! it) and once without. Clients come back after `Retry-After` when
//! answered 503, with the same key.

use crate::lab::Lab;
use crate::table::{Section, fixed};
use foxrelay_local::burst::{Burst, BurstReport, run};
use foxrelay_local::{StackOptions, StackTemplate};
use std::collections::BTreeMap;
use std::time::Duration;

const ORDERS: usize = 500;
const OVER: Duration = Duration::from_secs(10);
const LIMIT: u32 = 20;

fn options(lab: &Lab, prefix: &str) -> StackOptions {
    StackOptions {
        template: StackTemplate::repository_path(),
        aws_endpoint: Some(lab.moto.endpoint_url()),
        foxreload: None,
        simulator: Default::default(),
        prefix: prefix.to_owned(),
        api_addr: ([127, 0, 0, 1], 0).into(),
        overrides: BTreeMap::new(),
        // As deployed: scan-stalled revives what a burst leaves stalled.
        scan_interval: Duration::from_secs(300),
        poll_copies: 1,
        poll_wait: Duration::from_secs(1),
        pollers: 4,
    }
}

async fn one(lab: &Lab, max_rps: u32) -> Result<BurstReport, String> {
    let prefix = format!(
        "burst{max_rps}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    run(Burst {
        orders: ORDERS,
        over: OVER,
        limit: LIMIT,
        max_rps,
        pollers: 4,
        deadline: Duration::from_secs(1_200),
        stack: options(lab, &prefix),
    })
    .await
}

pub async fn run_section(lab: &Lab) -> Result<Section, String> {
    let mut section = Section::new(
        "A burst against FoxReload's limit",
        &format!(
            "{ORDERS} orders of the fast product placed over {} s through the local stack (moto, \
             the real handlers, four pollers) against a simulator limited to {LIMIT} requests a \
             second; with the stack's budget at 50/s (it must find the limit) and with none. \
             Lag: from a client's first POST to its order's event. Every order is checked \
             bought once and notified with its own codes.",
            OVER.as_secs()
        ),
        &[
            "budget",
            "busiest second after the first 429",
            "429s",
            "creates answered 503 busy",
            "creates answered 503 unavailable (or 502: stopped at its timeout)",
            "drain (s)",
            "lag p50 (s)",
            "lag p95 (s)",
            "reads sent while creates refused",
        ],
    );
    // A run that fails is a row saying why (its timelines on standard
    // error), and the other run is still measured.
    for (name, max_rps) in [("50/s", 50), ("none", 0)] {
        let row = match one(lab, max_rps).await {
            Ok(report) => {
                eprintln!(
                    "burst, budget {name}: FoxReload's requests/429s a second: {}\n\
                     the budget's rate:granted/busy a second: {}",
                    report.timeline(),
                    report.budget_timeline()
                );
                vec![
                    name.to_owned(),
                    report.busiest_after_first_429().to_string(),
                    report.refusals().to_string(),
                    report.busy.len().to_string(),
                    report.unavailable.to_string(),
                    fixed(report.drain.as_secs_f64(), 0),
                    fixed(report.lag(0.5).as_secs_f64(), 1),
                    fixed(report.lag(0.95).as_secs_f64(), 1),
                    report.reads_while_creates_refused().len().to_string(),
                ]
            }
            Err(why) => {
                eprintln!("burst, budget {name}: did not pass: {why}");
                let short = why.split("; FoxReload saw").next().unwrap_or(&why);
                let mut row = vec![name.to_owned(), format!("did not pass: {short}")];
                row.resize(9, "–".to_owned());
                row
            }
        };
        eprintln!("burst row: | {} |", row.join(" | "));
        section.row(row);
    }
    Ok(section)
}
