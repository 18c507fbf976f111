//! Monthly partitions of `events`, by `recorded_at`, created before the commit that needs them.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate};
use evident_core::Result;
use evident_wire::Micros;

use crate::db::{Client, Db, failed};

/// One month's partition: its table name and its range of `recorded_at`, `[from, to)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Month {
    pub name: String,
    pub from: i64,
    pub to: i64,
}

/// The month holding `recorded_at` (UTC), `None` outside years 2000 to 9998: such rows go to
/// the default partition.
pub(crate) fn month_of(recorded_at: Micros) -> Option<Month> {
    let date = DateTime::from_timestamp_micros(recorded_at.0)?.date_naive();
    if !(2000..=9998).contains(&date.year()) {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    let next = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)?
    };
    let micros = |day: NaiveDate| day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
    Some(Month {
        name: format!("events_{:04}_{:02}", date.year(), date.month()),
        from: micros(first)?,
        to: micros(next)?,
    })
}

impl Db {
    /// Makes sure a partition exists for the month of each of `times`. Each is created in its own
    /// statement, outside the commit's transaction (a crash after it leaves an empty partition,
    /// which is harmless); another node creating the same one at once is no error.
    pub(crate) async fn ensure_partitions(&self, client: &Client, times: &[Micros]) -> Result<()> {
        let mut wanted = BTreeMap::new();
        for month in times.iter().copied().filter_map(month_of) {
            wanted.entry(month.name.clone()).or_insert(month);
        }
        for (name, month) in wanted {
            if self.partitions.lock().expect("partitions lock").contains(&name) {
                continue;
            }
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({}) TO ({})",
                month.from, month.to
            );
            if let Err(err) = client.batch_execute(&create).await {
                // A concurrent creator can make `IF NOT EXISTS` fail on the catalog's unique index;
                // the partition is there all the same.
                let exists: bool = client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                    .await
                    .map_err(failed)?
                    .get(0);
                if !exists {
                    return Err(failed(err));
                }
            }
            self.partitions.lock().expect("partitions lock").insert(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_cover_their_days() {
        let check = |rfc3339: &str, name: &str, from: &str, to: &str| {
            let at = |t: &str| Micros::parse_rfc3339(t).unwrap();
            let month = month_of(at(rfc3339)).unwrap();
            assert_eq!(month, Month { name: name.into(), from: at(from).0, to: at(to).0 });
        };
        check("2026-11-26T10:00:00Z", "events_2026_11", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
        check("2026-12-31T23:59:59Z", "events_2026_12", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z");
        check("2024-02-01T00:00:00Z", "events_2024_02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z");
        assert_eq!(month_of(Micros(0)), None);
    }
}
