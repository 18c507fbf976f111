//! Opening a version 1 store migrates it: the unsalted whole-event hashes are replaced (see
//! `evident_core::conformance::legacy_digests_are_migrated`) and no byte of them is left in the
//! database file or its WAL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use evident_core::conformance::{Harness, LEGACY_HASH, legacy_digests_are_migrated};
use evident_core::store::Store;
use evident_store_sqlite::SqliteStore;
use rusqlite::Connection;

struct Sqlite {
    path: PathBuf,
}

impl Harness for Sqlite {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path).expect("the store opens"))
    }
}

/// What version 1 wrote: `content_hash` holding an unsalted hash, schema marker 1.
fn downgrade(path: &Path) {
    let connection = Connection::open(path).unwrap();
    connection
        .execute_batch(
            "ALTER TABLE events RENAME COLUMN idempotency TO content_hash;
             UPDATE meta SET value = '1' WHERE key = 'schema';",
        )
        .unwrap();
    connection.execute("UPDATE events SET content_hash = ?1", [LEGACY_HASH.as_slice()]).unwrap();
    assert!(file_bytes(path).windows(32).any(|w| w == LEGACY_HASH), "the marker is in the files before");
}

/// Every byte of the database file and its WAL.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend(std::fs::read(format!("{}-wal", path.display())).unwrap_or_default());
    bytes
}

#[test]
fn version_1_stores_are_migrated_without_a_trace_of_the_old_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    let harness = Sqlite { path: path.clone() };
    legacy_digests_are_migrated(&harness, &|| downgrade(&path));
    assert!(!file_bytes(&path).windows(32).any(|w| w == LEGACY_HASH), "an old hash survived the migration");
    let connection = Connection::open(&path).unwrap();
    let version: String =
        connection.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |row| row.get(0)).unwrap();
    assert_eq!(version, "2");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path).unwrap().execute("UPDATE meta SET value = '3' WHERE key = 'schema'", []).unwrap();
    let err = SqliteStore::open(&path).err().expect("refused").to_string();
    assert!(err.contains("schema version 3; this build knows 2"), "{err}");
}
