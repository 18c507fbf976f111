//! Insight's hourly rollups in the index file (`evident_core::insight::rollup`): a fold of
//! committed entries added to `ix.insight_counts` and `ix.insight_seen` by the indexer, in the
//! transaction that moves its watermarks. Values, subjects and actors are stored as integer ids
//! of `ix.insight_names` (0: no value); subjects are the pseudonymous ids the search index holds
//! too, and nothing of an event's personal part is folded.

use std::collections::HashMap;

use evident_core::Result;
use evident_core::insight::rollup::{Fold, merge_hours};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::storage;

/// Name ids of one transaction (new names are inserted; ids are never reused).
pub(crate) struct Names<'c> {
    tx: &'c Connection,
    tid: i64,
    ids: HashMap<String, i64>,
}

impl<'c> Names<'c> {
    pub(crate) fn new(tx: &'c Connection, tid: i64) -> Names<'c> {
        Names { tx, tid, ids: HashMap::new() }
    }

    pub(crate) fn id(&mut self, name: Option<&str>) -> Result<i64> {
        let Some(name) = name else { return Ok(0) };
        if let Some(id) = self.ids.get(name) {
            return Ok(*id);
        }
        self.tx
            .prepare_cached("INSERT OR IGNORE INTO ix.insight_names (tid, name) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![self.tid, name]))
            .map_err(storage)?;
        let id: i64 = self
            .tx
            .prepare_cached("SELECT id FROM ix.insight_names WHERE tid = ?1 AND name = ?2")
            .and_then(|mut s| s.query_row(params![self.tid, name], |row| row.get(0)))
            .map_err(storage)?;
        self.ids.insert(name.to_owned(), id);
        Ok(id)
    }
}

/// Adds a fold of `tid`'s entries to the rollups, inside the caller's transaction.
pub(crate) fn write(tx: &Connection, tid: i64, fold: &Fold) -> Result<()> {
    let mut names = Names::new(tx, tid);
    let mut count = tx
        .prepare_cached(
            "INSERT INTO ix.insight_counts (tid, dim, hour, value, events, failures)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tid, dim, hour, value)
             DO UPDATE SET events = events + excluded.events, failures = failures + excluded.failures",
        )
        .map_err(storage)?;
    // Rows in key order: each page of a big table is read and written once (see `index.rs`).
    let mut counts = Vec::with_capacity(fold.counts.len());
    for ((dim, value, hour), (events, failures)) in &fold.counts {
        counts.push((*dim as i64, *hour, names.id(value.as_deref())?, *events as i64, *failures as i64));
    }
    counts.sort_unstable();
    for (dim, hour, value, events, failures) in counts {
        count.execute(params![tid, dim, hour, value, events, failures]).map_err(storage)?;
    }
    let mut stored = tx
        .prepare_cached(
            "SELECT hours FROM ix.insight_seen WHERE tid = ?1 AND dim = ?2 AND who = ?3 AND value = ?4 AND id = ?5",
        )
        .map_err(storage)?;
    let mut seen = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO ix.insight_seen (tid, dim, who, value, id, hours) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(storage)?;
    let mut rows = Vec::with_capacity(fold.seen.len());
    for ((dim, value, who, id), hours) in &fold.seen {
        rows.push(((*dim as i64, *who as i64, names.id(value.as_deref())?, names.id(Some(id))?), hours));
    }
    rows.sort_unstable_by_key(|(key, _)| *key);
    for (key, hours) in rows {
        let old: Option<Vec<u8>> = stored
            .query_row(params![tid, key.0, key.1, key.2, key.3], |row| row.get(0))
            .optional()
            .map_err(storage)?;
        let hours = merge_hours(old.as_deref().unwrap_or_default(), hours);
        seen.execute(params![tid, key.0, key.1, key.2, key.3, hours]).map_err(storage)?;
    }
    Ok(())
}
