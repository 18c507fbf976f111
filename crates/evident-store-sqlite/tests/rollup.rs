//! Insight's rollups in the index file: the shared checks (`insight_rollup_suite!`), plus what
//! only this store has: an index file from before rollups is folded again from nothing, and the
//! rollups' names hold nothing personal, before or after erasure.

use std::path::PathBuf;
use std::sync::Arc;

use evident_core::conformance_insight::{
    InsightHarness, Rng, append_random, assert_rollups_agree, open, rollups_hold_nothing_personal,
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
fn rollups_hold_nothing_personal_before_or_after_erasure() {
    let harness = Sqlite::new();
    rollups_hold_nothing_personal(&harness, &|| {
        let connection = rusqlite::Connection::open(harness.index_file()).unwrap();
        let mut statement = connection.prepare("SELECT name FROM insight_names ORDER BY name").unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    });
}
