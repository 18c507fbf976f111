//! Privacy: what Evident keeps so that personal values can be forgotten while every proof stays
//! valid. `idempotency.rs` owns the digest that recognises a repeated event without keeping
//! anything that reveals its personal values once the subject's data key is gone; `holds.rs`
//! the legal holds that stop erasure and retention; `retention.rs` keys per subject, month, event
//! type and data classes, and the policies (rules by type and class) that destroy what is past
//! its maximum; `report.rs` the access,
//! disclosures and erasure reports about one subject; `rotation.rs` master-key rotation;
//! `search.rs` search tokens of personal fields; `settings.rs` which roles may erase.

pub mod holds;
pub mod idempotency;
pub mod report;
pub mod retention;
pub mod rotation;
pub mod search;
pub mod settings;

/// A tenant's settings blob in service state, `T::default()` if never put.
pub(crate) fn load_blob<T: serde::de::DeserializeOwned + Default>(
    store: &dyn crate::store::KeyStore,
    name: &str,
) -> crate::error::Result<T> {
    match store.get_state(name)? {
        None => Ok(T::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| crate::error::Error::Integrity(format!("stored {name} is unreadable: {err}"))),
    }
}

/// Replaces a settings blob in service state, durably.
pub(crate) fn save_blob<T: serde::Serialize>(
    store: &dyn crate::store::KeyStore,
    name: &str,
    value: &T,
) -> crate::error::Result<()> {
    store.put_state(name, &serde_json::to_vec(value).expect("settings serialise"))
}
