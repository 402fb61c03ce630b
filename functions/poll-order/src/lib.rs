//! poll-order: the SQS-triggered polling chain.
//!
//! Each message of a batch is one link of an order's chain ([`poll`]). The
//! batch runs concurrently; a message that fails is reported by its id and
//! delivered again (past the redrive bound, it lands in the dead-letter
//! queue); the others succeed. Nothing is deleted unread.

pub mod poll;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use foxrelay_shared::batch::handle_batch;
use foxrelay_shared::clock::{Clock, SystemClock};
use foxrelay_shared::domain::order::OrderStatus;
use foxrelay_shared::events::{EventPublisher, SnsPublisher};
use foxrelay_shared::foxreload::Supplier;
use foxrelay_shared::metrics::{Metric, MetricSet, Metrics};
use foxrelay_shared::queue::{PollQueue, SqsPollQueue};
use foxrelay_shared::startup::{Context, LiveFoxReload};
use foxrelay_shared::store::DynamoStore;
use lambda_runtime::LambdaEvent;
use poll::{Handled, PollOptions, PollOrderStore, Poller};
use std::convert::Infallible;
use std::sync::Arc;
use tracing::instrument;

/// Whether this function calls FoxReload: it reads, pays and reconciles orders.
pub const FOXRELOAD_ACCESS: foxrelay_shared::settings::FoxReloadAccess =
    foxrelay_shared::settings::FoxReloadAccess::Needed;

/// The poll-order handler; built once per container.
pub struct Handler<
    S = DynamoStore,
    Q = SqsPollQueue,
    F = LiveFoxReload,
    P = SnsPublisher,
    C = SystemClock,
> {
    poller: Arc<Poller<S, Q, F, P, C>>,
    metrics: Metrics,
}

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "poll-order";

/// The metrics poll-order writes after every batch; the stack's
/// undecided-reconciliations alarm watches one of them.
pub const METRICS: MetricSet = MetricSet {
    function: FUNCTION,
    declared: &[
        Metric::Polls,
        Metric::OrdersCompleted,
        Metric::OrdersFailed,
        Metric::SupplierErrors,
        Metric::PaymentRefusals,
        Metric::ReconciliationsClaimed,
        Metric::ReconciliationsNothing,
        Metric::ReconciliationsUndecided,
        Metric::ShortDeliveries,
    ],
};

impl Handler {
    pub fn new(context: Context) -> Self {
        let settings = &context.settings;
        let options = PollOptions {
            schedule: settings.schedule.clone(),
            learning: settings.learning(),
            is_mock: settings.foxreload.mock_orders,
            auto_pay: settings.foxreload.auto_pay,
            event_codes: settings.event_codes,
            ..PollOptions::default()
        };
        Self::with_options(context, options)
    }

    pub fn with_options(context: Context, mut options: PollOptions) -> Self {
        options.reconcile = options.reconcile.fitted_to(&context.settings.foxreload);
        let metrics = context.metrics(METRICS);
        Self::from_poller(
            Poller {
                store: context.store(),
                queue: context.poll_queue(),
                supplier: context.governed_foxreload(&metrics),
                publisher: context.publisher(),
                clock: SystemClock,
                options,
            },
            metrics,
        )
    }
}

impl<S, Q, F, P, C> Handler<S, Q, F, P, C>
where
    S: PollOrderStore + 'static,
    Q: PollQueue + 'static,
    F: Supplier + 'static,
    P: EventPublisher + 'static,
    C: Clock + 'static,
{
    /// A handler over any ports (tests wrap the real ones to inject faults);
    /// it counts finished orders into `metrics` and flushes them after every
    /// batch.
    pub fn from_poller(poller: Poller<S, Q, F, P, C>, metrics: Metrics) -> Self {
        Self {
            poller: Arc::new(poller),
            metrics,
        }
    }

    /// This handler's metric counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    #[instrument(skip_all, fields(messages = event.payload.records.len()))]
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        let (handled, response) = handle_batch(event.payload.records, "poll message", |body| {
            let poller = self.poller.clone();
            async move { poller.handle(&body).await }
        })
        .await;
        for outcome in handled {
            let Handled::Finished {
                status,
                time_to_notify,
                short,
                ended,
            } = outcome
            else {
                continue;
            };
            let metric = if status == OrderStatus::Completed {
                Metric::OrdersCompleted
            } else {
                Metric::OrdersFailed
            };
            self.metrics.add(metric, 1);
            self.metrics.add(Metric::ShortDeliveries, u64::from(short));
            // Only orders FoxReload ended (see `Ended`).
            if ended.time_to_notify.is_some() {
                self.metrics.time_to_notify(time_to_notify);
            }
            self.metrics.ended(&ended);
        }
        self.metrics.flush();
        Ok(response)
    }
}
