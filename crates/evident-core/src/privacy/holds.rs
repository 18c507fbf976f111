//! Legal holds: what a tenant must keep (litigation, an investigation), so erasure and retention
//! leave it alone. A hold covers the whole tenant, one subject, or the events a search filter
//! matches; it is created and released with a reason and a reference, by someone, and every
//! change is an event in the tenant's log (recorded by the server).
//!
//! Holds are kept per tenant in one service-state blob, `privacy/<tenant>/holds` (JSON), read
//! from the store on every check, so every node sees a hold as soon as it is stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::read::Access;
use crate::store::{KeyStore, TenantId};
use evident_wire::filter::{Filter, Order};

/// What a hold covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Tenant,
    Subject(String),
    /// A search filter, by its query-parameter names (`Filter::pairs`).
    Filter(Vec<(String, String)>),
}

/// One hold, active until released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// `hold_` and 16 hex digits.
    pub id: String,
    pub scope: Scope,
    pub reason: String,
    pub reference: String,
    /// The actor that placed it (`key:<id>`).
    pub placed_by: String,
    /// RFC 3339.
    pub created_at: String,
    pub released: Option<Release>,
}

/// Who released a hold, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub by: String,
    pub at: String,
    pub reason: String,
}

impl Scope {
    /// The filter of a filter hold.
    pub fn filter(pairs: &[(String, String)]) -> std::result::Result<Filter, evident_wire::filter::Invalid> {
        Filter::from_pairs(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))
    }

    /// The scope as the API shows it: `{"tenant": true}`, `{"subject": ...}` or `{"filter": {...}}`.
    pub fn to_json(&self) -> Value {
        match self {
            Scope::Tenant => serde_json::json!({"tenant": true}),
            Scope::Subject(subject) => serde_json::json!({"subject": subject}),
            Scope::Filter(pairs) => {
                let filter: serde_json::Map<String, Value> =
                    pairs.iter().map(|(name, value)| (name.clone(), Value::from(value.clone()))).collect();
                serde_json::json!({"filter": filter})
            }
        }
    }
}

fn blob_name(tenant: &TenantId) -> String {
    format!("privacy/{tenant}/holds")
}

/// Every hold of a tenant, released ones included, oldest first.
pub fn holds(store: &dyn KeyStore, tenant: &TenantId) -> Result<Vec<Hold>> {
    match store.get_state(&blob_name(tenant))? {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| Error::Integrity(format!("stored holds of {tenant} are unreadable: {err}"))),
    }
}

/// Replaces a tenant's holds, durably.
pub fn put_holds(store: &dyn KeyStore, tenant: &TenantId, holds: &[Hold]) -> Result<()> {
    store.put_state(&blob_name(tenant), &serde_json::to_vec(holds).expect("holds serialise"))
}

/// A new hold id.
pub fn new_hold_id() -> String {
    let random = crate::seal::random_32();
    format!("hold_{}", random[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Engine {
    /// The first active hold that covers `subject`: a tenant hold, a hold on the subject, or a
    /// filter hold matching at least one of the subject's events.
    pub fn hold_covering_subject(&self, tenant: &TenantId, subject: &str) -> Result<Option<Hold>> {
        for hold in holds(&**self.store(), tenant)?.into_iter().filter(|h| h.released.is_none()) {
            let covers = match &hold.scope {
                Scope::Tenant => true,
                Scope::Subject(held) => held == subject,
                Scope::Filter(pairs) => {
                    let mut filter = Scope::filter(pairs).map_err(|err| {
                        Error::Integrity(format!("stored hold {} has a bad filter: {err}", hold.id))
                    })?;
                    if filter.subject.as_deref().is_some_and(|held| held != subject) {
                        false
                    } else {
                        filter.subject = Some(subject.to_owned());
                        let page =
                            self.search(tenant, &filter, Order::OldestFirst, None, 1, Access::Skeleton)?;
                        !page.items.is_empty()
                    }
                }
            };
            if covers {
                return Ok(Some(hold));
            }
        }
        Ok(None)
    }
}
