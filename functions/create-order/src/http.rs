//! The orders API as an axum [`Router`]: `POST /orders` and
//! `GET /orders/{orderId}` (also under a stage name, `/prod/orders…`). The
//! same router runs in Lambda ([`serve_event`]: API Gateway's events
//! turned into HTTP requests by `lambda_http`) and in `foxrelay-local`.
//!
//! Every answer is JSON in the API's error shape, the router's own
//! rejections (no such route, a method not allowed) included. Decoding is
//! pure: a request becomes an order, a caller and a key, or a 4xx, before
//! any I/O.

use crate::create::{Answer, CreateOrderStore, Creator};
use crate::error::ApiError;
use crate::view;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::idempotency::{self, IdempotencyKey};
use foxrelay_shared::domain::principal::PrincipalError;
use foxrelay_shared::domain::{NewOrder, Principal, parse_new_order};
use foxrelay_shared::events::EventPublisher;
use foxrelay_shared::foxreload::Supplier;
use foxrelay_shared::metrics::{Metric, Metrics};
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::settings::ApiSettings;
use foxrelay_shared::store::OrderRecord;
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::tower::ServiceExt;
use lambda_http::{LambdaEvent, RequestExt};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Largest body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Set on an answer replayed from an earlier request with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest a request may work, whatever Lambda's deadline: API Gateway
/// gives up at about 29 s.
pub const MAX_BUDGET: Duration = Duration::from_secs(25);
/// Kept back from Lambda's deadline to store and send the answer.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// What the routes work with: the create flow (whose store also answers
/// reads), the API's settings, and the function's metrics.
pub struct Api<S, Q, F, C, P> {
    pub creator: Creator<S, Q, F, C, P>,
    pub settings: ApiSettings,
    pub metrics: Metrics,
}

/// The routes' state: one [`Api`] for every request.
type Shared<S, Q, F, C, P> = Arc<Api<S, Q, F, C, P>>;

/// The orders API over `api`'s ports.
pub fn router<S, Q, F, C, P>(api: Arc<Api<S, Q, F, C, P>>) -> Router
where
    S: CreateOrderStore + 'static,
    Q: PollQueue + 'static,
    F: Supplier + 'static,
    C: Clock + 'static,
    P: EventPublisher + 'static,
{
    let orders = || post(create::<S, Q, F, C, P>).fallback(|| async { not_allowed("POST") });
    // axum answers HEAD with a GET route unless told otherwise.
    let order = || {
        get(read::<S, Q, F, C, P>)
            .head(|| async { not_allowed("GET") })
            .fallback(|| async { not_allowed("GET") })
    };
    let flushed = api.clone();
    Router::new()
        .route("/orders", orders())
        .route("/orders/{order_id}", order())
        // A stage name may come first (`/prod/orders`).
        .route("/{stage}/orders", orders())
        .route("/{stage}/orders/{order_id}", order())
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(api)
        // Every request's metrics are written, whatever it was answered.
        .layer(axum::middleware::map_response(move |response: Response| {
            flushed.metrics.flush();
            async move { response }
        }))
}

/// A route's answer to any other method: 405, naming the one allowed.
fn not_allowed(allowed: &'static str) -> ApiError {
    ApiError::new(405, "method_not_allowed", format!("use {allowed} here")).header("allow", allowed)
}

/// `POST /orders`.
async fn create<S, Q, F, C, P>(
    State(api): State<Shared<S, Q, F, C, P>>,
    request: Request,
) -> Response
where
    S: CreateOrderStore,
    Q: PollQueue,
    F: Supplier,
    C: Clock,
    P: EventPublisher,
{
    let (parts, body) = request.into_parts();
    let span = tracing::info_span!(
        "request",
        method = "POST",
        api_request_id = api_request_id(&parts.extensions)
    );
    async {
        let deadline = deadline(&parts.extensions);
        let decoded = decode_create(
            parts.extensions.get::<RequestContext>(),
            &parts.headers,
            body,
            &api.settings,
        )
        .await;
        let (order, key, principal) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => return error.into_response(),
        };
        match api.creator.create(order, key, principal, deadline).await {
            Ok(answer) => {
                if answer.new_order {
                    api.metrics.add(Metric::OrdersCreated, 1);
                }
                answered(answer)
            }
            Err(error) => {
                if error.is_supplier_failure() {
                    api.metrics.add(Metric::SupplierErrorResponses, 1);
                }
                if error.is_budget_spent() {
                    api.metrics.add(Metric::CreatesThrottled, 1);
                }
                error.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

/// `GET /orders/{orderId}`: the order, and its codes once it has ended;
/// to the principal that placed it only ([`is_readable_by`]). Anyone else
/// is told, as for an unknown id, that there is no such order.
async fn read<S, Q, F, C, P>(State(api): State<Shared<S, Q, F, C, P>>, request: Request) -> Response
where
    S: CreateOrderStore,
    Q: PollQueue,
    F: Supplier,
    C: Clock,
    P: EventPublisher,
{
    // Only the head is read: the body of a GET is ignored.
    let (parts, _) = request.into_parts();
    // The route's last segment (`…/orders/{orderId}`).
    let order_id = parts
        .uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = "GET",
        order_id = %order_id,
        api_request_id = api_request_id(&parts.extensions)
    );
    async {
        // Our ids are UUIDs: anything else names no order, and must not
        // reach the store as a key.
        if !is_order_id(&order_id) {
            return ApiError::not_found("order").into_response();
        }
        let principal = match principal(
            parts.extensions.get::<RequestContext>(),
            &api.settings.principal_claim,
        ) {
            Ok(principal) => principal,
            Err(error) => return error.into_response(),
        };
        match view_of(&api, &order_id, &principal).await {
            Ok(body) => json(200, body.to_string(), &[]),
            Err(error) => error.into_response(),
        }
    }
    .instrument(span)
    .await
}

async fn view_of<S, Q, F, C, P>(
    api: &Api<S, Q, F, C, P>,
    order_id: &str,
    principal: &Principal,
) -> Result<serde_json::Value, ApiError>
where
    S: CreateOrderStore,
{
    let store = &api.creator.store;
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

/// Whether `principal` may read `order`: the caller that placed it. An
/// order placed before callers were recorded has no owner to check and is
/// readable by any authenticated caller, as it was then (its client must
/// still be able to read its codes after the upgrade).
fn is_readable_by(order: &OrderRecord, principal: &Principal) -> bool {
    order
        .principal
        .as_ref()
        .is_none_or(|owner| owner == principal)
}

fn is_order_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The request id API Gateway gave the request, for the logs.
/// API Gateway's id of the request: `requestId` in the API's access log,
/// logged as `api_request_id` so a client's failed call can be found.
fn api_request_id(extensions: &axum::http::Extensions) -> String {
    match extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            context.request_id.clone().unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The time budget: Lambda's deadline (from the invocation's context) less
/// a margin, at most [`MAX_BUDGET`].
fn deadline(extensions: &axum::http::Extensions) -> tokio::time::Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let remaining = match extensions.get::<lambda_http::Context>() {
        Some(context) => Duration::from_millis(context.deadline.saturating_sub(now_ms))
            .saturating_sub(DEADLINE_MARGIN)
            .min(MAX_BUDGET),
        None => MAX_BUDGET,
    };
    tokio::time::Instant::now() + remaining
}

/// The caller, from what API Gateway's authorizer put in the request
/// context: the JWT's issuer and `claim`, or the SigV4 caller's ARN. A
/// request without either never passed an authorizer: 401.
pub fn principal(context: Option<&RequestContext>, claim: &str) -> Result<Principal, ApiError> {
    let authorizer = context.and_then(RequestContext::authorizer);
    let jwt = authorizer.and_then(|a| a.jwt.as_ref());
    let iam = authorizer
        .and_then(|a| a.iam.as_ref())
        .and_then(|iam| iam.user_arn.as_deref());
    let found = match (jwt, iam) {
        (Some(jwt), _) => {
            let text = |name: &str| jwt.claims.get(name).map(String::as_str).unwrap_or_default();
            Principal::jwt(text("iss"), claim, text(claim))
        }
        (None, Some(arn)) => Principal::iam(arn),
        (None, None) => Err(PrincipalError::Missing),
    };
    found.map_err(|error| ApiError::new(401, "unauthenticated", error.to_string()))
}

/// A `POST /orders` request's caller, order and key, or the 4xx that says
/// what is wrong with it (checked in this order: caller, media type, size,
/// key, body).
pub async fn decode_create(
    context: Option<&RequestContext>,
    headers: &HeaderMap,
    body: Body,
    settings: &ApiSettings,
) -> Result<(NewOrder, Option<IdempotencyKey>, Principal), ApiError> {
    let principal = principal(context, &settings.principal_claim)?;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send the order as application/json",
        ));
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    let key = headers
        .get(idempotency::HEADER)
        .map(|raw| IdempotencyKey::parse_header(raw.as_bytes()))
        .transpose()
        .map_err(ApiError::invalid)?;
    if key.is_none() && settings.require_idempotency_key {
        return Err(ApiError::new(
            400,
            "idempotency_key_required",
            "this API requires an Idempotency-Key header on every POST",
        )
        .field("Idempotency-Key"));
    }
    let order = parse_new_order(&body).map_err(ApiError::invalid)?;
    Ok((order, key, principal))
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("the body must be at most {MAX_BODY} bytes"),
    )
}

/// The create flow's answer as the HTTP response: its status and body,
/// `Location` for an order, `Idempotent-Replayed` for a replay.
fn answered(answer: Answer) -> Response {
    let mut headers = Vec::new();
    if answer.status < 300 {
        headers.push(("location", view::location(&answer.order_id)));
    }
    if answer.replayed {
        headers.push((REPLAYED_HEADER, "true".to_owned()));
    }
    json(answer.status, answer.body, &headers)
}

/// A JSON response; a header value that is not a valid one is left out.
fn json(status: u16, body: String, headers: &[(&str, String)]) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let map = response.headers_mut();
    map.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (*name, value.clone()))
            .collect();
        json(self.status, self.body(), &headers)
    }
}

/// One API Gateway event through `router` (converted by `lambda_http`,
/// with the invocation's context), and the answer as API Gateway takes it.
/// This is the function's Lambda entry, not `lambda_http::run`: that
/// conversion panics, and with `panic = "abort"` kills the container, on a
/// body flagged base64 that is not, or a URL it cannot build from the
/// `Host` and query. Those are answered 400 here, and what the API never
/// reads (the query, `Host`, `X-Forwarded-Proto`) is left out first.
pub async fn serve_event(
    router: Router,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> ApiGatewayV2httpResponse {
    let LambdaEvent {
        mut payload,
        context,
    } = event;
    if payload.is_base64_encoded
        && base64::engine::general_purpose::STANDARD
            .decode(payload.body.as_deref().unwrap_or_default())
            .is_err()
    {
        let refused = ApiError::new(400, "invalid_request", "the body is not valid base64");
        return gateway_answer(refused.into_response()).await;
    }
    payload.raw_query_string = None;
    payload.query_string_parameters = Default::default();
    payload.headers.remove("host");
    payload.headers.remove("x-forwarded-proto");
    let request: lambda_http::Request = LambdaRequest::ApiGatewayV2(payload).into();
    let request = request.with_lambda_context(context);
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    gateway_answer(response).await
}

/// A response as API Gateway takes it from the function.
async fn gateway_answer(response: Response) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    // Every answer is JSON text, well under any limit.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = parts.headers;
    answer.body =
        (!bytes.is_empty()).then(|| LambdaBody::Text(String::from_utf8_lossy(&bytes).into_owned()));
    answer
}
