//! Sealing of personal data (`EVENT-SCHEMA.md` §3): each data subject has its own random data
//! key; data keys are stored wrapped by the master key; a personal part is sealed under its
//! subject's data key together with its salt. Erasing a subject destroys its data key, after which
//! its personal parts cannot be opened anywhere, while every leaf (which holds only the salted
//! commitment) still verifies.
//!
//! Primitives: XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`), random 192-bit nonces.
//! Associated data binds every ciphertext to where it belongs, so a sealed blob or a wrapped key
//! moved to another event, subject or tenant does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::privacy::idempotency::KeyedDigest;
use evident_wire::signature::hmac_sha256;

const NONCE_LEN: usize = 24;
/// Format version of wrapped keys and secrets (and of personal parts sealed before key ids).
const VERSION: u8 = 1;
/// Format version of personal parts that carry the id of the key that sealed them.
const SEALED_WITH_KEY_ID: u8 = 2;
const KEY_ID_LEN: usize = 8;

/// 32 random bytes from the operating system.
pub fn random_32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source works");
    bytes
}

/// The key that wraps every data key. Comes from configuration (by default a file made on first
/// start with mode 0600).
pub struct MasterKey(Zeroizing<[u8; 32]>);

/// One data subject's key.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(redacted)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Wraps a data key for `(tenant, subject)`.
    pub fn wrap(&self, tenant: &str, subject: &str, key: &DataKey) -> Vec<u8> {
        encrypt(&self.0, &wrap_aad(tenant, subject), key.0.as_slice())
    }

    /// Wraps a service secret (the detection secret, search keys) stored under `name`.
    pub fn wrap_secret(&self, name: &str, secret: &[u8; 32]) -> Vec<u8> {
        encrypt(&self.0, &secret_aad(name), secret)
    }

    /// Unwraps a service secret; fails if it was wrapped for another name or by another master
    /// key, or altered.
    pub fn unwrap_secret(&self, name: &str, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let plain = decrypt(&self.0, &secret_aad(name), wrapped).map_err(|_| {
            Error::Sealed(format!("service secret {name:?} does not open under the master key"))
        })?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::Sealed(format!("service secret {name:?} has the wrong length")))?;
        Ok(Zeroizing::new(bytes))
    }

    /// Unwraps a data key; fails if the blob was made for another tenant or subject, or altered.
    pub fn unwrap(&self, tenant: &str, subject: &str, wrapped: &[u8]) -> Result<DataKey> {
        let plain = decrypt(&self.0, &wrap_aad(tenant, subject), wrapped)
            .map_err(|_| Error::Sealed(format!("data key of subject {subject:?} does not open")))?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::Sealed("wrapped data key has the wrong length".into()))?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }
}

impl DataKey {
    pub fn generate() -> DataKey {
        DataKey(Zeroizing::new(random_32()))
    }

    /// The id of this key: 8 bytes derived from it, which say nothing about it. A sealed part
    /// carries the id of the key that sealed it.
    pub fn key_id(&self) -> [u8; 8] {
        hmac_sha256(self.0.as_slice(), b"evident data key id v1")[..8].try_into().expect("8 bytes")
    }

    /// Seals a personal part and its salt for one event: `2 || key id || nonce || ciphertext`.
    pub fn seal(
        &self,
        tenant: &str,
        event_id: &[u8; 16],
        salt: &[u8; 32],
        canonical_personal: &[u8],
    ) -> Vec<u8> {
        let mut plain = Zeroizing::new(Vec::with_capacity(32 + canonical_personal.len()));
        plain.extend_from_slice(salt);
        plain.extend_from_slice(canonical_personal);
        let sealed = encrypt(&self.0, &seal_aad(tenant, event_id), &plain);
        let mut out = Vec::with_capacity(sealed.len() + KEY_ID_LEN);
        out.push(SEALED_WITH_KEY_ID);
        out.extend_from_slice(&self.key_id());
        out.extend_from_slice(&sealed[1..]);
        out
    }

    /// Whether `sealed` names another key than this one (sealed before key ids: it cannot tell).
    pub fn sealed_another(&self, sealed: &[u8]) -> bool {
        sealed.first() == Some(&SEALED_WITH_KEY_ID)
            && sealed.len() > 1 + KEY_ID_LEN
            && sealed[1..1 + KEY_ID_LEN] != self.key_id()
    }

    /// Opens a sealed personal part: answers the salt and the canonical personal JSON, or `None`
    /// when another key sealed it (one since destroyed: the subject was erased, then got a new
    /// key). A part this key sealed that does not open was altered: an integrity failure.
    pub fn unseal(
        &self,
        tenant: &str,
        event_id: &[u8; 16],
        sealed: &[u8],
    ) -> Result<Option<([u8; 32], Vec<u8>)>> {
        let blob = match sealed.first() {
            Some(&SEALED_WITH_KEY_ID) if sealed.len() > 1 + KEY_ID_LEN => {
                if sealed[1..1 + KEY_ID_LEN] != self.key_id() {
                    return Ok(None);
                }
                let mut blob = vec![VERSION];
                blob.extend_from_slice(&sealed[1 + KEY_ID_LEN..]);
                blob
            }
            // Sealed before key ids: only this key can tell.
            _ => sealed.to_vec(),
        };
        let plain = decrypt(&self.0, &seal_aad(tenant, event_id), &blob).map_err(|_| {
            Error::Integrity("sealed personal part does not open under its subject's key".into())
        })?;
        if plain.len() < 32 {
            return Err(Error::Integrity("sealed personal part is too short".into()));
        }
        let salt: [u8; 32] = plain[..32].try_into().expect("32 bytes");
        Ok(Some((salt, plain[32..].to_vec())))
    }

    /// The keyed digest of a personal part for idempotency (`privacy/idempotency.rs`): an
    /// HMAC-SHA256 under a key derived from this data key, and the id of this key. Without the
    /// data key neither says anything about the personal values.
    pub fn idempotency_mac(&self, canonical_personal: &[u8]) -> KeyedDigest {
        let derived = Zeroizing::new(hmac_sha256(self.0.as_slice(), b"evident idempotency key v1"));
        KeyedDigest { key_id: self.key_id(), mac: hmac_sha256(derived.as_slice(), canonical_personal) }
    }
}

fn wrap_aad(tenant: &str, subject: &str) -> Vec<u8> {
    let mut aad = b"evident data key v1\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject.as_bytes());
    aad
}

fn secret_aad(name: &str) -> Vec<u8> {
    let mut aad = b"evident service secret v1\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn seal_aad(tenant: &str, event_id: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"evident personal part v1\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(event_id);
    aad
}

fn encrypt(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).expect("the operating system's random source works");
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn decrypt(key: &[u8; 32], aad: &[u8], blob: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, ()> {
    if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != VERSION {
        return Err(());
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XNonce::from_slice(&blob[1..1 + NONCE_LEN]);
    cipher.decrypt(nonce, Payload { msg: &blob[1 + NONCE_LEN..], aad }).map(Zeroizing::new).map_err(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_parts_open_only_where_they_belong() {
        let master = MasterKey::from_bytes([1; 32]);
        let key = DataKey::generate();
        let wrapped = master.wrap("acme", "cust-1", &key);
        let unwrapped = master.unwrap("acme", "cust-1", &wrapped).unwrap();
        assert!(master.unwrap("acme", "cust-2", &wrapped).is_err(), "bound to the subject");
        assert!(master.unwrap("other", "cust-1", &wrapped).is_err(), "bound to the tenant");
        assert!(
            MasterKey::from_bytes([2; 32]).unwrap("acme", "cust-1", &wrapped).is_err(),
            "wrong master key"
        );

        let salt = random_32();
        let sealed = key.seal("acme", &[7; 16], &salt, br#"{"/origin/ip":"10.0.0.1"}"#);
        let (got_salt, plain) = unwrapped.unseal("acme", &[7; 16], &sealed).unwrap().unwrap();
        assert_eq!((got_salt, plain.as_slice()), (salt, br#"{"/origin/ip":"10.0.0.1"}"#.as_slice()));
        assert!(unwrapped.unseal("acme", &[8; 16], &sealed).is_err(), "bound to the event");
        assert_eq!(DataKey::generate().unseal("acme", &[7; 16], &sealed).unwrap(), None, "another key's");
        assert!(DataKey::generate().sealed_another(&sealed) && !unwrapped.sealed_another(&sealed));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(unwrapped.unseal("acme", &[7; 16], &flipped).is_err(), "altered");
        assert!(unwrapped.unseal("acme", &[7; 16], &sealed[..10]).is_err(), "truncated");
        let secret = master.wrap_secret("detect/secret", &[5; 32]);
        assert_eq!(*master.unwrap_secret("detect/secret", &secret).unwrap(), [5; 32]);
        assert!(master.unwrap_secret("search/key", &secret).is_err(), "bound to the name");
        assert!(MasterKey::from_bytes([2; 32]).unwrap_secret("detect/secret", &secret).is_err());
        // The plaintext does not appear in the sealed bytes.
        assert!(!sealed.windows(8).any(|w| w == b"10.0.0.1"));
    }
}
