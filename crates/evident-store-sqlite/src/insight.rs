//! The scans of customer insight (`evident_core::insight`): events in (time, index) order over the
//! index file's `search_time`, or in (subject, time, index) order over `search_subject` (each of
//! its parts in that order, merged: `parts.rs`), a page at a time after the last row of the
//! previous page. Like searches, a scan first waits for the
//! indexer to cover everything committed before it. Rollups (`rollup.rs`) are read the same way,
//! in one read transaction, and so is the path table (`paths.rs`), after its own watermark.

use evident_core::Result;
use evident_core::insight::paths::{PathItem, PathRead};
use evident_core::insight::rollup::{RollupItem, RollupRead, decode_ids};
use evident_core::insight::{InsightIndex, Row, Scan};
use evident_core::store::TenantId;
use evident_wire::Micros;
use rusqlite::types::Value as V;
use rusqlite::{params, params_from_iter};

use super::{SqliteStore, TENANT_SHIFT, rid};

/// The SQL of one page and its parameters; in subject order, of one part of the subject index
/// (parts of 2^`shift` entries), which the caller binds after them.
fn page_sql(tid: i64, scan: &Scan, after: Option<&Row>, limit: usize, shift: u32) -> (String, Vec<V>) {
    let mut values = vec![V::Integer(tid), V::Integer(scan.to.0)];
    let mut conditions = vec!["s.tid = ?1".to_owned(), "s.time < ?2".to_owned()];
    if let Some(from) = scan.from {
        values.push(V::Integer(from.0));
        conditions.push(format!("s.time >= ?{}", values.len()));
    }
    if let Some(types) = &scan.types {
        let first = values.len() + 1;
        values.extend(types.iter().map(|t| V::Text(t.clone())));
        let marks: Vec<String> = (first..=values.len()).map(|n| format!("?{n}")).collect();
        conditions.push(format!("s.type IN ({})", marks.join(", ")));
    }
    if scan.by_subject {
        conditions.push("s.subject IS NOT NULL".to_owned());
    }
    if let Some(row) = after {
        let n = values.len() + 1;
        if scan.by_subject {
            values.push(V::Text(row.subject.clone().unwrap_or_default()));
            values.extend([V::Integer(row.time.0), V::Integer(rid(tid, row.index))]);
            conditions.push(format!("(s.subject, s.time, s.rid) > (?{n}, ?{}, ?{})", n + 1, n + 2));
        } else {
            values.extend([V::Integer(row.time.0), V::Integer(rid(tid, row.index))]);
            conditions.push(format!("(s.time, s.rid) > (?{n}, ?{})", n + 1));
        }
    }
    values.push(V::Integer(limit as i64));
    let limit = values.len();
    let (entry, join) = match scan.with_entry {
        true => ("e.entry", " JOIN events e ON e.rid = s.rid"),
        false => ("NULL", ""),
    };
    let (order, index) = match scan.by_subject {
        true => {
            // The expression of the subject index (`parts.rs`), so that SQLite walks it.
            conditions.push(format!("(s.rid >> {shift}) = ?{}", limit + 1));
            ("s.subject, s.time, s.rid", " INDEXED BY search_subject")
        }
        false => ("s.time, s.rid", ""),
    };
    let sql = format!(
        "SELECT s.rid, s.time, s.type, s.action, s.outcome, s.source, s.actor, s.subject, {entry} \
         FROM ix.event_search s{index}{join} WHERE {} ORDER BY {order} LIMIT ?{limit}",
        conditions.join(" AND "),
    );
    (sql, values)
}

/// An insight row from the columns [`page_sql`] selects.
fn row_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        index: (row.get::<_, i64>(0)? & ((1i64 << TENANT_SHIFT) - 1)) as u64,
        time: Micros(row.get(1)?),
        event_type: row.get(2)?,
        action: row.get(3)?,
        outcome: row.get(4)?,
        source: row.get(5)?,
        actor: row.get(6)?,
        subject: row.get(7)?,
        entry: row.get(8)?,
    })
}

impl InsightIndex for SqliteStore {
    fn insight_rows(
        &self,
        tenant: &TenantId,
        scan: &Scan,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let tid = self.tid(tenant)?;
        // Everything committed before the scan's first page is in the index file first.
        if after.is_none() {
            self.indexer.wait_for(tid)?;
        }
        let shift = self.indexer.shift;
        let (sql, values) = page_sql(tid, scan, after, limit, shift);
        self.read(|c| {
            if !scan.by_subject {
                let mut statement = c.prepare_cached(&sql)?;
                return statement.query_map(params_from_iter(values.iter()), row_of)?.collect();
            }
            // One walk per part in one snapshot, merged in (subject, time, index) order.
            let tx = c.unchecked_transaction()?;
            let parts = crate::parts::of_log(tid, crate::parts::indexed(&tx, tid)?, shift);
            let mut statements =
                parts.clone().map(|_| tx.prepare(&sql)).collect::<rusqlite::Result<Vec<_>>>()?;
            let walks = statements
                .iter_mut()
                .zip(parts)
                .map(|(statement, part)| {
                    statement.query_map(params_from_iter(values.iter().chain([&V::Integer(part)])), row_of)
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            crate::parts::merged(walks, limit, |row| (row.subject.clone(), row.time, row.index))
        })
    }

    fn rollups(
        &self,
        tenant: &TenantId,
        read: &RollupRead,
        each: &mut dyn FnMut(RollupItem<'_>),
    ) -> Result<bool> {
        if !self.indexer.rollups {
            return Ok(false);
        }
        let tid = self.tid(tenant)?;
        // The rollups move with the index's watermark, in its transactions, unless they are
        // being folded again from the events.
        self.indexer.wait_for(tid)?;
        if !self.indexer.wait_for_rollups(tid) {
            return Ok(false);
        }
        // A damaged id set is answered as the core's error, after the read transaction.
        self.read(|c| -> rusqlite::Result<Result<bool>> {
            let tx = c.unchecked_transaction()?;
            let dim = read.dim as i64;
            let value = "(?3 IS NULL OR value = (SELECT id FROM ix.insight_names WHERE tid = ?1 AND name = ?3))";
            if let Some(hours) = &read.counts {
                let mut statement = tx.prepare_cached(&format!(
                    "SELECT n.name, c.hour, c.events, c.failures FROM ix.insight_counts c
                     LEFT JOIN ix.insight_names n ON n.id = c.value
                     WHERE c.tid = ?1 AND c.dim = ?2 AND {value} AND c.hour >= ?4 AND c.hour < ?5"
                ))?;
                let mut rows = statement.query(params![tid, dim, read.only, hours.start, hours.end])?;
                while let Some(row) = rows.next()? {
                    let (events, failures): (i64, i64) = (row.get(2)?, row.get(3)?);
                    let (value, hour) = (row.get_ref(0)?.as_str_or_null()?, row.get(1)?);
                    each(RollupItem::Count { value, hour, events: events as u64, failures: failures as u64 });
                }
            }
            let (start, end) = (read.seen_hours.start, read.seen_hours.end);
            for who in &read.seen {
                let mut statement = tx.prepare_cached(&format!(
                    "SELECT n.name, h.hour, h.ids FROM ix.insight_hour_ids h LEFT JOIN ix.insight_names n ON n.id = h.value
                     WHERE h.tid = ?1 AND h.dim = ?2 AND {value} AND h.who = ?4 AND h.hour >= ?5 AND h.hour < ?6"
                ))?;
                let mut rows = statement.query(params![tid, dim, read.only, *who as i64, start, end])?;
                while let Some(row) = rows.next()? {
                    let (value, hour) = (row.get_ref(0)?.as_str_or_null()?, row.get(1)?);
                    match decode_ids(row.get_ref(2)?.as_blob()?) {
                        Ok(ids) => each(RollupItem::Hour { who: *who, value, hour, ids: &ids }),
                        Err(err) => return Ok(Err(err)),
                    }
                }
            }
            Ok(Ok(true))
        })?
    }

    fn paths(&self, tenant: &TenantId, read: &PathRead, each: &mut dyn FnMut(PathItem<'_>)) -> Result<bool> {
        if !self.indexer.rollups {
            return Ok(false);
        }
        let tid = self.tid(tenant)?;
        self.indexer.wait_for_paths(tid)?;
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            crate::paths::read(&tx, tid, read, each)?;
            Ok(true)
        })
    }
}
