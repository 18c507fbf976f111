//! Opening a version 1 store migrates it: the unsalted whole-event hashes are replaced (see
//! `evident_core::conformance::legacy_digests_are_migrated`) and no byte of them is left in the
//! database file or its WAL. Opening a version 2 store moves its search indexes to the index file:
//! every event's targets (search tokens included) into its row, the indexes rebuilt from them.

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
    assert_eq!(version, "4");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path).unwrap().execute("UPDATE meta SET value = '5' WHERE key = 'schema'", []).unwrap();
    let err = SqliteStore::open(&path).err().expect("refused").to_string();
    assert!(err.contains("schema version 5; this build knows 4"), "{err}");
}

/// Version 2 as it was written: `event_targets` and the seven secondary indexes in the main
/// file, no `targets` column filled, no index file.
fn downgrade_to_v2(path: &Path, targets: &[(i64, &str, &str, i64)]) {
    let connection = Connection::open(path).unwrap();
    connection
        .execute_batch(
            "UPDATE events SET targets = NULL;
             CREATE TABLE event_targets (tid INTEGER NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL,
                 time INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tid, type, id, time, rid)) WITHOUT ROWID;
             CREATE INDEX events_time ON events (tid, time);
             CREATE INDEX events_actor ON events (tid, actor, time);
             CREATE INDEX events_subject ON events (tid, subject, time) WHERE subject IS NOT NULL;
             CREATE INDEX events_type ON events (tid, type, time);
             CREATE INDEX events_action ON events (tid, action, time);
             CREATE INDEX events_outcome ON events (tid, outcome, time);
             CREATE INDEX events_source ON events (tid, source, time);
             UPDATE meta SET value = '2' WHERE key = 'schema';",
        )
        .unwrap();
    for (rid, kind, id, time) in targets {
        connection
            .execute(
                "INSERT INTO event_targets VALUES (1, ?1, ?2, ?3, ?4)",
                rusqlite::params![kind, id, time, rid],
            )
            .unwrap();
    }
    drop(connection);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}-index{suffix}", path.display()));
    }
}

#[test]
fn version_2_stores_move_their_search_indexes_to_the_index_file() {
    use evident_core::store::{EventIndex, LogStore, SearchPlan, TenantId};
    use evident_wire::filter::{Filter, Order};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let acme = TenantId::new("acme").unwrap();
    store.create_tenant(&acme, &Default::default()).unwrap();
    drop(store);
    // Three events in a v3 store, written as rows (the columns matter here, not the log).
    let connection = Connection::open(&path).unwrap();
    for (index, actor) in [(0i64, "ann"), (1, "bob"), (2, "ann")] {
        connection
            .execute(
                "INSERT INTO events (rid, tid, event_id, source, producer_id, idempotency, time, recorded_at,
                    type, action, outcome, actor, entry) VALUES (?1, 1, ?2, 's', ?3, x'00', ?4, 0, 't', 'read', 'success', ?5, x'7b7d')",
                rusqlite::params![(1i64 << 40) + index, vec![index as u8; 16], format!("p{index}"), 100 + index, actor],
            )
            .unwrap();
    }
    connection.execute("INSERT INTO logs (tid, size, checkpoint) VALUES (1, 3, 'x')", []).unwrap();
    drop(connection);
    let rid = |i: i64| (1i64 << 40) + i;
    downgrade_to_v2(
        &path,
        &[
            (rid(0), "customer", "c-1", 100),
            (rid(2), "customer", "c-1", 102),
            (rid(2), "pii:origin.ip", "ab", 102),
        ],
    );
    let store = SqliteStore::open(&path).unwrap();
    let search = |filter: &Filter| -> Vec<u64> {
        let plan = SearchPlan { filter, order: Order::OldestFirst, after: None, limit: 10 };
        store.search(&acme, &plan).unwrap().iter().map(|e| e.index).collect()
    };
    let by_target =
        |kind: &str, id: &str| Filter { target: Some((kind.into(), id.into())), ..Filter::default() };
    assert_eq!(search(&by_target("customer", "c-1")), vec![0, 2]);
    assert_eq!(search(&by_target("pii:origin.ip", "ab")), vec![2]);
    assert_eq!(search(&Filter { actor: Some("ann".into()), ..Filter::default() }), vec![0, 2]);
    assert_eq!(search(&Filter::default()), vec![0, 1, 2]);
    drop(store);
    let connection = Connection::open(&path).unwrap();
    let left: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'event_targets' OR name LIKE 'events_%' AND name NOT IN ('events_event_id', 'events_key')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the old index tables are gone from the main file");
    let version: String =
        connection.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).unwrap();
    assert_eq!(version, "4");
}

/// Version 3 kept the rightmost level-0 tile as a row rewritten by every commit; opening such a
/// store deletes those rows (here a wrong one), and nothing read changes.
#[test]
fn version_3_partial_tiles_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    let harness = Sqlite { path: path.clone() };
    let plant = |data: &[u8]| {
        let connection = Connection::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO tiles (tid, level, idx, data)
                 SELECT tid, 0, 1, ?1 FROM tenants WHERE name = 'acme'",
                [data],
            )
            .unwrap();
        connection.execute("UPDATE meta SET value = '3' WHERE key = 'schema'", []).unwrap();
    };
    evident_core::conformance::partial_leaf_tiles_come_from_entries(&harness, &plant);
    let connection = Connection::open(&path).unwrap();
    let (version, partial_rows): (String, i64) = connection
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'schema'),
                    (SELECT count(*) FROM tiles WHERE level = 0 AND length(data) < 8192)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version.as_str(), partial_rows), ("4", 0));
}
