//! The reverse proxy: every request goes on to moto unchanged and its
//! answer comes back unchanged; on the way it is recorded, and DynamoDB
//! transactions can be cancelled as DynamoDB does under contention.

use crate::billing::{Recorder, Tally};
use crate::relay;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;

/// The proxy, serving on a loopback port until dropped.
pub struct CountingProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    recorder: Mutex<Recorder>,
    faults: Mutex<Faults>,
}

/// Which transactions to cancel with `TransactionConflict`.
#[derive(Default)]
struct Faults {
    /// The next this many, whatever the share.
    next: u32,
    /// Then this share of the rest, in thousandths.
    permille: u32,
    /// Transactions cancelled so far.
    cancelled: u64,
    /// A counter driving the share (deterministic, evenly spread).
    seen: u64,
}

impl Faults {
    fn cancel_this_one(&mut self) -> bool {
        self.seen += 1;
        let cancel = if self.next > 0 {
            self.next -= 1;
            true
        } else {
            // Evenly spread: the n-th transaction is cancelled when the
            // running share crosses a whole one.
            self.permille > 0
                && (self.seen * u64::from(self.permille)) / 1000
                    != ((self.seen - 1) * u64::from(self.permille)) / 1000
        };
        self.cancelled += u64::from(cancel);
        cancel
    }
}

impl CountingProxy {
    /// Serves on a free loopback port, forwarding to `upstream` (moto's
    /// endpoint URL).
    pub async fn start(upstream: &str) -> Result<Self, String> {
        let http = relay::client().map_err(|e| format!("the proxy's HTTP client: {e}"))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            recorder: Mutex::new(Recorder::default()),
            faults: Mutex::new(Faults::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("the proxy cannot listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = axum::Router::new()
            .fallback(forward)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the counting proxy stopped: {error}");
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What was recorded since the last call; starts a new tally. What the
    /// proxy learned (table keys, index membership) is kept.
    pub fn take(&self) -> Tally {
        let mut recorder = self
            .shared
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recorder.take()
    }
}

impl CountingProxy {
    /// Cancels the next `next` DynamoDB transactions, then `permille`
    /// thousandths of the rest, with `TransactionConflict` on their first
    /// action (`None` on the others), as DynamoDB does when another
    /// transaction holds one of the items.
    pub fn cancel_transactions(&self, next: u32, permille: u32) {
        let mut faults = self
            .shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        faults.next = next;
        faults.permille = permille.min(1000);
    }

    /// Transactions cancelled so far.
    pub fn cancelled_transactions(&self) -> u64 {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cancelled
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if is_transaction(&headers)
        && shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cancel_this_one()
    {
        return transaction_conflict(&body);
    }
    let answer = match relay::send(
        &shared.http,
        &shared.upstream,
        method,
        &uri,
        &headers,
        body.clone(),
    )
    .await
    {
        Ok(answer) => answer,
        Err(error) => return relay::bad_gateway("counting proxy", &error),
    };
    shared
        .recorder
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(&headers, &body, answer.status.as_u16(), &answer.body);
    answer.into_response()
}

fn is_transaction(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target == "DynamoDB_20120810.TransactWriteItems")
}

/// DynamoDB's answer to a transaction cancelled because another one holds
/// an item: `TransactionConflict` on the first action, `None` on the rest.
fn transaction_conflict(body: &[u8]) -> Response {
    let actions = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1)
        .max(1);
    let reasons: Vec<Value> = (0..actions)
        .map(|i| {
            if i == 0 {
                serde_json::json!({"Code": "TransactionConflict",
                    "Message": "Transaction is ongoing for the item"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = reasons
        .iter()
        .map(|r| r["Code"].as_str().unwrap_or("None"))
        .collect();
    let answer = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    let mut response = Response::new(Body::from(answer.to_string()));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response.headers_mut().insert(
        "x-amzn-errortype",
        axum::http::HeaderValue::from_static("TransactionCanceledException"),
    );
    response
}
