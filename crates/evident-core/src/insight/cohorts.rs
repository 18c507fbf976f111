//! Cohorts: customers grouped by the week or month of their first event (over the whole history,
//! not only the range asked), and how many of each cohort were active in each period since; from
//! each customer's hours in the rollups when the store keeps them.
//!
//! Suppression: a cohort of fewer than k customers; an activity count of fewer than k, or whose
//! rest (the cohort's customers not active then, its size minus the count) is fewer than k.

use std::collections::{BTreeMap, BTreeSet};

use evident_wire::Micros;
use evident_wire::insight::{Bucket, Cohort, Cohorts, Step};
use roaring::RoaringTreemap;

use super::rollup::{
    HOUR, RollDim, RollupItem, RollupRead, Who, activity_rollup, aligned, decode_hours, hour_of,
};
use super::time::{Clock, Zone};
use super::{InsightIndex, Scan, Threshold, for_each_subject, splits};
use crate::error::{Error, Result};
use crate::store::TenantId;

/// Most periods a cohort table spans.
pub const MAX_PERIODS: usize = 260;

/// A cohorts question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CohortsQuery {
    pub from: Micros,
    pub to: Micros,
    /// `Week` or `Month`, UTC.
    pub period: Bucket,
    /// Only matching events count as activity.
    pub activity: Option<Step>,
    pub threshold: Threshold,
}

/// Computes cohorts.
pub fn cohorts(index: &dyn InsightIndex, tenant: &TenantId, query: &CohortsQuery) -> Result<Cohorts> {
    let clock = Clock { bucket: query.period, zone: Zone::UTC };
    let starts = clock.starts(query.from, query.to, MAX_PERIODS).ok_or_else(|| {
        Error::InvalidArgument(format!("more than {MAX_PERIODS} periods: choose a shorter range"))
    })?;
    let Some(&base) = starts.first() else {
        return Ok(answer(query, &starts, BTreeMap::new()));
    };
    if let Some(table) = from_rollups(index, tenant, query, &clock, base)? {
        return Ok(answer(query, &starts, table));
    }
    let activity = query.activity.as_ref();
    let scan = Scan {
        from: None,
        to: query.to,
        by_subject: true,
        types: activity.and_then(Step::exact_type).map(|t| vec![t.to_owned()]),
        with_entry: activity.is_some_and(Step::needs_entry),
    };
    let mut table = Table::new();
    for_each_subject(index, tenant, &scan, |_, events| {
        let mut active = events.iter().filter(|e| activity.is_none_or(|step| step.matches(|f| e.get(f))));
        let Some(first) = active.next() else { return };
        if first.row.time < base {
            return;
        }
        add(&mut table, &clock, base, std::iter::once(first).chain(active).map(|e| e.row.time));
    })?;
    Ok(answer(query, &starts, table))
}

/// Cohort index -> (customers, active customers per period since).
type Table = BTreeMap<usize, (u64, BTreeMap<usize, u64>)>;

/// Adds a customer by the times of its activity (in order, the first at or after `base`).
fn add(table: &mut Table, clock: &Clock, base: Micros, mut times: impl Iterator<Item = Micros>) {
    let Some(first) = times.next() else { return };
    let cohort = clock.index(base, first);
    let periods: BTreeSet<usize> =
        std::iter::once(first).chain(times).map(|t| clock.index(base, t) - cohort).collect();
    let row = table.entry(cohort).or_default();
    row.0 += 1;
    for period in periods {
        *row.1.entry(period).or_default() += 1;
    }
}

/// The table from the rollups' hours of each customer, if the store keeps them, the activity is
/// every event or one exact type, and `to` is a whole hour (week and month starts in UTC are).
fn from_rollups(
    index: &dyn InsightIndex,
    tenant: &TenantId,
    query: &CohortsQuery,
    clock: &Clock,
    base: Micros,
) -> Result<Option<Table>> {
    let Some(only) = activity_rollup(query.activity.as_ref()).filter(|_| aligned([query.to, base])) else {
        return Ok(None);
    };
    let dim = if only.is_some() { RollDim::Type } else { RollDim::All };
    let to = hour_of(query.to);
    let read = RollupRead { dim, only, counts: None, seen: vec![Who::Customer], seen_hours: i32::MIN..to };
    let (mut table, mut sets) = (Table::new(), Sets::default());
    let rolled = index.rollups(tenant, &read, &mut |item| match item {
        RollupItem::Seen { hours, .. } => {
            let mut times = decode_hours(hours).take_while(|h| *h < to).map(|h| Micros(i64::from(h) * HOUR));
            match times.next() {
                Some(first) if first >= base => {
                    add(&mut table, clock, base, std::iter::once(first).chain(times))
                }
                _ => {}
            }
        }
        RollupItem::Hour { hour, ids, .. } if hour < to => {
            let time = Micros(i64::from(hour) * HOUR);
            match time < base {
                true => sets.before |= ids,
                false => *sets.periods.entry(clock.index(base, time)).or_default() |= ids,
            }
        }
        RollupItem::Count { .. } | RollupItem::Hour { .. } => {}
    })?;
    sets.add_to(&mut table);
    Ok(rolled.then_some(table))
}

/// The customers of hour items: those active before the first period, and in each period.
#[derive(Default)]
struct Sets {
    before: RoaringTreemap,
    periods: BTreeMap<usize, RoaringTreemap>,
}

impl Sets {
    /// Each period's cohort (its customers not active before it) and that cohort's activity in
    /// each period since.
    fn add_to(self, table: &mut Table) {
        let mut earlier = self.before;
        for (&cohort, active) in &self.periods {
            let members = active - &earlier;
            if !members.is_empty() {
                let row = table.entry(cohort).or_default();
                row.0 += members.len();
                for (&period, later) in self.periods.range(cohort..) {
                    let n = members.intersection_len(later);
                    if n > 0 {
                        *row.1.entry(period - cohort).or_default() += n;
                    }
                }
            }
            earlier |= active;
        }
    }
}

fn answer(query: &CohortsQuery, starts: &[Micros], table: Table) -> Cohorts {
    let threshold: Threshold = query.threshold;
    Cohorts {
        from: query.from.to_rfc3339(),
        to: query.to.to_rfc3339(),
        period: query.period,
        min_customers: threshold.min_customers,
        cohorts: starts
            .iter()
            .enumerate()
            .map(|(i, start)| {
                let (customers, active) = table.get(&i).cloned().unwrap_or_default();
                let hidden = threshold.hides(customers);
                Cohort {
                    start: start.to_rfc3339(),
                    customers: (!hidden).then_some(customers),
                    active: (0..starts.len() - i)
                        .map(|p| {
                            let n = active.get(&p).copied().unwrap_or(0);
                            (!hidden && splits(threshold, n, customers)).then_some(n)
                        })
                        .collect(),
                    suppressed: hidden,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activity_count_whose_rest_is_small_is_hidden() {
        let at = |text: &str| Micros::parse_rfc3339(text).unwrap();
        let query = CohortsQuery {
            from: at("2026-11-02T00:00:00Z"),
            to: at("2026-11-23T00:00:00Z"),
            period: Bucket::Week,
            activity: None,
            threshold: Threshold { min_customers: 5 },
        };
        let starts =
            Clock { bucket: Bucket::Week, zone: Zone::UTC }.starts(query.from, query.to, 10).unwrap();
        // 8 customers first seen in week 0; 6 active in week 1 (2 not), 3 in week 2 (5 not).
        let table = BTreeMap::from([(0, (8, BTreeMap::from([(0, 8), (1, 6), (2, 3)])))]);
        let cohorts = answer(&query, &starts, table);
        assert_eq!(cohorts.cohorts[0].active, [Some(8), None, None]);
        let table = BTreeMap::from([(0, (10, BTreeMap::from([(0, 10), (1, 5), (2, 10)])))]);
        assert_eq!(answer(&query, &starts, table).cohorts[0].active, [Some(10), Some(5), Some(10)]);
    }
}
