//! The leaf's commitment to its personal part (`EVENT-SCHEMA.md` §3): what a verifier needs to put
//! an event back together from its log entry and its opened personal part, and to check that the
//! two belong together. The personal part is a JSON object mapping RFC 6901 pointers into the full
//! event to the values taken out of it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A personal part that does not belong to its skeleton.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

/// `base64(SHA-256(salt || JCS(personal part)))`, the leaf's `pii_commitment`.
pub fn commitment(salt: &[u8; 32], canonical_personal: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(canonical_personal);
    BASE64.encode(hasher.finalize())
}

/// Puts an event back together from its skeleton and its opened personal part, after checking the
/// personal part against the skeleton's `pii_commitment`.
pub fn rehydrate(skeleton: &Value, salt: &[u8; 32], canonical_personal: &[u8]) -> Result<Value, Mismatch> {
    let claimed = skeleton.get("pii_commitment").and_then(Value::as_str);
    if claimed != Some(commitment(salt, canonical_personal).as_str()) {
        return Err(Mismatch("personal part does not match the leaf's pii_commitment".into()));
    }
    let personal: Map<String, Value> = serde_json::from_slice(canonical_personal)
        .map_err(|err| Mismatch(format!("personal part is not a JSON object: {err}")))?;
    let mut full = skeleton.clone();
    for (pointer, value) in personal {
        set_pointer(&mut full, &pointer, value)?;
    }
    Ok(full)
}

/// An object key as one RFC 6901 reference token.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Removes and answers the value at `pointer` (whose parent must exist).
pub fn take_pointer(root: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let last = unescape_pointer_token(last);
    match root.pointer_mut(parent)? {
        Value::Object(map) => map.remove(&last),
        _ => None,
    }
}

fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> Result<(), Mismatch> {
    let bad = || Mismatch(format!("personal part names {pointer:?}, which the skeleton has no place for"));
    let (parent, last) = pointer.rsplit_once('/').ok_or_else(bad)?;
    match root.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(unescape_pointer_token(last), value);
            Ok(())
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_depends_on_salt_and_content() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_ne!(commitment(&a, b"{}"), commitment(&b, b"{}"));
        assert_ne!(commitment(&a, b"{}"), commitment(&a, b"{ }"));
        assert_eq!(commitment(&a, b"{}"), commitment(&a, b"{}"));
    }

    #[test]
    fn rehydrate_refuses_what_does_not_belong() {
        let salt = [7u8; 32];
        let part = br#"{"/actor/display":"Ann"}"#;
        let skeleton = serde_json::json!({"actor": {"id": "a"}, "pii_commitment": commitment(&salt, part)});
        let full = rehydrate(&skeleton, &salt, part).unwrap();
        assert_eq!(full["actor"]["display"], "Ann");
        assert!(rehydrate(&skeleton, &[8u8; 32], part).is_err());
        let nowhere = br#"{"/nowhere/x":"Ann"}"#;
        let skeleton = serde_json::json!({"pii_commitment": commitment(&salt, nowhere)});
        assert!(rehydrate(&skeleton, &salt, nowhere).is_err());
    }
}
