//! Callers kept apart: each order belongs to the principal that placed it
//! (the SigV4 caller's ARN, or a JWT's issuer and claim, as API Gateway's
//! authorizer puts them in the request context). Idempotency keys are scoped
//! by it, and nobody else can read the order or learn that it exists.

use aws_sdk_dynamodb::types::AttributeValue;
use create_order::Handler;
use create_order::create::CreateOptions;
use foxrelay_shared::domain::idempotency::{IdempotencyKey, fingerprint};
use foxrelay_shared::domain::parse_new_order;
use foxrelay_shared::store::{
    IdempotencyClaim, IdempotencyStore, OrderReader, OrderRecord, StoredResponse, SweepStore,
};
use foxrelay_tests::{
    Caller, Harness, body_of, call, drain_json, harness, http_event_as, subscribe_queue,
    test_caller, unique_prefix, with_wrong_api_key,
};
use foxreload_sim::{PRODUCT_FAST, SimConfig};
use serde_json::{Value, json};
use std::time::Duration;

const SHOP_SESSION_1: &str = "arn:aws:sts::123456789012:assumed-role/web-shop/task-1";
const SHOP_SESSION_2: &str = "arn:aws:sts::123456789012:assumed-role/web-shop/task-2";
const SUPPORT: &str = "arn:aws:iam::123456789012:user/support-tool";

fn partner(sub: &str) -> Caller<'static> {
    Caller::Jwt(json!({"iss": "https://auth.partner.example", "sub": sub, "aud": "foxrelay"}))
}

async fn setup() -> (Harness, Handler) {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    let handler = Handler::with_options(h.context.clone(), CreateOptions::default());
    (h, handler)
}

fn order_body() -> String {
    json!({"items": [{"productId": PRODUCT_FAST, "quantity": 1}], "customerReference": "cart-7"})
        .to_string()
}

async fn post_as(
    handler: &Handler,
    caller: &Caller<'_>,
    key: Option<&str>,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    let body = order_body();
    call(
        handler,
        http_event_as(caller, "POST", "/orders", &headers, Some(&body)),
    )
    .await
}

async fn get_as(
    handler: &Handler,
    caller: &Caller<'_>,
    order_id: &str,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let path = format!("/orders/{order_id}");
    call(handler, http_event_as(caller, "GET", &path, &[], None)).await
}

fn order_id(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> String {
    body_of(response)["orderId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_same_key_and_body_from_two_callers_are_two_orders_bought_twice() {
    let (h, handler) = setup().await;
    let callers = [
        Caller::Iam(SHOP_SESSION_1),
        Caller::Iam(SUPPORT),
        partner("client-a"),
        partner("client-b"),
    ];
    let mut orders = Vec::new();
    let mut supplier_orders = Vec::new();
    for caller in &callers {
        let response = post_as(&handler, caller, Some("cart-7-attempt-1")).await;
        assert_eq!(response.status_code, 202, "{:?}", response.body);
        assert!(!response.headers.contains_key("idempotent-replayed"));
        let body = body_of(&response);
        orders.push(order_id(&response));
        supplier_orders.push(body["supplierOrderId"].as_str().unwrap().to_owned());
    }
    orders.dedup();
    supplier_orders.sort();
    supplier_orders.dedup();
    assert_eq!((orders.len(), supplier_orders.len()), (4, 4));
    assert_eq!(h.sim.counters().orders_created, 4);

    // Another session of the web shop's role is the same caller: its retry
    // is a replay, marked as one, and buys nothing.
    let retry = post_as(
        &handler,
        &Caller::Iam(SHOP_SESSION_2),
        Some("cart-7-attempt-1"),
    )
    .await;
    assert_eq!(retry.status_code, 202);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(order_id(&retry), orders[0]);
    assert_eq!(h.sim.counters().orders_created, 4);

    // The order keeps who placed it.
    let store = h.context.store();
    let stored = store.order(&orders[2]).await.unwrap().unwrap();
    assert_eq!(
        stored.principal.unwrap().as_str(),
        "jwt|https://auth.partner.example|sub|client-a"
    );
    let stored = store.order(&orders[0]).await.unwrap().unwrap();
    assert_eq!(
        stored.principal.unwrap().as_str(),
        "arn:aws:iam::123456789012:role/web-shop"
    );
}

#[tokio::test]
async fn another_callers_order_is_not_found_exactly_like_an_unknown_one() {
    let (_h, handler) = setup().await;
    let placed = post_as(&handler, &partner("client-a"), Some("k-1")).await;
    let id = order_id(&placed);
    assert_eq!(
        get_as(&handler, &partner("client-a"), &id)
            .await
            .status_code,
        200
    );

    let unknown = get_as(
        &handler,
        &partner("client-a"),
        &uuid::Uuid::new_v4().to_string(),
    )
    .await;
    assert_eq!(unknown.status_code, 404);
    for stranger in [
        partner("client-b"),
        Caller::Jwt(json!({"iss": "https://other-issuer.example", "sub": "client-a"})),
        Caller::Iam(SUPPORT),
    ] {
        let read = get_as(&handler, &stranger, &id).await;
        assert_eq!(read.status_code, 404);
        assert_eq!(
            read.body, unknown.body,
            "the answer says nothing of the order"
        );
        assert!(!format!("{:?}", read.body).contains(&id));
    }
    // The same key from a stranger is its own request: never a 409/422
    // naming the other order.
    let theirs = post_as(&handler, &partner("client-b"), Some("k-1")).await;
    assert_eq!(theirs.status_code, 202);
    assert_ne!(order_id(&theirs), id);
}

#[tokio::test]
async fn a_request_without_a_caller_is_refused_and_changes_nothing() {
    let (h, handler) = setup().await;
    let nobody = post_as(&handler, &Caller::Nobody, Some("k-nobody")).await;
    assert_eq!(nobody.status_code, 401);
    assert_eq!(body_of(&nobody)["error"]["code"], "unauthenticated");
    // A token without the claim that names the caller.
    let no_sub = post_as(
        &handler,
        &Caller::Jwt(json!({"iss": "https://auth.partner.example"})),
        None,
    )
    .await;
    assert_eq!(no_sub.status_code, 401);
    assert!(
        body_of(&no_sub)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sub")
    );
    assert_eq!(h.sim.counters().orders_created, 0);
    assert!(
        h.context
            .store()
            .pending(10, None)
            .await
            .unwrap()
            .orders
            .is_empty()
    );
}

#[tokio::test]
async fn a_stack_can_name_the_caller_by_another_claim_and_require_keys() {
    let h = harness(SimConfig::default(), Duration::from_secs(2)).await;
    let mut context = h.context.clone();
    context.settings.api.principal_claim = "client_id".into();
    context.settings.api.require_idempotency_key = true;
    let handler = Handler::with_options(context, CreateOptions::default());
    let token = |client: &str| {
        Caller::Jwt(
            json!({"iss": "https://cognito.example", "sub": "same-sub", "client_id": client}),
        )
    };
    let missing = post_as(&handler, &token("shop"), None).await;
    assert_eq!(missing.status_code, 400);
    let error = body_of(&missing)["error"].clone();
    assert_eq!(error["code"], "idempotency_key_required");
    assert_eq!(error["field"], "Idempotency-Key");
    assert_eq!(h.sim.counters().orders_created, 0);

    // `sub` is the same; `client_id` tells the two apart.
    let a = post_as(&handler, &token("shop"), Some("k")).await;
    let b = post_as(&handler, &token("partner"), Some("k")).await;
    assert_eq!((a.status_code, b.status_code), (202, 202));
    assert_ne!(order_id(&a), order_id(&b));
    let read = get_as(&handler, &token("partner"), &order_id(&a)).await;
    assert_eq!(read.status_code, 404);
}

#[tokio::test]
async fn a_key_stored_before_keys_were_scoped_is_still_answered_and_buys_nothing() {
    let (h, handler) = setup().await;
    // What an earlier version stored: the bare key, a finished answer.
    let store = h.context.store();
    let order = parse_new_order(order_body().as_bytes()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut intent = OrderRecord::intent(
        "3f1b2c4d-0000-4000-8000-00000000aaaa".into(),
        &order,
        Some("legacy-key".into()),
        test_caller(),
        now - time::Duration::minutes(5),
    );
    intent.principal = None;
    let claim = IdempotencyClaim {
        key: "legacy-key".into(),
        fingerprint: fingerprint(&order),
        holder: "old".into(),
        locked_until: now - time::Duration::minutes(4),
        expires_at: now + time::Duration::hours(20),
    };
    store.begin(&intent, Some(&claim)).await.unwrap();
    let answer = create_order::view::order_json(&intent).to_string();
    store
        .finish(
            "legacy-key",
            "old",
            &StoredResponse {
                status: 202,
                body: answer.clone(),
            },
        )
        .await
        .unwrap();

    let replay = post_as(&handler, &Caller::Iam(SHOP_SESSION_1), Some("legacy-key")).await;
    assert_eq!(replay.status_code, 202);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(
        body_of(&replay),
        serde_json::from_str::<Value>(&answer).unwrap()
    );
    assert_eq!(h.sim.counters().orders_created, 0);
    // Keys are scoped from now on: a new key is the caller's own.
    let key = IdempotencyKey::parse("fresh-key").unwrap();
    let fresh = post_as(&handler, &Caller::Iam(SHOP_SESSION_1), Some(key.as_str())).await;
    assert_eq!(fresh.status_code, 202);
    let scoped = key.scoped(&foxrelay_shared::domain::Principal::iam(SHOP_SESSION_1).unwrap());
    assert!(store.idempotency(&scoped).await.unwrap().is_some());
    assert!(store.idempotency("fresh-key").await.unwrap().is_none());

    // The old order has no caller on record: its client (whoever it is now)
    // can still read it, and the codes an earlier version stored beside it.
    let id = intent.order_id.clone();
    let table = h.stack.resources.table_name();
    let dynamodb = &h.stack.clients.dynamodb;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());
    dynamodb
        .update_item()
        .table_name(table)
        .key("pk", s(&format!("ORDER#{id}")))
        .key("sk", s("ORDER"))
        .update_expression(
            "SET #status = :done, codeCount = :two, terminalAt = :at REMOVE pendingPk, pendingSk",
        )
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":done", s("completed"))
        .expression_attribute_values(":two", n(2))
        .expression_attribute_values(":at", n(1))
        .send()
        .await
        .unwrap();
    // Position 0 beside the order (the old layout); position 0 again with
    // another code, and position 1, in the new partition: a code is never
    // hidden by another at its position.
    for (pk, index, code) in [
        (format!("ORDER#{id}"), 0, "OLD-LAYOUT-0"),
        (format!("CODES#{id}"), 0, "NEW-LAYOUT-0"),
        (format!("CODES#{id}"), 1, "NEW-LAYOUT-1"),
    ] {
        dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(&pk))
            .item("sk", s(&format!("CODE#{index:06}")))
            .item("orderId", s(&id))
            .item("codeIndex", n(index))
            .item("itemIndex", n(0))
            .item("productId", s(PRODUCT_FAST))
            .item("code", s(code))
            .item("kind", s("code"))
            .send()
            .await
            .unwrap();
    }
    // Codes an earlier version stored are in clear: read while upgrading.
    let mut upgrading = h.context.clone();
    upgrading.settings.read_codes_in_clear = true;
    let reader = Handler::with_options(upgrading, CreateOptions::default());
    for caller in [Caller::Iam(SHOP_SESSION_1), partner("client-z")] {
        let read = get_as(&reader, &caller, &id).await;
        assert_eq!(read.status_code, 200);
        let codes: Vec<String> = body_of(&read)["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes, ["NEW-LAYOUT-0", "OLD-LAYOUT-0", "NEW-LAYOUT-1"]);
    }
}

#[tokio::test]
async fn another_callers_scoped_key_sent_as_a_key_is_just_a_key() {
    let (h, handler) = setup().await;
    let shop = Caller::Iam(SHOP_SESSION_1);
    let placed = post_as(&handler, &shop, Some("k-7")).await;
    assert_eq!(placed.status_code, 202);
    // What the shop's key is stored as, sent by another caller: not the
    // shop's key, not an old unscoped key, just this caller's own new key.
    let shop_principal = foxrelay_shared::domain::Principal::iam(SHOP_SESSION_1).unwrap();
    let stored_as = IdempotencyKey::parse("k-7")
        .unwrap()
        .scoped(&shop_principal);
    let theirs = post_as(&handler, &partner("client-b"), Some(&stored_as)).await;
    assert_eq!(theirs.status_code, 202, "{:?}", theirs.body);
    assert!(!theirs.headers.contains_key("idempotent-replayed"));
    assert_ne!(order_id(&theirs), order_id(&placed));
    assert_eq!(h.sim.counters().orders_created, 2);
}

#[tokio::test]
async fn a_refused_api_key_is_a_502_that_frees_the_key_and_alerts_operations_once() {
    let (h, _) = setup().await;
    let alerts = subscribe_queue(
        &h.stack.clients,
        h.stack.resources.ops_alerts_topic_arn(),
        &format!("{}-key-alerts", unique_prefix()),
    )
    .await;
    let handler = Handler::with_options(with_wrong_api_key(&h.context), CreateOptions::default());
    for key in ["k-1", "k-2", "k-1"] {
        let response = post_as(&handler, &Caller::Iam(SUPPORT), Some(key)).await;
        assert_eq!(response.status_code, 502);
        let error = body_of(&response)["error"].clone();
        assert_eq!(error["code"], "supplier_configuration");
        // The key was freed: the retry of k-1 ran again, not a replay.
        assert!(!response.headers.contains_key("idempotent-replayed"));
        assert!(!format!("{:?}", response.body).contains("not-the-key"));
    }
    assert_eq!(h.sim.counters().orders_created, 0);
    let mut received = Vec::new();
    for _ in 0..5 {
        received.extend(drain_json(&h.stack.clients, &alerts).await);
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    received.extend(drain_json(&h.stack.clients, &alerts).await);
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["kind"], "foxreload_key_refused");
    assert!(!received[0].to_string().contains("not-the-key"));
}
