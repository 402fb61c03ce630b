//! foxrelay's benchmarks. `cargo run --release -p foxrelay-bench` runs every
//! section and prints one markdown table each; name sections to run only
//! those (`schedule`, `learned`, `cold-start`, `throughput`, `scan`, `cost`;
//! `burst`, minutes long, runs only when named).
//!
//! Every figure is measured in this run on this machine; where there is
//! something to compare with, both are measured in the same run and the
//! ratio is printed. Nothing here is a pass/fail test. Progress (which
//! section, how far along) goes to standard error.

mod burst;
mod cold_start;
mod cost;
mod lab;
mod learned;
mod progress;
mod rng;
mod schedule_lag;
mod stall_scan;
mod table;
mod throughput;

use std::process::ExitCode;
use table::Section;

const SECTIONS: [&str; 7] = [
    "schedule",
    "learned",
    "cold-start",
    "throughput",
    "scan",
    "cost",
    "burst",
];
/// Run only when named: minutes long.
const ON_REQUEST: [&str; 1] = ["burst"];
/// The sections that need moto (the local AWS).
const NEEDS_AWS: [&str; 5] = ["cold-start", "throughput", "scan", "cost", "burst"];

#[tokio::main]
async fn main() -> ExitCode {
    // The handlers' logs, only when asked for (`RUST_LOG`): a section's
    // progress is all standard error shows otherwise.
    if std::env::var_os("RUST_LOG").is_some() {
        foxrelay_shared::telemetry::init_local();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: foxrelay-bench [SECTION...]\nsections: {}",
            SECTIONS.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&str> = if args.is_empty() {
        SECTIONS
            .into_iter()
            .filter(|s| !ON_REQUEST.contains(s))
            .collect()
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = chosen.iter().find(|s| !SECTIONS.contains(s)) {
        eprintln!(
            "unknown section {unknown}; sections: {}",
            SECTIONS.join(", ")
        );
        return ExitCode::from(2);
    }
    println!(
        "## foxrelay benchmarks ({}, {} cores)\n",
        today(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // One moto for every section that needs AWS; the SDK never looks
    // further than loopback.
    let lab = if chosen.iter().any(|s| NEEDS_AWS.contains(s)) {
        match lab::Lab::start() {
            Ok(lab) => Some(lab),
            Err(error) => {
                eprintln!("moto did not start: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let count = chosen.len();
    for (index, name) in chosen.into_iter().enumerate() {
        let started = progress::section(index, count, name);
        let section: Result<Section, String> = match (name, &lab) {
            ("schedule", _) => Ok(schedule_lag::run()),
            ("learned", _) => Ok(learned::run()),
            ("cold-start", Some(lab)) => cold_start::run(lab).await,
            ("throughput", Some(lab)) => throughput::run(lab).await,
            ("scan", Some(lab)) => stall_scan::run(lab).await,
            ("cost", Some(lab)) => cost::run(lab).await,
            ("burst", Some(lab)) => burst::run_section(lab).await,
            _ => unreachable!("checked above"),
        };
        progress::done(name, started);
        match section {
            Ok(section) => println!("{}", section.markdown()),
            Err(error) => {
                eprintln!("section {name} failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}
