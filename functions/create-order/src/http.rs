//! From an API Gateway (HTTP API, payload 2.0) event to a request the API
//! understands, and back. Everything here is pure: any request, however
//! malformed, becomes either a route or a 4xx [`ApiError`].

use crate::error::ApiError;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method};
use base64::Engine;
use foxrelay_shared::domain::idempotency::{self, IdempotencyKey};
use foxrelay_shared::domain::principal::PrincipalError;
use foxrelay_shared::domain::{NewOrder, Principal, parse_new_order};
use foxrelay_shared::settings::ApiSettings;

/// Largest body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Set on an answer replayed from an earlier request with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// What a request asks for, and who asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Create {
        order: NewOrder,
        key: Option<IdempotencyKey>,
        principal: Principal,
    },
    Read {
        order_id: String,
        principal: Principal,
    },
}

/// Routes and validates a request. Only `Ok` requests reach any I/O.
pub fn decode(request: &ApiGatewayV2httpRequest, options: &ApiSettings) -> Result<Route, ApiError> {
    let method = &request.request_context.http.method;
    let path = request
        .raw_path
        .as_deref()
        .or(request.request_context.http.path.as_deref())
        .unwrap_or("/");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // A stage name may come first (`/prod/orders`).
    let route = match segments.iter().rposition(|s| *s == "orders") {
        Some(i) if i + 1 == segments.len() => Some(None),
        Some(i) if i + 2 == segments.len() => Some(Some(segments[i + 1])),
        _ => None,
    };
    match (route, method) {
        (Some(None), &Method::POST) => decode_create(request, options),
        // Our ids are UUIDs: anything else names no order, and must not
        // reach the store as a key.
        (Some(Some(id)), &Method::GET) if is_order_id(id) => Ok(Route::Read {
            order_id: id.to_owned(),
            principal: principal(request, &options.principal_claim)?,
        }),
        (Some(Some(_)), &Method::GET) => Err(ApiError::not_found("order")),
        (Some(None), _) => Err(method_not_allowed("POST")),
        (Some(Some(_)), _) => Err(method_not_allowed("GET")),
        (None, _) => Err(ApiError::not_found("route")),
    }
}

fn is_order_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn method_not_allowed(allowed: &'static str) -> ApiError {
    ApiError::new(405, "method_not_allowed", format!("use {allowed} here")).header("allow", allowed)
}

/// The caller, from what API Gateway's authorizer put in the request
/// context: the JWT's issuer and `claim`, or the SigV4 caller's ARN. A
/// request without either never passed an authorizer: 401.
pub fn principal(request: &ApiGatewayV2httpRequest, claim: &str) -> Result<Principal, ApiError> {
    let authorizer = request.request_context.authorizer.as_ref();
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

fn decode_create(
    request: &ApiGatewayV2httpRequest,
    options: &ApiSettings,
) -> Result<Route, ApiError> {
    let principal = principal(request, &options.principal_claim)?;
    let content_type = header(&request.headers, "content-type").unwrap_or_default();
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
    let raw = request.body.as_deref().unwrap_or_default();
    let body = if request.is_base64_encoded {
        if raw.len() > MAX_BODY * 4 / 3 + 4 {
            return Err(too_large());
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| ApiError::new(400, "invalid_request", "the body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    let key = request
        .headers
        .get(idempotency::HEADER)
        .map(|raw| IdempotencyKey::parse_header(raw.as_bytes()))
        .transpose()
        .map_err(ApiError::invalid)?;
    if key.is_none() && options.require_idempotency_key {
        return Err(ApiError::new(
            400,
            "idempotency_key_required",
            "this API requires an Idempotency-Key header on every POST",
        )
        .field("Idempotency-Key"));
    }
    let order = parse_new_order(&body).map_err(ApiError::invalid)?;
    Ok(Route::Create {
        order,
        key,
        principal,
    })
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("the body must be at most {MAX_BODY} bytes"),
    )
}

/// A header as text; `None` when absent or not visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON response.
pub fn respond(status: u16, body: String) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response
}

/// Adds a header; a value that is not a valid header value is left out.
pub fn with_header(
    mut response: ApiGatewayV2httpResponse,
    name: &'static str,
    value: &str,
) -> ApiGatewayV2httpResponse {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers.insert(name, value);
    }
    response
}

impl ApiError {
    pub fn response(&self) -> ApiGatewayV2httpResponse {
        let mut response = respond(self.status, self.body());
        for (name, value) in &self.headers {
            response = with_header(response, name, value);
        }
        response
    }
}
