//! Insight's hourly rollups (`evident_core::insight::rollup`, migration 0004), folded off the
//! acknowledgement path and without a lease: a fold is one transaction that locks the tenant's
//! `insight_rolled` row, folds the committed entries from its size up to at most [`CHUNK`]
//! further and moves it, so folds by several nodes queue on that row and never overlap or repeat.
//! A follower task on every node folds what was committed ([`follow`], every [`PERIOD`], from the
//! first commit), skipping tenants another node is folding; a question first folds the rest
//! itself, waiting for such a fold, so it sees every event committed before it.
//!
//! The path table (`paths.rs`) is folded the same way under its own watermark row
//! (`insight_pathed`), so a schema from before it is built from the stored events while the
//! rollups go on ([`Folded`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use evident_core::Result;
use evident_core::insight::rollup::{Fold, RollupItem, RollupRead, Who, decode_ids, encode_ids};
use evident_core::insight::{Event, Row};
use evident_wire::Micros;
use roaring::RoaringTreemap;

use crate::db::{Db, failed};

/// Entries per fold transaction.
const CHUNK: i64 = 20_000;
/// How often the follower looks for committed entries to fold.
pub(crate) const PERIOD: Duration = Duration::from_millis(200);

/// What a fold writes, each under its own watermark row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Folded {
    /// The hourly rollups, under `insight_rolled`.
    Rollups,
    /// The path table, under `insight_pathed`.
    Paths,
}

impl Folded {
    fn watermark(self) -> &'static str {
        match self {
            Folded::Rollups => "insight_rolled",
            Folded::Paths => "insight_pathed",
        }
    }

    /// Folds entries `from..to` of `tid` inside the caller's transaction.
    async fn fold(self, tx: &Transaction<'_>, tid: i64, from: i64, to: i64) -> Result<()> {
        match self {
            Folded::Rollups => write(tx, tid, &fold(tx, tid, from, to).await?).await,
            Folded::Paths => crate::paths::fold(tx, tid, from, to).await,
        }
    }
}

/// Folds every entry of `tid` committed before the call beyond the watermark of `folded`, in
/// transactions of up to [`CHUNK`] entries. `wait`: whether to wait for a fold running elsewhere
/// (a question) or leave the tenant to it (the follower). It stops at the log's size when it
/// began: chasing a log that grows as fast as it folds, it would never return, so a question
/// would wait for ever and the follower would never fold the other table.
pub(crate) async fn catch_up(db: &Db, tid: i64, folded: Folded, wait: bool) -> Result<()> {
    let table = folded.watermark();
    let mut client = db.client().await?;
    let size = client.query_opt("SELECT size FROM logs WHERE tid = $1", &[&tid]).await.map_err(failed)?;
    let size: i64 = size.map_or(0, |row| row.get(0));
    loop {
        let tx = client.transaction().await.map_err(failed)?;
        // A fold elsewhere takes as long as its chunk.
        tx.batch_execute("SET LOCAL lock_timeout = '120s'").await.map_err(failed)?;
        let insert = format!("INSERT INTO {table} (tid, size) VALUES ($1, 0) ON CONFLICT DO NOTHING");
        tx.execute(&insert, &[&tid]).await.map_err(failed)?;
        let lock = if wait { "FOR UPDATE" } else { "FOR UPDATE SKIP LOCKED" };
        let sql = format!("SELECT size FROM {table} WHERE tid = $1 {lock}");
        let Some(rolled) = tx.query_opt(&sql, &[&tid]).await.map_err(failed)? else { return Ok(()) };
        let rolled: i64 = rolled.get(0);
        if rolled >= size {
            return tx.commit().await.map_err(failed);
        }
        let end = size.min(rolled + CHUNK);
        folded.fold(&tx, tid, rolled, end).await?;
        let update = format!("UPDATE {table} SET size = $2 WHERE tid = $1");
        tx.execute(&update, &[&tid, &end]).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
}

/// The fold of entries `from..to` of `tid`.
async fn fold(tx: &Transaction<'_>, tid: i64, from: i64, to: i64) -> Result<Fold> {
    let rows = tx
        .query(
            "SELECT time, type, action, outcome, source, actor, subject, entry FROM events
             WHERE tid = $1 AND idx >= $2 AND idx < $3",
            &[&tid, &from, &to],
        )
        .await
        .map_err(failed)?;
    let mut fold = Fold::default();
    for row in rows {
        fold.add(&Event::new(Row {
            index: 0,
            time: Micros(row.get(0)),
            event_type: row.get(1),
            action: row.get(2),
            outcome: row.get(3),
            source: row.get(4),
            actor: row.get(5),
            subject: row.get(6),
            entry: Some(row.get(7)),
        }));
    }
    Ok(fold)
}

/// The ids of `names`, the new ones inserted (in sorted order, so that two folds inserting at
/// once wait for each other rather than deadlock). Only names not found are inserted: an insert
/// that conflicts still takes a number from the identity, and the hour rows' id sets stay small
/// and fast only while the ids of a tenant's customers are dense (6.2M ids for 100,000 names,
/// inserting every name of every fold, made a 10M-event trend spend 70 % of its time merging
/// small arrays).
pub(crate) async fn name_ids(
    tx: &Transaction<'_>,
    tid: i64,
    mut names: Vec<&str>,
) -> Result<HashMap<String, i64>> {
    names.sort_unstable();
    names.dedup();
    let select = "SELECT name, id FROM insight_names WHERE tid = $1 AND name = ANY($2)";
    let rows = tx.query(select, &[&tid, &names]).await.map_err(failed)?;
    let mut ids: HashMap<String, i64> = rows.into_iter().map(|row| (row.get(0), row.get(1))).collect();
    let new: Vec<&str> = names.into_iter().filter(|name| !ids.contains_key(*name)).collect();
    if !new.is_empty() {
        tx.execute(
            "INSERT INTO insight_names (tid, name) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            &[&tid, &new],
        )
        .await
        .map_err(failed)?;
        let rows = tx.query(select, &[&tid, &new]).await.map_err(failed)?;
        ids.extend(rows.into_iter().map(|row| (row.get(0), row.get(1))));
    }
    Ok(ids)
}

/// Adds a fold to the rollup tables, inside the caller's transaction.
async fn write(tx: &Transaction<'_>, tid: i64, fold: &Fold) -> Result<()> {
    if fold.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = fold.counts.keys().filter_map(|(_, value, _)| value.as_deref()).collect();
    for (_, value, _, id) in fold.seen.keys() {
        names.extend(value.as_deref());
        names.push(id);
    }
    let ids = name_ids(tx, tid, names).await?;
    let id = |name: Option<&String>| name.map_or(0, |n| ids[n]);
    let mut counts = CountColumns::default();
    for ((dim, value, hour), (events, failures)) in &fold.counts {
        counts.dim.push(*dim as i16);
        counts.hour.push(*hour);
        counts.value.push(id(value.as_ref()));
        counts.events.push(*events as i64);
        counts.failures.push(*failures as i64);
    }
    tx.execute(
        "INSERT INTO insight_counts (tid, dim, hour, value, events, failures)
         SELECT $1, * FROM unnest($2::smallint[], $3::integer[], $4::bigint[], $5::bigint[], $6::bigint[])
         ON CONFLICT (tid, dim, hour, value) DO UPDATE SET events = insight_counts.events + excluded.events,
             failures = insight_counts.failures + excluded.failures",
        &[&tid, &counts.dim, &counts.hour, &counts.value, &counts.events, &counts.failures],
    )
    .await
    .map_err(failed)?;
    // The seen facts transposed: each (dimension, who, value, hour)'s ids.
    let mut hours: BTreeMap<(i16, i16, i64, i32), RoaringTreemap> = BTreeMap::new();
    for ((dim, value, who, name), seen) in &fold.seen {
        let (value, name) = (id(value.as_ref()), id(Some(name)) as u64);
        for hour in seen {
            hours.entry((*dim as i16, *who as i16, value, *hour)).or_default().insert(name);
        }
    }
    write_hours(tx, tid, hours).await
}

/// Count rows as the columns of one `unnest`.
#[derive(Default)]
struct CountColumns {
    dim: Vec<i16>,
    hour: Vec<i32>,
    value: Vec<i64>,
    events: Vec<i64>,
    failures: Vec<i64>,
}

/// Adds new ids to the stored sets of their (dimension, who, value, hour).
async fn write_hours(
    tx: &Transaction<'_>,
    tid: i64,
    new: BTreeMap<(i16, i16, i64, i32), RoaringTreemap>,
) -> Result<()> {
    let dim: Vec<i16> = new.keys().map(|k| k.0).collect();
    let who: Vec<i16> = new.keys().map(|k| k.1).collect();
    let value: Vec<i64> = new.keys().map(|k| k.2).collect();
    let hour: Vec<i32> = new.keys().map(|k| k.3).collect();
    let stored = tx
        .query(
            "SELECT s.dim, s.who, s.value, s.hour, s.ids FROM insight_hour_ids s
             JOIN unnest($2::smallint[], $3::smallint[], $4::bigint[], $5::integer[]) AS k (dim, who, value, hour)
             ON (s.dim, s.who, s.value, s.hour) = (k.dim, k.who, k.value, k.hour) WHERE s.tid = $1",
            &[&tid, &dim, &who, &value, &hour],
        )
        .await
        .map_err(failed)?;
    let mut stored: HashMap<(i16, i16, i64, i32), Vec<u8>> = stored
        .into_iter()
        .map(|row| ((row.get(0), row.get(1), row.get(2), row.get(3)), row.get(4)))
        .collect();
    let mut merged = Vec::with_capacity(new.len());
    for (key, mut ids) in new {
        if let Some(bytes) = stored.remove(&key) {
            ids |= decode_ids(&bytes)?;
        }
        merged.push(encode_ids(&ids));
    }
    tx.execute(
        "INSERT INTO insight_hour_ids (tid, dim, who, value, hour, ids)
         SELECT $1, * FROM unnest($2::smallint[], $3::smallint[], $4::bigint[], $5::integer[], $6::bytea[])
         ON CONFLICT (tid, dim, who, value, hour) DO UPDATE SET ids = excluded.ids",
        &[&tid, &dim, &who, &value, &hour, &merged],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

/// What a question read: count rows, then hour rows (who, value, hour, ids), as their owned
/// values, with values as name ids (0: no value) and the names of those ids.
pub(crate) struct Answer {
    counts: Vec<(i64, i32, i64, i64)>,
    hours: Vec<(Who, i64, i32, RoaringTreemap)>,
    names: HashMap<i64, String>,
}

impl Answer {
    pub(crate) fn each(&self, each: &mut dyn FnMut(RollupItem<'_>)) {
        let name = |id: &i64| self.names.get(id).map(String::as_str);
        for (value, hour, events, failures) in &self.counts {
            let (events, failures) = (*events as u64, *failures as u64);
            each(RollupItem::Count { value: name(value), hour: *hour, events, failures });
        }
        for (who, value, hour, ids) in &self.hours {
            each(RollupItem::Hour { who: *who, value: name(value), hour: *hour, ids });
        }
    }
}

/// Folds what is left of `tid`, then reads `read` in one snapshot.
pub(crate) async fn read(db: &Db, tid: i64, read: &RollupRead) -> Result<Answer> {
    catch_up(db, tid, Folded::Rollups, true).await?;
    let mut client = db.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(failed)?;
    let dim = read.dim as i16;
    let value = "($3::text IS NULL OR value = (SELECT id FROM insight_names WHERE tid = $1 AND name = $3))";
    let mut answer = Answer { counts: Vec::new(), hours: Vec::new(), names: HashMap::new() };
    if let Some(hours) = &read.counts {
        let sql = format!(
            "SELECT value, hour, events, failures FROM insight_counts
             WHERE tid = $1 AND dim = $2 AND {value} AND hour >= $4 AND hour < $5"
        );
        let rows =
            tx.query(&sql, &[&tid, &dim, &read.only, &hours.start, &hours.end]).await.map_err(failed)?;
        answer.counts = rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    }
    // Values by id, named after: a join would look a name up for each row.
    let sql = format!(
        "SELECT who, value, hour, ids FROM insight_hour_ids
         WHERE tid = $1 AND dim = $2 AND {value} AND who = ANY($4) AND hour >= $5 AND hour < $6"
    );
    let who: Vec<i16> = read.seen.iter().map(|who| *who as i16).collect();
    let (start, end) = (read.seen_hours.start, read.seen_hours.end);
    for row in tx.query(&sql, &[&tid, &dim, &read.only, &who, &start, &end]).await.map_err(failed)? {
        let who = if row.get::<_, i16>(0) == Who::Actor as i16 { Who::Actor } else { Who::Customer };
        answer.hours.push((who, row.get(1), row.get(2), decode_ids(row.get(3))?));
    }
    let mut ids: Vec<i64> =
        answer.counts.iter().map(|c| c.0).chain(answer.hours.iter().map(|h| h.1)).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = tx
        .query("SELECT id, name FROM insight_names WHERE tid = $1 AND id = ANY($2)", &[&tid, &ids])
        .await
        .map_err(failed)?;
    answer.names = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
    tx.commit().await.map_err(failed)?;
    Ok(answer)
}

/// The follower: folds every tenant's committed entries into the rollups and the path table,
/// until the store closes.
pub(crate) async fn follow(db: Arc<Db>) {
    loop {
        tokio::time::sleep(PERIOD).await;
        if db.closed() {
            return;
        }
        for folded in [Folded::Rollups, Folded::Paths] {
            let table = folded.watermark();
            let behind = async {
                let client = db.client().await?;
                let sql = format!(
                    "SELECT l.tid FROM logs l LEFT JOIN {table} r ON r.tid = l.tid WHERE l.size > coalesce(r.size, 0)"
                );
                let rows = client.query(&sql, &[]).await.map_err(failed)?;
                Ok::<Vec<i64>, evident_core::Error>(rows.into_iter().map(|row| row.get(0)).collect())
            };
            // A failure (the database away) is tried again next period; questions fold themselves.
            for tid in behind.await.unwrap_or_default() {
                let _ = catch_up(&db, tid, folded, false).await;
            }
        }
    }
}
