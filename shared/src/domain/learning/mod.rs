//! Polling that learns each product (issue 15): how long a product's orders
//! take to end at FoxReload, kept as a small decaying summary, and the poll
//! times that summary calls for.
//!
//! - [`bins`]: completion times in log-spaced bins (a sixteenth of an octave
//!   each, from half a second to about two days);
//! - [`summary`]: the per-product summary: interval-censored observations
//!   ("ended after the last poll that saw it running, by the poll that saw
//!   it end") spread over the bins they cover, weighted so that recent
//!   orders dominate, written with additions only (no read-modify-write);
//! - [`plan`]: the poll times that minimise the expected number of reads
//!   while the orders seen late by more than the lag target stay within 4 %
//!   (a 95th-percentile target, with a margin);
//! - [`policy`]: which orders get a plan, and the next poll of an order on
//!   one (the default schedule's rails past it).
//!
//! Nothing here knows DynamoDB: the store adds [`summary::Contribution`]s
//! and reads [`summary::Summary`]s.

pub mod bins;
pub mod plan;
pub mod policy;
pub mod summary;

pub use plan::{Plan, Planner};
pub use policy::{Learning, NextPoll, OrderPlan, PlanKind, next_poll, observation};
pub use summary::{Contribution, Observation, Summary};
