//! Insight's rollups on PostgreSQL: the shared checks (`insight_rollup_suite!`), plus what only
//! this store has: two nodes folding the same log at once count every event once, and the
//! rollups' names hold nothing personal, before or after erasure.

mod common;

use std::sync::Arc;

use evident_core::conformance_insight::{
    InsightHarness, Rng, START, append_random, assert_rollups_agree, open, rollups_hold_nothing_personal,
    tenant, trend_query,
};
use evident_core::insight::InsightIndex;
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
fn rollups_hold_nothing_personal_before_or_after_erasure() {
    let harness = Postgres { schema: common::TestSchema::new() };
    rollups_hold_nothing_personal(&harness, &|| {
        harness
            .schema
            .sql("SELECT name FROM insight_names UNION ALL SELECT encode(hours, 'escape') FROM insight_seen")
    });
}
