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
pub use error::{ErrorClass, Operation, SupplierError, Uncertainty};
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
