//! Per-product completion-time summaries (`LEARN#{productId}`, `SUMMARY`):
//! `seen` (a count) and one number per bin of each epoch kept,
//! `b{epoch}_{bin}`. (Summaries of an earlier format, `observations` and
//! `e{epoch}_{bin}` with eight bins per octave, are not read: the product
//! learns again in the same item, whose old attributes stay, unread, until
//! the item is deleted.) Written with `ADD` only, so two containers ending
//! orders of one product at once both count; the bins of epochs a writer
//! forgets are removed by the same write.

use super::DynamoStore;
use super::codec::n;
use super::errors::sdk_error;
use super::keys::summary_key;
use crate::domain::learning::bins::BINS;
use crate::domain::learning::{Contribution, Summary};
use crate::store::{StoreError, SummaryReader, SummaryStore};
use aws_sdk_dynamodb::types::AttributeValue;

/// DynamoDB refuses expressions over 4 KB: past this, forgotten bins are
/// removed by a write of their own.
const EXPRESSION_BUDGET: usize = 3_600;

/// The attribute counting a summary's observations.
const COUNT: &str = "seen";

fn bin_attribute(epoch: u64, bin: usize) -> String {
    format!("b{epoch}_{bin}")
}

/// The epoch and bin an attribute holds, if it is a bin.
fn parse_bin(name: &str) -> Option<Option<(u64, usize)>> {
    let rest = name.strip_prefix('b')?;
    let parsed = rest.split_once('_').and_then(|(epoch, bin)| {
        let bin: usize = bin.parse().ok()?;
        (bin < BINS).then_some((epoch.parse().ok()?, bin))
    });
    Some(parsed)
}

fn summary_from_item(
    item: &std::collections::HashMap<String, AttributeValue>,
    product_id: &str,
) -> Result<Summary, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("LEARN#{product_id}"),
        reason,
    };
    let number = |name: &str, value: &AttributeValue| -> Result<f64, StoreError> {
        value
            .as_n()
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| corrupt(format!("{name} is not a count")))
    };
    let mut summary = Summary::default();
    for (name, value) in item {
        if name == COUNT {
            summary.observations = number(name, value)? as u64;
            continue;
        }
        match parse_bin(name) {
            // Not a bin of this version's (another's, or damaged): left
            // alone, so one odd attribute does not stop a product learning.
            None | Some(None) => {}
            Some(Some((epoch, bin))) => {
                let weight = number(name, value)?;
                summary
                    .epochs
                    .entry(epoch)
                    .or_insert_with(|| vec![0.0; BINS])[bin] = weight;
            }
        }
    }
    summary
        .epochs
        .retain(|_, bins| bins.iter().any(|w| *w != 0.0));
    Ok(summary)
}

impl SummaryReader for DynamoStore {
    async fn summary(&self, product_id: &str) -> Result<Summary, StoreError> {
        match self.get(summary_key(product_id), "read summary").await? {
            Some(item) => summary_from_item(&item, product_id),
            None => Ok(Summary::default()),
        }
    }
}

impl SummaryStore for DynamoStore {
    async fn add_observation(
        &self,
        product_id: &str,
        contribution: &Contribution,
    ) -> Result<(), StoreError> {
        let mut adds = vec![format!("{COUNT} :one")];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(summary_key(product_id)))
            // Only ever a summary: a key of another kind is never touched.
            // (`observations` is the count of a summary of the earlier
            // format, written over.)
            .condition_expression(format!(
                "attribute_not_exists(pk) OR attribute_exists({COUNT}) OR attribute_exists(observations)"
            ))
            .expression_attribute_values(":one", n(1));
        for (i, (bin, weight)) in contribution.bins.iter().enumerate() {
            adds.push(format!("{} :w{i}", bin_attribute(contribution.epoch, *bin)));
            request = request.expression_attribute_values(format!(":w{i}"), n(weight));
        }
        let removes: Vec<String> = contribution
            .forget
            .iter()
            .flat_map(|(epoch, bins)| bins.iter().map(|bin| bin_attribute(*epoch, *bin)))
            .collect();
        let mut expression = format!("ADD {}", adds.join(", "));
        let together = expression.len() + removes.iter().map(|r| r.len() + 2).sum::<usize>() + 8;
        if !removes.is_empty() && together <= EXPRESSION_BUDGET {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        request
            .update_expression(expression)
            .send()
            .await
            .map_err(|e| sdk_error("add observation", e))?;
        if !removes.is_empty()
            && together > EXPRESSION_BUDGET
            && let Err(error) = self.forget(product_id, &removes).await
        {
            // The observation is kept; the next writer, reading the same
            // old epochs, removes them again.
            tracing::warn!(product_id, error = %error, "old bins of a summary not removed yet");
        }
        Ok(())
    }
}

impl DynamoStore {
    /// Removes forgotten bins, in writes within the expression limit.
    async fn forget(&self, product_id: &str, removes: &[String]) -> Result<(), StoreError> {
        let mut start = 0;
        while start < removes.len() {
            let mut end = start;
            let mut length = 0;
            while end < removes.len() && length + removes[end].len() + 2 <= EXPRESSION_BUDGET {
                length += removes[end].len() + 2;
                end += 1;
            }
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(summary_key(product_id)))
                .condition_expression(format!("attribute_exists({COUNT})"))
                .update_expression(format!("REMOVE {}", removes[start..end].join(", ")))
                .send()
                .await
                .map_err(|e| sdk_error("forget old bins", e))?;
            start = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bin_attributes_are_read_as_bins() {
        assert_eq!(parse_bin("seen"), None);
        assert_eq!(parse_bin("pk"), None);
        assert_eq!(parse_bin("b3_17"), Some(Some((3, 17))));
        assert_eq!(parse_bin("b3_298"), Some(None));
        assert_eq!(parse_bin("b3"), Some(None));
        assert_eq!(bin_attribute(12, 297), "b12_297");
        // The earlier format's bins are not this one's.
        assert_eq!(parse_bin("e3_17"), None);
    }

    #[test]
    fn an_odd_attribute_is_left_alone_not_a_reason_to_stop_learning() {
        let item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S("LEARN#p".into())),
            ("seen".to_owned(), AttributeValue::N("3".into())),
            ("b0_10".to_owned(), AttributeValue::N("2.5".into())),
            ("b0_999".to_owned(), AttributeValue::N("1".into())),
            ("extra".to_owned(), AttributeValue::S("x".into())),
        ]);
        let summary = summary_from_item(&item, "p").unwrap();
        assert_eq!(summary.observations, 3);
        assert_eq!(summary.epochs[&0][10], 2.5);
        assert_eq!(summary.epochs[&0].iter().sum::<f64>(), 2.5);
        // A count that is not one is still an error: the product falls
        // back to the default schedule.
        let mut bad = item.clone();
        bad.insert("b0_11".into(), AttributeValue::N("-1".into()));
        assert!(summary_from_item(&bad, "p").is_err());
    }

    #[test]
    fn a_summary_of_the_earlier_format_reads_as_nothing_learned() {
        let item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S("LEARN#p".into())),
            ("observations".to_owned(), AttributeValue::N("500".into())),
            ("e0_100".to_owned(), AttributeValue::N("2.5".into())),
            ("e62_100".to_owned(), AttributeValue::N("1".into())),
        ]);
        let summary = summary_from_item(&item, "p").unwrap();
        assert_eq!(summary, Summary::default());
    }
}
