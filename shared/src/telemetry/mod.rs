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
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
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
            .with(json_layer(function, std::io::stdout))
            .try_init();
    } else {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_filter(filter_fn(no_sdk_trace)),
            )
            .try_init();
    }
}

/// The functions' JSON lines to `make_writer`, without the AWS SDK's trace
/// lines whatever `RUST_LOG` says.
pub fn json_layer<S, W>(function: &'static str, make_writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    json_lines::JsonLines::new(function, make_writer).with_filter(filter_fn(no_sdk_trace))
}

/// The AWS SDK's trace level logs whole request and response bodies: a
/// DynamoDB write of codes, an SNS publish of an order event. Those lines
/// are never written, even with `RUST_LOG=trace`.
fn no_sdk_trace(metadata: &tracing::Metadata<'_>) -> bool {
    !(*metadata.level() == tracing::Level::TRACE
        && (metadata.target().starts_with("aws_smithy")
            || metadata.target().starts_with("aws_sdk")))
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
