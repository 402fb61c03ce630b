//! Stall-scan cost: index items one scan-stalled run reads at 1,000, 10,000
//! and 100,000 orders with 1 % pending. The run queries the sparse
//! `pending-orders` index only, so what it reads must follow the pending
//! orders, not the table.

use crate::lab::Lab;
use crate::table::{Section, fixed};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use foxrelay_shared::domain::parse_new_order;
use foxrelay_shared::foxreload::SupplierStatus;
use foxrelay_shared::store::{
    DynamoStore, IdempotencyStore, OrderRecord, PlacementStore, SupplierState,
};
use scan_stalled::sweep::SweepOptions;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// Ended orders, as the terminal write leaves them: outside the index.
async fn finished_orders(stack: &crate::lab::Stack, count: usize) -> Result<(), String> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let table = stack.resources.table_name().to_owned();
    let mut batches = Vec::new();
    for start in (0..count).step_by(25) {
        let requests: Vec<WriteRequest> = (start..(start + 25).min(count))
            .map(|i| {
                let item = HashMap::from([
                    ("pk".to_owned(), s(&format!("ORDER#done-{i:06}"))),
                    ("sk".to_owned(), s("ORDER")),
                    ("orderId".to_owned(), s(&format!("done-{i:06}"))),
                    ("status".to_owned(), s("completed")),
                ]);
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("an item"),
                    )
                    .build()
            })
            .collect();
        batches.push(requests);
    }
    let db = &stack.clients.dynamodb;
    for requests in batches {
        let out = db
            .batch_write_item()
            .request_items(&table, requests)
            .send()
            .await
            .map_err(|e| format!("batch write: {e}"))?;
        if out.unprocessed_items().is_some_and(|u| !u.is_empty()) {
            return Err("moto left batch items unprocessed".into());
        }
    }
    Ok(())
}

/// Pending orders through the store: polling, healthy, next poll due later.
async fn pending_orders(store: &DynamoStore, count: usize) -> Result<(), String> {
    let order = parse_new_order(br#"{"items":[{"productId":"product_fast","quantity":1}]}"#)
        .map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc();
    for i in 0..count {
        let id = format!("pending-{i:05}");
        let intent = OrderRecord::intent(
            id.clone(),
            &order,
            None,
            foxrelay_shared::domain::Principal::from_stored("bench"),
            now,
        );
        store
            .begin(&intent, None)
            .await
            .map_err(|e| e.to_string())?;
        store
            .claim_supplier_order(
                &id,
                &format!("sup-{id}"),
                &SupplierState::claimed(&SupplierStatus::Processing),
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        store
            .schedule_poll(&id, 1, now + time::Duration::minutes(10), now)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub async fn run(lab: &Lab) -> Result<Section, String> {
    let mut section = Section::new(
        "Stall-scan cost",
        "One scan-stalled run (the real handler, against moto) over tables of ended orders \
         with 1 % pending; items read are the index items its queries returned.",
        &[
            "orders in table",
            "pending",
            "index items read",
            "read per pending order",
            "share of the table read",
            "run s",
            "table set-up s",
        ],
    );
    let sim = foxreload_sim::Simulator::start(foxreload_sim::SimConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    for size in SIZES {
        crate::progress::step(format_args!(
            "a table of {size} orders: filling it, then one sweep"
        ));
        let stack = lab.stack(lab.clients().await).await?;
        let set_up = Instant::now();
        let pending = size / 100;
        let store = stack.resources.store(&stack.clients);
        // Pending orders first: moto copies a whole table for every
        // transaction, which a full table would make slow.
        pending_orders(&store, pending).await?;
        finished_orders(&stack, size - pending).await?;
        let setup = set_up.elapsed();
        let settings = stack.settings(&sim.base_url(), sim.api_key(), &[])?;
        let handler = scan_stalled::Handler::with_options(
            stack.context(settings).await?,
            SweepOptions::default(),
        );
        let started = Instant::now();
        let report = handler
            .handle(foxrelay_local::lambda::event(
                Default::default(),
                Duration::from_secs(900),
            ))
            .await
            .map_err(|e| e.to_string())?;
        let took: Duration = started.elapsed();
        if !report.complete {
            return Err(format!(
                "the sweep over {size} orders did not finish in one run"
            ));
        }
        section.row(vec![
            size.to_string(),
            pending.to_string(),
            report.index_items_read.to_string(),
            fixed(report.index_items_read as f64 / pending as f64, 2),
            format!(
                "{:.2} %",
                100.0 * report.index_items_read as f64 / size as f64
            ),
            fixed(took.as_secs_f64(), 2),
            fixed(setup.as_secs_f64(), 0),
        ]);
    }
    Ok(section)
}
