//! The create-order binary: settings read once (start-up stops naming any
//! that is wrong), then each API Gateway event through the orders router
//! (`http::serve_event`).

use foxrelay_shared::startup::Context;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let handler = &create_order::Handler::new(
        Context::from_env_or_exit(create_order::FUNCTION, create_order::FOXRELOAD_ACCESS).await,
    );
    lambda_runtime::run(lambda_runtime::service_fn(move |event| {
        handler.handle(event)
    }))
    .await
}
