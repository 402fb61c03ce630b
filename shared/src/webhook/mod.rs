//! Delivering webhooks: the adapters beside the domain's endpoint rules
//! ([`crate::domain::webhook`]).

mod guard;

pub use guard::PublicOnly;
