//! The WAL is started over while commits go on. SQLite starts it over only when a commit begins
//! with every frame copied into the file and no reader in it; under steady commits, with the
//! indexer reading the main file, a background copy never ended that way, so the WAL grew until a
//! blocking truncate at 256 MiB held every commit back for seconds (issue 18: p99 2.9 s at
//! 64 x 100). Each test runs in a process of its own (nextest) and sets the restart size before
//! its store starts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evident_core::engine::{Engine, EngineConfig, Outcome};
use evident_core::event::TenantPolicy;
use evident_core::seal::MasterKey;
use evident_core::store::{Store, TenantId};
use evident_core::validate::validate_event;
use evident_store_sqlite::SqliteStore;
use serde_json::json;

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("evident.sqlite-wal")).map_or(0, |m| m.len())
}

#[test]
fn the_wal_starts_over_under_steady_commits() {
    // SAFETY: nextest runs each test in a process of its own; this one sets the variable before
    // its store, the only reader of it, starts a thread.
    unsafe { std::env::set_var("EVIDENT_WAL_RESTART_BYTES", (1 << 20).to_string()) };
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("evident.sqlite")).unwrap());
    let engine =
        Engine::open(store, [1; 32], MasterKey::from_bytes([2; 32]), EngineConfig::default()).unwrap();
    let acme = TenantId::new("acme").unwrap();
    engine.create_tenant(&acme, TenantPolicy::default()).unwrap();
    let policy = engine.policy(&acme).unwrap();
    // Commits of 50 events, one after another, until the WAL shrinks (started over and cut
    // back to the restart size), for at most 60 s or 64 MiB of WAL.
    let (mut largest, mut shrunk, deadline) = (0, false, Instant::now() + Duration::from_secs(60));
    let mut n = 0u64;
    while !shrunk && Instant::now() < deadline && largest < 64 << 20 {
        let events = (n..n + 50)
            .map(|i| {
                let customer = format!("cust-{}", i % 500);
                let event = evident_core::conformance::event(
                    &format!("e-{i}"),
                    json!({"subject": customer, "targets": [{"type": "customer", "id": customer}]}),
                );
                validate_event(&event, &policy).unwrap()
            })
            .collect();
        for outcome in engine.append(&acme, events).unwrap() {
            assert!(matches!(outcome, Outcome::Stored(_)), "{outcome:?}");
        }
        n += 50;
        let now = wal_bytes(dir.path());
        shrunk = now < largest;
        largest = largest.max(now);
    }
    assert!(shrunk, "the WAL never started over: {largest} bytes after {n} events");
    assert!(largest < 32 << 20, "the WAL grew to {largest} bytes with a restart size of 1 MiB");
}

#[test]
fn a_bad_restart_size_is_refused_with_what_to_do() {
    // SAFETY: as above, a process of its own, set before the store starts a thread.
    unsafe { std::env::set_var("EVIDENT_WAL_RESTART_BYTES", "12") };
    let dir = tempfile::tempdir().unwrap();
    let Err(err) = SqliteStore::open(&dir.path().join("evident.sqlite")) else {
        panic!("a restart size of 12 bytes was taken")
    };
    let text = err.to_string();
    assert!(text.contains("EVIDENT_WAL_RESTART_BYTES") && text.contains("at least 4096"), "{text}");
}
