//! Schema migrations: the numbered files of `migrations/`, applied in order, once each.

use evident_core::{Error, Result};

use crate::db::{Db, failed};

/// One migration: its number, a name, and its SQL (run with `search_path` set to the store's schema).
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "init", sql: include_str!("../migrations/0001_init.sql") }];

/// First key of the advisory lock that serializes migrations; the second is the schema name's hash.
const LOCK_CLASS: i32 = 0x4556_4454;

impl Db {
    /// Creates the schema if needed and applies the migrations it lacks, all in one transaction
    /// holding a transaction-scoped advisory lock, so that nodes starting at once take turns and
    /// the later ones find nothing left to do. A crash midway leaves nothing applied.
    pub(crate) async fn migrate(&self) -> Result<()> {
        let schema = self.schema();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        // Another node's migration may take longer than the sessions' usual lock timeout.
        tx.batch_execute("SET LOCAL lock_timeout = '10min'").await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOCK_CLASS, &schema])
            .await
            .map_err(failed)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             SET LOCAL search_path TO \"{schema}\";
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(failed)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations ORDER BY version", &[])
            .await
            .map_err(failed)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let latest = MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some(newer) = applied.iter().find(|v| **v > latest) {
            return Err(Error::Unavailable(format!(
                "schema {schema} has migration {newer}; this build knows migrations up to {latest}"
            )));
        }
        for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            tx.batch_execute(migration.sql).await.map_err(|err| {
                Error::Unavailable(format!(
                    "migration {} ({}) failed: {}",
                    migration.version,
                    migration.name,
                    crate::db::describe(&err)
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i32 + 1, "{}", migration.name);
            assert!(!migration.sql.trim().is_empty(), "{}", migration.name);
        }
    }
}
