//! The release binary's shape: it starts under lambda_runtime, answers an SQS
//! batch without dropping a message, and refuses to start without its
//! settings.

use foxrelay_shared::testing::{Outcome, invoke_binary, start_binary_without};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_poll-order");

#[tokio::test]
async fn binary_keeps_unreadable_messages_of_a_batch_for_redelivery() {
    let record = |id: &str| {
        json!({"messageId": id, "receiptHandle": "h", "body": "{}",
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:poll", "awsRegion": "us-east-1"})
    };
    let event = json!({"Records": [record("m1"), record("m2")]});
    let Outcome::Response(response) = invoke_binary(BINARY, event).await else {
        panic!("expected a response");
    };
    let mut ids: Vec<_> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["m1", "m2"],
        "unreadable messages are kept, none dropped"
    );
}

#[tokio::test]
async fn binary_without_poll_queue_url_stops_naming_it() {
    let (code, stderr) = start_binary_without(BINARY, "POLL_QUEUE_URL").await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("POLL_QUEUE_URL is not set"), "{stderr}");
}
