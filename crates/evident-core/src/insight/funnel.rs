//! Funnels: how many customers reached each step in order within a window from the first step.
//!
//! For each customer, every event matching step 1 in `[from, to)` is a possible start; from it the
//! later steps are matched greedily (each the first matching event after the previous one, no later
//! than the start plus the window). The customer's depth is the best over its starts; its
//! breakdown key is that of the first start reaching that depth, and its time to convert the
//! shortest full conversion. Customers' events come from the store's path table (`paths.rs`) when
//! it keeps every field the question tests, otherwise from a scan by subject; the same walk runs
//! on either ([`Stepped`]), so the answers are equal.
//!
//! Suppression: a step of fewer than k customers is hidden, and so is a step whose drop-off from
//! the last shown step before it is fewer than k (the two shown counts would give it away); a
//! drop-off is shown only between two shown steps. With a breakdown, the groups of each step add
//! up to the step's total, so [`complement_preferring`] hides more groups there (first those that
//! already hide a step); both rules are repeated until nothing changes. Time to convert is shown only with the last step.

use std::collections::BTreeMap;

use evident_wire::Micros;
use evident_wire::insight::{Durations, Field, Funnel, FunnelGroup, FunnelStep, Step};

use super::paths::{Kind, for_each_customer};
use super::{
    InsightIndex, Scan, Stepped, Threshold, complement_preferring, for_each_subject, percentile, seconds,
};
use crate::error::Result;
use crate::store::TenantId;

/// A funnel question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelQuery {
    pub steps: Vec<Step>,
    /// Microseconds.
    pub within: i64,
    pub by: Option<Field>,
    pub from: Micros,
    pub to: Micros,
    /// List the subjects whose depth is `dropped_at - 1`.
    pub dropped_at: Option<usize>,
    pub threshold: Threshold,
}

/// What one customer reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Walk {
    depth: usize,
    start: usize,
    /// Shortest time from the first step to the last, when all were reached.
    converted_in: Option<i64>,
}

/// The best walk of one customer's events.
fn walk<E: Stepped>(events: &[E], query: &FunnelQuery) -> Walk {
    let mut best = Walk::default();
    for (start, event) in events.iter().enumerate() {
        let t0 = event.time();
        if t0 < query.from || t0 >= query.to || !query.steps[0].matches(|f| event.get(f)) {
            continue;
        }
        let (mut depth, mut last) = (1, start);
        for step in &query.steps[1..] {
            let next = events[last + 1..]
                .iter()
                .take_while(|e| e.time().0 - t0.0 <= query.within)
                .position(|e| step.matches(|f| e.get(f)));
            match next {
                Some(offset) => (depth, last) = (depth + 1, last + 1 + offset),
                None => break,
            }
        }
        if depth > best.depth {
            (best.depth, best.start) = (depth, start);
        }
        if depth == query.steps.len() {
            let took = events[last].time().0 - t0.0;
            best.converted_in = Some(best.converted_in.map_or(took, |t: i64| t.min(took)));
        }
    }
    best
}

/// Customers per depth and conversion times of one group.
#[derive(Default)]
struct Tally {
    /// `reached[d]`: customers whose depth is at least `d + 1`.
    reached: Vec<u64>,
    times: Vec<f64>,
}

impl Tally {
    fn add(&mut self, walk: &Walk, steps: usize) {
        self.reached.resize(steps, 0);
        for d in 0..walk.depth {
            self.reached[d] += 1;
        }
        self.times.extend(walk.converted_in.map(seconds));
    }

    fn reached(&self, d: usize) -> u64 {
        self.reached.get(d).copied().unwrap_or(0)
    }

    /// The steps, `hidden[d]` telling which are suppressed.
    fn steps(&self, query: &FunnelQuery, hidden: &[bool]) -> Vec<FunnelStep> {
        let first = self.reached(0);
        (0..query.steps.len())
            .map(|d| {
                let customers = self.reached(d);
                let shown = !hidden[d];
                FunnelStep {
                    step: d + 1,
                    query: query.steps[d].to_string(),
                    customers: shown.then_some(customers),
                    conversion: (shown && first > 0).then(|| customers as f64 / first as f64),
                    dropped: (d > 0 && shown && !hidden[d - 1]).then(|| self.reached(d - 1) - customers),
                    suppressed: !shown,
                }
            })
            .collect()
    }

    /// Hides the steps whose drop-off from the last shown step before them is fewer than k.
    fn hide_small_drops(&self, hidden: &mut [bool], threshold: Threshold) -> bool {
        let (mut changed, mut last) = (false, None);
        for (d, hidden) in hidden.iter_mut().enumerate() {
            if *hidden {
                continue;
            }
            if last.is_some_and(|before: u64| threshold.hides(before - self.reached(d))) {
                (*hidden, changed) = (true, true);
            } else {
                last = Some(self.reached(d));
            }
        }
        changed
    }

    /// Conversion times, shown when the last step is.
    fn durations(&mut self, last_hidden: bool) -> Durations {
        self.times.sort_by(f64::total_cmp);
        if last_hidden {
            return Durations::default();
        }
        Durations {
            customers: Some(self.times.len() as u64),
            median_seconds: percentile(&self.times, 0.5),
            p90_seconds: percentile(&self.times, 0.9),
        }
    }
}

/// Which steps of the whole funnel (first) and of each group (then) are hidden.
fn suppress(all: &Tally, groups: &[&Tally], steps: usize, threshold: Threshold) -> Vec<Vec<bool>> {
    let tables: Vec<&Tally> = std::iter::once(all).chain(groups.iter().copied()).collect();
    let mut hidden: Vec<Vec<bool>> =
        tables.iter().map(|t| (0..steps).map(|d| threshold.hides(t.reached(d))).collect()).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (tally, hidden) in tables.iter().zip(&mut hidden) {
            changed |= tally.hide_small_drops(hidden, threshold);
        }
        for d in 0..steps {
            let sizes: Vec<u64> = groups.iter().map(|g| g.reached(d)).collect();
            let mut cells: Vec<bool> = hidden[1..].iter().map(|row| row[d]).collect();
            let prefer: Vec<bool> = hidden[1..].iter().map(|row| row.contains(&true)).collect();
            if complement_preferring(&mut cells, &sizes, &prefer, threshold) {
                changed = true;
                hidden[1..].iter_mut().zip(cells).for_each(|(row, cell)| row[d] = cell);
            }
        }
    }
    hidden
}

/// The scan a funnel needs: first steps in `[from, to)`, later ones up to the window after.
fn scan(query: &FunnelQuery) -> Scan {
    let types: Option<Vec<String>> = query.steps.iter().map(|s| s.exact_type().map(str::to_owned)).collect();
    Scan {
        from: Some(query.from),
        to: Micros(query.to.0.saturating_add(query.within).saturating_add(1)),
        by_subject: true,
        types,
        with_entry: query.steps.iter().any(Step::needs_entry)
            || query.by.as_ref().is_some_and(Field::needs_entry),
    }
}

/// Customers' walks tallied, overall and per breakdown key.
struct Tallies<'q> {
    query: &'q FunnelQuery,
    all: Tally,
    groups: BTreeMap<Option<String>, Tally>,
    dropped: Vec<String>,
}

impl Tallies<'_> {
    /// Adds one customer's events (time order).
    fn add<E: Stepped>(&mut self, subject: Option<&str>, events: &[E]) {
        let (query, n) = (self.query, self.query.steps.len());
        let walk = walk(events, query);
        if walk.depth == 0 {
            return;
        }
        self.all.add(&walk, n);
        if let Some(by) = &query.by {
            let key = events[walk.start].get(by).map(str::to_owned);
            self.groups.entry(key).or_default().add(&walk, n);
        }
        if query.dropped_at == Some(walk.depth + 1) {
            self.dropped.extend(subject.map(str::to_owned));
        }
    }
}

/// Computes a funnel: from the store's path table when it answers every step and the breakdown
/// and no customer is listed ([`Kind::answers`]), otherwise from a scan by subject.
pub fn funnel(index: &dyn InsightIndex, tenant: &TenantId, query: &FunnelQuery) -> Result<Funnel> {
    let mut tallies = Tallies { query, all: Tally::default(), groups: BTreeMap::new(), dropped: Vec::new() };
    let scan = scan(query);
    let from_paths = query.dropped_at.is_none()
        && Kind::answers(&query.steps, query.by.as_ref())
        && read_paths(index, tenant, &scan, &mut tallies)?;
    if !from_paths {
        for_each_subject(index, tenant, &scan, |subject, events| tallies.add(Some(subject), events))?;
    }
    Ok(answer(query, tallies))
}

/// Tallies every customer of the path table over the scan's range; `false` if the store keeps
/// no path table (nothing tallied).
fn read_paths(
    index: &dyn InsightIndex,
    tenant: &TenantId,
    scan: &Scan,
    tallies: &mut Tallies,
) -> Result<bool> {
    let from = scan.from.unwrap_or(Micros(i64::MIN));
    for_each_customer(index, tenant, from..scan.to, |events| tallies.add(None, events))
}

/// The answer of tallied walks, suppressed.
fn answer(query: &FunnelQuery, tallies: Tallies) -> Funnel {
    let n = query.steps.len();
    let Tallies { mut all, groups, mut dropped, .. } = tallies;
    dropped.sort();
    let tallies: Vec<&Tally> = groups.values().collect();
    let mut hidden = suppress(&all, &tallies, n, query.threshold).into_iter();
    let all_hidden = hidden.next().expect("the whole funnel's row");
    Funnel {
        from: query.from.to_rfc3339(),
        to: query.to.to_rfc3339(),
        within_seconds: query.within / 1_000_000,
        min_customers: query.threshold.min_customers,
        steps: all.steps(query, &all_hidden),
        time_to_convert: all.durations(all_hidden[n - 1]),
        by: query.by.as_ref().map(Field::name),
        breakdown: groups
            .into_iter()
            .zip(hidden)
            .map(|((key, mut tally), hidden)| FunnelGroup {
                key,
                steps: tally.steps(query, &hidden),
                time_to_convert: tally.durations(hidden[n - 1]),
            })
            .collect(),
        dropped_subjects: query.dropped_at.map(|_| dropped),
    }
}
