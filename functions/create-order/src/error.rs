//! The API's errors: `{"error": {"code", "message", "field"?}}` with the
//! right status. Messages say what is wrong; they never carry the API key, an
//! SDK's internals or a code.

use foxrelay_shared::domain::FieldError;
use foxrelay_shared::foxreload::{Price, SupplierError};
use foxrelay_shared::store::StoreError;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// FoxReload's code for a `totalPrice` that is not its current price.
pub const PRICE_NOT_MATCHED: &str = "OFFER_PRICE_NOT_MATCHED";
/// FoxReload's codes that blame our account, not the request.
const ACCOUNT_CODES: &[&str] = &["BALANCE_NOT_ENOUGH", "ORDER_PAYMENT_NOT_POSSIBLE"];

/// An answer other than success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// More to say: FoxReload's code, the caller's own order id.
    pub extra: Map<String, Value>,
    /// Headers the answer carries: `Retry-After` (whole seconds) for
    /// answers that invite a retry, `Allow` with a 405.
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    pub fn field(mut self, name: &str) -> Self {
        self.field = Some(name.to_owned());
        self
    }

    /// Sets `Retry-After` (replacing one set before).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        // Whole seconds, rounded up: never sooner than asked.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        self.headers.retain(|(name, _)| *name != "retry-after");
        self.header("retry-after", seconds.to_string())
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name`, if the answer carries it.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
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

    /// A 5xx because FoxReload failed or refused us, not the caller: what
    /// the `SupplierErrorResponses` metric counts.
    pub fn is_supplier_failure(&self) -> bool {
        self.status >= 500 && self.code.starts_with("supplier_")
    }

    /// A 503 because the stack's own FoxReload budget had no slot: what the
    /// `CreatesThrottled` metric counts.
    pub fn is_budget_spent(&self) -> bool {
        self.status == 503 && self.code == "busy"
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// The store failed: the client may retry (with the same key); or
    /// what it holds cannot be read (a code that does not open), which no
    /// retry mends: 500, and the operator must look.
    pub fn store(error: &StoreError) -> Self {
        tracing::error!(%error, "order store failed");
        if let StoreError::Corrupt { .. } = error {
            return Self::new(
                500,
                "unreadable",
                "this order's stored data cannot be read; nothing is shown; the operator must look (see the log)",
            );
        }
        Self::new(
            503,
            "unavailable",
            "foxrelay's order store is unavailable; retry with the same Idempotency-Key",
        )
        .retry_after(Duration::from_secs(1))
    }

    /// FoxReload refused the order. The request's faults (an unknown
    /// product, a missing or invalid note, a quantity out of bounds) are the
    /// caller's: 422, or 409 for a price that changed. Our API key refused,
    /// or any refusal the request cannot have caused, is ours: 502. Either
    /// way FoxReload's code and text are passed on, and nothing was bought.
    pub fn supplier_refused(error: &SupplierError) -> Self {
        let code = error.supplier_code();
        let detail = error.supplier_detail();
        let said = detail.map(|d| format!(": {d}")).unwrap_or_default();
        let mut api = match error {
            SupplierError::Unauthorized { .. } => Self::new(
                502,
                "supplier_configuration",
                "FoxReload refused foxrelay's API key; nothing was bought; the operator has been alerted",
            ),
            _ if code == Some(PRICE_NOT_MATCHED) => {
                let current = error.supplier_price().and_then(plain_price);
                let mut api = Self::new(
                    409,
                    "price_changed",
                    match &current {
                        Some(price) => format!(
                            "totalPrice is not FoxReload's current price, {price}; nothing was bought; \
                             send the current price with a new Idempotency-Key"
                        ),
                        None => "totalPrice is not FoxReload's current price; nothing was bought; \
                                 send the current price with a new Idempotency-Key"
                            .to_owned(),
                    },
                );
                if let Some(price) = current {
                    api = api.with("currentPrice", price);
                }
                api
            }
            // Only a refusal FoxReload explained (its JSON `code`): a bare
            // 404 is as likely a wrong base URL as an unknown product.
            SupplierError::Rejected {
                status: 400 | 404 | 409 | 422,
                code: Some(code),
                ..
            } if !ACCOUNT_CODES.contains(&code.as_str()) => Self::new(
                422,
                "supplier_refused",
                format!("FoxReload refused the order{said}; nothing was bought"),
            ),
            _ => Self::new(
                502,
                "supplier_error",
                format!(
                    "FoxReload refused the order for a reason that is not in the request{said}; \
                     nothing was bought"
                ),
            ),
        };
        if let Some(code) = code {
            api = api.with("supplierCode", code);
        }
        if let Some(detail) = detail {
            api = api.with("supplierDetail", detail);
        }
        api
    }

    /// FoxReload could not be reached or failed; nothing was bought.
    pub fn supplier_unavailable(retry_after: Option<Duration>) -> Self {
        Self::new(
            503,
            "supplier_unavailable",
            "FoxReload is unavailable; nothing was bought; retry with the same Idempotency-Key",
        )
        .retry_after(retry_after.unwrap_or(Duration::from_secs(2)))
    }

    /// No POST of the order left: the order store was too slow to record
    /// one in time, or no time was left in the request for one. Nothing was
    /// bought.
    pub fn not_sent() -> Self {
        Self::new(
            503,
            "unavailable",
            "foxrelay could not send the order to FoxReload in time; nothing was bought; retry \
             with the same Idempotency-Key",
        )
        .retry_after(Duration::from_secs(1))
    }

    /// The stack's own FoxReload request budget has no slot for this
    /// create within its reach (creates come first: FoxReload is being sent
    /// all the creates it takes). Not FoxReload's failure.
    pub fn budget_spent(retry_after: Duration) -> Self {
        Self::new(
            503,
            "busy",
            "foxrelay is sending FoxReload all the requests its budget allows; nothing was \
             bought; retry with the same Idempotency-Key",
        )
        .retry_after(retry_after.max(Duration::from_secs(1)))
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

/// A price FoxReload wrote, as plain money (`12.50`), or `None` when it is
/// not one: its text is untrusted and never passed on as it came.
fn plain_price(text: &str) -> Option<String> {
    let cents = Price::new(text).cents().filter(|c| *c > 0)?;
    Some(format!("{}.{:02}", cents / 100, cents % 100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use foxrelay_shared::foxreload::Operation;

    fn rejected(status: u16, code: Option<&str>, price: Option<&str>) -> SupplierError {
        SupplierError::Rejected {
            op: Operation::CreateOrder,
            status,
            code: code.map(str::to_owned),
            detail: Some("said so".into()),
            price: price.map(str::to_owned),
        }
    }

    #[test]
    fn the_requests_faults_are_the_callers() {
        for (status, code) in [
            (400, Some("VALIDATION_ERROR")),
            (404, Some("NOT_FOUND")),
            (422, Some("QUANTITY_OUT_OF_RANGE")),
        ] {
            let api = ApiError::supplier_refused(&rejected(status, code, None));
            assert_eq!(
                (api.status, api.code),
                (422, "supplier_refused"),
                "{status}"
            );
            assert_eq!(api.extra["supplierDetail"], "said so");
        }
    }

    #[test]
    fn a_changed_price_is_a_conflict_with_the_current_price_when_given() {
        let api = ApiError::supplier_refused(&rejected(400, Some(PRICE_NOT_MATCHED), Some("12.5")));
        assert_eq!((api.status, api.code), (409, "price_changed"));
        assert_eq!(api.extra["currentPrice"], "12.50");
        assert_eq!(api.extra["supplierCode"], PRICE_NOT_MATCHED);
        for odd in [None, Some("<b>12</b>"), Some("-3"), Some("1e9")] {
            let api = ApiError::supplier_refused(&rejected(400, Some(PRICE_NOT_MATCHED), odd));
            assert_eq!(api.status, 409);
            assert!(!api.extra.contains_key("currentPrice"), "{odd:?}");
        }
    }

    #[test]
    fn our_key_and_our_account_are_ours() {
        let key = SupplierError::Unauthorized {
            op: Operation::CreateOrder,
            status: 403,
            code: None,
            detail: None,
        };
        let api = ApiError::supplier_refused(&key);
        assert_eq!((api.status, api.code), (502, "supplier_configuration"));
        let balance = ApiError::supplier_refused(&rejected(400, Some("BALANCE_NOT_ENOUGH"), None));
        assert_eq!((balance.status, balance.code), (502, "supplier_error"));
        let odd = ApiError::supplier_refused(&rejected(405, None, None));
        assert_eq!(odd.status, 502);
        // A refusal without FoxReload's code (an HTML 404 from a wrong base
        // URL) is not blamed on the request.
        for status in [400, 404, 422] {
            let bare = ApiError::supplier_refused(&rejected(status, None, None));
            assert_eq!(
                (bare.status, bare.code),
                (502, "supplier_error"),
                "{status}"
            );
        }
    }

    #[test]
    fn answers_that_invite_a_retry_say_when() {
        assert_eq!(
            ApiError::supplier_unavailable(Some(Duration::from_secs(7)))
                .header_value("retry-after"),
            Some("7")
        );
        assert_eq!(
            ApiError::supplier_unavailable(None).header_value("retry-after"),
            Some("2")
        );
    }
}
