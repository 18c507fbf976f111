//! Erasure deletes a subject's search tokens from the index file and leaves no copy of them in
//! the file, its free pages or its WAL: a token is an HMAC of a personal value, and one left in
//! a page image would still confirm a guessed value to whoever holds the tenant's search key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use evident_core::engine::{Engine, EngineConfig};
use evident_core::event::TenantPolicy;
use evident_core::seal::MasterKey;
use evident_core::store::TenantId;
use evident_core::validate::validate_event;
use evident_store_sqlite::SqliteStore;
use serde_json::json;

fn index_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("evident.sqlite-index"))
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn an_erased_subjects_tokens_leave_no_copy_in_the_index_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let engine =
        Engine::open(store, [42; 32], MasterKey::from_bytes([7; 32]), EngineConfig::default()).unwrap();
    let acme = TenantId::new("acme").unwrap();
    let policy = TenantPolicy { personal_metadata_keys: vec!["email".into()], ..TenantPolicy::default() };
    engine.create_tenant(&acme, policy.clone()).unwrap();
    let event = |id: &str, subject: &str, email: &str| {
        let value = json!({
            "id": id, "source": "//crm.example.com/support-api", "type": "customer.record.viewed",
            "action": "read", "time": "2026-11-26T10:00:00Z", "outcome": "success",
            "actor": {"id": "agent-1", "type": "user"}, "subject": subject,
            "targets": [{"type": "customer", "id": subject}], "metadata": {"email": email},
            "origin": {"ip": "192.0.2.10", "service": "support-api"},
        });
        validate_event(&value, &policy).unwrap()
    };
    let events =
        (0..200).map(|i| event(&format!("e{i}"), &format!("cust-{i}"), &format!("n{i}@example.org")));
    engine.append(&acme, events.chain([event("z", "cust-z", "zed@example.org")]).collect()).unwrap();
    let token = engine.search_token(&acme, "metadata.email", &json!("zed@example.org")).unwrap().unwrap();
    let indexed = |files: &[(String, Vec<u8>)]| {
        files.iter().any(|(_, bytes)| bytes.windows(token.len()).any(|w| w == token.as_bytes()))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !indexed(&index_files(dir.path())) {
        assert!(Instant::now() < deadline, "the indexer never wrote the token");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(engine.erase_subject(&acme, "cust-z").unwrap());
    let left: Vec<String> = index_files(dir.path())
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(token.len()).any(|w| w == token.as_bytes()))
        .map(|(name, _)| name)
        .collect();
    assert!(left.is_empty(), "the erased subject's token is still in {left:?}");
}
