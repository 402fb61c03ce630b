//! FoxReload, the supplier: its wire shapes, its client, and the port the
//! functions use to reach it. The port speaks the domain's supplier types
//! (`domain::supplier`, re-exported here); the client maps FoxReload's JSON
//! onto them.

mod client;
mod error;
mod types;

pub use crate::domain::supplier::{
    CreateOrderItem, CreateOrderRequest, DeliveredCode, Price, ProductRef, SupplierItem,
    SupplierOrder, SupplierStatus, Timestamp,
};
pub use client::{ClientBuildError, FoxReloadClient};
pub use error::{ErrorClass, HeldBy, Operation, SupplierError, THROTTLED, Uncertainty};
pub use types::{ErrorBody, OrderPage, PageRequest, parse_instant, parse_order_page};

use std::future::Future;

/// The supplier port: what foxrelay needs from FoxReload. The real adapter is
/// [`FoxReloadClient`]; domain unit tests use an in-memory one.
pub trait Supplier: Send + Sync {
    fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> impl Future<Output = Result<SupplierOrder, SupplierError>> + Send;
    fn pay_order(
        &self,
        supplier_order_id: &str,
    ) -> impl Future<Output = Result<SupplierOrder, SupplierError>> + Send;
    fn get_order(
        &self,
        supplier_order_id: &str,
    ) -> impl Future<Output = Result<SupplierOrder, SupplierError>> + Send;
    /// One page of the order list, newest first.
    fn list_orders(
        &self,
        page: &PageRequest,
    ) -> impl Future<Output = Result<OrderPage, SupplierError>> + Send;
    /// Waits until a call of `op` may be sent now, and keeps that turn for
    /// the flow's next call (the turn [`Supplier::reserve`] took, if it
    /// took one). Nothing to wait for by default;
    /// [`crate::governor::Governed`] takes a slot of the stack's budget, or
    /// answers [`SupplierError::Throttled`] (also when the turn reserved was
    /// voided meanwhile).
    fn ready(&self, _op: Operation) -> impl Future<Output = Result<(), SupplierError>> + Send {
        std::future::ready(Ok(()))
    }
    /// Takes a turn for the flow's next call of `op` without waiting for
    /// it, and says when it comes (`None`: now). A flow that records when
    /// it sends (a create) records that time, then waits with
    /// [`Supplier::ready`]: the store write is made while the turn is
    /// waited for, and the call leaves at the time recorded (the turn is
    /// taken as far ahead as such writes recently took). Inside a flow
    /// ([`crate::governor::Asking::scope`]) only; no turn by default.
    fn reserve(
        &self,
        _op: Operation,
    ) -> impl Future<Output = Result<Option<time::OffsetDateTime>, SupplierError>> + Send {
        std::future::ready(Ok(None))
    }
    /// Told what a flow concluded from FoxReload's answers, for a wrapper
    /// that counts it ([`crate::metrics::Metered`]); nothing by default.
    fn observe(&self, _observation: Observation) {}
}

/// What a flow concluded from FoxReload's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A reconciliation ended.
    Reconciled(Reconciled),
}

/// How a reconciliation ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// Our order was found and claimed.
    Claimed,
    /// No order of ours was made, for sure.
    Nothing,
    /// Not decided: unreadable, no time left, or look-alikes of another
    /// buyer. Nothing was claimed or bought.
    Undecided,
}

impl Reconciled {
    /// As logged (`reconciliation` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Nothing => "nothing",
            Self::Undecided => "undecided",
        }
    }
}

impl Supplier for FoxReloadClient {
    fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> impl Future<Output = Result<SupplierOrder, SupplierError>> + Send {
        FoxReloadClient::create_order(self, request)
    }
    fn pay_order(
        &self,
        supplier_order_id: &str,
    ) -> impl Future<Output = Result<SupplierOrder, SupplierError>> + Send {
        FoxReloadClient::pay_order(self, supplier_order_id)
    }
    fn get_order(
        &self,
        supplier_order_id: &str,
    ) -> impl Future<Output = Result<SupplierOrder, SupplierError>> + Send {
        FoxReloadClient::get_order(self, supplier_order_id)
    }
    fn list_orders(
        &self,
        page: &PageRequest,
    ) -> impl Future<Output = Result<OrderPage, SupplierError>> + Send {
        FoxReloadClient::list_orders(self, page)
    }
}
