//! Outbound streams and their cursors (`StreamStore`): the `streams` table.

use evident_core::store::{StreamRow, StreamStore, TenantId};
use evident_core::{Error, Result};
use rusqlite::{ErrorCode, params};

use crate::{SqliteStore, storage};

/// A `streams` row: id, tenant, spec, cursor, status.
type Row = (String, String, Vec<u8>, i64, Vec<u8>);

fn stream_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

impl SqliteStore {
    fn write_stream(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        let writer = self.writer.lock().expect("writer lock");
        writer.execute(sql, params).map_err(storage)
    }
}

impl StreamStore for SqliteStore {
    fn create_stream(&self, row: &StreamRow) -> Result<()> {
        let writer = self.writer.lock().expect("writer lock");
        let inserted = writer.execute(
            "INSERT INTO streams (id, tenant, spec, cursor, status) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.tenant.as_str(), row.spec, row.cursor as i64, row.status],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(err, _)) if err.code == ErrorCode::ConstraintViolation => {
                Err(Error::Conflict(format!("a stream {} exists", row.id)))
            }
            Err(err) => Err(storage(err)),
        }
    }

    fn streams(&self, tenant: Option<&TenantId>) -> Result<Vec<StreamRow>> {
        let rows = self.read(|c| {
            let mut statement = c.prepare_cached(
                "SELECT id, tenant, spec, cursor, status FROM streams
                 WHERE ?1 IS NULL OR tenant = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([tenant.map(TenantId::as_str)], stream_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(id, tenant, spec, cursor, status)| {
                Ok(StreamRow { id, tenant: TenantId::new(&tenant)?, spec, cursor: cursor as u64, status })
            })
            .collect()
    }

    fn delete_stream(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let deleted = self.write_stream(
            "DELETE FROM streams WHERE tenant = ?1 AND id = ?2",
            params![tenant.as_str(), id],
        )?;
        Ok(deleted > 0)
    }

    fn advance_stream(&self, tenant: &TenantId, id: &str, from: u64, to: u64, status: &[u8]) -> Result<bool> {
        let changed = self.write_stream(
            "UPDATE streams SET cursor = ?4, status = ?5 WHERE tenant = ?1 AND id = ?2 AND cursor = ?3",
            params![tenant.as_str(), id, from as i64, to as i64, status],
        )?;
        Ok(changed > 0)
    }

    fn position_stream(&self, tenant: &TenantId, id: &str, cursor: u64) -> Result<bool> {
        let changed = self.write_stream(
            "UPDATE streams SET cursor = ?3 WHERE tenant = ?1 AND id = ?2",
            params![tenant.as_str(), id, cursor as i64],
        )?;
        Ok(changed > 0)
    }
}
