//! The FoxReload port, measured: every call timed, every failure counted
//! (and logged once, in one shape the saved queries read), payment
//! refusals and reconciliation outcomes counted.

use super::{Metric, Metrics};
use crate::foxreload::{
    CreateOrderRequest, Observation, Operation, OrderPage, PageRequest, Reconciled, Supplier,
    SupplierError, SupplierOrder,
};
use std::future::Future;
use std::time::Instant;
use tracing::warn;

/// A [`Supplier`] that measures its calls into [`Metrics`].
#[derive(Clone, Debug)]
pub struct Metered<F> {
    pub inner: F,
    pub metrics: Metrics,
}

impl<F> Metered<F> {
    async fn measured<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, SupplierError>>,
    ) -> Result<T, SupplierError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.supplier_latency(operation, started.elapsed());
        if let Err(error) = &result {
            self.metrics.supplier_error(error);
            if operation == Operation::PayOrder && matches!(error, SupplierError::Rejected { .. }) {
                self.metrics.add(Metric::PaymentRefusals, 1);
            }
            warn!(
                operation = operation.key(),
                error_kind = error.kind(),
                status = error.status(),
                supplier_code = error.supplier_code(),
                %error,
                "FoxReload call failed"
            );
        }
        result
    }
}

impl<F: Supplier> Supplier for Metered<F> {
    async fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> Result<SupplierOrder, SupplierError> {
        self.measured(Operation::CreateOrder, self.inner.create_order(request))
            .await
    }

    async fn pay_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.measured(Operation::PayOrder, self.inner.pay_order(supplier_order_id))
            .await
    }

    async fn get_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        self.metrics.add(Metric::Polls, 1);
        self.measured(Operation::GetOrder, self.inner.get_order(supplier_order_id))
            .await
    }

    async fn list_orders(&self, page: &PageRequest) -> Result<OrderPage, SupplierError> {
        self.measured(Operation::ListOrders, self.inner.list_orders(page))
            .await
    }

    fn observe(&self, observation: Observation) {
        let Observation::Reconciled(outcome) = observation;
        self.metrics.add(
            match outcome {
                Reconciled::Claimed => Metric::ReconciliationsClaimed,
                Reconciled::Nothing => Metric::ReconciliationsNothing,
                Reconciled::Undecided => Metric::ReconciliationsUndecided,
            },
            1,
        );
        self.inner.observe(observation);
    }
}
