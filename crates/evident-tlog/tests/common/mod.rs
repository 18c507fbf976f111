//! Helpers shared by the integration tests: where the outside test data lives.

#![allow(dead_code)]

use std::path::PathBuf;

use evident_tlog::Hash;

/// `../shared` beside the repository (or `EVIDENT_SHARED`). Missing data fails the test loudly.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("EVIDENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    assert!(
        dir.join("vectors").is_dir(),
        "test vectors not found at {}: set EVIDENT_SHARED to the shared/ folder",
        dir.display()
    );
    dir
}

pub fn vectors() -> serde_json::Value {
    let path = shared_dir().join("vectors/tlog-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).expect("tlog-vectors.json is JSON")
}

pub fn hex_hash(value: &serde_json::Value) -> Hash {
    Hash::from_hex(value.as_str().expect("hex string")).expect("vector hash")
}

pub fn hex_hashes(value: &serde_json::Value) -> Vec<Hash> {
    value.as_array().expect("array").iter().map(hex_hash).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
