//! Test support (feature `testing`): a local Lambda Runtime API, so a real
//! function binary can be started and invoked outside Lambda.
//!
//! Start it, point the binary's `AWS_LAMBDA_RUNTIME_API` at
//! [`RuntimeApi::address`], then [`RuntimeApi::invoke`] events one at a time.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, mpsc, oneshot};

/// What the function answered to one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

type Pending = (String, Value);

struct Shared {
    next: Mutex<mpsc::Receiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: Mutex<Vec<Value>>,
    /// When the function first asked for an event: its init was over.
    first_next: std::sync::OnceLock<std::time::Instant>,
}

/// A Runtime API on a free loopback port.
pub struct RuntimeApi {
    address: String,
    queue: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
    counter: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let (queue, next) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            next: Mutex::new(next),
            waiting: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
            first_next: std::sync::OnceLock::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            queue,
            shared,
            counter: AtomicU64::new(0),
            server,
        })
    }

    /// `host:port`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: Value, within: Duration) -> Option<Outcome> {
        let id = format!("req-{}", self.counter.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().await.insert(id.clone(), tx);
        self.queue.send((id, event)).await.ok()?;
        tokio::time::timeout(within, rx).await.ok()?.ok()
    }

    /// When the function first asked for an event (the end of its init).
    pub fn ready_at(&self) -> Option<std::time::Instant> {
        self.shared.first_next.get().copied()
    }

    /// Errors the function reported through `/runtime/init/error`.
    pub async fn init_errors(&self) -> Vec<Value> {
        self.shared.init_errors.lock().await.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next_event(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.first_next.get_or_init(std::time::Instant::now);
    let Some((id, event)) = shared.next.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:local".into(),
    );
    set("lambda-runtime-trace-id", trace_header(&id));
    set("lambda-runtime-aws-request-id", id);
    (StatusCode::OK, headers, event.to_string())
}

/// The X-Ray trace header of invocation `id` (`req-N`): one trace per
/// invocation, `Root=1-00000000-<N as 24 hex digits>`.
pub fn trace_header(id: &str) -> String {
    format!("Root={};Sampled=0", trace_id(id))
}

/// The X-Ray trace id of invocation `id`, as logged (`trace_id`).
pub fn trace_id(id: &str) -> String {
    let n: u64 = id
        .strip_prefix("req-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    format!("1-00000000-{n:024x}")
}

async fn settle(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.waiting.lock().await.remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&shared, &id, Outcome::Response(json_or_text(&body))).await
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&shared, &id, Outcome::Error(json_or_text(&body))).await
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared.init_errors.lock().await.push(json_or_text(&body));
    StatusCode::ACCEPTED
}

/// Settings that pass validation without touching AWS at start-up: resource
/// names in the Lambda formats, a plain key, a loopback FoxReload, and a local
/// AWS endpoint (required for the plain key to be accepted in Lambda).
pub fn valid_settings_env() -> Vec<(&'static str, String)> {
    use crate::settings::names;
    vec![
        (names::TABLE_NAME, "foxrelay-orders".into()),
        (
            names::POLL_QUEUE_URL,
            "http://127.0.0.1:9/000000000000/poll-queue".into(),
        ),
        (
            names::ORDER_EVENTS_TOPIC_ARN,
            "arn:aws:sns:us-east-1:000000000000:order-events".into(),
        ),
        (
            names::OPS_ALERTS_TOPIC_ARN,
            "arn:aws:sns:us-east-1:000000000000:ops-alerts".into(),
        ),
        (names::FOXRELOAD_BASE_URL, "http://127.0.0.1:9".into()),
        (names::FOXRELOAD_API_KEY, "test-key".into()),
        (names::AWS_ENDPOINT_URL, "http://127.0.0.1:9".into()),
        // deliver-webhook's (the others read none).
        (
            names::WEBHOOK_QUEUE_URL,
            "http://127.0.0.1:9/000000000000/webhook-queue".into(),
        ),
        (
            names::WEBHOOK_DEAD_LETTER_QUEUE_URL,
            "http://127.0.0.1:9/000000000000/webhook-dlq".into(),
        ),
        (names::WEBHOOK_SECRETS_PREFIX, "local-test/webhooks/".into()),
    ]
}

/// A function binary running against a [`RuntimeApi`]; killed when dropped.
pub struct FunctionProcess {
    child: tokio::process::Child,
}

impl FunctionProcess {
    /// Starts `binary` as Lambda would: the runtime variables, a region,
    /// static credentials, no instance metadata, and `env` on top. Nothing of
    /// the test's own environment leaks in.
    pub fn spawn(binary: &str, api: &RuntimeApi, env: &[(&str, String)]) -> std::io::Result<Self> {
        let child = tokio::process::Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "local-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self { child })
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit; returns its exit code and what it wrote
    /// to standard error.
    pub async fn exit(mut self, within: Duration) -> Option<(Option<i32>, String)> {
        use tokio::io::AsyncReadExt;
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .ok()?
            .ok()?;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        Some((status.code(), stderr))
    }

    /// Stops the process and returns what it wrote to standard output (log
    /// lines and metric lines, inside Lambda).
    pub async fn stop(mut self) -> String {
        use tokio::io::AsyncReadExt;
        let _ = self.child.kill().await;
        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout).await;
        }
        stdout
    }
}

/// Starts `binary` with valid settings, hands it `event`, and returns its
/// answer; panics with the reason when there is none.
pub async fn invoke_binary(binary: &str, event: Value) -> Outcome {
    invoke_binary_with_output(binary, event).await.0
}

/// [`invoke_binary`], and what the binary wrote to standard output until it
/// answered.
pub async fn invoke_binary_with_output(binary: &str, event: Value) -> (Outcome, String) {
    let api = RuntimeApi::start().await.expect("runtime API starts");
    let process =
        FunctionProcess::spawn(binary, &api, &valid_settings_env()).expect("binary starts");
    match api.invoke(event, Duration::from_secs(30)).await {
        Some(outcome) => (outcome, process.stop().await),
        None => {
            let (code, stderr) = process
                .exit(Duration::from_secs(1))
                .await
                .unwrap_or((None, "still running".into()));
            panic!("{binary} answered nothing (exit {code:?}): {stderr}")
        }
    }
}

/// Starts `binary` without one required setting and returns its exit code
/// and standard error.
async fn start_binary_without(binary: &str, missing: &str) -> (Option<i32>, String) {
    let api = RuntimeApi::start().await.expect("runtime API starts");
    let env: Vec<_> = valid_settings_env()
        .into_iter()
        .filter(|(name, _)| *name != missing)
        .collect();
    let process = FunctionProcess::spawn(binary, &api, &env).expect("binary starts");
    process
        .exit(Duration::from_secs(30))
        .await
        .expect("a function without its settings exits")
}

/// Asserts that `binary`, started without the setting `missing`, exits with
/// a failure whose standard error names it.
pub async fn assert_stops_naming_missing(binary: &str, missing: &str) {
    let (code, stderr) = start_binary_without(binary, missing).await;
    assert_ne!(code, Some(0), "{binary} without {missing}: {stderr}");
    assert!(
        stderr.contains(&format!("{missing} is not set")),
        "{binary} without {missing}: {stderr}"
    );
}

/// Asserts that `binary`, handed an SQS batch of `(message id, body)`
/// records none of which it can read, answers with every one of them kept
/// for redelivery: nothing dropped.
pub async fn assert_unreadable_batch_kept(binary: &str, records: &[(&str, &str)]) {
    let Outcome::Response(response) = invoke_binary(binary, sqs_batch(records)).await else {
        panic!("{binary}: expected a response");
    };
    let mut sent: Vec<&str> = records.iter().map(|(id, _)| *id).collect();
    sent.sort_unstable();
    assert_eq!(
        failed_message_ids(&response),
        sent,
        "unreadable messages are kept, none dropped"
    );
}

/// An SQS batch event of `(message id, body)` records, as the event source
/// mapping hands it to a function.
pub fn sqs_batch(records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({"messageId": id, "receiptHandle": "h", "body": body,
                "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:queue",
                "awsRegion": "us-east-1"})
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The message ids a batch answer keeps for redelivery, sorted.
pub fn failed_message_ids(response: &Value) -> Vec<String> {
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .map(|failures| {
            failures
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}
