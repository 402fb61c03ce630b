//! The domain: plain types and decisions. Nothing here calls AWS or
//! FoxReload; it takes data in and returns decisions.

pub mod budget;
pub mod event;
pub mod idempotency;
pub mod learning;
pub mod order;
pub mod poll;
pub mod principal;
pub mod reconcile;
pub mod request;
pub mod schedule;
pub mod supplier;
pub mod webhook;

pub use order::{NewOrder, OrderLine, OrderStatus};
pub use poll::{PollKind, PollMessage};
pub use principal::Principal;
pub use request::{FieldError, parse_new_order};
