//! The DynamoDB adapter when DynamoDB's answer to a write is lost: the
//! write landed, the SDK saw a timeout and sent it again, and the second
//! attempt's condition fails on the first attempt's own write. Such a
//! refusal is no news that the item moved. (Seen under load on moto: a
//! POST's record refused this way read as "the order moved", and the
//! create answered from an order still `creating`.)

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use foxrelay_shared::domain::OrderStatus;
use foxrelay_shared::store::{
    DynamoStore, IdempotencyStore, OrderReader, PlacementStore, StoreError,
};
use foxrelay_shared::testing::seed::intent;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use time::OffsetDateTime;

/// Loses DynamoDB's answer to the first attempt of the next request that
/// names `marker`, once DynamoDB applied it: the SDK sees a timeout.
#[derive(Debug)]
struct LoseAnswer {
    marker: &'static str,
    armed: Arc<AtomicBool>,
    /// The attempt on its way names `marker` (seen as it is sent).
    this_one: AtomicBool,
    lost: Arc<AtomicUsize>,
}

impl Intercept for LoseAnswer {
    fn name(&self) -> &'static str {
        "LoseAnswer"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let names_it = context
            .request()
            .body()
            .bytes()
            .is_some_and(|body| String::from_utf8_lossy(body).contains(self.marker));
        self.this_one.store(
            names_it && self.armed.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let applied = matches!(context.output_or_error(), Some(Ok(_)));
        if applied
            && self.this_one.swap(false, Ordering::SeqCst)
            && self.armed.swap(false, Ordering::SeqCst)
            && let Some(result) = context.output_or_error_mut()
        {
            *result = Err(OrchestratorError::timeout(
                "the answer was lost on its way back".into(),
            ));
            self.lost.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A store over a fresh stack, and the same store whose client loses the
/// answer to the next request naming `marker` once armed (how many were
/// lost).
async fn stores(
    marker: &'static str,
) -> (DynamoStore, DynamoStore, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let stack = foxrelay_tests::stack().await;
    let table = stack.resources.table_name();
    let store = stack.resources.store(&stack.clients);
    let armed = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicUsize::new(0));
    let config = stack
        .clients
        .dynamodb
        .config()
        .to_builder()
        .interceptor(LoseAnswer {
            marker,
            armed: armed.clone(),
            this_one: AtomicBool::new(false),
            lost: lost.clone(),
        })
        .build();
    let lossy = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table).with_sealer(
        stack
            .resources
            .sealer(&stack.clients)
            .expect("the stack has a key"),
    );
    (store, lossy, armed, lost)
}

#[tokio::test]
async fn a_posts_record_whose_answer_was_lost_and_was_sent_again_is_recorded_not_moved() {
    let (store, lossy, armed, lost) = stores("postToken").await;
    let now = OffsetDateTime::now_utc();
    store.begin(&intent("lost", now), None).await.unwrap();
    // The intent recorded the first POST; the second's record lands, its
    // answer is lost, the SDK sends it again: recorded (once), as the first
    // answer would have said.
    armed.store(true, Ordering::SeqCst);
    assert!(lossy.record_post("lost", 1, now).await.unwrap());
    assert_eq!(lost.load(Ordering::SeqCst), 1, "an answer was lost");
    let stored = store.order("lost").await.unwrap().unwrap();
    assert_eq!(stored.posted_at.len(), 2, "{stored:?}");
    // A record from a stale count (another's came first) is still refused.
    assert!(!lossy.record_post("lost", 1, now).await.unwrap());
    assert!(lossy.record_post("lost", 2, now).await.unwrap());
    assert_eq!(
        store.order("lost").await.unwrap().unwrap().posted_at.len(),
        3
    );
}

#[tokio::test]
async fn a_creates_settling_whose_answer_was_lost_and_was_sent_again_is_settled_not_a_conflict() {
    let (store, lossy, armed, lost) = stores("settleToken").await;
    let now = OffsetDateTime::now_utc();
    store.begin(&intent("lost", now), None).await.unwrap();
    store.begin(&intent("other", now), None).await.unwrap();
    let problem = foxrelay_shared::placement::undecided("bought nothing");
    armed.store(true, Ordering::SeqCst);
    lossy
        .mark_not_placed("lost", 1, &problem, now)
        .await
        .unwrap();
    assert_eq!(lost.load(Ordering::SeqCst), 1, "an answer was lost");
    assert_eq!(
        store.order("lost").await.unwrap().unwrap().status,
        OrderStatus::NotPlaced
    );
    // Settled by another write: still a conflict.
    store
        .mark_reconciling("other", 1, &problem, now)
        .await
        .unwrap();
    assert!(matches!(
        lossy.mark_not_placed("other", 1, &problem, now).await,
        Err(StoreError::Conflict { .. })
    ));
}
