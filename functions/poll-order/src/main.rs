//! The poll-order binary: settings read once (start-up stops naming any
//! that is wrong), then SQS batches handed to the handler by `lambda_runtime`.

use foxrelay_shared::startup::Context;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = &poll_order::Handler::new(
        Context::from_env_or_exit(poll_order::FUNCTION, poll_order::FOXRELOAD_ACCESS).await,
    );
    lambda_runtime::run(service_fn(move |event| handler.handle(event))).await
}
