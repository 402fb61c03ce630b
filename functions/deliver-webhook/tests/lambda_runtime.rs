//! The release binary's shape: it starts under lambda_runtime, answers an SQS
//! batch without dropping a message, and refuses to start without its
//! settings or with an endpoint list that is wrong, naming each problem.

use foxrelay_shared::testing::{
    FunctionProcess, RuntimeApi, assert_stops_naming_missing, assert_unreadable_batch_kept,
    valid_settings_env,
};
use serde_json::json;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_deliver-webhook");

#[tokio::test]
async fn binary_keeps_unreadable_messages_of_a_batch_for_redelivery() {
    assert_unreadable_batch_kept(BINARY, &[("m1", "{}"), ("m2", "not json")]).await;
}

#[tokio::test]
async fn binary_without_its_queue_stops_naming_it() {
    assert_stops_naming_missing(BINARY, "WEBHOOK_QUEUE_URL").await;
}

#[tokio::test]
async fn binary_with_a_wrong_endpoint_list_stops_naming_every_problem() {
    let api = RuntimeApi::start().await.unwrap();
    let mut env = valid_settings_env();
    env.push((
        "WEBHOOK_ENDPOINTS",
        json!([
            {"id": "shop", "url": "https://169.254.169.254/latest"},
            {"id": "shop", "url": "https://hooks.example.com", "types": ["order.paid"]},
        ])
        .to_string(),
    ));
    let process = FunctionProcess::spawn(BINARY, &api, &env).unwrap();
    let (code, stderr) = process.exit(Duration::from_secs(30)).await.unwrap();
    assert_ne!(code, Some(0));
    for said in [
        "WEBHOOK_ENDPOINTS is invalid",
        "endpoint 0 (url): 169.254.169.254 is a private",
        "endpoint 1 (id): shop is used twice",
        "endpoint 1 (types): order.paid is none of",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
}
