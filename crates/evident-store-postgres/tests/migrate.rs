//! A schema at migration 1 is migrated: the unsalted whole-event hashes are replaced (see
//! `evident_core::conformance::legacy_digests_are_migrated`) and no row of any table holds one.

mod common;

use std::sync::Arc;

use evident_core::conformance::{Harness, LEGACY_HASH, legacy_digests_are_migrated};
use evident_core::store::Store;

struct Postgres {
    schema: common::TestSchema,
}

impl Harness for Postgres {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.schema.open())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn migration_1_schemas_are_migrated_without_a_trace_of_the_old_hashes() {
    let harness = Postgres { schema: common::TestSchema::new() };
    let marker = hex(&LEGACY_HASH);
    let downgrade = || {
        harness.schema.sql(&format!(
            "ALTER TABLE events RENAME COLUMN idempotency TO content_hash;
             ALTER TABLE event_keys RENAME COLUMN idempotency TO content_hash;
             UPDATE events SET content_hash = '\\x{marker}';
             UPDATE event_keys SET content_hash = '\\x{marker}';
             DELETE FROM schema_migrations WHERE version = 2;"
        ));
    };
    legacy_digests_are_migrated(&harness, &downgrade);
    let left = harness.schema.sql(&format!(
        "SELECT (SELECT count(*) FROM events WHERE position('\\x{marker}'::bytea IN idempotency) > 0)
              + (SELECT count(*) FROM event_keys WHERE position('\\x{marker}'::bytea IN idempotency) > 0)"
    ));
    assert_eq!(left, vec!["0".to_owned()]);
    assert_eq!(harness.schema.sql("SELECT max(version) FROM schema_migrations"), vec!["7".to_owned()]);
}

/// Before migration 6 the rightmost level-0 tile was a row rewritten by every commit: migration 6
/// deletes those rows, and a level-0 row that is not a full tile is never read anyway.
#[test]
fn level_0_partial_tile_rows_are_dropped_by_migration_6_and_otherwise_ignored() {
    for rerun_migration in [true, false] {
        let harness = Postgres { schema: common::TestSchema::new() };
        let plant = |data: &[u8]| {
            let forget =
                if rerun_migration { "DELETE FROM schema_migrations WHERE version = 6;" } else { "" };
            harness.schema.sql(&format!(
                "INSERT INTO tiles (tid, level, idx, data)
                 SELECT tid, 0, 1, '\\x{}'::bytea FROM tenants WHERE name = 'acme'; {forget}",
                hex(data)
            ));
        };
        evident_core::conformance::partial_leaf_tiles_come_from_entries(&harness, &plant);
        let left = harness.schema.sql("SELECT count(*) FROM tiles WHERE level = 0 AND length(data) < 8192");
        // Dropped by the migration; otherwise replaced by the full tile once it filled.
        assert_eq!(left, vec!["0".to_owned()], "migration rerun: {rerun_migration}");
    }
}
