//! The FoxReload client against the simulator over real HTTP: every behaviour
//! the simulator offers, and every way a call can fail, sorted into
//! retryable, ambiguous and permanent.

use foxrelay_shared::foxreload::{
    CreateOrderItem, CreateOrderRequest, DeliveredCode, ErrorClass, FoxReloadClient, Operation,
    PageRequest, SupplierError, SupplierOrder, SupplierStatus, Uncertainty,
};
use foxrelay_shared::settings::{ApiKey, FoxReloadSettings};
use foxreload_sim::{
    ListEnvelope, PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION, PRODUCT_FAIL, PRODUCT_FAST,
    PRODUCT_GARBAGE, PRODUCT_MANY, PRODUCT_NEVER, PRODUCT_PARTIAL, PRODUCT_PLAYER, PRODUCT_POOR,
    PRODUCT_SLOW, PRODUCT_STALL_CREATE, PRODUCT_UNKNOWN_STATUS, SimConfig, Simulator, Timing,
};
use std::time::Duration;

const KEY: &str = "fr-test-key-0123456789";

/// Orders that move in milliseconds.
fn quick() -> Timing {
    Timing {
        paid_to_processing: Duration::from_millis(20),
        fast_fulfilment: Duration::from_millis(60),
        slow_fulfilment: Duration::from_secs(600),
        payment_window: Duration::from_secs(600),
        create_stall: Duration::from_secs(3),
        unknown_status_for: Duration::from_millis(150),
    }
}

async fn simulator() -> Simulator {
    simulator_with(ListEnvelope::Offset).await
}

async fn simulator_with(list_envelope: ListEnvelope) -> Simulator {
    Simulator::start(SimConfig {
        api_key: KEY.into(),
        timing: quick(),
        list_envelope,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn client_for(sim: &Simulator) -> FoxReloadClient {
    client_with(sim, KEY, Duration::from_secs(2))
}

fn client_with(sim: &Simulator, key: &str, request_timeout: Duration) -> FoxReloadClient {
    let mut settings = FoxReloadSettings::local(sim.base_url(), key);
    settings.connect_timeout = Duration::from_millis(500);
    settings.request_timeout = request_timeout;
    FoxReloadClient::new(&settings, &ApiKey::new(key)).expect("client builds")
}

fn order_of(product: &str, quantity: u32) -> CreateOrderRequest {
    CreateOrderRequest {
        items: vec![CreateOrderItem {
            item_id: product.into(),
            quantity,
            note: None,
        }],
        total_price: None,
        is_mock: false,
    }
}

/// Creates and pays an order of `product`.
async fn paid(client: &FoxReloadClient, product: &str, quantity: u32) -> SupplierOrder {
    let created = client
        .create_order(&order_of(product, quantity))
        .await
        .unwrap();
    assert_eq!(created.status, SupplierStatus::Active);
    let paid = client.pay_order(&created.id).await.unwrap();
    assert_eq!(paid.status, SupplierStatus::Paid);
    paid
}

/// Reads the order until it is terminal (retrying what is retryable), or
/// gives up after `within`.
async fn until_terminal(client: &FoxReloadClient, id: &str, within: Duration) -> SupplierOrder {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match client.get_order(id).await {
            Ok(order) if order.status.is_terminal() => return order,
            Ok(_) => {}
            Err(e) => assert_eq!(e.class(), ErrorClass::Retryable, "{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn codes(order: &SupplierOrder) -> Vec<DeliveredCode> {
    order.delivered().map(|(_, _, code)| code).collect()
}

#[tokio::test]
async fn fast_order_is_created_paid_and_completed_with_one_code_per_unit() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_FAST, 3).await;
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    assert_eq!(done.status, SupplierStatus::Completed);
    let got = codes(&done);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|c| matches!(c, DeliveredCode::Code(_))));
    assert_eq!(done.items[0].product_id(), Some(PRODUCT_FAST));
    assert!(done.total_price.unwrap().cents().unwrap() > 0);
    let counters = sim.counters();
    assert_eq!(counters.creates_by_product[PRODUCT_FAST], 1);
    assert_eq!(counters.pays_by_order[&order.id], 1);
    assert!(counters.gets_by_order[&order.id] >= 1);
}

#[tokio::test]
async fn slow_and_never_finishing_orders_stay_processing() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let slow = paid(&client, PRODUCT_SLOW, 1).await;
    let never = paid(&client, PRODUCT_NEVER, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in [&slow.id, &never.id] {
        assert_eq!(
            client.get_order(id).await.unwrap().status,
            SupplierStatus::Processing
        );
    }
    sim.advance_clock(Duration::from_secs(601));
    assert_eq!(
        client.get_order(&slow.id).await.unwrap().status,
        SupplierStatus::Completed
    );
    sim.advance_clock(Duration::from_secs(86_400));
    assert_eq!(
        client.get_order(&never.id).await.unwrap().status,
        SupplierStatus::Processing
    );
}

#[tokio::test]
async fn failed_order_carries_its_item_error_and_no_codes() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_FAIL, 2).await;
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    assert_eq!(done.status, SupplierStatus::Failed);
    assert!(codes(&done).is_empty());
    assert!(done.items[0].error.is_some());
}

#[tokio::test]
async fn partial_fulfilment_completes_with_codes_and_an_item_error() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_PARTIAL, 3).await;
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    assert_eq!(done.status, SupplierStatus::Completed);
    assert_eq!(codes(&done).len(), 2);
    assert!(
        done.items[0]
            .error
            .as_deref()
            .unwrap()
            .contains("not delivered")
    );
}

#[tokio::test]
async fn activation_data_without_code_is_kept_whole() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_ACTIVATION, 2).await;
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    let got = codes(&done);
    assert_eq!(got.len(), 2);
    for code in got {
        let DeliveredCode::Whole(json) = code else {
            panic!("activation data has no code field");
        };
        let entry: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(
            entry.get("pin").is_some() && entry.get("serial").is_some(),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn many_codes_arrive_in_full_and_unique() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_MANY, 4).await;
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    let mut got: Vec<String> = codes(&done).iter().map(|c| c.secret().to_owned()).collect();
    assert_eq!(got.len(), 4 * foxreload_sim::MANY_CODES_PER_UNIT);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 4 * foxreload_sim::MANY_CODES_PER_UNIT);
}

#[tokio::test]
async fn unknown_status_is_reported_as_not_terminal_then_completes() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_UNKNOWN_STATUS, 1).await;
    let mut seen_unknown = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = client.get_order(&order.id).await.unwrap();
        if let SupplierStatus::Unknown(raw) = &now.status {
            assert_eq!(raw, "on_hold");
            assert!(!now.status.is_terminal());
            seen_unknown = true;
        }
        if now.status.is_terminal() {
            assert_eq!(now.status, SupplierStatus::Completed);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_unknown, "the on_hold status was never observed");
}

#[tokio::test]
async fn extra_fields_and_the_other_number_forms_are_ignored_or_read() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_FAST, 1).await;
    let raw = sim.order(&order.id).unwrap();
    assert!(
        raw.get("customer").is_some(),
        "the simulator sends an extra field"
    );
    assert!(
        raw["items"][0]["price"].is_number(),
        "and a price as a number"
    );
    let read = client.get_order(&order.id).await.unwrap();
    assert_eq!(read.id, order.id);
    assert_eq!(read.items[0].quantity, Some(1));
    assert!(read.payment_expires_at.unwrap().parsed.is_some());
}

#[tokio::test]
async fn server_errors_on_reads_are_retryable_until_they_pass() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_5XX, 1).await;
    let first = client.get_order(&order.id).await.unwrap_err();
    assert!(
        matches!(first, SupplierError::Unavailable { status: 503, .. }),
        "{first}"
    );
    assert_eq!(first.class(), ErrorClass::Retryable);
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    assert_eq!(done.status, SupplierStatus::Completed);
}

#[tokio::test]
async fn rate_limit_is_retryable_and_carries_retry_after() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_429, 1).await;
    let err = client.get_order(&order.id).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(foxreload_sim::RETRY_AFTER_SECS))
    );
    assert_eq!(err.kind(), "rate_limited");
}

#[tokio::test]
async fn non_json_success_body_on_a_read_is_a_retryable_invalid_response() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = paid(&client, PRODUCT_GARBAGE, 1).await;
    let err = client.get_order(&order.id).await.unwrap_err();
    assert!(
        matches!(err, SupplierError::InvalidResponse { status: 200, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    let done = until_terminal(&client, &order.id, Duration::from_secs(5)).await;
    assert_eq!(done.status, SupplierStatus::Completed);
}

#[tokio::test]
async fn create_that_commits_then_stalls_is_ambiguous_and_the_order_exists() {
    let sim = simulator().await;
    let client = client_with(&sim, KEY, Duration::from_millis(500));
    let err = client
        .create_order(&order_of(PRODUCT_STALL_CREATE, 1))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Ambiguous, "{err}");
    assert!(matches!(
        err,
        SupplierError::Ambiguous {
            op: Operation::CreateOrder,
            why: Uncertainty::TimedOut,
            ..
        }
    ));
    // The order was committed: reconciliation can find it.
    assert_eq!(sim.counters().creates_by_product[PRODUCT_STALL_CREATE], 1);
    let recent = client
        .list_orders(&PageRequest::first(10))
        .await
        .unwrap()
        .orders;
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].items[0].product_id(), Some(PRODUCT_STALL_CREATE));
}

#[tokio::test]
async fn a_read_that_times_out_is_retryable_not_ambiguous() {
    // A peer that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut settings = FoxReloadSettings::local(format!("http://{addr}"), KEY);
    settings.request_timeout = Duration::from_millis(300);
    let silent_client = FoxReloadClient::new(&settings, &ApiKey::new(KEY)).unwrap();
    let read = silent_client.get_order("abc").await.unwrap_err();
    assert!(matches!(read, SupplierError::Interrupted { .. }), "{read}");
    assert_eq!(read.class(), ErrorClass::Retryable);
    let create = silent_client
        .create_order(&order_of(PRODUCT_FAST, 1))
        .await
        .unwrap_err();
    assert_eq!(create.class(), ErrorClass::Ambiguous, "{create}");
    hold.abort();
}

#[tokio::test]
async fn refused_connection_is_retryable_for_every_call_including_create() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let settings = FoxReloadSettings::local(format!("http://{closed}"), KEY);
    let client = FoxReloadClient::new(&settings, &ApiKey::new(KEY)).unwrap();
    let err = client
        .create_order(&order_of(PRODUCT_FAST, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, SupplierError::Unreachable { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable, "nothing was sent");
}

#[tokio::test]
async fn wrong_api_key_is_a_permanent_configuration_error_that_never_shows_the_key() {
    let sim = simulator().await;
    let wrong = "fr-wrong-key-9876543210";
    let client = client_with(&sim, wrong, Duration::from_secs(2));
    let err = client.get_order("any").await.unwrap_err();
    assert!(
        matches!(err, SupplierError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(wrong) && !shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn refusals_are_permanent_and_carry_foxreload_code_and_detail() {
    let sim = simulator().await;
    let client = client_for(&sim);

    let unknown = client
        .get_order("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "{unknown}");
    assert_eq!(unknown.supplier_code(), Some("NOT_FOUND"));

    let no_note = client
        .create_order(&order_of(PRODUCT_PLAYER, 1))
        .await
        .unwrap_err();
    assert_eq!(no_note.class(), ErrorClass::Permanent, "{no_note}");
    assert!(no_note.to_string().contains("player_id"), "{no_note}");

    let mut with_note = order_of(PRODUCT_PLAYER, 1);
    with_note.items[0].note = Some(serde_json::from_str(r#"{"player_id": "123456"}"#).unwrap());
    client.create_order(&with_note).await.unwrap();

    let mut wrong_price = order_of(PRODUCT_FAST, 1);
    wrong_price.total_price = Some("0.01".into());
    let mismatch = client.create_order(&wrong_price).await.unwrap_err();
    assert_eq!(mismatch.supplier_code(), Some("OFFER_PRICE_NOT_MATCHED"));

    let poor = client
        .create_order(&order_of(PRODUCT_POOR, 1))
        .await
        .unwrap();
    let refused = client.pay_order(&poor.id).await.unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Permanent);
    assert_eq!(refused.supplier_code(), Some("BALANCE_NOT_ENOUGH"));
    assert_eq!(refused.operation(), Operation::PayOrder);

    let paid_twice = paid(&client, PRODUCT_FAST, 1).await;
    let again = client.pay_order(&paid_twice.id).await.unwrap_err();
    assert_eq!(again.supplier_code(), Some("ORDER_PAYMENT_NOT_POSSIBLE"));
}

#[tokio::test]
async fn unpaid_order_is_cancelled_for_payment_expiration() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let order = client
        .create_order(&order_of(PRODUCT_POOR, 1))
        .await
        .unwrap();
    sim.advance_clock(Duration::from_secs(601));
    let expired = client.get_order(&order.id).await.unwrap();
    assert_eq!(expired.status, SupplierStatus::Cancelled);
    assert_eq!(expired.cancel_reason.as_deref(), Some("payment_expiration"));
}

#[tokio::test]
async fn the_whole_list_is_read_newest_first_page_by_page_in_every_envelope() {
    for envelope in [
        ListEnvelope::Offset,
        ListEnvelope::Cursor,
        ListEnvelope::BareArray,
    ] {
        // The server gives 2 orders a page whatever we ask: a client that
        // took a short page for the end would stop early.
        let sim = Simulator::start(SimConfig {
            api_key: KEY.into(),
            timing: quick(),
            list_envelope: envelope,
            list_page_cap: 2,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let client = client_for(&sim);
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(
                client
                    .create_order(&order_of(PRODUCT_FAST, 1))
                    .await
                    .unwrap()
                    .id,
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut listed = Vec::new();
        let mut page = Some(PageRequest::first(3));
        let mut calls = 0;
        while let Some(request) = page {
            let got = client.list_orders(&request).await.unwrap();
            listed.extend(got.orders.into_iter().map(|o| o.id));
            page = got.next;
            calls += 1;
            assert!(calls <= 5, "{envelope:?} never ends");
        }
        ids.reverse();
        assert_eq!(listed, ids, "{envelope:?}");
        assert_eq!(sim.counters().list_calls, calls);
    }
}
