//! The capture's connection to the application's database: tokio-postgres on a private
//! current-thread runtime, so callers stay blocking (and may use the blocking HTTP client between
//! calls). Every statement capture runs is here or in `sql.rs`.

use tokio::runtime::Runtime;
use tokio_postgres::{NoTls, Transaction};

use crate::event::OutboxRow;
use crate::{DeadLetter, Error, PersonalColumns, Result, TableSpec, sql};

/// A connection to the database whose tables are captured.
pub struct Database {
    runtime: Runtime,
    client: tokio_postgres::Client,
}

/// `name` as an SQL identifier (`schema.table` quoted part by part).
fn identifier(name: &str) -> String {
    name.split('.').map(|part| format!("\"{}\"", part.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Database {
    /// Connects to `url` (`postgres://user@host/database`).
    pub fn connect(url: &str) -> Result<Database> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| Error::Database(err.to_string()))?;
        let (client, connection) = runtime.block_on(tokio_postgres::connect(url, NoTls))?;
        runtime.spawn(async move {
            let _ = connection.await;
        });
        Ok(Database { runtime, client })
    }

    pub(crate) fn install(&mut self, tables: &[TableSpec]) -> Result<()> {
        let Database { runtime, client } = self;
        runtime.block_on(async {
            let transaction = client.transaction().await?;
            transaction.batch_execute(sql::SCHEMA).await?;
            let settings: i64 =
                transaction.query_one("SELECT count(*) FROM evident_capture.settings", &[]).await?.get(0);
            if settings == 0 {
                let mut install_id = [0u8; 8];
                let mut salt = [0u8; 32];
                getrandom::getrandom(&mut install_id).map_err(|err| Error::Database(err.to_string()))?;
                getrandom::getrandom(&mut salt).map_err(|err| Error::Database(err.to_string()))?;
                let statement =
                    "INSERT INTO evident_capture.settings (install_id, hash_salt) VALUES ($1, $2)";
                transaction.execute(statement, &[&hex::encode(install_id), &&salt[..]]).await?;
            }
            for spec in tables {
                install_table(&transaction, spec).await?;
            }
            transaction.commit().await?;
            Ok(())
        })
    }

    pub(crate) fn uninstall(&mut self, force: bool) -> Result<bool> {
        let Database { runtime, client } = self;
        runtime.block_on(async {
            let transaction = client.transaction().await?;
            let installed: bool = transaction
                .query_one("SELECT to_regnamespace('evident_capture') IS NOT NULL", &[])
                .await?
                .get(0);
            if !installed {
                return Ok(false);
            }
            let pending: i64 =
                transaction.query_one("SELECT count(*) FROM evident_capture.outbox", &[]).await?.get(0);
            if pending > 0 && !force {
                return Err(Error::Undelivered(pending));
            }
            for row in transaction.query("SELECT table_name FROM evident_capture.tables", &[]).await? {
                let table = identifier(row.get(0));
                let exists: bool =
                    transaction.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await?.get(0);
                if exists {
                    transaction
                        .batch_execute(&format!("DROP TRIGGER IF EXISTS evident_capture ON {table}"))
                        .await?;
                }
            }
            transaction.batch_execute("DROP SCHEMA evident_capture CASCADE").await?;
            transaction.commit().await?;
            Ok(true)
        })
    }

    /// Takes the drain lock and answers the install id.
    pub(crate) fn begin_drain(&mut self) -> Result<String> {
        let Database { runtime, client } = self;
        runtime.block_on(async {
            let installed: bool =
                client.query_one("SELECT to_regnamespace('evident_capture') IS NOT NULL", &[]).await?.get(0);
            if !installed {
                return Err(Error::Usage {
                    flag: "--database-url".into(),
                    reason: "capture is not installed in this database; name the tables with --table".into(),
                });
            }
            let locked: bool = client.query_one(sql::DRAIN_LOCK, &[]).await?.get(0);
            if !locked {
                return Err(Error::Busy);
            }
            Ok(client.query_one("SELECT install_id FROM evident_capture.settings", &[]).await?.get(0))
        })
    }

    pub(crate) fn read_outbox(&mut self, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = self.runtime.block_on(self.client.query(sql::READ_OUTBOX, &[&limit]))?;
        let json = |text: Option<&str>| -> Result<Option<serde_json::Value>> {
            text.map(|text| serde_json::from_str(text).map_err(|err| Error::Database(err.to_string())))
                .transpose()
        };
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    id: row.get(0),
                    table_name: row.get(1),
                    op: row.get(2),
                    row_id: row.get(3),
                    subject: row.get(4),
                    before: json(row.get(5))?,
                    after: json(row.get(6))?,
                    changed: row.get(7),
                    actor: row.get(8),
                    reason: row.get(9),
                    db_user: row.get(10),
                    txid: row.get(11),
                    at: row.get(12),
                    database: row.get(13),
                })
            })
            .collect()
    }

    pub(crate) fn personal_columns(&mut self) -> Result<PersonalColumns> {
        let statement = "SELECT table_name, personal FROM evident_capture.tables";
        let rows = self.runtime.block_on(self.client.query(statement, &[]))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Deletes acknowledged rows and moves refused ones to the dead letters, in one transaction.
    pub(crate) fn settle(&mut self, acknowledged: &[i64], dead: &[DeadLetter]) -> Result<()> {
        let Database { runtime, client } = self;
        runtime.block_on(async {
            let transaction = client.transaction().await?;
            transaction.execute("DELETE FROM evident_capture.outbox WHERE id = ANY($1)", &[&acknowledged]).await?;
            for letter in dead {
                let status = serde_json::to_value(letter.status).expect("a status serializes");
                let errors = serde_json::to_string(&letter.errors).expect("errors serialize");
                transaction
                    .execute(
                        "INSERT INTO evident_capture.dead_letter (outbox_id, event, status, errors)
                         VALUES ($1, $2::text::jsonb, $3, $4::text::jsonb) ON CONFLICT (outbox_id) DO NOTHING",
                        &[&letter.outbox_id, &letter.event.to_string(), &status.as_str().unwrap_or_default(), &errors],
                    )
                    .await?;
                transaction.execute("DELETE FROM evident_capture.outbox WHERE id = $1", &[&letter.outbox_id]).await?;
            }
            transaction.commit().await?;
            Ok(())
        })
    }
}

/// Checks one table and puts the trigger on it.
async fn install_table(transaction: &Transaction<'_>, spec: &TableSpec) -> Result<()> {
    let table = identifier(&spec.name);
    let usage = |reason: String| Error::Usage { flag: format!("--table {}", spec.name), reason };
    let exists: bool = transaction.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await?.get(0);
    if !exists {
        return Err(usage("no such table (or this role may not see it)".into()));
    }
    let columns: Vec<String> = transaction
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let keys: Vec<String> = transaction
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&table],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if keys.is_empty() {
        return Err(usage("the table has no primary key; capture names the changed row by it".into()));
    }
    let named = spec.subject_column.iter().chain(&spec.personal).chain(&spec.excluded).chain(&spec.hashed);
    if let Some(missing) = named.into_iter().find(|column| !columns.contains(column)) {
        return Err(usage(format!("no column {missing:?} in this table")));
    }
    let arguments = [
        spec.subject_column.clone().unwrap_or_default(),
        keys.join(","),
        spec.excluded.join(","),
        spec.hashed.join(","),
    ]
    .iter()
    .map(|argument| literal(argument))
    .collect::<Vec<_>>()
    .join(", ");
    transaction
        .batch_execute(&format!(
            "DROP TRIGGER IF EXISTS evident_capture ON {table};
             CREATE TRIGGER evident_capture AFTER INSERT OR UPDATE OR DELETE ON {table}
             FOR EACH ROW EXECUTE FUNCTION evident_capture.record_change({arguments})"
        ))
        .await?;
    transaction
        .execute(
            "INSERT INTO evident_capture.tables (table_name, subject_column, personal, excluded, hashed)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (table_name) DO UPDATE SET subject_column = $2,
             personal = $3, excluded = $4, hashed = $5",
            &[&spec.name, &spec.subject_column, &spec.personal, &spec.excluded, &spec.hashed],
        )
        .await?;
    Ok(())
}
