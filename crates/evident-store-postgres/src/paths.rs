//! Insight's path table (`evident_core::insight::paths`, migration 0005): per (tenant, customer,
//! UTC month) a row of compact pairs in `insight_paths`, kinds numbered per tenant in
//! `insight_kinds`, customers as ids of `insight_names`. Folded by `rollup.rs`'s [`catch_up`]
//! under the tenant's locked `insight_pathed` row, so a schema from before the table (its
//! watermark at 0) is built from the stored events by the follower and by questions, a chunk per
//! transaction. Read a page per round trip, in customer order after the last customer of the page
//! before (a plain keyset on the integer column), each page with the kinds it may name.
//!
//! [`catch_up`]: crate::rollup::catch_up

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use evident_core::Result;
use evident_core::insight::paths::{PathFold, PathRead, merge};
use evident_core::insight::{Event, Row};
use evident_wire::Micros;

use crate::db::{Db, failed};
use crate::rollup::name_ids;

/// Rows per page of a read.
pub(crate) const PAGE: usize = 20_000;

/// Folds entries `from..to` of `tid` into its rows, inside the caller's transaction.
pub(crate) async fn fold(tx: &Transaction<'_>, tid: i64, from: i64, to: i64) -> Result<()> {
    let rows = tx
        .query(
            "SELECT time, type, action, outcome, subject, entry FROM events
             WHERE tid = $1 AND idx >= $2 AND idx < $3 AND subject IS NOT NULL ORDER BY idx",
            &[&tid, &from, &to],
        )
        .await
        .map_err(failed)?;
    let mut fold = PathFold::default();
    for row in rows {
        fold.add(&Event::new(Row {
            time: Micros(row.get(0)),
            event_type: row.get(1),
            action: row.get(2),
            outcome: row.get(3),
            subject: row.get(4),
            entry: Some(row.get(5)),
            ..Row::default()
        }));
    }
    write(tx, tid, &fold).await
}

/// The store's ids of a fold's kinds (new kinds numbered after the tenant's last; the caller
/// holds the tenant's `insight_pathed` row, so no other fold numbers at once).
async fn kind_ids(tx: &Transaction<'_>, tid: i64, fold: &PathFold) -> Result<Vec<u32>> {
    let rows =
        tx.query("SELECT kind, id FROM insight_kinds WHERE tid = $1", &[&tid]).await.map_err(failed)?;
    let known: HashMap<String, i32> = rows.into_iter().map(|row| (row.get(0), row.get(1))).collect();
    let mut next = known.values().max().map_or(1, |id| id + 1);
    let (mut ids, mut new_ids, mut new_kinds) = (Vec::new(), Vec::new(), Vec::new());
    for kind in &fold.kinds {
        let text = kind.text();
        let id = match known.get(&text) {
            Some(id) => *id,
            None => {
                new_ids.push(next);
                new_kinds.push(text);
                next += 1;
                next - 1
            }
        };
        ids.push(id as u32);
    }
    tx.execute(
        "INSERT INTO insight_kinds (tid, id, kind) SELECT $1, * FROM unnest($2::integer[], $3::text[])",
        &[&tid, &new_ids, &new_kinds],
    )
    .await
    .map_err(failed)?;
    Ok(ids)
}

/// Merges a fold into the stored rows: the touched rows read in one statement, written in one.
async fn write(tx: &Transaction<'_>, tid: i64, fold: &PathFold) -> Result<()> {
    if fold.is_empty() {
        return Ok(());
    }
    let ids = kind_ids(tx, tid, fold).await?;
    let subjects: Vec<&str> = fold.rows.keys().map(|(subject, _)| subject.as_str()).collect();
    let names = name_ids(tx, tid, subjects).await?;
    let (mut customers, mut months, mut new) = (Vec::new(), Vec::new(), Vec::new());
    for (subject, month, pairs) in fold.rows_with_ids(&ids) {
        customers.push(names[subject]);
        months.push(month);
        new.push(pairs);
    }
    let stored = tx
        .query(
            "SELECT p.customer, p.month, p.pairs FROM insight_paths p
             JOIN unnest($2::bigint[], $3::integer[]) AS k (customer, month)
             ON p.customer = k.customer AND p.month = k.month WHERE p.tid = $1",
            &[&tid, &customers, &months],
        )
        .await
        .map_err(failed)?;
    let stored: HashMap<(i64, i32), Vec<u8>> =
        stored.into_iter().map(|row| ((row.get(0), row.get(1)), row.get(2))).collect();
    let merged: Vec<Vec<u8>> = (0..customers.len())
        .map(|i| {
            let old = stored.get(&(customers[i], months[i])).map(Vec::as_slice).unwrap_or_default();
            merge(months[i], old, &new[i])
        })
        .collect();
    tx.execute(
        "INSERT INTO insight_paths (tid, customer, month, pairs)
         SELECT $1, * FROM unnest($2::bigint[], $3::integer[], $4::bytea[])
         ON CONFLICT (tid, customer, month) DO UPDATE SET pairs = excluded.pairs",
        &[&tid, &customers, &months, &merged],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

/// One page of a read: the kinds numbered after `known`, and up to `limit` rows of customers
/// after `after`, from one statement (one snapshot).
#[derive(Default)]
pub(crate) struct Page {
    pub(crate) kinds: Vec<(i32, String)>,
    pub(crate) rows: Vec<(i64, i32, Vec<u8>)>,
}

/// Reads one page of `read`.
pub(crate) async fn page(
    db: &Db,
    tid: i64,
    read: &PathRead,
    after: i64,
    known: i32,
    limit: i64,
) -> Result<Page> {
    let client = db.client().await?;
    let rows = client
        .query(
            "WITH page AS (
                 SELECT customer, month, pairs FROM insight_paths
                 WHERE tid = $1 AND customer > $2 AND month >= $3 AND month < $4
                 ORDER BY customer, month LIMIT $5)
             SELECT customer, month, pairs, NULL::integer, NULL::text FROM page
             UNION ALL SELECT NULL, NULL, NULL, id, kind FROM insight_kinds WHERE tid = $1 AND id > $6",
            &[&tid, &after, &read.months.start, &read.months.end, &limit, &known],
        )
        .await
        .map_err(failed)?;
    let mut page = Page::default();
    for row in rows {
        match row.get::<_, Option<i64>>(0) {
            Some(customer) => page.rows.push((customer, row.get(1), row.get(2))),
            None => page.kinds.push((row.get(3), row.get(4))),
        }
    }
    page.rows.sort_by_key(|(customer, month, _)| (*customer, *month));
    Ok(page)
}
