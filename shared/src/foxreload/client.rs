//! The FoxReload HTTP client (reqwest, rustls).

use super::error::{Operation, SupplierError, Uncertainty};
use super::types::{ErrorBody, OrderPage, PageRequest, parse_order_page, unreadable_because};
use crate::domain::supplier::{CreateOrderRequest, SupplierOrder};
use crate::settings::{ApiKey, FoxReloadSettings};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;
use tracing::{debug, instrument, warn};

/// Longest `Retry-After` we honour; SQS cannot delay a message longer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);
/// Error bodies are read at most this far: they are untrusted.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// FoxReload's own texts are cut to this many characters in our errors.
const MAX_DETAIL_CHARS: usize = 300;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("the FoxReload API key cannot be sent as an HTTP header (it holds control characters)")]
    KeyNotAHeader,
    #[error("the FoxReload HTTP client could not be built: {0}")]
    Http(#[source] reqwest::Error),
}

/// A FoxReload API client. Cheap to clone; build it once per process.
#[derive(Clone)]
pub struct FoxReloadClient {
    http: reqwest::Client,
    base_url: String,
}

impl std::fmt::Debug for FoxReloadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoxReloadClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl FoxReloadClient {
    /// Builds a client for `settings`, sending `key` on every request.
    pub fn new(settings: &FoxReloadSettings, key: &ApiKey) -> Result<Self, ClientBuildError> {
        let mut headers = HeaderMap::new();
        let mut key_header =
            HeaderValue::from_str(key.expose()).map_err(|_| ClientBuildError::KeyNotAHeader)?;
        key_header.set_sensitive(true);
        headers.insert("x-api-key", key_header);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("x-currency", &settings.currency),
            ("x-language", &settings.language),
        ] {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("foxrelay/", env!("CARGO_PKG_VERSION")))
            // A redirected POST would turn into a GET; we use the documented
            // trailing-slash paths and follow nothing.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientBuildError::Http)?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST /api/orders/`. A timeout, broken connection or 5xx after the
    /// request was sent is [`SupplierError::Ambiguous`]: the order may exist.
    #[instrument(skip_all, fields(items = request.items.len()))]
    pub async fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> Result<SupplierOrder, SupplierError> {
        self.call(
            Operation::CreateOrder,
            Method::POST,
            "/api/orders/".into(),
            Some(serde_json::to_value(request).expect("a create request is plain JSON")),
        )
        .await
    }

    /// `POST /api/orders/{id}/pay` from the account balance.
    #[instrument(skip(self))]
    pub async fn pay_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.call(
            Operation::PayOrder,
            Method::POST,
            format!("/api/orders/{}/pay", segment(supplier_order_id)),
            Some(serde_json::json!({ "paymentProvider": null })),
        )
        .await
    }

    /// `GET /api/orders/{id}`.
    #[instrument(skip(self))]
    pub async fn get_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.call(
            Operation::GetOrder,
            Method::GET,
            format!("/api/orders/{}", segment(supplier_order_id)),
            None,
        )
        .await
    }

    /// `GET /api/orders/?limit=N[&offset=M|&cursor=C]`: one page of the
    /// order list, newest first. The whole page must parse, or the call
    /// fails: reconciliation never decides on a list it could not read.
    #[instrument(skip(self))]
    pub async fn list_orders(&self, page: &PageRequest) -> Result<OrderPage, SupplierError> {
        let op = Operation::ListOrders;
        let request = PageRequest {
            limit: page.limit.clamp(1, 100),
            ..page.clone()
        };
        let path = format!("/api/orders/?{}", request.query());
        let (status, body) = self.send(op, Method::GET, &path, None).await?;
        parse_order_page(&body, &request).map_err(|reason| unreadable(op, status, reason))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        op: Operation,
        method: Method,
        path: String,
        body: Option<serde_json::Value>,
    ) -> Result<T, SupplierError> {
        let (status, bytes) = self.send(op, method, &path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(op, status, format!("the body {}", unreadable_because(&e))))
    }

    /// Sends one request and sorts every failure by what the caller must do.
    async fn send(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), SupplierError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| transport(op, e))?;
        let status = response.status();
        debug!(%op, status = status.as_u16(), "FoxReload answered");
        if status.is_success() {
            let bytes = response.bytes().await.map_err(|e| transport(op, e))?;
            return Ok((status.as_u16(), bytes.to_vec()));
        }
        Err(refusal(op, response).await)
    }
}

/// Percent-encodes an id for use as one path segment.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A failure before any HTTP status arrived.
fn transport(op: Operation, error: reqwest::Error) -> SupplierError {
    if error.is_connect() {
        return SupplierError::Unreachable { op, source: error };
    }
    if op.is_idempotent() {
        return SupplierError::Interrupted { op, source: error };
    }
    let why = if error.is_timeout() {
        Uncertainty::TimedOut
    } else {
        Uncertainty::ConnectionLost
    };
    warn!(%op, %why, "FoxReload outcome unknown");
    SupplierError::Ambiguous {
        op,
        why,
        source: Some(error),
    }
}

/// A 2xx answer we could not read.
fn unreadable(op: Operation, status: u16, reason: String) -> SupplierError {
    if op.is_idempotent() {
        SupplierError::InvalidResponse {
            op,
            status,
            reason: truncate(&reason),
        }
    } else {
        SupplierError::Ambiguous {
            op,
            why: Uncertainty::UnreadableSuccess(status),
            source: None,
        }
    }
}

/// A non-2xx answer.
async fn refusal(op: Operation, response: Response) -> SupplierError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = read_capped(response).await;
    let ErrorBody {
        code,
        detail,
        price,
    } = serde_json::from_slice(&body).unwrap_or_default();
    let (code, detail) = (code.map(|c| truncate(&c)), detail.map(|d| truncate(&d)));
    let status_code = status.as_u16();
    match status {
        StatusCode::TOO_MANY_REQUESTS => SupplierError::RateLimited { op, retry_after },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SupplierError::Unauthorized {
            op,
            status: status_code,
            code,
            detail,
        },
        s if s.is_server_error() && !op.is_idempotent() => SupplierError::Ambiguous {
            op,
            why: Uncertainty::ServerError(status_code),
            source: None,
        },
        s if s.is_server_error() => SupplierError::Unavailable {
            op,
            status: status_code,
            code,
            detail,
        },
        // 3xx (we follow no redirects) and 4xx: FoxReload did not do it.
        _ => SupplierError::Rejected {
            op,
            status: status_code,
            code,
            detail,
            price: price.map(|p| truncate(&p)),
        },
    }
}

async fn read_capped(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// `Retry-After` in seconds (the HTTP-date form is not used by APIs like
/// this one and is ignored), capped at the longest delay SQS can give.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn truncate(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_DETAIL_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(segment("9a7c-11"), "9a7c-11");
        assert_eq!(segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn long_supplier_texts_are_cut() {
        let long = "x".repeat(1000);
        assert_eq!(truncate(&long).chars().count(), MAX_DETAIL_CHARS + 1);
        assert_eq!(truncate("short"), "short");
    }
}
