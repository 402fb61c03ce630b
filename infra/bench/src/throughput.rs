//! Poll throughput on one core: the real poll-order handler on a
//! single-threaded runtime of its own thread, fed batches of 10 poll
//! messages for orders still processing at the simulator, against moto.
//!
//! Every message is a full chain link: read the order, claim the link, GET
//! at FoxReload, record the poll and schedule the next, send the next
//! message. CPU time is the handler thread's own (`/proc/thread-self/
//! schedstat`): the simulator runs on other threads, moto in another
//! process. The messages-per-second figure is bound by moto's latency (one
//! Python process serving every call); the CPU figure is foxrelay's own cost.

use crate::lab::{Lab, http_request, lambda_context};
use crate::table::{Section, fixed};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::http::Method;
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::startup::Context;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ORDERS: usize = 210;
const ROUNDS: u64 = 3;
const BATCH: usize = 10;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

struct Measured {
    messages: usize,
    failures: usize,
    wall: Duration,
    cpu: Duration,
}

fn batch_event(batch: &[(String, u64)], round: u64) -> LambdaEvent<SqsEvent> {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|(order_id, seq)| {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("{order_id}-{round}"));
            record.body =
                Some(json!({"orderId": order_id, "seq": seq, "kind": "poll"}).to_string());
            record
        })
        .collect();
    LambdaEvent::new(event, lambda_context(Duration::from_secs(30)))
}

async fn place_orders(context: &Context, count: usize) -> Result<Vec<String>, String> {
    let create = create_order::Handler::new(context.clone());
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let body = json!({"items": [{"productId": foxreload_sim::PRODUCT_NEVER, "quantity": 1}]});
        let request = http_request(Method::POST, "/orders", Some(&body), None);
        let response = create
            .handle(LambdaEvent::new(
                request,
                lambda_context(Duration::from_secs(30)),
            ))
            .await
            .map_err(|e| e.to_string())?;
        let Some(Body::Text(text)) = response.body else {
            return Err("create-order answered without a body".into());
        };
        if response.status_code != 202 {
            return Err(format!(
                "create-order answered {}: {text}",
                response.status_code
            ));
        }
        let answer: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        ids.push(answer["orderId"].as_str().unwrap_or_default().to_owned());
    }
    Ok(ids)
}

pub async fn run(lab: &Lab) -> Result<Section, String> {
    let stack = lab.stack(lab.clients().await).await?;
    let sim = foxreload_sim::Simulator::start(foxreload_sim::SimConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let settings = stack.settings(&sim.base_url(), sim.api_key(), &[])?;
    let ids = place_orders(&stack.context(settings.clone()).await?, ORDERS).await?;
    let endpoint = lab.moto.endpoint_url();
    let measured = std::thread::spawn(move || -> Result<Measured, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            // Clients and connections of this thread's runtime only.
            let clients = AwsClients::new(&load_local(&LocalAws::new(endpoint)).await);
            let context = Context::build(settings, clients)
                .await
                .map_err(|e| e.to_string())?;
            let handler = poll_order::Handler::new(context);
            let mut links: Vec<(String, u64)> = ids.into_iter().map(|id| (id, 1)).collect();
            // Warm-up: one batch of its own orders opens the connections.
            let warm: Vec<(String, u64)> = links.drain(..BATCH).collect();
            let response = handler
                .handle(batch_event(&warm, 0))
                .await
                .map_err(|e| e.to_string())?;
            if !response.batch_item_failures.is_empty() {
                return Err("the warm-up batch failed".into());
            }
            let (mut messages, mut failures) = (0, 0);
            let cpu = thread_cpu();
            let started = Instant::now();
            for round in 1..=ROUNDS {
                crate::progress::step(format_args!("round {round} of {ROUNDS}"));
                for batch in links.chunks_mut(BATCH) {
                    let response = handler
                        .handle(batch_event(batch, round))
                        .await
                        .map_err(|e| e.to_string())?;
                    messages += batch.len();
                    failures += response.batch_item_failures.len();
                    batch.iter_mut().for_each(|link| link.1 += 1);
                }
            }
            Ok(Measured {
                messages,
                failures,
                wall: started.elapsed(),
                cpu: thread_cpu().saturating_sub(cpu),
            })
        })
    })
    .join()
    .map_err(|_| "the handler thread panicked".to_owned())??;
    if measured.failures > 0 {
        return Err(format!(
            "{} of {} poll messages failed",
            measured.failures, measured.messages
        ));
    }
    let gets: u64 = sim.counters().gets_by_order.values().sum();
    let per_message_cpu = measured.cpu.as_secs_f64() * 1_000.0 / measured.messages as f64;
    let mut section = Section::new(
        "Poll throughput on one core",
        &format!(
            "The real poll-order handler on a single-threaded runtime, {} messages in batches \
             of {BATCH} ({ORDERS} orders processing at the simulator, {ROUNDS} chain links each, \
             after a warm-up batch of other orders), against moto; every message reads, claims, GETs, records and \
             re-enqueues. Messages per second are bound by moto (one Python process); CPU is the \
             handler thread's own, and its inverse is what one core could carry.",
            measured.messages
        ),
        &[
            "messages",
            "FoxReload GETs",
            "wall s",
            "messages/s (moto-bound)",
            "CPU ms/message",
            "one-core ceiling messages/s",
        ],
    );
    section.row(vec![
        measured.messages.to_string(),
        gets.to_string(),
        fixed(measured.wall.as_secs_f64(), 1),
        fixed(measured.messages as f64 / measured.wall.as_secs_f64(), 0),
        fixed(per_message_cpu, 2),
        fixed(1_000.0 / per_message_cpu, 0),
    ]);
    Ok(section)
}
