//! FoxReload error bodies: `{"detail": ..., "code": ...}` with a non-2xx status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error answer. `code` is absent from a few bodies on purpose (the 503
/// of [`crate::Behaviour::ServerError`]), as clients must cope with that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: Option<&'static str>,
    pub detail: String,
    /// The current price, on `OFFER_PRICE_NOT_MATCHED` (as `totalPrice`).
    pub price: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code: Some(code),
            detail: detail.into(),
            price: None,
        }
    }

    pub(crate) fn with_price(mut self, price: String) -> Self {
        self.price = Some(price);
        self
    }

    pub(crate) fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", detail)
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NOT_AUTHENTICATED",
            "Invalid API key.",
        )
    }

    pub(crate) fn unavailable() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: None,
            detail: "Service temporarily unavailable".to_owned(),
            price: None,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("detail".into(), json!(self.detail));
        if let Some(code) = self.code {
            body.insert("code".into(), json!(code));
        }
        if let Some(price) = &self.price {
            body.insert("totalPrice".into(), json!(price));
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
