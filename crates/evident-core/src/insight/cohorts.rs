//! Cohorts: customers grouped by the week or month of their first event (over the whole history,
//! not only the range asked), and how many of each cohort were active in each period since.
//!
//! Suppression: a cohort of fewer than k customers; an activity count of fewer than k, or whose
//! rest (the cohort's customers not active then, its size minus the count) is fewer than k.

use std::collections::{BTreeMap, BTreeSet};

use evident_wire::Micros;
use evident_wire::insight::{Bucket, Cohort, Cohorts, Step};

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
    let activity = query.activity.as_ref();
    let scan = Scan {
        from: None,
        to: query.to,
        by_subject: true,
        types: activity.and_then(Step::exact_type).map(|t| vec![t.to_owned()]),
        with_entry: activity.is_some_and(Step::needs_entry),
    };
    // cohort index -> (customers, active customers per period since)
    let mut table: BTreeMap<usize, (u64, BTreeMap<usize, u64>)> = BTreeMap::new();
    for_each_subject(index, tenant, &scan, |_, events| {
        let mut active = events.iter().filter(|e| activity.is_none_or(|step| step.matches(|f| e.get(f))));
        let Some(first) = active.next() else { return };
        if first.row.time < base {
            return;
        }
        let cohort = clock.index(base, first.row.time);
        let periods: BTreeSet<usize> =
            std::iter::once(first).chain(active).map(|e| clock.index(base, e.row.time) - cohort).collect();
        let row = table.entry(cohort).or_default();
        row.0 += 1;
        for period in periods {
            *row.1.entry(period).or_default() += 1;
        }
    })?;
    Ok(answer(query, &starts, table))
}

fn answer(
    query: &CohortsQuery,
    starts: &[Micros],
    table: BTreeMap<usize, (u64, BTreeMap<usize, u64>)>,
) -> Cohorts {
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
