//! The FoxReload budget every container shares (`BUDGET#foxreload`,
//! `SHARED`): `baseRps` (requests per second) and `coolUntil` (epoch
//! milliseconds), replaced only by a conditional write on the values the
//! writer read, so two containers cutting for the same 429 episode cut
//! once.

use super::DynamoStore;
use super::codec::n;
use super::errors::{is_condition_failure, sdk_error};
use super::keys::budget_key;
use crate::domain::budget::Shared;
use crate::store::{BudgetStore, StoreError};
use std::time::Duration;

fn shared_from_item(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<Shared, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: "BUDGET#foxreload".to_owned(),
        reason: reason.to_owned(),
    };
    let number = |name: &str| -> Option<f64> {
        item.get(name)?
            .as_n()
            .ok()?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let base = number("baseRps").ok_or_else(|| corrupt("baseRps is not a rate"))?;
    let cool_until = number("coolUntil").ok_or_else(|| corrupt("coolUntil is not an instant"))?;
    Ok(Shared {
        base,
        cool_until: Duration::from_millis(cool_until as u64),
    })
}

fn millis(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

impl BudgetStore for DynamoStore {
    async fn budget(&self) -> Result<Option<Shared>, StoreError> {
        match self.get(budget_key(), "read budget").await? {
            Some(item) => shared_from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn swap_budget(&self, seen: Option<&Shared>, next: &Shared) -> Result<bool, StoreError> {
        if !(next.base.is_finite() && next.base >= 0.0) {
            return Err(StoreError::Corrupt {
                key: "BUDGET#foxreload".to_owned(),
                reason: format!("a budget of {} requests per second", next.base),
            });
        }
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(
                budget_key()
                    .into_iter()
                    .chain([
                        ("baseRps".to_owned(), n(next.base)),
                        ("coolUntil".to_owned(), n(millis(next.cool_until))),
                    ])
                    .collect(),
            ));
        request = match seen {
            None => request.condition_expression("attribute_not_exists(pk)"),
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
}
