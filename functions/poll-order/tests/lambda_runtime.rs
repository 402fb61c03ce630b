//! The release binary's shape: it starts under lambda_runtime, answers an SQS
//! batch without dropping a message, and refuses to start without its
//! settings.

use foxrelay_shared::testing::{
    Outcome, failed_message_ids, invoke_binary, sqs_batch, start_binary_without,
};

const BINARY: &str = env!("CARGO_BIN_EXE_poll-order");

#[tokio::test]
async fn binary_keeps_unreadable_messages_of_a_batch_for_redelivery() {
    let event = sqs_batch(&[("m1", "{}"), ("m2", "{}")]);
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
async fn binary_without_poll_queue_url_stops_naming_it() {
    let (code, stderr) = start_binary_without(BINARY, "POLL_QUEUE_URL").await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("POLL_QUEUE_URL is not set"), "{stderr}");
}
