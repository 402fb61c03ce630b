//! scan-stalled: the scheduled sweep for stalled orders ([`sweep`]).

pub mod sweep;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use foxrelay_shared::clock::SystemClock;
use foxrelay_shared::events::SnsPublisher;
use foxrelay_shared::metrics::{Metric, MetricSet, Metrics};
use foxrelay_shared::queue::SqsPollQueue;
use foxrelay_shared::startup::Context;
use foxrelay_shared::store::{DynamoStore, StoreError};
use lambda_runtime::LambdaEvent;
pub use sweep::ScanReport;
use sweep::{SweepOptions, Sweeper};
use tracing::instrument;

/// Whether this function calls FoxReload: it only reads the table and sends messages; its role is not granted the API key.
pub const FOXRELOAD_ACCESS: foxrelay_shared::settings::FoxReloadAccess =
    foxrelay_shared::settings::FoxReloadAccess::NotNeeded;

/// The scan-stalled handler; built once per container.
pub struct Handler {
    sweeper: Sweeper<DynamoStore, SqsPollQueue, SnsPublisher, SystemClock>,
    metrics: Metrics,
}

/// The metrics scan-stalled writes after every run; the stack's stalled-orders
/// alarm watches `StalledOrders`.
pub const METRICS: MetricSet = MetricSet {
    function: FUNCTION,
    declared: &[
        Metric::StalledOrders,
        Metric::RevivedChains,
        Metric::RepublishedEvents,
    ],
};

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "scan-stalled";

impl Handler {
    pub fn new(context: Context) -> Self {
        let stall = context.settings.stall;
        let slow_cap = context.settings.schedule.slow_cap;
        Self::with_options(
            context,
            SweepOptions {
                stall_after: stall.after,
                realert_after: stall.realert,
                stuck_revival_delay: slow_cap,
                ..SweepOptions::default()
            },
        )
    }

    pub fn with_options(mut context: Context, options: SweepOptions) -> Self {
        // scan-stalled never opens a code (its role is denied the codes'
        // data keys): its store holds no sealer, so a code it read would
        // stay sealed.
        context.sealer = None;
        Self {
            metrics: context.metrics(METRICS),
            sweeper: Sweeper {
                store: context.store(),
                queue: context.poll_queue(),
                publisher: context.publisher(),
                clock: SystemClock,
                options,
            },
        }
    }

    /// One sweep. A store failure fails the run (EventBridge retries it, and
    /// the next scheduled run resumes from the saved cursor).
    #[instrument(skip_all)]
    pub async fn handle(
        &self,
        _event: LambdaEvent<EventBridgeEvent<serde_json::Value>>,
    ) -> Result<ScanReport, StoreError> {
        let report = self.sweeper.run().await;
        if let Ok(report) = &report {
            self.metrics.add(Metric::StalledOrders, report.stalled_seen);
            self.metrics
                .add(Metric::RevivedChains, report.chains_revived);
            self.metrics
                .add(Metric::RepublishedEvents, report.events_republished);
        }
        self.metrics.flush();
        report
    }

    /// This handler's metric counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
