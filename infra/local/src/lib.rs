//! foxrelay on one machine, with no AWS account: moto's server for AWS, the
//! resources of `template.yaml` created in it through the real SDK, and the
//! FoxReload simulator.

pub mod burst;
pub mod event_source;
pub mod gateway;
pub mod lambda;
pub mod moto;
pub mod provision;
pub mod stack;
pub mod subscription;
pub mod template;

pub use event_source::{BatchReport, EventSourceOptions, SqsEventSource};
pub use moto::{MotoError, MotoServer};
pub use provision::{ProvisionError, Provisioned, provision};
pub use stack::{LocalStack, StackOptions};
pub use subscription::subscribe_queue;
pub use template::{StackTemplate, TemplateError};
