//! Logging: JSON lines inside Lambda (or with `LOG_FORMAT=json`), readable
//! text elsewhere. The level comes from `RUST_LOG` (default `info`).
//!
//! Every JSON line carries, at the top level, the function's name
//! (`function`), and inside an invocation the Lambda request id
//! (`request_id`) and the X-Ray trace id (`trace_id`); a line about one order
//! carries `order_id`. So one order is followed across the three log groups
//! with one query (see [`json_lines`]).
//!
//! A delivered code never appears in a log line, at any level: code values are
//! never passed to `tracing` macros or span fields.

pub mod json_lines;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber of `function` once; later calls do
/// nothing.
pub fn init(function: &'static str) {
    let json = std::env::var_os(crate::settings::names::AWS_LAMBDA_FUNCTION_NAME).is_some()
        || std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A subscriber already installed (a test's) is kept.
    if json {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(json_lines::JsonLines::new(function, std::io::stdout))
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(false)
            .try_init();
    }
}

/// Logging for a process run by hand (the local runner): readable text on
/// standard error, `warn` unless `RUST_LOG` says otherwise, so standard output
/// stays the program's own.
pub fn init_local() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
