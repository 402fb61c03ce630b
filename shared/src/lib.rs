//! foxrelay's ground floor, shared by every function: settings, the FoxReload
//! client and its types, AWS client set-up, and telemetry. The domain knows
//! nothing of AWS; adapters live beside the ports they implement.

pub mod aws;
pub mod batch;
pub mod clock;
pub mod domain;
pub mod events;
pub mod foxreload;
pub mod governor;
pub mod metrics;
pub mod notify;
pub mod placement;
pub mod plans;
pub mod queue;
pub mod sealing;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;
