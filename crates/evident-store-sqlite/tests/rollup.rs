//! Insight's rollups in the index file: the shared checks (`insight_rollup_suite!`), plus what
//! only this store has: an index file from before rollups is folded again from nothing, one from
//! before the path table builds it from the stored events, and the rollups' names hold nothing
//! personal, before or after erasure.

use std::path::PathBuf;
use std::sync::Arc;

use evident_core::conformance_insight::{
    InsightHarness, Rng, append_random, assert_rollups_agree, open,
    paths_are_built_for_a_store_from_before_them, rollups_hold_nothing_personal,
};
use evident_core::insight::InsightIndex;
use evident_core::store::Store;
use evident_store_sqlite::SqliteStore;

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite { dir: tempfile::tempdir().unwrap() }
    }

    fn index_file(&self) -> PathBuf {
        self.dir.path().join("evident.sqlite-index")
    }
}

impl InsightHarness for Sqlite {
    fn open(&self) -> (Arc<dyn Store>, Arc<dyn InsightIndex>) {
        let store = Arc::new(SqliteStore::open(&self.dir.path().join("evident.sqlite")).unwrap());
        (store.clone(), store)
    }
}

evident_core::insight_rollup_suite!(Sqlite::new());

#[test]
fn an_index_file_from_before_rollups_is_folded_again_from_nothing() {
    let harness = Sqlite::new();
    let mut rng = Rng(5);
    let opened = open(&harness);
    append_random(&opened.engine, &mut rng, 0, 300);
    assert_rollups_agree(&*opened.index, "before");
    opened.engine.shutdown();
    drop(opened);
    // No rollup watermark: as an index file written before rollups existed.
    rusqlite::Connection::open(harness.index_file()).unwrap().execute_batch("DELETE FROM rolled").unwrap();
    let opened = open(&harness);
    append_random(&opened.engine, &mut rng, 300, 50);
    assert_rollups_agree(&*opened.index, "after an index without rollups");
}

#[test]
fn an_index_file_from_before_the_path_table_builds_it_from_the_events() {
    let harness = Sqlite::new();
    let index = || rusqlite::Connection::open(harness.index_file()).unwrap();
    let number = |sql: &str| index().query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap() as u64;
    paths_are_built_for_a_store_from_before_them(
        &harness,
        // As an index file written before the path table existed: none of its tables.
        &|| {
            index()
                .execute_batch("DROP TABLE pathed; DROP TABLE insight_paths; DROP TABLE insight_kinds;")
                .unwrap()
        },
        &|| (number("SELECT size FROM pathed"), number("SELECT count(*) FROM insight_paths")),
    );
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
