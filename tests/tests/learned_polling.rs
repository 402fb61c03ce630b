//! Learned polling through the local runner: the three real handlers on the
//! default schedule, against moto and the simulator's products that end a
//! fixed time after payment. Once a product has been learned, its orders
//! are read about once, soon after they end.
//!
//! "Soon" is proved by when the ending read was due (the delay its SQS
//! message was sent with), which no load on the machine changes; how late
//! the runner then was on a loaded machine is printed, not asserted (the
//! `learned` benchmark measures lag against the default schedule).

use foxrelay_local::{LocalStack, StackOptions};
use foxrelay_shared::domain::learning::PlanKind;
use foxrelay_shared::domain::schedule::Schedule;
use foxrelay_shared::store::{OrderReader, OrderRecord};
use foxrelay_tests::{local_stack_options, unique_prefix};
use foxreload_sim::{PRODUCT_TWENTY_FIVE_SECONDS, PRODUCT_TWO_SECONDS, SimConfig, Simulator};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn options(sim: &Simulator) -> StackOptions {
    // The default schedule and learning settings, but plans kept for 5 s
    // (not a minute), so the second round is planned from the first.
    let mut options = local_stack_options(
        &unique_prefix(),
        sim,
        &[("POLL_PLAN_CACHE_SECS", "5")],
        1,
        Duration::from_secs(5),
    );
    // Two batches at a time, as Lambda runs poll-order's batches side by
    // side: 50 orders' links come due at once, and one batch after another
    // on a loaded machine read them seconds late (a warm-up probe that
    // comes after its product's orders end teaches nothing).
    options.pollers = 2;
    options
}

/// Places `count` orders of each product at once; our order ids.
async fn place(stack: &LocalStack, products: &[(&str, usize)], round: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let api = format!("http://{}/orders", stack.api_addr);
    let mut tasks = Vec::new();
    for (product, count) in products {
        for n in 0..*count {
            let (http, api) = (http.clone(), api.clone());
            let key = format!("learn-{round}-{product}-{n}");
            let product = product.to_string();
            tasks.push(tokio::spawn(async move {
                let order = json!({"items": [{"productId": product, "quantity": 1}]});
                let (status, answer, _) =
                    foxrelay_tests::place_order(&http, &api, &key, &order).await;
                assert_eq!(status, 202, "{answer}");
                answer["orderId"].as_str().unwrap().to_owned()
            }));
        }
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids
}

/// Waits until every order is notified; the orders as stored.
async fn notified(stack: &LocalStack, ids: &[String]) -> BTreeMap<String, OrderRecord> {
    let store = stack.resources.store(&stack.clients);
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let mut done = BTreeMap::new();
        for id in ids {
            let order = store.order(id).await.unwrap().expect("stored");
            if order.notified_at.is_some() {
                done.insert(id.clone(), order);
            }
        }
        if done.len() == ids.len() {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders notified",
            done.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads FoxReload answered for the order: the polls recorded, and the one
/// that saw the end.
fn reads(order: &OrderRecord) -> u64 {
    order.poll_count + 1
}

/// What a warm-up order taught, for a failure's report: product, its
/// clock's start after FoxReload's payment, and seen open at / ended by on
/// its clock, in seconds.
fn taught(sim: &Simulator, order: &OrderRecord) -> String {
    let secs = |d: time::Duration| format!("{:.1}", d.as_seconds_f64());
    let start = order.clock_start();
    let at_foxreload = sim
        .order(order.supplier_order_id.as_deref().unwrap())
        .unwrap();
    let paid = OffsetDateTime::parse(at_foxreload["paidAt"].as_str().unwrap(), &Rfc3339).unwrap();
    format!(
        "{} start+{} open {} ended {}",
        order.lines[0].product_id,
        secs(start - paid),
        order
            .last_seen_open_at
            .map_or_else(|| "-".to_owned(), |at| secs(at - start)),
        order
            .terminal_at
            .map_or_else(|| "-".to_owned(), |at| secs(at - start)),
    )
}

/// When the read that saw the order end was due, on the order's clock: the
/// last link's due time (an ended order keeps it).
fn due(order: &OrderRecord) -> Duration {
    (order.next_poll_due_at.expect("a read was scheduled") - order.clock_start())
        .try_into()
        .expect("the read was due after the order's clock started")
}

/// From the order's end at FoxReload (payment there, plus the product's
/// time) to its event published.
fn lag(sim: &Simulator, order: &OrderRecord, takes: Duration) -> Duration {
    let at_foxreload = sim
        .order(order.supplier_order_id.as_deref().unwrap())
        .unwrap();
    let paid = OffsetDateTime::parse(at_foxreload["paidAt"].as_str().unwrap(), &Rfc3339).unwrap();
    (order.notified_at.unwrap() - (paid + takes))
        .try_into()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_product_is_read_about_once_soon_after_it_ends() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let stack = LocalStack::start(options(&sim)).await.unwrap();
    let two = Duration::from_secs(2);

    // Warm-up: 30 orders of the 2 s product, 20 of the 25 s one, on the
    // default schedule's times with a probe each.
    let first = place(
        &stack,
        &[(PRODUCT_TWO_SECONDS, 30), (PRODUCT_TWENTY_FIVE_SECONDS, 20)],
        "warm",
    )
    .await;
    let warm = notified(&stack, &first).await;
    assert!(
        warm.values()
            .all(|o| o.poll_plan.as_ref().map(|p| p.kind) == Some(PlanKind::WarmUp)),
        "the first orders warm up"
    );
    // Plans cached before the last observations landed run out.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let second = place(
        &stack,
        &[(PRODUCT_TWO_SECONDS, 10), (PRODUCT_TWENTY_FIVE_SECONDS, 10)],
        "learned",
    )
    .await;
    let learned = notified(&stack, &second).await;
    let default_first = Schedule::default().first_delay();
    let mut report = Vec::new();
    let lessons: Vec<String> = warm.values().map(|o| taught(&sim, o)).collect();
    for order in learned.values() {
        let plan = order.poll_plan.as_ref().expect("a plan");
        assert_eq!(plan.kind, PlanKind::Learned, "{order:?}");
        let product = order.lines[0].product_id.as_str();
        let takes = if product == PRODUCT_TWO_SECONDS {
            two
        } else {
            Duration::from_secs(25)
        };
        report.push(format!(
            "{product}: {} reads, plan {:?}, ending read due at {:.1} s, notified {:.1} s after its end ({})",
            reads(order),
            plan.plan.polls,
            due(order).as_secs_f64(),
            lag(&sim, order, takes).as_secs_f64(),
            taught(&sim, order)
        ));
        assert!(reads(order) <= 2, "{report:?} taught by {lessons:?}");
        if product == PRODUCT_TWO_SECONDS {
            // Due when its plan said (the first read, a few seconds after
            // payment, less its jitter; the create's store writes between
            // payment and scheduling on a loaded machine, at most 3 s),
            // before the default schedule's first read would be (10 s,
            // 8 s after its end).
            let due = due(order);
            let planned = Duration::from_secs(plan.plan.polls[0].into());
            assert!(
                due <= planned + Duration::from_secs(3) && due < default_first,
                "due {due:?} {report:?} taught by {lessons:?}"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
    stack.stop().await;
}
