//! foxrelay's benchmarks. `cargo run --release -p foxrelay-bench` runs every
//! section and prints one markdown table each; name sections to run only
//! those (`schedule`, `cold-start`, `throughput`, `scan`, `cost`).
//!
//! Every figure is measured in this run on this machine; where there is
//! something to compare with, both are measured in the same run and the
//! ratio is printed. Nothing here is a pass/fail test.

mod lab;
mod rng;
mod schedule_lag;
mod table;

use std::process::ExitCode;
use table::Section;

const SECTIONS: [&str; 1] = ["schedule"];

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: foxrelay-bench [SECTION...]\nsections: {}",
            SECTIONS.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&str> = if args.is_empty() {
        SECTIONS.to_vec()
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
    for name in chosen {
        let section: Result<Section, String> = match name {
            "schedule" => Ok(schedule_lag::run()),
            _ => unreachable!("checked above"),
        };
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
