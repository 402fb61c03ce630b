//! The scan-stalled binary: settings read once (start-up stops naming any
//! that is wrong), then each scheduled event runs one sweep.

use foxrelay_shared::startup::Context;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = &scan_stalled::Handler::new(
        Context::from_env_or_exit(scan_stalled::FUNCTION, scan_stalled::FOXRELOAD_ACCESS).await,
    );
    lambda_runtime::run(service_fn(move |event| async move {
        handler.handle(event).await.map_err(Error::from)
    }))
    .await
}
