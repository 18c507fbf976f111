//! Insight's rollups on PostgreSQL: the shared checks (`insight_rollup_suite!`), plus what only
//! this store has: two nodes folding the same log at once count every event once, a schema from
//! before the path table (migration 0004) builds it from the stored events, one from before the
//! hour rows (migration 0007) rebuilds its rollups, and the rollups' names hold nothing personal,
//! before or after erasure.

mod common;

use std::sync::Arc;

use evident_core::conformance_insight::{
    InsightHarness, Rng, START, append_random, assert_paths_agree, assert_rollups_agree, open,
    paths_are_built_for_a_store_from_before_them, rollups_are_folded_again_for_a_store_from_before_them,
    rollups_hold_nothing_personal, tenant, trend_query,
};
use evident_core::insight::InsightIndex;
use evident_core::insight::time::Zone;
use evident_core::insight::trend::trend;
use evident_core::store::Store;
use evident_wire::insight::Bucket;

struct Postgres {
    schema: common::TestSchema,
}

impl InsightHarness for Postgres {
    fn open(&self) -> (Arc<dyn Store>, Arc<dyn InsightIndex>) {
        let store = Arc::new(self.schema.open());
        (store.clone(), store)
    }
}

evident_core::insight_rollup_suite!(Postgres { schema: common::TestSchema::new() });

#[test]
fn two_nodes_folding_at_once_count_every_event_once() {
    let harness = Postgres { schema: common::TestSchema::new() };
    let writer = open(&harness);
    let (_, other) = harness.open();
    let mut rng = Rng(11);
    // Both nodes fold while the log grows: the writer's follower and the other's questions.
    std::thread::scope(|scope| {
        scope.spawn(|| append_random(&writer.engine, &mut rng, 0, 1500));
        scope.spawn(|| {
            for _ in 0..20 {
                let mut query = trend_query(
                    START,
                    START + 30 * 24 * 3_600_000_000,
                    None,
                    Bucket::Day,
                    evident_core::insight::time::Zone::UTC,
                );
                query.threshold.min_customers = 0;
                trend(&*other, &tenant(), &query).unwrap();
            }
        });
    });
    assert_rollups_agree(&*other, "the other node");
    assert_rollups_agree(&*writer.index, "the writing node");
    assert_eq!(harness.schema.sql("SELECT sum(events) FROM insight_counts WHERE dim = 0"), ["1500"]);
}

#[test]
fn path_table_pages_of_a_few_rows_answer_the_same() {
    let harness = Postgres { schema: common::TestSchema::new() };
    let opened = open(&harness);
    append_random(&opened.engine, &mut Rng(21), 0, 700);
    // Pages of 5 rows (40 customers, up to 3 months each): customers split across pages are
    // read whole from the next one.
    let small = harness.schema.open().with_path_page(5);
    assert_paths_agree(&small, &tenant(), "pages of 5 rows");
}

#[test]
fn a_schema_from_before_the_path_table_builds_it_from_the_events() {
    let harness = Postgres { schema: common::TestSchema::new() };
    let number = |sql: &str| harness.schema.sql(sql)[0].parse::<u64>().unwrap();
    paths_are_built_for_a_store_from_before_them(
        &harness,
        // As a schema at migration 0004: no path table; opening applies 0005 again.
        &|| {
            harness.schema.sql(
                "DROP TABLE insight_pathed, insight_kinds, insight_paths;
                 DELETE FROM schema_migrations WHERE version = 5",
            );
        },
        &|| (number("SELECT size FROM insight_pathed"), number("SELECT count(*) FROM insight_paths")),
    );
}

/// Migration 7 replaced the seen rows (one per customer and value, with its hours) by hour rows
/// (one per value and hour, with its customers): a schema at migration 6 has its rollups rebuilt
/// from the stored events, not left empty under a watermark that says everything is folded.
#[test]
fn a_schema_from_before_the_hour_rows_rebuilds_its_rollups_from_the_events() {
    let harness = Postgres { schema: common::TestSchema::new() };
    // As a schema at migration 6: every entry folded, seen rows per customer, no hour rows, and
    // names numbered sparsely (every fold took new numbers).
    rollups_are_folded_again_for_a_store_from_before_them(&harness, &|| {
        harness.schema.sql(
            "UPDATE insight_names SET id = id * 1000;
             DROP TABLE insight_hour_ids;
             CREATE TABLE insight_seen (tid bigint NOT NULL, dim smallint NOT NULL, who smallint NOT NULL,
                 value bigint NOT NULL, id bigint NOT NULL, hours bytea NOT NULL,
                 PRIMARY KEY (tid, dim, who, value, id));
             DELETE FROM schema_migrations WHERE version = 7",
        );
        assert_eq!(harness.schema.sql("SELECT size FROM insight_rolled"), ["600"]);
    });
    assert_eq!(harness.schema.sql("SELECT size FROM insight_rolled"), ["650"]);
    assert_eq!(harness.schema.sql("SELECT sum(events) FROM insight_counts WHERE dim = 0"), ["650"]);
    assert_eq!(harness.schema.sql("SELECT to_regclass('insight_seen') IS NULL"), ["t"]);
    assert_eq!(harness.schema.sql("SELECT size FROM insight_pathed"), ["650"]);
    assert_eq!(harness.schema.sql("SELECT max(id) = count(*) FROM insight_names"), ["t"], "numbered again");
}

/// Names keep dense ids however many folds see them again (an insert that conflicts still takes
/// a number): the hour rows' id sets are small and fast only while they are dense.
#[test]
fn names_keep_dense_ids_over_many_folds() {
    let harness = Postgres { schema: common::TestSchema::new() };
    let opened = open(&harness);
    let mut rng = Rng(3);
    for round in 0..4 {
        append_random(&opened.engine, &mut rng, round * 150, 150);
        let mut query = trend_query(START, START + 30 * 24 * 3_600_000_000, None, Bucket::Day, Zone::UTC);
        query.threshold.min_customers = 0;
        trend(&*opened.index, &tenant(), &query).unwrap();
        assert_paths_agree(&*opened.index, &tenant(), &format!("round {round}"));
    }
    let names = harness.schema.sql("SELECT count(*) || ' ' || max(id) FROM insight_names");
    let (count, max) = names[0].split_once(' ').unwrap();
    assert_eq!(count, max, "ids 1 to {count}, one per name");
}

#[test]
fn rollups_hold_nothing_personal_before_or_after_erasure() {
    let harness = Postgres { schema: common::TestSchema::new() };
    rollups_hold_nothing_personal(&harness, &|| {
        harness
            .schema
            .sql("SELECT name FROM insight_names UNION ALL SELECT encode(ids, 'escape') FROM insight_hour_ids
                  UNION ALL SELECT kind FROM insight_kinds UNION ALL SELECT encode(pairs, 'escape') FROM insight_paths")
    });
}
