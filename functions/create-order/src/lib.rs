//! create-order: the orders HTTP API behind API Gateway.
//!
//! `POST /orders` places an order without ever buying twice (see
//! [`create`]); `GET /orders/{orderId}` shows it. The handler is thin: an
//! axum router ([`http`]) decodes the request, hands it to the create flow
//! or the store, and encodes the answer. In Lambda, each API Gateway event
//! becomes the router's request (`http::serve_event`, with `lambda_http`'s
//! conversion); `foxrelay-local` serves the same router.

pub mod create;
pub mod error;
pub mod http;
pub mod view;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use axum::Router;
use create::{CreateOptions, Creator};
use foxrelay_shared::clock::SystemClock;
use foxrelay_shared::events::SnsPublisher;
use foxrelay_shared::metrics::{Metric, MetricSet, Metrics};
use foxrelay_shared::queue::SqsPollQueue;
use foxrelay_shared::startup::Context;
use foxrelay_shared::startup::LiveFoxReload;
use foxrelay_shared::store::DynamoStore;
use http::Api;
use lambda_http::LambdaEvent;
use std::convert::Infallible;
use std::sync::Arc;

/// Whether this function calls FoxReload: it places and pays orders.
pub const FOXRELOAD_ACCESS: foxrelay_shared::settings::FoxReloadAccess =
    foxrelay_shared::settings::FoxReloadAccess::Needed;

/// The API over the real adapters.
type LiveApi = Api<DynamoStore, SqsPollQueue, LiveFoxReload, SystemClock, SnsPublisher>;

/// The create-order handler; built once per container.
pub struct Handler {
    api: Arc<LiveApi>,
    /// Built once per container; each request gets a cheap clone.
    router: Router,
}

/// This function's name in logs and metrics.
pub const FUNCTION: &str = "create-order";

/// The metrics create-order writes after every request; the stack's
/// supplier-errors and undecided-reconciliations alarms watch two of them.
pub const METRICS: MetricSet = MetricSet {
    function: FUNCTION,
    declared: &[
        Metric::OrdersCreated,
        Metric::SupplierErrors,
        Metric::SupplierErrorResponses,
        Metric::CreatesThrottled,
        Metric::PaymentRefusals,
        Metric::ReconciliationsClaimed,
        Metric::ReconciliationsNothing,
        Metric::ReconciliationsUndecided,
    ],
};

impl Handler {
    pub fn new(context: Context) -> Self {
        let settings = &context.settings;
        let options = CreateOptions {
            first_poll_delay: settings.schedule.first_delay(),
            is_mock: settings.foxreload.mock_orders,
            auto_pay: settings.foxreload.auto_pay,
            ..CreateOptions::default()
        };
        Self::with_options(context, options)
    }

    pub fn with_options(context: Context, mut options: CreateOptions) -> Self {
        options.reconcile = options.reconcile.fitted_to(&context.settings.foxreload);
        let metrics = context.metrics(METRICS);
        let settings = context.settings.api.clone();
        let api = Arc::new(Api {
            creator: Creator {
                store: context.store(),
                queue: context.poll_queue(),
                supplier: context.governed_foxreload(&metrics),
                clock: SystemClock,
                publisher: context.publisher(),
                options,
                plans: context.plans(),
            },
            settings,
            metrics,
        });
        Self {
            router: http::router(api.clone()),
            api,
        }
    }

    /// This handler's metric counters.
    pub fn metrics(&self) -> &Metrics {
        &self.api.metrics
    }

    /// The orders API: what the Lambda entry hands every event to and
    /// `foxrelay-local` serves on its port.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// One API Gateway event through the router, as in Lambda: for tests
    /// and benchmarks that drive the function with events.
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Infallible> {
        Ok(http::serve_event(self.router(), event).await)
    }
}
