//! Insight's path table in the index file (`evident_core::insight::paths`): per (tenant,
//! customer, UTC month) a row of compact pairs in `ix.insight_paths`, kinds numbered per tenant in
//! `ix.insight_kinds`, customers as ids of `ix.insight_names` (the pseudonymous subject ids the
//! rollups name too). Written by the indexer in the transaction that moves `ix.pathed`: with the
//! search rows and rollups when the table is level with them, alone while it is built from the
//! stored events of an index file from before it (`index.rs`).

use std::collections::HashMap;

use evident_core::Result;
use evident_core::insight::paths::{PathFold, PathItem, PathRead, merge};
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

/// Merges a fold of `tid`'s entries into its rows, inside the caller's transaction: each row
/// touched is read and written once.
pub(crate) fn write(tx: &Connection, tid: i64, fold: &PathFold) -> Result<()> {
    if fold.is_empty() {
        return Ok(());
    }
    let ids = kind_ids(tx, tid, fold)?;
    let mut names = Names::new(tx, tid);
    let mut stored = tx
        .prepare_cached("SELECT pairs FROM ix.insight_paths WHERE tid = ?1 AND customer = ?2 AND month = ?3")
        .map_err(storage)?;
    let mut put = tx
        .prepare_cached(
            "INSERT INTO ix.insight_paths (tid, customer, month, pairs) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tid, customer, month) DO UPDATE SET pairs = excluded.pairs",
        )
        .map_err(storage)?;
    // Rows in key order: each page of a big table is read and written once (see `index.rs`).
    let mut rows = Vec::with_capacity(fold.rows.len());
    for (subject, month, pairs) in fold.rows_with_ids(&ids) {
        rows.push((names.id(Some(subject))?, month, pairs));
    }
    rows.sort_unstable_by_key(|(customer, month, _)| (*customer, *month));
    for (customer, month, pairs) in rows {
        let old: Option<Vec<u8>> =
            stored.query_row(params![tid, customer, month], |row| row.get(0)).optional().map_err(storage)?;
        let merged = merge(month, old.as_deref().unwrap_or_default(), &pairs);
        put.execute(params![tid, customer, month, merged]).map_err(storage)?;
    }
    Ok(())
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
         WHERE tid = ?1 AND month >= ?2 AND month < ?3 ORDER BY customer, month",
    )?;
    let mut rows = paths.query(params![tid, read.months.start, read.months.end])?;
    while let Some(row) = rows.next()? {
        each(PathItem::Row { customer: row.get(0)?, month: row.get(1)?, pairs: row.get_ref(2)?.as_blob()? });
    }
    Ok(())
}
