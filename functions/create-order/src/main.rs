use foxrelay_shared::startup::Context;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = &create_order::Handler::new(
        Context::from_env_or_exit(create_order::FOXRELOAD_ACCESS).await,
    );
    lambda_runtime::run(service_fn(move |event| handler.handle(event))).await
}
