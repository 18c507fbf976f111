//! Equality search on chosen personal fields without storing them in clear: each value of a
//! searchable field becomes a *search token*, `HMAC-SHA256(tenant search key, field || JCS(value))`
//! (128 bits, hex), stored as a pseudo-target `pii:<field>` of the event in the targets index
//! (never in the leaf). The tenant search keys derive from the service secret `search/secret`,
//! wrapped by the master key. Erasure deletes the subject's tokens, so erased subjects drop out.
//!
//! Searchable fields: `origin.ip`, and every metadata key the tenant marks personal
//! (`metadata.<key>`: an e-mail, a phone number).

use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::event::{Event, TenantPolicy};
use crate::seal::MasterKey;
use crate::store::KeyStore;
use evident_wire::signature::hmac_sha256;

/// The service-state name of the wrapped search secret.
pub const SECRET_NAME: &str = "search/secret";
/// The target type prefix of search tokens.
pub const TARGET_PREFIX: &str = "pii:";

/// Loads the search secret, or makes and stores one on first use. A secret that cannot be read
/// or opened is an error: replacing it would orphan every stored token.
pub fn load_secret(store: &dyn KeyStore, master: &MasterKey) -> Result<Zeroizing<[u8; 32]>> {
    match store.get_state(SECRET_NAME)? {
        Some(wrapped) => master.unwrap_secret(SECRET_NAME, &wrapped),
        None => {
            let secret = Zeroizing::new(crate::seal::random_32());
            store.put_state(SECRET_NAME, &master.wrap_secret(SECRET_NAME, &secret))?;
            Ok(secret)
        }
    }
}

/// The search token of `value` in `field` for `tenant`.
pub fn token(secret: &[u8; 32], tenant: &str, field: &str, value: &Value) -> String {
    let tenant_key =
        Zeroizing::new(hmac_sha256(secret, format!("evident search key v1\0{tenant}").as_bytes()));
    let mut message = field.as_bytes().to_vec();
    message.push(0);
    message.extend_from_slice(&evident_wire::jcs::to_vec(value));
    let mac = hmac_sha256(tenant_key.as_slice(), &message);
    mac[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `field` is searchable under `policy`.
pub fn searchable(field: &str, policy: &TenantPolicy) -> bool {
    field == "origin.ip"
        || field
            .strip_prefix("metadata.")
            .is_some_and(|key| policy.personal_metadata_keys.iter().any(|k| k == key))
}

/// The searchable fields of an event and their values.
pub fn fields(event: &Event, policy: &TenantPolicy) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Some(ip) = &event.origin.ip {
        out.push(("origin.ip".to_owned(), Value::from(ip.clone())));
    }
    for (key, value) in &event.metadata {
        if policy.personal_metadata_keys.iter().any(|k| k == key) {
            out.push((format!("metadata.{key}"), Value::from(value.clone())));
        }
    }
    out
}
