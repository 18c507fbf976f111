//! The index file's *parts*: its two indexes with a key per customer, the targets
//! (`ix.event_targets`) and the subject index (`ix.search_subject`), begin their keys with the
//! entry's part, `rid >> shift`: 2^shift consecutive entries of one log (2^18, 262,144, unless a
//! test asks for fewer when the file is made; the file keeps its shift in `ix.parts`).
//!
//! Why: an index round writes every page its rows land in. Keyed by customer alone, a round's
//! rows land on as many pages as it has customers and search tokens, all over an index that
//! grows with the store: at 2,000,000 entries a round of 11,000 entries wrote 40,000 pages (3.6
//! per entry), and the indexer, which commits wait for past the lag bound, ran at half its
//! empty-store pace. With the part first, a round's rows land in the latest part's subtree, whose
//! size does not grow with the store (the same round wrote about 7,000 pages).
//!
//! The cost is on reads by customer or target: they walk each part of the log, in the order of
//! the page asked for, each cut at the page so far ([`walk`]), and skip a part without a seek
//! when its events' times (`ix.part_times`, [`Times`]) cannot better the page; insight's scans in
//! customer order merge the parts' walks ([`merged`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;

use evident_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::{TENANT_SHIFT, rid, storage};

/// Entries per part of a new index file, as a power of two.
pub const DEFAULT_SHIFT: u32 = 18;

/// The targets table: one row per (event, target), search tokens included.
const TARGETS: &str = "(
    tid INTEGER NOT NULL, part INTEGER NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL,
    time INTEGER NOT NULL, rid INTEGER NOT NULL,
    PRIMARY KEY (tid, part, type, id, time, rid)
) WITHOUT ROWID";

/// The subject index of `event_search` for parts of 2^`shift` entries. Queries name its part
/// as `(s.rid >> shift)`, the same expression, so that SQLite walks it.
fn subject_index(shift: u32) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS ix.search_subject ON event_search (tid, rid >> {shift}, subject, time) \
         WHERE subject IS NOT NULL"
    )
}

/// Brings the index file attached to `connection` as `ix` to its parted form and returns its
/// shift: a new file gets `shift`; a file from before the parts has its targets copied into
/// the parted table and its subject index made again, in one transaction (a one-time cost on
/// upgrade, bulk and in key order, not a rebuild of the index); a parted file keeps its own.
/// The form is read in the transaction that converts it, so of two processes opening a file from
/// before the parts at once, the second either sees it converted or fails to write over the
/// first's conversion (busy), never converts it twice.
pub(crate) fn settle(connection: &Connection, shift: u32) -> Result<u32> {
    let tx = connection.unchecked_transaction().map_err(storage)?;
    let stored: Option<i64> =
        tx.query_row("SELECT shift FROM ix.parts", [], |row| row.get(0)).optional().map_err(storage)?;
    let shift = match stored {
        Some(stored) if (1..=i64::from(TENANT_SHIFT)).contains(&stored) => stored as u32,
        Some(stored) => {
            return Err(Error::Integrity(format!(
                "the index file's parts hold 2^{stored} entries, which no build writes; delete the index \
                 file (`<store>-index`) to have it built again"
            )));
        }
        None => shift,
    };
    let exists = |kind: &str, name: &str| -> Result<Option<String>> {
        tx.query_row("SELECT sql FROM ix.sqlite_master WHERE type = ?1 AND name = ?2", [kind, name], |row| {
            row.get(0)
        })
        .optional()
        .map_err(storage)
    };
    let targets = exists("table", "event_targets")?;
    let parted_targets = targets.as_deref().is_some_and(|sql| sql.contains("part INTEGER"));
    let subject = exists("index", "search_subject")?;
    let parted_subject = subject.as_deref().is_some_and(|sql| sql.contains(">>"));
    if stored.is_some() && parted_targets && parted_subject {
        return Ok(shift);
    }
    if !parted_targets {
        tx.execute_batch(&format!("CREATE TABLE ix.event_targets_parted {TARGETS};")).map_err(storage)?;
        if targets.is_some() {
            tx.execute_batch(&format!(
                "INSERT INTO ix.event_targets_parted (tid, part, type, id, time, rid)
                 SELECT tid, rid >> {shift}, type, id, time, rid FROM ix.event_targets
                 ORDER BY tid, rid >> {shift}, type, id, time, rid;
                 DROP TABLE ix.event_targets;"
            ))
            .map_err(storage)?;
        }
        tx.execute_batch("ALTER TABLE ix.event_targets_parted RENAME TO event_targets;").map_err(storage)?;
    }
    if !parted_subject {
        tx.execute_batch(&format!("DROP INDEX IF EXISTS ix.search_subject; {};", subject_index(shift)))
            .map_err(storage)?;
        // The parts' times, of the rows indexed so far (none in a new file).
        tx.execute_batch(&format!(
            "INSERT OR REPLACE INTO ix.part_times (tid, part, first, last)
             SELECT tid, rid >> {shift}, min(time), max(time) FROM ix.event_search GROUP BY tid, rid >> {shift};"
        ))
        .map_err(storage)?;
    }
    if stored.is_none() {
        tx.execute("INSERT INTO ix.parts (shift) VALUES (?1)", [shift]).map_err(storage)?;
    }
    tx.commit().map_err(storage)?;
    Ok(shift)
}

/// The parts that hold the first `entries` entries of `tid`'s log, in order.
pub(crate) fn of_log(tid: i64, entries: u64, shift: u32) -> Range<i64> {
    let first = rid(tid, 0) >> shift;
    match entries.checked_sub(1) {
        Some(last) => first..(rid(tid, last) >> shift) + 1,
        None => first..first,
    }
}

/// Entries of `tid` the index file holds (its watermark), read in the caller's transaction.
pub(crate) fn indexed(connection: &Connection, tid: i64) -> rusqlite::Result<u64> {
    let size: Option<i64> = connection
        .prepare_cached("SELECT size FROM ix.indexed WHERE tid = ?1")?
        .query_row([tid], |row| row.get(0))
        .optional()?;
    Ok(size.unwrap_or(0) as u64)
}

/// The earliest and latest event time of each part a round indexed, widened into
/// `ix.part_times` (a part's times only ever widen: a bound that is too wide costs a seek, never
/// a missed row).
#[derive(Default)]
pub(crate) struct Times(HashMap<i64, (i64, i64)>);

impl Times {
    pub(crate) fn note(&mut self, part: i64, time: i64) {
        let bounds = self.0.entry(part).or_insert((time, time));
        *bounds = (bounds.0.min(time), bounds.1.max(time));
    }

    pub(crate) fn write(&self, tx: &Connection, tid: i64) -> Result<()> {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO ix.part_times (tid, part, first, last) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tid, part) DO UPDATE SET first = min(first, excluded.first), last = max(last, excluded.last)",
            )
            .map_err(storage)?;
        for (part, (first, last)) in &self.0 {
            upsert.execute(params![tid, part, first, last]).map_err(storage)?;
        }
        Ok(())
    }

    /// The times of `tid`'s parts, read in the caller's transaction.
    pub(crate) fn of_log(connection: &Connection, tid: i64) -> rusqlite::Result<Times> {
        let mut statement =
            connection.prepare_cached("SELECT part, first, last FROM ix.part_times WHERE tid = ?1")?;
        let rows = statement.query_map([tid], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))?;
        Ok(Times(rows.collect::<rusqlite::Result<_>>()?))
    }

    /// Whether `part` may hold an event at `time` or later (`later`), or at `time` or earlier:
    /// true for a part whose times are not known.
    pub(crate) fn may_reach(&self, part: i64, time: i64, later: bool) -> bool {
        self.0.get(&part).is_none_or(|&(first, last)| if later { last >= time } else { first <= time })
    }
}

/// The first `limit` keys of a page over several parts, each walk already in the page's order:
/// `walk_part(part, cut)` returns a part's first `limit` keys that come before `cut` (the page's
/// last key so far, once it holds `limit`), so a part that cannot better the page costs one seek.
/// `parts` come in the page's direction (newest first for a page of the newest), in which the
/// data mostly is, so later parts are mostly cut off at once.
pub(crate) fn walk<K: Ord + Copy>(
    parts: impl Iterator<Item = i64>,
    limit: usize,
    mut walk_part: impl FnMut(i64, Option<K>) -> rusqlite::Result<Vec<K>>,
) -> rusqlite::Result<Vec<K>> {
    let mut page: Vec<K> = Vec::new();
    for part in parts {
        let cut = (limit > 0 && page.len() >= limit).then(|| page[limit - 1]);
        page.extend(walk_part(part, cut)?);
        page.sort_unstable();
        page.truncate(limit);
    }
    Ok(page)
}

/// The first `limit` items of several streams each in order of `key`, merged in that order,
/// reading each stream only as far as the merge needs (one item beyond).
pub(crate) fn merged<T, K: Ord>(
    streams: Vec<impl Iterator<Item = rusqlite::Result<T>>>,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> rusqlite::Result<Vec<T>> {
    let mut streams = streams;
    let mut heads: Vec<Option<T>> = Vec::with_capacity(streams.len());
    let mut heap = BinaryHeap::new();
    for (n, stream) in streams.iter_mut().enumerate() {
        let head = stream.next().transpose()?;
        if let Some(item) = &head {
            heap.push(Reverse((key(item), n)));
        }
        heads.push(head);
    }
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(Reverse((_, n))) = heap.pop() else { break };
        let item = heads[n].take().expect("a stream in the heap has a head");
        if let Some(next) = streams[n].next().transpose()? {
            heap.push(Reverse((key(&next), n)));
            heads[n] = Some(next);
        }
        out.push(item);
    }
    Ok(out)
}

/// The part of `rid` in a file of 2^`shift`-entry parts, as the targets table keeps it.
pub(crate) fn of(rid: i64, shift: u32) -> i64 {
    rid >> shift
}

/// Checks that the targets table and the subject index are parted and read from by part.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_has_no_parts_until_it_has_entries() {
        assert!(of_log(1, 0, 2).is_empty());
        assert_eq!(of_log(1, 1, 2), (1 << 38)..(1 << 38) + 1);
        assert_eq!(of_log(1, 9, 2), (1 << 38)..(1 << 38) + 3);
        assert_eq!(of(rid(2, 5), 2), (2 << 38) + 1);
    }

    #[test]
    fn a_walk_cuts_each_part_at_the_page_so_far() {
        // Part p holds keys 10p..10p+9, walked newest first for the 3 greatest.
        let mut cuts = Vec::new();
        let page = walk((0..4).rev(), 3, |part, cut: Option<Reverse<i64>>| {
            cuts.push(cut);
            Ok((part * 10..part * 10 + 10)
                .rev()
                .map(Reverse)
                .filter(|k| cut.is_none_or(|c| *k < c))
                .take(3)
                .collect())
        })
        .unwrap();
        assert_eq!(page, [Reverse(39), Reverse(38), Reverse(37)]);
        assert_eq!(cuts, [None, Some(Reverse(37)), Some(Reverse(37)), Some(Reverse(37))]);
        let empty = walk(0..4, 0, |_, cut: Option<i64>| Ok(cut.into_iter().collect())).unwrap();
        assert!(empty.is_empty(), "a page of nothing walks without a cut");
    }

    /// A part is skipped only when none of its times can reach the page's last: one at the same
    /// time may still come before it (a greater rid, for a page of the newest).
    #[test]
    fn a_part_is_skipped_only_when_its_times_cannot_reach_the_cut() {
        let mut times = Times::default();
        for time in [20, 10, 30] {
            times.note(7, time);
        }
        assert_eq!(times.0[&7], (10, 30));
        assert!(times.may_reach(7, 30, true) && !times.may_reach(7, 31, true));
        assert!(times.may_reach(7, 10, false) && !times.may_reach(7, 9, false));
        assert!(times.may_reach(8, i64::MAX, true), "a part of unknown times is walked");
    }

    #[test]
    fn a_merge_reads_each_stream_only_as_far_as_it_needs() {
        let read = std::cell::Cell::new(0);
        let stream = |items: Vec<i64>| {
            items.into_iter().map(|i| {
                read.set(read.get() + 1);
                Ok(i)
            })
        };
        let out = merged(vec![stream(vec![1, 4, 9, 10]), stream(vec![2, 3, 11]), stream(vec![])], 4, |i| *i)
            .unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
        // The four taken, and the next of each of the two streams that gave them.
        assert_eq!(read.get(), 6);
    }
}
