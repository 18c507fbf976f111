//! Evident's wire contract: what the server, the client libraries and the CLI agree on, and what
//! an offline verifier needs besides the log core (`evident-tlog`). It depends on neither the
//! engine nor HTTP.
//!
//! - [`time`]: times as the wire and the leaves spell them.
//! - [`jcs`]: RFC 8785 canonical JSON, the spelling of every entry.
//! - [`entry`]: the leaf's `pii_commitment` and putting an event back together.
//! - [`json`]: JSON text without duplicate keys, as the server and the importers read it.
//! - [`sensitive`]: card numbers and secrets in free text, found and masked the same way by the
//!   server's validation and the importers.

pub mod entry;
pub mod jcs;
pub mod json;
pub mod sensitive;
pub mod time;

pub use time::Micros;
