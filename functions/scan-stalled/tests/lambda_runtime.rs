//! The release binary's shape: it starts under lambda_runtime, runs a sweep
//! for a scheduled EventBridge event (here against an unreachable table, so
//! the run fails and says why), and refuses to start without its settings.

use foxrelay_shared::testing::{Outcome, assert_stops_naming_missing, invoke_binary};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_scan-stalled");

#[tokio::test]
async fn binary_runs_a_sweep_for_a_scheduled_event_and_reports_its_failure() {
    let event = json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": "2026-11-28T10:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}});
    let Outcome::Error(error) = invoke_binary(BINARY, event).await else {
        panic!("a sweep against no table must fail");
    };
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("order store is unavailable"), "{error}");
}

#[tokio::test]
async fn binary_without_ops_alerts_topic_stops_naming_it() {
    assert_stops_naming_missing(BINARY, "OPS_ALERTS_TOPIC_ARN").await;
}
