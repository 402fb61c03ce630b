//! `foxrelay-local`: the whole product on one machine, with no AWS account.
//!
//! `serve` runs the stack (see [`foxrelay_local::stack`]) and prints every
//! order event and operations alert as it arrives, until Ctrl-C. `reseal`
//! seals codes an earlier version stored in clear, in any table. `demo` runs
//! it, places a handful of orders across the simulator's behaviours, shows
//! them to their events, and exits 0 once every one has ended and been
//! notified (non-zero, with the reason, otherwise). `--help` lists every
//! option; each falls back to its environment variable. Function settings
//! (`POLL_*`, `STALL_*`, `FOXRELOAD_*`) are read from the environment.
//!
//! Exit codes: 0 done (demo: every order ended and was notified; serve:
//! stopped by Ctrl-C), 1 failed (the reason is printed), 2 a usage error.

use clap::{Parser, Subcommand};
use foxrelay_local::StackTemplate;
use foxrelay_local::stack::{DEFAULT_API_ADDR, LocalStack, StackOptions};
use foxreload_sim::{SimConfig, Timing};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// foxrelay on one machine: moto as AWS, the FoxReload simulator, and the
/// three real handlers wired as AWS wires them.
#[derive(Debug, Parser)]
#[command(
    name = "foxrelay-local",
    version,
    after_help = "Exit codes: 0 done (demo: every order ended and was notified; serve: stopped \
                  by Ctrl-C), 1 failed (the reason is printed), 2 usage error.\n\
                  Function settings (POLL_*, STALL_*, FOXRELOAD_*, RUST_LOG) are read from the \
                  environment; see docs/configuration.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    options: Options,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the stack until Ctrl-C, printing every order event and alert.
    Serve,
    /// Run the stack, place ten orders across the simulator's behaviours,
    /// and exit once every one has ended and been notified.
    Demo,
    /// Seal the codes an earlier version stored in clear, where they are,
    /// in a deployed stack's table (AWS credentials and region from the
    /// environment, as the AWS CLI's) or a local one (--aws-endpoint-url).
    /// Safe to run again: it seals only what is still in clear.
    Reseal {
        /// The orders table (the stack's `OrdersTableName` output).
        #[arg(long, value_name = "NAME")]
        table: String,
        /// The key that seals codes (the stack's `StackKeyArn` output).
        #[arg(long, env = "CODES_KMS_KEY_ID", value_name = "KEY")]
        kms_key_id: String,
    },
}

#[derive(Debug, clap::Args)]
struct Options {
    /// The SAM template the resources are created from.
    #[arg(long, global = true, env = "FOXRELAY_TEMPLATE", value_name = "PATH")]
    template: Option<PathBuf>,
    /// Print codes in full (masked but for their last four characters
    /// otherwise).
    #[arg(long, global = true)]
    show_codes: bool,
    /// Where the orders API listens [serve: 127.0.0.1:3000; demo: a free
    /// port].
    #[arg(long, global = true, env = "FOXRELAY_API_ADDR", value_name = "ADDR")]
    api_addr: Option<SocketAddr>,
    /// Seconds between two runs of scan-stalled [serve: 300; demo: 15].
    #[arg(long, global = true, env = "SCAN_INTERVAL_SECS", value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    scan_interval_secs: Option<u64>,
    /// Copies of every poll message handed to poll-order (2 delivers each
    /// twice, as SQS's at-least-once delivery may).
    #[arg(long, global = true, env = "FOXRELAY_POLL_COPIES", value_name = "N",
          default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    poll_copies: u64,
    /// poll-order "containers" taking poll messages at once, each with its
    /// own handler (and its own view of the FoxReload budget), as Lambda
    /// runs several.
    #[arg(long, global = true, env = "FOXRELAY_POLLERS", value_name = "N",
          default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=32))]
    pollers: u64,
    /// An AWS endpoint of yours; moto is started when none is given.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    aws_endpoint_url: Option<String>,
    /// A FoxReload of yours (with --foxreload-api-key); the simulator runs
    /// when none is given.
    #[arg(
        long,
        global = true,
        env = "FOXRELOAD_BASE_URL",
        value_name = "URL",
        requires = "foxreload_api_key"
    )]
    foxreload_base_url: Option<String>,
    /// The API key of --foxreload-base-url.
    #[arg(
        long,
        global = true,
        env = "FOXRELOAD_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        requires = "foxreload_base_url"
    )]
    foxreload_api_key: Option<String>,
    /// POST every order event to this URL as well, signed as Standard
    /// Webhooks has it (endpoint `local`; its secret is printed). Plain
    /// http to a loopback address is allowed locally.
    #[arg(long, global = true, env = "FOXRELAY_WEBHOOK", value_name = "URL")]
    webhook: Option<String>,
    /// The --webhook endpoint's signing secret (`whsec_…`, as the receiver
    /// has it); a new one is made and printed when none is given.
    #[arg(
        long,
        global = true,
        env = "FOXRELAY_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        requires = "webhook"
    )]
    webhook_secret: Option<String>,
}

impl Options {
    /// The stack's options: the function settings from the environment,
    /// the rest from the command line (or its environment variables).
    fn stack_options(&self, demo: bool) -> Result<StackOptions, String> {
        let template = self.template.clone().unwrap_or_else(default_template);
        let mut options = StackOptions::from_env(template)?;
        options.api_addr = self.api_addr.unwrap_or(if demo {
            ([127, 0, 0, 1], 0).into()
        } else {
            DEFAULT_API_ADDR
                .parse()
                .map_err(|_| "the default API address".to_owned())?
        });
        let scan_default = if demo { 15 } else { 300 };
        options.scan_interval =
            Duration::from_secs(self.scan_interval_secs.unwrap_or(scan_default));
        options.poll_copies = self.poll_copies as usize;
        options.pollers = self.pollers as usize;
        options.aws_endpoint = self
            .aws_endpoint_url
            .clone()
            .filter(|u| !u.trim().is_empty());
        options.foxreload = self
            .foxreload_base_url
            .clone()
            .zip(self.foxreload_api_key.clone());
        if let Some(url) = &self.webhook {
            options.overrides.insert(
                foxrelay_shared::settings::names::WEBHOOK_ENDPOINTS.into(),
                serde_json::json!([{ "id": LOCAL_WEBHOOK, "url": url }]).to_string(),
            );
        }
        Ok(options)
    }
}

/// The endpoint id `--webhook` registers.
const LOCAL_WEBHOOK: &str = "local";

/// With `--webhook`: the endpoint's secret stored (a new one printed for
/// its receiver, unless `--webhook-secret` gave it).
async fn announce_webhook(stack: &LocalStack, args: &Options) -> Result<(), String> {
    let Some(url) = &args.webhook else {
        return Ok(());
    };
    match &args.webhook_secret {
        Some(secret) => {
            foxrelay_shared::webhook::Signer::parse(secret)
                .map_err(|why| format!("--webhook-secret: {why}"))?;
            stack.set_webhook_secret(LOCAL_WEBHOOK, secret).await?;
            println!("  Webhook:     {url} (endpoint {LOCAL_WEBHOOK}, the secret given)");
        }
        None => {
            let secret = stack.new_webhook_secret(LOCAL_WEBHOOK).await?;
            println!("  Webhook:     {url} (endpoint {LOCAL_WEBHOOK}, signing secret {secret})");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    foxrelay_shared::telemetry::init_local();
    let result = match cli.command {
        Command::Demo => demo(&cli.options).await,
        Command::Serve => serve(&cli.options).await,
        Command::Reseal { table, kms_key_id } => reseal(&cli.options, &table, &kms_key_id).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("foxrelay-local: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `reseal`: page after page until the table is done, each page's counts
/// printed as it goes. Refuses a key that is not a foxrelay stack's.
async fn reseal(options: &Options, table: &str, key: &str) -> Result<(), String> {
    use foxrelay_shared::aws::{self, AwsClients, LocalAws};
    use foxrelay_shared::sealing::{KeyLimits, KmsDataKeys, Sealer};
    use foxrelay_shared::store::DynamoStore;
    use std::sync::Arc;
    let config = match options
        .aws_endpoint_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => aws::load_local(&LocalAws::new(url)).await,
        None => aws::load_from_env().await,
    };
    let clients = AwsClients::new(&config);
    // The stack's key says whose it is: codes sealed under another key
    // would not open in the functions.
    let described = clients
        .kms
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| format!("the key {key} could not be described: {e}"))?;
    let description = described
        .key_metadata()
        .and_then(|k| k.description())
        .unwrap_or_default()
        .to_owned();
    if !description.starts_with("foxrelay (") {
        return Err(format!(
            "{key} is not a foxrelay stack's key (its description is {description:?}): give the stack's StackKeyArn output"
        ));
    }
    println!("sealing the codes in clear in {table} with {key} ({description})");
    let sealer = || {
        Arc::new(Sealer::new(
            KmsDataKeys::new(clients.kms.clone(), key),
            KeyLimits::default(),
        ))
    };
    let store = DynamoStore::new(clients.dynamodb.clone(), table).with_sealer(sealer());
    // Opens each sealed value again, unwrapping through KMS as a function.
    let verify = sealer();
    let (mut read, mut sealed, mut left) = (0, 0, 0);
    let mut cursor = None;
    loop {
        let page = store
            .reseal_page(cursor, &verify)
            .await
            .map_err(|e| format!("{e} (after {sealed} codes sealed; run it again to go on)"))?;
        read += page.items_read;
        sealed += page.sealed;
        left += page.skipped + page.unreadable.len() as u64;
        for (key, why) in &page.unreadable {
            println!("left in clear, unreadable: {key}: {why}");
        }
        println!(
            "{} items read: {} codes sealed, {} changed meanwhile and left",
            page.items_read, page.sealed, page.skipped
        );
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    println!("done: {read} items read, {sealed} codes sealed, {left} left in clear");
    if left > 0 {
        return Err(format!(
            "{left} codes are still in clear: run it again for those changed meanwhile; look at the unreadable ones"
        ));
    }
    Ok(())
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

async fn serve(args: &Options) -> Result<(), String> {
    let options = args.stack_options(false)?;
    let stack = LocalStack::start(options).await?;
    eprintln!("{}", foxrelay_local::gateway::UNVERIFIED_TOKENS);
    let printer = printer_queue(&stack).await?;
    println!(
        "foxrelay is up: POST http://{}/orders (Ctrl-C stops it)",
        stack.api_addr
    );
    println!("  AWS (moto):  {}", stack.aws_endpoint);
    println!("  FoxReload:   {}", stack.foxreload_base_url);
    announce_webhook(&stack, args).await?;
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

async fn demo(args: &Options) -> Result<(), String> {
    let mut options = args.stack_options(true)?;
    options.simulator = SimConfig {
        timing: Timing {
            payment_window: Duration::from_secs(15),
            create_stall: Duration::from_secs(12),
            ..Timing::default()
        },
        ..SimConfig::default()
    };
    let stack = LocalStack::start(options).await?;
    let result = match announce_webhook(&stack, args).await {
        Ok(()) => run_demo(&stack, args.show_codes).await,
        Err(error) => Err(error),
    };
    stack.stop().await;
    result
}

/// How often the demo says how far it is while it waits.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

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
    let total = DEMO_ORDERS.len();
    let mut said = tokio::time::Instant::now();
    while !pending.is_empty() {
        // A person watching sees it is alive: a line every few seconds.
        if said.elapsed() >= PROGRESS_EVERY {
            println!(
                "{} of {total} orders ended; waiting for {}…",
                total - pending.len(),
                pending.values().cloned().collect::<Vec<_>>().join(", ")
            );
            said = tokio::time::Instant::now();
        }
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
        let cli = Cli::try_parse_from([
            "foxrelay-local",
            "demo",
            "--show-codes",
            "--poll-copies",
            "2",
            "--pollers",
            "4",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Demo));
        assert!(cli.options.show_codes);
        assert_eq!(cli.options.poll_copies, 2);
        assert_eq!(cli.options.pollers, 4);
        assert!(Cli::try_parse_from(["foxrelay-local"]).is_err());
        assert!(Cli::try_parse_from(["foxrelay-local", "serve", "--nope"]).is_err());
        assert!(Cli::try_parse_from(["foxrelay-local", "serve", "--poll-copies", "9"]).is_err());
        assert!(
            Cli::try_parse_from([
                "foxrelay-local",
                "serve",
                "--foxreload-base-url",
                "http://x"
            ])
            .is_err(),
            "a FoxReload of yours needs its key"
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
