//! The release binary's shape: it starts under lambda_runtime, answers an SQS
//! batch without dropping a message, and refuses to start without its
//! settings.

use foxrelay_shared::testing::{assert_stops_naming_missing, assert_unreadable_batch_kept};

const BINARY: &str = env!("CARGO_BIN_EXE_poll-order");

#[tokio::test]
async fn binary_keeps_unreadable_messages_of_a_batch_for_redelivery() {
    assert_unreadable_batch_kept(BINARY, &[("m1", "{}"), ("m2", "{}")]).await;
}

#[tokio::test]
async fn binary_without_poll_queue_url_stops_naming_it() {
    assert_stops_naming_missing(BINARY, "POLL_QUEUE_URL").await;
}
