//! Each function's code calls exactly the AWS actions its role grants, on
//! exactly its resources: the handlers run through moto behind a recording
//! proxy, over the paths that reach every call (create, replay, a supplier
//! outage that frees the key, an ambiguous create reconciled, reading a
//! finished order; polling through failed reads to a completion, to a
//! failure, to a completion of more than 99 codes, and reconciling an order
//! left undecided; a sweep that alerts, revives, republishes and hands a
//! dead create with a lapsed key to reconciliation, and poll-order in
//! another container publishing the end it handed over; webhooks delivered to a
//! healthy endpoint, and tried again then dead-lettered for a down one),
//! and what they called is compared with `foxrelay_tests::grants`, the table
//! the template test holds every role to.

use aws_lambda_events::encodings::Body;
use foxrelay_recorder::CountingProxy;
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::domain::{PollKind, PollMessage};
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::settings::ApiKeySource;
use foxrelay_shared::startup::Context;
use foxrelay_shared::store::{IdempotencyClaim, OrderRecord};
use foxrelay_shared::store::{IdempotencyStore, PlacementStore};
use foxrelay_tests::grants::{self, Calls};
use foxrelay_tests::world::{poll_options, quick_timing, world};
use foxrelay_tests::{
    call, http_event, moto, pending_order, test_caller, unnotified_completion, with_foxreload_down,
    with_wrong_api_key,
};
use foxreload_sim::{PRODUCT_5XX, PRODUCT_FAIL, PRODUCT_FAST, PRODUCT_MANY, PRODUCT_STALL_CREATE};
use scan_stalled::sweep::SweepOptions;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

async fn post(handler: &create_order::Handler, product: &str, key: &str) -> (u16, Value) {
    post_n(handler, product, 1, key).await
}

async fn post_n(
    handler: &create_order::Handler,
    product: &str,
    quantity: u32,
    key: &str,
) -> (u16, Value) {
    let body = json!({"items": [{"productId": product, "quantity": quantity}]}).to_string();
    let response = call(
        handler,
        http_event(
            "POST",
            "/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            Some(&body),
        ),
    )
    .await;
    let Some(Body::Text(text)) = response.body else {
        panic!("no body")
    };
    (
        response.status_code as u16,
        serde_json::from_str(&text).unwrap(),
    )
}

/// The recorded (action, resource) pairs, resources named by logical id.
fn logical(recorded: &BTreeSet<(String, String)>, names: &BTreeMap<String, &'static str>) -> Calls {
    recorded
        .iter()
        .map(|(action, resource)| {
            let Some(logical) = names.get(resource) else {
                panic!("{action} on {resource:?}, which is none of the stack's resources")
            };
            (grants::code_calls_action(action), *logical)
        })
        .collect()
}

#[test]
fn each_function_calls_exactly_what_its_role_grants() {
    // The three handlers' futures, in one task of a debug build, pass the
    // test thread's 2 MiB of stack (release builds' are far smaller).
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(calls_exactly_what_roles_grant());
        })
        .expect("a test thread")
        .join()
        .expect("the calls are what the roles grant");
}

async fn calls_exactly_what_roles_grant() {
    let w = world(quick_timing()).await;
    let proxy = CountingProxy::start(&moto().endpoint_url()).await.unwrap();
    let clients = AwsClients::new(&load_local(&LocalAws::new(proxy.url().to_owned())).await);
    let context = Context::build(w.h.context.settings.clone(), clients)
        .await
        .unwrap();
    let resources = &w.h.stack.resources;
    let table = resources.table_name().to_owned();
    let mut names: BTreeMap<String, &'static str> = BTreeMap::from([
        (table.clone(), grants::ORDERS_TABLE),
        (
            format!("{table}/index/pending-orders"),
            grants::PENDING_INDEX,
        ),
        (resources.poll_queue_url().to_owned(), grants::POLL_QUEUE),
        (
            resources.order_events_topic_arn().to_owned(),
            grants::ORDER_EVENTS_TOPIC,
        ),
        (
            resources.ops_alerts_topic_arn().to_owned(),
            grants::OPS_ALERTS_TOPIC,
        ),
        (resources.arns["StackKey"].clone(), grants::STACK_KEY),
        (
            resources.get("WebhookQueue").unwrap().to_owned(),
            grants::WEBHOOK_QUEUE,
        ),
        (
            resources.get("WebhookDeadLetterQueue").unwrap().to_owned(),
            grants::WEBHOOK_DEAD_LETTER_QUEUE,
        ),
    ]);
    proxy.take();

    // create-order: new orders, a replay, and an outage that frees the key.
    let create = create_order::Handler::with_options(
        context.clone(),
        create_order::create::CreateOptions {
            first_poll_delay: Duration::from_secs(1),
            ..Default::default()
        },
    );
    // Its first reads fail (5xx), so its chain goes on for a few links.
    let (status, fast) = post(&create, PRODUCT_5XX, "iam-5xx").await;
    assert_eq!(status, 202, "{fast}");
    assert_eq!(
        post(&create, PRODUCT_5XX, "iam-5xx").await,
        (202, fast.clone())
    );
    let (status, failed) = post(&create, PRODUCT_FAIL, "iam-fail").await;
    assert_eq!(status, 202, "{failed}");
    // 100 codes: persisted in two transactions.
    let (status, many) = post_n(&create, PRODUCT_MANY, 2, "iam-many").await;
    assert_eq!(status, 202, "{many}");
    let outage =
        create_order::Handler::with_options(with_foxreload_down(&context), Default::default());
    assert_eq!(post(&outage, PRODUCT_FAST, "iam-down").await.0, 503);
    // FoxReload refuses the API key: operations are alerted.
    let refused =
        create_order::Handler::with_options(with_wrong_api_key(&context), Default::default());
    assert_eq!(post(&refused, PRODUCT_FAST, "iam-key").await.0, 502);
    // The create's answer is lost: reconciled onto the order it made.
    let (status, stalled) = post(&create, PRODUCT_STALL_CREATE, "iam-stall").await;
    assert_eq!(status, 202, "{stalled}");
    assert!(stalled["supplierOrderId"].is_string(), "{stalled}");
    let mut create_calls = proxy.take();

    // An order create-order left undecided; the FoxReload order it made
    // shows in the list.
    let now = time::OffsetDateTime::now_utc();
    let new = foxrelay_shared::domain::parse_new_order(
        json!({"items": [{"productId": PRODUCT_FAST, "quantity": 1}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let undecided = OrderRecord::intent("iam-undecided".into(), &new, None, test_caller(), now);
    w.store.begin(&undecided, None).await.unwrap();
    w.h.sim
        .place_foreign(&json!({"items": [{"itemId": PRODUCT_FAST, "quantity": 1}]}))
        .unwrap();
    w.store
        .mark_reconciling(
            "iam-undecided",
            1,
            &foxrelay_shared::placement::undecided("test"),
            now,
        )
        .await
        .unwrap();
    w.store
        .schedule_poll("iam-undecided", 1, now, now)
        .await
        .unwrap();
    context
        .poll_queue()
        .send(
            &PollMessage {
                order_id: "iam-undecided".into(),
                seq: 1,
                kind: PollKind::Reconcile,
            },
            Duration::ZERO,
        )
        .await
        .unwrap();
    proxy.take();

    // poll-order: the orders polled to their end.
    let mut ids: Vec<String> = [&fast, &failed, &many]
        .iter()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    ids.push("iam-undecided".into());
    let poll = poll_order::Handler::with_options(context.clone(), poll_options());
    let events = w.run_until_notified(&poll, &w.source(1, false), &ids).await;
    assert!(ids.iter().all(|id| events.contains_key(id)), "{events:?}");
    let mut poll_calls = proxy.take();

    // create-order again, in another container (its own sealer): a
    // finished order is read with its codes, opened with the key KMS
    // unwraps.
    let reader = create_order::Handler::with_options(
        Context::build(context.settings.clone(), context.aws.clone())
            .await
            .unwrap(),
        Default::default(),
    );
    let read = call(
        &reader,
        http_event("GET", &format!("/orders/{}", ids[0]), &[], None),
    )
    .await;
    assert_eq!(read.status_code, 200);
    create_calls.merge(proxy.take());

    // deliver-webhook, in its own container: the finished orders' events
    // to a healthy endpoint, and to a down one, tried again, then
    // dead-lettered.
    let secrets_prefix = format!("{}/webhooks/", uuid::Uuid::new_v4().simple());
    for id in ["shop", "down"] {
        let name = format!("{secrets_prefix}{id}");
        w.h.context
            .aws
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(foxrelay_shared::webhook::new_secret())
            .send()
            .await
            .unwrap();
        names.insert(name, grants::WEBHOOK_SECRETS);
    }
    let healthy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let healthy_port = healthy.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = healthy.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 1 << 16];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let down_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut hook_settings = context.settings.clone();
    hook_settings.foxreload.api_key = ApiKeySource::NotGiven;
    hook_settings.webhooks = foxrelay_shared::settings::WebhookSettings {
        endpoints: foxrelay_shared::domain::webhook::parse_endpoints(
            &json!([
                {"id": "shop", "url": format!("http://127.0.0.1:{healthy_port}/hook")},
                {"id": "down", "url": format!("http://127.0.0.1:{down_port}/hook")},
            ])
            .to_string(),
            foxrelay_shared::domain::webhook::Schemes::LoopbackHttp,
        )
        .unwrap(),
        queue_url: resources.get("WebhookQueue").unwrap().to_owned(),
        dead_letter_queue_url: resources.get("WebhookDeadLetterQueue").unwrap().to_owned(),
        secrets_prefix: secrets_prefix.clone(),
        timeout: Duration::from_secs(2),
        retries: foxrelay_shared::domain::webhook::RetrySchedule::parse("1").unwrap(),
        allow_loopback: true,
    };
    let hook_context = Context::build(hook_settings, context.aws.clone())
        .await
        .unwrap();
    assert!(hook_context.foxreload.is_none());
    let deliver = deliver_webhook::Handler::new(hook_context).unwrap();
    let webhook_source = foxrelay_local::SqsEventSource::new(
        w.h.context.aws.sqs.clone(),
        resources.get("WebhookQueue").unwrap(),
        resources.arns["WebhookQueue"].clone(),
        foxrelay_local::EventSourceOptions {
            wait: Duration::from_secs(1),
            ..Default::default()
        },
    );
    // Two events, one with codes: down fails four times in all, short of
    // opening its breaker (which would hold its last tries 30 s).
    let with_codes = events
        .values()
        .flatten()
        .find(|e| !e.codes.is_empty())
        .expect("an order with codes");
    let other = events
        .values()
        .flatten()
        .find(|e| e.event_id != with_codes.event_id)
        .expect("another order");
    let sent = 2;
    for event in [with_codes, other] {
        w.h.context
            .aws
            .sqs
            .send_message()
            .queue_url(resources.get("WebhookQueue").unwrap())
            .message_body(serde_json::to_string(event).unwrap())
            .send()
            .await
            .unwrap();
    }
    proxy.take();
    let mut dead = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dead < sent {
        assert!(
            std::time::Instant::now() < deadline,
            "down's deliveries were not dead-lettered"
        );
        webhook_source
            .run_once(|event| {
                let deliver = &deliver;
                async move { deliver.handle(event).await.unwrap_or_default() }
            })
            .await
            .unwrap();
        dead = w
            .h
            .context
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(resources.get("WebhookDeadLetterQueue").unwrap())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    .cloned()
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    let deliver_calls = proxy.take();

    // scan-stalled: a stalled order, an orphaned chain, a lost notification.
    let now = time::OffsetDateTime::now_utc();
    pending_order(
        &w.store,
        "iam-stalled",
        now - time::Duration::minutes(20),
        "processing",
    )
    .await;
    w.store
        .schedule_poll("iam-stalled", 1, now + time::Duration::minutes(1), now)
        .await
        .unwrap();
    pending_order(
        &w.store,
        "iam-orphan",
        now - time::Duration::minutes(5),
        "processing",
    )
    .await;
    unnotified_completion(
        &w.store,
        "iam-unnotified",
        now - time::Duration::minutes(6),
        "FOX-IAM-1",
    )
    .await;
    // A create whose invocation died, its key's lock long lapsed.
    let dead = OrderRecord::intent(
        "iam-dead-create".into(),
        &new,
        Some("iam-dead-key".into()),
        test_caller(),
        now - time::Duration::minutes(5),
    );
    let claim = IdempotencyClaim {
        key: "iam-dead-key".into(),
        fingerprint: "f".into(),
        holder: "h".into(),
        locked_until: now - time::Duration::minutes(4),
        expires_at: now + time::Duration::hours(24),
    };
    w.store.begin(&dead, Some(&claim)).await.unwrap();
    proxy.take();
    // scan-stalled starts as in Lambda: its settings name no API key, and it
    // reads none.
    let mut scan_settings = context.settings.clone();
    scan_settings.foxreload.api_key = ApiKeySource::NotGiven;
    let scan_context = Context::build(scan_settings, context.aws.clone())
        .await
        .unwrap();
    assert!(scan_context.foxreload.is_none());
    let scan = scan_stalled::Handler::with_options(scan_context, SweepOptions::default());
    let report = scan
        .handle(foxrelay_local::lambda::event(
            Default::default(),
            std::time::Duration::from_secs(900),
        ))
        .await
        .unwrap();
    assert_eq!(
        (
            report.stalled_alerted,
            report.chains_revived,
            report.events_republished,
            report.creates_handed_over
        ),
        (1, 1, 1, 1),
        "{report:?}"
    );
    let scan_calls = proxy.take();
    assert!(
        !scan_calls
            .actions
            .iter()
            .any(|(a, _)| a.starts_with("secretsmanager:")),
        "{:?}",
        scan_calls.actions
    );

    // poll-order in another container publishes the end the sweep handed
    // over: its codes were sealed elsewhere, so KMS unwraps their data key.
    let publisher = poll_order::Handler::with_options(
        Context::build(context.settings.clone(), context.aws.clone())
            .await
            .unwrap(),
        poll_options(),
    );
    let unnotified = ["iam-unnotified".to_owned()];
    let republished = w
        .run_until_notified(&publisher, &w.source(1, false), &unnotified)
        .await;
    let codes: Vec<&str> = republished["iam-unnotified"][0]
        .codes
        .iter()
        .map(|c| c.code.as_str())
        .collect();
    assert_eq!(codes, ["FOX-IAM-1"]);
    poll_calls.merge(proxy.take());

    // Where a role is narrowed to some partition keys, every item the code
    // touched with that action is under one of them: create-order writes
    // no code and deletes nothing but idempotency keys.
    let narrowed = grants::leading_keys();
    for (function, tally) in [
        ("CreateOrderFunction", &create_calls),
        ("PollOrderFunction", &poll_calls),
        ("ScanStalledFunction", &scan_calls),
        ("DeliverWebhookFunction", &deliver_calls),
    ] {
        for (action, pk) in &tally.item_keys {
            if let Some(patterns) = narrowed.get(&(function, grants::code_calls_action(action))) {
                assert!(
                    patterns.iter().any(|p| grants::string_like(p, pk)),
                    "{function}: {action} on {pk}, outside {patterns:?}"
                );
            }
        }
    }
    for (function, action) in narrowed.keys() {
        let tally = match *function {
            "CreateOrderFunction" => &create_calls,
            "PollOrderFunction" => &poll_calls,
            "DeliverWebhookFunction" => &deliver_calls,
            _ => &scan_calls,
        };
        assert!(
            tally.item_keys.iter().any(|(a, _)| a == action),
            "{function} never called {action}: the narrowed grant is not exercised"
        );
    }
    // poll-order writes the codes, under their own partition.
    assert!(
        poll_calls
            .item_keys
            .iter()
            .any(|(a, pk)| a == "dynamodb:PutItem" && pk.starts_with("CODES#")),
        "{:?}",
        poll_calls.item_keys
    );

    let expected = grants::code_calls();
    for (function, tally) in [
        ("CreateOrderFunction", &create_calls),
        ("PollOrderFunction", &poll_calls),
        ("ScanStalledFunction", &scan_calls),
        ("DeliverWebhookFunction", &deliver_calls),
    ] {
        let called = logical(&tally.actions, &names);
        let granted = &expected[function];
        let ungranted: Vec<_> = called.difference(granted).collect();
        let unused: Vec<_> = granted.difference(&called).collect();
        assert!(
            ungranted.is_empty() && unused.is_empty(),
            "{function}: called but not in the grants table: {ungranted:?}; \
             in the table but never called: {unused:?}"
        );
    }
}
