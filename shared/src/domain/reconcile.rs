//! Reconciliation: after an ambiguous create, which of FoxReload's orders
//! could be ours.
//!
//! FoxReload has no idempotency key and no reference field, so an order is
//! recognised by what it holds and when it was made:
//! - exactly our products and quantities, our notes when FoxReload echoes
//!   them, our `isMock` when it says it, and our `totalPrice` when we sent
//!   one;
//! - created inside a window in which one of *our* POSTs was in flight: from
//!   its send time to send + request timeout, moved by FoxReload's measured
//!   clock offset and widened by that measure's uncertainty and a margin
//!   (a wide margin while there is no measure).
//!
//! A list entry that cannot be evaluated (no readable `createdAt`, items
//! without a product or quantity, a price we sent but it does not show) is
//! never silently skipped: it makes the answer undecided. Which candidate
//! is taken is decided by [`decide`], and the store's conditional claim
//! makes a supplier order held by exactly one of our orders.

use super::order::OrderLine;
use super::supplier::{Price, SupplierOrder};
use serde_json::{Map, Value};
use std::time::Duration;
use time::OffsetDateTime;

/// FoxReload's clock against ours: `foxreload ≈ ours + offset`, within
/// `± uncertainty`, as measured at `sampled_at` (our clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset {
    pub offset: time::Duration,
    pub uncertainty: Duration,
    pub sampled_at: OffsetDateTime,
}

impl ClockOffset {
    /// One measure from a create we sent at `sent` and saw answered at
    /// `answered` (our clock), which FoxReload stamped `created` (its clock):
    /// the order was made somewhere in between, so the offset is taken at the
    /// midpoint, uncertain by half the round trip.
    pub fn sample(sent: OffsetDateTime, answered: OffsetDateTime, created: OffsetDateTime) -> Self {
        let half: time::Duration = (answered - sent).max(time::Duration::ZERO) / 2;
        Self {
            offset: created - (sent + half),
            uncertainty: half.try_into().unwrap_or_default(),
            sampled_at: answered,
        }
    }

    /// Whether the measure can be FoxReload's clock at all: an offset of
    /// more than an hour is a broken timestamp (a default date, a zone read
    /// wrongly), never a clock.
    pub fn is_plausible(&self) -> bool {
        self.offset.abs() <= time::Duration::hours(1)
    }

    /// The measure as it stands at `now`: clocks drift and are stepped, so
    /// its uncertainty grows by a second for every ten minutes of age.
    pub fn aged(&self, now: OffsetDateTime) -> Self {
        let age: Duration = (now - self.sampled_at).try_into().unwrap_or_default();
        Self {
            uncertainty: self.uncertainty + age / 600,
            ..*self
        }
    }

    /// Whether this measure should replace `stored`: it is tighter, or the
    /// stored one is older than `stale_after`.
    pub fn replaces(&self, stored: Option<&ClockOffset>, stale_after: Duration) -> bool {
        stored.is_none_or(|stored| {
            self.uncertainty <= stored.uncertainty
                || self.sampled_at - stored.sampled_at >= stale_after
        })
    }
}

/// The figures that widen a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Margins {
    /// How long one of our POSTs may be in flight (the client's timeout).
    pub request_timeout: Duration,
    /// Added on both sides of every window: FoxReload's own latency between
    /// receiving and stamping an order, and clock drift since the measure.
    pub margin: Duration,
    /// The uncertainty used while FoxReload's clock has not been measured.
    pub unmeasured: Duration,
    /// How wrong a measure may yet be (a clock stepped since): look-alikes
    /// this much further out keep reconciliation from saying "nothing".
    pub doubt: Duration,
}

impl Default for Margins {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(8),
            margin: Duration::from_secs(2),
            unmeasured: Duration::from_secs(120),
            doubt: Duration::from_secs(30),
        }
    }
}

/// When (FoxReload's clock) one of our POSTs could have created an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// The send time itself, in FoxReload's clock: candidates nearest to it
    /// are preferred.
    pub sent: OffsetDateTime,
}

impl Window {
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.from <= at && at <= self.to
    }
}

/// The windows of POSTs sent at `posted_at` (our clock).
pub fn windows(
    posted_at: &[OffsetDateTime],
    clock: Option<&ClockOffset>,
    margins: &Margins,
) -> Vec<Window> {
    let (offset, uncertainty) = match clock {
        Some(clock) => (clock.offset, clock.uncertainty),
        None => (time::Duration::ZERO, margins.unmeasured),
    };
    let widen = uncertainty + margins.margin;
    posted_at
        .iter()
        .map(|sent| {
            let sent = *sent + offset;
            Window {
                from: sent - widen,
                to: sent + margins.request_timeout + widen,
                sent,
            }
        })
        .collect()
}

/// The windows in which a look-alike could still be ours if the measure
/// were off by [`Margins::doubt`] (unmeasured, those of an unmeasured
/// clock).
pub fn doubted_windows(
    posted_at: &[OffsetDateTime],
    clock: Option<&ClockOffset>,
    margins: &Margins,
) -> Vec<Window> {
    let doubted = clock.map(|c| ClockOffset {
        uncertainty: c.uncertainty + margins.doubt,
        ..*c
    });
    windows(posted_at, doubted.as_ref(), margins)
}

/// The earliest instant any window opens.
pub fn opens(windows: &[Window]) -> Option<OffsetDateTime> {
    windows.iter().map(|w| w.from).min()
}

/// The latest instant any window closes.
pub fn closes(windows: &[Window]) -> Option<OffsetDateTime> {
    windows.iter().map(|w| w.to).max()
}

/// What we asked FoxReload for, in the terms it echoes.
#[derive(Clone, Copy, Debug)]
pub struct Wanted<'a> {
    pub lines: &'a [OrderLine],
    pub total_price: Option<&'a str>,
    pub is_mock: bool,
}

/// How a listed order compares with ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It matches exactly and was made (at this instant) inside a window.
    Fits(OffsetDateTime),
    /// It is certainly not one of this order's.
    No,
    /// It may be ours, but something needed to tell cannot be read.
    Unknown(&'static str),
}

/// Compares a listed order with ours.
pub fn fit(wanted: &Wanted<'_>, windows: &[Window], candidate: &SupplierOrder) -> Fit {
    let created = candidate.created_at.as_ref().and_then(|t| t.parsed);
    // Made outside every window: not this order's, whatever else it holds
    // (an old entry whose items no longer read is no reason for doubt).
    if created.is_some_and(|at| !windows.iter().any(|w| w.contains(at))) {
        return Fit::No;
    }
    let held = match alike(wanted, candidate) {
        Ok(held) => held,
        Err(fit) => return fit,
    };
    if held.iter().all(|(_, _, note)| note.is_some()) {
        let mut theirs: Vec<_> = held
            .iter()
            .map(|(p, q, note)| (*p, *q, note_text(note.as_ref())))
            .collect();
        let mut ours: Vec<_> = wanted
            .lines
            .iter()
            .map(|l| {
                let note = l.note.clone().map(Value::Object);
                (l.product_id.as_str(), l.quantity, note_text(note.as_ref()))
            })
            .collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        if theirs != ours {
            return Fit::No;
        }
    }
    match created {
        Some(at) => Fit::Fits(at),
        None => Fit::Unknown("no readable createdAt"),
    }
}

/// Whether a listed order that does not [`fit`] could still be ours if a
/// measure were wrong: the same products, quantities, mock flag and price,
/// made inside the `wide` windows ([`doubted_windows`]), whatever
/// its notes say. Such an order keeps reconciliation from saying "nothing
/// there": a wrong clock measure, a note FoxReload rewrote, or a timeout
/// changed since the POST must never lead to buying again.
pub fn resembles(wanted: &Wanted<'_>, wide: &[Window], candidate: &SupplierOrder) -> bool {
    let near = candidate
        .created_at
        .as_ref()
        .and_then(|t| t.parsed)
        .is_none_or(|created| wide.iter().any(|w| w.contains(created)));
    // Near our POSTs, an entry whose items cannot be read may be ours too.
    near && !matches!(alike(wanted, candidate), Err(Fit::No))
}

/// Whether `candidate` holds our products and quantities (and mock flag
/// and price) as far as can be read: an entry reconciliation keeps, since
/// an order of ours with other windows may explain it.
pub fn same_goods(wanted: &Wanted<'_>, candidate: &SupplierOrder) -> bool {
    !matches!(alike(wanted, candidate), Err(Fit::No))
}

/// The items of `candidate` when its products, quantities, mock flag and
/// price are ours; else why not (`Fit::No`), or why it cannot be told
/// (`Fit::Unknown`).
#[allow(clippy::type_complexity)]
fn alike<'c>(
    wanted: &Wanted<'_>,
    candidate: &'c SupplierOrder,
) -> Result<Vec<(&'c str, u32, &'c Option<Value>)>, Fit> {
    let mut held = Vec::with_capacity(candidate.items.len());
    for item in &candidate.items {
        match (item.product_id(), item.quantity) {
            (Some(product), Some(quantity)) => held.push((product, quantity, &item.note)),
            _ => {
                return Err(Fit::Unknown(
                    "an item without a readable product or quantity",
                ));
            }
        }
    }
    if candidate.items.is_empty() {
        return Err(Fit::Unknown("no items"));
    }
    let ours = shape(
        wanted
            .lines
            .iter()
            .map(|l| (l.product_id.as_str(), l.quantity))
            .collect(),
    );
    if shape(held.iter().map(|(p, q, _)| (*p, *q)).collect()) != ours {
        return Err(Fit::No);
    }
    if candidate.is_mock.is_some_and(|mock| mock != wanted.is_mock) {
        return Err(Fit::No);
    }
    if let Some(sent) = wanted.total_price {
        let sent = Price::new(sent).cents();
        match candidate.total_price.as_ref().and_then(Price::cents) {
            None => return Err(Fit::Unknown("no readable totalPrice")),
            Some(charged) if Some(charged) != sent => return Err(Fit::No),
            Some(_) => {}
        }
    }
    Ok(held)
}

fn shape(mut lines: Vec<(&str, u32)>) -> Vec<(&str, u32)> {
    lines.sort_unstable();
    lines
}

/// A note in one canonical text: keys sorted, scalars as text, an empty or
/// null note as nothing.
fn note_text(note: Option<&Value>) -> String {
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect::<Map<_, _>>(),
            ),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            Value::String(s) => Value::String(s.trim().to_owned()),
            other => other.clone(),
        }
    }
    match note.map(canonical) {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(map)) if map.is_empty() => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What to do with the unclaimed candidates that fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Claim this one (the nearest to one of our send times).
    Claim(String),
    /// Nothing of ours is there.
    Nothing,
    /// More candidates fit than we have undecided orders that could own
    /// them: one of them is somebody else's, and nothing tells which.
    Ambiguous(Vec<String>),
    /// Orders of ours whose POSTs may still be in flight could own some of
    /// them, and their orders may not be listed yet: look again later.
    Wait,
}

/// Our undecided orders of the same request whose windows hold a
/// candidate, as counted when deciding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owners {
    /// Whose windows had all closed when the list was read (the order
    /// deciding included): any order they made is in it.
    pub settled: usize,
    /// Of those, how many may never have sent their last POST (the
    /// invocation died between recording it and learning its outcome) while
    /// the list shows orders that are nobody's of ours: such an order
    /// explains no candidate for sure, since another buyer's could stand in
    /// for the order it never made.
    pub unsure: usize,
    /// Whose last POST may still be in flight: their orders may be missing
    /// from the list as read.
    pub in_flight: usize,
}

/// Decides among `fitting` (this order's unclaimed candidates and when
/// they were made) and `more` (the other unclaimed entries that the orders
/// counted in `owners` could own: their closure). A candidate is claimed
/// only when the orders of ours sure to be listed if they were made are at
/// least as many as the entries they could explain; otherwise it waits for
/// orders still in flight, or is ambiguous. An owner whose own order lies
/// outside this one's windows explains that order, not a look-alike in
/// them: counting only this order's candidates would let it vouch for one.
pub fn decide(
    fitting: &[(String, OffsetDateTime)],
    more: &[(String, OffsetDateTime)],
    owners: Owners,
    windows: &[Window],
) -> Verdict {
    if fitting.is_empty() {
        return Verdict::Nothing;
    }
    let settled = owners.settled.max(1);
    let certain = settled - owners.unsure.min(settled);
    let entries = fitting.len() + more.len();
    if entries > certain {
        if owners.in_flight > 0 && entries <= certain + owners.in_flight {
            return Verdict::Wait;
        }
        return Verdict::Ambiguous(
            fitting
                .iter()
                .chain(more)
                .map(|(id, _)| id.clone())
                .collect(),
        );
    }
    let distance = |at: OffsetDateTime| {
        windows
            .iter()
            .map(|w| (at - w.sent).abs())
            .min()
            .unwrap_or(time::Duration::MAX)
    };
    let (nearest, _) = fitting
        .iter()
        .min_by_key(|(id, at)| (distance(*at), id.clone()))
        .expect("not empty");
    Verdict::Claim(nearest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

    fn order(created: Value, extra: Value) -> SupplierOrder {
        let mut body = json!({"id": "x", "status": "active", "createdAt": created,
            "items": [{"product": {"id": "a"}, "quantity": 1}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value(body).unwrap()
    }

    fn line(product: &str, quantity: u32, note: Option<Value>) -> OrderLine {
        OrderLine {
            product_id: product.into(),
            quantity,
            note: note.map(|n| n.as_object().unwrap().clone()),
        }
    }

    fn measured(offset_secs: i64) -> ClockOffset {
        ClockOffset {
            offset: time::Duration::seconds(offset_secs),
            uncertainty: Duration::from_millis(100),
            sampled_at: T0,
        }
    }

    fn one_post(clock: Option<&ClockOffset>) -> Vec<Window> {
        windows(&[T0], clock, &Margins::default())
    }

    #[test]
    fn an_order_made_outside_our_posts_window_is_not_ours() {
        let lines = [line("a", 1, None)];
        let wanted = Wanted {
            lines: &lines,
            total_price: None,
            is_mock: false,
        };
        let w = one_post(Some(&measured(0)));
        // A minute before our POST: another buyer's, however alike.
        let before = order(json!("2026-11-28T09:59:00Z"), json!({}));
        assert_eq!(fit(&wanted, &w, &before), Fit::No);
        // Twenty seconds after it was sent, well past its 8 s timeout.
        let after = order(json!("2026-11-28T10:00:20Z"), json!({}));
        assert_eq!(fit(&wanted, &w, &after), Fit::No);
        let inside = order(json!("2026-11-28T10:00:03Z"), json!({}));
        assert!(matches!(fit(&wanted, &w, &inside), Fit::Fits(_)));
    }

    #[test]
    fn the_window_follows_foxreloads_clock_and_is_wide_only_while_unmeasured() {
        let lines = [line("a", 1, None)];
        let wanted = Wanted {
            lines: &lines,
            total_price: None,
            is_mock: false,
        };
        // FoxReload's clock runs 90 s ahead: our POST at 10:00:00 is stamped
        // 10:01:30 or so.
        let ahead = order(json!("2026-11-28T10:01:31Z"), json!({}));
        assert_eq!(fit(&wanted, &one_post(Some(&measured(0))), &ahead), Fit::No);
        assert!(matches!(
            fit(&wanted, &one_post(Some(&measured(90))), &ahead),
            Fit::Fits(_)
        ));
        // Unmeasured, the window is two minutes wide on each side.
        assert!(matches!(
            fit(&wanted, &one_post(None), &ahead),
            Fit::Fits(_)
        ));
        let w = one_post(None);
        assert_eq!(opens(&w), Some(T0 - time::Duration::seconds(122)));
        assert_eq!(closes(&w), Some(T0 + time::Duration::seconds(130)));
    }

    #[test]
    fn mock_flag_price_and_echoed_notes_must_match() {
        let lines = [line("a", 1, Some(json!({"player_id": "7"})))];
        let wanted = Wanted {
            lines: &lines,
            total_price: Some("12.50"),
            is_mock: false,
        };
        let w = one_post(Some(&measured(0)));
        let at = json!("2026-11-28T10:00:01Z");
        let with = |extra: Value| {
            let mut o = order(at.clone(), extra);
            o.items[0].note = Some(json!({"player_id": "7"}));
            o
        };
        let exact = with(json!({"totalPrice": "12.5", "isMock": false}));
        assert!(matches!(fit(&wanted, &w, &exact), Fit::Fits(_)));
        let mock = with(json!({"totalPrice": "12.50", "isMock": true}));
        assert_eq!(fit(&wanted, &w, &mock), Fit::No);
        let dearer = with(json!({"totalPrice": "13.00"}));
        assert_eq!(fit(&wanted, &w, &dearer), Fit::No);
        let priceless = with(json!({}));
        assert!(matches!(fit(&wanted, &w, &priceless), Fit::Unknown(_)));
        let mut other_player = with(json!({"totalPrice": "12.50"}));
        other_player.items[0].note = Some(json!({"player_id": 8}));
        assert_eq!(fit(&wanted, &w, &other_player), Fit::No);
        let mut same_player_as_number = with(json!({"totalPrice": "12.50"}));
        same_player_as_number.items[0].note = Some(json!({"player_id": 7}));
        assert!(matches!(
            fit(&wanted, &w, &same_player_as_number),
            Fit::Fits(_)
        ));
        // Notes not echoed at all: nothing to compare.
        let mut silent = with(json!({"totalPrice": "12.50"}));
        silent.items[0].note = None;
        assert!(matches!(fit(&wanted, &w, &silent), Fit::Fits(_)));
    }

    #[test]
    fn an_entry_that_cannot_be_read_is_unknown_never_skipped() {
        let lines = [line("a", 1, None)];
        let wanted = Wanted {
            lines: &lines,
            total_price: None,
            is_mock: false,
        };
        let w = one_post(Some(&measured(0)));
        let no_time = order(json!("soon"), json!({}));
        assert!(matches!(fit(&wanted, &w, &no_time), Fit::Unknown(_)));
        let no_product = order(
            json!("2026-11-28T10:00:01Z"),
            json!({"items": [{"quantity": 1}]}),
        );
        assert!(matches!(fit(&wanted, &w, &no_product), Fit::Unknown(_)));
        let no_items = order(json!("2026-11-28T10:00:01Z"), json!({"items": []}));
        assert!(matches!(fit(&wanted, &w, &no_items), Fit::Unknown(_)));
        // Another shape is certainly not ours, readable time or not.
        let other = order(
            json!("soon"),
            json!({"items": [{"product": {"id": "b"}, "quantity": 1}]}),
        );
        assert_eq!(fit(&wanted, &w, &other), Fit::No);
        // Epoch milliseconds and a space-separated time read as instants.
        let ms = order(json!(T0.unix_timestamp() * 1000 + 1500), json!({}));
        assert!(matches!(fit(&wanted, &w, &ms), Fit::Fits(_)));
        let spaced = order(json!("2026-11-28 10:00:01"), json!({}));
        assert!(matches!(fit(&wanted, &w, &spaced), Fit::Fits(_)));
    }

    #[test]
    fn a_look_alike_outside_the_measured_window_still_resembles_ours() {
        let lines = [line("a", 1, Some(json!({"player_id": "007"})))];
        let wanted = Wanted {
            lines: &lines,
            total_price: None,
            is_mock: false,
        };
        let strict = one_post(Some(&measured(0)));
        let wide = one_post(None);
        // Twenty seconds off: not ours by the measure, but a wrong measure
        // would make it ours.
        let off = order(json!("2026-11-28T10:00:20Z"), json!({}));
        assert_eq!(fit(&wanted, &strict, &off), Fit::No);
        assert!(resembles(&wanted, &wide, &off));
        // A note FoxReload rewrote.
        let mut rewritten = order(json!("2026-11-28T10:00:01Z"), json!({}));
        rewritten.items[0].note = Some(json!({"player_id": 7}));
        assert_eq!(fit(&wanted, &strict, &rewritten), Fit::No);
        assert!(resembles(&wanted, &wide, &rewritten));
        // An hour away, another product, or a mock: not ours in any case.
        let far = order(json!("2026-11-28T11:00:00Z"), json!({}));
        assert!(!resembles(&wanted, &wide, &far));
        let mock = order(json!("2026-11-28T10:00:01Z"), json!({"isMock": true}));
        assert!(!resembles(&wanted, &wide, &mock));
        let other = order(
            json!("2026-11-28T10:00:01Z"),
            json!({"items": [{"product": {"id": "b"}, "quantity": 1}]}),
        );
        assert!(!resembles(&wanted, &wide, &other));
    }

    #[test]
    fn an_unreadable_entry_far_from_our_posts_is_not_ours_but_near_them_it_may_be() {
        let lines = [line("a", 1, None)];
        let wanted = Wanted {
            lines: &lines,
            total_price: None,
            is_mock: false,
        };
        let strict = one_post(Some(&measured(0)));
        let wide = doubted_windows(&[T0], Some(&measured(0)), &Margins::default());
        let broken = |at: &str| order(json!(at), json!({"items": [{"product": null}]}));
        // A day old: its deleted product is no reason for doubt.
        let old = broken("2026-11-27T10:00:00Z");
        assert_eq!(fit(&wanted, &strict, &old), Fit::No);
        assert!(!resembles(&wanted, &wide, &old));
        // Twenty seconds off our POST: not certain, so not "nothing".
        let near = broken("2026-11-28T10:00:20Z");
        assert_eq!(fit(&wanted, &strict, &near), Fit::No);
        assert!(resembles(&wanted, &wide, &near));
        assert!(matches!(
            fit(&wanted, &strict, &broken("2026-11-28T10:00:01Z")),
            Fit::Unknown(_)
        ));
    }

    #[test]
    fn a_clock_measure_grows_uncertain_with_age_and_absurd_ones_are_refused() {
        let m = measured(0);
        assert_eq!(m.aged(T0).uncertainty, m.uncertainty);
        assert_eq!(
            m.aged(T0 + time::Duration::hours(1)).uncertainty,
            m.uncertainty + Duration::from_secs(6)
        );
        assert!(m.is_plausible());
        assert!(!measured(-2 * 3600).is_plausible());
    }

    #[test]
    fn more_candidates_than_owners_is_ambiguous_else_the_nearest_is_claimed() {
        let w = one_post(Some(&measured(0)));
        let at = |s: i64| T0 + time::Duration::milliseconds(s);
        let two = vec![("far".to_owned(), at(3_000)), ("near".to_owned(), at(200))];
        let settled = |n| Owners {
            settled: n,
            ..Owners::default()
        };
        assert_eq!(decide(&[], &[], settled(1), &w), Verdict::Nothing);
        assert_eq!(
            decide(&two, &[], settled(1), &w),
            Verdict::Ambiguous(vec!["far".into(), "near".into()])
        );
        assert_eq!(
            decide(&two, &[], settled(2), &w),
            Verdict::Claim("near".into())
        );
        assert_eq!(
            decide(&two[..1], &[], settled(1), &w),
            Verdict::Claim("far".into())
        );
    }

    #[test]
    fn an_order_still_in_flight_is_waited_for_not_counted() {
        let w = one_post(Some(&measured(0)));
        let at = |s: i64| T0 + time::Duration::milliseconds(s);
        let two = vec![("ours".to_owned(), at(300)), ("theirs".to_owned(), at(100))];
        // One of ours is settled, another may still be sending: its order
        // may be missing from the list, so another buyer's could fill its
        // place. Wait; and once it has settled, count it.
        let waiting = Owners {
            settled: 1,
            in_flight: 1,
            ..Owners::default()
        };
        assert_eq!(decide(&two, &[], waiting, &w), Verdict::Wait);
        let three = [two.clone(), vec![("more".to_owned(), at(500))]].concat();
        assert!(matches!(
            decide(&three, &[], waiting, &w),
            Verdict::Ambiguous(_)
        ));
        let settled = Owners {
            settled: 2,
            ..Owners::default()
        };
        assert_eq!(
            decide(&two, &[], settled, &w),
            Verdict::Claim("theirs".into())
        );
    }

    #[test]
    fn an_order_that_may_never_have_posted_explains_nothing_beside_another_buyer() {
        let w = one_post(Some(&measured(0)));
        let one = vec![("alike".to_owned(), T0 + time::Duration::milliseconds(200))];
        let unsure = Owners {
            settled: 1,
            unsure: 1,
            ..Owners::default()
        };
        assert_eq!(
            decide(&one, &[], unsure, &w),
            Verdict::Ambiguous(vec!["alike".into()])
        );
        let with_a_sure_one = Owners {
            settled: 2,
            unsure: 1,
            ..Owners::default()
        };
        assert_eq!(
            decide(&one, &[], with_a_sure_one, &w),
            Verdict::Claim("alike".into())
        );
    }

    #[test]
    fn an_owner_whose_own_order_lies_outside_our_windows_explains_that_one_first() {
        let w = one_post(Some(&measured(0)));
        let one = vec![("alike".to_owned(), T0 + time::Duration::milliseconds(200))];
        // Y (sure) could own the look-alike, but its own order is in its
        // windows outside ours: two entries for one sure owner and one that
        // may never have posted.
        let theirs = vec![("ys".to_owned(), T0 - time::Duration::seconds(3))];
        let with_a_sure_one = Owners {
            settled: 2,
            unsure: 1,
            ..Owners::default()
        };
        assert_eq!(
            decide(&one, &theirs, with_a_sure_one, &w),
            Verdict::Ambiguous(vec!["alike".into(), "ys".into()])
        );
        let both_sure = Owners {
            settled: 2,
            ..Owners::default()
        };
        assert_eq!(
            decide(&one, &theirs, both_sure, &w),
            Verdict::Claim("alike".into()),
            "the nearest of this order's own"
        );
        let waiting = Owners {
            settled: 1,
            in_flight: 1,
            ..Owners::default()
        };
        assert_eq!(decide(&one, &theirs, waiting, &w), Verdict::Wait);
    }

    #[test]
    fn a_clock_measure_is_the_midpoint_and_a_tighter_or_fresher_one_replaces_it() {
        let m = ClockOffset::sample(
            T0,
            T0 + time::Duration::milliseconds(400),
            T0 + time::Duration::seconds(30),
        );
        assert_eq!(
            m.offset,
            time::Duration::seconds(30) - time::Duration::milliseconds(200)
        );
        assert_eq!(m.uncertainty, Duration::from_millis(200));
        let loose = ClockOffset {
            uncertainty: Duration::from_secs(3),
            sampled_at: T0 + time::Duration::seconds(10),
            ..m
        };
        let stale = Duration::from_secs(600);
        assert!(m.replaces(None, stale));
        assert!(!loose.replaces(Some(&m), stale));
        assert!(m.replaces(Some(&loose), stale));
        let much_later = ClockOffset {
            sampled_at: T0 + time::Duration::hours(1),
            ..loose
        };
        assert!(much_later.replaces(Some(&m), stale));
    }
}
