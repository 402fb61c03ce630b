//! deliver-webhook: POSTs order events to the stack's webhook endpoints,
//! signed as Standard Webhooks has it.
//!
//! Fed by a queue subscribed to the order-events topic; each message is an
//! event to send to every endpoint that wants it, or one endpoint's
//! delivery tried again ([`deliver`]). A batch runs concurrently
//! ([`handle_batch`]); a message that fails is reported by its id and
//! delivered again (past the redrive bound, it lands in the dead-letter
//! queue).

pub mod deliver;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deliver::Deliverer;
use foxrelay_shared::batch::handle_batch;
use foxrelay_shared::clock::SystemClock;
use foxrelay_shared::metrics::{Metric, MetricSet, Metrics};
use foxrelay_shared::startup::Context;
use foxrelay_shared::store::DynamoStore;
use foxrelay_shared::webhook::{SecretsManagerSecrets, Sender, SqsWebhookQueue};
use lambda_runtime::LambdaEvent;
use std::convert::Infallible;
use std::sync::Arc;
use tracing::instrument;

/// deliver-webhook never calls FoxReload; it opens codes and reads the
/// webhook settings.
pub const FOXRELOAD_ACCESS: foxrelay_shared::settings::FoxReloadAccess =
    foxrelay_shared::settings::FoxReloadAccess::Webhooks;

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "deliver-webhook";

/// The metrics deliver-webhook writes after every batch, zeros included.
pub const METRICS: MetricSet = MetricSet {
    function: FUNCTION,
    declared: &[
        Metric::WebhooksDelivered,
        Metric::WebhookRetries,
        Metric::WebhooksDeadLettered,
    ],
};

/// The live deliverer.
pub type LiveDeliverer =
    Deliverer<DynamoStore, SqsWebhookQueue, SecretsManagerSecrets, SystemClock>;

/// The deliver-webhook handler; built once per container.
pub struct Handler {
    deliverer: Arc<LiveDeliverer>,
}

/// Why the handler could not be built.
#[derive(Debug, thiserror::Error)]
#[error("deliver-webhook cannot start: its HTTP client could not be built: {0}")]
pub struct BuildError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl Handler {
    pub fn new(context: Context) -> Result<Self, BuildError> {
        let webhooks = &context.settings.webhooks;
        let sender = Sender::new(webhooks.timeout, webhooks.allow_loopback)
            .map_err(|e| BuildError(Box::new(e)))?;
        let deliverer = Deliverer {
            store: context.store(),
            queue: SqsWebhookQueue::new(
                context.aws.sqs.clone(),
                &webhooks.queue_url,
                &webhooks.dead_letter_queue_url,
            ),
            secrets: SecretsManagerSecrets::new(
                context.aws.secrets.clone(),
                &webhooks.secrets_prefix,
            ),
            sender,
            endpoints: webhooks.endpoints.clone().into(),
            retries: webhooks.retries.clone(),
            clock: SystemClock,
            metrics: context.metrics(METRICS),
        };
        Ok(Self::from_deliverer(Arc::new(deliverer)))
    }

    /// A handler over `deliverer`, flushing its metrics after every batch.
    pub fn from_deliverer(deliverer: Arc<LiveDeliverer>) -> Self {
        Self { deliverer }
    }

    /// This handler's metric counters.
    pub fn metrics(&self) -> &Metrics {
        &self.deliverer.metrics
    }

    #[instrument(skip_all, fields(messages = event.payload.records.len()))]
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        let (_, response) = handle_batch(event.payload.records, "webhook message", |body| {
            let deliverer = self.deliverer.clone();
            async move { deliverer.handle(&body).await }
        })
        .await;
        self.deliverer.metrics.flush();
        Ok(response)
    }
}
