//! Evident's wire contract: what the server, the client libraries and the CLI agree on, and what
//! an offline verifier needs besides the log core (`evident-tlog`). It depends on neither the
//! engine nor HTTP.
//!
//! - [`time`]: times as the wire and the leaves spell them.
//! - [`jcs`]: RFC 8785 canonical JSON, the spelling of every entry.
//! - [`entry`]: the leaf's `pii_commitment` and putting an event back together.
//! - [`names`]: the schema's closed vocabularies (action, outcome, severity, ...).
//! - [`filter`]: the search filter, its query-string form and its meaning on an entry.
//! - [`api`]: requests and answers of `/v1/...` (OpenAPI schemas with the feature `openapi`).
//! - [`export`]: the `evident-export/v1` bundle format.
//! - [`signature`]: HMAC-SHA256 and the `Evident-Signature` header of webhook deliveries.
//! - [`privacy`]: requests and answers of erasure, holds, retention and subject reports.
//! - [`inbox`]: the requests nodes sharing a store queue for a tenant's leader, and its answers.
//! - [`insight`]: the step and dimension language and the answers of `/v1/insights/...`.
//! - [`json`]: JSON text without duplicate keys, as the server and the importers read it.
//! - [`sensitive`]: card numbers and secrets in free text, found and masked the same way by the
//!   server's validation and the importers.

pub mod api;
pub mod detect;
pub mod entry;
pub mod export;
pub mod filter;
pub mod inbox;
pub mod insight;
pub mod jcs;
pub mod json;
pub mod names;
pub mod privacy;
pub mod sensitive;
pub mod signature;
pub mod streams;
pub mod time;

pub use time::Micros;
