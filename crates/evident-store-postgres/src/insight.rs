//! The scans of customer insight (`evident_core::insight`): events in (time, index) order over
//! `events_time`, or in (subject, time, index) order over `events_subject`, a page at a time after
//! the last row of the previous page. Rollups are read by `rollup.rs`, after it folded what is left;
//! the path table by `paths.rs` the same way, a page per round trip.

use evident_core::Result;
use evident_core::insight::paths::{PathItem, PathRead};
use evident_core::insight::rollup::{RollupItem, RollupRead};
use evident_core::insight::{InsightIndex, Row, Scan};
use evident_core::store::TenantId;
use evident_wire::Micros;
use tokio_postgres::types::ToSql;

use crate::PgStore;
use crate::db::failed;
use crate::rollup::Folded;
use crate::search::Param;

/// The SQL of one page and its parameters after `$1`, the tenant's id.
fn page_sql(scan: &Scan, after: Option<&Row>, limit: usize) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = vec![Box::new(scan.to.0)];
    let mut conditions = vec!["tid = $1".to_owned(), "time < $2".to_owned()];
    if let Some(from) = scan.from {
        params.push(Box::new(from.0));
        conditions.push(format!("time >= ${}", params.len() + 1));
    }
    if let Some(types) = &scan.types {
        params.push(Box::new(types.clone()));
        conditions.push(format!("type = ANY(${})", params.len() + 1));
    }
    if scan.by_subject {
        conditions.push("subject IS NOT NULL".to_owned());
    }
    if let Some(row) = after {
        let n = params.len() + 2;
        let index = i64::try_from(row.index).unwrap_or(i64::MAX);
        if scan.by_subject {
            params.push(Box::new(row.subject.clone().unwrap_or_default()));
            params.push(Box::new(row.time.0));
            params.push(Box::new(index));
            conditions.push(format!("(subject, time, idx) > (${n}, ${}, ${})", n + 1, n + 2));
        } else {
            params.push(Box::new(row.time.0));
            params.push(Box::new(index));
            conditions.push(format!("(time, idx) > (${n}, ${})", n + 1));
        }
    }
    params.push(Box::new(limit as i64));
    let entry = if scan.with_entry { "entry" } else { "NULL::bytea" };
    let order = if scan.by_subject { "subject, time, idx" } else { "time, idx" };
    let sql = format!(
        "SELECT idx, time, type, action, outcome, source, actor, subject, {entry} FROM events \
         WHERE {} ORDER BY {order} LIMIT ${}",
        conditions.join(" AND "),
        params.len() + 1
    );
    (sql, params)
}

impl InsightIndex for PgStore {
    fn insight_rows(
        &self,
        tenant: &TenantId,
        scan: &Scan,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let (sql, params) = page_sql(scan, after, limit);
        let tenant = tenant.clone();
        self.run(move |db| async move {
            let client = db.client().await?;
            let tid = db.tid(&client, &tenant).await?;
            let params: Vec<&(dyn ToSql + Sync)> = std::iter::once(&tid as &(dyn ToSql + Sync))
                .chain(params.iter().map(|p| &**p as &(dyn ToSql + Sync)))
                .collect();
            let rows = client.query(&sql, &params).await.map_err(failed)?;
            Ok(rows
                .iter()
                .map(|row| Row {
                    index: row.get::<_, i64>(0) as u64,
                    time: Micros(row.get(1)),
                    event_type: row.get(2),
                    action: row.get(3),
                    outcome: row.get(4),
                    source: row.get(5),
                    actor: row.get(6),
                    subject: row.get(7),
                    entry: row.get(8),
                })
                .collect())
        })
    }

    fn rollups(
        &self,
        tenant: &TenantId,
        read: &RollupRead,
        each: &mut dyn FnMut(RollupItem<'_>),
    ) -> Result<bool> {
        if !self.rollups {
            return Ok(false);
        }
        let (tenant, read) = (tenant.clone(), read.clone());
        let answer = self.run(move |db| async move {
            let client = db.client().await?;
            let tid = db.tid(&client, &tenant).await?;
            drop(client);
            crate::rollup::read(&db, tid, &read).await
        })?;
        answer.each(each);
        Ok(true)
    }

    fn paths(&self, tenant: &TenantId, read: &PathRead, each: &mut dyn FnMut(PathItem<'_>)) -> Result<bool> {
        if !self.rollups {
            return Ok(false);
        }
        self.follow();
        let tenant = tenant.clone();
        let tid = self.run(move |db| async move {
            let client = db.client().await?;
            let tid = db.tid(&client, &tenant).await?;
            drop(client);
            crate::rollup::catch_up(&db, tid, Folded::Paths, true).await?;
            Ok(tid)
        })?;
        // More rows than a customer can have in the range, so a full page holds two customers.
        let limit = self.path_page.max((read.months.end - read.months.start).max(0) as usize + 1);
        let (mut after, mut known) = (i64::MIN, 0);
        loop {
            let page_read = read.clone();
            let mut page = self.run(move |db| async move {
                crate::paths::page(&db, tid, &page_read, after, known, limit as i64).await
            })?;
            for (id, text) in &page.kinds {
                each(PathItem::Kind { id: *id as u32, text });
                known = known.max(*id);
            }
            let full = page.rows.len() == limit;
            if full {
                // The last customer's rows may go on in the next page: it is read whole there.
                let last = page.rows.last().map(|row| row.0);
                let kept = page.rows.iter().position(|row| Some(row.0) == last).unwrap_or(0);
                page.rows.truncate(kept);
            }
            for (customer, month, pairs) in &page.rows {
                each(PathItem::Row { customer: *customer, month: *month, pairs });
            }
            match page.rows.last() {
                Some(row) if full => after = row.0,
                _ => return Ok(true),
            }
        }
    }
}
