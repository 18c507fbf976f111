//! The storage conformance suite on PostgreSQL, each test in a fresh schema of its own.

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

evident_core::store_conformance_suite!(Postgres { schema: common::TestSchema::new() });
