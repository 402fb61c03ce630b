//! The cost section's table: per 1,000 orders, per service, beside Step
//! Functions Standard.

use super::*;

pub(super) fn dollars(value: f64) -> String {
    format!("${value:.5}")
}

/// One row of the comparison: an amount per order on each flow.
pub(super) struct Line {
    label: String,
    ours: f64,
    step_functions: f64,
    unit_price: f64,
    decimals: usize,
}

pub(super) fn report(deployed: &Deployed, m: &Measured, typical: f64, mix_gets: f64) -> Section {
    let n = ORDERS as f64;
    let create_gb_s = gb_seconds(&m.create_walls, deployed.create_order.memory_mb) / n;
    let poll_walls: Vec<Duration> = m.poll_invocations.iter().map(|(_, w)| *w).collect();
    let invocations = m.poll_invocations.len() as f64;
    let messages: usize = m.poll_invocations.iter().map(|(k, _)| k).sum();
    let poll_gb_s = gb_seconds(&poll_walls, deployed.poll_order.memory_mb) / n;
    // Step Functions invokes poll-order once per poll, one order each; its
    // duration is taken as this run's mean invocation (a batch of
    // `messages / invocations` handled concurrently: an upper bound).
    let gb_s_per_poll_invocation = poll_gb_s * n / invocations.max(1.0);
    let (write_requests, wru, read_requests, rru) = dynamodb(&m.orders, &m.stored);
    let sqs = |op: &str| m.orders.billed("sqs", op) as f64 / n;
    let mut lines = vec![
        Line {
            label: "API Gateway HTTP API requests".into(),
            ours: m.create_walls.len() as f64 / n,
            step_functions: m.create_walls.len() as f64 / n,
            unit_price: price::API_GATEWAY_HTTP_REQUEST,
            decimals: 2,
        },
        Line {
            label: "Lambda create-order invocations".into(),
            ours: m.create_walls.len() as f64 / n,
            step_functions: m.create_walls.len() as f64 / n,
            unit_price: price::LAMBDA_REQUEST,
            decimals: 2,
        },
        Line {
            label: format!(
                "Lambda create-order GB-s ({} MB)",
                deployed.create_order.memory_mb
            ),
            ours: create_gb_s,
            step_functions: create_gb_s,
            unit_price: price::LAMBDA_ARM64_GB_SECOND,
            decimals: 4,
        },
        Line {
            label: "Lambda poll-order invocations".into(),
            ours: invocations / n,
            step_functions: m.polls,
            unit_price: price::LAMBDA_REQUEST,
            decimals: 2,
        },
        Line {
            label: format!(
                "Lambda poll-order GB-s ({} MB)",
                deployed.poll_order.memory_mb
            ),
            ours: poll_gb_s,
            step_functions: m.polls * gb_s_per_poll_invocation,
            unit_price: price::LAMBDA_ARM64_GB_SECOND,
            decimals: 4,
        },
    ];
    // SQS as billed (64 KB chunks), sends first; empty receives are per
    // queue, not per order (a fixed row).
    let mut sqs_ops: Vec<&str> = m
        .orders
        .billed
        .keys()
        .filter(|c| c.service == "sqs" && !c.operation.ends_with("(empty)"))
        .map(|c| c.operation.as_str())
        .collect();
    sqs_ops.sort_by_key(|op| (!op.starts_with("Send"), !op.starts_with("Receive"), *op));
    for op in sqs_ops {
        let label = match op {
            "ReceiveMessage" => "SQS ReceiveMessage requests (with messages)".to_owned(),
            op => format!("SQS {op} requests"),
        };
        lines.push(Line {
            label,
            ours: sqs(op),
            step_functions: 0.0,
            unit_price: price::SQS_STANDARD_REQUEST,
            decimals: 2,
        });
    }
    lines.extend([
        Line {
            label: format!(
                "DynamoDB write request units ({:.1} write requests)",
                write_requests / n
            ),
            ours: wru / n,
            step_functions: wru / n,
            unit_price: price::DYNAMODB_WRITE_REQUEST_UNIT,
            decimals: 2,
        },
        Line {
            label: format!(
                "DynamoDB read request units ({:.1} read requests)",
                read_requests / n
            ),
            ours: rru / n,
            step_functions: rru / n,
            unit_price: price::DYNAMODB_READ_REQUEST_UNIT,
            decimals: 2,
        },
        Line {
            label: "SNS publishes".into(),
            ours: m.orders.billed("sns", "Publish") as f64 / n,
            step_functions: m.orders.billed("sns", "Publish") as f64 / n,
            unit_price: price::SNS_STANDARD_PUBLISH,
            decimals: 2,
        },
        Line {
            label: "Step Functions Standard state transitions".into(),
            ours: 0.0,
            step_functions: step_functions_transitions(m.polls),
            unit_price: price::STEP_FUNCTIONS_TRANSITION,
            decimals: 2,
        },
    ]);

    let mut section = Section::new(
        "Cost per 1,000 orders",
        "",
        &[
            "AWS charge",
            "foxrelay per order",
            "foxrelay $ / 1,000 orders",
            "Step Functions per order",
            "Step Functions $ / 1,000 orders",
        ],
    );
    let (mut ours_total, mut sf_total) = (0.0, 0.0);
    for line in &lines {
        let ours = per_thousand(line.ours, line.unit_price);
        let sf = per_thousand(line.step_functions, line.unit_price);
        ours_total += ours;
        sf_total += sf;
        section.row(vec![
            line.label.clone(),
            fixed(line.ours, line.decimals),
            dollars(ours),
            fixed(line.step_functions, line.decimals),
            dollars(sf),
        ]);
    }
    section.row(vec![
        "Total per 1,000 orders".into(),
        String::new(),
        dollars(ours_total),
        String::new(),
        format!(
            "{} ({} foxrelay)",
            dollars(sf_total),
            ratio(sf_total, ours_total)
        ),
    ]);
    let (idle_dollars, idle_what) = scan_run(deployed, &m.idle_scan, &m.stored);
    let (busy_dollars, busy_what) = scan_run(deployed, &m.busy_scan, &m.stored);
    section.row(vec![
        "Fixed: scan-stalled, 8,640 runs / 30 days (idle)".into(),
        idle_what,
        format!("{} / month", dollars(idle_dollars * SCANS_PER_MONTH)),
        "not modelled".into(),
        "–".into(),
    ]);
    let idle_receive = IDLE_RECEIVES_PER_POLLER_MONTH * price::SQS_STANDARD_REQUEST;
    section.row(vec![
        "Fixed: idle long polls of the event source, per poller".into(),
        format!("{IDLE_RECEIVES_PER_POLLER_MONTH:.0} ReceiveMessage / month"),
        format!("{} / month", dollars(idle_receive)),
        "none (no queue)".into(),
        "–".into(),
    ]);

    // The note: how it was measured, and what is approximate.
    let per_op = |service: &str| -> String {
        m.orders
            .requests
            .iter()
            .filter(|(c, _)| c.service == service && !c.operation.ends_with("(empty)"))
            .map(|(c, k)| format!("{} {:.2}", c.operation, *k as f64 / n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mean_ms = |walls: &[Duration]| {
        walls.iter().map(|w| billed_ms(*w)).sum::<u64>() as f64 / walls.len().max(1) as f64
    };
    let extra_100ms = |invocations: f64, memory_mb: u64| {
        per_thousand(
            0.1 * invocations * memory_mb as f64 / 1_024.0,
            price::LAMBDA_ARM64_GB_SECOND,
        )
    };
    let ours_latency = extra_100ms(1.0, deployed.create_order.memory_mb)
        + extra_100ms(invocations / n, deployed.poll_order.memory_mb);
    let sf_latency = extra_100ms(1.0, deployed.create_order.memory_mb)
        + extra_100ms(m.polls, deployed.poll_order.memory_mb);
    // What one more poll costs, at most: the polling phase over its polls
    // (it includes the last poll's store and publish).
    let (_, polling_wru, _, polling_rru) = dynamodb(&m.polling, &m.stored);
    let polling_store = per_thousand(polling_wru / n, price::DYNAMODB_WRITE_REQUEST_UNIT)
        + per_thousand(polling_rru / n, price::DYNAMODB_READ_REQUEST_UNIT)
        + per_thousand(
            m.polling.billed("sns", "Publish") as f64 / n,
            price::SNS_STANDARD_PUBLISH,
        );
    let polls = m.polls.max(1.0);
    let phase = |flow: fn(&Line) -> f64| -> f64 {
        lines
            .iter()
            .filter(|l| l.label.starts_with("SQS") || l.label.starts_with("Lambda poll-order"))
            .map(|l| per_thousand(flow(l), l.unit_price))
            .sum::<f64>()
    };
    let ours_per_poll = (phase(|l| l.ours) + polling_store) / polls;
    let sf_per_poll = (phase(|l| l.step_functions) + polling_store) / polls
        + per_thousand(3.0, price::STEP_FUNCTIONS_TRANSITION);
    let events = m
        .events
        .iter()
        .map(|(kind, k)| format!("{k} {kind}"))
        .collect::<Vec<_>>()
        .join(", ");
    section.note = format!(
        "Counted from one run: {ORDERS} orders of `{PRODUCT_FAST}` ×{QUANTITY} ({events}) through the three real \
         handlers with the template's settings, the AWS SDK pointed at a proxy that forwards every request to moto \
         unchanged and counts it by service and operation, and the FoxReload simulator finishing each order {typical:.1} s \
         after it is placed (the median of the schedule section's mix), polled on the default schedule in real time: \
         {polls:.2} GETs per order. One `POST /orders` per order (an HTTP API event to create-order); poll-order fed by \
         {POLLERS} pollers of the local SQS event source (batches of up to {batch}, {long_poll} s long polls) as Lambda's \
         mapping feeds it, {fill:.1} messages per invocation here: at low traffic each poll is its own receive, invocation \
         and delete. Requests per order: DynamoDB {dynamo}; SQS {sqs_ops}; SNS {sns_ops}. The mix's mean is {mix_gets:.1} \
         GETs per order (a tail of slow orders); each further poll adds at most ${ours_poll:.4} per 1,000 orders here, \
         ${sf_poll:.4} on Step Functions.\n\n\
         Approximated: Lambda GB-s are the handlers' wall times in this process (create-order {create_ms:.0} ms, \
         poll-order {poll_ms:.0} ms per invocation on average, against local moto and the simulator), rounded up to 1 ms, \
         × the template's MemorySize; AWS's differ, and each 100 ms more per invocation adds ${ours_lat:.4} per 1,000 \
         orders here, ${sf_lat:.4} on Step Functions. DynamoDB capacity is computed, not reported: items sized by names \
         and values; 1 WRU per KB written (2 in a transaction, condition checks as writes, failed conditions billed), an \
         update sized on the item as stored last; each write to an item in the sparse pending-orders index (projection \
         ALL) one more write; reads 1 RRU per 4 KB strongly consistent, 0.5 on the index. The Step Functions flow is a \
         model, not a run: a Task for create-order, per poll a Wait, a Task for poll-order and a Choice, then an SNS \
         publish Task and Succeed (1 + 3 × polls + 2 transitions), one poll-order invocation per poll lasting this run's \
         mean invocation (an upper bound), the same DynamoDB and SNS requests, no SQS.\n\n\
         Not per order: scan-stalled (one run with the {ORDERS} orders pending: ${busy:.6}, {busy_what}); Secrets \
         Manager, one GetSecretValue per container start ({secrets} here, for 3 containers; ${secret_price} each); \
         Lambda's init, billed per cold start; the event source's empty receives ({empty} at the end of this run); KMS for the \
         codes' data keys, {kms_generate} GenerateDataKey and {kms_decrypt} Decrypt in this run: one data key per \
         container and 5 minutes, not per order (${kms} per 10,000 requests; SQS, SNS and DynamoDB cache their own). \
         Not counted: CloudWatch Logs, X-Ray traces \
         (Tracing: Active), email deliveries, free tiers. Prices: published us-east-1 on-demand, 2026-11, Lambda arm64.",
        polls = m.polls,
        batch = deployed.batch_size,
        long_poll = LONG_POLL.as_secs(),
        fill = messages as f64 / invocations.max(1.0),
        dynamo = per_op("dynamodb"),
        sqs_ops = per_op("sqs"),
        sns_ops = per_op("sns"),
        ours_poll = ours_per_poll,
        sf_poll = sf_per_poll,
        create_ms = mean_ms(&m.create_walls),
        poll_ms = mean_ms(&poll_walls),
        ours_lat = ours_latency,
        sf_lat = sf_latency,
        busy = busy_dollars,
        secrets = m.starts.requests("secretsmanager", "GetSecretValue"),
        secret_price = price::SECRETS_MANAGER_CALL,
        empty = m.orders.requests("sqs", "ReceiveMessage (empty)"),
        kms = fixed(price::KMS_REQUEST * 1e4, 2),
        kms_generate = m.orders.requests("kms", "GenerateDataKey"),
        kms_decrypt = m.orders.requests("kms", "Decrypt"),
    );
    section
}
