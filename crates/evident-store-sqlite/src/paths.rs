//! Insight's path table in the index file (`evident_core::insight::paths`): per (tenant,
//! customer, UTC month) the compact pairs in `ix.insight_paths`, in chunks of at most [`CHUNK`]
//! pairs in time order, kinds numbered per tenant in `ix.insight_kinds`, customers as ids of
//! `ix.insight_names` (the pseudonymous subject ids the rollups name too). Written by the indexer
//! in the transaction that moves `ix.pathed`: with the search rows and rollups when the table is
//! level with them, alone while it is built from the stored events of an index file from before
//! it (`index.rs`).
//!
//! Why chunks: a fold adds a customer's new pairs to the month's last chunk, so its cost follows
//! the pairs it adds. With one row per month, every fold read, decoded, sorted and wrote each
//! touched customer's whole month again: at 10,000,000 events of `evident hammer` (1,000 per
//! customer and month) that was 20 µs of the indexer's 72 µs per entry, against 2 µs on an empty
//! store (`bench/README.md`, fifth session).

use std::collections::HashMap;

use evident_core::insight::paths::{PathFold, PathItem, PathRead, encode, merged};
use evident_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::rollup::Names;
use crate::storage;

/// The store's ids of a fold's kinds (new kinds numbered after the tenant's last).
fn kind_ids(tx: &Connection, tid: i64, fold: &PathFold) -> Result<Vec<u32>> {
    let mut known: HashMap<String, u32> = HashMap::new();
    {
        let mut statement =
            tx.prepare_cached("SELECT kind, id FROM ix.insight_kinds WHERE tid = ?1").map_err(storage)?;
        let rows = statement.query_map([tid], |row| Ok((row.get(0)?, row.get(1)?))).map_err(storage)?;
        for row in rows {
            let (kind, id) = row.map_err(storage)?;
            known.insert(kind, id);
        }
    }
    let mut next = known.values().max().map_or(1, |id| id + 1);
    let mut insert = tx
        .prepare_cached("INSERT INTO ix.insight_kinds (tid, id, kind) VALUES (?1, ?2, ?3)")
        .map_err(storage)?;
    let mut ids = Vec::with_capacity(fold.kinds.len());
    for kind in &fold.kinds {
        let text = kind.text();
        let id = match known.get(&text) {
            Some(id) => *id,
            None => {
                insert.execute(params![tid, next, text]).map_err(storage)?;
                next += 1;
                next - 1
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

/// Pairs per chunk of a customer's month: 128 pairs take about 512 bytes, which a page of the
/// table holds without an overflow page.
pub(crate) const CHUNK: usize = 128;

/// The path table as this build writes it; [`drop_old_form`] replaces any other.
pub(crate) const TABLE: &str = "CREATE TABLE IF NOT EXISTS ix.insight_paths (
    tid INTEGER NOT NULL, customer INTEGER NOT NULL, month INTEGER NOT NULL, chunk INTEGER NOT NULL,
    pairs BLOB NOT NULL,
    PRIMARY KEY (tid, customer, month, chunk)
) WITHOUT ROWID";

/// Adds a fold of `tid`'s entries to its rows, inside the caller's transaction: per customer and
/// month touched, the last chunk is read, the new pairs merged into it in time order, and it is
/// written back (with new chunks after it once it holds [`CHUNK`] pairs). Pairs older than those
/// of earlier chunks (events arriving out of time order, as from producers whose clocks differ)
/// stay in the last chunk: chunks may overlap in time, and a reader puts a customer's pairs in
/// time order ([`evident_core::insight::paths::Customers`]).
pub(crate) fn write(tx: &Connection, tid: i64, fold: &PathFold) -> Result<()> {
    if fold.is_empty() {
        return Ok(());
    }
    let ids = kind_ids(tx, tid, fold)?;
    let mut names = Names::new(tx, tid);
    let mut last = tx
        .prepare_cached(
            "SELECT chunk, pairs FROM ix.insight_paths WHERE tid = ?1 AND customer = ?2 AND month = ?3
             ORDER BY chunk DESC LIMIT 1",
        )
        .map_err(storage)?;
    let mut put = tx
        .prepare_cached(
            "INSERT INTO ix.insight_paths (tid, customer, month, chunk, pairs) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tid, customer, month, chunk) DO UPDATE SET pairs = excluded.pairs",
        )
        .map_err(storage)?;
    // Rows in key order: each page of a big table is read and written once (see `index.rs`).
    let mut rows = Vec::with_capacity(fold.rows.len());
    for (subject, month, pairs) in fold.rows_with_ids(&ids) {
        rows.push((names.id(Some(subject))?, month, pairs));
    }
    rows.sort_unstable_by_key(|(customer, month, _)| (*customer, *month));
    for (customer, month, pairs) in rows {
        let stored: Option<(i64, Vec<u8>)> = last
            .query_row(params![tid, customer, month], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(storage)?;
        let (chunk, bytes) = stored.unwrap_or_default();
        for (n, piece) in merged(month, &bytes, &pairs).chunks(CHUNK).enumerate() {
            put.execute(params![tid, customer, month, chunk + n as i64, encode(month, piece)])
                .map_err(storage)?;
        }
    }
    Ok(())
}

/// A path table from before the chunks (one row per customer and month) dropped with the kinds
/// and every tenant's `ix.pathed`, and made again in chunks, in one transaction, so that the
/// indexer builds it again from the stored events (as for an index file from before the path
/// table); nothing for a table already in chunks. The form is read in the transaction that
/// converts it, so two processes opening the file at once convert it once.
pub(crate) fn drop_old_form(connection: &Connection) -> Result<()> {
    let tx = connection.unchecked_transaction().map_err(storage)?;
    if crate::index::table_sql(&tx, "insight_paths")?.is_some_and(|sql| !sql.contains("chunk")) {
        tx.execute_batch(&format!(
            "DROP TABLE ix.insight_paths; DELETE FROM ix.insight_kinds; DELETE FROM ix.pathed; {TABLE};"
        ))
        .map_err(|err| Error::Unavailable(format!("cannot convert the path table to chunks: {err}")))?;
    }
    tx.commit().map_err(storage)
}

/// Answers `read` in the caller's read transaction: the tenant's kinds, then its rows in
/// (customer, month) order, one at a time.
pub(crate) fn read(
    tx: &Connection,
    tid: i64,
    read: &PathRead,
    each: &mut dyn FnMut(PathItem<'_>),
) -> rusqlite::Result<()> {
    let mut kinds = tx.prepare_cached("SELECT id, kind FROM ix.insight_kinds WHERE tid = ?1")?;
    let mut rows = kinds.query([tid])?;
    while let Some(row) = rows.next()? {
        each(PathItem::Kind { id: row.get(0)?, text: row.get_ref(1)?.as_str()? });
    }
    let mut paths = tx.prepare_cached(
        "SELECT customer, month, pairs FROM ix.insight_paths
         WHERE tid = ?1 AND month >= ?2 AND month < ?3 ORDER BY customer, month, chunk",
    )?;
    let mut rows = paths.query(params![tid, read.months.start, read.months.end])?;
    while let Some(row) = rows.next()? {
        each(PathItem::Row { customer: row.get(0)?, month: row.get(1)?, pairs: row.get_ref(2)?.as_blob()? });
    }
    Ok(())
}
