//! Evident's wire contract: what the server, the client libraries and the CLI agree on, and what
//! an offline verifier needs besides the log core (`evident-tlog`). It depends on neither the
//! engine nor HTTP.
//!
//! - [`time`]: times as the wire and the leaves spell them.
//! - [`jcs`]: RFC 8785 canonical JSON, the spelling of every entry.
//! - [`entry`]: the leaf's `pii_commitment` and putting an event back together.
//! - [`inbox`]: the requests nodes sharing a store queue for a tenant's leader, and its answers.

pub mod entry;
pub mod inbox;
pub mod jcs;
pub mod time;

pub use time::Micros;
