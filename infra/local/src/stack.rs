//! The whole product on one machine: moto (or the AWS endpoint given), the
//! resources of `template.yaml`, FoxReload (the simulator, or the one given),
//! and the three real handlers wired the way AWS wires them: an HTTP server
//! handing API Gateway events to create-order, an SQS event source feeding
//! poll-order, a timer running scan-stalled.

use crate::event_source::{EventSourceOptions, SqsEventSource};
use crate::gateway;
use crate::{MotoServer, Provisioned, StackTemplate, provision};
use axum::extract::Request;
use axum::response::Response;
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::settings::{FoxReloadAccess, Settings, names};
use foxrelay_shared::startup::Context;
use foxreload_sim::{SimConfig, Simulator};
use lambda_http::tower::ServiceExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// The default address of the orders API.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:3000";

/// How to run the stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub template: std::path::PathBuf,
    /// An AWS endpoint to use; moto is started when unset.
    pub aws_endpoint: Option<String>,
    /// FoxReload's base URL and key; the simulator runs when unset.
    pub foxreload: Option<(String, String)>,
    /// The simulator's behaviour when it runs.
    pub simulator: SimConfig,
    /// Prefix of every resource name.
    pub prefix: String,
    /// Where the orders API listens (port 0: a free one).
    pub api_addr: SocketAddr,
    /// Settings on top of the template's (schedule figures, timeouts…).
    pub overrides: BTreeMap<String, String>,
    /// How often scan-stalled runs.
    pub scan_interval: Duration,
    /// Copies of each poll message handed to poll-order (1; 2 in tests of
    /// at-least-once delivery).
    pub poll_copies: usize,
    /// Long-poll wait of the poll loop: also how quickly it notices a stop.
    pub poll_wait: Duration,
    /// poll-order "containers" receiving from the queue at once, each with
    /// its own handler (as Lambda runs several): 1 by default.
    pub pollers: usize,
}

impl StackOptions {
    /// The defaults, with `FOXRELAY_API_ADDR`, `SCAN_INTERVAL_SECS`,
    /// `FOXRELAY_POLL_COPIES`, `FOXRELAY_POLLERS`, `AWS_ENDPOINT_URL`, `FOXRELOAD_BASE_URL` and
    /// `FOXRELOAD_API_KEY`, and any function setting (`POLL_*`, `STALL_*`,
    /// `FOXRELOAD_*`) from the environment.
    pub fn from_env(template: std::path::PathBuf) -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let api_addr = env("FOXRELAY_API_ADDR")
            .unwrap_or_else(|| DEFAULT_API_ADDR.into())
            .parse()
            .map_err(|_| "FOXRELAY_API_ADDR is not an address such as 127.0.0.1:3000".to_owned())?;
        let number = |name: &str, default: u64| -> Result<u64, String> {
            env(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| format!("{name} must be a whole number"))
            })
        };
        let overrides = std::env::vars()
            .filter(|(name, _)| {
                name.starts_with("POLL_")
                    || name.starts_with("STALL_")
                    || (name.starts_with("FOXRELOAD_")
                        && name != names::FOXRELOAD_BASE_URL
                        && name != names::FOXRELOAD_API_KEY)
                    || name.starts_with("WEBHOOK_")
                    || name == "RUST_LOG"
            })
            .collect();
        Ok(Self {
            template,
            aws_endpoint: env(names::AWS_ENDPOINT_URL),
            foxreload: env(names::FOXRELOAD_BASE_URL).zip(env(names::FOXRELOAD_API_KEY)),
            simulator: SimConfig::default(),
            prefix: "foxrelay".into(),
            api_addr,
            overrides,
            scan_interval: Duration::from_secs(number("SCAN_INTERVAL_SECS", 300)?.max(1)),
            poll_copies: number("FOXRELAY_POLL_COPIES", 1)?.clamp(1, 5) as usize,
            poll_wait: Duration::from_secs(2),
            pollers: number("FOXRELAY_POLLERS", 1)?.clamp(1, 32) as usize,
        })
    }
}

/// A running stack. [`LocalStack::stop`] lets work in flight finish.
pub struct LocalStack {
    pub api_addr: SocketAddr,
    pub aws_endpoint: String,
    pub foxreload_base_url: String,
    pub resources: Provisioned,
    pub clients: AwsClients,
    pub settings: Settings,
    pub simulator: Option<Simulator>,
    /// The resources' prefix (the local stack's name).
    pub prefix: String,
    stop: watch::Sender<bool>,
    kill: watch::Sender<bool>,
    tasks: JoinSet<()>,
    _moto: Option<MotoServer>,
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> Result<Self, String> {
        let template = StackTemplate::load(&options.template).map_err(|e| e.to_string())?;
        let (aws_endpoint, moto) = match &options.aws_endpoint {
            Some(url) => (url.clone(), None),
            None => {
                let moto = MotoServer::start().map_err(|e| e.to_string())?;
                (moto.endpoint_url(), Some(moto))
            }
        };
        let clients = AwsClients::new(&load_local(&LocalAws::new(&aws_endpoint)).await);
        let resources = provision(&template, &clients, &options.prefix)
            .await
            .map_err(|e| e.to_string())?;
        let (base_url, api_key, simulator) = match &options.foxreload {
            Some((url, key)) => (url.clone(), key.clone(), None),
            None => {
                let sim = Simulator::start(options.simulator.clone())
                    .await
                    .map_err(|e| format!("the FoxReload simulator did not start: {e}"))?;
                (sim.base_url(), sim.api_key().to_owned(), Some(sim))
            }
        };
        let mut env = resources
            .function_environment(&template)
            .map_err(|e| e.to_string())?;
        env.extend(options.overrides.clone());
        env.insert(names::FOXRELOAD_BASE_URL.into(), base_url.clone());
        env.insert(names::FOXRELOAD_API_KEY.into(), api_key);
        let settings =
            Settings::from_lookup(|name| env.get(name).cloned()).map_err(|e| e.to_string())?;
        let context = Context::build(settings.clone(), clients.clone())
            .await
            .map_err(|e| e.to_string())?;

        let (stop, stopped) = watch::channel(false);
        let (kill, killed) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let listener = tokio::net::TcpListener::bind(options.api_addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.api_addr))?;
        let api_addr = listener.local_addr().map_err(|e| e.to_string())?;

        let create = create_order::Handler::new(context.clone()).router();
        let app = axum::Router::new().fallback(move |request: Request| {
            let create = create.clone();
            let mut killed = killed.clone();
            async move {
                // A kill cuts the invocation wherever it is, as a crashed
                // Lambda's; API Gateway then answers 502.
                tokio::select! {
                    answer = api_gateway(create, request) => answer,
                    () = until_stopped(&mut killed) => gateway::crashed(),
                }
            }
        });
        let mut api_stop = stopped.clone();
        tasks.spawn(async move {
            let shutdown = async move { until_stopped(&mut api_stop).await };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                warn!(%error, "the orders API stopped");
            }
        });

        for _ in 0..options.pollers.max(1) {
            let poll = Arc::new(poll_order::Handler::new(context.clone()));
            let source = SqsEventSource::new(
                clients.sqs.clone(),
                resources.poll_queue_url(),
                resources.arns.get("PollQueue").cloned().unwrap_or_default(),
                EventSourceOptions {
                    wait: options.poll_wait,
                    copies: options.poll_copies,
                    shuffle: options.poll_copies > 1,
                    ..EventSourceOptions::default()
                },
            );
            let poll_stop = stopped.clone();
            tasks.spawn(async move {
                // A batch in flight always finishes (the receive waits at
                // most `poll_wait`); the loop looks for a stop between
                // batches.
                while !stop_requested(&poll_stop) {
                    let batch = source.run_once(|event| {
                        let poll = poll.clone();
                        async move { poll.handle(event).await.unwrap_or_default() }
                    });
                    if let Err(error) = batch.await {
                        warn!(%error, "poll batch failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
        }

        if has_webhooks(&env) {
            let deliver = webhook_deliverer(&env, &clients, &resources).await?;
            let source = SqsEventSource::new(
                clients.sqs.clone(),
                resources.get("WebhookQueue").unwrap_or_default(),
                resources
                    .arns
                    .get("WebhookQueue")
                    .cloned()
                    .unwrap_or_default(),
                EventSourceOptions {
                    wait: options.poll_wait,
                    ..EventSourceOptions::default()
                },
            );
            let deliver_stop = stopped.clone();
            tasks.spawn(async move {
                while !stop_requested(&deliver_stop) {
                    let batch = source.run_once(|event| {
                        let deliver = deliver.clone();
                        async move { deliver.handle(event).await.unwrap_or_default() }
                    });
                    if let Err(error) = batch.await {
                        warn!(%error, "webhook batch failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
        }

        let scan = scan_stalled::Handler::new(context.clone());
        let interval = options.scan_interval;
        let mut scan_stop = stopped.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = until_stopped(&mut scan_stop) => return,
                }
                match scan
                    .handle(crate::lambda::event(
                        Default::default(),
                        Duration::from_secs(120),
                    ))
                    .await
                {
                    Ok(report) => info!(?report, "scan-stalled ran"),
                    Err(error) => warn!(%error, "scan-stalled failed"),
                }
            }
        });
        info!(%api_addr, %aws_endpoint, foxreload = %base_url, "foxrelay local stack is up");
        Ok(Self {
            api_addr,
            aws_endpoint,
            foxreload_base_url: base_url,
            resources,
            clients,
            settings,
            simulator,
            prefix: options.prefix.clone(),
            stop,
            kill,
            tasks,
            _moto: moto,
        })
    }

    /// Makes a new signing secret for webhook endpoint `id` (replacing one
    /// it had), stored where deliver-webhook reads it, and returns it: what
    /// the endpoint verifies deliveries with.
    pub async fn new_webhook_secret(&self, id: &str) -> Result<String, String> {
        let secret = foxrelay_shared::webhook::new_secret();
        self.set_webhook_secret(id, &secret).await?;
        Ok(secret)
    }

    /// Stores `secret` (one `whsec_…`, or two separated by a space while
    /// rotating) as webhook endpoint `id`'s signing secret.
    pub async fn set_webhook_secret(&self, id: &str, secret: &str) -> Result<(), String> {
        let name = format!("{}/webhooks/{id}", self.prefix);
        let secrets = &self.clients.secrets;
        let created = secrets
            .create_secret()
            .name(&name)
            .secret_string(secret)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) =>
            {
                secrets
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(secret)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot store the secret {name}: {e}"))
            }
            Err(e) => Err(format!("cannot store the secret {name}: {e}")),
        }
    }

    /// Kills the stack as a crash would: nothing in flight finishes (a
    /// create mid-POST, a poll batch mid-way, a sweep); requests in flight
    /// get API Gateway's 502 and new ones find no listener. Stops the
    /// simulator and moto if this stack started them.
    pub async fn kill(mut self) {
        let _ = self.kill.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some(sim) = self.simulator.take() {
            sim.shutdown().await;
        }
    }

    /// Stops taking work, lets the batch and requests in flight finish, and
    /// stops the simulator and moto if this stack started them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Some(sim) = self.simulator.take() {
            sim.shutdown().await;
        }
    }
}

/// Whether the stack has webhook endpoints (`WEBHOOK_ENDPOINTS`).
fn has_webhooks(env: &BTreeMap<String, String>) -> bool {
    env.get(names::WEBHOOK_ENDPOINTS)
        .is_some_and(|list| !matches!(list.trim(), "" | "[]"))
}

/// deliver-webhook with its own settings (as its function's environment
/// has them), its queue subscribed to the order events as the template's
/// `WebhookSubscription` does when there are endpoints.
async fn webhook_deliverer(
    env: &BTreeMap<String, String>,
    clients: &AwsClients,
    resources: &Provisioned,
) -> Result<Arc<deliver_webhook::Handler>, String> {
    let settings =
        Settings::from_lookup_for(|name| env.get(name).cloned(), FoxReloadAccess::Webhooks)
            .map_err(|e| e.to_string())?;
    let context = Context::build(settings, clients.clone())
        .await
        .map_err(|e| e.to_string())?;
    let handler = deliver_webhook::Handler::new(context).map_err(|e| e.to_string())?;
    let queue_arn = resources
        .arns
        .get("WebhookQueue")
        .cloned()
        .unwrap_or_default();
    clients
        .sns
        .subscribe()
        .topic_arn(resources.order_events_topic_arn())
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .map_err(|e| format!("cannot subscribe the webhook queue to the order events: {e}"))?;
    Ok(Arc::new(handler))
}

fn stop_requested(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// What API Gateway's HTTP API does: the caller and the invocation put in
/// the request's context, then create-order's router answers.
async fn api_gateway(router: axum::Router, request: Request) -> Response {
    match gateway::prepare(request) {
        Ok(request) => match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(why) => gateway::unauthorized(why),
    }
}
