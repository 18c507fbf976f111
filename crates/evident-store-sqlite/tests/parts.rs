//! The index file's parts (`parts.rs`): with parts of 4 entries, searches by target and subject
//! read every part and merge them by time, and an index file from before the parts is brought to
//! them when the store opens, its targets kept.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evident_core::conformance::{Harness, search_history_out_of_time_order};
use evident_core::store::Store;
use evident_store_sqlite::SqliteStore;
use rusqlite::Connection;

struct Parted {
    dir: tempfile::TempDir,
    shift: u32,
}

impl Parted {
    fn new(shift: u32) -> Parted {
        Parted { dir: tempfile::tempdir().unwrap(), shift }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("evident.sqlite")
    }

    /// The store's file with the index file attached as `ix`.
    fn files(&self) -> Connection {
        let connection = Connection::open(self.path()).unwrap();
        connection.execute("ATTACH DATABASE ?1 AS ix", [format!("{}-index", self.path().display())]).unwrap();
        connection
    }

    /// Waits until the index holds every committed entry.
    fn wait_indexed(&self) {
        let connection = self.files();
        let count = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while count("SELECT coalesce(sum(size), 0) FROM ix.indexed") < count("SELECT sum(size) FROM logs") {
            assert!(Instant::now() < deadline, "the indexer never caught up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Harness for Parted {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open_with_index_parts(&self.path(), self.shift).unwrap())
    }
}

#[test]
fn searches_by_target_and_subject_merge_the_parts_by_time() {
    let parted = Parted::new(2);
    search_history_out_of_time_order(&parted, "acme", &|| parted.wait_indexed());
    let parts: i64 = parted
        .files()
        .query_row("SELECT count(DISTINCT part) FROM ix.event_targets", [], |row| row.get(0))
        .unwrap();
    assert_eq!(parts, 15, "60 entries in parts of 4");
}

/// An index file as this store wrote it before the parts: the targets keyed by (tenant, type,
/// id, time, rid), the subject index by (tenant, subject, time), no `parts` table.
fn unpart(connection: &Connection) {
    connection
        .execute_batch(
            "BEGIN;
             CREATE TABLE ix.old_targets (
                 tid INTEGER NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,
                 rid INTEGER NOT NULL, PRIMARY KEY (tid, type, id, time, rid)
             ) WITHOUT ROWID;
             INSERT INTO ix.old_targets SELECT tid, type, id, time, rid FROM ix.event_targets;
             DROP TABLE ix.event_targets;
             ALTER TABLE ix.old_targets RENAME TO event_targets;
             DROP INDEX ix.search_subject;
             CREATE INDEX ix.search_subject ON event_search (tid, subject, time) WHERE subject IS NOT NULL;
             DROP TABLE ix.parts;
             COMMIT;",
        )
        .unwrap();
}

#[test]
fn an_index_file_from_before_the_parts_is_parted_when_the_store_opens() {
    let parted = Parted::new(18);
    search_history_out_of_time_order(&parted, "acme", &|| parted.wait_indexed());
    let rows = |connection: &Connection| -> Vec<(String, String, i64, i64)> {
        let mut statement = connection
            .prepare("SELECT type, id, time, rid FROM ix.event_targets ORDER BY rid, type, id")
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = rows(&parted.files());
    assert!(before.len() >= 60, "a target per event, and search tokens");
    unpart(&parted.files());
    // Opened with parts of 4 asked for: a file from before the parts gets the new file's.
    let parted = Parted { shift: 2, ..parted };
    drop(parted.open());
    let files = parted.files();
    assert_eq!(rows(&files), before, "every target kept");
    let (shift, misplaced): (i64, i64) = files
        .query_row(
            "SELECT (SELECT shift FROM ix.parts), (SELECT count(*) FROM ix.event_targets WHERE part != rid >> 2)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((shift, misplaced), (2, 0));
    let subject: String = files
        .query_row("SELECT sql FROM ix.sqlite_master WHERE name = 'search_subject'", [], |row| row.get(0))
        .unwrap();
    assert!(subject.contains("rid >> 2"), "{subject}");
    // And the parted file is indexed and searched: the same history again, in a new tenant.
    drop(files);
    search_history_out_of_time_order(&parted, "globex", &|| parted.wait_indexed());
}
