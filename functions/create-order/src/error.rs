//! The API's errors: `{"error": {"code", "message", "field"?}}` with the
//! right status. Messages say what is wrong; they never carry the API key, an
//! SDK's internals or a code.

use foxrelay_shared::domain::FieldError;
use foxrelay_shared::foxreload::SupplierError;
use foxrelay_shared::store::StoreError;
use serde_json::{Map, Value, json};

/// An answer other than success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// More to say: FoxReload's code, our order id.
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            extra: Map::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    pub fn invalid(error: FieldError) -> Self {
        let field = (!error.field.is_empty()).then(|| error.field.clone());
        Self {
            field,
            ..Self::new(400, "invalid_request", error.to_string())
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// The store failed: the client may retry (with the same key).
    pub fn store(error: &StoreError) -> Self {
        tracing::error!(%error, "order store failed");
        Self::new(
            503,
            "unavailable",
            "foxrelay's order store is unavailable; retry with the same Idempotency-Key",
        )
    }

    /// FoxReload refused the order; its code and text are passed on.
    pub fn supplier_refused(error: &SupplierError) -> Self {
        let mut api = match error {
            SupplierError::Unauthorized { .. } => Self::new(
                502,
                "supplier_configuration",
                "FoxReload refused foxrelay's API key; the operator must check the key and its IP allowlist",
            ),
            _ => Self::new(
                502,
                "supplier_refused",
                format!(
                    "FoxReload refused the order{}",
                    error
                        .supplier_detail()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
            ),
        };
        if let Some(code) = error.supplier_code() {
            api = api.with("supplierCode", code);
        }
        api
    }

    /// FoxReload could not be reached; nothing was bought.
    pub fn supplier_unavailable() -> Self {
        Self::new(
            503,
            "supplier_unavailable",
            "FoxReload is unavailable; nothing was bought; retry later",
        )
    }

    pub fn body(&self) -> String {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(field) = &self.field {
            error.insert("field".into(), field.clone().into());
        }
        error.extend(self.extra.clone());
        json!({ "error": error }).to_string()
    }
}
