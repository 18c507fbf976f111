//! Requests and answers of the privacy endpoints (`/v1/subjects/{subject}/erasure`, and later
//! holds, retention and reports), as the server sends them and clients read them.

use serde::{Deserialize, Serialize};

/// `POST /v1/subjects/{subject}/erasure`: why, and under which request (a ticket, a case number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why the subject is erased (GDPR Art. 17 ground, say); 1 to 2000 characters.
    pub reason: String,
    /// The request it answers (ticket or case number); 1 to 256 characters.
    pub reference: String,
}

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erasure {
    pub subject: String,
    /// Whether the subject had a data key that was destroyed now (`false`: nothing was left to
    /// erase, e.g. a repeated request; the erasure is recorded all the same).
    pub key_destroyed: bool,
    /// The `evident.privacy.erased` event that records it.
    pub event_id: String,
    pub index: u64,
    /// RFC 3339.
    pub erased_at: String,
    /// How long other nodes may still use a cached copy of the key, in seconds: 0 on a single
    /// node (the erasing node drops its copy at once).
    pub cache_bound_secs: u64,
}

/// `POST /v1/holds`: exactly one of `subject`, `filter` (search filters by their query names) or
/// `tenant: true`, with a reason and a reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateHold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<bool>,
    /// Why (a lawsuit, an investigation); 1 to 2000 characters.
    pub reason: String,
    /// A case or matter number; 1 to 256 characters.
    pub reference: String,
}

/// `DELETE /v1/holds/{id}`: why the hold ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseHold {
    /// 1 to 2000 characters.
    pub reason: String,
}

/// A legal hold as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldView {
    /// `hold_` and 16 hex digits.
    pub id: String,
    /// `{"tenant": true}`, `{"subject": "..."}` or `{"filter": {...}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub scope: serde_json::Value,
    pub reason: String,
    pub reference: String,
    /// The actor that placed it (`key:<id>`).
    pub placed_by: String,
    pub created_at: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<String>,
}

/// `GET /v1/holds`: every hold of the tenant, active and released, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldList {
    pub holds: Vec<HoldView>,
}

/// `PUT /v1/retention`: a tenant's retention of personal parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Named minimums: `pci_dss` (365 days, 90 online), `hipaa` (6 years), `sox` (7 years).
    #[serde(default)]
    pub presets: Vec<String>,
    /// Personal parts are kept at least this many days.
    #[serde(default)]
    pub min_days: u32,
    /// Personal parts older than this many days become unrecoverable; absent: kept until erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<u32>,
    /// Accepts a minimum or maximum (of the default or of a rule) below a preset's floor;
    /// recorded with the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
    /// Rules by event type and data class; the most specific match applies (an exact event type,
    /// then the longest `prefix.*`, then a data class; at equal type, a rule that also names a
    /// class), and `min_days`/`max_days` above are the default for events no rule matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RetentionRule>,
}

/// One retention rule: at least one of `event_type` and `data_class`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// `pii`, `phi`, `pci`, `financial` or `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_class: Option<String>,
    /// An exact event type, or a prefix ending in `.*` (`session.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default)]
    pub min_days: u32,
    /// Absent: kept until erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<u32>,
}

/// `GET`/`PUT /v1/privacy/settings`: a tenant's privacy decisions other than retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// The roles whose keys may erase a subject: `privacy`, `admin`, or both (the default).
    pub erasure_roles: Vec<String>,
}

/// One named minimum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPreset {
    pub name: String,
    pub floor_days: u32,
    /// How much of it must be immediately available.
    pub online_days: u32,
}

/// `GET /v1/retention`: the settings, the floor they imply, and the presets there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retention {
    pub settings: RetentionSettings,
    /// The highest floor of the chosen presets, in days.
    pub floor_days: u32,
    pub available_presets: Vec<RetentionPreset>,
}

/// `POST /v1/personal-search`: events whose personal `field` equals `value`, found through
/// search tokens (the value is not stored in clear). Investigators, stating a purpose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PersonalSearch {
    /// `origin.ip`, or `metadata.<key>` for a metadata key the tenant marks personal.
    pub field: String,
    /// The value to look for (a JSON string as the events carry it).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub value: serde_json::Value,
    /// Why the personal data is needed; recorded.
    pub purpose: String,
    /// 1 to 1000, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
