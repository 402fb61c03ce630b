//! A FoxReload in memory, for the fast test tier: orders are created,
//! paid, read and listed as the real API does, and a test scripts what
//! goes wrong (a create refused, a create whose answer is lost after it
//! was bought, calls failing) and what else is on the account (orders of
//! another buyer). It counts every order bought, so a test can prove
//! nothing was bought twice.
//!
//! An order starts `active`; paying makes it `paid`; each read of a paid
//! order moves it to `processing` until its reads run out, then it ends as
//! scripted ([`Ending`]), with one code per unit by default.

use crate::clock::Clock;
use crate::foxreload::{
    CreateOrderRequest, Operation, OrderPage, PageRequest, Price, ProductRef, Supplier,
    SupplierError, SupplierItem, SupplierOrder, SupplierStatus, Timestamp, Uncertainty,
};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use time::OffsetDateTime;

/// What the next create does.
#[derive(Debug)]
pub enum CreateStep {
    /// Bought and answered (what happens when nothing is scripted).
    Answer,
    /// Refused: nothing is bought, the caller sees the error.
    Refuse(SupplierError),
    /// Bought, but the answer is lost: the caller sees its outcome as
    /// unknown.
    Lost(Uncertainty),
    /// Never reached FoxReload, though the caller cannot know: nothing is
    /// bought and the outcome looks unknown.
    Unsent(Uncertainty),
}

/// How a paid order ends once its reads run out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `completed`, one code per unit.
    Completed,
    /// `completed` with `short` units of the first item undelivered and no
    /// item error.
    Short { short: u32 },
    /// `cancelled` with this reason, no codes.
    Cancelled(String),
}

/// One order on the account.
#[derive(Clone, Debug)]
struct Account {
    order: SupplierOrder,
    /// Placed by another buyer on the same API key.
    foreign: bool,
    /// Reads of the paid order before it ends.
    reads_left: u32,
    ending: Ending,
}

#[derive(Debug)]
struct Script {
    orders: Vec<Account>,
    next_id: u64,
    creates: VecDeque<CreateStep>,
    failures: Vec<(Operation, VecDeque<SupplierError>)>,
    reads_to_end: u32,
    ending: Ending,
    /// FoxReload's clock against ours.
    offset: time::Duration,
    /// The most orders one page of the list holds, whatever was asked.
    page_cap: Option<u32>,
    /// Orders created from now on carry a `createdAt` that reads as no time.
    unreadable_times: bool,
    calls: Vec<Operation>,
}

impl Script {
    /// Adds an order, keeping the list in creation order as FoxReload's is
    /// (another buyer's order may be stamped later than one of ours made
    /// after it).
    fn add(&mut self, account: Account) {
        let at = |a: &Account| a.order.created_at.as_ref().and_then(|t| t.parsed);
        let place = self.orders.partition_point(|o| at(o) <= at(&account));
        self.orders.insert(place, account);
    }
}

/// The scripted FoxReload.
#[derive(Debug)]
pub struct ScriptedSupplier<C> {
    clock: C,
    script: Mutex<Script>,
}

fn timestamp(at: OffsetDateTime) -> Timestamp {
    Timestamp {
        raw: crate::store::utc_text(at),
        parsed: Some(at),
    }
}

/// An error for `op`, as the client reports a 5xx answer.
pub fn server_error(op: Operation) -> SupplierError {
    SupplierError::Unavailable {
        op,
        status: 503,
        code: None,
        detail: None,
    }
}

/// FoxReload's refusal of a request, with its code.
pub fn refusal(op: Operation, status: u16, code: &str) -> SupplierError {
    SupplierError::Rejected {
        op,
        status,
        code: Some(code.to_owned()),
        detail: Some(format!("{code} (scripted)")),
        price: None,
    }
}

impl<C: Clock> ScriptedSupplier<C> {
    /// An empty account whose orders end after `reads_to_end` reads once
    /// paid.
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            script: Mutex::new(Script {
                orders: Vec::new(),
                next_id: 1,
                creates: VecDeque::new(),
                failures: Vec::new(),
                reads_to_end: 1,
                ending: Ending::Completed,
                offset: time::Duration::ZERO,
                page_cap: None,
                unreadable_times: false,
                calls: Vec::new(),
            }),
        }
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().expect("supplier script")
    }

    /// Reads of a paid order before it ends (from now on).
    pub fn reads_to_end(&self, reads: u32) -> &Self {
        self.script().reads_to_end = reads;
        self
    }

    /// How orders created from now on end.
    pub fn ending(&self, ending: Ending) -> &Self {
        self.script().ending = ending;
        self
    }

    /// FoxReload's clock runs `offset` ahead of ours.
    pub fn clock_offset(&self, offset: time::Duration) -> &Self {
        self.script().offset = offset;
        self
    }

    /// One page of the list holds at most `cap` orders, as a server's own
    /// cap would.
    pub fn list_page_cap(&self, cap: u32) -> &Self {
        self.script().page_cap = Some(cap);
        self
    }

    /// Orders created from now on carry a `createdAt` that reads as no
    /// time.
    pub fn unreadable_times(&self) -> &Self {
        self.script().unreadable_times = true;
        self
    }

    /// What the next creates do, in order; then they are answered.
    pub fn on_create(&self, step: CreateStep) -> &Self {
        self.script().creates.push_back(step);
        self
    }

    /// The next call of `op` fails with `error` (queued after earlier ones).
    pub fn fail(&self, op: Operation, error: SupplierError) -> &Self {
        let mut script = self.script();
        match script.failures.iter_mut().find(|(o, _)| *o == op) {
            Some((_, queue)) => queue.push_back(error),
            None => script.failures.push((op, VecDeque::from([error]))),
        }
        self
    }

    /// Places an order of another buyer on the account at `at` (our clock),
    /// as `request` would: same shape as ours when it is ours' request.
    pub fn place_foreign(&self, request: &CreateOrderRequest, at: OffsetDateTime) -> String {
        let mut script = self.script();
        let at = at + script.offset;
        let account = Self::open(&mut script, request, at, true);
        let id = account.order.id.clone();
        script.add(account);
        id
    }

    /// Orders bought by us (not another buyer's), oldest first.
    pub fn bought(&self) -> Vec<SupplierOrder> {
        self.script()
            .orders
            .iter()
            .filter(|a| !a.foreign)
            .map(|a| a.order.clone())
            .collect()
    }

    /// The order with this id, as FoxReload has it now.
    pub fn order(&self, id: &str) -> Option<SupplierOrder> {
        self.script()
            .orders
            .iter()
            .find(|a| a.order.id == id)
            .map(|a| a.order.clone())
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: Operation) -> usize {
        self.script().calls.iter().filter(|c| **c == op).count()
    }

    fn open(
        script: &mut Script,
        request: &CreateOrderRequest,
        at: OffsetDateTime,
        foreign: bool,
    ) -> Account {
        let id = format!("fx-{}", script.next_id);
        script.next_id += 1;
        Account {
            order: SupplierOrder {
                id,
                status: SupplierStatus::Active,
                created_at: Some(if script.unreadable_times {
                    Timestamp {
                        raw: "soon".into(),
                        parsed: None,
                    }
                } else {
                    timestamp(at)
                }),
                payment_expires_at: None,
                cancel_reason: None,
                total_price: request.total_price.as_ref().map(|p| Price::new(p.clone())),
                is_mock: Some(request.is_mock),
                items: request
                    .items
                    .iter()
                    .map(|item| SupplierItem {
                        product: Some(ProductRef {
                            id: item.item_id.clone(),
                            name: None,
                        }),
                        quantity: Some(item.quantity),
                        external_data: Vec::new(),
                        error: None,
                        note: item.note.clone().map(Value::Object),
                    })
                    .collect(),
            },
            foreign,
            reads_left: script.reads_to_end,
            ending: script.ending.clone(),
        }
    }

    /// Records a call of `op`; its scripted failure, if one is queued.
    fn call(&self, op: Operation) -> Result<MutexGuard<'_, Script>, SupplierError> {
        let mut script = self.script();
        script.calls.push(op);
        let failure = script
            .failures
            .iter_mut()
            .find(|(o, _)| *o == op)
            .and_then(|(_, queue)| queue.pop_front());
        match failure {
            Some(error) => Err(error),
            None => Ok(script),
        }
    }
}

fn not_found(op: Operation) -> SupplierError {
    refusal(op, 404, "ORDER_NOT_FOUND")
}

/// Ends `account`'s order as scripted.
fn end(account: &mut Account) {
    let order = &mut account.order;
    match &account.ending {
        Ending::Cancelled(reason) => {
            order.status = SupplierStatus::Cancelled;
            order.cancel_reason = Some(reason.clone());
        }
        ending => {
            let short = match ending {
                Ending::Short { short } => *short,
                _ => 0,
            };
            order.status = SupplierStatus::Completed;
            let id = order.id.clone();
            for (index, item) in order.items.iter_mut().enumerate() {
                let units = item.quantity.unwrap_or(1);
                let units = if index == 0 {
                    units.saturating_sub(short)
                } else {
                    units
                };
                item.external_data = (0..units)
                    .map(|unit| json!({ "code": format!("{id}-{index}-{unit}") }))
                    .collect();
            }
        }
    }
}

impl<C: Clock> Supplier for ScriptedSupplier<C> {
    async fn create_order(
        &self,
        request: &CreateOrderRequest,
    ) -> Result<SupplierOrder, SupplierError> {
        let now = self.clock.now();
        let mut script = self.call(Operation::CreateOrder)?;
        let step = script.creates.pop_front().unwrap_or(CreateStep::Answer);
        let op = Operation::CreateOrder;
        let lost = |why| SupplierError::Ambiguous {
            op,
            why,
            source: None,
        };
        match step {
            CreateStep::Refuse(error) => Err(error),
            CreateStep::Unsent(why) => Err(lost(why)),
            CreateStep::Answer | CreateStep::Lost(_) => {
                let at = now + script.offset;
                let account = Self::open(&mut script, request, at, false);
                let order = account.order.clone();
                script.add(account);
                match step {
                    CreateStep::Lost(why) => Err(lost(why)),
                    _ => Ok(order),
                }
            }
        }
    }

    async fn pay_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        let mut script = self.call(Operation::PayOrder)?;
        let account = script
            .orders
            .iter_mut()
            .find(|a| a.order.id == supplier_order_id)
            .ok_or_else(|| not_found(Operation::PayOrder))?;
        if account.order.status != SupplierStatus::Active {
            return Err(refusal(Operation::PayOrder, 409, "ORDER_ALREADY_PAID"));
        }
        account.order.status = SupplierStatus::Paid;
        Ok(account.order.clone())
    }

    async fn get_order(&self, supplier_order_id: &str) -> Result<SupplierOrder, SupplierError> {
        let mut script = self.call(Operation::GetOrder)?;
        let account = script
            .orders
            .iter_mut()
            .find(|a| a.order.id == supplier_order_id)
            .ok_or_else(|| not_found(Operation::GetOrder))?;
        if matches!(
            account.order.status,
            SupplierStatus::Paid | SupplierStatus::Processing
        ) {
            account.reads_left = account.reads_left.saturating_sub(1);
            if account.reads_left == 0 {
                end(account);
            } else {
                account.order.status = SupplierStatus::Processing;
            }
        }
        Ok(account.order.clone())
    }

    async fn list_orders(&self, page: &PageRequest) -> Result<OrderPage, SupplierError> {
        let script = self.call(Operation::ListOrders)?;
        let newest_first: Vec<&Account> = script.orders.iter().rev().collect();
        let start = (page.offset as usize).min(newest_first.len());
        let limit = page.limit.max(1).min(script.page_cap.unwrap_or(u32::MAX));
        let end = (start + limit as usize).min(newest_first.len());
        Ok(OrderPage {
            orders: newest_first[start..end]
                .iter()
                .map(|a| a.order.clone())
                .collect(),
            next: (end < newest_first.len()).then_some(PageRequest {
                limit: page.limit,
                offset: end as u64,
                cursor: None,
            }),
        })
    }
}
