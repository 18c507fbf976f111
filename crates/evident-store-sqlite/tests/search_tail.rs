//! Searches do not wait for the indexer: what it has not reached is read from the events' rows.
//! Each test holds the index file's write lock from another connection, so the indexer cannot
//! write a round: a search that waited for it would fail after 30 s (`Indexer::MAX_WAIT`).
//! (Closing a store then waits for the indexer's blocked round, about 10 s, `busy_timeout`.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evident_core::conformance::{Harness, search_by_type_prefix, search_spans_two_halves};
use evident_core::store::Store;
use evident_store_sqlite::SqliteStore;
use rusqlite::Connection;

struct Held {
    dir: tempfile::TempDir,
    /// A connection to the index file in a write transaction, while the test holds it.
    lock: Mutex<Option<Connection>>,
}

impl Held {
    fn new() -> Held {
        let held = Held { dir: tempfile::tempdir().unwrap(), lock: Mutex::new(None) };
        drop(SqliteStore::open(&held.path()).unwrap());
        held
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("evident.sqlite")
    }

    /// Takes the index file's write lock once the index covers every committed entry.
    fn hold_when_indexed(&self) {
        let connection = Connection::open(self.path()).unwrap();
        connection.execute("ATTACH DATABASE ?1 AS ix", [index_file(&self.path())]).unwrap();
        let count = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while count("SELECT coalesce(sum(size), 0) FROM ix.indexed") < count("SELECT sum(size) FROM logs") {
            assert!(Instant::now() < deadline, "the indexer never caught up");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(connection);
        self.hold();
    }

    fn hold(&self) {
        let lock = Connection::open(index_file(&self.path())).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        *self.lock.lock().unwrap() = Some(lock);
    }

    /// Entries the index holds, read through the held connection.
    fn indexed(&self) -> i64 {
        let lock = self.lock.lock().unwrap();
        lock.as_ref()
            .unwrap()
            .query_row("SELECT coalesce(sum(size), 0) FROM indexed", [], |row| row.get(0))
            .unwrap()
    }
}

fn index_file(store: &Path) -> String {
    format!("{}-index", store.display())
}

impl Harness for Held {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path()).unwrap())
    }
}

#[test]
fn searches_cross_the_index_watermark() {
    let held = Held::new();
    search_spans_two_halves(&held, &|| held.hold_when_indexed());
    assert_eq!(held.indexed(), 30, "the second half was never indexed: its searches read the rows");
}

#[test]
fn type_prefixes_read_entries_the_index_does_not_hold() {
    let held = Held::new();
    held.hold();
    search_by_type_prefix(&held);
    assert_eq!(held.indexed(), 0);
}
