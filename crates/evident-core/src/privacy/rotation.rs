//! Master-key rotation: every wrapped data key and service secret is unwrapped with the old
//! master key and wrapped with the new one, after which the old key is no longer needed.
//!
//! Idempotent and safe to repeat after a crash: a key that already opens with the new master key
//! is left as it is, so a rerun with the same two keys finishes the job. Run it while no server
//! uses the store (a server holding the old key cannot open what was rewrapped).

use crate::error::{Error, Result};
use crate::seal::MasterKey;
use crate::store::{Store, TenantId};

/// The service secrets wrapped by the master key, by their service-state names.
pub const SERVICE_SECRETS: &[&str] = &["detect/secret", crate::privacy::search::SECRET_NAME];

/// What a rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotated {
    pub data_keys: u64,
    pub secrets: u64,
    /// Already under the new master key (a rerun).
    pub already: u64,
}

/// Rewraps every data key of every tenant, and the service secrets, from `old` to `new`.
pub fn rewrap_all(store: &dyn Store, old: &MasterKey, new: &MasterKey) -> Result<Rotated> {
    let mut rotated = Rotated::default();
    for (tenant, _) in store.tenants()? {
        for name in store.data_key_names(&tenant, None)? {
            let Some(wrapped) = store.data_key(&tenant, &name)? else { continue };
            if new.unwrap(tenant.as_str(), &name, &wrapped).is_ok() {
                rotated.already += 1;
                continue;
            }
            let key = old
                .unwrap(tenant.as_str(), &name, &wrapped)
                .map_err(|_| opens_with_neither(&tenant, &name))?;
            store.replace_data_key(&tenant, &name, &new.wrap(tenant.as_str(), &name, &key))?;
            rotated.data_keys += 1;
        }
    }
    for name in SERVICE_SECRETS {
        let Some(wrapped) = store.get_state(name)? else { continue };
        if new.unwrap_secret(name, &wrapped).is_ok() {
            rotated.already += 1;
            continue;
        }
        let secret = old.unwrap_secret(name, &wrapped)?;
        store.put_state(name, &new.wrap_secret(name, &secret))?;
        rotated.secrets += 1;
    }
    Ok(rotated)
}

fn opens_with_neither(tenant: &TenantId, name: &str) -> Error {
    let subject = name.split(crate::privacy::retention::PERIOD_SEPARATOR).next().unwrap_or(name);
    Error::Sealed(format!("a data key of subject {subject:?} of {tenant} opens with neither master key"))
}
