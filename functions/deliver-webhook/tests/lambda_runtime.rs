//! The release binary's shape: it starts under lambda_runtime, answers an SQS
//! batch without dropping a message, and refuses to start without its
//! settings or with an endpoint list that is wrong, naming each problem.

use foxrelay_shared::testing::{
    FunctionProcess, Outcome, RuntimeApi, failed_message_ids, invoke_binary, sqs_batch,
    start_binary_without, valid_settings_env,
};
use serde_json::json;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_deliver-webhook");

#[tokio::test]
async fn binary_keeps_unreadable_messages_of_a_batch_for_redelivery() {
    let event = sqs_batch(&[("m1", "{}"), ("m2", "not json")]);
    let Outcome::Response(response) = invoke_binary(BINARY, event).await else {
        panic!("expected a response");
    };
    assert_eq!(
        failed_message_ids(&response),
        vec!["m1", "m2"],
        "unreadable messages are kept, none dropped"
    );
}

#[tokio::test]
async fn binary_without_its_queue_stops_naming_it() {
    let (code, stderr) = start_binary_without(BINARY, "WEBHOOK_QUEUE_URL").await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("WEBHOOK_QUEUE_URL is not set"), "{stderr}");
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
