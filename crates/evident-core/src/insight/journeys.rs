//! Journeys: each customer's events grouped into sessions by an inactivity gap; the most common
//! paths (event types in order, consecutive repeats folded, the first `depth` kept), the links
//! between positions for a Sankey chart, and repeat contacts: customers whose session starts
//! within a window after a resolved step.

use std::collections::{BTreeMap, HashMap};

use evident_wire::Micros;
use evident_wire::insight::{Journeys, Link, PathCount, Repeats, Step};

use super::{Event, InsightIndex, Scan, Threshold, for_each_subject};
use crate::error::Result;
use crate::store::TenantId;

/// A journeys question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JourneysQuery {
    pub from: Micros,
    pub to: Micros,
    /// Microseconds of inactivity that end a session.
    pub gap: i64,
    pub depth: usize,
    pub top: usize,
    /// The resolving step and the repeat window (microseconds).
    pub resolved: Option<(Step, i64)>,
    /// Only matching events make sessions and paths.
    pub only: Option<Step>,
    pub threshold: Threshold,
}

/// Sessions and distinct customers of a path or a link.
#[derive(Default)]
struct Taken {
    sessions: u64,
    customers: u64,
}

#[derive(Default)]
struct Tally {
    sessions: u64,
    customers: u64,
    paths: HashMap<Vec<String>, Taken>,
    links: BTreeMap<(usize, String, String), Taken>,
    resolved_customers: u64,
    repeat_customers: u64,
}

/// The sessions of one customer: index ranges of its events.
fn sessions(events: &[Event], gap: i64) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        if i == events.len() || events[i].row.time.0 - events[i - 1].row.time.0 > gap {
            ranges.push(start..i);
            start = i;
        }
    }
    ranges
}

fn path(events: &[Event], depth: usize) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    for event in events {
        if path.last() != Some(&event.row.event_type) {
            if path.len() == depth {
                break;
            }
            path.push(event.row.event_type.clone());
        }
    }
    path
}

/// Whether a session starts within the window after a resolved step.
fn repeats(events: &[Event], ranges: &[std::ops::Range<usize>], step: &Step, within: i64) -> (bool, bool) {
    let resolved: Vec<i64> =
        events.iter().filter(|e| step.matches(|f| e.get(f))).map(|e| e.row.time.0).collect();
    let repeat = ranges
        .iter()
        .map(|r| events[r.start].row.time.0)
        .any(|start| resolved.iter().any(|t| start > *t && start - t <= within));
    (!resolved.is_empty(), repeat)
}

impl Tally {
    fn add(&mut self, events: &[Event], query: &JourneysQuery) {
        let ranges = sessions(events, query.gap);
        self.customers += 1;
        self.sessions += ranges.len() as u64;
        let mut seen_paths = std::collections::HashSet::new();
        let mut seen_links = std::collections::HashSet::new();
        for range in &ranges {
            let path = path(&events[range.clone()], query.depth);
            for (d, from) in path.iter().enumerate() {
                let to = path.get(d + 1).cloned().unwrap_or_else(|| "(end)".to_owned());
                let key = (d + 1, from.clone(), to);
                let taken = self.links.entry(key.clone()).or_default();
                taken.sessions += 1;
                taken.customers += u64::from(seen_links.insert(key));
            }
            let taken = self.paths.entry(path.clone()).or_default();
            taken.sessions += 1;
            taken.customers += u64::from(seen_paths.insert(path));
        }
        if let Some((step, within)) = &query.resolved {
            let (resolved, repeat) = repeats(events, &ranges, step, *within);
            self.resolved_customers += u64::from(resolved);
            self.repeat_customers += u64::from(repeat);
        }
    }
}

/// Computes journeys.
pub fn journeys(index: &dyn InsightIndex, tenant: &TenantId, query: &JourneysQuery) -> Result<Journeys> {
    let only = query.only.as_ref();
    let scan = Scan {
        from: Some(query.from),
        to: query.to,
        by_subject: true,
        types: only.and_then(Step::exact_type).map(|t| vec![t.to_owned()]),
        with_entry: query.resolved.as_ref().is_some_and(|(s, _)| s.needs_entry())
            || only.is_some_and(Step::needs_entry),
    };
    let mut tally = Tally::default();
    for_each_subject(index, tenant, &scan, |_, events| match only {
        None => tally.add(events, query),
        Some(step) => {
            let kept: Vec<Event> = events.iter().filter(|e| step.matches(|f| e.get(f))).cloned().collect();
            if !kept.is_empty() {
                tally.add(&kept, query);
            }
        }
    })?;
    Ok(answer(tally, query))
}

fn answer(tally: Tally, query: &JourneysQuery) -> Journeys {
    let threshold = query.threshold;
    let mut paths: Vec<(Vec<String>, Taken)> = tally.paths.into_iter().collect();
    let before = paths.len();
    paths.retain(|(_, taken)| !threshold.hides(taken.customers));
    let suppressed_paths = (before - paths.len()) as u64;
    paths.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then_with(|| a.0.cmp(&b.0)));
    paths.truncate(query.top);
    Journeys {
        from: query.from.to_rfc3339(),
        to: query.to.to_rfc3339(),
        gap_seconds: query.gap / 1_000_000,
        min_customers: threshold.min_customers,
        sessions: tally.sessions,
        customers: tally.customers,
        paths: paths
            .into_iter()
            .map(|(path, t)| PathCount {
                path,
                sessions: Some(t.sessions),
                customers: Some(t.customers),
                suppressed: false,
            })
            .collect(),
        suppressed_paths,
        links: tally
            .links
            .into_iter()
            .filter(|(_, taken)| !threshold.hides(taken.customers))
            .map(|((depth, from, to), taken)| Link { depth, from, to, sessions: taken.sessions })
            .collect(),
        repeats: query.resolved.as_ref().map(|(step, within)| {
            let hidden = threshold.hides(tally.repeat_customers);
            Repeats {
                resolved: step.to_string(),
                within_seconds: within / 1_000_000,
                resolved_customers: tally.resolved_customers,
                repeat_customers: (!hidden).then_some(tally.repeat_customers),
                repeat_rate: (!hidden && tally.resolved_customers > 0)
                    .then(|| tally.repeat_customers as f64 / tally.resolved_customers as f64),
                suppressed: hidden,
            }
        }),
    }
}
