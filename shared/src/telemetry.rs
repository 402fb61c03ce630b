//! Logging: JSON lines inside Lambda (or with `LOG_FORMAT=json`), readable
//! text elsewhere. The level comes from `RUST_LOG` (default `info`).
//!
//! A delivered code never appears in a log line, at any level: code values are
//! never passed to `tracing` macros or span fields.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let json = std::env::var_os(crate::settings::names::AWS_LAMBDA_FUNCTION_NAME).is_some()
        || std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
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
