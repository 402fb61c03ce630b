//! The three function binaries as Lambda runs them (a local Runtime API),
//! against moto and the simulator:
//!
//! - every sample event in `events/` is handled by its function (the files
//!   `cargo lambda invoke --data-file` and `sam local invoke -e` take);
//! - one order created, polled to its end and swept: every JSON log line
//!   carries the Lambda request id and the X-Ray trace id of its invocation,
//!   and every line about the order its id, each at one top-level key.

use foxrelay_shared::settings::names;
use foxrelay_shared::telemetry::json_lines::{FUNCTION, ORDER_ID, REQUEST_ID, TRACE_ID};
use foxrelay_shared::testing::{FunctionProcess, Outcome, RuntimeApi, trace_id};
use foxrelay_tests::binaries::function_binary;
use foxrelay_tests::{TestStack, stack};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A function binary running against its own Runtime API.
struct Function {
    name: &'static str,
    api: RuntimeApi,
    process: FunctionProcess,
}

impl Function {
    async fn start(name: &'static str, env: &[(&str, String)]) -> Self {
        let api = RuntimeApi::start().await.expect("runtime API starts");
        let binary = function_binary(name);
        let process = FunctionProcess::spawn(&binary.to_string_lossy(), &api, env)
            .unwrap_or_else(|e| panic!("{binary:?}: {e}"));
        Self { name, api, process }
    }

    async fn invoke(&self, event: Value) -> Value {
        match self.api.invoke(event, Duration::from_secs(30)).await {
            Some(Outcome::Response(answer)) => answer,
            other => panic!("{} answered {other:?}", self.name),
        }
    }

    /// Stops the function; its JSON log lines (metric lines left out).
    async fn log_lines(self) -> Vec<Value> {
        self.process
            .stop()
            .await
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("{}: not one JSON object ({e}): {line}", self.name))
            })
            .filter(|line| line.get("_aws").is_none())
            .collect()
    }
}

/// The environment the template gives the functions, pointed at moto and
/// the simulator.
fn environment(
    stack: &TestStack,
    sim: &foxreload_sim::Simulator,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let deployed = stack
        .resources
        .function_environment(&stack.template)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut env: Vec<(&str, String)> = names::DEPLOYED
        .iter()
        .filter_map(|name| deployed.get(*name).map(|value| (*name, value.clone())))
        .collect();
    env.push((names::FOXRELOAD_BASE_URL, sim.base_url()));
    env.push((names::FOXRELOAD_API_KEY, sim.api_key().to_owned()));
    env.push((
        names::AWS_ENDPOINT_URL,
        foxrelay_tests::moto().endpoint_url(),
    ));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

async fn simulator() -> foxreload_sim::Simulator {
    foxreload_sim::Simulator::start(foxreload_sim::SimConfig::default())
        .await
        .expect("simulator starts")
}

#[tokio::test]
async fn every_sample_event_is_handled_by_its_function() {
    let stack = stack().await;
    let sim = simulator().await;
    let env = environment(&stack, &sim, &[("RUST_LOG", "warn")]);

    let create = Function::start("create-order", &env).await;
    let placed = create.invoke(sample("create-order-post.json")).await;
    assert_eq!(placed["statusCode"], 202, "{placed}");
    let order: Value = serde_json::from_str(placed["body"].as_str().unwrap()).unwrap();
    assert_eq!(order["customerReference"], "cart-1001");
    // The sample's order id names no order: another caller's or none.
    let read = create.invoke(sample("create-order-get.json")).await;
    assert_eq!(read["statusCode"], 404, "{read}");

    // The samples' orders do not exist: each message is kept for
    // redelivery, by its message id.
    let poll = Function::start("poll-order", &env).await;
    let batch = sample("poll-order-batch.json");
    let answer = poll.invoke(batch.clone()).await;
    let kept: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    let sent: Vec<&str> = batch["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept.iter().collect::<std::collections::BTreeSet<_>>(),
        sent.iter().collect()
    );

    let sweep = Function::start("scan-stalled", &env).await;
    let report = sweep.invoke(sample("scan-stalled-schedule.json")).await;
    assert_eq!(report["complete"], true, "{report}");
    // The order the sample placed is young: seen, not stalled.
    assert_eq!(report["stalledSeen"], 0, "{report}");
}

#[tokio::test]
async fn every_log_line_of_a_create_a_poll_and_a_sweep_carries_its_ids_at_the_top_level() {
    let stack = stack().await;
    let sim = simulator().await;
    // Stalled after 10 s, so the sweep has something to say about the order.
    let env = environment(
        &stack,
        &sim,
        &[("RUST_LOG", "info"), (names::STALL_AFTER_SECS, "10")],
    );
    let create = Function::start("create-order", &env).await;
    let poll = Function::start("poll-order", &env).await;
    let sweep = Function::start("scan-stalled", &env).await;

    let placed = create.invoke(sample("create-order-post.json")).await;
    assert_eq!(placed["statusCode"], 202, "{placed}");
    let order_id =
        serde_json::from_str::<Value>(placed["body"].as_str().unwrap()).unwrap()["orderId"]
            .as_str()
            .unwrap()
            .to_owned();
    let store = stack.resources.store(&stack.clients);
    use foxrelay_shared::store::OrderReader;

    // Stalled, unpolled: the sweep alerts it.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let report = sweep.invoke(sample("scan-stalled-schedule.json")).await;
    assert_eq!(report["stalledAlerted"], 1, "{report}");

    // Then polled to its end, link after link, as SQS would hand them over.
    let mut ended = false;
    for _ in 0..10 {
        let record = store.order(&order_id).await.unwrap().expect("the order");
        if record.notified_at.is_some() {
            ended = true;
            break;
        }
        let mut batch = sample("poll-order-batch.json");
        batch["Records"].as_array_mut().unwrap().truncate(1);
        batch["Records"][0]["body"] =
            json!({"orderId": order_id, "seq": record.poll_seq, "kind": "poll"})
                .to_string()
                .into();
        poll.invoke(batch).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(ended, "the order was not notified");

    for function in [create, poll, sweep] {
        let name = function.name;
        let mut about_the_order = 0;
        let lines = function.log_lines().await;
        assert!(!lines.is_empty(), "{name} logged nothing");
        for line in &lines {
            assert_eq!(line[FUNCTION], name, "{line}");
            let request = line[REQUEST_ID]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no {REQUEST_ID}: {line}"));
            assert!(request.starts_with("req-"), "{line}");
            assert_eq!(
                line[TRACE_ID].as_str(),
                Some(trace_id(request).as_str()),
                "{name}: the trace of another invocation: {line}"
            );
            let mentions = line.to_string().contains(&order_id);
            if mentions || name != "scan-stalled" {
                assert_eq!(
                    line[ORDER_ID].as_str(),
                    Some(order_id.as_str()),
                    "{name}: a line about the order without its id at {ORDER_ID}: {line}"
                );
                about_the_order += 1;
            }
        }
        assert!(about_the_order > 0, "{name} logged nothing about the order");
        if name == "create-order" {
            assert!(
                lines
                    .iter()
                    .any(|l| l["api_request_id"] == "Jt3wQjRvoAMEVdA="),
                "create-order logs API Gateway's request id"
            );
        }
        if name == "scan-stalled" {
            assert!(
                lines
                    .iter()
                    .any(|l| l[ORDER_ID] == order_id.as_str()
                        && l["message"] == "operations alerted"),
                "the sweep's alert is logged with the order id"
            );
        }
    }
}
