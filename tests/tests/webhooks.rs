//! Webhooks through the local runner: deliver-webhook wired as the template
//! wires it (its queue subscribed to the order events), real HTTP to a
//! receiver that verifies every delivery with the Python `standardwebhooks`
//! package, as a reseller's would; the SSRF guard, when the endpoint list
//! is read and when a name is resolved; the breaker's probe, the metrics
//! and the secrets' reads of deliver-webhook's handler.

use aws_lambda_events::event::sqs::SqsEvent;
use deliver_webhook::deliver::{Deliverer, Outcome};
use foxrelay_local::LocalStack;
use foxrelay_shared::clock::SystemClock;
use foxrelay_shared::domain::webhook::{RetrySchedule, Schemes, parse_endpoints};
use foxrelay_shared::metrics::Metrics;
use foxrelay_shared::store::OrderReader;
use foxrelay_shared::testing::sqs_batch;
use foxrelay_shared::webhook::{
    PublicOnly, SecretsManagerSecrets, Sender, SqsWebhookQueue, new_secret,
};
use foxrelay_tests::{drain_json, local_stack_options, subscribe_queue, unique_prefix};
use foxreload_sim::{
    PRODUCT_ACTIVATION, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_MANY, SimConfig, Simulator, Timing,
};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The receiver process and what it has printed.
struct Receiver {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// Starts `tests/webhook_receiver.py` verifying with `secret`; its
    /// `/flaky/…` paths answer 500 to the first `fail_first` tries of each
    /// webhook-id.
    fn start(secret: &str, fail_first: u32) -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(secret)
            .arg(fail_first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts (pip install standardwebhooks)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let port = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the receiver printed {first:?}, not its port"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        Self { child, port, lines }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests to `path` so far.
    fn seen(&self, path: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["path"] == path)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var(foxrelay_local::moto::PYTHON_ENV).unwrap_or_else(|_| {
        let venv =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    })
}

/// A loopback port nothing listens on: an endpoint that is down.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn simulator() -> Simulator {
    Simulator::start(SimConfig {
        timing: Timing {
            paid_to_processing: Duration::from_millis(100),
            fast_fulfilment: Duration::from_millis(800),
            ..Timing::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

async fn start_stack(
    sim: &Simulator,
    prefix: &str,
    endpoints: &Value,
) -> Result<LocalStack, String> {
    let endpoints = endpoints.to_string();
    let overrides = [
        ("POLL_FAST_INTERVAL_SECS", "1"),
        ("POLL_JITTER_PERCENT", "10"),
        ("FOXRELOAD_REQUEST_TIMEOUT_MS", "1000"),
        ("FOXRELOAD_CONNECT_TIMEOUT_MS", "500"),
        ("WEBHOOK_ENDPOINTS", endpoints.as_str()),
        ("WEBHOOK_RETRY_SCHEDULE_SECS", "1,1,1"),
        ("WEBHOOK_TIMEOUT_MS", "4000"),
    ];
    LocalStack::start(local_stack_options(
        prefix,
        sim,
        &overrides,
        1,
        Duration::from_secs(60),
    ))
    .await
}

/// Places one order of each product over HTTP; our order ids.
async fn place(stack: &LocalStack, products: &[&str]) -> Vec<String> {
    let http = reqwest::Client::new();
    let api = format!("http://{}/orders", stack.api_addr);
    let mut ids = Vec::new();
    for (n, product) in products.iter().enumerate() {
        let order = json!({"items": [{"productId": product, "quantity": 2}]});
        let (status, answer, _) =
            foxrelay_tests::place_order(&http, &api, &format!("hook-{n}"), &order).await;
        assert_eq!(status, 202, "{product}: {answer}");
        ids.push(answer["orderId"].as_str().unwrap().to_owned());
    }
    ids
}

/// The order events of `ids` from the topic, by order id.
async fn topic_events(stack: &LocalStack, queue: &str, ids: &[String]) -> BTreeMap<String, Value> {
    let mut events = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.iter().all(|id| events.contains_key(id)) {
        assert!(
            Instant::now() < deadline,
            "orders without an event: {events:?}"
        );
        for event in drain_json(&stack.clients, queue).await {
            events.insert(event["orderId"].as_str().unwrap().to_owned(), event);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    events
}

/// The dead-letter queue's deliveries with their `reason` attribute.
async fn dead_letters(stack: &LocalStack) -> Vec<(Value, String)> {
    let url = stack.resources.get("WebhookDeadLetterQueue").unwrap();
    let mut all = Vec::new();
    loop {
        let got = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            return all;
        }
        for m in got.messages() {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|r| r.string_value())
                .unwrap_or_default()
                .to_owned();
            all.push((serde_json::from_str(m.body().unwrap()).unwrap(), reason));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_verifies_each_event_arrives_once_per_id_retries_keep_it_and_a_dead_endpoint_ends_in_the_dlq()
 {
    let secret = new_secret();
    let receiver = Receiver::start(&secret, 2);
    let down = closed_port();
    let endpoints = json!([
        {"id": "shop", "url": receiver.url("/shop")},
        // One event (the failed order's): 500 twice, then 204. With
        // every order's event, its failures in a row would open its
        // breaker, as down's do.
        {"id": "flaky", "url": receiver.url("/flaky/orders"), "codes": false,
         "types": ["order.failed"]},
        {"id": "down", "url": format!("http://127.0.0.1:{down}/hook")},
        // Takes every request and never answers.
        {"id": "hang", "url": receiver.url("/hang/orders")},
        {"id": "failures", "url": receiver.url("/failures"), "types": ["order.failed"]},
        {"id": "other-caller", "url": receiver.url("/other"), "placedBy": ["someone-else"]},
        // Its secret is never created: nothing is sent unsigned.
        {"id": "unsigned", "url": receiver.url("/unsigned"), "types": ["order.failed"]},
    ]);
    let sim = simulator().await;
    let prefix = unique_prefix();
    let stack = start_stack(&sim, &prefix, &endpoints).await.unwrap();
    // shop's secret is being rotated: the receiver holds only the new one.
    let old = new_secret();
    stack
        .set_webhook_secret("shop", &format!("{old} {secret}"))
        .await
        .unwrap();
    for id in ["flaky", "down", "hang", "failures", "other-caller"] {
        stack.set_webhook_secret(id, &secret).await.unwrap();
    }
    let events_queue = subscribe_queue(
        &stack.clients,
        stack.resources.order_events_topic_arn(),
        &format!("{prefix}-events"),
    )
    .await;
    let products = [
        PRODUCT_FAST,
        PRODUCT_FAST,
        PRODUCT_ACTIVATION,
        PRODUCT_MANY,
        PRODUCT_FAIL,
        PRODUCT_FAST,
    ];
    let ids = place(&stack, &products).await;
    let events = topic_events(&stack, &events_queue, &ids).await;
    let event_ids: BTreeSet<String> = events
        .values()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect();
    let failed: BTreeSet<String> = events
        .values()
        .filter(|e| e["type"] == "order.failed")
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed.len(), 1);

    // Until shop and flaky have every event with a 2xx, and down's are all
    // dead-lettered.
    let delivered = |path: &str| -> BTreeSet<String> {
        receiver
            .seen(path)
            .iter()
            .filter(|l| l["status"] == 204)
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut dead = Vec::new();
    // down's and hang's last tries wait for their breakers, opened for 30
    // s at the 5th failure (requests under way then lengthen nothing).
    let deadline = Instant::now() + Duration::from_secs(180);
    while delivered("/shop") != event_ids
        || delivered("/flaky/orders") != failed
        || dead.len() < 2 * event_ids.len() + failed.len()
    {
        assert!(
            Instant::now() < deadline,
            "shop {:?}, flaky {:?}, dead letters {dead:?}",
            delivered("/shop"),
            delivered("/flaky/orders")
        );
        dead.extend(dead_letters(&stack).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    dead.extend(dead_letters(&stack).await);

    let store = stack.resources.store(&stack.clients);
    let all = receiver.lines.lock().unwrap().clone();
    assert!(
        all.iter().all(|l| l["verified"] == true),
        "every delivery verifies: {all:#?}"
    );
    // shop: each event once, signed with both secrets, its codes the stored
    // ones, its webhook-id the event's id.
    let shop = receiver.seen("/shop");
    assert_eq!(shop.len(), event_ids.len(), "{shop:#?}");
    for line in &shop {
        let body = &line["body"];
        assert_eq!(line["id"], body["eventId"]);
        assert_eq!(line["signatures"], 2, "both secrets sign while rotating");
        let order_id = body["orderId"].as_str().unwrap();
        assert_eq!(
            body, &events[order_id],
            "the topic's event, rebuilt from the table"
        );
        let stored: Vec<String> = store
            .codes(order_id)
            .await
            .unwrap()
            .iter()
            .map(|c| c.code.clone())
            .collect();
        let sent: Vec<String> = body["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(sent, stored);
        if body["type"] == "order.completed" {
            assert!(!sent.is_empty());
        }
    }
    // flaky: 500, 500, then 204, each try with the same id; no codes.
    let mut tries: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in receiver.seen("/flaky/orders") {
        tries
            .entry(line["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(line["status"].as_u64().unwrap());
        assert_eq!(line["body"]["codesIncluded"], false);
        assert_eq!(line["body"]["codes"], json!([]));
        assert_eq!(line["id"], line["body"]["eventId"]);
    }
    assert_eq!(tries.keys().cloned().collect::<BTreeSet<_>>(), failed);
    for (id, statuses) in &tries {
        assert_eq!(statuses, &[500, 500, 204], "{id}");
    }
    // Filters: the failed order's event only; no other caller's order.
    assert_eq!(delivered("/failures"), failed);
    assert!(receiver.seen("/other").is_empty());
    let dead_of = |endpoint: &str| -> Vec<&(Value, String)> {
        dead.iter()
            .filter(|(d, _)| d["endpoint"] == endpoint)
            .collect()
    };
    // down: every event dead-lettered once, out of tries, its body naming
    // no code; once its breaker opened, tries sent no request but the
    // last, which waited for the breaker to close.
    let down_dead = dead_of("down");
    assert_eq!(down_dead.len(), event_ids.len(), "{dead:#?}");
    assert_eq!(
        down_dead
            .iter()
            .map(|(d, _)| d["eventId"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        event_ids
    );
    for (delivery, reason) in &down_dead {
        assert_eq!(delivery["attempt"], 4);
        assert!(reason.starts_with("out of tries (4)"), "{reason}");
        assert!(!delivery.to_string().contains("code"), "{delivery}");
    }
    assert!(
        down_dead
            .iter()
            .all(|(_, r)| r.contains("could not connect")),
        "the last try is a request: {down_dead:#?}"
    );
    // Its breaker counted its failed requests, but not the last tries sent
    // past it (no probes: each would have doubled the cool-off).
    let breaker = store_breaker(&stack, "down").await;
    assert!(
        (5..5 + down_dead.len() as u32).contains(&breaker),
        "down's breaker counted {breaker} failures"
    );
    // unsigned: its one event tried four times without a request (no
    // secret), then dead-lettered once: one chain, not one per receipt.
    let unsigned = dead_of("unsigned");
    assert_eq!(unsigned.len(), 1, "{dead:#?}");
    assert!(unsigned[0].1.contains("no such secret"), "{unsigned:?}");
    assert!(receiver.seen("/unsigned").is_empty());
    assert_eq!(store_breaker(&stack, "unsigned").await, 0);
    // hang: every event dead-lettered after its tries ran out of time;
    // meanwhile shop had each event as soon as hang was asked for it, not
    // after hang's timeout (4 s): an endpoint that never answers delays no
    // other.
    let hang_dead = dead_of("hang");
    assert_eq!(hang_dead.len(), event_ids.len(), "{dead:#?}");
    assert!(
        hang_dead
            .iter()
            .all(|(_, r)| r.contains("no answer in time")),
        "{hang_dead:#?}"
    );
    let first_arrival = |path: &str, id: &str| -> u64 {
        receiver
            .seen(path)
            .iter()
            .filter(|l| l["id"] == id)
            .map(|l| l["at"].as_u64().unwrap())
            .min()
            .unwrap()
    };
    for id in &event_ids {
        let (hang_at, shop_at) = (
            first_arrival("/hang/orders", id),
            first_arrival("/shop", id),
        );
        assert!(
            shop_at < hang_at + 3_000,
            "{id}: shop got it {} ms after hang was asked",
            shop_at.saturating_sub(hang_at)
        );
    }
    assert_eq!(
        dead.len(),
        down_dead.len() + hang_dead.len() + unsigned.len(),
        "only down's, hang's and unsigned's: {dead:#?}"
    );
    stack.stop().await;
}

/// A stack without endpoints, and the event of an order completed in it.
async fn one_completed_order(sim: &Simulator) -> (LocalStack, Value) {
    let stack = start_stack(sim, &unique_prefix(), &json!([]))
        .await
        .unwrap();
    let events_queue = subscribe_queue(
        &stack.clients,
        stack.resources.order_events_topic_arn(),
        &format!("{}-events", unique_prefix()),
    )
    .await;
    let ids = place(&stack, &[PRODUCT_FAST]).await;
    let event = topic_events(&stack, &events_queue, &ids).await[&ids[0]].clone();
    (stack, event)
}

/// A deliverer of `stack`'s, as deliver-webhook builds it, to `endpoints`
/// (each given `secret`) through `sender`.
async fn deliverer_of(
    stack: &LocalStack,
    endpoints: Vec<foxrelay_shared::domain::webhook::Endpoint>,
    secret: &str,
    sender: Sender,
    retries: RetrySchedule,
) -> Arc<
    Deliverer<
        foxrelay_shared::store::DynamoStore,
        SqsWebhookQueue,
        SecretsManagerSecrets,
        SystemClock,
    >,
> {
    for endpoint in &endpoints {
        stack
            .set_webhook_secret(&endpoint.id, secret)
            .await
            .unwrap();
    }
    Arc::new(Deliverer {
        store: stack.resources.store(&stack.clients),
        queue: SqsWebhookQueue::new(
            stack.clients.sqs.clone(),
            stack.resources.get("WebhookQueue").unwrap(),
            stack.resources.get("WebhookDeadLetterQueue").unwrap(),
        ),
        secrets: SecretsManagerSecrets::new(
            stack.clients.secrets.clone(),
            format!("{}/webhooks/", stack.prefix),
        ),
        sender,
        endpoints: endpoints.into(),
        retries,
        clock: SystemClock,
        metrics: Metrics::in_memory("test", deliver_webhook::METRICS),
    })
}

/// The failures in a row endpoint `id`'s breaker holds.
async fn store_breaker(stack: &LocalStack, id: &str) -> u32 {
    use foxrelay_shared::store::WebhookStore;
    stack
        .resources
        .store(&stack.clients)
        .breaker(id)
        .await
        .unwrap()
        .failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_at_a_private_or_metadata_address_is_refused_when_read_and_when_resolved() {
    let sim = simulator().await;
    // When the list is read: the local runner does not start.
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "http://169.254.169.254/",
    ] {
        let endpoints = json!([{"id": "inside", "url": url}]);
        let refused = start_stack(&sim, &unique_prefix(), &endpoints)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(refused.contains("WEBHOOK_ENDPOINTS"), "{refused}");
    }

    // When a name is resolved: names pinned to those addresses are never
    // reached, and the delivery says why.
    let (stack, event) = one_completed_order(&sim).await;
    let endpoints = parse_endpoints(
        &json!([
            {"id": "metadata", "url": "https://metadata.test/hook"},
            {"id": "internal", "url": "https://internal.test/hook"},
        ])
        .to_string(),
        Schemes::HttpsOnly,
    )
    .expect("names are not resolved when the list is read");
    let pinned: Arc<[(String, std::net::IpAddr)]> = Arc::from(vec![
        (
            "metadata.test".to_owned(),
            "169.254.169.254".parse().unwrap(),
        ),
        ("internal.test".to_owned(), "10.0.0.1".parse().unwrap()),
    ]);
    let sender = Sender::with_guard(
        Duration::from_secs(2),
        PublicOnly {
            allow_loopback: false,
            pinned,
        },
    )
    .unwrap();
    let retries = RetrySchedule::parse("").unwrap();
    let deliverer = deliverer_of(&stack, endpoints, &new_secret(), sender, retries).await;
    let outcomes = deliverer.handle(&event.to_string()).await.unwrap();
    assert_eq!(outcomes.len(), 2);
    for outcome in &outcomes {
        let Outcome::DeadLettered { reason } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(reason.contains("no public address"), "{reason}");
    }
    let dead = dead_letters(&stack).await;
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().all(|(_, r)| r.contains("no public address")));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_message_never_sends_an_order_to_an_endpoint_of_another_caller_or_type() {
    let sim = simulator().await;
    let (stack, event) = one_completed_order(&sim).await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret, 0);
    let endpoints = parse_endpoints(
        &json!([
            {"id": "partner", "url": receiver.url("/partner"), "placedBy": ["someone-else"]},
            {"id": "failures", "url": receiver.url("/failures"), "types": ["order.failed"]},
        ])
        .to_string(),
        Schemes::LoopbackHttp,
    )
    .unwrap();
    let sender = Sender::new(Duration::from_secs(2), true).unwrap();
    let deliverer =
        deliverer_of(&stack, endpoints, &secret, sender, RetrySchedule::default()).await;
    // The completed order's event, claiming another caller and type.
    let mut forged = event.clone();
    forged["placedBy"] = json!("someone-else");
    forged["type"] = json!("order.failed");
    let outcomes = deliverer.handle(&forged.to_string()).await.unwrap();
    assert_eq!(outcomes.len(), 2);
    // A delivery message naming an endpoint outright, as one sent to the
    // queue by hand would.
    let by_hand = json!({"eventId": event["eventId"], "orderId": event["orderId"],
                         "endpoint": "partner", "attempt": 1, "notBeforeMs": 0});
    let more = deliverer.handle(&by_hand.to_string()).await.unwrap();
    for outcome in outcomes.iter().chain(&more) {
        let Outcome::DeadLettered { reason } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(reason.contains("is not for this endpoint"), "{reason}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.lines.lock().unwrap().is_empty(),
        "nothing was sent"
    );
    assert_eq!(dead_letters(&stack).await.len(), 3);
    stack.stop().await;
}

/// The messages on the webhook queue (tries queued again), as an SQS batch
/// event hands them over; waits until `count` have come.
async fn queued_tries(stack: &LocalStack, count: usize) -> SqsEvent {
    let url = stack.resources.get("WebhookQueue").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} tries queued",
            records.len()
        );
        let got = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            records.push((
                m.message_id().unwrap().to_owned(),
                m.body().unwrap().to_owned(),
            ));
        }
    }
    let records: Vec<(&str, &str)> = records
        .iter()
        .map(|(id, body)| (id.as_str(), body.as_str()))
        .collect();
    serde_json::from_value(sqs_batch(&records)).unwrap()
}

/// The counters of the last EMF line `handler` flushed.
fn last_counts(handler: &deliver_webhook::Handler) -> [u64; 3] {
    let lines = handler.metrics().lines();
    let last: Value = serde_json::from_str(lines.last().expect("a flushed line")).unwrap();
    assert_eq!(last["Function"], "deliver-webhook", "{last}");
    [
        "WebhooksDelivered",
        "WebhookRetries",
        "WebhooksDeadLettered",
    ]
    .map(|name| {
        last[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {last}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_counts_its_deliveries_failed_tries_and_dead_letters_zeros_included() {
    let sim = simulator().await;
    let (stack, event) = one_completed_order(&sim).await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret, 1);
    let endpoints = parse_endpoints(
        &json!([
            {"id": "ok", "url": receiver.url("/ok")},
            {"id": "flaky", "url": receiver.url("/flaky/orders")},
            {"id": "down", "url": format!("http://127.0.0.1:{}/hook", closed_port())},
        ])
        .to_string(),
        Schemes::LoopbackHttp,
    )
    .unwrap();
    let sender = Sender::new(Duration::from_secs(2), true).unwrap();
    // One try again, a second after the first.
    let retries = RetrySchedule::parse("1").unwrap();
    let deliverer = deliverer_of(&stack, endpoints, &secret, sender, retries).await;
    let handler = deliver_webhook::Handler::from_deliverer(deliverer);
    let invoke = |batch: SqsEvent| {
        handler.handle(LambdaEvent::new(batch, lambda_runtime::Context::default()))
    };

    // The event: ok has it, flaky answers 500 and down is not there; both
    // are queued to be tried again.
    let batch: SqsEvent =
        serde_json::from_value(sqs_batch(&[("event", &event.to_string())])).unwrap();
    let answer = invoke(batch).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(last_counts(&handler), [1, 2, 0], "delivered, retries, dead");

    // Their second and last tries: flaky has it, down is dead-lettered.
    let answer = invoke(queued_tries(&stack, 2).await).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(last_counts(&handler), [1, 0, 1], "delivered, retries, dead");

    // A batch with nothing to do writes zeros, so alarms always have data.
    let empty: SqsEvent = serde_json::from_value(sqs_batch(&[])).unwrap();
    invoke(empty).await.unwrap();
    assert_eq!(last_counts(&handler), [0, 0, 0]);
    assert_eq!(receiver.seen("/ok").len(), 1);
    assert_eq!(receiver.seen("/flaky/orders").len(), 2);
    assert_eq!(dead_letters(&stack).await.len(), 1);
    stack.stop().await;
}

/// A loopback port that takes every connection and never answers, and
/// the connections it took.
async fn never_answering() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_breaker_lets_one_delivery_probe_and_holds_the_others() {
    use foxrelay_shared::domain::webhook::Breaker;
    use foxrelay_shared::store::WebhookStore;
    let sim = simulator().await;
    let (stack, event) = one_completed_order(&sim).await;
    // An endpoint that takes every connection and never answers; each
    // connection counted.
    let (port, connections) = never_answering().await;
    let endpoints = parse_endpoints(
        &json!([{"id": "stuck", "url": format!("http://127.0.0.1:{port}/hook")}]).to_string(),
        Schemes::LoopbackHttp,
    )
    .unwrap();
    let sender = Sender::new(Duration::from_secs(2), true).unwrap();
    let deliverer = deliverer_of(
        &stack,
        endpoints,
        &new_secret(),
        sender,
        RetrySchedule::default(),
    )
    .await;
    // Its breaker opened 40 s ago for 30 s: half-open now.
    let store = stack.resources.store(&stack.clients);
    let now_ms = || (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let opened = now_ms() - 40_000;
    for _ in 0..Breaker::OPEN_AFTER {
        store.record_failure("stuck", opened).await.unwrap();
    }
    assert!(store.breaker("stuck").await.unwrap().half_open(now_ms()));

    // Six deliveries to it at once, as one batch.
    let handler = deliver_webhook::Handler::from_deliverer(deliverer);
    let message = json!({"eventId": event["eventId"], "orderId": event["orderId"],
                         "endpoint": "stuck", "attempt": 1, "notBeforeMs": 0})
    .to_string();
    let ids: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, &str)> = ids
        .iter()
        .map(|id| (id.as_str(), message.as_str()))
        .collect();
    let batch: SqsEvent = serde_json::from_value(sqs_batch(&records)).unwrap();
    let started = now_ms();
    let answer = handler
        .handle(LambdaEvent::new(batch, lambda_runtime::Context::default()))
        .await
        .unwrap();
    assert!(answer.batch_item_failures.is_empty());

    // One probe reached it; the other five were held without a request;
    // all six are to be tried again, and the probe's failure opened the
    // breaker again, for twice as long.
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one probe");
    assert_eq!(last_counts(&handler), [0, 6, 0], "delivered, retries, dead");
    let breaker = store.breaker("stuck").await.unwrap();
    assert_eq!(breaker.failures, Breaker::OPEN_AFTER + 1);
    assert!(
        breaker.open_until_ms >= started + 60_000,
        "open for 60 s from the probe's failure: {breaker:?}, started {started}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_reads_an_endpoints_secret_once_however_many_deliveries_need_it_at_once() {
    use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
    use foxrelay_shared::webhook::WebhookSecrets;
    let proxy = foxrelay_recorder::CountingProxy::start(&foxrelay_tests::moto().endpoint_url())
        .await
        .unwrap();
    let clients = AwsClients::new(&load_local(&LocalAws::new(proxy.url().to_owned())).await);
    let prefix = format!("{}/webhooks/", unique_prefix());
    clients
        .secrets
        .create_secret()
        .name(format!("{prefix}shop"))
        .secret_string(new_secret())
        .send()
        .await
        .unwrap();
    proxy.take();

    // A cold container: twenty deliveries to shop at once.
    let secrets = SecretsManagerSecrets::new(clients.secrets.clone(), prefix);
    let mut asking = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let secrets = secrets.clone();
        asking.spawn(async move { secrets.signer("shop").await.map(|_| ()) });
    }
    while let Some(got) = asking.join_next().await {
        got.unwrap().unwrap();
    }
    assert_eq!(
        proxy.take().requests("secretsmanager", "GetSecretValue"),
        1,
        "one read for all twenty"
    );
    // Kept: the next ones read nothing.
    secrets.signer("shop").await.unwrap();
    assert_eq!(proxy.take().requests("secretsmanager", "GetSecretValue"), 0);
    // An endpoint whose secret is missing is asked about each time (it may
    // be created at any moment), and says so.
    let missing = secrets.signer("unsigned").await.unwrap_err();
    assert!(missing.to_string().contains("no such secret"), "{missing}");
    secrets.signer("unsigned").await.unwrap_err();
    assert_eq!(proxy.take().requests("secretsmanager", "GetSecretValue"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_read_that_fails_answers_every_delivery_waiting_behind_it() {
    use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
    use foxrelay_shared::webhook::{SecretError, WebhookSecrets};
    // A Secrets Manager that takes every connection and never answers.
    let (port, connections) = never_answering().await;
    let clients =
        AwsClients::new(&load_local(&LocalAws::new(format!("http://127.0.0.1:{port}"))).await);
    let secrets = SecretsManagerSecrets::new(clients.secrets.clone(), "stack/webhooks/");

    // Twenty deliveries to shop at once: one read, given up after its
    // timeout; the nineteen behind it are told at once, not each after a
    // read of its own.
    let mut asking = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let secrets = secrets.clone();
        asking.spawn(async move { secrets.signer("shop").await.map(|_| ()) });
    }
    let mut said = Vec::new();
    while let Some(got) = asking.join_next().await {
        let error = got.unwrap().unwrap_err();
        assert!(matches!(error, SecretError::Unreadable { .. }), "{error}");
        said.push(error.to_string());
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one read: {said:#?}");
    let (told, read): (Vec<&String>, Vec<&String>) = said
        .iter()
        .partition(|s| s.contains("a read just failed: no answer in 5 s"));
    assert_eq!((told.len(), read.len()), (19, 1), "{said:#?}");
    assert!(
        read[0].ends_with("could not be read: no answer in 5 s"),
        "{said:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_whose_opening_was_never_written_is_claimed_by_one_delivery() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use foxrelay_shared::store::WebhookStore;
    let stack = foxrelay_tests::stack().await;
    let store = stack.resources.store(&stack.clients);
    // Five failures counted, the write opening the breaker lost: no
    // openUntil.
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.resources.table_name())
        .key("pk", AttributeValue::S("WEBHOOK#lost".into()))
        .key("sk", AttributeValue::S("BREAKER".into()))
        .update_expression("ADD failures :five")
        .expression_attribute_values(":five", AttributeValue::N("5".into()))
        .send()
        .await
        .unwrap();
    let breaker = store.breaker("lost").await.unwrap();
    assert_eq!(breaker.open_until_ms, 0);
    assert!(breaker.half_open(1_000));
    // One delivery claims it; the next, which read it as the first did,
    // does not.
    assert!(store.claim_probe("lost", 0, 50_000).await.unwrap());
    assert!(!store.claim_probe("lost", 0, 50_000).await.unwrap());
    assert_eq!(store.breaker("lost").await.unwrap().open_until_ms, 50_000);
    // A delivery that read it so, after a success closed it: nothing to
    // claim.
    store.close_breaker("lost").await.unwrap();
    assert!(!store.claim_probe("lost", 0, 60_000).await.unwrap());
    assert_eq!(store.breaker("lost").await.unwrap(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opens_once_however_many_failures_were_under_way_and_a_failed_probe_doubles_it() {
    use foxrelay_shared::domain::webhook::Breaker;
    use foxrelay_shared::store::WebhookStore;
    let stack = foxrelay_tests::stack().await;
    let store = stack.resources.store(&stack.clients);
    // Twelve requests under way fail together at t = 1 s.
    let mut failing = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let store = store.clone();
        failing.spawn(async move { store.record_failure("busy", 1_000).await });
    }
    while let Some(counted) = failing.join_next().await {
        counted.unwrap().unwrap();
    }
    let opened = store.breaker("busy").await.unwrap();
    assert_eq!(
        opened,
        Breaker {
            failures: 12,
            open_until_ms: 31_000,
            cool_off_ms: 30_000
        },
        "open for 30 s, not for 2^7 times that"
    );
    // Its probe, claimed once the cool-off passed, fails: a minute.
    assert!(store.claim_probe("busy", 31_000, 45_000).await.unwrap());
    let claimed = store.breaker("busy").await.unwrap();
    store
        .record_failed_probe("busy", 45_000, &claimed.after_failed_probe(40_000))
        .await
        .unwrap();
    let reopened = store.breaker("busy").await.unwrap();
    assert_eq!(
        (
            reopened.failures,
            reopened.open_until_ms,
            reopened.cool_off_ms
        ),
        (13, 100_000, 60_000)
    );
    // A success closes it; a failure counted afterwards starts again from
    // one and opens nothing.
    store.close_breaker("busy").await.unwrap();
    assert_eq!(store.record_failure("busy", 200_000).await.unwrap(), 1);
    assert!(store.breaker("busy").await.unwrap().allows(200_000));
}
