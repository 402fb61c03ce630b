//! What can go wrong talking to FoxReload, sorted by what the caller must do.

use std::fmt;
use std::time::Duration;

/// The FoxReload call that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    CreateOrder,
    PayOrder,
    GetOrder,
    ListOrders,
}

impl Operation {
    /// Whether repeating the call can change anything at FoxReload. Only
    /// create and pay move money; an unclear outcome of those is ambiguous.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Self::CreateOrder | Self::PayOrder)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateOrder => "create order",
            Self::PayOrder => "pay order",
            Self::GetOrder => "get order",
            Self::ListOrders => "list orders",
        }
    }

    /// As a metric dimension and a log field: `create_order`, `pay_order`,
    /// `get_order`, `list_orders`.
    pub fn key(self) -> &'static str {
        match self {
            Self::CreateOrder => "create_order",
            Self::PayOrder => "pay_order",
            Self::GetOrder => "get_order",
            Self::ListOrders => "list_orders",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller should do about a [`SupplierError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing happened at FoxReload (or repeating is harmless): try again
    /// later, honouring [`SupplierError::retry_after`].
    Retryable,
    /// A create or pay may have taken effect: reconcile before repeating it.
    Ambiguous,
    /// FoxReload refused the request, or our configuration is wrong: repeating
    /// it unchanged will fail again.
    Permanent,
}

/// Why an outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uncertainty {
    /// The request was sent and no answer came in time.
    TimedOut,
    /// The connection broke after the request was sent.
    ConnectionLost,
    /// FoxReload answered 5xx after receiving the request.
    ServerError(u16),
    /// FoxReload answered 2xx with a body we could not read.
    UnreadableSuccess(u16),
}

impl fmt::Display for Uncertainty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("no answer in time after the request was sent"),
            Self::ConnectionLost => f.write_str("the connection broke after the request was sent"),
            Self::ServerError(status) => write!(f, "FoxReload answered {status}"),
            Self::UnreadableSuccess(status) => {
                write!(f, "FoxReload answered {status} with an unreadable body")
            }
        }
    }
}

/// [`SupplierError::Throttled`]'s kind (as a stored problem says it).
pub const THROTTLED: &str = "throttled";

/// A failed FoxReload call. Messages name the operation and what FoxReload
/// said; they never carry the API key.
#[derive(Debug, thiserror::Error)]
pub enum SupplierError {
    /// No request reached FoxReload (connection refused, DNS, connect timeout).
    #[error("FoxReload could not be reached to {op}: {source}")]
    Unreachable {
        op: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// An idempotent call timed out or lost its connection.
    #[error("FoxReload did not answer {op} in time or dropped the connection: {source}")]
    Interrupted {
        op: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// A create or pay whose outcome is unknown.
    #[error("the outcome of {op} at FoxReload is unknown: {why}")]
    Ambiguous {
        op: Operation,
        why: Uncertainty,
        #[source]
        source: Option<reqwest::Error>,
    },
    /// 5xx on an idempotent call.
    #[error("FoxReload failed to {op}: status {status}{}", describe(.code, .detail))]
    Unavailable {
        op: Operation,
        status: u16,
        code: Option<String>,
        detail: Option<String>,
    },
    /// 429.
    #[error("FoxReload rate-limited {op}{}", .retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        op: Operation,
        retry_after: Option<Duration>,
    },
    /// Not sent: the stack's own FoxReload budget held it back (`by` says
    /// why). Not a FoxReload failure: ask again after `retry_after`.
    #[error("{op} was not sent to FoxReload: {}", held_back(*.by, *.retry_after))]
    Throttled {
        op: Operation,
        retry_after: Duration,
        by: HeldBy,
    },
    /// A 2xx body that is not what the API documents (idempotent calls).
    #[error("FoxReload sent an unreadable answer to {op} (status {status}): {reason}")]
    InvalidResponse {
        op: Operation,
        status: u16,
        reason: String,
    },
    /// 401/403: the API key is wrong, revoked, or this address is not allowed.
    #[error(
        "FoxReload refused the API key for {op} (status {status}): check the key in Secrets Manager and the key's IP allowlist{}",
        describe(.code, .detail)
    )]
    Unauthorized {
        op: Operation,
        status: u16,
        code: Option<String>,
        detail: Option<String>,
    },
    /// Any other 4xx: FoxReload refused this request.
    #[error("FoxReload refused to {op}: status {status}{}", describe(.code, .detail))]
    Rejected {
        op: Operation,
        status: u16,
        code: Option<String>,
        detail: Option<String>,
        /// The current price, when FoxReload refused a changed price and
        /// said it (as FoxReload wrote it: untrusted).
        price: Option<String>,
    },
}

/// Why the stack's own budget held a FoxReload request back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldBy {
    /// The budget is spent: no slot within the priority's reach, a
    /// cool-down after a `429`, or a cut voided the slot taken.
    Budget,
    /// The budget could not be asked in time: its store answers more slowly
    /// than the time the request has left, or failed. Nothing says the
    /// budget is spent.
    Store,
    /// The budget's next free slot comes after the request's deadline, but
    /// within the priority's reach: a request with the time one is given
    /// would have had it. The work before (a slow store) took the time.
    /// Nothing says the budget is spent.
    Deadline,
}

fn held_back(by: HeldBy, retry_after: Duration) -> String {
    match by {
        HeldBy::Budget => format!(
            "the stack's request budget is spent for {} ms",
            retry_after.as_millis()
        ),
        HeldBy::Store => "the stack's request budget could not be asked in time (its store is \
                          slow or failing)"
            .to_owned(),
        HeldBy::Deadline => format!(
            "the stack's next free request slot, in {} ms, comes after the request's deadline",
            retry_after.as_millis()
        ),
    }
}

fn describe(code: &Option<String>, detail: &Option<String>) -> String {
    match (code, detail) {
        (Some(c), Some(d)) => format!(", {c}: {d}"),
        (Some(c), None) => format!(", {c}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

impl SupplierError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unreachable { .. }
            | Self::Interrupted { .. }
            | Self::Unavailable { .. }
            | Self::RateLimited { .. }
            | Self::Throttled { .. }
            | Self::InvalidResponse { .. } => ErrorClass::Retryable,
            Self::Ambiguous { .. } => ErrorClass::Ambiguous,
            Self::Unauthorized { .. } | Self::Rejected { .. } => ErrorClass::Permanent,
        }
    }

    pub fn operation(&self) -> Operation {
        match self {
            Self::Unreachable { op, .. }
            | Self::Interrupted { op, .. }
            | Self::Ambiguous { op, .. }
            | Self::Unavailable { op, .. }
            | Self::RateLimited { op, .. }
            | Self::Throttled { op, .. }
            | Self::InvalidResponse { op, .. }
            | Self::Unauthorized { op, .. }
            | Self::Rejected { op, .. } => *op,
        }
    }

    /// How long FoxReload asked us to wait (429 `Retry-After`), or our own
    /// budget did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// FoxReload's machine code (`BALANCE_NOT_ENOUGH`, `NOT_FOUND`, …).
    pub fn supplier_code(&self) -> Option<&str> {
        match self {
            Self::Unavailable { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Rejected { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// FoxReload's human text, when it sent one.
    pub fn supplier_detail(&self) -> Option<&str> {
        match self {
            Self::Unavailable { detail, .. }
            | Self::Unauthorized { detail, .. }
            | Self::Rejected { detail, .. } => detail.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status FoxReload answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unavailable { status, .. }
            | Self::InvalidResponse { status, .. }
            | Self::Unauthorized { status, .. }
            | Self::Rejected { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::Ambiguous {
                why: Uncertainty::ServerError(s) | Uncertainty::UnreadableSuccess(s),
                ..
            } => Some(*s),
            _ => None,
        }
    }

    /// The current price FoxReload gave with a refusal, as it wrote it.
    pub fn supplier_price(&self) -> Option<&str> {
        match self {
            Self::Rejected { price, .. } => price.as_deref(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Rejected { status: 404, .. })
    }

    /// A short stable name for metrics and stored "last error" fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Interrupted { .. } => "interrupted",
            Self::Ambiguous { .. } => "ambiguous",
            Self::Unavailable { .. } => "unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Throttled { .. } => THROTTLED,
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Rejected { .. } => "rejected",
        }
    }
}
