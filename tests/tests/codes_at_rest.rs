//! Codes sealed at rest, through moto's DynamoDB and KMS: what a reader of
//! the table sees (no code), what a code moved or changed does (it does not
//! open), what the functions read (every code, opened), codes stored in
//! clear before sealing (still read), and KMS away (nothing stored in
//! clear, the poll retried).

use aws_sdk_dynamodb::types::AttributeValue;
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::sealing::{DataKeys, KeyLimits, KmsDataKeys, Sealer};
use foxrelay_shared::startup::Context;
use foxrelay_shared::store::{DynamoStore, OrderReader, PollChain, StoreError};
use foxrelay_tests::world::{codes_of, quick_timing, world};
use foxrelay_tests::{TestStack, body_of, call, http_event, unnotified_completion};
use foxreload_sim::PRODUCT_FAST;
use std::collections::HashMap;
use time::OffsetDateTime;

type Item = HashMap<String, AttributeValue>;

/// Every item of the stack's table, as anyone allowed to read it sees it.
async fn whole_table(stack: &TestStack) -> Vec<Item> {
    stack.resources.every_item(&stack.clients).await.unwrap()
}

fn text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::B(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
        other => format!("{other:?}"),
    }
}

fn code_items(items: &[Item], order_id: &str) -> Vec<Item> {
    let pk = format!("CODES#{order_id}");
    items
        .iter()
        .filter(|i| i.get("pk").map(text).as_deref() == Some(pk.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn codes_are_stored_sealed_and_read_back_whole_by_another_container() {
    let w = world(quick_timing()).await;
    let id = w.place(PRODUCT_FAST, 3).await;
    let events = w
        .run_until_notified(
            &w.poll_handler(w.sns()),
            &w.source(1, false),
            std::slice::from_ref(&id),
        )
        .await;
    let codes = codes_of(&events[&id][0]);
    assert_eq!(codes.len(), 3);
    assert_eq!(codes, w.delivered_by_simulator(&id).await);

    // Whoever reads the table sees no code, in any attribute of any item.
    let items = whole_table(&w.h.stack).await;
    for item in &items {
        for (name, value) in item {
            for code in &codes {
                assert!(!text(value).contains(code.as_str()), "{name} holds a code");
            }
        }
    }
    let sealed = code_items(&items, &id);
    assert_eq!(sealed.len(), 3);
    for item in &sealed {
        assert!(matches!(item.get("codeSealed"), Some(AttributeValue::B(_))));
        assert!(!item.contains_key("code"), "no code in clear beside it");
    }
    // One data key sealed all three (one KMS call for the order).
    let sealer = w.h.context.sealer.as_ref().expect("the stack seals codes");
    assert_eq!(sealer.kms_calls().0, 1);

    // create-order in another container opens them with the key KMS
    // unwraps for it.
    let reader = Context::build(w.h.context.settings.clone(), w.h.context.aws.clone())
        .await
        .unwrap();
    let create = create_order::Handler::new(reader.clone());
    let read = call(
        &create,
        http_event("GET", &format!("/orders/{id}"), &[], None),
    )
    .await;
    assert_eq!(read.status_code, 200);
    let shown: Vec<String> = body_of(&read)["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, codes);
    assert_eq!(reader.sealer.as_ref().unwrap().kms_calls(), (0, 1));
}

#[tokio::test]
async fn a_sealed_code_moved_to_another_order_or_relabelled_does_not_open() {
    let w = world(quick_timing()).await;
    let placed = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    // Order ids as create-order makes them (GET reads no other).
    let (from_id, to_id) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    unnotified_completion(&w.store, &from_id, placed, "CODE-FROM").await;
    unnotified_completion(&w.store, &to_id, placed, "CODE-TO").await;
    assert_eq!(w.store.codes(&to_id).await.unwrap()[0].code, "CODE-TO");

    let table = w.h.stack.resources.table_name();
    let db = &w.h.stack.clients.dynamodb;
    let key = |order: &str| {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("CODES#{order}"))),
            ("sk".to_owned(), AttributeValue::S("CODE#000000".into())),
        ])
    };
    let from = db
        .get_item()
        .table_name(table)
        .set_key(Some(key(&from_id)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    // Someone with write access puts the first order's sealed code on the
    // second order's item: it does not open there.
    db.update_item()
        .table_name(table)
        .set_key(Some(key(&to_id)))
        .update_expression("SET codeSealed = :sealed")
        .expression_attribute_values(":sealed", from["codeSealed"].clone())
        .send()
        .await
        .unwrap();
    let moved = w.store.codes(&to_id).await;
    assert!(
        matches!(&moved, Err(StoreError::Corrupt { key, .. }) if *key == format!("CODES#{to_id}/CODE#000000")),
        "{moved:?}"
    );
    let read = call(
        &w.create,
        http_event("GET", &format!("/orders/{to_id}"), &[], None),
    )
    .await;
    assert_eq!(
        read.status_code, 500,
        "no code shown, the other order's least of all"
    );
    assert_eq!(body_of(&read)["error"]["code"], "unreadable");
    assert!(!format!("{:?}", read.body).contains("CODE-FROM"));

    // The value left where it was, its product relabelled: it does not
    // open either.
    db.update_item()
        .table_name(table)
        .set_key(Some(key(&from_id)))
        .update_expression("SET productId = :other")
        .expression_attribute_values(":other", AttributeValue::S("product_other".into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        w.store.codes(&from_id).await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn codes_stored_in_clear_are_read_only_while_upgrading_and_published_then() {
    let w = world(quick_timing()).await;
    let placed = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    // Stored by a version without a key: the code in clear.
    let unsealed = DynamoStore::new(
        w.h.stack.clients.dynamodb.clone(),
        w.h.stack.resources.table_name(),
    );
    unnotified_completion(&unsealed, "in-clear", placed, "CODE-IN-CLEAR").await;
    let items = code_items(&whole_table(&w.h.stack).await, "in-clear");
    assert_eq!(text(&items[0]["code"]), "CODE-IN-CLEAR");

    // By default a code in clear is refused: nobody slips one in.
    assert!(matches!(
        w.store.codes("in-clear").await,
        Err(StoreError::Corrupt { .. })
    ));
    // While upgrading (READ_CODES_IN_CLEAR), it is read, and poll-order
    // publishes it as it was stored.
    let upgrading =
        w.h.stack
            .resources
            .store(&w.h.stack.clients)
            .reading_codes_in_clear(true);
    assert_eq!(
        upgrading.codes("in-clear").await.unwrap()[0].code,
        "CODE-IN-CLEAR"
    );
    let order = upgrading.order("in-clear").await.unwrap().unwrap();
    let event = foxrelay_shared::notify::notify(
        &upgrading,
        &w.sns(),
        &order,
        OffsetDateTime::now_utc(),
        foxrelay_shared::settings::EventCodes::Included,
    )
    .await
    .unwrap();
    assert_eq!(codes_of(&event), ["CODE-IN-CLEAR"]);
}

#[tokio::test]
async fn a_code_slipped_in_clear_beside_sealed_ones_or_copied_to_another_position_is_refused() {
    let w = world(quick_timing()).await;
    let placed = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let table = w.h.stack.resources.table_name();
    let db = &w.h.stack.clients.dynamodb;
    for id in ["slipped", "swapped", "copied"] {
        unnotified_completion(&w.store, id, placed, "CODE-REAL").await;
    }
    let sealed_item = |items: &[Item], id: &str| code_items(items, id).remove(0);
    let items = whole_table(&w.h.stack).await;

    // A second code, in clear, under the order's oldest layout.
    let mut slipped = sealed_item(&items, "slipped");
    slipped.remove("codeSealed");
    slipped.insert("pk".into(), AttributeValue::S("ORDER#slipped".into()));
    slipped.insert("sk".into(), AttributeValue::S("CODE#000001".into()));
    slipped.insert("codeIndex".into(), AttributeValue::N("1".into()));
    slipped.insert("code".into(), AttributeValue::S("CODE-FAKE".into()));
    db.put_item()
        .table_name(table)
        .set_item(Some(slipped))
        .send()
        .await
        .unwrap();
    // The sealed code replaced with one in clear.
    let mut swapped = sealed_item(&items, "swapped");
    swapped.remove("codeSealed");
    swapped.insert("code".into(), AttributeValue::S("CODE-FAKE".into()));
    db.put_item()
        .table_name(table)
        .set_item(Some(swapped))
        .send()
        .await
        .unwrap();
    // The sealed code copied, as it is, to the next position.
    let mut copied = sealed_item(&items, "copied");
    copied.insert("sk".into(), AttributeValue::S("CODE#000001".into()));
    db.put_item()
        .table_name(table)
        .set_item(Some(copied))
        .send()
        .await
        .unwrap();

    for id in ["slipped", "swapped", "copied"] {
        let read = w.store.codes(id).await;
        assert!(
            matches!(read, Err(StoreError::Corrupt { .. })),
            "{id}: {read:?}"
        );
    }
}

#[tokio::test]
async fn a_store_without_the_key_cannot_open_a_sealed_code() {
    let w = world(quick_timing()).await;
    let placed = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    unnotified_completion(&w.store, "sealed", placed, "CODE-SEALED").await;
    // scan-stalled's store: no sealer (and its role may not unwrap the key).
    let keyless = DynamoStore::new(
        w.h.stack.clients.dynamodb.clone(),
        w.h.stack.resources.table_name(),
    );
    assert!(matches!(
        keyless.codes("sealed").await,
        Err(StoreError::Refused {
            operation: "read codes",
            ..
        })
    ));
}

#[tokio::test]
async fn a_data_key_unwraps_only_as_a_codes_key_under_the_stacks_key() {
    let stack = foxrelay_tests::stack().await;
    let key = &stack.resources.arns["StackKey"];
    let keys = KmsDataKeys::new(stack.clients.kms.clone(), key);
    let fresh = keys.generate().await.unwrap();
    assert_eq!(keys.unwrap(&fresh.wrapped).await.unwrap(), fresh.plaintext);
    // Asked without the codes' context (as SQS or SNS would ask for their
    // own keys), KMS refuses it: a role allowed only those cannot open a
    // code.
    let kms = &stack.clients.kms;
    let bare = kms
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(fresh.wrapped.clone()))
        .send()
        .await;
    assert!(bare.is_err(), "unwrapped without the codes' context");
    // Under another key, it does not unwrap either.
    let other = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let elsewhere = KmsDataKeys::new(kms.clone(), other.key_id);
    assert!(elsewhere.unwrap(&fresh.wrapped).await.is_err());
    let mut bent = fresh.wrapped.clone();
    let last = bent.len() - 1;
    bent[last] ^= 1;
    assert!(keys.unwrap(&bent).await.is_err());
}

#[tokio::test]
async fn with_kms_unreachable_no_code_is_stored_and_the_end_can_be_stored_later() {
    let w = world(quick_timing()).await;
    let placed = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    foxrelay_tests::pending_order(&w.store, "kms-down", placed, "processing").await;
    // KMS at an address nobody listens on.
    let nowhere = AwsClients::new(&load_local(&LocalAws::new("http://127.0.0.1:9")).await);
    let mut away = w.h.stack.clients.clone();
    away.kms = nowhere.kms;
    let store = w.h.stack.resources.store(&away);
    let order = store.order("kms-down").await.unwrap().unwrap();
    let terminal = foxrelay_tests::completed_with(&["CODE-KMS-DOWN"]);
    let failed = store.persist_terminal(&order, &terminal).await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable { .. })),
        "{failed:?}"
    );
    let after = w.store.order("kms-down").await.unwrap().unwrap();
    assert!(
        !after.status.is_terminal(),
        "the order stays open, to be polled again"
    );
    assert!(code_items(&whole_table(&w.h.stack).await, "kms-down").is_empty());
    // KMS back: the next poll stores the end, sealed.
    w.store.persist_terminal(&after, &terminal).await.unwrap();
    assert_eq!(
        w.store.codes("kms-down").await.unwrap()[0].code,
        "CODE-KMS-DOWN"
    );
}

#[tokio::test]
async fn reseal_seals_every_code_stored_in_clear_where_it_is_once() {
    let w = world(quick_timing()).await;
    let placed = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let unsealed = DynamoStore::new(
        w.h.stack.clients.dynamodb.clone(),
        w.h.stack.resources.table_name(),
    );
    for n in 0..3 {
        unnotified_completion(
            &unsealed,
            &format!("clear-{n}"),
            placed,
            &format!("CLEAR-{n}"),
        )
        .await;
    }
    // The oldest layout: a code beside its order.
    let db = &w.h.stack.clients.dynamodb;
    let mut legacy = code_items(&whole_table(&w.h.stack).await, "clear-2").remove(0);
    db.delete_item()
        .table_name(w.h.stack.resources.table_name())
        .key("pk", legacy["pk"].clone())
        .key("sk", legacy["sk"].clone())
        .send()
        .await
        .unwrap();
    legacy.insert("pk".into(), AttributeValue::S("ORDER#clear-2".into()));
    db.put_item()
        .table_name(w.h.stack.resources.table_name())
        .set_item(Some(legacy))
        .send()
        .await
        .unwrap();
    // And one sealed already.
    unnotified_completion(&w.store, "sealed-already", placed, "SEALED-0").await;
    // And one that does not read as a code (no item index).
    unnotified_completion(&unsealed, "malformed", placed, "CLEAR-MALFORMED").await;
    db.update_item()
        .table_name(w.h.stack.resources.table_name())
        .key("pk", AttributeValue::S("CODES#malformed".into()))
        .key("sk", AttributeValue::S("CODE#000000".into()))
        .update_expression("REMOVE itemIndex")
        .send()
        .await
        .unwrap();

    // A verifier under another key: the first sealed value does not open
    // again, so the pass stops and the code stays in clear.
    let kms = &w.h.stack.clients.kms;
    let other = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let wrong = Sealer::new(
        KmsDataKeys::new(kms.clone(), other.key_id),
        KeyLimits::default(),
    );
    assert!(matches!(
        w.store.reseal_page(None, &wrong).await,
        Err(StoreError::Refused { .. })
    ));
    let in_clear = whole_table(&w.h.stack)
        .await
        .into_iter()
        .filter(|i| i.contains_key("code"))
        .count();
    assert_eq!(in_clear, 4, "nothing changed");

    let verify = w.h.stack.resources.sealer(&w.h.stack.clients).unwrap();
    let (mut sealed, mut unreadable, mut cursor) = (0, Vec::new(), None);
    loop {
        let page = w.store.reseal_page(cursor, &verify).await.unwrap();
        sealed += page.sealed;
        unreadable.extend(page.unreadable);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sealed, 3);
    // The malformed one is reported, left as it is, and the pass went on.
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, "CODES#malformed/CODE#000000");
    for item in whole_table(&w.h.stack).await {
        if item.get("pk").map(text).as_deref() == Some("CODES#malformed") {
            continue;
        }
        assert!(!item.contains_key("code"), "{item:?}");
        for value in item.values() {
            assert!(!text(value).contains("CLEAR-"), "{item:?}");
        }
    }
    for n in 0..3 {
        let codes = w.store.codes(&format!("clear-{n}")).await.unwrap();
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].code, format!("CLEAR-{n}"));
    }
    assert_eq!(
        w.store.codes("sealed-already").await.unwrap()[0].code,
        "SEALED-0"
    );
    // Again: nothing more to seal.
    let again = w.store.reseal_page(None, &verify).await.unwrap();
    assert_eq!(
        (again.sealed, again.skipped, again.unreadable.len()),
        (0, 0, 1)
    );
    // Without a key, nothing is touched.
    assert!(matches!(
        unsealed.reseal_page(None, &verify).await,
        Err(StoreError::Refused { .. })
    ));
}
