//! One JSON object per log line, every field at the top level.
//!
//! `tracing_subscriber`'s JSON format nests fields (`fields.x` for the
//! event's, `span.x` for the innermost span's, nothing of outer spans), so
//! the same id sits at different paths on different lines. Here the fields
//! of every span in scope (outermost first), then the event's, are merged
//! into the line itself, and the ids every line is joined by are given one
//! name each:
//!
//! | key | what | from |
//! | --- | --- | --- |
//! | `function` | `create-order`, `poll-order`, `scan-stalled` | the binary |
//! | `request_id` | the Lambda request id | `lambda_runtime`'s invocation span (`requestId`) |
//! | `trace_id` | the X-Ray trace id (`1-…-…`, the `Root` of the trace header) | the same span (`xrayTraceId`) |
//! | `order_id` | our order id | the span or event about one order |
//!
//! `timestamp` (RFC 3339, UTC), `level` and `message` are always there; a
//! field of the event or a span never replaces them.

use serde_json::{Map, Value};
use std::io::Write;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The top-level key of the Lambda request id.
pub const REQUEST_ID: &str = "request_id";
/// The top-level key of the X-Ray trace id.
pub const TRACE_ID: &str = "trace_id";
/// The top-level key of an order id.
pub const ORDER_ID: &str = "order_id";
/// The top-level key of the function's name.
pub const FUNCTION: &str = "function";

/// A layer writing JSON lines to what `make_writer` makes.
pub struct JsonLines<W> {
    function: &'static str,
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(function: &'static str, make_writer: W) -> Self {
        Self {
            function,
            make_writer,
        }
    }
}

/// A span's fields, as recorded so far.
struct SpanFields(Map<String, Value>);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attributes.record(&mut Fields(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            let mut innermost = None;
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        event.record(&mut Fields(&mut line));
        let metadata = event.metadata();
        line.insert("timestamp".into(), now().into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert(FUNCTION.into(), self.function.into());
        line.entry("message").or_insert_with(|| "".into());
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // One write per line: lines of concurrent tasks never interleave.
        let _ = self.make_writer.make_writer().write_all(text.as_bytes());
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Records fields into a map under their top-level names.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let (key, value) = match field.name() {
            "requestId" => (REQUEST_ID, value),
            "xrayTraceId" => (TRACE_ID, trace_root(value)),
            name => (name, value),
        };
        self.0.insert(key.to_owned(), value);
    }
}

/// The X-Ray trace id of a trace header (`Root=1-…;Parent=…;Sampled=…`),
/// as the X-Ray console shows and searches it.
fn trace_root(header: Value) -> Value {
    let Some(text) = header.as_str() else {
        return header;
    };
    text.split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .map_or_else(|| header.clone(), Value::from)
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(run: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLines::new("poll-order", move || writer.clone()));
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn ids_of_every_span_in_scope_are_at_the_top_level_of_every_line() {
        let lines = lines_of(|| {
            let invoke = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "req-1",
                xrayTraceId =
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            );
            let _invoke = invoke.enter();
            tracing::info!(messages = 2, "batch");
            let poll = tracing::info_span!("poll", order_id = "o-1", seq = 3);
            let _poll = poll.enter();
            tracing::warn!(error_kind = "rate_limited", "FoxReload call failed");
        });
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line[FUNCTION], "poll-order");
            assert_eq!(line[REQUEST_ID], "req-1");
            assert_eq!(line[TRACE_ID], "1-5759e988-bd862e3fe1be46a994272793");
            assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        }
        assert_eq!(lines[0]["message"], "batch");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["messages"], 2);
        assert!(lines[0].get(ORDER_ID).is_none());
        assert_eq!(lines[1]["message"], "FoxReload call failed");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1][ORDER_ID], "o-1");
        assert_eq!(lines[1]["seq"], 3);
        assert_eq!(lines[1]["error_kind"], "rate_limited");
        assert_eq!(lines[1]["span"], "poll");
    }

    #[test]
    fn a_field_recorded_later_and_an_event_field_are_kept_and_the_fixed_keys_win() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("request", order_id = tracing::field::Empty);
            span.record("order_id", "o-2");
            let _span = span.enter();
            tracing::error!(level = "mine", function = "other", "store failed");
        });
        assert_eq!(lines[0][ORDER_ID], "o-2");
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(lines[0][FUNCTION], "poll-order");
        assert_eq!(lines[0]["message"], "store failed");
    }

    #[test]
    fn a_trace_header_without_a_root_is_kept_whole() {
        assert_eq!(trace_root("Sampled=0".into()), "Sampled=0");
        assert_eq!(trace_root(7.into()), 7);
    }
}
