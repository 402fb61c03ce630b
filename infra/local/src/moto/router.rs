//! The one endpoint in front of the local stack's two moto servers: a
//! DynamoDB request (its `X-Amz-Target` names `DynamoDB_…`) goes to one,
//! every other request (SQS, SNS, Secrets Manager; the query protocol names
//! no target) to the other, unchanged both ways. It runs on a thread of its
//! own with its own runtime, so it serves whichever runtimes (or none) its
//! callers have, for as long as the servers run.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use foxrelay_recorder::relay;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The router, serving on a loopback port until stopped.
pub(super) struct Router {
    addr: SocketAddr,
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

struct Upstreams {
    http: reqwest::Client,
    dynamodb: String,
    others: String,
}

impl Router {
    /// Serves on a free loopback port: DynamoDB's requests to `dynamodb`,
    /// the rest to `others`.
    pub(super) fn start(dynamodb: SocketAddr, others: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let upstreams = Arc::new(Upstreams {
            http: relay::client().map_err(std::io::Error::other)?,
            dynamodb: format!("http://{dynamodb}"),
            others: format!("http://{others}"),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("moto-router".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => return eprintln!("the moto router cannot listen: {error}"),
                    };
                    let app = axum::Router::new()
                        .fallback(route)
                        .layer(DefaultBodyLimit::disable())
                        .with_state(upstreams);
                    tokio::select! {
                        served = axum::serve(listener, app).into_future() => {
                            if let Err(error) = served {
                                eprintln!("the moto router stopped: {error}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Requests still in flight (an SQS long poll) end with it.
                runtime.shutdown_background();
            })?;
        Ok(Self {
            addr,
            stop: Mutex::new(Some((stop, thread))),
        })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for its thread (once; later calls do nothing).
    pub(super) fn stop(&self) {
        let taken = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, thread)) = taken {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

async fn route(
    State(upstreams): State<Arc<Upstreams>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let upstream = if is_dynamodb(&headers) {
        &upstreams.dynamodb
    } else {
        &upstreams.others
    };
    match relay::send(&upstreams.http, upstream, method, &uri, &headers, body).await {
        Ok(answer) => answer.into_response(),
        Err(error) => relay::bad_gateway("moto router", &error),
    }
}

/// Whether a request is DynamoDB's: the JSON protocol names its operation
/// in `X-Amz-Target` (`DynamoDB_20120810.PutItem`).
fn is_dynamodb(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|target| target.to_str().ok())
        .is_some_and(|target| target.starts_with("DynamoDB_"))
}
