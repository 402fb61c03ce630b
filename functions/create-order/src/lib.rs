//! create-order: the orders HTTP API behind API Gateway.
//!
//! `POST /orders` places an order without ever buying twice (see
//! [`create`]); `GET /orders/{orderId}` shows it. The handler is thin: it
//! decodes the request ([`http`]), hands it to the create flow or the store,
//! and encodes the answer.

pub mod create;
pub mod error;
pub mod http;
pub mod view;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use create::{CreateOptions, Creator};
use error::ApiError;
use foxrelay_shared::clock::SystemClock;
use foxrelay_shared::domain::Principal;
use foxrelay_shared::events::SnsPublisher;
use foxrelay_shared::foxreload::FoxReloadClient;
use foxrelay_shared::metrics::{Metered, Metric, Metrics};
use foxrelay_shared::queue::SqsPollQueue;
use foxrelay_shared::settings::ApiSettings;
use foxrelay_shared::startup::Context;
use foxrelay_shared::store::{DynamoStore, OrderReader};
use http::Route;
use lambda_runtime::LambdaEvent;
use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::instrument;

/// Whether this function calls FoxReload: it places and pays orders.
pub const FOXRELOAD_ACCESS: foxrelay_shared::settings::FoxReloadAccess =
    foxrelay_shared::settings::FoxReloadAccess::Needed;

/// The longest a request may work, whatever Lambda's deadline: API Gateway
/// gives up at about 29 s.
const MAX_BUDGET: Duration = Duration::from_secs(25);
/// Kept back from Lambda's deadline to store and send the answer.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The create-order handler; built once per container.
pub struct Handler {
    creator:
        Creator<DynamoStore, SqsPollQueue, Metered<FoxReloadClient>, SystemClock, SnsPublisher>,
    api: ApiSettings,
    metrics: Metrics,
}

/// The metrics create-order writes after every request.
pub const METRICS: &[Metric] = &[Metric::OrdersCreated, Metric::SupplierErrors];

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
        let api = context.settings.api.clone();
        Self {
            creator: Creator {
                store: context.store(),
                queue: context.poll_queue(),
                supplier: context.metered_foxreload(&metrics),
                clock: SystemClock,
                publisher: context.publisher(),
                options,
            },
            api,
            metrics,
        }
    }

    /// This handler's metric counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    #[instrument(skip_all, fields(method = %event.payload.request_context.http.method))]
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Infallible> {
        let deadline = deadline(event.context.deadline);
        let response = match http::decode(&event.payload, &self.api) {
            Err(error) => error.response(),
            Ok(Route::Create {
                order,
                key,
                principal,
            }) => match self.creator.create(order, key, principal, deadline).await {
                Ok(answer) => {
                    if answer.new_order {
                        self.metrics.add(Metric::OrdersCreated, 1);
                    }
                    let mut response = http::respond(answer.status, answer.body);
                    if answer.status < 300 {
                        let location = view::location(&answer.order_id);
                        response = http::with_header(response, "location", &location);
                    }
                    if answer.replayed {
                        response = http::with_header(response, http::REPLAYED_HEADER, "true");
                    }
                    response
                }
                Err(error) => error.response(),
            },
            Ok(Route::Read {
                order_id,
                principal,
            }) => match self.read(&order_id, &principal).await {
                Ok(body) => http::respond(200, body.to_string()),
                Err(error) => error.response(),
            },
        };
        self.metrics.flush();
        Ok(response)
    }
}

impl Handler {
    /// `GET /orders/{orderId}`: the order, and its codes once it has ended;
    /// to the principal that placed it only ([`is_readable_by`]). Anyone else
    /// is told, as for an unknown id, that there is no such order.
    async fn read(
        &self,
        order_id: &str,
        principal: &Principal,
    ) -> Result<serde_json::Value, ApiError> {
        let store = &self.creator.store;
        let order = store
            .order(order_id)
            .await
            .map_err(|e| ApiError::store(&e))?
            .filter(|order| is_readable_by(order, principal))
            .ok_or_else(|| ApiError::not_found("order"))?;
        if !order.status.is_terminal() {
            return Ok(view::order_json(&order));
        }
        let codes = store
            .codes(order_id)
            .await
            .map_err(|e| ApiError::store(&e))?;
        Ok(view::finished_order_json(&order, &codes))
    }
}

/// Whether `principal` may read `order`: the caller that placed it. An
/// order placed before callers were recorded has no owner to check and is
/// readable by any authenticated caller, as it was then (its client must
/// still be able to read its codes after the upgrade).
fn is_readable_by(order: &foxrelay_shared::store::OrderRecord, principal: &Principal) -> bool {
    order
        .principal
        .as_ref()
        .is_none_or(|owner| owner == principal)
}

/// The time budget: Lambda's deadline less a margin, at most [`MAX_BUDGET`].
fn deadline(lambda_deadline_ms: u64) -> tokio::time::Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let remaining = Duration::from_millis(lambda_deadline_ms.saturating_sub(now_ms))
        .saturating_sub(DEADLINE_MARGIN)
        .min(MAX_BUDGET);
    tokio::time::Instant::now() + remaining
}
