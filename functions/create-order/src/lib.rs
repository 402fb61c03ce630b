//! create-order: the orders HTTP API behind API Gateway.
//!
//! This release answers every route with a clear JSON error: order creation
//! arrives with issue #3 (idempotency, intent record, create-and-pay,
//! reconciliation). The routing, the error shape and the start-up are final.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method};
use foxrelay_shared::startup::Context;
use lambda_runtime::LambdaEvent;
use serde_json::json;
use std::convert::Infallible;
use tracing::instrument;

/// The create-order handler; built once per container.
pub struct Handler {
    #[allow(dead_code)] // used by the create flow (issue #3)
    context: Context,
}

impl Handler {
    pub fn new(context: Context) -> Self {
        Self { context }
    }

    #[instrument(skip_all, fields(method = %event.payload.request_context.http.method, path = event.payload.raw_path.as_deref().unwrap_or("")))]
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Infallible> {
        let request = event.payload;
        let method = request.request_context.http.method.clone();
        let path = request.raw_path.as_deref().unwrap_or("/");
        Ok(match route(&method, path) {
            Route::Orders | Route::Order => error(
                503,
                "not_available",
                "order creation is not available in this release of foxrelay",
            ),
            Route::MethodNotAllowed => error(405, "method_not_allowed", "method not allowed"),
            Route::NotFound => error(404, "not_found", "no such route"),
        })
    }
}

enum Route {
    Orders,
    Order,
    MethodNotAllowed,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (segments.as_slice(), method) {
        (["orders"], &Method::POST) => Route::Orders,
        (["orders", id], &Method::GET) if !id.is_empty() => Route::Order,
        (["orders"], _) | (["orders", _], _) => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// The API's error shape: `{"error": {"code", "message"}}`.
pub fn error(status: i64, code: &str, message: &str) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(
        json!({"error": {"code": code, "message": message}}).to_string(),
    ));
    response
}
