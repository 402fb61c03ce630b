//! The order store: orders, supplier-order claims, idempotency records and
//! the marks that make each effect happen once, every write conditional.
//! Its ports (`ports.rs`) name what each role may do; the real adapter is
//! DynamoDB.

mod dynamodb;
mod ports;
mod record;

pub use dynamodb::{DynamoStore, LimiterReading, PENDING_INDEX, ResealCursor, ResealPage};
pub use ports::{
    BudgetStore, IdempotencyStore, NotifyMarks, OrderAlerts, OrderReader, OrderStore,
    PlacementStore, PollChain, SlotAsk, StackAlerts, SummaryReader, SummaryStore, SweepStore,
    Taken, WebhookStore,
};
pub use record::*;
