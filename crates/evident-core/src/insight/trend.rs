//! Trends: events, distinct customers, distinct actors and failures per value of a dimension and
//! time bucket, with the totals of the period and of the same length of time before it.
//!
//! Suppression: a cell of fewer than k customers is hidden, and [`complement`] hides more so that
//! none is worked out by subtraction: in each series over its total and buckets (the total is
//! their sum), and with `by` over the series in each bucket, in the totals and in the previous
//! period (they add up to the trend without `by`). Both are repeated until nothing changes.

use std::collections::{HashMap, HashSet};

use evident_wire::Micros;
use evident_wire::insight::{Counts, Field, Series, Trend, TrendPoint};

use super::time::Clock;
use super::{Event, InsightIndex, Scan, Threshold, complement, for_each_event};
use crate::error::{Error, Result};
use crate::store::TenantId;

/// Most buckets a trend answers.
pub const MAX_BUCKETS: usize = 2000;
/// Most series (values of the dimension) a trend answers, by events.
pub const MAX_SERIES: usize = 50;

/// A trend question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrendQuery {
    pub from: Micros,
    pub to: Micros,
    pub by: Option<Field>,
    pub clock: Clock,
    pub threshold: Threshold,
}

/// What one cell has seen.
#[derive(Default)]
struct Cell {
    events: u64,
    failures: u64,
    customers: HashSet<String>,
    actors: HashSet<String>,
}

impl Cell {
    fn add(&mut self, event: &Event) {
        self.events += 1;
        self.failures += u64::from(event.row.outcome == "failure");
        if let Some(subject) = event.row.subject.as_ref().filter(|s| !self.customers.contains(*s)) {
            self.customers.insert(subject.clone());
        }
        if !self.actors.contains(&event.row.actor) {
            self.actors.insert(event.row.actor.clone());
        }
    }

    fn counts(&self, hidden: bool) -> Counts {
        let customers = self.customers.len() as u64;
        if hidden {
            return Counts { suppressed: true, ..Counts::default() };
        }
        Counts {
            events: Some(self.events),
            customers: Some(customers),
            actors: Some(self.actors.len() as u64),
            failures: Some(self.failures),
            failure_rate: (self.events > 0).then(|| self.failures as f64 / self.events as f64),
            suppressed: false,
        }
    }
}

/// One series being counted: its buckets, the whole period and the one before.
#[derive(Default)]
struct Counting {
    points: HashMap<usize, Cell>,
    total: Cell,
    previous: Cell,
}

/// Computes a trend.
pub fn trend(index: &dyn InsightIndex, tenant: &TenantId, query: &TrendQuery) -> Result<Trend> {
    let starts = query.clock.starts(query.from, query.to, MAX_BUCKETS).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "more than {MAX_BUCKETS} buckets: choose a larger bucket or a shorter range"
        ))
    })?;
    let length = query.to.0 - query.from.0;
    let scan = Scan {
        from: Some(Micros(query.from.0 - length)),
        to: query.to,
        by_subject: false,
        types: None,
        with_entry: query.by.as_ref().is_some_and(Field::needs_entry),
    };
    let mut series: HashMap<Option<String>, Counting> = HashMap::new();
    for_each_event(index, tenant, &scan, |event| {
        let counting = series.entry(event.key(query.by.as_ref())).or_default();
        if event.row.time < query.from {
            counting.previous.add(&event);
            return;
        }
        counting.total.add(&event);
        let bucket = starts.partition_point(|start| *start <= event.row.time).saturating_sub(1);
        counting.points.entry(bucket).or_default().add(&event);
    })?;
    let mut ranked: Vec<(Option<String>, Counting)> =
        series.into_iter().filter(|(_, c)| c.total.events > 0).collect();
    ranked.sort_by(|a, b| b.1.total.events.cmp(&a.1.total.events).then_with(|| a.0.cmp(&b.0)));
    let hidden = suppress(&ranked, starts.len(), query);
    ranked.truncate(MAX_SERIES);
    let empty = Cell::default();
    Ok(Trend {
        from: query.from.to_rfc3339(),
        to: query.to.to_rfc3339(),
        bucket: query.clock.bucket,
        by: query.by.as_ref().map(Field::name),
        min_customers: query.threshold.min_customers,
        series: ranked
            .into_iter()
            .zip(hidden)
            .map(|((key, counting), hidden)| Series {
                key,
                total: counting.total.counts(hidden[starts.len()]),
                previous: counting.previous.counts(hidden[starts.len() + 1]),
                points: starts
                    .iter()
                    .enumerate()
                    .map(|(i, start)| TrendPoint {
                        start: start.to_rfc3339(),
                        counts: counting.points.get(&i).unwrap_or(&empty).counts(hidden[i]),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Which cells of each series are hidden: its points, its total, then its previous period. A
/// series' points and total are one group (the total is their sum; on a tie a point is hidden
/// before the total).
fn suppress(series: &[(Option<String>, Counting)], buckets: usize, query: &TrendQuery) -> Vec<Vec<bool>> {
    let size = |cell: Option<&Cell>| cell.map_or(0, |c| c.customers.len() as u64);
    let sizes: Vec<Vec<u64>> = series
        .iter()
        .map(|(_, c)| {
            let mut row: Vec<u64> = (0..buckets).map(|i| size(c.points.get(&i))).collect();
            row.extend([size(Some(&c.total)), size(Some(&c.previous))]);
            row
        })
        .collect();
    let threshold = query.threshold;
    let mut hidden: Vec<Vec<bool>> =
        sizes.iter().map(|row| row.iter().map(|n| threshold.hides(*n)).collect()).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (row, hidden) in sizes.iter().zip(&mut hidden) {
            changed |= complement(&mut hidden[..=buckets], &row[..=buckets], threshold);
        }
        if query.by.is_some() {
            for column in 0..buckets + 2 {
                let sizes: Vec<u64> = sizes.iter().map(|row| row[column]).collect();
                let mut cells: Vec<bool> = hidden.iter().map(|row| row[column]).collect();
                if complement(&mut cells, &sizes, threshold) {
                    changed = true;
                    hidden.iter_mut().zip(cells).for_each(|(row, cell)| row[column] = cell);
                }
            }
        }
    }
    hidden
}
