//! The fast tier of poll-order: the chain, reconciliation and the end of an
//! order, in process, over the in-memory adapters on a paused clock. The
//! same behaviours run against moto and the simulator in the `tests` crate.

use foxrelay_shared::clock::Clock;
use foxrelay_shared::domain::event::OrderEvent;
use foxrelay_shared::domain::{OrderStatus, PollKind, PollMessage};
use foxrelay_shared::foxreload::{HeldBy, Operation, SupplierError, Uncertainty};
use foxrelay_shared::queue::PollQueue;
use foxrelay_shared::store::{OrderReader, OrderRecord};
use foxrelay_shared::testing::seed::{self, Seeded};
use foxrelay_shared::testing::{
    CreateStep, Ending, MemoryPublisher, MemoryQueue, MemoryStore, ScriptedSupplier, TestClock,
    refusal,
};
use poll_order::poll::{Handled, PollError, PollOptions, Poller};
use std::time::Duration;
use time::macros::datetime;
use tokio::time::Instant;

type TestPoller =
    Poller<MemoryStore, MemoryQueue, ScriptedSupplier<TestClock>, MemoryPublisher, TestClock>;

fn poller() -> TestPoller {
    let clock = TestClock::starting_at(datetime!(2026-11-30 12:00 UTC));
    Poller {
        store: MemoryStore::new(),
        queue: MemoryQueue::new(),
        supplier: ScriptedSupplier::new(clock),
        publisher: MemoryPublisher::new(),
        clock,
        options: PollOptions::default(),
    }
}

async fn seed(p: &TestPoller, id: &str) -> Seeded {
    seed::place(
        &p.store,
        &p.supplier,
        &p.queue,
        &p.clock,
        id,
        Duration::from_secs(5),
    )
    .await
}

/// SQS as the chain sees it: each message delivered when its delay is
/// over; a failed one delivered again after the visibility timeout, and
/// after five receives moved to the dead-letter queue.
#[derive(Default)]
struct Sqs {
    waiting: Vec<(Instant, String, u32)>,
    dead: Vec<String>,
}

const VISIBILITY: Duration = Duration::from_secs(60);

impl Sqs {
    fn collect(&mut self, p: &TestPoller) {
        let now = Instant::now();
        for sent in p.queue.take() {
            self.waiting
                .push((now + sent.delay, sent.message.to_json(), 0));
        }
    }

    /// Delivers the next message due; `None` when none waits.
    async fn deliver(&mut self, p: &TestPoller) -> Option<Result<Handled, PollError>> {
        self.collect(p);
        let next = (0..self.waiting.len()).min_by_key(|i| self.waiting[*i].0)?;
        let (due, body, receives) = self.waiting.remove(next);
        tokio::time::sleep_until(due).await;
        let outcome = p.handle(&body).await;
        if outcome.is_err() {
            if receives + 1 >= 5 {
                self.dead.push(body);
            } else {
                self.waiting
                    .push((Instant::now() + VISIBILITY, body, receives + 1));
            }
        }
        self.collect(p);
        Some(outcome)
    }

    /// Delivers until nothing waits or `max` messages were handled.
    async fn drain(&mut self, p: &TestPoller, max: usize) -> Vec<Result<Handled, PollError>> {
        let mut outcomes = Vec::new();
        while outcomes.len() < max {
            match self.deliver(p).await {
                Some(outcome) => outcomes.push(outcome),
                None => break,
            }
        }
        outcomes
    }
}

async fn stored(p: &TestPoller, id: &str) -> OrderRecord {
    p.store.order(id).await.unwrap().expect("stored")
}

fn codes_of(event: &OrderEvent) -> Vec<String> {
    event.codes.iter().map(|c| c.code.clone()).collect()
}

/// FoxReload's codes for a supplier order, in order.
fn supplier_codes(p: &TestPoller, supplier_order_id: &str) -> Vec<String> {
    let order = p.supplier.order(supplier_order_id).expect("at FoxReload");
    order
        .delivered()
        .map(|(_, _, code)| code.secret().to_owned())
        .collect()
}

/// The last message handled finished its order `completed`.
fn assert_ends_completed(outcomes: &[Result<Handled, PollError>]) {
    assert!(
        matches!(
            outcomes.last(),
            Some(Ok(Handled::Finished {
                status: OrderStatus::Completed,
                ..
            }))
        ),
        "{outcomes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paid_order_is_polled_until_it_ends_and_published_with_exactly_its_codes() {
    let p = poller();
    p.supplier.reads_to_end(3);
    let order = seed(&p, "o1").await;
    assert!(matches!(order, Seeded::Placed(_)), "{order:?}");
    let outcomes = Sqs::default().drain(&p, 20).await;
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_ends_completed(&outcomes);
    let order = stored(&p, "o1").await;
    assert_eq!(order.status, OrderStatus::Completed);
    assert!(order.notified_at.is_some());
    let events = p.publisher.events();
    assert_eq!(events.len(), 1);
    let supplier_order_id = order.supplier_order_id.clone().unwrap();
    let codes = supplier_codes(&p, &supplier_order_id);
    assert_eq!(codes.len(), 2);
    assert_eq!(codes_of(&events[0]), codes);
    let kept: Vec<String> = p
        .store
        .codes("o1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.code)
        .collect();
    assert_eq!(kept, codes);
    assert_eq!(p.supplier.bought().len(), 1);
    assert_eq!(p.supplier.calls(Operation::GetOrder), 3);
    assert!(p.queue.is_empty(), "the chain ends with the order");
}

#[tokio::test(start_paused = true)]
async fn codes_are_stored_before_the_event_and_a_failed_publish_is_repaired_with_the_same_event() {
    let p = poller();
    seed(&p, "o2").await;
    p.publisher.fail_events(1);
    let mut sqs = Sqs::default();
    let first = sqs.deliver(&p).await.unwrap();
    assert!(matches!(first, Err(PollError::Publish(_))), "{first:?}");
    // The end and its codes are stored; nothing is published yet.
    let order = stored(&p, "o2").await;
    assert_eq!(order.status, OrderStatus::Completed);
    assert_eq!(order.notified_at, None);
    let kept = p.store.codes("o2").await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(p.publisher.events().is_empty());
    // The redelivery publishes it, from what is stored, once.
    let again = sqs.deliver(&p).await.unwrap();
    assert!(matches!(again, Ok(Handled::Finished { .. })), "{again:?}");
    let events = p.publisher.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        codes_of(&events[0]),
        kept.into_iter().map(|c| c.code).collect::<Vec<_>>()
    );
    assert!(sqs.deliver(&p).await.is_none());
    assert_eq!(p.supplier.calls(Operation::GetOrder), 1);
}

#[tokio::test(start_paused = true)]
async fn two_deliveries_of_one_link_poll_once_and_fork_no_chain() {
    let p = poller();
    p.supplier.reads_to_end(5);
    seed(&p, "o3").await;
    let message = p.queue.take().remove(0).message.to_json();
    tokio::time::advance(Duration::from_secs(5)).await;
    let (a, b) = tokio::join!(p.handle(&message), p.handle(&message));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Handled::Continued { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| matches!(o, Handled::Dropped(_))),
        "{outcomes:?}"
    );
    assert_eq!(p.supplier.calls(Operation::GetOrder), 1);
    assert_eq!(p.queue.len(), 1, "one next link");
    // The stale link delivered late changes nothing.
    let late = p.handle(&message).await.unwrap();
    assert_eq!(late, Handled::Dropped("stale link"));
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_settled_onto_the_order_bought_never_bought_again() {
    let p = poller();
    p.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    let order = seed(&p, "o4").await;
    assert!(matches!(order, Seeded::Reconciling(_)), "{order:?}");
    let outcomes = Sqs::default().drain(&p, 20).await;
    assert_ends_completed(&outcomes);
    let bought = p.supplier.bought();
    assert_eq!(bought.len(), 1, "never bought again");
    let order = stored(&p, "o4").await;
    assert_eq!(
        order.supplier_order_id.as_deref(),
        Some(bought[0].id.as_str())
    );
    assert_eq!(p.supplier.calls(Operation::CreateOrder), 1);
    assert_eq!(
        codes_of(&p.publisher.events()[0]),
        supplier_codes(&p, &bought[0].id)
    );
}

#[tokio::test(start_paused = true)]
async fn a_create_that_never_reached_foxreload_is_bought_once_when_reconciliation_finds_nothing() {
    let p = poller();
    p.supplier
        .on_create(CreateStep::Unsent(Uncertainty::TimedOut));
    seed(&p, "o5").await;
    assert!(p.supplier.bought().is_empty());
    let outcomes = Sqs::default().drain(&p, 20).await;
    assert_ends_completed(&outcomes);
    assert_eq!(p.supplier.bought().len(), 1, "bought exactly once");
    assert_eq!(p.supplier.calls(Operation::CreateOrder), 2);
    let order = stored(&p, "o5").await;
    assert_eq!(order.posted_at.len(), 2, "both POSTs recorded");
}

#[tokio::test(start_paused = true)]
async fn posts_foxreload_refused_with_a_429_do_not_use_up_an_orders_attempts() {
    let p = poller();
    p.supplier
        .on_create(CreateStep::Unsent(Uncertainty::TimedOut));
    // FoxReload, overwhelmed, refuses more POSTs than an order may have.
    let refusals = PollOptions::default().max_posts + 1;
    for _ in 0..refusals {
        p.supplier
            .on_create(CreateStep::Refuse(SupplierError::RateLimited {
                op: Operation::CreateOrder,
                retry_after: None,
            }));
    }
    seed(&p, "o429").await;
    let outcomes = Sqs::default().drain(&p, 40).await;
    assert_ends_completed(&outcomes);
    assert_eq!(p.supplier.bought().len(), 1, "bought exactly once");
    let order = stored(&p, "o429").await;
    assert_eq!(order.posted_at.len(), refusals + 2);
    assert_eq!(order.posts_refused, (1..=refusals).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn another_buyers_look_alikes_before_ours_or_mock_are_never_claimed() {
    let p = poller();
    // One answered create measures FoxReload's clock, as in production.
    seed(&p, "measure").await;
    let request = seed::intent("x", p.clock.now()).supplier_request(false);
    let before = p
        .supplier
        .place_foreign(&request, p.clock.now() - time::Duration::seconds(60));
    let mock = p.supplier.place_foreign(
        &seed::intent("x", p.clock.now()).supplier_request(true),
        p.clock.now(),
    );
    p.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    seed(&p, "o6").await;
    Sqs::default().drain(&p, 40).await;
    let order = stored(&p, "o6").await;
    let ours = order.supplier_order_id.clone().expect("claimed");
    assert!(
        ![&before, &mock].contains(&&ours),
        "claimed a foreign order"
    );
    assert_eq!(order.status, OrderStatus::Completed);
    assert_eq!(p.supplier.bought().len(), 2, "ours and the measuring one");
    assert!(
        p.store
            .claims()
            .keys()
            .all(|id| *id != before && *id != mock)
    );
}

#[tokio::test(start_paused = true)]
async fn a_look_alike_made_while_ours_was_in_flight_is_alerted_once_never_guessed() {
    let p = poller();
    seed(&p, "measure").await;
    Sqs::default().drain(&p, 10).await;
    p.supplier
        .on_create(CreateStep::Lost(Uncertainty::TimedOut));
    seed(&p, "o7").await;
    let request = seed::intent("x", p.clock.now()).supplier_request(false);
    let stranger = p.supplier.place_foreign(&request, p.clock.now());
    let mut sqs = Sqs::default();
    let first = sqs.deliver(&p).await.unwrap().unwrap();
    assert!(matches!(first, Handled::Continued { .. }), "{first:?}");
    let order = stored(&p, "o7").await;
    assert_eq!(order.status, OrderStatus::Reconciling);
    assert_eq!(order.supplier_order_id, None);
    let alerts = p.publisher.alerts();
    let alert = alerts
        .iter()
        .find(|a| a.kind == "reconcile_ambiguous")
        .unwrap_or_else(|| panic!("no reconcile_ambiguous alert: {alerts:?}"));
    assert_eq!(alert.order_id, "o7");
    let detail = alert.last_error.as_ref().unwrap().detail.clone().unwrap();
    assert!(detail.contains(&stranger), "{detail}");
    // Reconciled again and again: alerted once per interval, never bought.
    sqs.drain(&p, 5).await;
    let ambiguous = p
        .publisher
        .alert_kinds()
        .into_iter()
        .filter(|k| k == "reconcile_ambiguous")
        .count();
    assert_eq!(ambiguous, 1);
    assert_eq!(p.supplier.bought().len(), 2, "never bought again");
    assert_eq!(stored(&p, "o7").await.supplier_order_id, None);
}

#[tokio::test(start_paused = true)]
async fn an_unpaid_order_past_the_horizon_is_abandoned_published_and_alerted() {
    let p = poller();
    // Payment refused for good: the order stays active at FoxReload.
    p.supplier.fail(
        Operation::PayOrder,
        refusal(Operation::PayOrder, 400, "BALANCE_NOT_ENOUGH"),
    );
    seed(&p, "o8").await;
    let outcomes = Sqs::default().drain(&p, 2_000).await;
    assert!(
        matches!(
            outcomes.last(),
            Some(Ok(Handled::Finished {
                status: OrderStatus::Abandoned,
                ..
            }))
        ),
        "{:?}",
        outcomes.last()
    );
    let order = stored(&p, "o8").await;
    assert_eq!(order.status, OrderStatus::Abandoned);
    assert_eq!(p.publisher.events()[0].status, "abandoned");
    assert!(p.publisher.alert_kinds().contains(&"abandoned".to_owned()));
    assert_eq!(p.supplier.calls(Operation::PayOrder), 1, "paid never again");
}

#[tokio::test(start_paused = true)]
async fn a_paid_order_past_the_horizon_is_polled_on_and_alerted_never_abandoned() {
    let p = poller();
    p.supplier.reads_to_end(u32::MAX);
    seed(&p, "o9").await;
    let start = Instant::now();
    let horizon = p.options.schedule.horizon;
    let mut sqs = Sqs::default();
    while Instant::now() - start < horizon + Duration::from_secs(3 * 3_600) {
        let outcome = sqs.deliver(&p).await.expect("the chain goes on");
        assert!(
            matches!(outcome, Ok(Handled::Continued { .. })),
            "{outcome:?}"
        );
    }
    let order = stored(&p, "o9").await;
    assert_eq!(order.status, OrderStatus::Processing);
    assert!(p.publisher.events().is_empty());
    let kinds = p.publisher.alert_kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "long_running").count(),
        1,
        "alerted once a day: {kinds:?}"
    );
    assert!(!kinds.contains(&"abandoned".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_silent_short_delivery_is_alerted_and_its_event_says_what_is_missing() {
    let p = poller();
    p.supplier.ending(Ending::Short { short: 1 });
    seed(&p, "o10").await;
    Sqs::default().drain(&p, 10).await;
    let events = p.publisher.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.status, "completed");
    assert_eq!(event.codes.len(), 1);
    assert_eq!(event.items[0].missing, 1);
    assert!(
        p.publisher
            .alert_kinds()
            .contains(&"short_delivery".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_order_is_published_with_its_reason_and_no_codes() {
    let p = poller();
    p.supplier.ending(Ending::Cancelled("out of stock".into()));
    seed(&p, "o11").await;
    Sqs::default().drain(&p, 10).await;
    let event = &p.publisher.events()[0];
    assert_eq!(event.status, "cancelled");
    assert_eq!(event.cancel_reason.as_deref(), Some("out of stock"));
    assert!(event.codes.is_empty());
    // A cancellation says nothing of how long fulfilment takes.
    use foxrelay_shared::store::SummaryReader;
    let product = stored(&p, "o11").await.lines[0].product_id.clone();
    assert_eq!(p.store.summary(&product).await.unwrap().observations, 0);
}

#[tokio::test(start_paused = true)]
async fn failing_reads_are_retried_on_the_schedule_and_flagged_past_the_bound() {
    let p = poller();
    for _ in 0..12 {
        p.supplier.fail(
            Operation::GetOrder,
            foxrelay_shared::testing::server_error(Operation::GetOrder),
        );
    }
    // The first good read continues the chain; the second ends it.
    p.supplier.reads_to_end(2);
    seed(&p, "o12").await;
    let outcomes = Sqs::default().drain(&p, 30).await;
    assert_ends_completed(&outcomes);
    assert_eq!(p.supplier.calls(Operation::GetOrder), 14);
    let kinds = p.publisher.alert_kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "needs_attention").count(),
        1,
        "{kinds:?}"
    );
    let order = stored(&p, "o12").await;
    assert_eq!(order.consecutive_errors, 0, "a good read resets the count");
}

#[tokio::test(start_paused = true)]
async fn a_message_for_an_unknown_order_fails_and_reaches_the_dead_letter_queue() {
    let p = poller();
    let message = PollMessage {
        order_id: "nobody".into(),
        seq: 1,
        kind: PollKind::Poll,
    };
    p.queue.send(&message, Duration::ZERO).await.unwrap();
    let mut sqs = Sqs::default();
    let outcomes = sqs.drain(&p, 10).await;
    assert_eq!(outcomes.len(), 5);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(PollError::UnknownOrder(_))))
    );
    assert_eq!(sqs.dead.len(), 1);
}

/// Orders of a product polled at the times its learned plan says, and its
/// end added to the product's summary.
#[tokio::test(start_paused = true)]
async fn an_order_on_a_learned_plan_is_polled_at_its_times_and_teaches_its_product() {
    use foxrelay_shared::domain::learning::summary::Decay;
    use foxrelay_shared::store::SummaryReader;
    let p = poller();
    p.supplier.reads_to_end(3);
    let start = seed_on_plan(&p, "planned", &[3, 10, 40]).await;
    let product = stored(&p, "planned").await.lines[0].product_id.clone();
    let mut sqs = Sqs::default();
    let mut seen = Vec::new();
    let mut last = None;
    while let Some(outcome) = sqs.deliver(&p).await {
        seen.push((p.clock.now() - start).whole_seconds());
        last = Some(outcome.unwrap());
    }
    // The plan stored is the order's own (its shift already made): each
    // poll at its time.
    assert_eq!(seen, vec![3, 10, 40]);
    let Some(Handled::Finished { ended, .. }) = last else {
        panic!("{last:?}")
    };
    assert_eq!(ended.schedule, "learned");
    assert_eq!(ended.polls, 3);
    assert_eq!(ended.product, product);
    // It ended after the second poll and by the third (to a bin, which is
    // a sixteenth of an octave wide).
    let summary = p.store.summary(&product).await.unwrap();
    assert_eq!(summary.observations, 1);
    let masses = summary.masses(&Decay::default()).unwrap();
    assert!(masses.survival(seen[1] as f64 * 0.9) > 0.999, "{seen:?}");
    assert!(masses.survival(seen[2] as f64 * 1.1) < 0.001, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn past_its_plan_an_order_is_polled_on_the_schedules_rails() {
    let p = poller();
    p.supplier.reads_to_end(6);
    let start = seed_on_plan(&p, "rails", &[2, 4]).await;
    let mut sqs = Sqs::default();
    let mut seen = Vec::new();
    while let Some(outcome) = sqs.deliver(&p).await {
        outcome.unwrap();
        seen.push((p.clock.now() - start).whole_seconds());
    }
    assert_eq!(&seen[..2], &[2, 4], "{seen:?}");
    // Then at most the steady cap (25 s, ±20 %) apart, and the order ends.
    for gap in seen.windows(2).skip(1) {
        assert!(gap[1] - gap[0] <= 30, "{seen:?}");
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(stored(&p, "rails").await.status, OrderStatus::Completed);
    assert_eq!(stored(&p, "rails").await.plan_step, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_summary_that_cannot_be_written_costs_an_observation_not_a_delivery() {
    use foxrelay_shared::store::SummaryReader;
    let p = poller();
    p.supplier.reads_to_end(1);
    seed(&p, "unlearned").await;
    p.store.fail("add_observation", 1);
    let outcomes = Sqs::default().drain(&p, 5).await;
    assert_ends_completed(&outcomes);
    assert_eq!(p.publisher.events().len(), 1);
    let product = stored(&p, "unlearned").await.lines[0].product_id.clone();
    assert_eq!(p.store.summary(&product).await.unwrap().observations, 0);
}

/// Order `id` placed now on a learned plan of `polls`, its first poll at the
/// plan's first time; when it was placed.
async fn seed_on_plan(p: &TestPoller, id: &str, polls: &[u32]) -> time::OffsetDateTime {
    let start = p.clock.now();
    let mut intent = seed::intent(id, start);
    intent.poll_plan = Some(learned(polls));
    intent.plan_step = Some(0);
    seed::place_intent(
        &p.store,
        &p.supplier,
        &p.queue,
        &p.clock,
        intent,
        Duration::from_secs(u64::from(polls[0])),
    )
    .await;
    start
}

fn learned(polls: &[u32]) -> foxrelay_shared::domain::learning::OrderPlan {
    foxrelay_shared::domain::learning::OrderPlan {
        kind: foxrelay_shared::domain::learning::PlanKind::Learned,
        plan: foxrelay_shared::domain::learning::Plan {
            polls: polls.to_vec(),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn a_poll_held_back_by_the_budget_goes_again_soon_counting_no_poll_and_no_failure() {
    let p = poller();
    let seeded = seed(&p, "h1").await;
    let mut sqs = Sqs::default();
    // The stack's budget has no slot for the first poll, twice.
    held_back_reads(&p, 2);
    let started = Instant::now();
    for _ in 0..2 {
        let outcome = sqs.deliver(&p).await.unwrap().unwrap();
        assert!(matches!(outcome, Handled::Continued { .. }), "{outcome:?}");
    }
    let order = stored(&p, "h1").await;
    assert_eq!(order.poll_count, 0, "no poll counted");
    assert_eq!(order.consecutive_errors, 0, "no failure counted");
    assert_eq!(order.last_error, None);
    assert_eq!(order.needs_attention, None);
    assert_eq!(
        order.plan_step,
        seeded.order().plan_step,
        "the plan where it was"
    );
    assert!(p.publisher.alert_kinds().is_empty());
    // Then it is polled to its end, soon after.
    let outcomes = sqs.drain(&p, 50).await;
    assert!(
        matches!(outcomes.last(), Some(Ok(Handled::Finished { .. }))),
        "{outcomes:?}"
    );
    let held = Instant::now() - started;
    assert!(held < Duration::from_secs(60), "{held:?}");
    assert_eq!(p.publisher.events().len(), 1);
}

/// The budget has no slot for the next `times` reads.
fn held_back_reads(p: &TestPoller, times: usize) {
    for _ in 0..times {
        p.supplier.fail(
            Operation::GetOrder,
            SupplierError::Throttled {
                op: Operation::GetOrder,
                retry_after: Duration::from_millis(300),
                by: HeldBy::Budget,
            },
        );
    }
}

impl Sqs {
    /// Delivers the next message due, and says how long the link it sent
    /// waits.
    async fn deliver_and_wait(&mut self, p: &TestPoller) -> Duration {
        let outcome = self.deliver(p).await.expect("a message waits");
        assert!(
            matches!(outcome, Ok(Handled::Continued { .. })),
            "{outcome:?}"
        );
        let (due, ..) = self.waiting.last().expect("the next link was sent");
        *due - Instant::now()
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_back_poll_waits_longer_the_longer_its_order_is_held_back_and_a_poll_starts_it_again()
 {
    let p = poller();
    p.supplier.reads_to_end(100);
    seed(&p, "h2").await;
    let mut sqs = Sqs::default();
    // Held back twelve times running: the links wait longer as the order
    // is held back longer (a quarter of the time held back so far, up to
    // as much again at random), but never more than 16 s.
    held_back_reads(&p, 12);
    let mut waits = Vec::new();
    for _ in 0..12 {
        waits.push(sqs.deliver_and_wait(&p).await);
    }
    assert!(waits[11] > waits[0] * 2, "{waits:?}");
    assert!(
        waits.iter().all(|w| *w <= Duration::from_secs(16)),
        "{waits:?}"
    );
    // Then a poll is made, and the chain goes on at its schedule.
    let polled = sqs.deliver_and_wait(&p).await;
    assert_eq!(stored(&p, "h2").await.poll_count, 1);
    // Held back once again when that poll comes due: a second or two, not
    // the wait of an order held back thirteen times.
    held_back_reads(&p, 1);
    let again = sqs.deliver_and_wait(&p).await;
    assert!(
        again >= Duration::from_secs(1) && again <= Duration::from_secs(2),
        "{again:?} (after {waits:?}, then a poll and {polled:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn a_link_out_of_time_while_it_sends_its_next_message_finishes_and_the_chain_goes_on() {
    let mut p = poller();
    p.options.message_budget = Duration::from_secs(2);
    p.supplier.reads_to_end(2);
    seed(&p, "t1").await;
    let mut sqs = Sqs::default();
    sqs.collect(&p);
    // SQS takes longer to send the next link than the message has left:
    // the chain is moved on in the table first, so cut there it would be
    // left with no message to carry it (this one, come again, is stale).
    p.queue.slow(Duration::from_secs(3));
    let outcome = sqs.deliver(&p).await.expect("a message waits");
    assert!(
        matches!(outcome, Ok(Handled::Continued { next_seq: 2 })),
        "{outcome:?}"
    );
    assert_eq!(sqs.waiting.len(), 1, "the next link was sent");
    p.queue.slow(Duration::ZERO);
    let outcomes = sqs.drain(&p, 20).await;
    assert!(
        matches!(outcomes.last(), Some(Ok(Handled::Finished { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(p.publisher.events().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_link_out_of_time_before_it_moves_its_chain_on_changes_nothing_and_comes_again() {
    let mut p = poller();
    p.options.message_budget = Duration::from_secs(2);
    p.supplier.reads_to_end(2);
    seed(&p, "t2").await;
    let before = stored(&p, "t2").await;
    let mut sqs = Sqs::default();
    p.store.slow("claim_link", Duration::from_secs(3));
    let outcome = sqs.deliver(&p).await.expect("a message waits");
    assert!(matches!(outcome, Err(PollError::OutOfTime)), "{outcome:?}");
    let after = stored(&p, "t2").await;
    assert_eq!(after.poll_seq, before.poll_seq);
    assert_eq!(after.poll_count, 0);
    // Delivered again once the store is quick: the chain goes on to its end.
    p.store.slow("claim_link", Duration::ZERO);
    let outcomes = sqs.drain(&p, 20).await;
    assert!(
        matches!(outcomes.last(), Some(Ok(Handled::Finished { .. }))),
        "{outcomes:?}"
    );
    assert_eq!(p.publisher.events().len(), 1);
}
