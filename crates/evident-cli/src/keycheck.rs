//! The store remembers which keys it was made with: at creation `serve` records the signing
//! key's public half and a check value of the master key in the store's service state; at every
//! start it compares the key files with them and refuses to start on a mismatch, naming the file
//! and what to do. Key files are created only for a new, empty store, so a mistyped
//! `EVIDENT_MASTER_KEY_FILE` or a second node without copies of the keys stops at once instead of
//! sealing and signing with keys nobody else has.

use std::path::Path;

use anyhow::{Result, bail};
use evident_core::store::Store;
use evident_wire::signature::hmac_sha256;

/// The service-state names of the two records.
const SIGNING_STATE: &str = "keys/signing-vkey";
const MASTER_STATE: &str = "keys/master-check";

/// What to do when the keys do not match the store.
const ADVICE: &str = "point the setting at the store's own key file; for a new node of a shared \
                      database, copy signing.key and master.key from an existing node's data directory";

/// The public half of a signing seed, as a vkey under a fixed name.
fn signing_vkey(seed: &[u8; 32]) -> Result<String> {
    Ok(evident_tlog::Signer::from_seed("evident-signing-key", *seed)?.verifier().to_vkey())
}

/// A check value of the master key: it identifies the key without revealing it.
fn master_check(master: &[u8; 32]) -> Vec<u8> {
    hmac_sha256(master, b"evident master key check value v1")[..16].to_vec()
}

/// Whether the store is new: no tenant and no key record yet (key files may then be created).
pub fn store_is_new(store: &dyn Store) -> Result<bool> {
    Ok(store.tenants()?.is_empty() && store.get_state(SIGNING_STATE)?.is_none())
}

/// The refusal for a key file that is missing next to a store that already has data.
pub fn missing_key_file(path: &Path, setting: &str, place: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the key file {} does not exist, but the store ({place}) already holds data made with other keys; \
         nothing was created. Check {setting}: {ADVICE}",
        path.display()
    )
}

/// The key files in use and the settings that name them, for messages.
pub struct KeyFiles<'a> {
    pub signing: &'a Path,
    pub master: &'a Path,
}

/// Records `master` as the store's master key (after a rotation re-wrapped every key with it).
pub fn record_master(store: &dyn Store, master: &[u8; 32]) -> Result<()> {
    store.put_state(MASTER_STATE, &master_check(master))?;
    Ok(())
}

/// Compares the keys with the store's records, or records them when the store has none yet (a new
/// store, or one made before keys were recorded). A signing key retired by a rotation is replaced
/// by the current one in the record.
pub fn check_or_record(
    store: &dyn Store,
    files: &KeyFiles,
    signing: &[u8; 32],
    retired: &[[u8; 32]],
    master: &[u8; 32],
) -> Result<()> {
    let vkey = signing_vkey(signing)?;
    match store.get_state(SIGNING_STATE)? {
        None => store.put_state(SIGNING_STATE, vkey.as_bytes())?,
        Some(recorded) if recorded == vkey.as_bytes() => {}
        Some(recorded) => {
            let rotated = retired.iter().map(signing_vkey).collect::<Result<Vec<_>>>()?;
            if !rotated.iter().any(|old| old.as_bytes() == recorded) {
                bail!(
                    "the signing key in {} is not the key this store's checkpoints are signed with \
                     (EVIDENT_SIGNING_KEY_FILE, [keys] signing_key_file): {ADVICE}",
                    files.signing.display()
                );
            }
            tracing::info!("the signing key was rotated; recording the new one");
            store.put_state(SIGNING_STATE, vkey.as_bytes())?;
        }
    }
    let check = master_check(master);
    match store.get_state(MASTER_STATE)? {
        None => store.put_state(MASTER_STATE, &check)?,
        Some(recorded) if recorded == check => {}
        Some(_) => bail!(
            "the master key in {} is not the key this store's personal data is sealed with \
             (EVIDENT_MASTER_KEY_FILE, [keys] master_key_file): {ADVICE}",
            files.master.display()
        ),
    }
    Ok(())
}
