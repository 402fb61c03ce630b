//! scan-stalled: the scheduled sweep for stalled orders ([`sweep`]).

pub mod sweep;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use foxrelay_shared::clock::SystemClock;
use foxrelay_shared::events::SnsPublisher;
use foxrelay_shared::queue::SqsPollQueue;
use foxrelay_shared::startup::Context;
use foxrelay_shared::store::{DynamoStore, StoreError};
use lambda_runtime::LambdaEvent;
pub use sweep::ScanReport;
use sweep::{SweepOptions, Sweeper};
use tracing::instrument;

/// The scan-stalled handler; built once per container.
pub struct Handler {
    sweeper: Sweeper<DynamoStore, SqsPollQueue, SnsPublisher, SystemClock>,
}

impl Handler {
    pub fn new(context: Context) -> Self {
        let stall = context.settings.stall;
        Self::with_options(
            context,
            SweepOptions {
                stall_after: stall.after,
                realert_after: stall.realert,
                ..SweepOptions::default()
            },
        )
    }

    pub fn with_options(context: Context, options: SweepOptions) -> Self {
        let resources = &context.settings.resources;
        Self {
            sweeper: Sweeper {
                store: DynamoStore::new(context.aws.dynamodb.clone(), &resources.table_name),
                queue: SqsPollQueue::new(context.aws.sqs.clone(), &resources.poll_queue_url),
                publisher: SnsPublisher::new(
                    context.aws.sns.clone(),
                    &resources.order_events_topic_arn,
                    &resources.ops_alerts_topic_arn,
                ),
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
        self.sweeper.run().await
    }
}
