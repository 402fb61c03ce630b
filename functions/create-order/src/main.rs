//! The create-order binary: settings read once (start-up stops naming any
//! that is wrong), then the orders router served by `lambda_http`.

use foxrelay_shared::startup::Context;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let handler =
        create_order::Handler::new(Context::from_env_or_exit(create_order::FOXRELOAD_ACCESS).await);
    lambda_http::run(handler.router()).await
}
