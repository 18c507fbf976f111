//! Service measures from steps the tenant names: `Duration` (from a first step to the next last
//! step of the same customer, grouped by a dimension of the opening event: team, channel),
//! `Workload` (events and customers per actor) and `Coverage` (the actors serving most customers
//! per value of a dimension, a customer segment).
//!
//! Suppression: a row of fewer than k customers, and by [`complement`] the smallest others needed
//! so that none is the answer without `by` (or a segment's whole) minus the shown rows: over all
//! rows of `Duration` and `Workload`, over the actors of each segment of `Coverage`.

use std::collections::{HashMap, HashSet};

use evident_wire::Micros;
use evident_wire::insight::{Field, Measure, MeasureRow, Step};

use super::{
    Event, InsightIndex, Scan, Threshold, complement, for_each_event, for_each_subject, percentile, seconds,
};
use crate::error::Result;
use crate::store::TenantId;

/// Which measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Duration { first: Step, last: Step },
    Workload,
    Coverage { top: usize },
}

/// A measure question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasureQuery {
    pub kind: Kind,
    pub by: Option<Field>,
    pub from: Micros,
    pub to: Micros,
    pub threshold: Threshold,
}

/// A group's key and, for coverage, its actor.
type Cell = (Option<String>, Option<String>);

#[derive(Default)]
struct Group {
    count: u64,
    customers: HashSet<String>,
    times: Vec<f64>,
}

impl Group {
    fn row(mut self, key: Option<String>, actor: Option<String>, hidden: bool) -> MeasureRow {
        let customers = self.customers.len() as u64;
        self.times.sort_by(f64::total_cmp);
        MeasureRow {
            key,
            actor,
            count: (!hidden).then_some(self.count),
            customers: (!hidden).then_some(customers),
            median_seconds: if hidden { None } else { percentile(&self.times, 0.5) },
            p90_seconds: if hidden { None } else { percentile(&self.times, 0.9) },
            suppressed: hidden,
        }
    }

    fn add(&mut self, subject: Option<&String>) {
        self.count += 1;
        if let Some(subject) = subject.filter(|s| !self.customers.contains(*s)) {
            self.customers.insert(subject.clone());
        }
    }
}

/// Pairs each opening event with the customer's next closing one.
fn durations(
    events: &[Event],
    first: &Step,
    last: &Step,
    by: Option<&Field>,
    groups: &mut HashMap<Option<String>, Group>,
) {
    let mut open: Option<&Event> = None;
    for event in events {
        match open {
            Some(opened) if last.matches(|f| event.get(f)) => {
                let group = groups.entry(opened.key(by)).or_default();
                group.add(event.row.subject.as_ref());
                group.times.push(seconds(event.row.time.0 - opened.row.time.0));
                open = None;
            }
            None if first.matches(|f| event.get(f)) => open = Some(event),
            _ => {}
        }
    }
}

/// Computes a measure.
pub fn measure(index: &dyn InsightIndex, tenant: &TenantId, query: &MeasureQuery) -> Result<Measure> {
    let by = query.by.as_ref();
    let mut scan = Scan {
        from: Some(query.from),
        to: query.to,
        by_subject: false,
        types: None,
        with_entry: by.is_some_and(Field::needs_entry),
    };
    let mut groups: HashMap<Cell, Group> = HashMap::new();
    let (name, rows) = match &query.kind {
        Kind::Duration { first, last } => {
            scan.by_subject = true;
            scan.with_entry |= first.needs_entry() || last.needs_entry();
            let mut by_key: HashMap<Option<String>, Group> = HashMap::new();
            for_each_subject(index, tenant, &scan, |_, events| {
                durations(events, first, last, by, &mut by_key)
            })?;
            let groups = by_key.into_iter().map(|(key, group)| ((key, None), group)).collect();
            ("duration", rows(groups, query.threshold))
        }
        Kind::Workload => {
            for_each_event(index, tenant, &scan, |e| {
                groups.entry((Some(e.row.actor.clone()), None)).or_default().add(e.row.subject.as_ref())
            })?;
            ("workload", rows(groups.into_iter().collect(), query.threshold))
        }
        Kind::Coverage { top } => {
            for_each_event(index, tenant, &scan, |e| {
                groups.entry((e.key(by), Some(e.row.actor.clone()))).or_default().add(e.row.subject.as_ref())
            })?;
            ("coverage", coverage(groups, *top, query.threshold))
        }
    };
    let mut rows: Vec<MeasureRow> = rows;
    if name != "coverage" {
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    }
    Ok(Measure {
        kind: name.to_owned(),
        from: query.from.to_rfc3339(),
        to: query.to.to_rfc3339(),
        by: if name == "workload" { Some("actor".to_owned()) } else { by.map(Field::name) },
        min_customers: query.threshold.min_customers,
        rows,
    })
}

/// Every group as a row, hidden as [`complement`] says over all of them.
fn rows(groups: Vec<(Cell, Group)>, threshold: Threshold) -> Vec<MeasureRow> {
    let hidden = hidden(&groups, threshold);
    groups
        .into_iter()
        .zip(hidden)
        .map(|(((key, actor), group), hidden)| group.row(key, actor, hidden))
        .collect()
}

/// Which of `groups` (which add up to something the caller can learn) are hidden.
fn hidden(groups: &[(Cell, Group)], threshold: Threshold) -> Vec<bool> {
    let sizes: Vec<u64> = groups.iter().map(|(_, g)| g.customers.len() as u64).collect();
    let mut hidden: Vec<bool> = sizes.iter().map(|n| threshold.hides(*n)).collect();
    complement(&mut hidden, &sizes, threshold);
    hidden
}

/// The `top` actors by customers (then events) per group, groups in key order; hidden as
/// [`complement`] says over all the actors of a group, before the top are taken.
fn coverage(groups: HashMap<Cell, Group>, top: usize, threshold: Threshold) -> Vec<MeasureRow> {
    let mut ranked: Vec<(Cell, Group)> = groups.into_iter().collect();
    ranked.sort_by(|a, b| {
        (a.0.0.cmp(&b.0.0))
            .then_with(|| b.1.customers.len().cmp(&a.1.customers.len()))
            .then_with(|| b.1.count.cmp(&a.1.count))
            .then_with(|| a.0.1.cmp(&b.0.1))
    });
    let mut rows = Vec::new();
    while !ranked.is_empty() {
        let key = ranked[0].0.0.clone();
        let end = ranked.iter().position(|(cell, _)| cell.0 != key).unwrap_or(ranked.len());
        let segment: Vec<(Cell, Group)> = ranked.drain(..end).collect();
        let hidden = hidden(&segment, threshold);
        for (((key, actor), group), hidden) in segment.into_iter().zip(hidden).take(top) {
            rows.push(group.row(key, actor, hidden));
        }
    }
    rows
}
