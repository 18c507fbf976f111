//! The engine's multi-node checks (`store_cluster_suite!`) on PostgreSQL: several engines, as
//! separate nodes would be, sharing one schema.

mod common;

use std::sync::Arc;

use evident_core::conformance::Harness;
use evident_core::store::Store;

struct Postgres {
    schema: common::TestSchema,
}

impl Harness for Postgres {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.schema.open())
    }
}

evident_core::store_cluster_suite!(Postgres { schema: common::TestSchema::new() });
