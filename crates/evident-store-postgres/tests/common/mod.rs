//! What the PostgreSQL tests share: the server's URL and a fresh schema per test.
//!
//! The tests need a running server (`EVIDENT_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`); without one they fail, saying so.

#![allow(dead_code)]

use evident_store_postgres::{PgOptions, PgStore};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn url() -> String {
    std::env::var("EVIDENT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A schema of its own for one test, dropped with everything in it when the test ends.
pub struct TestSchema {
    pub name: String,
}

impl TestSchema {
    pub fn new() -> TestSchema {
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random).expect("random bytes");
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        TestSchema { name: format!("evident_test_{suffix}") }
    }

    pub fn options(&self) -> PgOptions {
        PgOptions { schema: Some(self.name.clone()), pool_size: 4, ..PgOptions::default() }
    }

    /// Opens the store in this schema; a server that does not answer fails the test loudly.
    pub fn open(&self) -> PgStore {
        let url = url();
        PgStore::connect(&url, self.options()).unwrap_or_else(|err| {
            panic!(
                "the PostgreSQL tests need a server at {url} (set EVIDENT_TEST_DATABASE_URL to another): {err}"
            )
        })
    }

    /// Runs SQL on the test server in this schema, outside any store; answers the rows' first
    /// column as text.
    pub fn sql(&self, sql: &str) -> Vec<String> {
        run_sql(&self.name, sql)
    }
}

/// Runs SQL on the test server with `search_path` set to `schema`; answers the rows' first column.
pub fn run_sql(schema: &str, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("no PostgreSQL server at {}: {err}", url()));
        tokio::spawn(connection);
        client.batch_execute(&format!("SET search_path TO \"{schema}\"")).await.expect("search_path is set");
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_owned()),
                _ => None,
            })
            .collect()
    })
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Best effort: a schema left behind by a crashed test is named evident_test_*.
        let name = self.name.clone();
        let _ = std::panic::catch_unwind(|| {
            run_sql("public", &format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        });
    }
}
