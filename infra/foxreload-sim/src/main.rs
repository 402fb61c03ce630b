//! `foxreload-sim`: the FoxReload simulator as a process, for the local stack.
//!
//! Prints its base URL on one line once listening, logs to stderr, and stops
//! on Ctrl-C (or SIGTERM).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use foxreload_sim::{ListEnvelope, SimConfig, Simulator, Timing};

const USAGE: &str = "\
usage: foxreload-sim --addr HOST:PORT --api-key KEY [options]

options:
  --addr HOST:PORT        address to listen on (port 0 picks a free one)
  --api-key KEY           the only X-API-Key accepted
  --fast-ms N             processing -> terminal for ordinary products, in ms (default 1000)
  --slow-secs N           processing -> completed for product_slow, in s (default 180)
  --envelope KIND         list envelope: offset (default), cursor or bare
  --balance-cents N       account balance in cents (default 100000000)
  -h, --help              print this help";

#[derive(Debug)]
struct Args {
    addr: SocketAddr,
    config: SimConfig,
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: expected a number, got {value:?}"))
}

/// `Ok(None)` asks for the help text.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr = None;
    let mut api_key = None;
    let mut timing = Timing::default();
    let mut list_envelope = ListEnvelope::default();
    let mut balance_cents = SimConfig::default().balance_cents;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let known = [
            "--addr",
            "--api-key",
            "--fast-ms",
            "--slow-secs",
            "--envelope",
            "--balance-cents",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag:?}"));
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag}: missing value"))?;
        match flag.as_str() {
            "--addr" => {
                addr = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|_| format!("--addr: expected HOST:PORT, got {value:?}"))?,
                );
            }
            "--api-key" => {
                if value.is_empty() {
                    return Err("--api-key: must not be empty".to_owned());
                }
                api_key = Some(value);
            }
            "--fast-ms" => timing.fast_fulfilment = Duration::from_millis(number(&flag, &value)?),
            "--slow-secs" => timing.slow_fulfilment = Duration::from_secs(number(&flag, &value)?),
            "--envelope" => {
                list_envelope = match value.as_str() {
                    "offset" => ListEnvelope::Offset,
                    "cursor" => ListEnvelope::Cursor,
                    "bare" => ListEnvelope::BareArray,
                    _ => {
                        return Err(format!(
                            "--envelope: expected offset, cursor or bare, got {value:?}"
                        ));
                    }
                };
            }
            _ => balance_cents = number(&flag, &value)?,
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    let api_key = api_key.ok_or("--api-key is required")?;
    Ok(Some(Args {
        addr,
        config: SimConfig {
            api_key,
            timing,
            list_envelope,
            balance_cents,
            ..SimConfig::default()
        },
    }))
}

async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("foxreload-sim: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let simulator = match Simulator::start_on(args.addr, args.config).await {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!("foxreload-sim: cannot listen on {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    println!("{}", simulator.base_url());
    stop_requested().await;
    simulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn cli_reads_every_option() {
        let args = parse(&[
            "--addr",
            "127.0.0.1:8090",
            "--api-key",
            "k",
            "--fast-ms",
            "50",
            "--slow-secs",
            "3",
            "--envelope",
            "cursor",
            "--balance-cents",
            "700",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.addr.port(), 8090);
        assert_eq!(args.config.api_key, "k");
        assert_eq!(
            args.config.timing.fast_fulfilment,
            Duration::from_millis(50)
        );
        assert_eq!(args.config.timing.slow_fulfilment, Duration::from_secs(3));
        assert_eq!(args.config.list_envelope, ListEnvelope::Cursor);
        assert_eq!(args.config.balance_cents, 700);
    }

    #[test]
    fn cli_refuses_missing_or_malformed_arguments_with_a_reason() {
        assert!(parse(&["--api-key", "k"]).unwrap_err().contains("--addr"));
        assert!(
            parse(&["--addr", "127.0.0.1:1"])
                .unwrap_err()
                .contains("--api-key")
        );
        assert!(
            parse(&["--addr", "nowhere"])
                .unwrap_err()
                .contains("HOST:PORT")
        );
        assert!(
            parse(&["--addr", "127.0.0.1:1", "--api-key", "k", "--fast-ms", "x"])
                .unwrap_err()
                .contains("--fast-ms")
        );
        assert!(parse(&["--addr"]).unwrap_err().contains("missing value"));
        assert!(parse(&["--bogus"]).unwrap_err().contains("--bogus"));
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
