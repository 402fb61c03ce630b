//! Test support (feature `testing`):
//!
//! - a local Lambda Runtime API, so a real function binary can be started
//!   and invoked outside Lambda ([`RuntimeApi`], [`invoke_binary`]);
//! - in-memory adapters of the ports, for the fast test tier
//!   ([`MemoryStore`]);
//! - the store contract ([`contract`]), which every store adapter passes.

pub mod contract;
mod memory_store;
mod runtime;

pub use memory_store::{MemoryStore, millis};
pub use runtime::*;
