//! Trends: events, distinct customers, distinct actors and failures per value of a dimension and
//! time bucket, with the totals of the period and of the same length of time before it.

use std::collections::{HashMap, HashSet};

use evident_wire::Micros;
use evident_wire::insight::{Counts, Field, Series, Trend, TrendPoint};

use super::time::Clock;
use super::{Event, InsightIndex, Scan, Threshold, for_each_event};
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

    fn counts(&self, threshold: Threshold) -> Counts {
        let customers = self.customers.len() as u64;
        if threshold.hides(customers) {
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
            .map(|(key, counting)| Series {
                key,
                total: counting.total.counts(query.threshold),
                previous: counting.previous.counts(query.threshold),
                points: starts
                    .iter()
                    .enumerate()
                    .map(|(i, start)| TrendPoint {
                        start: start.to_rfc3339(),
                        counts: counting.points.get(&i).unwrap_or(&empty).counts(query.threshold),
                    })
                    .collect(),
            })
            .collect(),
    })
}
