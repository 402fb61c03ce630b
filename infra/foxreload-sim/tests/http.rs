//! The simulator over real HTTP: a hand-written HTTP/1.1 client talks to a
//! simulator started in-process on a free port.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foxreload_sim::{
    Counters, ListEnvelope, PRODUCT_5XX, PRODUCT_429, PRODUCT_ACTIVATION, PRODUCT_FAIL,
    PRODUCT_FAST, PRODUCT_GARBAGE, PRODUCT_MANY, PRODUCT_NEVER, PRODUCT_PARTIAL, PRODUCT_PLAYER,
    PRODUCT_POOR, PRODUCT_SLOW, PRODUCT_STALL_CREATE, PRODUCT_UNKNOWN_STATUS, SimConfig, Simulator,
    Timing,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------- client --

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn code(&self) -> Value {
        self.json()["code"].clone()
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let line = std::str::from_utf8(&data[..line_end]).expect("chunk size");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(key) = key {
        request.push_str(&format!("X-API-Key: {key}\r\n"));
    }
    let body = if method == "GET" {
        ""
    } else {
        body.unwrap_or("")
    };
    if method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse_reply(&raw)
}

struct Client {
    addr: SocketAddr,
    key: String,
}

impl Client {
    fn of(sim: &Simulator) -> Client {
        Client {
            addr: sim.addr(),
            key: sim.api_key().to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        http(self.addr, "GET", path, Some(&self.key), None).await
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        http(self.addr, "POST", path, Some(&self.key), Some(body)).await
    }

    async fn try_create(&self, body: Value) -> Reply {
        self.post("/api/orders/", &body.to_string()).await
    }

    /// Creates an order of `quantity` units of each product; returns its id.
    async fn create(&self, products: &[&str], quantity: u64) -> String {
        let items: Vec<Value> = products
            .iter()
            .map(|p| json!({"itemId": p, "quantity": quantity, "note": {"player_id": "42"}}))
            .collect();
        let reply = self.try_create(json!({ "items": items })).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().expect("id").to_owned()
    }

    async fn pay(&self, id: &str) -> Reply {
        self.post(
            &format!("/api/orders/{id}/pay"),
            r#"{"paymentProvider": null}"#,
        )
        .await
    }

    /// Creates and pays; returns the id.
    async fn buy(&self, products: &[&str], quantity: u64) -> String {
        let id = self.create(products, quantity).await;
        let paid = self.pay(&id).await;
        assert_eq!(paid.status, 200, "{}", paid.text());
        id
    }

    async fn order(&self, id: &str) -> Value {
        let reply = self.get(&format!("/api/orders/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }
}

// --------------------------------------------------------------- fixtures --

/// Figures long enough that nothing moves unless a test advances the clock.
fn still_timing() -> Timing {
    Timing {
        paid_to_processing: Duration::from_secs(10),
        fast_fulfilment: Duration::from_secs(60),
        slow_fulfilment: Duration::from_secs(600),
        payment_window: Duration::from_secs(900),
        create_stall: Duration::from_millis(400),
        unknown_status_for: Duration::from_secs(30),
    }
}

fn config() -> SimConfig {
    SimConfig {
        timing: still_timing(),
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> (Simulator, Client) {
    let sim = Simulator::start(config).await.expect("start");
    let client = Client::of(&sim);
    (sim, client)
}

/// Pays-to-terminal for ordinary products under [`still_timing`].
const TO_PROCESSING: Duration = Duration::from_secs(10);
const FAST: Duration = Duration::from_secs(60);

fn status(order: &Value) -> &str {
    order["status"].as_str().expect("status")
}

fn codes_of(item: &Value) -> Vec<String> {
    item["externalData"]
        .as_array()
        .expect("externalData array")
        .iter()
        .map(|e| e["code"].as_str().expect("code").to_owned())
        .collect()
}

fn is_fox_code(code: &str) -> bool {
    let parts: Vec<&str> = code.split('-').collect();
    parts.len() == 4
        && parts[0] == "FOX"
        && parts[1..].iter().all(|p| {
            p.len() == 4
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        })
}

fn parse_time(value: &Value) -> OffsetDateTime {
    let text = value.as_str().expect("timestamp string");
    assert!(text.ends_with('Z'), "not UTC: {text}");
    OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339")
}

// ------------------------------------------------------------------ tests --

#[tokio::test]
async fn api_routes_require_the_configured_key_and_admin_routes_do_not() {
    let (sim, client) = start(config()).await;
    let id = client.create(&[PRODUCT_FAST], 1).await;
    for key in [None, Some("wrong-key")] {
        for (method, path) in [
            ("GET", format!("/api/orders/{id}")),
            ("GET", "/api/orders/".to_owned()),
            ("POST", "/api/orders/".to_owned()),
            ("POST", format!("/api/orders/{id}/pay")),
            ("GET", "/api/products/product_fast/".to_owned()),
        ] {
            let reply = http(sim.addr(), method, &path, key, Some("{}")).await;
            assert_eq!(reply.status, 401, "{method} {path}");
            assert_eq!(
                reply.json(),
                json!({"detail": "Invalid API key.", "code": "NOT_AUTHENTICATED"})
            );
        }
    }
    // Refused requests count nothing.
    let counters = sim.counters();
    assert!(counters.gets_by_order.is_empty() && counters.pays_by_order.is_empty());
    assert_eq!((counters.list_calls, counters.orders_created), (0, 1));

    let admin = http(sim.addr(), "GET", "/__admin/counters", None, None).await;
    assert_eq!(admin.status, 200);
}

#[tokio::test]
async fn unknown_paths_answer_a_json_404() {
    let (_sim, client) = start(config()).await;
    let reply = client.get("/api/nothing/here").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.code(), "NOT_FOUND");
}

#[tokio::test]
async fn create_answers_201_with_an_active_order_in_foxreload_shape() {
    let (_sim, client) = start(config()).await;
    let reply = client
        .try_create(json!({"items": [{"itemId": PRODUCT_FAST, "quantity": 2}]}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let order = reply.json();
    let id = order["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(status(&order), "active");
    let created = parse_time(&order["createdAt"]);
    let expires = parse_time(&order["paymentExpiresAt"]);
    assert_eq!(expires - created, time::Duration::seconds(900));
    assert!(order.get("paidAt").is_none());
    assert_eq!(order["cancelReason"], Value::Null);
    // The price of the order is a string, the price of an item a number.
    assert_eq!(order["totalPrice"], json!("25.00"));
    assert_eq!(order["currency"], "usd");
    assert_eq!(order["isMock"], false);
    assert_eq!(order["customer"], json!({"type": "api"}));
    let item = &order["items"][0];
    assert_eq!(item["product"]["id"], PRODUCT_FAST);
    assert!(item["product"]["name"].is_string());
    assert_eq!(item["quantity"], 2);
    assert!(item["price"].is_number());
    assert_eq!(item["price"].as_f64(), Some(12.5));
    assert_eq!(item["externalData"], json!([]));
    assert_eq!(item["error"], Value::Null);
    assert_eq!(item["note"], json!({}));
    // GET renders the same order.
    assert_eq!(client.order(id).await, order);
}

#[tokio::test]
async fn every_route_answers_with_and_without_the_trailing_slash() {
    let (sim, client) = start(config()).await;
    let body = json!({"items": [{"itemId": PRODUCT_FAST, "quantity": 1}]}).to_string();
    let a = client.post("/api/orders", &body).await;
    let b = client.post("/api/orders/", &body).await;
    assert_eq!((a.status, b.status), (201, 201));
    let id = a.json()["id"].as_str().unwrap().to_owned();
    let id2 = b.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(client.get(&format!("/api/orders/{id}")).await.status, 200);
    assert_eq!(client.get(&format!("/api/orders/{id}/")).await.status, 200);
    let pay = r#"{"paymentProvider": null}"#;
    assert_eq!(
        client
            .post(&format!("/api/orders/{id}/pay"), pay)
            .await
            .status,
        200
    );
    assert_eq!(
        client
            .post(&format!("/api/orders/{id2}/pay/"), pay)
            .await
            .status,
        200
    );
    assert_eq!(client.get("/api/orders").await.status, 200);
    assert_eq!(client.get("/api/orders/?limit=10").await.status, 200);
    assert_eq!(client.get("/api/products/product_fast").await.status, 200);
    assert_eq!(client.get("/api/products/product_fast/").await.status, 200);
    assert_eq!(sim.counters().gets_by_order[&id], 2);
    assert_eq!(sim.counters().list_calls, 2);
}

#[tokio::test]
async fn create_refuses_malformed_requests_naming_the_fault() {
    let (sim, client) = start(config()).await;
    let bad_json = client.post("/api/orders/", "{not json").await;
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.code(), "VALIDATION_ERROR");
    assert!(bad_json.json()["detail"].is_string());

    let item = |id: &str, q: i64| json!({"itemId": id, "quantity": q});
    let cases = [
        (json!({}), "items"),
        (json!({"items": []}), "items"),
        (json!({"items": vec![item(PRODUCT_FAST, 1); 11]}), "items"),
        (
            json!({"items": [item(PRODUCT_FAST, 0)]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [item(PRODUCT_FAST, 101)]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [item(PRODUCT_FAST, -1)]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"itemId": PRODUCT_FAST}]}),
            "items[0].quantity",
        ),
        (json!({"items": [{"quantity": 1}]}), "items[0].itemId"),
        (
            json!({"items": [item(PRODUCT_FAST, 1)], "isMock": "yes"}),
            "isMock",
        ),
        (
            json!({"items": [item(PRODUCT_FAST, 1)], "totalPrice": "abc"}),
            "totalPrice",
        ),
    ];
    for (body, field) in cases {
        let reply = client.try_create(body.clone()).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.code(), "VALIDATION_ERROR", "{body}");
        let detail = reply.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(field), "{body}: {detail}");
    }
    let ten = client
        .try_create(json!({"items": vec![item(PRODUCT_FAST, 100); 10]}))
        .await;
    assert_eq!(ten.status, 201, "10 items of 100 units are allowed");

    let unknown = client
        .try_create(json!({"items": [item("product_nope", 1)]}))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "NOT_FOUND");
    assert_eq!(sim.counters().orders_created, 1);
}

#[tokio::test]
async fn total_price_must_match_the_computed_price() {
    let (sim, client) = start(config()).await;
    let items = json!([{"itemId": PRODUCT_FAST, "quantity": 2}, {"itemId": PRODUCT_ACTIVATION, "quantity": 1}]);
    let wrong = client
        .try_create(json!({"items": items, "totalPrice": "32.14"}))
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.code(), "OFFER_PRICE_NOT_MATCHED");
    assert_eq!(
        sim.counters().orders_created,
        0,
        "a refused create commits nothing"
    );
    for total in [json!("32.15"), json!("32.150"), json!(32.15)] {
        let reply = client
            .try_create(json!({"items": items, "totalPrice": total}))
            .await;
        assert_eq!(reply.status, 201, "{total}: {}", reply.text());
        assert_eq!(reply.json()["totalPrice"], "32.15");
    }
}

#[tokio::test]
async fn player_product_requires_a_player_id_note() {
    let (_sim, client) = start(config()).await;
    for note in [
        json!(null),
        json!({}),
        json!({"player_id": ""}),
        json!({"phone": "1"}),
    ] {
        let reply = client
            .try_create(json!({"items": [{"itemId": PRODUCT_PLAYER, "quantity": 1, "note": note}]}))
            .await;
        assert_eq!(reply.status, 400, "{note}");
        assert_eq!(reply.code(), "VALIDATION_ERROR");
        assert!(reply.text().contains("player_id"), "{}", reply.text());
    }
    let ok = client
        .try_create(json!({"items": [{"itemId": PRODUCT_PLAYER, "quantity": 1, "note": {"player_id": "123456"}}]}))
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(
        ok.json()["items"][0]["note"],
        json!({"player_id": "123456"})
    );
}

#[tokio::test]
async fn fast_order_moves_active_paid_processing_completed_with_one_code_per_unit() {
    let (sim, client) = start(config()).await;
    let id = client.create(&[PRODUCT_FAST], 3).await;
    let paid = client.pay(&id).await.json();
    assert_eq!(status(&paid), "paid");
    let paid_at = parse_time(&paid["paidAt"]);
    assert!(paid_at >= parse_time(&paid["createdAt"]));
    assert_eq!(status(&client.order(&id).await), "paid");

    sim.advance_clock(TO_PROCESSING);
    let processing = client.order(&id).await;
    assert_eq!(status(&processing), "processing");
    assert_eq!(processing["items"][0]["externalData"], json!([]));

    sim.advance_clock(FAST);
    let done = client.order(&id).await;
    assert_eq!(status(&done), "completed");
    assert_eq!(done["cancelReason"], Value::Null);
    let item = &done["items"][0];
    assert_eq!(item["error"], Value::Null);
    let codes = codes_of(item);
    assert_eq!(codes.len(), 3);
    assert!(codes.iter().all(|c| is_fox_code(c)), "{codes:?}");
    // Paid orders never expire.
    sim.advance_clock(Duration::from_secs(3600));
    assert_eq!(client.order(&id).await, done);
}

#[tokio::test]
async fn paid_order_progresses_on_the_real_clock() {
    let timing = Timing {
        paid_to_processing: Duration::from_millis(30),
        fast_fulfilment: Duration::from_millis(60),
        ..still_timing()
    };
    let (sim, client) = start(SimConfig {
        timing,
        ..SimConfig::default()
    })
    .await;
    let id = client.buy(&[PRODUCT_FAST], 1).await;
    let order = ["paid", "processing", "completed"];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = sim.order(&id).unwrap();
        let s = status(&now).to_owned();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "completed" || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("completed"),
        "{seen:?}"
    );
    let positions: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("known status"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "forward only: {seen:?}"
    );
}

#[tokio::test]
async fn unpaid_order_expires_to_cancelled_payment_expiration() {
    let (sim, client) = start(config()).await;
    let id = client.create(&[PRODUCT_FAST], 1).await;
    sim.advance_clock(Duration::from_secs(899));
    assert_eq!(status(&client.order(&id).await), "active");
    sim.advance_clock(Duration::from_secs(1));
    let order = client.order(&id).await;
    assert_eq!(status(&order), "cancelled");
    assert_eq!(order["cancelReason"], "payment_expiration");
    assert_eq!(order["items"][0]["externalData"], json!([]));
    assert_eq!(order["items"][0]["error"], Value::Null);
    let pay = client.pay(&id).await;
    assert_eq!(pay.status, 400);
    assert_eq!(pay.code(), "ORDER_PAYMENT_NOT_POSSIBLE");
}

#[tokio::test]
async fn paying_twice_is_refused_and_every_attempt_is_counted() {
    let (sim, client) = start(config()).await;
    let id = client.create(&[PRODUCT_FAST], 1).await;
    assert_eq!(client.pay(&id).await.status, 200);
    let again = client.pay(&id).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.code(), "ORDER_PAYMENT_NOT_POSSIBLE");
    let bad_body = client.post(&format!("/api/orders/{id}/pay"), "nope").await;
    assert_eq!(bad_body.code(), "VALIDATION_ERROR");
    let unknown = client.pay("00000000-0000-4000-8000-000000000000").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "NOT_FOUND");
    assert_eq!(sim.counters().pays_by_order[&id], 3);
}

#[tokio::test]
async fn pay_draws_on_the_balance_and_mock_orders_move_no_money() {
    let (sim, client) = start(SimConfig {
        balance_cents: 3000,
        ..config()
    })
    .await;
    client.buy(&[PRODUCT_FAST], 2).await;
    assert_eq!(sim.balance_cents(), 500);
    let short = client.create(&[PRODUCT_FAST], 1).await;
    let refused = client.pay(&short).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.code(), "BALANCE_NOT_ENOUGH");
    assert_eq!(status(&client.order(&short).await), "active");
    assert_eq!(sim.balance_cents(), 500);

    let mock = client
        .try_create(json!({"items": [{"itemId": PRODUCT_FAST, "quantity": 1}], "isMock": true}))
        .await
        .json();
    assert_eq!(mock["isMock"], true);
    let paid = client.pay(mock["id"].as_str().unwrap()).await;
    assert_eq!(paid.status, 200);
    assert_eq!(sim.balance_cents(), 500);
    sim.reset();
    assert_eq!(sim.balance_cents(), 3000);
}

#[tokio::test]
async fn poor_product_cannot_be_paid_and_expires_unpaid() {
    let (sim, client) = start(config()).await;
    let product = client.get("/api/products/product_poor/").await.json();
    assert_eq!(product["price"], "9999999.00");
    let id = client.create(&[PRODUCT_POOR], 1).await;
    let refused = client.pay(&id).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.code(), "BALANCE_NOT_ENOUGH");
    assert_eq!(status(&client.order(&id).await), "active");
    sim.advance_clock(Duration::from_secs(900));
    let order = client.order(&id).await;
    assert_eq!(status(&order), "cancelled");
    assert_eq!(order["cancelReason"], "payment_expiration");
}

#[tokio::test]
async fn slow_product_completes_only_after_slow_fulfilment() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_SLOW], 1).await;
    sim.advance_clock(TO_PROCESSING + FAST);
    assert_eq!(status(&client.order(&id).await), "processing");
    sim.advance_clock(Duration::from_secs(600) - FAST);
    let done = client.order(&id).await;
    assert_eq!(status(&done), "completed");
    assert_eq!(codes_of(&done["items"][0]).len(), 1);
}

#[tokio::test]
async fn never_product_stays_processing() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_NEVER], 1).await;
    sim.advance_clock(Duration::from_secs(30 * 24 * 3600));
    let order = client.order(&id).await;
    assert_eq!(status(&order), "processing");
    assert_eq!(order["items"][0]["externalData"], json!([]));
}

#[tokio::test]
async fn fail_product_ends_failed_with_an_item_error_and_no_codes() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_FAIL], 2).await;
    sim.advance_clock(TO_PROCESSING);
    assert_eq!(client.order(&id).await["items"][0]["error"], Value::Null);
    sim.advance_clock(FAST);
    let order = client.order(&id).await;
    assert_eq!(status(&order), "failed");
    assert_eq!(order["items"][0]["error"], "supplier out of stock");
    assert_eq!(order["items"][0]["externalData"], json!([]));
}

#[tokio::test]
async fn partial_product_completes_one_unit_short_with_an_item_error() {
    let (sim, client) = start(config()).await;
    let three = client.buy(&[PRODUCT_PARTIAL], 3).await;
    let one = client.buy(&[PRODUCT_PARTIAL], 1).await;
    sim.advance_clock(TO_PROCESSING + FAST);
    let order = client.order(&three).await;
    assert_eq!(status(&order), "completed");
    assert_eq!(codes_of(&order["items"][0]).len(), 2);
    assert_eq!(order["items"][0]["error"], "1 of 3 units not delivered");
    let order = client.order(&one).await;
    assert_eq!(status(&order), "completed");
    assert_eq!(codes_of(&order["items"][0]).len(), 0);
    assert_eq!(order["items"][0]["error"], "1 of 1 units not delivered");
}

#[tokio::test]
async fn activation_product_delivers_entries_without_a_code() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_ACTIVATION], 2).await;
    sim.advance_clock(TO_PROCESSING + FAST);
    let order = client.order(&id).await;
    assert_eq!(status(&order), "completed");
    let entries = order["items"][0]["externalData"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        assert!(entry.get("code").is_none(), "{entry}");
        let pin = entry["pin"].as_str().unwrap();
        assert!(pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()));
        assert!(entry["serial"].as_str().unwrap().starts_with("SN-"));
        assert!(
            entry["activationUrl"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
        assert!(parse_time(&entry["expiresAt"]) > parse_time(&order["paidAt"]));
    }
    assert_ne!(entries[0]["serial"], entries[1]["serial"]);
}

#[tokio::test]
async fn many_product_delivers_fifty_codes_per_unit() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_MANY], 3).await;
    sim.advance_clock(TO_PROCESSING + FAST);
    let order = client.order(&id).await;
    assert_eq!(status(&order), "completed");
    assert_eq!(codes_of(&order["items"][0]).len(), 150);
}

#[tokio::test]
async fn codes_are_unique_across_orders_and_stable_across_reads() {
    let (sim, client) = start(config()).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(client.buy(&[PRODUCT_FAST, PRODUCT_MANY], 2).await);
    }
    sim.advance_clock(TO_PROCESSING + FAST);
    let mut all = HashSet::new();
    let mut count = 0;
    for id in &ids {
        let first = client.order(id).await;
        assert_eq!(
            client.order(id).await,
            first,
            "codes are stored, not redrawn"
        );
        for item in first["items"].as_array().unwrap() {
            for code in codes_of(item) {
                assert!(is_fox_code(&code), "{code}");
                all.insert(code);
                count += 1;
            }
        }
    }
    assert_eq!(count, 5 * (2 + 100));
    assert_eq!(all.len(), count);

    // A second simulator in the same process never repeats them either.
    let (other_sim, other) = start(config()).await;
    let id = other.buy(&[PRODUCT_MANY], 4).await;
    other_sim.advance_clock(TO_PROCESSING + FAST);
    for code in codes_of(&other.order(&id).await["items"][0]) {
        assert!(all.insert(code));
    }
}

#[tokio::test]
async fn server_error_product_answers_503_for_its_first_three_reads() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_5XX], 1).await;
    for _ in 0..3 {
        let reply = client.get(&format!("/api/orders/{id}")).await;
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.json(),
            json!({"detail": "Service temporarily unavailable"})
        );
    }
    sim.advance_clock(TO_PROCESSING + FAST);
    let order = client.order(&id).await;
    assert_eq!(status(&order), "completed");
    assert_eq!(codes_of(&order["items"][0]).len(), 1);
    assert_eq!(sim.counters().gets_by_order[&id], 4);
}

#[tokio::test]
async fn throttle_product_answers_429_with_retry_after_for_its_first_two_reads() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_429], 1).await;
    for _ in 0..2 {
        let reply = client.get(&format!("/api/orders/{id}")).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("2"));
        assert_eq!(
            reply.json(),
            json!({"detail": "Too many requests", "code": "THROTTLED"})
        );
    }
    assert_eq!(status(&client.order(&id).await), "paid");
    assert_eq!(sim.counters().gets_by_order[&id], 3);
}

#[tokio::test]
async fn garbage_product_answers_html_for_its_first_two_reads() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_GARBAGE], 1).await;
    for _ in 0..2 {
        let reply = client.get(&format!("/api/orders/{id}")).await;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(reply.text(), "<html><body>Bad gateway</body></html>");
    }
    sim.advance_clock(TO_PROCESSING + FAST);
    assert_eq!(status(&client.order(&id).await), "completed");
}

#[tokio::test]
async fn unknown_status_product_is_on_hold_before_completing() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_UNKNOWN_STATUS], 1).await;
    assert_eq!(status(&client.order(&id).await), "paid");
    sim.advance_clock(TO_PROCESSING);
    let held = client.order(&id).await;
    assert_eq!(status(&held), "on_hold");
    assert_eq!(held["items"][0]["externalData"], json!([]));
    sim.advance_clock(Duration::from_secs(29));
    assert_eq!(status(&client.order(&id).await), "on_hold");
    sim.advance_clock(Duration::from_secs(1));
    let done = client.order(&id).await;
    assert_eq!(status(&done), "completed");
    assert_eq!(codes_of(&done["items"][0]).len(), 1);
}

#[tokio::test]
async fn stall_create_commits_the_order_before_holding_the_response() {
    let (sim, client) = start(config()).await;
    let body = json!({"items": [{"itemId": PRODUCT_STALL_CREATE, "quantity": 1}]}).to_string();
    // A client whose timeout is shorter than the stall gives up after sending.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        client.post("/api/orders/", &body),
    )
    .await;
    assert!(gave_up.is_err(), "the response must be held");
    // Yet the order exists, is listed and is counted.
    let counters = sim.counters();
    assert_eq!(counters.orders_created, 1);
    assert_eq!(counters.creates_by_product[PRODUCT_STALL_CREATE], 1);
    let listed = client.get("/api/orders/?limit=10").await.json();
    assert_eq!(listed["total"], 1);
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["items"][0]["status"], "active");
    assert_eq!(
        listed["items"][0]["items"][0]["product"]["id"],
        PRODUCT_STALL_CREATE
    );
    assert_eq!(status(&client.order(&id).await), "active");

    // A patient client gets its 201 once the stall is over.
    let started = Instant::now();
    let reply = client.post("/api/orders/", &body).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["status"], "active");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Once created it is an ordinary fast order.
    assert_eq!(client.pay(&id).await.status, 200);
    sim.advance_clock(TO_PROCESSING + FAST);
    assert_eq!(codes_of(&client.order(&id).await["items"][0]).len(), 1);
}

#[tokio::test]
async fn mixed_order_takes_faults_from_its_first_item_and_fulfils_each_item_its_own_way() {
    let (sim, client) = start(config()).await;
    let id = client
        .buy(&[PRODUCT_5XX, PRODUCT_FAIL, PRODUCT_ACTIVATION], 1)
        .await;
    for _ in 0..3 {
        assert_eq!(client.get(&format!("/api/orders/{id}")).await.status, 503);
    }
    sim.advance_clock(TO_PROCESSING + FAST);
    let order = client.order(&id).await;
    assert_eq!(status(&order), "completed");
    let items = order["items"].as_array().unwrap();
    assert_eq!(codes_of(&items[0]).len(), 1);
    assert_eq!(items[1]["error"], "supplier out of stock");
    assert_eq!(items[1]["externalData"], json!([]));
    assert!(items[2]["externalData"][0]["pin"].is_string());
    // A fault-free first item means no faults, whatever follows.
    let id = client.buy(&[PRODUCT_FAST, PRODUCT_5XX], 1).await;
    assert_eq!(client.get(&format!("/api/orders/{id}")).await.status, 200);
    // An order that waits on one slow item waits as a whole.
    let id = client.buy(&[PRODUCT_FAST, PRODUCT_SLOW], 1).await;
    sim.advance_clock(TO_PROCESSING + FAST);
    let waiting = client.order(&id).await;
    assert_eq!(status(&waiting), "processing");
    assert_eq!(waiting["items"][0]["externalData"], json!([]));
}

#[tokio::test]
async fn creates_are_counted_once_per_product_per_request() {
    let (sim, client) = start(config()).await;
    client.create(&[PRODUCT_FAST, PRODUCT_FAST], 1).await;
    client.create(&[PRODUCT_FAST, PRODUCT_SLOW], 1).await;
    let counters = sim.counters();
    assert_eq!(counters.creates_by_product[PRODUCT_FAST], 2);
    assert_eq!(counters.creates_by_product[PRODUCT_SLOW], 1);
    assert_eq!(counters.orders_created, 2);
}

async fn create_n(client: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(client.create(&[PRODUCT_FAST], 1).await);
    }
    ids
}

fn ids_of(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items array")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn offset_envelope_lists_newest_first_with_paging_and_a_status_filter() {
    let (sim, client) = start(config()).await;
    let mut ids = create_n(&client, 12).await;
    ids.reverse();
    let page = client.get("/api/orders/").await.json();
    assert_eq!(page["limit"], 10);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["total"], 12);
    assert_eq!(ids_of(&page["items"]), ids[..10]);
    let next = client.get("/api/orders/?limit=10&offset=10").await.json();
    assert_eq!(ids_of(&next["items"]), ids[10..]);
    let beyond = client.get("/api/orders/?offset=50").await.json();
    assert_eq!(beyond["items"], json!([]));

    assert_eq!(client.pay(&ids[3]).await.status, 200);
    let paid = client.get("/api/orders/?status=paid").await.json();
    assert_eq!(ids_of(&paid["items"]), vec![ids[3].clone()]);
    assert_eq!(paid["total"], 1);
    assert_eq!(
        client.get("/api/orders/?status=active").await.json()["total"],
        11
    );
    assert_eq!(sim.counters().list_calls, 5);
}

#[tokio::test]
async fn list_limit_defaults_to_ten_and_is_capped_at_one_hundred() {
    let (_sim, client) = start(config()).await;
    create_n(&client, 105).await;
    for (query, limit, len) in [
        ("", 10, 10),
        ("?limit=0", 10, 10),
        ("?limit=abc", 10, 10),
        ("?limit=3", 3, 3),
        ("?limit=500", 100, 100),
    ] {
        let page = client.get(&format!("/api/orders/{query}")).await.json();
        assert_eq!(page["limit"], limit, "{query}");
        assert_eq!(page["items"].as_array().unwrap().len(), len, "{query}");
    }
}

#[tokio::test]
async fn cursor_envelope_pages_with_next_cursor() {
    let (_sim, client) = start(SimConfig {
        list_envelope: ListEnvelope::Cursor,
        ..config()
    })
    .await;
    let mut ids = create_n(&client, 5).await;
    ids.reverse();
    let first = client.get("/api/orders/?limit=2").await.json();
    assert_eq!(first["limit"], 2);
    assert!(first.get("offset").is_none() && first.get("total").is_none());
    assert_eq!(ids_of(&first["items"]), ids[..2]);
    let mut seen = ids_of(&first["items"]);
    let mut cursor = first["nextCursor"].as_str().unwrap().to_owned();
    loop {
        let page = client
            .get(&format!("/api/orders/?limit=2&cursor={cursor}"))
            .await
            .json();
        seen.extend(ids_of(&page["items"]));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let bad = client.get("/api/orders/?cursor=garbage").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "VALIDATION_ERROR");
}

#[tokio::test]
async fn bare_array_envelope_is_a_plain_array() {
    let (_sim, client) = start(SimConfig {
        list_envelope: ListEnvelope::BareArray,
        ..config()
    })
    .await;
    let mut ids = create_n(&client, 3).await;
    ids.reverse();
    let list = client.get("/api/orders/?limit=2").await.json();
    assert_eq!(ids_of(&list), ids[..2]);
    let rest = client.get("/api/orders/?limit=2&offset=2").await.json();
    assert_eq!(ids_of(&rest), ids[2..]);
}

#[tokio::test]
async fn product_renders_its_price_as_a_string_and_unknown_products_are_404() {
    let (_sim, client) = start(config()).await;
    let product = client.get("/api/products/product_player/").await.json();
    assert_eq!(
        product,
        json!({
            "id": "product_player",
            "name": product["name"],
            "price": "5.35",
            "currency": "usd",
            "minQuantity": 1,
            "maxQuantity": 100,
            "requiredNoteFields": ["player_id"],
            "inStock": true,
        })
    );
    assert_eq!(
        client.get("/api/products/product_fast/").await.json()["requiredNoteFields"],
        json!([])
    );
    let unknown = client.get("/api/products/product_nope/").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "NOT_FOUND");
    let missing = client
        .get("/api/orders/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "NOT_FOUND");
}

#[tokio::test]
async fn admin_counters_match_the_library_and_reset_forgets_everything() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_FAST], 1).await;
    client.order(&id).await;
    client.get("/api/orders/").await;
    let admin: Counters = serde_json::from_slice(
        &http(sim.addr(), "GET", "/__admin/counters", None, None)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(admin, sim.counters());
    assert_eq!(admin.gets_by_order[&id], 1);
    assert_eq!(admin.pays_by_order[&id], 1);
    assert_eq!((admin.list_calls, admin.orders_created), (1, 1));
    let raw = http(sim.addr(), "GET", "/__admin/counters", None, None)
        .await
        .json();
    assert!(raw.get("createsByProduct").is_some() && raw.get("listCalls").is_some());

    let reset = http(sim.addr(), "POST", "/__admin/reset", None, None).await;
    assert!(reset.status == 204 || reset.status == 200);
    assert_eq!(sim.counters(), Counters::default());
    assert!(sim.order(&id).is_none());
    assert_eq!(client.get(&format!("/api/orders/{id}")).await.status, 404);

    client.create(&[PRODUCT_FAST], 1).await;
    sim.reset();
    assert_eq!(sim.counters(), Counters::default());
}

#[tokio::test]
async fn admin_and_library_reads_count_nothing_and_skip_read_faults() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_5XX], 1).await;
    let admin = http(
        sim.addr(),
        "GET",
        &format!("/__admin/orders/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(admin.status, 200);
    assert_eq!(Some(admin.json()), sim.order(&id));
    assert!(sim.counters().gets_by_order.is_empty());
    // The read faults are all still ahead.
    assert_eq!(client.get(&format!("/api/orders/{id}")).await.status, 503);
    let missing = http(sim.addr(), "GET", "/__admin/orders/nope", None, None).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn admin_clock_advance_moves_orders_forward() {
    let (sim, client) = start(config()).await;
    let id = client.buy(&[PRODUCT_FAST], 1).await;
    let reply = http(
        sim.addr(),
        "POST",
        "/__admin/clock/advance?ms=70000",
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(status(&client.order(&id).await), "completed");
    let bad = http(
        sim.addr(),
        "POST",
        "/__admin/clock/advance?ms=soon",
        None,
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn base_url_names_the_bound_loopback_port() {
    let (sim, _client) = start(config()).await;
    assert_eq!(
        sim.base_url(),
        format!("http://127.0.0.1:{}", sim.addr().port())
    );
    assert_ne!(sim.addr().port(), 0);
    assert_eq!(sim.api_key(), "sim-key");
}

#[tokio::test]
async fn shutdown_stops_serving_and_cuts_a_stalled_create_short() {
    let (sim, client) = start(SimConfig {
        timing: Timing {
            create_stall: Duration::from_secs(60),
            ..still_timing()
        },
        ..config()
    })
    .await;
    let addr = sim.addr();
    let body = json!({"items": [{"itemId": PRODUCT_STALL_CREATE, "quantity": 1}]}).to_string();
    let stalled = tokio::spawn(async move { client.post("/api/orders/", &body).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.counters().orders_created == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled create never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    sim.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown waited for the stall"
    );
    let reply = stalled.await.unwrap();
    assert_eq!(reply.status, 503);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting connections"
    );
}

// ----------------------------------------------------------- rate limit --

/// Waits for the next whole second of the wall clock to start, so that a
/// short burst of requests lands in one second.
async fn start_of_a_second() {
    let millis = OffsetDateTime::now_utc().millisecond();
    tokio::time::sleep(Duration::from_millis(u64::from(1_005 - millis))).await;
}

#[tokio::test]
async fn requests_over_the_rate_limit_are_refused_with_429_and_counted() {
    use foxreload_sim::{Endpoint, RateLimit};
    let (sim, client) = start(SimConfig {
        rate_limit: RateLimit {
            per_second: Some(5),
            per_endpoint: [(Endpoint::PayOrder, 1)].into_iter().collect(),
            retry_after_secs: Some(3),
        },
        ..config()
    })
    .await;
    start_of_a_second().await;
    let mut replies = Vec::new();
    for _ in 0..20 {
        replies.push(client.get("/api/orders/nope").await);
    }
    // However the burst fell across whole seconds, none served more than
    // five; the rest were refused, each saying when to come back.
    let counters = sim.counters();
    let seconds = counters.requests_by_second.len() as u64;
    assert_eq!(counters.requests_by_second.values().sum::<u64>(), 20);
    let served = replies.iter().filter(|r| r.status == 404).count() as u64;
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(served + refused.len() as u64, 20);
    assert!(served <= 5 * seconds, "{served} in {seconds} s");
    assert!(seconds <= 3, "a burst of 20 reads took {seconds} s");
    assert_eq!(
        counters.rate_limited_by_second.values().sum::<u64>(),
        refused.len() as u64
    );
    assert_eq!(refused[0].code(), "THROTTLED");
    assert_eq!(refused[0].header("retry-after"), Some("3"));
    for (second, count) in &counters.requests_by_second {
        let limited = counters.rate_limited_by_second.get(second).unwrap_or(&0);
        assert!(count - limited <= 5, "{counters:?}");
    }
    // A refused read did nothing: it is not counted as a read.
    assert_eq!(counters.gets_by_order.get("nope"), Some(&served));

    // Per endpoint: one payment a second, whatever the rest; a refused
    // payment never reaches the order.
    start_of_a_second().await;
    let id = client.create(&[PRODUCT_FAST], 1).await;
    let pays: Vec<u16> = futures_statuses(&client, &id).await;
    let paid = pays.iter().filter(|s| **s == 200).count();
    assert_eq!(paid, 1, "{pays:?}");
    assert!(pays.contains(&429), "{pays:?}");
    let reached = pays.iter().filter(|s| **s != 429).count() as u64;
    assert_eq!(sim.counters().pays_by_order[&id], reached);
}

/// Four payments of order `id`, one after another: their statuses.
async fn futures_statuses(client: &Client, id: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.pay(id).await.status);
    }
    statuses
}

#[tokio::test]
async fn without_a_rate_limit_nothing_is_refused_and_requests_are_still_counted() {
    let (sim, client) = start(config()).await;
    for _ in 0..30 {
        assert_eq!(client.get("/api/orders/nope").await.status, 404);
    }
    let counters = sim.counters();
    assert_eq!(counters.requests_by_second.values().sum::<u64>(), 30);
    assert!(counters.rate_limited_by_second.is_empty());
}
