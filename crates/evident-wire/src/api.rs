//! Requests and answers of the HTTP API (`/v1/...`), as the server sends them and clients read
//! them. With the feature `openapi`, each type also carries its OpenAPI schema.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::filter::{Filter, Invalid, Order};

/// What became of one submitted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Stored now.
    Stored,
    /// Stored before with the same content: the original receipt.
    Duplicate,
    /// Stored before with other content: nothing stored.
    Conflict,
    /// Not valid: nothing stored; `errors` says why.
    Rejected,
}

/// Whether an event's personal values are in a read's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Personal {
    /// The event has no personal values.
    None,
    /// Not shown to this caller.
    Withheld,
    Included,
    /// The subject's data key was destroyed.
    Erased,
}

/// One failing field of a request, as problem details list them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvalidParam {
    /// Dotted path of the field, e.g. `actor.id` or `targets[0].type`.
    pub name: String,
    /// The rule that failed, e.g. `required`, `enum`, `format`.
    pub rule: String,
    pub reason: String,
}

impl From<Invalid> for InvalidParam {
    fn from(invalid: Invalid) -> InvalidParam {
        InvalidParam { name: invalid.name, rule: invalid.rule.to_owned(), reason: invalid.reason }
    }
}

/// An RFC 9457 problem details body (`application/problem+json`): every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(rename = "invalid-params", default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

/// The result of one submitted event, in the order sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemResult {
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Leaf index in the tenant's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Size of the checkpoint that covers the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// The signed checkpoint (C2SP signed note) covering the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why the event was not stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidParam>,
}

impl ItemResult {
    /// An event that was not stored, and why.
    pub fn rejected(errors: Vec<InvalidParam>) -> ItemResult {
        ItemResult {
            status: ItemStatus::Rejected,
            event_id: None,
            index: None,
            tree_size: None,
            checkpoint: None,
            warnings: Vec::new(),
            errors,
        }
    }
}

/// Answer of `POST /v1/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResponse {
    pub receipts: Vec<ItemResult>,
}

/// One event as reads return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub index: u64,
    pub event_id: String,
    pub personal: Personal,
    /// The event: its skeleton, with personal values merged in when `personal` is `included`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub event: Value,
}

/// A page of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters and paging of a search.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Events at or after this time (RFC 3339, event time).
    pub from: Option<String>,
    /// Events before this time (RFC 3339).
    pub to: Option<String>,
    pub actor: Option<String>,
    /// The data subject (customer).
    pub subject: Option<String>,
    /// Target type; with `target_id`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The event type (`customer.updated`), or a prefix of it ending in `*` (`customer.*`: every
    /// type that begins with `customer.`). A `*` anywhere else is refused.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", param(rename = "type"))]
    pub event_type: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub source: Option<String>,
    /// `newest` (default) or `oldest` first.
    pub order: Option<String>,
    /// 1 to 1000, default 50.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Investigators: the purpose of seeing personal data; recorded.
    pub purpose: Option<String>,
}

/// Paging of a timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub order: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub purpose: Option<String>,
}

/// Options of a record history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// The record's state at this time (RFC 3339).
    pub at: Option<String>,
    /// With `to`: the diff between two versions (1-based).
    pub from: Option<usize>,
    pub to: Option<usize>,
    pub purpose: Option<String>,
}

/// One changed field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub after: Option<Value>,
}

/// One version of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    pub number: usize,
    pub index: u64,
    pub event_id: String,
    pub time: String,
    pub action: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub actor: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub changes: Vec<FieldChange>,
    /// The record after this version (absent without personal access; `null` once deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub state: Option<Value>,
}

/// Answer of the record history endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct History {
    pub record_type: String,
    pub record_id: String,
    /// Whether values (states, before and after) are included.
    pub values: bool,
    pub versions: Vec<Version>,
    /// With `at`: the version in force then (absent if none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_version: Option<usize>,
    /// With `from` and `to`: what differs between the two versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<FieldChange>>,
}

/// Parameters of a consistency proof.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    pub from: u64,
    pub to: u64,
}

/// A consistency proof (RFC 9162 §2.1.4), hashes in base64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// `POST /v1/tenants`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1 to 64 of a-z 0-9 - _.
    pub id: String,
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: String,
    /// The origin line of its log.
    pub origin: String,
    pub created: bool,
}

/// `POST /v1/keys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Defaults to the caller's tenant.
    pub tenant: Option<String>,
    /// `producer`, `reader`, `investigator`, `auditor` or `admin`.
    pub role: String,
    pub label: Option<String>,
}

/// An API key as listings show it (never the key itself).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub key_id: String,
    pub tenant: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A newly created key: `key` is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewKey {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// A list of keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// A list of tenants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantList {
    pub tenants: Vec<String>,
}

/// Health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// This node's name among the nodes sharing a store.
    pub node: String,
    /// How many tenants' logs this node sequences and signs (all of them on the embedded store).
    pub leading: usize,
    /// Their names: only for a request bearing the metrics token (`EVIDENT_METRICS_TOKEN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leads: Vec<String>,
}

impl SearchParams {
    /// The filter parameters by name: the one list the two conversions below share.
    fn filter_slots(&mut self) -> [(&'static str, &mut Option<String>); 10] {
        [
            ("from", &mut self.from),
            ("to", &mut self.to),
            ("actor", &mut self.actor),
            ("subject", &mut self.subject),
            ("target_type", &mut self.target_type),
            ("target_id", &mut self.target_id),
            ("type", &mut self.event_type),
            ("action", &mut self.action),
            ("outcome", &mut self.outcome),
            ("source", &mut self.source),
        ]
    }

    /// The filter these parameters ask for, every value checked.
    pub fn filter(&self) -> Result<Filter, Invalid> {
        let mut params = self.clone();
        let slots = params.filter_slots();
        Filter::from_pairs(slots.iter().filter_map(|(name, value)| value.as_deref().map(|v| (*name, v))))
    }

    /// The parameters of a filter (and nothing else).
    pub fn from_filter(filter: &Filter) -> SearchParams {
        let mut params = SearchParams::default();
        let mut given = filter.pairs();
        for (name, slot) in params.filter_slots() {
            if let Some(at) = given.iter().position(|(given_name, _)| *given_name == name) {
                *slot = Some(given.swap_remove(at).1);
            }
        }
        params
    }

    pub fn order(&self) -> Result<Order, Invalid> {
        Order::parse(self.order.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_params_and_filters_convert_both_ways() {
        let params = SearchParams {
            from: Some("2026-11-01T00:00:00Z".into()),
            target_type: Some("customer".into()),
            target_id: Some("cus_1".into()),
            action: Some("update".into()),
            limit: Some(5),
            ..SearchParams::default()
        };
        let filter = params.filter().unwrap();
        let back = SearchParams::from_filter(&filter);
        assert_eq!(back.from.as_deref(), Some("2026-11-01T00:00:00.000000Z"));
        assert_eq!((back.target_type.as_deref(), back.action.as_deref()), (Some("customer"), Some("update")));
        assert_eq!(back.limit, None, "only the filter is carried over");
        assert_eq!(back.filter().unwrap(), filter);
        let bad = SearchParams { outcome: Some("maybe".into()), ..SearchParams::default() };
        assert_eq!(bad.filter().unwrap_err().name, "outcome");
    }
}

/// `GET /v1/logs/{tenant}/health`: a tenant's log as its readers watch it. The log's numbers come
/// from the log itself (every node answers the same); `node` holds what the answering node
/// counted for the tenant since it started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogHealth {
    pub tenant: String,
    pub tree_size: u64,
    /// When the newest entry was sequenced (its `recorded_at`), which the latest checkpoint
    /// covers; absent for an empty log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_at: Option<String>,
    /// Seconds from `newest_at` to `now`: how old the latest checkpoint is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_age_secs: Option<f64>,
    /// The server's clock when it answered (RFC 3339).
    pub now: String,
    /// Tree size over time: the size right after entries spread evenly over the log (at most
    /// 48, the newest last), each with the time it was sequenced.
    pub sizes: Vec<SizeSample>,
    /// Entries sequenced in the minute and the hour before `now` (the ingestion rate).
    pub last_minute: u64,
    pub last_hour: u64,
    pub node: NodeCounts,
}

/// The log's size right after one entry was sequenced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SizeSample {
    /// The entry's `recorded_at`.
    pub at: String,
    pub tree_size: u64,
}

/// What one node counted for a tenant's `POST /v1/events` since it started (not shared between
/// nodes, not kept across restarts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeCounts {
    /// The node's name among the nodes sharing a store.
    pub node: String,
    /// When the node started (RFC 3339).
    pub since: String,
    /// Items received, and how each was answered.
    pub received: u64,
    pub stored: u64,
    pub duplicate: u64,
    pub rejected: u64,
    pub conflict: u64,
}
