//! The HTTP face: FoxReload's public routes under `/api` (key required) and
//! the simulator's own `/__admin` routes (no key).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::Endpoint;
use crate::catalog;
use crate::error::ApiError;
use crate::request;
use crate::state::{
    DEFAULT_LIST_LIMIT, ListQuery, MAX_LIST_LIMIT, RETRY_AFTER_SECS, Read, SimState, parse_cursor,
};

/// The header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The simulator's routes over `state`. Every FoxReload route answers with
/// and without a trailing slash.
pub fn router(state: SimState) -> Router {
    let api = Router::new()
        .route("/api/orders", get(list_orders).post(create_order))
        .route("/api/orders/", get(list_orders).post(create_order))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/", get(get_order))
        .route("/api/orders/{id}/pay", post(pay_order))
        .route("/api/orders/{id}/pay/", post(pay_order))
        .route("/api/products/{id}", get(get_product))
        .route("/api/products/{id}/", get(get_product))
        // Inner: only requests with the key are counted and limited.
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    let admin = Router::new()
        .route("/__admin/counters", get(admin_counters))
        .route("/__admin/reset", post(admin_reset))
        .route("/__admin/orders/{id}", get(admin_order))
        .route("/__admin/clock/advance", post(admin_advance_clock))
        .route("/__admin/orders", post(admin_foreign_order));
    api.merge(admin).fallback(no_route).with_state(state)
}

async fn require_api_key(State(state): State<SimState>, request: Request, next: Next) -> Response {
    let expected = state.config().api_key.as_bytes();
    match request.headers().get(API_KEY_HEADER) {
        Some(given) if given.as_bytes() == expected => next.run(request).await,
        _ => ApiError::unauthenticated().into_response(),
    }
}

/// Which endpoint a request of FoxReload's routes is for.
fn endpoint_of(method: &axum::http::Method, path: &str) -> Endpoint {
    let path = path.trim_end_matches('/');
    let segments = path.split('/').filter(|s| !s.is_empty()).count();
    if path.starts_with("/api/products") {
        Endpoint::GetProduct
    } else if segments == 4 && path.ends_with("/pay") {
        Endpoint::PayOrder
    } else if path == "/api/orders" && method == axum::http::Method::POST {
        Endpoint::CreateOrder
    } else if path == "/api/orders" {
        Endpoint::ListOrders
    } else {
        Endpoint::GetOrder
    }
}

async fn rate_limit(State(state): State<SimState>, request: Request, next: Next) -> Response {
    let endpoint = endpoint_of(request.method(), request.uri().path());
    if state.admit(endpoint) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "THROTTLED",
        "Request was throttled.",
    )
    .into_response();
    if let Some(secs) = state.config().rate_limit.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

async fn no_route() -> Response {
    ApiError::not_found("Not found.").into_response()
}

async fn create_order(State(state): State<SimState>, body: Bytes) -> Response {
    let new = match request::parse_create(&body) {
        Ok(new) => new,
        Err(error) => return error.into_response(),
    };
    if let Some(fault) = state.next_create_fault() {
        if fault.commit {
            state.create(new);
        }
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return match fault.code {
            Some(code) => ApiError::new(status, code, "Injected failure.").into_response(),
            None => (status, "injected failure").into_response(),
        };
    }
    let (order, stall) = state.create(new);
    if let Some(stall) = stall {
        // The order is committed; the answer is what is late. A client that
        // gives up sees an ambiguous failure after sending.
        tokio::select! {
            () = tokio::time::sleep(stall) => {}
            () = state.shutting_down() => return ApiError::unavailable().into_response(),
        }
    }
    (StatusCode::CREATED, Json(order)).into_response()
}

async fn pay_order(State(state): State<SimState>, Path(id): Path<String>, body: Bytes) -> Response {
    state.count_pay(&id);
    if let Err(error) = request::parse_pay(&body) {
        return error.into_response();
    }
    match state.pay(&id) {
        Ok(order) => Json(order).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn get_order(State(state): State<SimState>, Path(id): Path<String>) -> Response {
    match state.read(&id) {
        Read::Order(order) => Json(order).into_response(),
        Read::NotFound => ApiError::not_found("Order not found.").into_response(),
        Read::Unavailable => ApiError::unavailable().into_response(),
        Read::Throttled => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "THROTTLED",
                "Too many requests",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            response
        }
        Read::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body>Bad gateway</body></html>",
        )
            .into_response(),
    }
}

async fn list_orders(
    State(state): State<SimState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    state.count_list();
    let Ok(Query(params)) = query else {
        return ApiError::validation("Malformed query string.").into_response();
    };
    let limit = params
        .get("limit")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_LIST_LIMIT, |n| n.min(MAX_LIST_LIMIT));
    let offset = params
        .get("offset")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let status = params.get("status").filter(|s| !s.is_empty()).cloned();
    let before = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => match parse_cursor(cursor) {
            Some(at) => Some(at),
            None => return ApiError::validation("cursor: Invalid cursor.").into_response(),
        },
    };
    let query = ListQuery {
        limit,
        offset,
        status,
        before,
    };
    Json(state.list(&query)).into_response()
}

async fn get_product(Path(id): Path<String>) -> Response {
    match catalog::product(&id) {
        Some(product) => Json(product.render()).into_response(),
        None => ApiError::not_found("Product not found.").into_response(),
    }
}

async fn admin_counters(State(state): State<SimState>) -> Response {
    Json(state.counters()).into_response()
}

async fn admin_reset(State(state): State<SimState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

async fn admin_order(State(state): State<SimState>, Path(id): Path<String>) -> Response {
    match state.order(&id) {
        Some(order) => Json(order).into_response(),
        None => ApiError::not_found("Order not found.").into_response(),
    }
}

/// `POST /__admin/orders`: an order "from another buyer" on the same key.
async fn admin_foreign_order(State(state): State<SimState>, body: Bytes) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            return ApiError::validation(format!("Malformed JSON body: {e}.")).into_response();
        }
    };
    match state.place_foreign(&value) {
        Ok(order) => (StatusCode::CREATED, Json(order)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /__admin/clock/advance?ms=N`: moves the simulator's clock forward.
async fn admin_advance_clock(
    State(state): State<SimState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let ms = query
        .ok()
        .and_then(|Query(params)| params.get("ms").and_then(|v| v.parse::<u64>().ok()));
    let Some(ms) = ms else {
        return ApiError::validation("ms: A non-negative integer is required.").into_response();
    };
    state.advance_clock(Duration::from_millis(ms));
    Json(json!({ "advancedMs": ms })).into_response()
}
