//! Outbound streams and their cursors (`StreamStore`): the `streams` table (migration 0003).

use evident_core::store::{StreamRow, StreamStore, TenantId};
use evident_core::{Error, Result};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::PgStore;
use crate::db::{Db, failed};

impl Db {
    async fn stream_write(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        client.execute(sql, params).await.map_err(|err| match err.code() {
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
                Error::Conflict("the stream id is taken".into())
            }
            _ => failed(err),
        })
    }

    async fn streams(&self, tenant: Option<String>) -> Result<Vec<StreamRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, tenant, spec, cursor, status FROM streams
                 WHERE $1::text IS NULL OR tenant = $1 ORDER BY id",
                &[&tenant],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                Ok(StreamRow {
                    id: row.get(0),
                    tenant: TenantId::new(row.get::<_, &str>(1))?,
                    spec: row.get(2),
                    cursor: row.get::<_, i64>(3) as u64,
                    status: row.get(4),
                })
            })
            .collect()
    }
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl StreamStore for PgStore {
    fn create_stream(&self, row: &StreamRow) -> Result<()> {
        let row = row.clone();
        self.run(move |db| async move {
            let sql = "INSERT INTO streams (id, tenant, spec, cursor, status) VALUES ($1, $2, $3, $4, $5)";
            db.stream_write(sql, &[&row.id, &row.tenant.as_str(), &row.spec, &int(row.cursor), &row.status])
                .await
                .map(|_| ())
        })
    }

    fn streams(&self, tenant: Option<&TenantId>) -> Result<Vec<StreamRow>> {
        let tenant = tenant.map(|t| t.as_str().to_owned());
        self.run(move |db| async move { db.streams(tenant).await })
    }

    fn delete_stream(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.run(move |db| async move {
            let sql = "DELETE FROM streams WHERE tenant = $1 AND id = $2";
            Ok(db.stream_write(sql, &[&tenant, &id]).await? > 0)
        })
    }

    fn advance_stream(&self, tenant: &TenantId, id: &str, from: u64, to: u64, status: &[u8]) -> Result<bool> {
        let (tenant, id, status) = (tenant.as_str().to_owned(), id.to_owned(), status.to_vec());
        self.run(move |db| async move {
            let sql =
                "UPDATE streams SET cursor = $4, status = $5 WHERE tenant = $1 AND id = $2 AND cursor = $3";
            Ok(db.stream_write(sql, &[&tenant, &id, &int(from), &int(to), &status]).await? > 0)
        })
    }

    fn position_stream(&self, tenant: &TenantId, id: &str, cursor: u64) -> Result<bool> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.run(move |db| async move {
            let sql = "UPDATE streams SET cursor = $3 WHERE tenant = $1 AND id = $2";
            Ok(db.stream_write(sql, &[&tenant, &id, &int(cursor)]).await? > 0)
        })
    }
}
