//! Insight's rollups in the index file: the shared checks (`insight_rollup_suite!`), plus what
//! only this store has: an index file from before rollups has them folded again from the events, one from
//! before the path table builds it from the stored events, one with per-customer seen rows is
//! folded again into hour sets, and the rollups' names hold nothing
//! personal, before or after erasure.

use std::path::PathBuf;
use std::sync::Arc;

use evident_core::conformance_insight::{
    InsightHarness, paths_are_built_for_a_store_from_before_them,
    rollups_are_folded_again_for_a_store_from_before_them, rollups_hold_nothing_personal,
};
use evident_core::insight::InsightIndex;
use evident_core::store::Store;
use evident_store_sqlite::SqliteStore;

struct Sqlite {
    dir: tempfile::TempDir,
    /// Entries per part of the index file, as a power of two.
    shift: u32,
}

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite::with_parts(18)
    }

    fn with_parts(shift: u32) -> Sqlite {
        Sqlite { dir: tempfile::tempdir().unwrap(), shift }
    }

    fn index_file(&self) -> PathBuf {
        self.dir.path().join("evident.sqlite-index")
    }
}

impl InsightHarness for Sqlite {
    fn open(&self) -> (Arc<dyn Store>, Arc<dyn InsightIndex>) {
        let path = self.dir.path().join("evident.sqlite");
        let store = Arc::new(SqliteStore::open_with_index_parts(&path, self.shift).unwrap());
        (store.clone(), store)
    }
}

evident_core::insight_rollup_suite!(Sqlite::new());

/// The suite again with the index file's customer-keyed indexes in parts of 16 entries: each scan
/// by customer merges many parts (`parts.rs`).
mod small_parts {
    use super::*;

    evident_core::insight_rollup_suite!(Sqlite::with_parts(4));
}

#[test]
fn an_index_file_from_before_rollups_is_folded_again_from_nothing() {
    let harness = Sqlite::new();
    // No rollup watermark: as an index file written before rollups existed.
    rollups_are_folded_again_for_a_store_from_before_them(&harness, &|| {
        rusqlite::Connection::open(harness.index_file()).unwrap().execute_batch("DELETE FROM rolled").unwrap()
    });
    assert_folded_again(&harness);
}

/// The rollups were folded again from the events (the questions above could have been answered
/// by scanning them): their watermark is level with the index's, and their hour sets are there.
fn assert_folded_again(harness: &Sqlite) {
    let index = rusqlite::Connection::open(harness.index_file()).unwrap();
    let number = |sql: &str| index.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    assert_eq!(number("SELECT size FROM rolled"), number("SELECT size FROM indexed"));
    assert!(number("SELECT count(*) FROM insight_hour_ids") > 0);
}

#[test]
fn an_index_file_with_per_customer_seen_rows_is_folded_again_into_hour_sets() {
    let harness = Sqlite::new();
    let index = || rusqlite::Connection::open(harness.index_file()).unwrap();
    // As an index file written before the hour sets: its seen facts in the per-customer table,
    // none in the hour sets (the table is created empty when the file is opened).
    rollups_are_folded_again_for_a_store_from_before_them(&harness, &|| {
        index()
            .execute_batch(
                "DELETE FROM insight_hour_ids;
                 CREATE TABLE insight_seen (
                     tid INTEGER NOT NULL, dim INTEGER NOT NULL, who INTEGER NOT NULL, value INTEGER NOT NULL,
                     id INTEGER NOT NULL, hours BLOB NOT NULL, PRIMARY KEY (tid, dim, who, value, id)
                 ) WITHOUT ROWID;
                 INSERT INTO insight_seen VALUES (1, 0, 0, 0, 1, x'01000000');",
            )
            .unwrap()
    });
    let old: i64 = index()
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'insight_seen'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(old, 0, "the per-customer table is dropped");
    assert_folded_again(&harness);
}

/// The shared check that a store from before its path table builds it from the events, `forget`
/// being the SQL that makes the index file look older; then a connection to the index file.
fn path_table_built_after(harness: &Sqlite, forget: &str) -> rusqlite::Connection {
    let index = || rusqlite::Connection::open(harness.index_file()).unwrap();
    let number = |sql: &str| index().query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap() as u64;
    paths_are_built_for_a_store_from_before_them(
        harness,
        &|| index().execute_batch(forget).unwrap(),
        &|| (number("SELECT size FROM pathed"), number("SELECT count(*) FROM insight_paths")),
    );
    index()
}

#[test]
fn an_index_file_from_before_the_path_table_builds_it_from_the_events() {
    // As an index file written before the path table existed: none of its tables.
    path_table_built_after(
        &Sqlite::new(),
        "DROP TABLE pathed; DROP TABLE insight_paths; DROP TABLE insight_kinds;",
    );
}

/// A path table from before the chunks (one row per customer and month) is dropped and built
/// again in chunks from the stored events.
#[test]
fn a_path_table_from_before_the_chunks_is_built_again_in_chunks() {
    // The old form, holding a row the events do not have: it must not survive.
    let harness = Sqlite::new();
    let index = path_table_built_after(
        &harness,
        "DROP TABLE insight_paths;
         CREATE TABLE insight_paths (
             tid INTEGER NOT NULL, customer INTEGER NOT NULL, month INTEGER NOT NULL, pairs BLOB NOT NULL,
             PRIMARY KEY (tid, customer, month)
         ) WITHOUT ROWID;
         INSERT INTO insight_paths VALUES (1, 999999, 0, x'0101');",
    );
    let number = |sql: &str| index.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    assert_eq!(number("SELECT count(*) FROM insight_paths WHERE customer = 999999"), 0);
    let sql: String = index
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'insight_paths'", [], |row| row.get(0))
        .unwrap();
    assert!(sql.contains("chunk"), "{sql}");
}

/// Long paths are kept in chunks of at most 128 pairs, each in time order, which together hold
/// every event once.
#[test]
fn a_long_path_is_kept_in_chunks() {
    let harness = Sqlite::new();
    evident_core::conformance_insight::long_paths_agree_with_the_scan(&harness);
    let index = rusqlite::Connection::open(harness.index_file()).unwrap();
    let mut statement = index.prepare("SELECT month, chunk, pairs FROM insight_paths").unwrap();
    let rows: Vec<(i32, i64, Vec<u8>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let pairs = |month: i32, bytes: &[u8]| evident_core::insight::paths::decode(month, bytes).count();
    assert!(
        rows.iter().all(|(month, _, bytes)| (1..=128).contains(&pairs(*month, bytes))),
        "a chunk of over 128 pairs"
    );
    // Each chunk written in time order: a chunk written out of order would have its negative
    // deltas stored as 0, and its times would no longer be the events' times.
    let mut chunked: Vec<i64> = rows
        .iter()
        .flat_map(|(month, _, bytes)| {
            evident_core::insight::paths::decode(*month, bytes).map(|(time, _)| time.0)
        })
        .collect();
    let mut events: Vec<i64> = index
        .prepare("SELECT time FROM event_search WHERE subject IS NOT NULL")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    chunked.sort_unstable();
    events.sort_unstable();
    assert_eq!(chunked, events, "the chunks' times are the events' times");
    let most = rows.iter().map(|row| row.1).max().unwrap();
    assert!(most >= 2, "three customers' 320 events in a month make three chunks each; the most is {most}");
    let stored: usize = rows.iter().map(|(month, _, bytes)| pairs(*month, bytes)).sum();
    // Every appended event has a subject, and none is Evident's own.
    assert_eq!(stored, 16 * 60, "every event once");
}

#[test]
fn rollups_hold_nothing_personal_before_or_after_erasure() {
    let harness = Sqlite::new();
    rollups_hold_nothing_personal(&harness, &|| {
        let connection = rusqlite::Connection::open(harness.index_file()).unwrap();
        let mut statement = connection
            .prepare("SELECT name FROM insight_names UNION ALL SELECT kind FROM insight_kinds")
            .unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    });
}

/// Rounds of 40 entries with folds written every 10 (`EVIDENT_INDEXER_ROUND`), so that the
/// random histories take many rounds and many fold writes within each (the default rounds of
/// 200,000 entries never split a test's history): the rollups agree with the scan, every entry
/// has its search row and every entry with targets has its target rows.
#[test]
fn many_small_rounds_index_every_entry_and_agree_with_the_scan() {
    // SAFETY: nextest runs each test in a process of its own; this one sets the variable before
    // its store, the only reader of it, starts a thread.
    unsafe { std::env::set_var("EVIDENT_INDEXER_ROUND", "40") };
    let harness = Sqlite::new();
    evident_core::conformance_insight::rollups_agree_with_the_scan_on_random_histories(&harness);
    let connection = rusqlite::Connection::open(harness.dir.path().join("evident.sqlite")).unwrap();
    connection.execute("ATTACH DATABASE ?1 AS ix", [harness.index_file().display().to_string()]).unwrap();
    let count = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    let entries = count("SELECT sum(size) FROM logs");
    assert!(entries > 2_400, "8 histories of at least 300 events each: {entries}");
    assert_eq!(count("SELECT count(*) FROM ix.event_search"), entries);
    assert_eq!(count("SELECT max(size) FROM ix.indexed"), entries);
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE targets IS NOT NULL
             AND rid NOT IN (SELECT rid FROM ix.event_targets)"
        ),
        0
    );
    assert!(
        count("SELECT count(*) FROM ix.event_targets")
            >= count("SELECT count(*) FROM events WHERE targets IS NOT NULL")
    );
}

#[test]
fn a_bad_indexer_round_is_refused_with_what_to_do() {
    // SAFETY: as above, a process of its own, set before the store starts a thread.
    unsafe { std::env::set_var("EVIDENT_INDEXER_ROUND", "0") };
    let dir = tempfile::tempdir().unwrap();
    let Err(err) = SqliteStore::open(&dir.path().join("evident.sqlite")) else {
        panic!("a round of 0 entries was taken")
    };
    let text = err.to_string();
    assert!(text.contains("EVIDENT_INDEXER_ROUND") && text.contains("at least 1"), "{text}");
}
