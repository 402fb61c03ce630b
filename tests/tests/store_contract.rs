//! The store contract (`foxrelay_shared::testing::contract`) against the
//! DynamoDB adapter on moto: the same cases the in-memory store passes in
//! the fast tier, so the two cannot drift. Each case gets its own table.

use foxrelay_shared::store::DynamoStore;

async fn fresh_store() -> DynamoStore {
    let stack = foxrelay_tests::stack().await;
    stack.resources.store(&stack.clients)
}

foxrelay_shared::store_contract!(fresh_store());
