//! The deliver-webhook binary: settings read once (start-up stops naming
//! any that is wrong, an endpoint list among them), then SQS batches handed
//! to the handler by `lambda_runtime`.

use foxrelay_shared::startup::Context;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let context =
        Context::from_env_or_exit(deliver_webhook::FUNCTION, deliver_webhook::FOXRELOAD_ACCESS)
            .await;
    let handler = &match deliver_webhook::Handler::new(context) {
        Ok(handler) => handler,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    lambda_runtime::run(service_fn(move |event| handler.handle(event))).await
}
