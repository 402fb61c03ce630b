//! The release binary's shape: it starts under lambda_runtime, answers a
//! scheduled EventBridge event, and refuses to start without its settings.

use foxrelay_shared::testing::{Outcome, invoke_binary, start_binary_without};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_scan-stalled");

#[tokio::test]
async fn binary_answers_a_scheduled_event_with_its_report() {
    let event = json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": "2026-11-28T10:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}});
    let Outcome::Response(report) = invoke_binary(BINARY, event).await else {
        panic!("expected a response");
    };
    assert_eq!(report["indexItemsRead"], 0);
}

#[tokio::test]
async fn binary_without_ops_alerts_topic_stops_naming_it() {
    let (code, stderr) = start_binary_without(BINARY, "OPS_ALERTS_TOPIC_ARN").await;
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("OPS_ALERTS_TOPIC_ARN is not set"),
        "{stderr}"
    );
}
