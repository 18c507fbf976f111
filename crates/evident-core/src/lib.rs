//! The audit domain: producer events and their validation, the canonical leaf that commits to the
//! sealed personal part, the storage traits, and the engine that sequences, integrates and
//! publishes each tenant's log.
//!
//! No network I/O, no SQL, no HTTP: storage is reached through [`store::Store`], implemented by the
//! `evident-store-*` crates.

mod append;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod conformance_insight;
pub mod cosigned;
pub mod engine;
pub mod event;
pub mod fsck;
pub mod history;
mod inbox;
pub mod insight;
pub mod leaf;
pub mod log;
pub mod privacy;
pub mod read;
pub mod seal;
pub mod stats;
pub mod store;
pub mod validate;

mod error;

pub use error::{Error, Result};
