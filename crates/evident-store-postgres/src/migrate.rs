//! Schema migrations: the numbered files of `migrations/`, applied in order, once each.

use evident_core::{Error, Result};

use crate::db::{Db, failed};

/// One migration: its number, a name, and its SQL (run with `search_path` set to the store's schema).
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/0001_init.sql") },
    Migration { version: 2, name: "idempotency", sql: include_str!("../migrations/0002_idempotency.sql") },
    Migration { version: 3, name: "streams", sql: include_str!("../migrations/0003_streams.sql") },
    Migration {
        version: 4,
        name: "insight_rollups",
        sql: include_str!("../migrations/0004_insight_rollups.sql"),
    },
    Migration {
        version: 5,
        name: "insight_paths",
        sql: include_str!("../migrations/0005_insight_paths.sql"),
    },
    Migration {
        version: 6,
        name: "derived_leaf_tiles",
        sql: include_str!("../migrations/0006_derived_leaf_tiles.sql"),
    },
    Migration {
        version: 7,
        name: "insight_hour_ids",
        sql: include_str!("../migrations/0007_insight_hour_ids.sql"),
    },
];

/// The migration after whose SQL [`recompute_legacy_digests`] runs.
const IDEMPOTENCY_MIGRATION: i32 = 2;

/// Rows migrated per statement by [`recompute_legacy_digests`].
const LEGACY_BATCH: i64 = 1000;

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
            if migration.version == IDEMPOTENCY_MIGRATION {
                recompute_legacy_digests(&tx).await?;
            }
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

/// Migration 2's second half: every digest still of 32 bytes is an unsalted SHA-256 of a whole
/// event (personal values included); it becomes the legacy idempotency digest recomputed from the
/// event's entry, which holds nothing personal (`evident_core::privacy::idempotency`). Old row
/// versions stay in the tables' files until PostgreSQL reuses their space; `docs/privacy.md` says
/// to run `VACUUM FULL events, event_keys` after upgrading.
async fn recompute_legacy_digests(tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
    loop {
        let rows = tx
            .query(
                "SELECT tid, idx, recorded_at, entry FROM events WHERE length(idempotency) = 32
                 ORDER BY tid, idx LIMIT $1",
                &[&LEGACY_BATCH],
            )
            .await
            .map_err(failed)?;
        if rows.is_empty() {
            return Ok(());
        }
        let (mut tids, mut idxs, mut recorded, mut digests) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let digest = evident_core::privacy::idempotency::legacy_from_entry(row.get::<_, &[u8]>(3))?;
            tids.push(row.get::<_, i64>(0));
            idxs.push(row.get::<_, i64>(1));
            recorded.push(row.get::<_, i64>(2));
            digests.push(digest.to_bytes());
        }
        tx.execute(
            "UPDATE events e SET idempotency = u.d
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[]) AS u (tid, idx, r, d)
             WHERE e.tid = u.tid AND e.idx = u.idx AND e.recorded_at = u.r",
            &[&tids, &idxs, &recorded, &digests],
        )
        .await
        .map_err(failed)?;
        tx.execute(
            "UPDATE event_keys k SET idempotency = u.d
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[]) AS u (tid, idx, d)
             WHERE k.tid = u.tid AND k.idx = u.idx",
            &[&tids, &idxs, &digests],
        )
        .await
        .map_err(failed)?;
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
