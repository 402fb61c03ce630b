//! Sealing the codes an earlier version stored in clear: a maintenance
//! pass over the table (`foxrelay-local reseal`), page by page, each code
//! sealed where it is and its clear text removed in one conditional write.

use super::codec::{code_from_item, s};
use super::errors::{conditional, sdk_error};
use super::keys::{code_sk, key};
use super::{DynamoStore, place};
use crate::sealing::Sealer;
use crate::store::StoreError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Where a pass over the table resumes: the last key it read.
pub type ResealCursor = HashMap<String, AttributeValue>;

/// One page of [`DynamoStore::reseal_page`].
#[derive(Debug, Default)]
pub struct ResealPage {
    /// Codes found in clear and sealed now.
    pub sealed: u64,
    /// Codes in clear that changed between the read and the write (sealed
    /// by another pass meanwhile): left to that pass.
    pub skipped: u64,
    /// Items read (the page's cost: a scan reads every item).
    pub items_read: u64,
    /// Code items in clear that do not read as codes (their keys and
    /// why): left as they are, for an operator to look at.
    pub unreadable: Vec<(String, String)>,
    /// Where the next page starts; `None` once the table is done.
    pub next: Option<ResealCursor>,
}

impl DynamoStore {
    /// Seals the codes in clear on one page of the table, from `start`.
    /// Refused without a sealer. A code item's order is read from its key
    /// (`CODES#{orderId}`, or `ORDER#{orderId}` for the oldest layout), so
    /// each code is bound to the order it is stored under. Each sealed
    /// value is opened by `verify` (a sealer of its own, so it unwraps the
    /// data key through KMS as a function would) before the clear text is
    /// removed: a value that does not open stops the pass, the code left
    /// in clear.
    pub async fn reseal_page(
        &self,
        start: Option<ResealCursor>,
        verify: &Sealer,
    ) -> Result<ResealPage, StoreError> {
        if self.sealer.is_none() {
            return Err(StoreError::Refused {
                operation: "reseal codes",
                source: "no key to seal with: set CODES_KMS_KEY_ID".into(),
            });
        }
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(sk, :code) AND attribute_exists(code)")
            .expression_attribute_values(":code", s("CODE#"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("scan for codes in clear", e))?;
        let mut done = ResealPage {
            items_read: page.scanned_count().max(0) as u64,
            next: page.last_evaluated_key().cloned(),
            ..ResealPage::default()
        };
        for item in page.items() {
            let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get("pk"), item.get("sk"))
            else {
                continue;
            };
            let Some(order_id) = pk
                .strip_prefix("CODES#")
                .or_else(|| pk.strip_prefix("ORDER#"))
            else {
                continue;
            };
            let code = match code_from_item(item) {
                Ok((code, _)) if *sk == code_sk(code.index) => code,
                Ok(_) => {
                    let reason = "its position is not its key's".to_owned();
                    done.unreadable.push((format!("{pk}/{sk}"), reason));
                    continue;
                }
                Err(error) => {
                    done.unreadable
                        .push((format!("{pk}/{sk}"), error.to_string()));
                    continue;
                }
            };
            let sealed = self
                .seal_code(order_id, &code)
                .await?
                .expect("a sealer was checked for");
            let opened = verify.open(&place(order_id, &code), &sealed).await;
            if opened.as_deref().ok() != Some(code.code.as_str()) {
                let why = match opened {
                    Err(error) => error.to_string(),
                    Ok(_) => "it opens to another value".to_owned(),
                };
                return Err(StoreError::Refused {
                    operation: "reseal codes",
                    source: format!(
                        "{pk}/{sk}, sealed, does not open again with this key ({why}); left in clear, nothing more changed"
                    )
                    .into(),
                });
            }
            let written = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), sk)))
                .update_expression("SET codeSealed = :sealed REMOVE code")
                .condition_expression("code = :plain AND attribute_not_exists(codeSealed)")
                .expression_attribute_values(":sealed", AttributeValue::B(Blob::new(sealed)))
                .expression_attribute_values(":plain", s(&code.code))
                .send()
                .await;
            if conditional("seal a code in clear", written)? {
                done.sealed += 1;
            } else {
                done.skipped += 1;
            }
        }
        Ok(done)
    }
}
