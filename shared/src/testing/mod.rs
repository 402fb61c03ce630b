//! Test support (feature `testing`):
//!
//! - a local Lambda Runtime API, so a real function binary can be started
//!   and invoked outside Lambda ([`RuntimeApi`], [`invoke_binary`]);
//! - in-memory adapters of every port, for the fast test tier: the store
//!   ([`MemoryStore`]), the queue, the publisher, a clock on tokio's time,
//!   and a scripted FoxReload ([`ScriptedSupplier`]);
//! - orders seeded as create-order leaves them ([`seed`]);
//! - the store contract ([`contract`]), which every store adapter passes.

pub mod contract;
mod memory_ports;
mod memory_store;
mod runtime;
mod scripted_supplier;
pub mod seed;

pub use memory_ports::{MemoryPublisher, MemoryQueue, Sent, TestClock};
pub use memory_store::{MemoryStore, millis};
pub use runtime::*;
pub use scripted_supplier::{CreateStep, Ending, ScriptedSupplier, refusal, server_error};
