//! Privacy: what Evident keeps so that personal values can be forgotten while every proof stays
//! valid. `idempotency.rs` owns the digest that recognises a repeated event without keeping
//! anything that reveals its personal values once the subject's data key is gone; `holds.rs`
//! the legal holds that stop erasure and retention; `retention.rs` keys per subject and month,
//! and the policies that destroy the months past a tenant's maximum; `report.rs` the access,
//! disclosures and erasure reports about one subject; `rotation.rs` master-key rotation;
//! `search.rs` search tokens of personal fields.

pub mod holds;
pub mod idempotency;
pub mod report;
pub mod retention;
pub mod rotation;
pub mod search;
