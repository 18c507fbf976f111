//! Journeys: each customer's events grouped into sessions by an inactivity gap; the most common
//! paths (event types in order, consecutive repeats folded, the first `depth` kept), the links
//! between positions for a Sankey chart, and repeat contacts: customers whose session starts
//! within a window after a resolved step. Customers' events come from the store's path table when
//! it keeps every field the filter and the resolving step test (`paths.rs`), else from a scan.
//!
//! Suppression: the totals when the customers are fewer than k; paths and links of fewer than k
//! customers, and by [`complement`] the others needed so that none is worked out by subtraction
//! (`answer`, `hide_links`); repeat contacts unless both those who came back and those who did
//! not are empty or at least k.

use std::collections::{BTreeMap, HashMap};

use evident_wire::Micros;
use evident_wire::insight::{Field, Journeys, Link, PathCount, Repeats, Step};

use super::paths::{Kind, for_each_customer};
use super::{InsightIndex, Scan, Stepped, Threshold, complement, for_each_subject, splits};
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
fn sessions<E: Stepped>(events: &[E], gap: i64) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        if i == events.len() || events[i].time().0 - events[i - 1].time().0 > gap {
            ranges.push(start..i);
            start = i;
        }
    }
    ranges
}

fn path<E: Stepped>(events: &[E], depth: usize) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    for event in events {
        let event_type = event.get(&Field::Type).unwrap_or_default();
        if path.last().is_none_or(|last| last != event_type) {
            if path.len() == depth {
                break;
            }
            path.push(event_type.to_owned());
        }
    }
    path
}

/// Whether a session starts within the window after a resolved step.
fn repeats<E: Stepped>(
    events: &[E],
    ranges: &[std::ops::Range<usize>],
    step: &Step,
    within: i64,
) -> (bool, bool) {
    let resolved: Vec<i64> =
        events.iter().filter(|e| step.matches(|f| e.get(f))).map(|e| e.time().0).collect();
    let repeat = ranges
        .iter()
        .map(|r| events[r.start].time().0)
        .any(|start| resolved.iter().any(|t| start > *t && start - t <= within));
    (!resolved.is_empty(), repeat)
}

impl Tally {
    fn add<E: Stepped>(&mut self, events: &[E], query: &JourneysQuery) {
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

    /// Adds one customer's events (time order), those `only` keeps.
    fn add_kept<E: Stepped + Clone>(&mut self, events: &[E], query: &JourneysQuery) {
        match &query.only {
            None => self.add(events, query),
            Some(step) => {
                let kept: Vec<E> = events.iter().filter(|e| step.matches(|f| e.get(f))).cloned().collect();
                if !kept.is_empty() {
                    self.add(&kept, query);
                }
            }
        }
    }
}

/// Computes journeys: from the store's path table when it keeps every field the `only` and
/// resolving steps test (`paths.rs`), otherwise from a scan by subject.
pub fn journeys(index: &dyn InsightIndex, tenant: &TenantId, query: &JourneysQuery) -> Result<Journeys> {
    let only = query.only.as_ref();
    let mut tally = Tally::default();
    let steps: Vec<Step> = only.into_iter().chain(query.resolved.iter().map(|(s, _)| s)).cloned().collect();
    if Kind::answers(&steps, None)
        && for_each_customer(index, tenant, query.from..query.to, |events| tally.add_kept(events, query))?
    {
        return Ok(answer(tally, query));
    }
    let scan = Scan {
        from: Some(query.from),
        to: query.to,
        by_subject: true,
        types: only.and_then(Step::exact_type).map(|t| vec![t.to_owned()]),
        with_entry: query.resolved.as_ref().is_some_and(|(s, _)| s.needs_entry())
            || only.is_some_and(Step::needs_entry),
    };
    for_each_subject(index, tenant, &scan, |_, events| tally.add_kept(events, query))?;
    Ok(answer(tally, query))
}

fn answer(tally: Tally, query: &JourneysQuery) -> Journeys {
    let threshold = query.threshold;
    let totals_shown = !threshold.hides(tally.customers);
    let mut paths: Vec<(Vec<String>, Taken)> = tally.paths.into_iter().collect();
    paths.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then_with(|| a.0.cmp(&b.0)));
    let sizes: Vec<u64> = paths.iter().map(|(_, t)| t.customers).collect();
    let mut hidden: Vec<bool> = sizes.iter().map(|n| threshold.hides(*n)).collect();
    complement(&mut hidden, &sizes, threshold);
    let suppressed_paths = hidden.iter().filter(|h| **h).count() as u64;
    let paths: Vec<PathCount> = paths
        .into_iter()
        .zip(hidden)
        .filter(|(_, hidden)| !hidden)
        .take(query.top)
        .map(|((path, t), _)| PathCount {
            path,
            sessions: Some(t.sessions),
            customers: Some(t.customers),
            suppressed: false,
        })
        .collect();
    let links: Vec<((usize, String, String), Taken)> = tally.links.into_iter().collect();
    let hidden = hide_links(&links, threshold);
    Journeys {
        from: query.from.to_rfc3339(),
        to: query.to.to_rfc3339(),
        gap_seconds: query.gap / 1_000_000,
        min_customers: threshold.min_customers,
        sessions: totals_shown.then_some(tally.sessions),
        customers: totals_shown.then_some(tally.customers),
        paths,
        suppressed_paths,
        links: links
            .into_iter()
            .zip(hidden)
            .filter(|(_, hidden)| !hidden)
            .map(|(((depth, from, to), taken), _)| Link { depth, from, to, sessions: taken.sessions })
            .collect(),
        repeats: query.resolved.as_ref().map(|(step, within)| {
            let (resolved, repeat) = (tally.resolved_customers, tally.repeat_customers);
            let resolved_shown = !threshold.hides(resolved);
            let shown = resolved_shown && splits(threshold, repeat, resolved);
            Repeats {
                resolved: step.to_string(),
                within_seconds: within / 1_000_000,
                resolved_customers: resolved_shown.then_some(resolved),
                repeat_customers: shown.then_some(repeat),
                repeat_rate: (shown && resolved > 0).then(|| repeat as f64 / resolved as f64),
                suppressed: !shown,
            }
        }),
    }
}

/// Which links are left out: those of fewer than k customers, and by [`complement`] those that
/// the others would give away: the first links (they add up to the sessions), and the links into
/// and out of one step at one position (what comes in goes out). Repeated until nothing changes.
fn hide_links(links: &[((usize, String, String), Taken)], threshold: Threshold) -> Vec<bool> {
    let mut hidden: Vec<bool> = links.iter().map(|(_, t)| threshold.hides(t.customers)).collect();
    // (position, step) -> the links into and out of it; (0, "") -> the first links.
    let mut groups: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    for (i, ((depth, from, to), _)) in links.iter().enumerate() {
        groups.entry((*depth, from)).or_default().push(i);
        groups.entry((depth + 1, to)).or_default().push(i);
        if *depth == 1 {
            groups.entry((0, "")).or_default().push(i);
        }
    }
    let mut changed = true;
    while changed {
        changed = false;
        for members in groups.values() {
            let sizes: Vec<u64> = members.iter().map(|&i| links[i].1.customers).collect();
            let mut cells: Vec<bool> = members.iter().map(|&i| hidden[i]).collect();
            if complement(&mut cells, &sizes, threshold) {
                changed = true;
                members.iter().zip(cells).for_each(|(&i, cell)| hidden[i] = cell);
            }
        }
    }
    hidden
}
