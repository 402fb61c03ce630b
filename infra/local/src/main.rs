//! `foxrelay-local`: the whole product on one machine, with no AWS account.
//!
//! ```text
//! foxrelay-local serve [--template PATH] [--show-codes]
//! foxrelay-local demo  [--template PATH] [--show-codes]
//! ```
//! `serve` runs the stack (see [`foxrelay_local::stack`]) and prints every
//! order event and operations alert as it arrives, until Ctrl-C. `demo` runs
//! it, places a handful of orders across the simulator's behaviours, shows
//! them to their events, and exits 0 once every one has ended and been
//! notified (non-zero, with the reason, otherwise).
//!
//! Settings: `FOXRELAY_API_ADDR` (default 127.0.0.1:3000), `SCAN_INTERVAL_SECS`
//! (300), `FOXRELAY_POLL_COPIES` (1), `AWS_ENDPOINT_URL` (moto is started when
//! unset), `FOXRELOAD_BASE_URL` and `FOXRELOAD_API_KEY` (the simulator runs
//! when unset), and any function setting (`POLL_*`, `STALL_*`, …).

use foxrelay_local::StackTemplate;
use foxrelay_local::stack::{LocalStack, StackOptions};
use foxreload_sim::{SimConfig, Timing};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: foxrelay-local serve|demo [--template PATH] [--show-codes]";

struct Args {
    demo: bool,
    template: PathBuf,
    show_codes: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    foxrelay_shared::telemetry::init_local();
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if args.demo {
        demo(&args).await
    } else {
        serve(&args).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("foxrelay-local: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut iter = args.into_iter();
    let demo = match iter.next().as_deref() {
        Some("serve") => false,
        Some("demo") => true,
        Some(other) => return Err(format!("unknown command {other}")),
        None => return Err("no command given".into()),
    };
    let mut parsed = Args {
        demo,
        template: default_template(),
        show_codes: false,
    };
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--show-codes" => parsed.show_codes = true,
            "--template" => {
                parsed.template = iter.next().ok_or("--template needs a path")?.into();
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

/// `./template.yaml` when run from the repository root, else the repository's.
fn default_template() -> PathBuf {
    let here = PathBuf::from("template.yaml");
    if here.exists() {
        here
    } else {
        StackTemplate::repository_path()
    }
}

/// A queue subscribed to both topics, read by the printer.
async fn printer_queue(stack: &LocalStack) -> Result<String, String> {
    let topics = [
        stack.resources.order_events_topic_arn(),
        stack.resources.ops_alerts_topic_arn(),
    ];
    foxrelay_local::subscribe_queue(&stack.clients, &topics, "foxrelay-local-printer")
        .await
        .map_err(|e| e.to_string())
}

/// Receives what arrived on the printer queue (waiting up to `wait`).
async fn receive(stack: &LocalStack, queue: &str, wait: Duration) -> Vec<Value> {
    let sqs = &stack.clients.sqs;
    let Ok(got) = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(wait.as_secs() as i32)
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut bodies = Vec::new();
    for message in got.messages() {
        if let Some(body) = message.body().and_then(|b| serde_json::from_str(b).ok()) {
            bodies.push(body);
        }
        let _ = sqs
            .delete_message()
            .queue_url(queue)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await;
    }
    bodies
}

/// A code as printed: masked but for its last four characters.
fn shown(code: &str, show_codes: bool) -> String {
    if show_codes {
        return code.to_owned();
    }
    let chars: Vec<char> = code.chars().collect();
    let keep = chars.len().saturating_sub(4);
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep && c.is_alphanumeric() {
                '*'
            } else {
                *c
            }
        })
        .collect()
}

fn print_message(message: &Value, show_codes: bool) {
    if let Some(kind) = message.get("type").and_then(Value::as_str) {
        let codes: Vec<String> = message["codes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| match c["kind"].as_str() {
                Some("data") if !show_codes => "<activation data>".to_owned(),
                _ => shown(c["code"].as_str().unwrap_or_default(), show_codes),
            })
            .collect();
        let preview = if codes.len() > 3 {
            format!("{}, … ({} in all)", codes[..3].join(", "), codes.len())
        } else {
            codes.join(", ")
        };
        println!(
            "event  {kind:<16} order {}  codes [{preview}]{}",
            message["orderId"].as_str().unwrap_or_default(),
            message["cancelReason"]
                .as_str()
                .map(|r| format!("  cancelReason {r}"))
                .unwrap_or_default()
        );
    } else {
        println!(
            "alert  {:<16} order {}  {}",
            message["kind"].as_str().unwrap_or_default(),
            message["orderId"].as_str().unwrap_or_default(),
            message["message"].as_str().unwrap_or_default()
        );
    }
}

async fn serve(args: &Args) -> Result<(), String> {
    let options = StackOptions::from_env(args.template.clone())?;
    let stack = LocalStack::start(options).await?;
    eprintln!("{}", foxrelay_local::gateway::UNVERIFIED_TOKENS);
    let printer = printer_queue(&stack).await?;
    println!(
        "foxrelay is up: POST http://{}/orders (Ctrl-C stops it)",
        stack.api_addr
    );
    println!("  AWS (moto):  {}", stack.aws_endpoint);
    println!("  FoxReload:   {}", stack.foxreload_base_url);
    loop {
        tokio::select! {
            messages = receive(&stack, &printer, Duration::from_secs(2)) => {
                for message in messages {
                    print_message(&message, args.show_codes);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("stopping: letting work in flight finish");
    stack.stop().await;
    Ok(())
}

/// The demo's orders: a product of each kind the simulator offers.
const DEMO_ORDERS: [(&str, u32, &str); 10] = [
    ("product_fast", 2, "completes with two codes"),
    (
        "product_activation",
        1,
        "activation data without a code field",
    ),
    ("product_partial", 3, "completes with an item error"),
    ("product_many", 1, "many codes"),
    ("product_fail", 1, "fails at FoxReload"),
    ("product_poor", 1, "payment refused, then cancelled"),
    ("product_5xx", 1, "reads answer 503 at first"),
    ("product_429", 1, "reads are rate-limited at first"),
    ("product_unknown_status", 1, "an unknown status on the way"),
    (
        "product_stall_create",
        1,
        "the create times out: reconciled, bought once",
    ),
];

async fn demo(args: &Args) -> Result<(), String> {
    let mut options = StackOptions::from_env(args.template.clone())?;
    if std::env::var("FOXRELAY_API_ADDR").is_err() {
        options.api_addr = ([127, 0, 0, 1], 0).into();
    }
    options.simulator = SimConfig {
        timing: Timing {
            payment_window: Duration::from_secs(15),
            create_stall: Duration::from_secs(12),
            ..Timing::default()
        },
        ..SimConfig::default()
    };
    options.scan_interval = Duration::from_secs(15);
    let stack = LocalStack::start(options).await?;
    let result = run_demo(&stack, args.show_codes).await;
    stack.stop().await;
    result
}

async fn run_demo(stack: &LocalStack, show_codes: bool) -> Result<(), String> {
    let printer = printer_queue(stack).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .map_err(|e| e.to_string())?;
    let api = format!("http://{}/orders", stack.api_addr);
    println!("foxrelay demo: the stack is up; orders go to {api}");
    let mut pending = BTreeMap::new();
    let mut first = String::new();
    let bought_before = stack
        .simulator
        .as_ref()
        .map(|sim| sim.counters().orders_created);
    for (n, (product, quantity, what)) in DEMO_ORDERS.iter().enumerate() {
        let body = json!({"items": [{"productId": product, "quantity": quantity}],
                          "customerReference": format!("demo-{n}")});
        let response = http
            .post(&api)
            .header("idempotency-key", format!("demo-{n}"))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST /orders failed: {e}"))?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        if status.as_u16() != 202 {
            return Err(format!("{product}: expected 202, got {status}: {answer}"));
        }
        let id = answer["orderId"].as_str().unwrap_or_default().to_owned();
        if n == 0 {
            first = id.clone();
        }
        println!(
            "placed {product:<24} {status}  order {id}  {}  ({what})",
            answer["status"].as_str().unwrap_or_default()
        );
        pending.insert(id, product.to_string());
    }
    // The same key and body again: the same answer, nothing bought twice.
    let replay = http
        .post(&api)
        .header("idempotency-key", "demo-0")
        .json(
            &json!({"items": [{"productId": DEMO_ORDERS[0].0, "quantity": DEMO_ORDERS[0].1}],
                      "customerReference": "demo-0"}),
        )
        .send()
        .await
        .map_err(|e| format!("POST /orders failed: {e}"))?;
    let replayed = replay
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let status = replay.status();
    let answer: Value = replay.json().await.map_err(|e| e.to_string())?;
    if answer["orderId"] != first.as_str() || !replayed {
        return Err(format!(
            "the replay of demo-0 was not answered from its key: {status} {answer}"
        ));
    }
    // With the simulator in the stack, FoxReload's own count says it too.
    let bought = stack
        .simulator
        .as_ref()
        .map(|sim| sim.counters().orders_created);
    let expected = bought_before.map(|before| before + DEMO_ORDERS.len() as u64);
    if bought != expected {
        return Err(format!(
            "FoxReload counts {bought:?} orders bought, {expected:?} expected"
        ));
    }
    println!(
        "replayed demo-0: {status}, order {first}, Idempotent-Replayed: true; nothing bought again"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while !pending.is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{} orders did not end in time: {}",
                pending.len(),
                pending.values().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for message in receive(stack, &printer, Duration::from_secs(2)).await {
            print_message(&message, show_codes);
            if message.get("type").is_some()
                && let Some(id) = message["orderId"].as_str()
            {
                pending.remove(id);
            }
        }
    }
    println!(
        "all {} orders ended and were notified; codes are in DynamoDB",
        DEMO_ORDERS.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_masked_but_for_their_end() {
        assert_eq!(shown("FOX-ABCD-EFGH-1234", false), "***-****-****-1234");
        assert_eq!(shown("FOX-ABCD-EFGH-1234", true), "FOX-ABCD-EFGH-1234");
        assert_eq!(shown("ab", false), "ab");
    }

    #[test]
    fn commands_and_flags_are_parsed() {
        let args = parse_args(vec!["demo".into(), "--show-codes".into()]).unwrap();
        assert!(args.demo && args.show_codes);
        assert!(parse_args(vec![]).is_err());
        assert!(parse_args(vec!["serve".into(), "--nope".into()]).is_err());
    }
}
