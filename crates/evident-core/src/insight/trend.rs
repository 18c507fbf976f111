//! Trends: events, distinct customers, distinct actors and failures per value of a dimension and
//! time bucket, with the totals of the period and of the same length of time before it; from the
//! hourly rollups when the store keeps them and the question's boundaries are whole hours.
//!
//! Suppression: a cell of fewer than k customers is hidden, and [`complement`] hides more so that
//! none is worked out by subtraction: in each series over its total and buckets (the total is
//! their sum), and with `by` over the series in each bucket, in the totals and in the previous
//! period (they add up to the trend without `by`). Both are repeated until nothing changes.

use std::collections::{HashMap, HashSet};

use evident_wire::Micros;
use evident_wire::insight::{Counts, Field, Series, Trend, TrendPoint};
use roaring::RoaringTreemap;

use super::rollup::{RollDim, RollupItem, RollupRead, Who, aligned, decode_hours, hour_of};
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

/// What one cell has seen, exactly: its distinct customers and actors as sets.
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

    fn tally(&self) -> Tally {
        Tally {
            events: self.events,
            failures: self.failures,
            customers: self.customers.len() as u64,
            actors: self.actors.len() as u64,
        }
    }
}

/// A cell's numbers.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    events: u64,
    failures: u64,
    customers: u64,
    actors: u64,
}

impl Tally {
    fn counts(&self, hidden: bool) -> Counts {
        if hidden {
            return Counts { suppressed: true, ..Counts::default() };
        }
        Counts {
            events: Some(self.events),
            customers: Some(self.customers),
            actors: Some(self.actors),
            failures: Some(self.failures),
            failure_rate: (self.events > 0).then(|| self.failures as f64 / self.events as f64),
            suppressed: false,
        }
    }

    fn count(&mut self, who: Who) {
        self.add(who, 1);
    }

    fn add(&mut self, who: Who, n: u64) {
        match who {
            Who::Customer => self.customers += n,
            Who::Actor => self.actors += n,
        }
    }
}

/// One series: its buckets, the whole period and the one before.
#[derive(Default)]
struct Counting<C> {
    points: HashMap<usize, C>,
    total: C,
    previous: C,
}

/// Computes a trend: from the rollups when they answer it exactly, else by a scan.
pub fn trend(index: &dyn InsightIndex, tenant: &TenantId, query: &TrendQuery) -> Result<Trend> {
    let starts = query.clock.starts(query.from, query.to, MAX_BUCKETS).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "more than {MAX_BUCKETS} buckets: choose a larger bucket or a shorter range"
        ))
    })?;
    if let Some(series) = from_rollups(index, tenant, query, &starts)? {
        return Ok(answer(query, &starts, series));
    }
    let length = query.to.0 - query.from.0;
    let scan = Scan {
        from: Some(Micros(query.from.0 - length)),
        to: query.to,
        by_subject: false,
        types: None,
        with_entry: query.by.as_ref().is_some_and(Field::needs_entry),
    };
    let mut series: HashMap<Option<String>, Counting<Cell>> = HashMap::new();
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
    let series = series
        .into_iter()
        .map(|(key, c)| {
            let points = c.points.iter().map(|(i, cell)| (*i, cell.tally())).collect();
            (key, Counting { points, total: c.total.tally(), previous: c.previous.tally() })
        })
        .collect();
    Ok(answer(query, &starts, series))
}

/// The series of a trend from the hourly rollups, if the store keeps them and every boundary of
/// the question is a whole hour.
fn from_rollups(
    index: &dyn InsightIndex,
    tenant: &TenantId,
    query: &TrendQuery,
    starts: &[Micros],
) -> Result<Option<HashMap<Option<String>, Counting<Tally>>>> {
    let previous = Micros(query.from.0 - (query.to.0 - query.from.0));
    let bounds = [previous, query.from, query.to].into_iter().chain(starts.iter().copied());
    let Some(dim) = RollDim::of(query.by.as_ref()).filter(|_| aligned(bounds)) else { return Ok(None) };
    let (first, from, to) = (hour_of(previous), hour_of(query.from), hour_of(query.to));
    // The bucket of each hour of the period.
    let buckets: Vec<usize> =
        (from..to).map(|h| starts.partition_point(|s| hour_of(*s) <= h).saturating_sub(1)).collect();
    let read = RollupRead {
        dim,
        only: None,
        counts: Some(first..to),
        seen: vec![Who::Customer, Who::Actor],
        seen_hours: first..to,
    };
    let mut series: HashMap<Option<String>, Counting<Tally>> = HashMap::new();
    // Hour items' sets, united per series and kind until every item is read.
    let mut sets: HashMap<(Option<String>, Who), Counting<RoaringTreemap>> = HashMap::new();
    let key = |value: Option<&str>| match dim {
        RollDim::All => Some("all".to_owned()),
        _ => value.map(str::to_owned),
    };
    let rolled = index.rollups(tenant, &read, &mut |item| match item {
        RollupItem::Count { value, hour, events, failures } => {
            let counting = series.entry(key(value)).or_default();
            let cells = match hour < from {
                true => [Some(&mut counting.previous), None],
                false => [
                    Some(&mut counting.total),
                    Some(counting.points.entry(buckets[(hour - from) as usize]).or_default()),
                ],
            };
            for cell in cells.into_iter().flatten() {
                (cell.events, cell.failures) = (cell.events + events, cell.failures + failures);
            }
        }
        RollupItem::Seen { who, value, hours } => {
            let counting = series.entry(key(value)).or_default();
            let (mut before, mut during, mut last) = (false, false, None);
            for hour in decode_hours(hours).filter(|h| (first..to).contains(h)) {
                if hour < from {
                    before = true;
                    continue;
                }
                during = true;
                let bucket = buckets[(hour - from) as usize];
                if last != Some(bucket) {
                    counting.points.entry(bucket).or_default().count(who);
                    last = Some(bucket);
                }
            }
            if before {
                counting.previous.count(who);
            }
            if during {
                counting.total.count(who);
            }
        }
        RollupItem::Hour { who, value, hour, ids } if (first..to).contains(&hour) => {
            let united = sets.entry((key(value), who)).or_default();
            if hour < from {
                united.previous |= ids;
            } else {
                united.total |= ids;
                *united.points.entry(buckets[(hour - from) as usize]).or_default() |= ids;
            }
        }
        RollupItem::Hour { .. } => {}
    })?;
    for ((key, who), united) in sets {
        let counting = series.entry(key).or_default();
        for (bucket, ids) in &united.points {
            counting.points.entry(*bucket).or_default().add(who, ids.len());
        }
        counting.total.add(who, united.total.len());
        counting.previous.add(who, united.previous.len());
    }
    Ok(rolled.then_some(series))
}

/// The answer from each series' numbers: the 50 largest by events in the period.
fn answer(query: &TrendQuery, starts: &[Micros], series: HashMap<Option<String>, Counting<Tally>>) -> Trend {
    let mut ranked: Vec<(Option<String>, Counting<Tally>)> =
        series.into_iter().filter(|(_, c)| c.total.events > 0).collect();
    ranked.sort_by(|a, b| b.1.total.events.cmp(&a.1.total.events).then_with(|| a.0.cmp(&b.0)));
    let hidden = suppress(&ranked, starts.len(), query);
    ranked.truncate(MAX_SERIES);
    let empty = Tally::default();
    Trend {
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
    }
}

/// Which cells of each series are hidden: its points, its total, then its previous period. A
/// series' points and total are one group (the total is their sum; on a tie a point is hidden
/// before the total).
fn suppress(
    series: &[(Option<String>, Counting<Tally>)],
    buckets: usize,
    query: &TrendQuery,
) -> Vec<Vec<bool>> {
    let size = |cell: Option<&Tally>| cell.map_or(0, |c| c.customers);
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
