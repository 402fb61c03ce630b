//! scan-stalled: the scheduled sweep for stalled orders.
//!
//! This release reports an empty run (issue #5 builds the sweep through the
//! pending-orders index). The report shape is final.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use foxrelay_shared::startup::Context;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use std::convert::Infallible;
use tracing::{info, instrument};

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub index_items_read: u64,
    pub stalled_alerted: u64,
    pub chains_revived: u64,
    pub events_republished: u64,
}

/// The scan-stalled handler; built once per container.
pub struct Handler {
    #[allow(dead_code)] // used by the sweep (issue #5)
    context: Context,
}

impl Handler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }

    #[instrument(skip_all)]
    pub async fn handle(
        &self,
        _event: LambdaEvent<EventBridgeEvent<serde_json::Value>>,
    ) -> Result<ScanReport, Infallible> {
        let report = ScanReport::default();
        info!(?report, "scan finished");
        Ok(report)
    }
}
