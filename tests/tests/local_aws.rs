//! The template's resources, created in moto through the real SDK, behave as
//! the functions need: an item round-trips through the table (and its sparse
//! index), a delayed message stays hidden for its delay, a publish reaches a
//! subscribed queue, the dead-letter redrive is wired, and the API key is read
//! from Secrets Manager. Behind the one endpoint, DynamoDB and the other
//! services are moto servers of their own.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use foxrelay_shared::aws::resolve_api_key;
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::settings::{ApiKeySource, names};
use foxrelay_tests::{moto, stack};
use std::time::{Duration, Instant};

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

#[tokio::test]
async fn table_round_trips_an_item_and_indexes_only_pending_ones() {
    let stack = stack().await;
    let db = &stack.clients.dynamodb;
    let table = stack.resources.table_name();

    for (id, pending) in [("o1", true), ("o2", false)] {
        let mut put = db
            .put_item()
            .table_name(table)
            .item("pk", s(&format!("ORDER#{id}")))
            .item("sk", s("ORDER"))
            .item(
                "status",
                s(if pending { "processing" } else { "completed" }),
            )
            .condition_expression("attribute_not_exists(pk)");
        if pending {
            put = put
                .item("pendingPk", s("PENDING"))
                .item("pendingSk", s(&format!("2026-11-28T10:00:00Z#{id}")));
        }
        put.send().await.expect("conditional put of a new item");
    }

    let got = db
        .get_item()
        .table_name(table)
        .key("pk", s("ORDER#o1"))
        .key("sk", s("ORDER"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(got.item().unwrap()["status"], s("processing"));

    let again = db
        .put_item()
        .table_name(table)
        .item("pk", s("ORDER#o1"))
        .item("sk", s("ORDER"))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert!(
        again
            .unwrap_err()
            .into_service_error()
            .is_conditional_check_failed_exception(),
        "a second conditional put must be refused"
    );

    let pending = db
        .query()
        .table_name(table)
        .index_name("pending-orders")
        .key_condition_expression("pendingPk = :p")
        .expression_attribute_values(":p", s("PENDING"))
        .send()
        .await
        .unwrap();
    assert_eq!(pending.count(), 1, "the sparse index holds only o1");
    assert_eq!(pending.items()[0]["pk"], s("ORDER#o1"));

    let ttl = db
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description().unwrap().attribute_name(),
        Some("expiresAt")
    );
}

#[tokio::test]
async fn delayed_message_stays_hidden_until_its_delay_passes() {
    let stack = stack().await;
    let sqs = &stack.clients.sqs;
    let queue = stack.resources.poll_queue_url();

    let sent_at = Instant::now();
    sqs.send_message()
        .queue_url(queue)
        .message_body(r#"{"orderId":"o1","seq":1}"#)
        .delay_seconds(2)
        .send()
        .await
        .unwrap();

    let early = sqs
        .receive_message()
        .queue_url(queue)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(
        early.messages().is_empty(),
        "visible before its delay passed"
    );

    let mut body = None;
    while body.is_none() && sent_at.elapsed() < Duration::from_secs(10) {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        body = got
            .messages()
            .first()
            .and_then(|m| m.body().map(str::to_owned));
    }
    assert_eq!(body.as_deref(), Some(r#"{"orderId":"o1","seq":1}"#));
    assert!(sent_at.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn poll_queue_redrives_to_the_dead_letter_queue_with_the_template_settings() {
    let stack = stack().await;
    let attributes = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(stack.resources.poll_queue_url())
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "180");
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"].as_str(),
        stack
            .resources
            .arns
            .get("PollDeadLetterQueue")
            .map(String::as_str)
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
}

#[tokio::test]
async fn publish_reaches_a_subscribed_queue_with_its_attributes() {
    let stack = stack().await;
    let (sns, sqs) = (&stack.clients.sns, &stack.clients.sqs);
    let subscriber = sqs
        .create_queue()
        .queue_name(format!("{}-subscriber", stack.prefix))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let subscriber_arn = sqs
        .get_queue_attributes()
        .queue_url(&subscriber)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(stack.resources.order_events_topic_arn())
        .protocol("sqs")
        .endpoint(&subscriber_arn)
        .attributes("RawMessageDelivery", "true")
        .attributes("FilterPolicy", r#"{"type": ["order.completed"]}"#)
        .send()
        .await
        .unwrap();

    let publish = |kind: &'static str| {
        sns.publish()
            .topic_arn(stack.resources.order_events_topic_arn())
            .message(format!(r#"{{"type":"{kind}"}}"#))
            .message_attributes(
                "type",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(kind)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    publish("order.failed").await.unwrap();
    publish("order.completed").await.unwrap();

    let got = sqs
        .receive_message()
        .queue_url(&subscriber)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let bodies: Vec<_> = got.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(
        bodies,
        vec![r#"{"type":"order.completed"}"#],
        "the filter policy lets only the completed event through, raw"
    );
}

#[tokio::test]
async fn api_key_is_read_once_from_secrets_manager() {
    let stack = stack().await;
    let secrets = &stack.clients.secrets;
    let plain = secrets
        .create_secret()
        .name(format!("{}-plain", stack.prefix))
        .secret_string("fr-live-123")
        .send()
        .await
        .unwrap();
    let as_json = secrets
        .create_secret()
        .name(format!("{}-json", stack.prefix))
        .secret_string(r#"{"apiKey": "fr-live-456"}"#)
        .send()
        .await
        .unwrap();

    for (arn, expected) in [
        (plain.arn().unwrap(), "fr-live-123"),
        (as_json.arn().unwrap(), "fr-live-456"),
    ] {
        let key = resolve_api_key(&ApiKeySource::SecretArn(arn.to_owned()), secrets)
            .await
            .unwrap();
        assert_eq!(key.expose(), expected);
    }

    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-absent-AbCdEf",
        stack.prefix
    );
    let err = resolve_api_key(&ApiKeySource::SecretArn(missing.clone()), secrets)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&missing), "{err}");
}

#[tokio::test]
async fn function_environment_from_the_template_names_the_created_resources() {
    let stack = stack().await;
    let env = stack
        .resources
        .function_environment(&stack.template)
        .unwrap();
    assert_eq!(env[names::TABLE_NAME], stack.resources.table_name());
    assert_eq!(env[names::POLL_QUEUE_URL], stack.resources.poll_queue_url());
    assert!(env[names::ORDER_EVENTS_TOPIC_ARN].contains("order-events"));
    assert!(env[names::OPS_ALERTS_TOPIC_ARN].contains("ops-alerts"));
    assert_eq!(env[names::FOXRELOAD_AUTO_PAY], "true");
    assert!(!env.contains_key(names::FOXRELOAD_API_KEY_SECRET_ARN));
    // The stack's key, created in moto, seals codes.
    assert_eq!(
        env[names::CODES_KMS_KEY_ID],
        stack.resources.arns["StackKey"]
    );

    // Plus a plain key and a local endpoint, it is a complete set of settings.
    let mut full = env.clone();
    full.insert(names::FOXRELOAD_API_KEY.into(), "k".into());
    full.insert(
        names::FOXRELOAD_BASE_URL.into(),
        "http://127.0.0.1:9".into(),
    );
    let settings =
        foxrelay_shared::settings::Settings::from_lookup(|n| full.get(n).cloned()).unwrap();
    assert_eq!(settings.resources.table_name, stack.resources.table_name());
    assert!(settings.resources.codes_key.is_some());
}

#[tokio::test]
async fn a_stack_provisioned_again_keeps_its_key_so_its_sealed_codes_still_open() {
    let stack = stack().await;
    let placed = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let store = stack.resources.store(&stack.clients);
    foxrelay_tests::unnotified_completion(&store, "kept", placed, "CODE-KEPT").await;
    // As `foxrelay-local` started again over the same resources.
    let again =
        foxrelay_local::provision::provision(&stack.template, &stack.clients, &stack.prefix)
            .await
            .unwrap();
    assert_eq!(again.arns["StackKey"], stack.resources.arns["StackKey"]);
    use foxrelay_shared::store::OrderReader;
    let codes = again.store(&stack.clients).codes("kept").await.unwrap();
    assert_eq!(codes[0].code, "CODE-KEPT");
}

#[tokio::test]
async fn dynamodb_is_served_apart_from_the_queues_and_topics_behind_one_endpoint() {
    let stack = stack().await;
    let table = stack.resources.table_name();
    let queue = stack.resources.poll_queue_url();
    let queue_name = queue.rsplit('/').next().unwrap_or_default();
    let dynamodb =
        AwsClients::new(&load_local(&LocalAws::new(moto().dynamodb_endpoint_url())).await);
    let others = AwsClients::new(&load_local(&LocalAws::new(moto().others_endpoint_url())).await);

    let described = |clients: &AwsClients| {
        let request = clients.dynamodb.describe_table().table_name(table);
        async move { request.send().await.is_ok() }
    };
    assert!(
        described(&dynamodb).await,
        "the table is on DynamoDB's server"
    );
    assert!(!described(&others).await, "and only there");

    let listed = |clients: &AwsClients| {
        let request = clients.sqs.list_queues().queue_name_prefix(queue_name);
        async move {
            let answer = request.send().await.unwrap();
            answer
                .queue_urls()
                .iter()
                .any(|url| url.ends_with(queue_name))
        }
    };
    assert!(listed(&others).await, "the queue is on the others' server");
    assert!(!listed(&dynamodb).await, "and only there");
}

/// moto, as the local stack wraps it (update expressions checked at their
/// root only), refuses the update expressions DynamoDB refuses, overlaps
/// and repeated clauses deep in a long expression among them, and applies
/// a valid one of many actions whole.
#[tokio::test]
async fn update_expressions_are_refused_and_applied_as_dynamodb_does() {
    let stack = stack().await;
    let db = &stack.clients.dynamodb;
    let table = stack.resources.table_name();
    let many: Vec<String> = (0..12).map(|i| format!("a{i} = :v")).collect();
    let refused = [
        format!("SET {}, a11 = :w", many.join(", ")),
        format!("SET {}, a3.b = :w", many.join(", ")),
        format!("SET {} SET b = :w", many.join(", ")),
        format!("SET {} REMOVE r1 REMOVE r2", many.join(", ")),
        format!("SET {} REMOVE a5", many.join(", ")),
        // An undefined name before a repeated path: still the repeat's 400.
        "SET #undefined = :v, b = :v, b = :w".to_owned(),
    ];
    for expression in &refused {
        let answer = db
            .update_item()
            .table_name(table)
            .key("pk", s("ORDER#expr"))
            .key("sk", s("ORDER"))
            .update_expression(expression)
            .expression_attribute_values(":v", s("v"))
            .expression_attribute_values(":w", s("w"))
            .send()
            .await;
        let error = answer.expect_err(expression).into_service_error();
        assert_eq!(
            error.meta().code(),
            Some("ValidationException"),
            "{expression}: {error:?}"
        );
    }
    let stored = || async {
        db.get_item()
            .table_name(table)
            .key("pk", s("ORDER#expr"))
            .key("sk", s("ORDER"))
            .send()
            .await
            .unwrap()
            .item
    };
    assert!(stored().await.is_none(), "a refused update wrote nothing");

    let expression = format!(
        "SET {}, n = if_not_exists(n, :zero) + :one REMOVE r1, r2",
        many.join(", ")
    );
    for _ in 0..2 {
        db.update_item()
            .table_name(table)
            .key("pk", s("ORDER#expr"))
            .key("sk", s("ORDER"))
            .update_expression(&expression)
            .expression_attribute_values(":v", s("v"))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .expect(&expression);
    }
    let item = stored().await.expect("the update's item");
    assert_eq!(item["n"], AttributeValue::N("2".into()));
    assert!(
        (0..12).all(|i| item[&format!("a{i}")] == s("v")),
        "{item:?}"
    );
    assert_eq!(item.len(), 2 + 12 + 1, "{item:?}");
}
