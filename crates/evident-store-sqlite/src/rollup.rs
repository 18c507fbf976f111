//! Insight's hourly rollups in the index file (`evident_core::insight::rollup`): a fold of
//! committed entries added to `ix.insight_counts` and `ix.insight_hour_ids` by the indexer, in the
//! transaction that moves its watermarks. Values, subjects and actors are stored as integer ids
//! of `ix.insight_names` (0: no value); subjects are the pseudonymous ids the search index holds
//! too, and nothing of an event's personal part is folded.
//!
//! The seen facts are kept transposed, as PostgreSQL keeps them: per (dimension, who, value, UTC
//! hour) the set of the customers' (or actors') ids seen in it, so a fold writes a row per hour
//! it touched rather than one per customer (a fold of 20,000 events over 18,000 customers wrote
//! 126,000 rows of per-customer hours), and a question reads a row per hour. An index file that
//! still has the per-customer table (`insight_seen`) is folded again ([`drop_old_form`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use evident_core::Result;
use evident_core::insight::rollup::{Fold, decode_ids, encode_ids};
use roaring::RoaringTreemap;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::storage;

/// How many names the indexer thread keeps the ids of between its transactions (about 10 MiB).
const NAME_CACHE: usize = 131_072;

thread_local! {
    /// The ids of names this thread wrote or read, across transactions: a name's id never
    /// changes once its transaction committed. Only the indexer thread writes names, and it
    /// forgets them all when a transaction of its fails ([`forget_names`]), since the ids a
    /// rolled-back transaction took are given again to other names.
    static NAME_IDS: RefCell<NameIds> = RefCell::new(NameIds::default());
}

/// Cached name ids by tenant, looked up by borrowed names.
#[derive(Default)]
struct NameIds {
    tenants: HashMap<i64, HashMap<String, i64>>,
    len: usize,
}

/// Forgets every cached name id (after a failed transaction of the indexer).
pub(crate) fn forget_names() {
    NAME_IDS.with(|cache| *cache.borrow_mut() = NameIds::default());
}

/// Name ids for one transaction (new names are inserted; ids are never reused).
pub(crate) struct Names<'c> {
    tx: &'c Connection,
    tid: i64,
}

impl<'c> Names<'c> {
    pub(crate) fn new(tx: &'c Connection, tid: i64) -> Names<'c> {
        Names { tx, tid }
    }

    pub(crate) fn id(&mut self, name: Option<&str>) -> Result<i64> {
        let Some(name) = name else { return Ok(0) };
        let cached = NAME_IDS.with(|cache| cache.borrow().tenants.get(&self.tid)?.get(name).copied());
        if let Some(id) = cached {
            return Ok(id);
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
        NAME_IDS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len >= NAME_CACHE {
                *cache = NameIds::default();
            }
            cache.len += 1;
            cache.tenants.entry(self.tid).or_default().insert(name.to_owned(), id);
        });
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
    let mut hours: BTreeMap<(i64, i64, i64, i32), RoaringTreemap> = BTreeMap::new();
    for ((dim, value, who, name), seen) in &fold.seen {
        let (value, id) = (names.id(value.as_deref())?, names.id(Some(name))? as u64);
        for hour in seen {
            hours.entry((*dim as i64, *who as i64, value, *hour)).or_default().insert(id);
        }
    }
    let mut stored = tx
        .prepare_cached(
            "SELECT ids FROM ix.insight_hour_ids WHERE tid = ?1 AND dim = ?2 AND who = ?3 AND value = ?4 AND hour = ?5",
        )
        .map_err(storage)?;
    let mut put = tx
        .prepare_cached(
            "INSERT INTO ix.insight_hour_ids (tid, dim, who, value, hour, ids) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tid, dim, who, value, hour) DO UPDATE SET ids = excluded.ids",
        )
        .map_err(storage)?;
    for ((dim, who, value, hour), mut ids) in hours {
        let old: Option<Vec<u8>> = stored
            .query_row(params![tid, dim, who, value, hour], |row| row.get(0))
            .optional()
            .map_err(storage)?;
        if let Some(old) = old {
            let old = decode_ids(&old)?;
            // Customers seen again in an hour they were seen in already: nothing to write.
            if ids.is_subset(&old) {
                continue;
            }
            ids |= old;
        }
        put.execute(params![tid, dim, who, value, hour, encode_ids(&ids)]).map_err(storage)?;
    }
    Ok(())
}

/// Drops the per-customer seen table of an index file from before the hour sets, with every
/// tenant's rollup watermark, so that the indexer folds the rollups again from nothing; nothing
/// when the file has none.
pub(crate) fn drop_old_form(connection: &Connection) -> Result<()> {
    if crate::index::table_sql(connection, "insight_seen")?.is_some() {
        connection
            .execute_batch("BEGIN; DROP TABLE ix.insight_seen; DELETE FROM ix.rolled; COMMIT;")
            .map_err(storage)?;
    }
    Ok(())
}
