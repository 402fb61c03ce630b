//! The simulator's catalog: one product per behaviour.
//!
//! A test chooses how FoxReload misbehaves by choosing what it buys. The
//! product ids are stable and listed as constants so tests can name them.

use serde_json::{Value, json};

use crate::money;

/// The happy path (see [`Behaviour::Fast`]).
pub const PRODUCT_FAST: &str = "product_fast";
/// Slow fulfilment (see [`Behaviour::Slow`]).
pub const PRODUCT_SLOW: &str = "product_slow";
/// Never fulfilled (see [`Behaviour::Never`]).
pub const PRODUCT_NEVER: &str = "product_never";
/// Fulfilment fails (see [`Behaviour::Fail`]).
pub const PRODUCT_FAIL: &str = "product_fail";
/// Partial fulfilment (see [`Behaviour::Partial`]).
pub const PRODUCT_PARTIAL: &str = "product_partial";
/// Activation data without codes (see [`Behaviour::Activation`]).
pub const PRODUCT_ACTIVATION: &str = "product_activation";
/// Many codes per unit (see [`Behaviour::Many`]).
pub const PRODUCT_MANY: &str = "product_many";
/// Create commits, then the response stalls (see [`Behaviour::StallCreate`]).
pub const PRODUCT_STALL_CREATE: &str = "product_stall_create";
/// First reads answer 503 (see [`Behaviour::ServerError`]).
pub const PRODUCT_5XX: &str = "product_5xx";
/// First reads answer 429 (see [`Behaviour::Throttle`]).
pub const PRODUCT_429: &str = "product_429";
/// First reads answer HTML (see [`Behaviour::Garbage`]).
pub const PRODUCT_GARBAGE: &str = "product_garbage";
/// An undocumented status on the way (see [`Behaviour::UnknownStatus`]).
pub const PRODUCT_UNKNOWN_STATUS: &str = "product_unknown_status";
/// Too expensive to pay for (see [`Behaviour::Poor`]).
pub const PRODUCT_POOR: &str = "product_poor";
/// Requires a `player_id` note (see [`Behaviour::Player`]).
pub const PRODUCT_PLAYER: &str = "product_player";
/// Completes one unit short without saying so (see [`Behaviour::Short`]).
pub const PRODUCT_SHORT: &str = "product_short";
/// Completes 2 s after payment, whatever the timing (see
/// [`Behaviour::Timed`]).
pub const PRODUCT_TWO_SECONDS: &str = "product_2s";
/// Completes 25 s after payment, whatever the timing (see
/// [`Behaviour::Timed`]).
pub const PRODUCT_TWENTY_FIVE_SECONDS: &str = "product_25s";

/// What buying a product makes the simulator do. Each behaviour exists to
/// drive one path of our client and of the polling pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// The happy path: completes `Timing::fast_fulfilment` after processing
    /// starts, with one `{"code"}` per unit.
    Fast,
    /// Completes only after `Timing::slow_fulfilment`: drives the slower
    /// polling tail and the stalled-order alert.
    Slow,
    /// Stays `processing` forever: drives the polling horizon, the stall
    /// alert and abandonment.
    Never,
    /// Ends `failed` after `Timing::fast_fulfilment` with the item error
    /// "supplier out of stock" and no codes: drives the failure event and the
    /// operations alert.
    Fail,
    /// Ends `completed` but delivers one unit fewer than ordered, with the item
    /// error "1 of N units not delivered": a completed order can still carry an
    /// item error, and both must be kept.
    Partial,
    /// Ends `completed` with activation entries that have no `code` key
    /// (`pin`, `serial`, `activationUrl`, `expiresAt`): entries must be kept
    /// whole, never dropped.
    Activation,
    /// Ends `completed` with 50 codes per unit: drives large payloads through
    /// storage and events.
    Many,
    /// Create commits the order (visible to GET and list, counted), then holds
    /// the HTTP response for `Timing::create_stall`: a client with a shorter
    /// timeout sees an ambiguous failure after sending, and must reconcile
    /// through the list before creating again. Otherwise like `Fast`.
    StallCreate,
    /// The first 3 reads of each such order answer 503: transient supplier
    /// errors must be retried. Otherwise like `Fast`.
    ServerError,
    /// The first 2 reads of each such order answer 429 with `Retry-After: 2`:
    /// throttling must be honoured. Otherwise like `Fast`.
    Throttle,
    /// The first 2 reads of each such order answer 200 with an HTML body:
    /// a malformed supplier response must be retried, not trusted. Otherwise
    /// like `Fast`.
    Garbage,
    /// Once processing, reports the undocumented status `on_hold` for
    /// `Timing::unknown_status_for`, then completes like `Fast`: an unknown
    /// status must be treated as non-terminal.
    UnknownStatus,
    /// Priced beyond any test balance: pay fails with `BALANCE_NOT_ENOUGH`,
    /// and the unpaid order later expires to `cancelled` /
    /// `payment_expiration`.
    Poor,
    /// Requires the note field `player_id`: a create without it is refused
    /// with `VALIDATION_ERROR` naming the field. Otherwise like `Fast`.
    Player,
    /// Ends `completed` one unit short, with no item error: a short delivery
    /// FoxReload does not explain, which operations must hear of.
    Short,
    /// Completes exactly this long after payment (whatever `Timing` says),
    /// with one `{"code"}` per unit: a product whose orders always take the
    /// same time, for learned polling.
    Timed(std::time::Duration),
}

/// One catalog entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    /// The product id, used as `itemId` when creating orders.
    pub id: &'static str,
    /// The display name.
    pub name: &'static str,
    /// The unit price in US cents.
    pub price_cents: i64,
    /// Note fields a create must carry for this product.
    pub required_note_fields: &'static [&'static str],
    /// What buying it does.
    pub behaviour: Behaviour,
}

/// The smallest quantity of one item.
pub const MIN_QUANTITY: u64 = 1;
/// The largest quantity of one item.
pub const MAX_QUANTITY: u64 = 100;

const fn entry(
    id: &'static str,
    name: &'static str,
    price_cents: i64,
    behaviour: Behaviour,
) -> Product {
    Product {
        id,
        name,
        price_cents,
        required_note_fields: &[],
        behaviour,
    }
}

static CATALOG: [Product; 17] = [
    entry(PRODUCT_FAST, "Game Wallet 10 USD", 1250, Behaviour::Fast),
    entry(
        PRODUCT_SLOW,
        "Console Gift Card 25 USD (slow)",
        2610,
        Behaviour::Slow,
    ),
    entry(
        PRODUCT_NEVER,
        "Game Coins 800 (never delivered)",
        999,
        Behaviour::Never,
    ),
    entry(
        PRODUCT_FAIL,
        "Streaming 30 USD (fails)",
        3175,
        Behaviour::Fail,
    ),
    entry(
        PRODUCT_PARTIAL,
        "Console Store 10 USD (partial)",
        1040,
        Behaviour::Partial,
    ),
    entry(
        PRODUCT_ACTIVATION,
        "Travel eSIM 5 GB (activation)",
        715,
        Behaviour::Activation,
    ),
    entry(
        PRODUCT_MANY,
        "Micro Card bundle (50 codes a unit)",
        5500,
        Behaviour::Many,
    ),
    entry(
        PRODUCT_STALL_CREATE,
        "App Store 15 USD (create stalls)",
        1560,
        Behaviour::StallCreate,
    ),
    entry(
        PRODUCT_5XX,
        "Gift Card 20 USD (503 first)",
        2080,
        Behaviour::ServerError,
    ),
    entry(
        PRODUCT_429,
        "Handheld Store 20 USD (429 first)",
        2070,
        Behaviour::Throttle,
    ),
    entry(
        PRODUCT_GARBAGE,
        "Music 1 month (HTML first)",
        1105,
        Behaviour::Garbage,
    ),
    entry(
        PRODUCT_UNKNOWN_STATUS,
        "Marketplace 10 USD (on_hold)",
        1025,
        Behaviour::UnknownStatus,
    ),
    entry(
        PRODUCT_POOR,
        "Bulk card lot (too expensive)",
        999999900,
        Behaviour::Poor,
    ),
    Product {
        id: PRODUCT_PLAYER,
        name: "Mobile Game 520 Gems (player id)",
        price_cents: 535,
        required_note_fields: &["player_id"],
        behaviour: Behaviour::Player,
    },
    entry(
        PRODUCT_SHORT,
        "Streaming 3 months (one short)",
        1890,
        Behaviour::Short,
    ),
    entry(
        PRODUCT_TWO_SECONDS,
        "Steam Wallet 5 USD (2 s)",
        630,
        Behaviour::Timed(std::time::Duration::from_secs(2)),
    ),
    entry(
        PRODUCT_TWENTY_FIVE_SECONDS,
        "Travel eSIM 1 GB (25 s)",
        480,
        Behaviour::Timed(std::time::Duration::from_secs(25)),
    ),
];

/// Every product the simulator sells.
pub fn catalog() -> &'static [Product] {
    &CATALOG
}

/// The product with this id, if the simulator sells it.
pub fn product(id: &str) -> Option<&'static Product> {
    CATALOG.iter().find(|p| p.id == id)
}

impl Product {
    /// The unit price as FoxReload writes it in product and order bodies: `"12.50"`.
    pub fn price(&self) -> String {
        money::format_cents(self.price_cents)
    }

    /// The `GET /api/products/{id}/` body.
    pub(crate) fn render(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "price": self.price(),
            "currency": "usd",
            "minQuantity": MIN_QUANTITY,
            "maxQuantity": MAX_QUANTITY,
            "requiredNoteFields": self.required_note_fields,
            "inStock": true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_one_product_per_behaviour_with_unique_ids() {
        let mut ids: Vec<_> = catalog().iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 17);
        let mut behaviours: Vec<_> = catalog()
            .iter()
            .map(|p| format!("{:?}", p.behaviour))
            .collect();
        behaviours.sort_unstable();
        behaviours.dedup();
        assert_eq!(behaviours.len(), 17);
        assert!(catalog().iter().all(|p| p.price_cents > 0));
    }

    #[test]
    fn product_lookup_finds_known_ids_only() {
        assert_eq!(
            product(PRODUCT_FAST).map(|p| p.behaviour),
            Some(Behaviour::Fast)
        );
        assert!(product("product_nope").is_none());
        assert_eq!(
            product(PRODUCT_FAST).map(Product::price).as_deref(),
            Some("12.50")
        );
    }
}
