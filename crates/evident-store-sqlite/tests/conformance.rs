//! The storage conformance suite on the embedded store.

use std::sync::Arc;

use evident_core::conformance::Harness;
use evident_core::store::Store;
use evident_store_sqlite::SqliteStore;

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite { dir: tempfile::tempdir().expect("a temporary directory") }
    }
}

impl Harness for Sqlite {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.dir.path().join("evident.sqlite")).expect("the store opens"))
    }
}

evident_core::store_conformance_suite!(Sqlite::new());
