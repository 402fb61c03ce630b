//! No delivered code reaches a log line, at any level: every line this
//! binary logs (its own subscriber, for all threads) is read.

use foxrelay_tests::world::{quick_timing, world};
use foxreload_sim::{PRODUCT_ACTIVATION, PRODUCT_FAST, PRODUCT_PARTIAL};
use serde_json::Value;
use std::sync::Arc;

/// Collects every log line of this test binary.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_delivered_code_appears_in_any_log_line() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    // The functions' own JSON lines (every span's fields on every line).
    use tracing_subscriber::layer::SubscriberExt;
    // Everything at trace, the AWS SDK included: its trace lines carry
    // request bodies, and the layer must keep them out whatever RUST_LOG
    // asks for.
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(foxrelay_shared::telemetry::json_layer(
            "poll-order",
            move || writer.clone(),
        ));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let w = world(quick_timing()).await;
    let handler = w.poll_handler(w.sns());
    let ids = vec![
        w.place(PRODUCT_FAST, 2).await,
        w.place(PRODUCT_ACTIVATION, 1).await,
        w.place(PRODUCT_PARTIAL, 2).await,
    ];
    let events = w
        .run_until_notified(&handler, &w.source(1, false), &ids)
        .await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 20, "logs were captured");
    assert!(text.contains("event published"));
    for event in events.values().flatten() {
        for code in &event.codes {
            // Activation data: its serial is the distinctive secret (a
            // 4-digit pin would match any number in a log line).
            let secret = if code.code.starts_with('{') {
                serde_json::from_str::<Value>(&code.code).unwrap()["serial"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                code.code.clone()
            };
            assert!(secret.len() >= 8, "{secret}");
            let leak = text.lines().find(|line| line.contains(&secret));
            assert!(leak.is_none(), "code {secret} reached the logs: {leak:?}");
        }
    }
}
