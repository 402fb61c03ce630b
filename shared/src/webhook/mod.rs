//! Delivering webhooks: the adapters beside the domain's endpoint rules
//! ([`crate::domain::webhook`]).

mod guard;
mod message;
mod queue;
mod secrets;
mod sender;
mod signing;

pub use guard::PublicOnly;
pub use message::{Delivery, EventNotice, WebhookMessage};
pub use queue::{QueueError, SqsWebhookQueue, WebhookQueue};
pub use secrets::{SecretError, SecretsManagerSecrets, WebhookSecrets};
pub use sender::{Attempt, BODY_CAP, Sender};
pub use signing::{Signer, new_secret};
