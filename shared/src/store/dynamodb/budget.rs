//! The FoxReload budget every container shares, in one item
//! (`BUDGET#foxreload`, `SHARED`):
//! - `nextDue`: when the stack's next request is due (epoch milliseconds,
//!   to the microsecond), moved on by one interval per slot taken, by a
//!   conditional update that computes it in DynamoDB, so containers asking
//!   at once each get their own slot;
//! - `granted`: how many slots were taken, added to by the same update
//!   (no extra write), so a container can tell the stack's pace from the
//!   counts its own slots came with;
//! - `busy`: how many of them were busy (granted right after the one
//!   before, two seconds or more into the limiter's run), added to by the
//!   same update: the budget grows with these, not with time; `runFrom`:
//!   when the run began (set by a slot given to an idle limiter or at the
//!   end of a cool-down, and by a cut); `sendingFrom`: when the stack last
//!   began sending after the limiter stood idle a second or more (set by
//!   such a slot given to an idle limiter, known from the item before it,
//!   which that update returns, and written by one more update: once per
//!   quiet spell, not per slot; and by a cut whose cool-down is that long).
//!   Whether a slot is busy is decided by the asker from the item as it
//!   last saw it; counted busy only under a condition that holds it
//!   (`runFrom` as seen, `nextDue` two seconds into the run), so a stale
//!   guess is one more attempt, never a slot counted busy that was not. A
//!   slot guessed not busy is not checked (no attempt lost to it): a race
//!   can count one slot fewer, never more;
//! - `baseRps` (requests per second), `coolUntil` and `cutAt` (epoch
//!   milliseconds): the adaptive budget's shared part, replaced only by a
//!   conditional write on the values the writer read, so two containers
//!   cutting for the same 429 episode cut once; `cutBusy`, `busy` as the
//!   cut landed, copied in DynamoDB by the cut's own update;
//! - `createsDue`: the end of the slots creates booked (set by the update
//!   that grants a create its slot), and `createsUntil`: the end of the
//!   span the last cut kept for the creates it voided, `createsDue` moved
//!   on by the cool-down (computed in DynamoDB by the cut's own update). A
//!   read's update holds only on a slot at or after `createsUntil`.

use super::codec::n;
use super::errors::{is_condition_failure, sdk_error};
use super::keys::budget_key;
use super::{DynamoStore, Item};
use crate::domain::budget::{BUSY_AFTER, QUIET, Shared, Slot, SlotFrom, busy, for_read, slot};
use crate::store::{BudgetStore, SlotAsk, StoreError, Taken};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::time::Duration;

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: "BUDGET#foxreload".to_owned(),
        reason: reason.into(),
    }
}

fn number(item: &Item, name: &str) -> Option<f64> {
    item.get(name)?
        .as_n()
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// The shared budget in `item`, if one was written.
fn shared_from_item(item: &Item) -> Result<Option<Shared>, StoreError> {
    if !item.contains_key("baseRps") {
        return Ok(None);
    }
    let base = number(item, "baseRps").ok_or_else(|| corrupt("baseRps is not a rate"))?;
    let cool_until =
        number(item, "coolUntil").ok_or_else(|| corrupt("coolUntil is not an instant"))?;
    // Absent on items written before cuts were dated, or counted busy
    // slots.
    let cut_at = number(item, "cutAt").unwrap_or(0.0);
    let busy_at_cut = count(item, "cutBusy")?;
    Ok(Some(Shared {
        base,
        cool_until: Duration::from_millis(cool_until as u64),
        cut_at: Duration::from_millis(cut_at as u64),
        busy_at_cut,
    }))
}

/// A count in `item` (0 when absent).
fn count(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        None => Ok(0),
        Some(value) => value
            .as_n()
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| corrupt(format!("{name} is not a count"))),
    }
}

/// The limiter's next due instant in `item`, if any was taken.
fn due_from_item(item: &Item) -> Result<Option<Duration>, StoreError> {
    instant(item, "nextDue")
}

/// An instant kept as [`decimal_millis`] in `item` (`None`: absent).
fn instant(item: &Item, name: &str) -> Result<Option<Duration>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_n()
            .ok()
            .and_then(|text| parse_millis(text))
            .map(Some)
            .ok_or_else(|| corrupt(format!("{name} is not an instant"))),
    }
}

/// The count of slots granted in `item`, as the update that granted one
/// left it.
fn serial_from_item(item: &Item) -> Result<u64, StoreError> {
    item.get("granted")
        .and_then(|value| value.as_n().ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| corrupt("granted is not a count"))
}

fn millis(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds to the microsecond, as DynamoDB's decimal numbers keep them
/// exactly (a float would not, at epoch scale).
fn decimal_millis(at: Duration) -> String {
    let micros = at.as_micros();
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

/// Reads [`decimal_millis`] back (DynamoDB drops trailing zeros).
fn parse_millis(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: u64 = whole.parse().ok()?;
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        // Finer than a microsecond: never written by us.
        let rounded: f64 = text.parse().ok()?;
        return Duration::try_from_secs_f64(rounded / 1000.0).ok();
    }
    let micros: u64 = format!("{fraction:0<3}").parse().ok()?;
    Some(Duration::from_millis(whole) + Duration::from_micros(micros))
}

/// Kept to the microsecond, as stored.
fn kept(at: Duration) -> Duration {
    Duration::from_micros(u64::try_from(at.as_micros()).unwrap_or(u64::MAX))
}

/// Most conditional attempts at one slot: each failed one reads the item as
/// it stands, so a second attempt fails only when another container took a
/// slot in between.
const ATTEMPTS: usize = 4;

/// What a slot is taken from, and the figures its condition needs.
struct Attempt {
    from: SlotFrom,
    now: Duration,
    /// The latest slot within reach.
    latest: Duration,
    interval: Duration,
    /// The end of the cool-down as read (for [`SlotFrom::CoolDown`]).
    cool_until: Duration,
    /// When the limiter's run began, as the asker knows it (for
    /// [`SlotFrom::Due`]), and whether the slot is then busy.
    run_from: Option<Duration>,
    busy: bool,
    /// A create's: it books the creates' span; a read's is held out of
    /// the span a cut keeps for creates.
    create: bool,
}

/// A read's slot is not in the span the last cut kept for creates: its
/// condition, given the slot (an attribute or a value).
fn after_creates(slot: &str) -> String {
    format!("(attribute_not_exists(createsUntil) OR createsUntil <= {slot})")
}

impl Attempt {
    /// A read's extra condition on a slot at `at` (a value's name).
    fn held_out(&self, at: &str) -> String {
        if self.create {
            String::new()
        } else {
            format!(" AND {}", after_creates(at))
        }
    }

    /// A create's extra update of a slot whose next is `:next`.
    fn books(&self) -> &'static str {
        if self.create {
            ", createsDue = :next"
        } else {
            ""
        }
    }

    /// When the slot is, given `nextDue` after the update.
    fn at(&self, next: Option<Duration>) -> Duration {
        match self.from {
            SlotFrom::Due => next.map_or(self.now, |n| n.saturating_sub(self.interval)),
            SlotFrom::Now => self.now,
            SlotFrom::CoolDown => self.cool_until,
        }
    }
}

impl DynamoStore {
    /// Takes a slot by the conditional update that holds only if the
    /// limiter stands as `attempt` supposes: the item after it. `Err(item)`:
    /// it does not; here is the item as it stands (empty when there is
    /// none).
    async fn take(&self, attempt: &Attempt) -> Result<Result<Item, Item>, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(budget_key()))
            // A slot now returns the item before it: whether the limiter
            // stood quiet is known from it (the item after follows).
            .return_values(if attempt.from == SlotFrom::Now {
                ReturnValue::AllOld
            } else {
                ReturnValue::AllNew
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = match attempt.from {
            SlotFrom::Due => {
                let update = update
                    .expression_attribute_values(":now", n(decimal_millis(attempt.now)))
                    .expression_attribute_values(":latest", n(decimal_millis(attempt.latest)))
                    .expression_attribute_values(":interval", n(decimal_millis(attempt.interval)));
                let due = "nextDue BETWEEN :now AND :latest \
                           AND (attribute_not_exists(coolUntil) OR coolUntil <= nextDue)";
                let due = if attempt.create {
                    due.to_owned()
                } else {
                    format!("{due} AND {}", after_creates("nextDue"))
                };
                // A create's slot ends the creates' span as booked.
                let booked = if attempt.create {
                    ", createsDue = nextDue + :interval"
                } else {
                    ""
                };
                match (attempt.busy, attempt.run_from) {
                    // Counted busy only in the run the asker saw, a second
                    // or more into it: checked, not assumed (a run begun
                    // since would be counted from its start).
                    (true, Some(began)) => update
                        .condition_expression(format!(
                            "{due} AND runFrom = :runFrom AND nextDue >= :busyFrom"
                        ))
                        .expression_attribute_values(":runFrom", n(decimal_millis(began)))
                        .expression_attribute_values(
                            ":busyFrom",
                            n(decimal_millis(began + BUSY_AFTER)),
                        )
                        .update_expression(format!(
                            "SET nextDue = nextDue + :interval{booked} ADD granted :one, busy :one"
                        )),
                    // Not counted busy: never more than the store would
                    // count, so not checked (no attempt lost to it). (An
                    // item kept before runs were: its run begins here.)
                    _ => update.condition_expression(due).update_expression(format!(
                        "SET nextDue = nextDue + :interval, \
                         runFrom = if_not_exists(runFrom, nextDue){booked} ADD granted :one"
                    )),
                }
            }
            SlotFrom::Now => update
                .condition_expression(format!(
                    "(attribute_not_exists(nextDue) OR nextDue < :now) \
                     AND (attribute_not_exists(coolUntil) OR coolUntil <= :now){}",
                    attempt.held_out(":now")
                ))
                .update_expression(format!(
                    "SET nextDue = :next, runFrom = :now{} ADD granted :one",
                    attempt.books()
                ))
                .expression_attribute_values(":now", n(decimal_millis(attempt.now)))
                .expression_attribute_values(
                    ":next",
                    n(decimal_millis(attempt.now + attempt.interval)),
                ),
            SlotFrom::CoolDown => update
                .condition_expression(format!(
                    "coolUntil = :cool AND (attribute_not_exists(nextDue) OR nextDue < :cool){}",
                    attempt.held_out(":began")
                ))
                .update_expression(format!(
                    "SET nextDue = :next, runFrom = :began{} ADD granted :one",
                    attempt.books()
                ))
                .expression_attribute_values(":cool", n(millis(attempt.cool_until)))
                .expression_attribute_values(":began", n(decimal_millis(attempt.cool_until)))
                .expression_attribute_values(
                    ":next",
                    n(decimal_millis(attempt.cool_until + attempt.interval)),
                ),
        };
        match update
            .expression_attribute_values(":one", n(1))
            .send()
            .await
        {
            Ok(out) if attempt.from == SlotFrom::Now => Ok(Ok(self
                .after_now(attempt, out.attributes.unwrap_or_default())
                .await?)),
            Ok(out) => Ok(Ok(out.attributes.unwrap_or_default())),
            Err(SdkError::ServiceError(failure)) => match failure.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    Ok(Err(failed.item().cloned().unwrap_or_default()))
                }
                _ => Err(sdk_error(
                    "take a FoxReload slot",
                    SdkError::ServiceError(failure),
                )),
            },
            Err(error) => Err(sdk_error("take a FoxReload slot", error)),
        }
    }
}

impl DynamoStore {
    /// The item after a slot now was taken, from the item before it
    /// (`old`). When the limiter had stood quiet, the stack begins sending
    /// again: noted by one more write (once per quiet spell, not per slot),
    /// unless another run began meanwhile.
    async fn after_now(&self, attempt: &Attempt, old: Item) -> Result<Item, StoreError> {
        let quiet = due_from_item(&old)?.is_none_or(|due| due.saturating_add(QUIET) <= attempt.now);
        let mut item = old;
        let granted = count(&item, "granted")? + 1;
        item.insert("granted".into(), n(granted));
        item.insert(
            "nextDue".into(),
            n(decimal_millis(attempt.now + attempt.interval)),
        );
        item.insert("runFrom".into(), n(decimal_millis(attempt.now)));
        if !quiet {
            return Ok(item);
        }
        let noted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(budget_key()))
            .condition_expression("runFrom = :now")
            .update_expression("SET sendingFrom = :now")
            .expression_attribute_values(":now", n(decimal_millis(attempt.now)))
            .send()
            .await;
        match noted {
            Ok(_) => {
                item.insert("sendingFrom".into(), n(decimal_millis(attempt.now)));
            }
            // Another run began meanwhile: the stack is sending anyway.
            Err(error) if is_condition_failure(&error) => {}
            // The slot is taken whatever becomes of the note: a 429's cut
            // then counts the stack's sending from earlier.
            Err(error) => {
                tracing::warn!(
                    error = %sdk_error("note the stack's sending", error),
                    "the start of the stack's sending could not be noted"
                );
            }
        }
        Ok(item)
    }
}

/// The limiter as it stands, for operations and benchmarks: its counts and
/// shared state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimiterReading {
    /// Slots granted in all, and how many of them were busy.
    pub granted: u64,
    pub busy: u64,
    pub due: Option<Duration>,
    pub budget: Option<Shared>,
}

impl DynamoStore {
    /// Reads the limiter (a default reading: none was ever taken).
    pub async fn limiter(&self) -> Result<LimiterReading, StoreError> {
        let Some(item) = self.get(budget_key(), "read budget").await? else {
            return Ok(LimiterReading::default());
        };
        Ok(LimiterReading {
            granted: count(&item, "granted")?,
            busy: count(&item, "busy")?,
            due: due_from_item(&item)?,
            budget: shared_from_item(&item)?,
        })
    }
}

impl BudgetStore for DynamoStore {
    async fn budget(&self) -> Result<Option<Shared>, StoreError> {
        match self.get(budget_key(), "read budget").await? {
            Some(item) => shared_from_item(&item),
            None => Ok(None),
        }
    }

    async fn swap_budget(&self, seen: Option<&Shared>, next: &Shared) -> Result<bool, StoreError> {
        if !(next.base.is_finite() && next.base >= 0.0) {
            return Err(corrupt(format!(
                "a budget of {} requests per second",
                next.base
            )));
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(budget_key()))
            .update_expression("SET baseRps = :nextBase, coolUntil = :nextCool, cutAt = :nextCut")
            .expression_attribute_values(":nextBase", n(next.base))
            .expression_attribute_values(":nextCool", n(millis(next.cool_until)))
            .expression_attribute_values(":nextCut", n(millis(next.cut_at)));
        let cut = seen.is_none_or(|seen| next.cut_at > seen.cut_at);
        // A cool-down of a quiet spell or more: the stack begins sending
        // again at its end.
        let long = next.cool_until.saturating_sub(next.cut_at) >= QUIET;
        let request = if cut {
            request
                .update_expression(format!(
                    "SET baseRps = :nextBase, coolUntil = :nextCool, cutAt = :nextCut, \
                     nextDue = :restart, runFrom = :restart, \
                     cutBusy = if_not_exists(busy, :none), \
                     createsUntil = if_not_exists(createsDue, :none) + :shift{}",
                    if long { ", sendingFrom = :restart" } else { "" }
                ))
                .expression_attribute_values(":restart", n(decimal_millis(next.cool_until)))
                .expression_attribute_values(":none", n(0))
                // The creates' span moves on by the cool-down (as kept: in
                // whole milliseconds).
                .expression_attribute_values(
                    ":shift",
                    n(millis(next.cool_until).saturating_sub(millis(next.cut_at))),
                )
        } else {
            match seen.map(|seen| millis(next.cool_until).saturating_sub(millis(seen.cool_until))) {
                // A cool-down made longer (more 429s): the span kept for
                // creates moves on with it.
                Some(longer) if longer > 0 => request
                    .update_expression(
                        "SET baseRps = :nextBase, coolUntil = :nextCool, cutAt = :nextCut, \
                         createsUntil = if_not_exists(createsUntil, :none) + :longer",
                    )
                    .expression_attribute_values(":none", n(0))
                    .expression_attribute_values(":longer", n(longer)),
                _ => request,
            }
        };
        let request = match seen {
            None => request.condition_expression("attribute_not_exists(baseRps)"),
            Some(seen) => request
                .condition_expression("baseRps = :base AND coolUntil = :cool")
                .expression_attribute_values(":base", n(seen.base))
                .expression_attribute_values(":cool", n(millis(seen.cool_until))),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(sdk_error("swap budget", error)),
        }
    }

    async fn take_slot(&self, ask: &SlotAsk) -> Result<Taken, StoreError> {
        let now = kept(ask.now);
        let interval = kept(ask.interval);
        let latest = now.saturating_add(ask.ahead);
        // First as the asker last saw the limiter (busy if it was due after
        // now), then as it stands after each failed attempt.
        let mut known: Option<Seen> = None;
        for _ in 0..ATTEMPTS {
            // Where the slot comes from, when it is (the limiter as known),
            // and the run it falls in.
            let (from, cool_until, at, run_from) = match &known {
                None => match ask.hint.filter(|due| *due >= now) {
                    Some(due) => (SlotFrom::Due, Duration::ZERO, due, ask.run_hint),
                    None => (SlotFrom::Now, Duration::ZERO, now, None),
                },
                Some(seen) => {
                    let cool_until = seen.budget.map_or(Duration::ZERO, |b| b.cool_until);
                    let given = slot(seen.due, cool_until, now, interval, ask.ahead);
                    let given = if ask.create {
                        given
                    } else {
                        for_read(given, now, ask.ahead, interval, seen.creates_until)
                    };
                    match given {
                        Slot::Go { from, at, .. } => (from, cool_until, at, seen.run_from),
                        wait @ Slot::Wait(_) => return Ok(seen.taken(wait)),
                    }
                }
            };
            let attempt = Attempt {
                from,
                now,
                latest,
                interval,
                cool_until,
                run_from,
                busy: busy(from, at, run_from),
                create: ask.create,
            };
            match self.take(&attempt).await? {
                Ok(item) => {
                    let next = due_from_item(&item)?;
                    let at = attempt.at(next);
                    return Ok(Taken {
                        slot: Slot::Go {
                            at,
                            next: next.unwrap_or(at + interval),
                            from,
                        },
                        budget: shared_from_item(&item)?,
                        due: next,
                        serial: Some(serial_from_item(&item)?),
                        busy: count(&item, "busy")?,
                        run_from: instant(&item, "runFrom")?,
                        sending_from: instant(&item, "sendingFrom")?,
                        creates_until: instant(&item, "createsUntil")?,
                        contended: false,
                    });
                }
                Err(item) => known = Some(Seen::from_item(&item)?),
            }
        }
        // Others kept taking the slots in between: a race, not the
        // limiter booked past reach (said so, for the asker to ask again).
        Ok(Taken {
            contended: true,
            ..known.unwrap_or_default().taken(Slot::Wait(interval))
        })
    }
}

/// The limiter as an attempt found it.
#[derive(Default)]
struct Seen {
    due: Option<Duration>,
    budget: Option<Shared>,
    busy: u64,
    run_from: Option<Duration>,
    sending_from: Option<Duration>,
    creates_until: Option<Duration>,
}

impl Seen {
    fn from_item(item: &Item) -> Result<Self, StoreError> {
        Ok(Self {
            due: due_from_item(item)?,
            budget: shared_from_item(item)?,
            busy: count(item, "busy")?,
            run_from: instant(item, "runFrom")?,
            sending_from: instant(item, "sendingFrom")?,
            creates_until: instant(item, "createsUntil")?,
        })
    }

    /// No slot granted: `slot` says when one is within reach.
    fn taken(&self, slot: Slot) -> Taken {
        Taken {
            slot,
            budget: self.budget,
            due: self.due,
            serial: None,
            busy: self.busy,
            run_from: self.run_from,
            sending_from: self.sending_from,
            creates_until: self.creates_until,
            contended: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_kept_to_the_microsecond_as_decimal_milliseconds() {
        let at = Duration::new(1_764_000_000, 123_456_789);
        assert_eq!(decimal_millis(at), "1764000000123.456");
        assert_eq!(parse_millis("1764000000123.456"), Some(kept(at)));
        assert_eq!(
            parse_millis("1764000000123.4"),
            Some(Duration::from_micros(1_764_000_000_123_400))
        );
        assert_eq!(
            parse_millis("1764000000123"),
            Some(Duration::from_millis(1_764_000_000_123))
        );
        assert_eq!(parse_millis("soon"), None);
    }
}
