//! Evident's wire contract: what the server, the client libraries and the CLI agree on, and what
//! an offline verifier needs besides the log core (`evident-tlog`). It depends on neither the
//! engine nor HTTP.
//!
//! - [`time`]: times as the wire and the leaves spell them.
//! - [`jcs`]: RFC 8785 canonical JSON, the spelling of every entry.
//! - [`entry`]: the leaf's `pii_commitment` and putting an event back together.

pub mod entry;
pub mod jcs;
pub mod names;
pub mod time;

pub use time::Micros;
