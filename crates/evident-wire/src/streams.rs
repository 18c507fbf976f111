//! The requests and answers of `/v1/streams` (streams out to SIEMs), as the server serves them
//! and clients read them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Request of `POST /v1/streams`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    /// `ocsf`, `cef`, `rfc5424`, `cloudevents` or `json`.
    pub format: String,
    /// `syslog+tls://HOST:PORT`, `syslog+tcp://HOST:PORT`, `https://...` (a path ending in
    /// `/services/collector/event` is a Splunk HEC) or `nats://HOST:PORT/SUBJECT`.
    pub destination: String,
    /// Search filters by name (`type`, `actor`, `subject`, `action`, `outcome`, `source`,
    /// `target_type` with `target_id`, `from`, `to`) and `findings_only: true`; none: every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Value>,
    /// The HEC token (sent as `Authorization: Splunk <token>`; a bearer token for other HTTP
    /// receivers). Never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The leaf index to start from (default 0: the whole log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

/// Request of `POST /v1/streams/{id}/position`: where a stream goes on from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// A leaf index, at most the log's size: the next entry to deliver.
    pub position: u64,
}

/// A stream and how far it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamView {
    pub id: String,
    pub format: String,
    pub destination: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter: Value,
    pub token_set: bool,
    /// The next leaf index to deliver.
    pub cursor: u64,
    /// The log's size.
    pub tree_size: u64,
    /// Entries not yet delivered: `tree_size - cursor`.
    pub lag: u64,
    pub delivered: u64,
    pub last_delivered_at: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
}

/// Answer of `GET /v1/streams`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}
