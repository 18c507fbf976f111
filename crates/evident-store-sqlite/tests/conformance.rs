//! The storage conformance suite on the embedded store.

use std::sync::Arc;

use evident_core::conformance::Harness;
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
        Sqlite { dir: tempfile::tempdir().expect("a temporary directory"), shift }
    }
}

impl Harness for Sqlite {
    fn open(&self) -> Arc<dyn Store> {
        let path = self.dir.path().join("evident.sqlite");
        Arc::new(SqliteStore::open_with_index_parts(&path, self.shift).expect("the store opens"))
    }
}

evident_core::store_conformance_suite!(Sqlite::new());

/// The suite again with the index file's customer-keyed indexes in parts of 4 entries: every
/// search by target or subject reads across many parts (`parts.rs`).
mod small_parts {
    use super::*;

    evident_core::store_conformance_suite!(Sqlite::with_parts(2));
}

/// `events_key` is unique, so a commit holding a stored key fails in SQLite as a whole: the
/// store says so, and the engine skips its lookup of every group's keys (a query per group on
/// the acknowledgement path; `a_commit_holding_a_stored_key_fails_whole` checks the refusal).
#[test]
fn the_embedded_store_refuses_duplicate_entries() {
    assert!(Sqlite::new().open().refuses_duplicate_entries());
}
