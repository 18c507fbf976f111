//! The idempotency digest: how the engine tells a repeat of a stored event (same `(source, id)`,
//! same content: answered with the original receipt) from a conflict (same key, other content),
//! without storing anything from which a personal value can be recovered once its subject's data
//! key is destroyed.
//!
//! The digest has two parts:
//! - the *skeleton digest*, `SHA-256("evident idempotency skeleton v1\0" || JCS(skeleton))`, over
//!   the normalised event with its personal values taken out (exactly what the leaf holds, before
//!   the service adds `tenant`, `event_id`, `recorded_at` and `pii_commitment`): it reveals nothing
//!   the leaf does not already show;
//! - when the event has a personal part, a *keyed digest* of it: `HMAC-SHA256(k, JCS(personal
//!   part))` with `k` derived from the subject's data key ([`crate::seal::DataKey::idempotency_mac`]),
//!   plus an 8-byte *key id* (also derived from the data key) saying which key made it.
//!
//! Two submissions are the same event when their skeleton digests agree and either both have no
//! personal part, or the keyed digests agree, or (after erasure) the stored keyed digest was made
//! under a key that no longer exists, so only the skeleton can be compared: a repeat of an erased
//! event is then answered the same whatever personal values it carries.
//!
//! Stored form: one tag byte, then the parts. `1`: skeleton only (no personal part). `2`: skeleton,
//! key id, keyed digest. `3`: skeleton only of an event stored before this digest existed (its
//! personal part cannot be compared; migrated from the unsalted whole-event hash, which is gone).

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

const SKELETON_DOMAIN: &[u8] = b"evident idempotency skeleton v1\0";
const TAG_PLAIN: u8 = 1;
const TAG_KEYED: u8 = 2;
const TAG_LEGACY: u8 = 3;
/// Fields the service adds to the skeleton; not part of what a producer sent.
const SERVICE_FIELDS: [&str; 4] = ["tenant", "event_id", "recorded_at", "pii_commitment"];

/// The keyed digest of a personal part and the id of the data key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedDigest {
    pub key_id: [u8; 8],
    pub mac: [u8; 32],
}

/// What the personal part contributes to an event's idempotency digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersonalDigest {
    /// The event has no personal part.
    None,
    Keyed(KeyedDigest),
    /// Stored before keyed digests existed: unknown, so never compared.
    Legacy,
}

/// An event's idempotency digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub skeleton: [u8; 32],
    pub personal: PersonalDigest,
}

/// The skeleton digest of a normalised event whose personal values were taken out.
pub fn skeleton_digest(skeleton: &Value) -> [u8; 32] {
    skeleton_digest_of_canonical(&evident_wire::jcs::to_vec(skeleton))
}

/// [`skeleton_digest`] of a skeleton already in its canonical (JCS) bytes.
pub fn skeleton_digest_of_canonical(canonical_skeleton: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(SKELETON_DOMAIN);
    hasher.update(canonical_skeleton);
    hasher.finalize().into()
}

/// The digest of an event stored before keyed digests, recomputed from its stored entry alone
/// (the migration of old stores: the leaf is the skeleton plus the service's fields).
pub fn legacy_from_entry(entry: &[u8]) -> Result<Idempotency> {
    let mut skeleton: Value = serde_json::from_slice(entry)
        .map_err(|err| Error::Integrity(format!("stored entry is not JSON: {err}")))?;
    let object = skeleton
        .as_object_mut()
        .ok_or_else(|| Error::Integrity("stored entry is not a JSON object".into()))?;
    let had_personal = object.contains_key("pii_commitment");
    for field in SERVICE_FIELDS {
        object.remove(field);
    }
    let personal = if had_personal { PersonalDigest::Legacy } else { PersonalDigest::None };
    Ok(Idempotency { skeleton: skeleton_digest(&skeleton), personal })
}

impl Idempotency {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 8 + 32);
        match &self.personal {
            PersonalDigest::None => out.push(TAG_PLAIN),
            PersonalDigest::Keyed(_) => out.push(TAG_KEYED),
            PersonalDigest::Legacy => out.push(TAG_LEGACY),
        }
        out.extend_from_slice(&self.skeleton);
        if let PersonalDigest::Keyed(keyed) = &self.personal {
            out.extend_from_slice(&keyed.key_id);
            out.extend_from_slice(&keyed.mac);
        }
        out
    }

    /// Reads a stored digest; anything else (the old unsalted 32-byte hash included) is an
    /// integrity failure: the store should have been migrated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Idempotency> {
        let malformed =
            || Error::Integrity(format!("stored idempotency digest of {} bytes is malformed", bytes.len()));
        let (&tag, rest) = bytes.split_first().ok_or_else(malformed)?;
        let skeleton: [u8; 32] = rest.get(..32).and_then(|s| s.try_into().ok()).ok_or_else(malformed)?;
        let personal = match (tag, rest.len()) {
            (TAG_PLAIN, 32) => PersonalDigest::None,
            (TAG_LEGACY, 32) => PersonalDigest::Legacy,
            (TAG_KEYED, 72) => PersonalDigest::Keyed(KeyedDigest {
                key_id: rest[32..40].try_into().expect("8 bytes"),
                mac: rest[40..72].try_into().expect("32 bytes"),
            }),
            _ => return Err(malformed()),
        };
        Ok(Idempotency { skeleton, personal })
    }

    /// Whether `repeat` is the same event as the stored `self`.
    ///
    /// The answer depends on personal values only while the key that digested the stored ones
    /// exists (both keyed digests made under the same key id); once it is destroyed, only on the
    /// skeleton and on whether each has a personal part at all (which the leaf shows anyway).
    pub fn same_event(&self, repeat: &Idempotency) -> bool {
        if self.skeleton != repeat.skeleton {
            return false;
        }
        match (&self.personal, &repeat.personal) {
            (PersonalDigest::Legacy, _) | (_, PersonalDigest::Legacy) => true,
            (PersonalDigest::None, PersonalDigest::None) => true,
            (PersonalDigest::Keyed(stored), PersonalDigest::Keyed(new)) => {
                stored.key_id != new.key_id || stored.mac == new.mac
            }
            _ => false,
        }
    }
}

/// [`Idempotency::same_event`] over stored forms.
pub fn same_event(stored: &[u8], repeat: &[u8]) -> Result<bool> {
    Ok(Idempotency::from_bytes(stored)?.same_event(&Idempotency::from_bytes(repeat)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keyed(key: u8, mac: u8) -> Idempotency {
        Idempotency {
            skeleton: [9; 32],
            personal: PersonalDigest::Keyed(KeyedDigest { key_id: [key; 8], mac: [mac; 32] }),
        }
    }

    #[test]
    fn stored_forms_round_trip_and_old_hashes_are_refused() {
        for digest in [
            keyed(1, 2),
            Idempotency { skeleton: [3; 32], personal: PersonalDigest::None },
            Idempotency { skeleton: [4; 32], personal: PersonalDigest::Legacy },
        ] {
            assert_eq!(Idempotency::from_bytes(&digest.to_bytes()).unwrap(), digest);
        }
        for bad in [vec![], vec![7; 32], vec![1; 40], vec![2; 33], vec![9; 73]] {
            assert!(Idempotency::from_bytes(&bad).is_err(), "{} bytes", bad.len());
        }
    }

    #[test]
    fn personal_values_count_only_while_their_key_exists() {
        let none = Idempotency { skeleton: [9; 32], personal: PersonalDigest::None };
        let check = |stored: Idempotency, repeat: Idempotency, expect: bool| {
            assert_eq!(stored.same_event(&repeat), expect, "{stored:?} vs {repeat:?}");
        };
        check(keyed(1, 2), keyed(1, 2), true);
        check(keyed(1, 2), keyed(1, 3), false);
        // The stored digest's key is gone (erased): any personal values are the same event.
        check(keyed(1, 2), keyed(5, 2), true);
        check(keyed(1, 2), keyed(5, 6), true);
        // Having a personal part or not is visible in the leaf; it still decides.
        check(keyed(1, 2), none, false);
        check(none, keyed(1, 2), false);
        check(none, none, true);
        let other_skeleton = Idempotency { skeleton: [8; 32], ..keyed(1, 2) };
        check(keyed(1, 2), other_skeleton, false);
        check(Idempotency { personal: PersonalDigest::Legacy, ..none }, keyed(1, 2), true);
    }

    #[test]
    fn the_legacy_digest_is_the_skeleton_digest_of_the_entry() {
        let skeleton = json!({"id": "e1", "source": "//s", "actor": {"id": "u1"}});
        let mut entry = skeleton.clone();
        let object = entry.as_object_mut().unwrap();
        object.insert("tenant".into(), json!("acme"));
        object.insert("event_id".into(), json!("0190"));
        object.insert("recorded_at".into(), json!("2026-01-01T00:00:00Z"));
        object.insert("pii_commitment".into(), json!("AAAA"));
        let legacy = legacy_from_entry(&evident_wire::jcs::to_vec(&entry)).unwrap();
        assert_eq!(
            legacy,
            Idempotency { skeleton: skeleton_digest(&skeleton), personal: PersonalDigest::Legacy }
        );
        assert!(legacy_from_entry(b"[1]").is_err());
    }
}
