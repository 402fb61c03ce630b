//! create-order's handler through moto and the simulator over real HTTP.

use create_order::Handler;
use create_order::create::CreateOptions;
use foxrelay_tests::{
    Harness, body_of, call, counter_lines, harness, http_event, metric_totals, post_order as post,
    test_caller, with_foxreload_down,
};
use foxreload_sim::{
    PRODUCT_FAST, PRODUCT_PLAYER, PRODUCT_POOR, PRODUCT_STALL_CREATE, SimConfig, Timing,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn options() -> CreateOptions {
    let mut options = CreateOptions {
        first_poll_delay: Duration::from_secs(2),
        ..CreateOptions::default()
    };
    options.reconcile.recheck_delay = Duration::from_millis(200);
    options.reconcile.call_budget = Duration::from_secs(2);
    options
}

fn sim_config(create_stall: Duration) -> SimConfig {
    SimConfig {
        timing: Timing {
            create_stall,
            ..Timing::default()
        },
        ..SimConfig::default()
    }
}

async fn setup() -> (Harness, Handler) {
    let h = harness(sim_config(Duration::from_secs(3)), Duration::from_secs(1)).await;
    let handler = Handler::with_options(h.context.clone(), options());
    (h, handler)
}

fn order_of(product: &str, quantity: u32) -> String {
    json!({"items": [{"productId": product, "quantity": quantity}], "customerReference": "cart-1"})
        .to_string()
}

async fn table_items(
    h: &Harness,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    h.stack
        .clients
        .dynamodb
        .scan()
        .table_name(h.stack.resources.table_name())
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec()
}

async fn poll_messages(h: &Harness, wait: i32) -> Vec<Value> {
    let got = h
        .stack
        .clients
        .sqs
        .receive_message()
        .queue_url(h.stack.resources.poll_queue_url())
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .send()
        .await
        .unwrap();
    got.messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn order_is_stored_bought_once_paid_and_its_first_poll_waits_for_its_delay() {
    let (h, handler) = setup().await;
    let sent = Instant::now();
    let response = post(&handler, &order_of(PRODUCT_FAST, 2), None).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let body = body_of(&response);
    let order_id = body["orderId"].as_str().unwrap().to_owned();
    assert_eq!(
        response.headers["location"].to_str().unwrap(),
        format!("/orders/{order_id}")
    );
    assert_eq!(body["status"], "paid");
    assert_eq!(body["customerReference"], "cart-1");
    assert_eq!(body["items"][0]["productId"], PRODUCT_FAST);
    let supplier_id = body["supplierOrderId"].as_str().unwrap();

    let counters = h.sim.counters();
    assert_eq!(counters.orders_created, 1);
    assert_eq!(counters.pays_by_order[supplier_id], 1);

    let read = call(
        &handler,
        http_event("GET", &format!("/orders/{order_id}"), &[], None),
    )
    .await;
    assert_eq!(read.status_code, 200);
    assert_eq!(body_of(&read)["supplierOrderId"], supplier_id);

    // A product never seen: a warm-up plan, whose first time is a probe
    // inside the default's first gap, jittered up to a fifth earlier.
    use foxrelay_shared::store::OrderReader;
    let stored = h.context.store().order(&order_id).await.unwrap().unwrap();
    let first = stored.poll_plan.expect("a warm-up plan").plan.polls[0];
    let earliest = Duration::from_secs(u64::from(first - first / 5));
    let mut messages = Vec::new();
    while messages.is_empty() && sent.elapsed() < Duration::from_secs(15) {
        messages = poll_messages(&h, 1).await;
        if messages.is_empty() {
            continue;
        }
        // Whole seconds: the delay is at most a second short of the figure.
        assert!(
            sent.elapsed() + Duration::from_secs(1) >= earliest,
            "visible after {:?}, planned at {first} s",
            sent.elapsed()
        );
    }
    assert_eq!(
        messages,
        vec![json!({"orderId": order_id, "seq": 1, "kind": "poll"})]
    );
}

/// A request that must be refused, and how.
struct Bad {
    method: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: String,
    status: u16,
    field: Option<&'static str>,
}

fn bad(
    method: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: impl Into<String>,
    status: u16,
    field: Option<&'static str>,
) -> Bad {
    Bad {
        method,
        headers,
        body: body.into(),
        status,
        field,
    }
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const LONG_KEY: &str = concat!(
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
);

#[tokio::test]
async fn malformed_requests_are_refused_naming_the_field_and_change_nothing() {
    let (h, handler) = setup().await;
    let cases = vec![
        bad("POST", JSON, "{", 400, None),
        bad("POST", JSON, "[]", 400, None),
        bad("POST", JSON, "{}", 400, Some("items")),
        bad("POST", JSON, r#"{"items": []}"#, 400, Some("items")),
        bad("POST", JSON, r#"{"items": "p"}"#, 400, Some("items")),
        bad("POST", JSON, r#"{"items": [null]}"#, 400, Some("items[0]")),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"quantity": 1}]}"#,
            400,
            Some("items[0].productId"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p/../x", "quantity": 1}]}"#,
            400,
            Some("items[0].productId"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 0}]}"#,
            400,
            Some("items[0].quantity"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 99999}]}"#,
            400,
            Some("items[0].quantity"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": "2"}]}"#,
            400,
            Some("items[0].quantity"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1, "note": []}]}"#,
            400,
            Some("items[0].note"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1, "note": {"x": {}}}]}"#,
            400,
            Some("items[0].note.x"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1, "itemId": "p"}]}"#,
            400,
            Some("items[0].itemId"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1}], "totalPrice": 3}"#,
            400,
            Some("totalPrice"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1}], "totalPrice": "-3"}"#,
            400,
            Some("totalPrice"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1}], "customerReference": 12}"#,
            400,
            Some("customerReference"),
        ),
        bad(
            "POST",
            JSON,
            format!(
                r#"{{"items": [{{"productId": "p", "quantity": 1}}], "customerReference": "{}"}}"#,
                "r".repeat(200)
            ),
            400,
            Some("customerReference"),
        ),
        bad(
            "POST",
            JSON,
            r#"{"items": [{"productId": "p", "quantity": 1}], "isMock": false}"#,
            400,
            Some("isMock"),
        ),
        bad(
            "POST",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", ""),
            ],
            order_of(PRODUCT_FAST, 1),
            400,
            Some("Idempotency-Key"),
        ),
        bad(
            "POST",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", LONG_KEY),
            ],
            order_of(PRODUCT_FAST, 1),
            400,
            Some("Idempotency-Key"),
        ),
        bad(
            "POST",
            &[("content-type", "text/plain")],
            order_of(PRODUCT_FAST, 1),
            415,
            None,
        ),
        bad("POST", &[], order_of(PRODUCT_FAST, 1), 415, None),
        bad(
            "POST",
            JSON,
            format!(
                r#"{{"items": [{{"productId": "p", "quantity": 1, "note": {{"a": "{}"}}}}]}}"#,
                "x".repeat(70_000)
            ),
            413,
            None,
        ),
        bad("DELETE", JSON, order_of(PRODUCT_FAST, 1), 405, None),
        bad("PUT", JSON, order_of(PRODUCT_FAST, 1), 405, None),
        bad("GET", &[], String::new(), 404, None),
    ];
    assert!(cases.len() >= 20);
    for case in &cases {
        let path = if case.status == 404 {
            "/orders/does-not-exist"
        } else {
            "/orders"
        };
        let response = call(
            &handler,
            http_event(case.method, path, case.headers, Some(&case.body)),
        )
        .await;
        let shown = format!("{} {:.80}", case.method, case.body);
        assert_eq!(response.status_code, i64::from(case.status), "{shown}");
        let error = &body_of(&response)["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{error}"
        );
        assert_eq!(error["field"].as_str(), case.field, "{shown}");
    }
    assert!(table_items(&h).await.is_empty(), "nothing written");
    assert_eq!(
        h.sim.counters().orders_created,
        0,
        "nothing sent to FoxReload"
    );
}

#[tokio::test]
async fn replay_with_the_same_key_gives_the_same_answer_and_buys_once() {
    let (h, handler) = setup().await;
    let body = order_of(PRODUCT_FAST, 1);
    let first = post(&handler, &body, Some("replay-1")).await;
    assert_eq!(first.status_code, 202);
    // The same request with other spacing is the same request.
    let respaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let second = post(&handler, &respaced, Some("replay-1")).await;
    assert_eq!(second.status_code, 202);
    assert_eq!(first.body, second.body);
    assert_eq!(first.headers["location"], second.headers["location"]);
    assert_eq!(h.sim.counters().orders_created, 1);

    let other = post(&handler, &order_of(PRODUCT_FAST, 2), Some("replay-1")).await;
    assert_eq!(other.status_code, 422);
    assert_eq!(body_of(&other)["error"]["code"], "idempotency_key_reused");
    assert_eq!(h.sim.counters().orders_created, 1);

    // One order created, whatever the replays: one flush per request.
    let lines = handler.metrics().lines();
    assert_eq!(counter_lines(&lines), 3);
    assert_eq!(metric_totals(&lines)["OrdersCreated"], 1);
}

#[tokio::test]
async fn same_key_while_the_first_request_is_in_flight_is_a_409() {
    let (h, handler) = setup().await;
    let body = order_of(PRODUCT_STALL_CREATE, 1);
    let (first, second) = tokio::join!(post(&handler, &body, Some("busy-1")), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(&handler, &body, Some("busy-1")).await
    });
    assert_eq!(second.status_code, 409, "{:?}", second.body);
    let error = body_of(&second)["error"].clone();
    assert_eq!(error["code"], "request_in_progress");
    assert!(error.get("orderId").is_none(), "{error}");
    // The key's lock has about a minute left: retry within it.
    let wait: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    assert_eq!(h.sim.counters().orders_created, 1);
}

#[tokio::test]
async fn payment_refusal_is_stored_returned_and_the_order_is_still_polled() {
    let (h, handler) = setup().await;
    let response = post(&handler, &order_of(PRODUCT_POOR, 1), None).await;
    assert_eq!(response.status_code, 202);
    let body = body_of(&response);
    assert_eq!(body["status"], "active");
    assert_eq!(body["paymentError"]["code"], "BALANCE_NOT_ENOUGH");
    let mut messages = Vec::new();
    // Its first poll: a warm-up probe, within the default's first 10 s.
    for _ in 0..12 {
        messages = poll_messages(&h, 1).await;
        if !messages.is_empty() {
            break;
        }
    }
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["orderId"], body["orderId"]);
}

/// A request FoxReload refuses, what it answers, and FoxReload's code.
struct Refusal {
    body: Value,
    status: u16,
    code: &'static str,
    supplier_code: &'static str,
}

fn refusals() -> Vec<Refusal> {
    let mut all = Vec::new();
    let refused = |body: Value, supplier_code| Refusal {
        body,
        status: 422,
        code: "supplier_refused",
        supplier_code,
    };
    for n in 0..5 {
        // Products FoxReload does not sell.
        all.push(refused(
            json!({"items": [{"productId": format!("product_gone_{n}"), "quantity": 1}]}),
            "NOT_FOUND",
        ));
    }
    for n in 0..4 {
        // The note the product requires is missing.
        all.push(refused(
            json!({"items": [{"productId": PRODUCT_PLAYER, "quantity": 1 + n}]}),
            "VALIDATION_ERROR",
        ));
    }
    for (n, note) in [
        json!({"player_id": " "}),
        json!({"Player_ID": "123"}),
        json!({"server": "eu"}),
    ]
    .into_iter()
    .enumerate()
    {
        // Present, but blank or the wrong field.
        all.push(refused(
            json!({"items": [{"productId": PRODUCT_PLAYER, "quantity": 1, "note": note}], "customerReference": format!("n{n}")}),
            "VALIDATION_ERROR",
        ));
    }
    for quantity in [101, 150, 500, 1000] {
        // Within our limit, outside the product's (1 to 100).
        all.push(refused(
            json!({"items": [{"productId": PRODUCT_FAST, "quantity": quantity}]}),
            "VALIDATION_ERROR",
        ));
    }
    for (quantity, price) in [(1, "0.01"), (2, "999.99"), (3, "12"), (1, "4.99")] {
        all.push(Refusal {
            body: json!({"items": [{"productId": PRODUCT_FAST, "quantity": quantity}], "totalPrice": price}),
            status: 409,
            code: "price_changed",
            supplier_code: "OFFER_PRICE_NOT_MATCHED",
        });
    }
    all
}

#[tokio::test]
async fn twenty_foxreload_refusals_are_the_callers_422_or_409_and_buy_nothing() {
    let (h, handler) = setup().await;
    let cases = refusals();
    assert_eq!(cases.len(), 20);
    for (n, case) in cases.iter().enumerate() {
        let key = format!("refused-{n}");
        let body = case.body.to_string();
        let response = post(&handler, &body, Some(&key)).await;
        let error = body_of(&response)["error"].clone();
        assert_eq!(
            (response.status_code as u16, error["code"].as_str()),
            (case.status, Some(case.code)),
            "{body}: {error}"
        );
        assert_eq!(error["supplierCode"], case.supplier_code, "{body}: {error}");
        assert!(error["supplierDetail"].is_string(), "{error}");
        assert!(!response.headers.contains_key("idempotent-replayed"));
        if case.status == 409 {
            // The simulator says its price: passed on as plain money.
            let current = error["currentPrice"].as_str().unwrap();
            assert!(
                current.split_once('.').is_some_and(|(_, c)| c.len() == 2),
                "{error}"
            );
            assert!(error["message"].as_str().unwrap().contains(current));
        }
        // Never the API key, in any answer.
        assert!(!response_text(&response).contains(h.sim.api_key()));
        // The order is the caller's own, and ended without being placed.
        let order_id = error["orderId"].as_str().unwrap();
        let read = call(
            &handler,
            http_event("GET", &format!("/orders/{order_id}"), &[], None),
        )
        .await;
        assert_eq!(body_of(&read)["status"], "not_placed");
        // The same request gets the same answer, marked as a replay.
        let again = post(&handler, &body, Some(&key)).await;
        assert_eq!(again.status_code, response.status_code);
        assert_eq!(again.body, response.body);
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    let counters = h.sim.counters();
    assert_eq!(counters.orders_created, 0, "{counters:?}");
    assert!(counters.pays_by_order.is_empty());
    assert!(poll_messages(&h, 0).await.is_empty());
    let totals = metric_totals(&handler.metrics().lines());
    assert_eq!(
        (totals["OrdersCreated"], totals["SupplierErrors/rejected"]),
        (0, 20),
        "{totals:?}"
    );
    // The caller's faults: no 5xx counted against FoxReload; each call timed.
    assert_eq!(totals["SupplierErrorResponses"], 0, "{totals:?}");
    assert_eq!(totals["SupplierLatency/create_order"], 20, "{totals:?}");
}

fn response_text(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> String {
    format!("{:?} {:?}", response.headers, response.body)
}

#[tokio::test]
async fn foxreload_unreachable_is_a_503_that_frees_the_key_for_a_retry() {
    let h = harness(sim_config(Duration::from_secs(3)), Duration::from_secs(1)).await;
    let context = with_foxreload_down(&h.context);
    let handler = Handler::with_options(context, options());
    let first = post(&handler, &order_of(PRODUCT_FAST, 1), Some("down-1")).await;
    assert_eq!(first.status_code, 503);
    assert_eq!(body_of(&first)["error"]["code"], "supplier_unavailable");
    assert_eq!(first.headers["retry-after"], "2");
    let second = post(&handler, &order_of(PRODUCT_FAST, 1), Some("down-1")).await;
    assert_eq!(
        second.status_code, 503,
        "the key was freed, so the retry ran again"
    );
    assert_ne!(
        body_of(&first)["error"]["orderId"],
        body_of(&second)["error"]["orderId"]
    );
}

#[tokio::test]
async fn fifty_creates_that_commit_then_stall_buy_exactly_fifty_orders() {
    let h = harness(
        sim_config(Duration::from_secs(2)),
        Duration::from_millis(400),
    )
    .await;
    let handler = std::sync::Arc::new(Handler::with_options(h.context.clone(), options()));
    let body = order_of(PRODUCT_STALL_CREATE, 1);
    let mut answers = Vec::new();
    for wave in 0..10 {
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (handler, body) = (handler.clone(), body.clone());
            let key = format!("stall-{wave}-{i}");
            tasks.push(tokio::spawn(async move {
                post(&handler, &body, Some(&key)).await
            }));
        }
        for task in tasks {
            answers.push(task.await.unwrap());
        }
    }
    let mut ours = BTreeSet::new();
    let mut theirs = BTreeSet::new();
    for answer in &answers {
        assert_eq!(answer.status_code, 202, "{:?}", answer.body);
        let body = body_of(answer);
        ours.insert(body["orderId"].as_str().unwrap().to_owned());
        let claimed = body["supplierOrderId"].as_str();
        theirs.insert(
            claimed
                .unwrap_or_else(|| panic!("unclaimed: {body}"))
                .to_owned(),
        );
    }
    assert_eq!(ours.len(), 50);
    assert_eq!(
        theirs.len(),
        50,
        "each supplier order claimed by exactly one of ours"
    );
    let counters = h.sim.counters();
    assert_eq!(counters.orders_created, 50, "exactly fifty supplier orders");
    assert!(counters.list_calls >= 50, "every create was reconciled");
    let claims = table_items(&h)
        .await
        .into_iter()
        .filter(|item| item["sk"].as_s().unwrap() == "CLAIM")
        .count();
    assert_eq!(claims, 50);
}

#[tokio::test]
async fn a_dead_holders_key_is_taken_over_and_its_order_reconciled_not_bought_again() {
    use foxrelay_shared::domain::idempotency::{IdempotencyKey, fingerprint};
    use foxrelay_shared::domain::parse_new_order;
    use foxrelay_shared::store::{IdempotencyClaim, IdempotencyStore, OrderRecord};

    let (h, handler) = setup().await;
    let body = order_of(PRODUCT_FAST, 1);
    let order = parse_new_order(body.as_bytes()).unwrap();
    let key = IdempotencyKey::parse("dead-holder-1").unwrap();
    // A request that stored its intent, POSTed, and died before claiming:
    // its lock ran out a minute ago.
    let store = h.stack.resources.store(&h.stack.clients);
    let now = time::OffsetDateTime::now_utc();
    let intent = OrderRecord::intent(
        "dead-order-1".into(),
        &order,
        Some(key.scoped(&test_caller())),
        test_caller(),
        now,
    );
    let claim = IdempotencyClaim {
        key: key.scoped(&test_caller()),
        fingerprint: fingerprint(&order),
        holder: "dead-holder".into(),
        locked_until: now - time::Duration::minutes(1),
        expires_at: now + time::Duration::hours(24),
    };
    store.begin(&intent, Some(&claim)).await.unwrap();
    let orphan = h
        .context
        .foxreload
        .as_ref()
        .unwrap()
        .create_order(&order.supplier_request(false))
        .await
        .unwrap();

    let response = post(&handler, &body, Some(key.as_str())).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let answer = body_of(&response);
    assert_eq!(answer["orderId"], "dead-order-1");
    assert_eq!(answer["supplierOrderId"], orphan.id.as_str());
    assert_eq!(h.sim.counters().orders_created, 1, "nothing bought again");
}

#[tokio::test]
async fn undecided_within_the_budget_answers_reconciling_and_leaves_a_reconcile_message() {
    let h = harness(
        sim_config(Duration::from_secs(3)),
        Duration::from_millis(400),
    )
    .await;
    let handler = Handler::with_options(h.context.clone(), options());
    let body = order_of(PRODUCT_STALL_CREATE, 1);
    let mut event = http_event(
        "POST",
        "/orders",
        &[("content-type", "application/json")],
        Some(&body),
    );
    // Lambda's deadline leaves room for the POST (3 s, even on a loaded
    // machine) but not for reconciling after it (its 0.4 s timeout, the
    // window's 2.8 s more, and 2 s per call).
    event.context.deadline = (std::time::SystemTime::now() + Duration::from_millis(5_000))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let response = call(&handler, event).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let answer = body_of(&response);
    assert_eq!(answer["status"], "reconciling");
    assert_eq!(answer["supplierOrderId"], Value::Null);
    assert_eq!(answer["lastError"]["kind"], "undecided");
    assert_eq!(
        h.sim.counters().orders_created,
        1,
        "one POST, and no second"
    );
    let mut messages = Vec::new();
    for _ in 0..6 {
        messages = poll_messages(&h, 1).await;
        if !messages.is_empty() {
            break;
        }
    }
    assert_eq!(
        messages,
        vec![json!({"orderId": answer["orderId"], "seq": 1, "kind": "reconcile"})]
    );
}
