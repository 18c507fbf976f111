//! Customer insight: trends, funnels, journeys, cohorts and service measures computed from the
//! skeleton columns every store indexes (type, action, outcome, source, actor, subject, time) and,
//! when a question needs them, the clear fields of the stored entry (`origin.service` as the
//! channel, the first target's type, clear metadata). Stores answer [`InsightIndex`] pages in one
//! of two orders; the computation here is the same for every store, so answers are exact and equal
//! on both.
//!
//! Privacy: answers are aggregates over subjects; the subject is never a dimension; a cell counted
//! over fewer distinct customers than the tenant's `min_customers` ([`settings`]) is suppressed
//! for callers without personal access ([`Threshold`]), and so are the cells [`complement`] picks
//! so that no hidden cell is a shown total minus shown cells. Evident's own events (`evident.*`) are
//! left out of every insight (a query's self-audit record would otherwise count in the next).
//!
//! `trend.rs`, `funnel.rs`, `journeys.rs`, `cohorts.rs`, `measure.rs`: one question each;
//! `time.rs`: buckets and periods in a time zone (a fixed offset or an IANA name); `rollup.rs`: the
//! hourly rollups a store may keep, which trends and cohorts read instead of the events when they
//! answer exactly; `paths.rs`: the per-customer path table, which funnels and journeys read
//! instead.

pub mod cohorts;
pub mod funnel;
pub mod journeys;
pub mod measure;
pub mod paths;
pub mod rollup;
pub mod time;
pub mod trend;

use std::collections::BTreeMap;

use evident_wire::Micros;
use evident_wire::insight::{Field, InsightSettings};

use crate::error::Result;
use crate::store::{KeyStore, TenantId};

/// Which events a scan reads, and in which order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Event time at or after (none: from the first event).
    pub from: Option<Micros>,
    /// Event time before.
    pub to: Micros,
    /// Ordered by (subject, time, index), events with a subject only; otherwise by (time, index).
    pub by_subject: bool,
    /// Only events of these types (none: every type).
    pub types: Option<Vec<String>>,
    /// Whether rows carry the stored entry (for channel, target type and metadata).
    pub with_entry: bool,
}

/// One event as a scan answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub index: u64,
    pub time: Micros,
    pub event_type: String,
    pub action: String,
    pub outcome: String,
    pub source: String,
    pub actor: String,
    pub subject: Option<String>,
    /// The canonical skeleton, when the scan asked for it.
    pub entry: Option<Vec<u8>>,
}

/// Scans for insight. Reads only committed events; a page is a consistent read of the store.
pub trait InsightIndex: Send + Sync {
    /// Up to `limit` events of the tenant matching `scan`, in its order, strictly after `after`
    /// (the last row of the previous page).
    fn insight_rows(
        &self,
        tenant: &TenantId,
        scan: &Scan,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>>;

    /// Answers `read` from the store's rollups ([`rollup`]) in one consistent read, after they
    /// cover every event committed before the call; `false` (and nothing answered) when the
    /// store keeps none, so the question is answered by a scan.
    fn rollups(
        &self,
        _tenant: &TenantId,
        _read: &rollup::RollupRead,
        _each: &mut dyn FnMut(rollup::RollupItem<'_>),
    ) -> Result<bool> {
        Ok(false)
    }

    /// Answers `read` from the store's path table ([`paths`]), after it covers every event
    /// committed before the call: [`paths::PathItem`]s, each customer's rows from one consistent
    /// read; `false` (and nothing answered) when the store keeps none, so the question scans.
    fn paths(
        &self,
        _tenant: &TenantId,
        _read: &paths::PathRead,
        _each: &mut dyn FnMut(paths::PathItem<'_>),
    ) -> Result<bool> {
        Ok(false)
    }
}

/// Rows per page of a scan.
const PAGE: usize = 20_000;

/// An event with the clear fields insight reads from its entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub row: Row,
    pub channel: Option<String>,
    pub target_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct Skeleton {
    #[serde(default)]
    origin: Option<Origin>,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

#[derive(serde::Deserialize, Default)]
struct Origin {
    service: Option<String>,
}

#[derive(serde::Deserialize)]
struct Target {
    #[serde(rename = "type")]
    target_type: String,
}

impl Event {
    /// An event of a row, with the clear fields of its entry when the row carries it.
    pub fn new(mut row: Row) -> Event {
        let Some(entry) = row.entry.take() else { return Event { row, ..Event::default() } };
        let skeleton: Skeleton = serde_json::from_slice(&entry).unwrap_or_default();
        Event {
            row,
            channel: skeleton.origin.and_then(|o| o.service),
            target_type: skeleton.targets.into_iter().next().map(|t| t.target_type),
            metadata: skeleton
                .metadata
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
        }
    }

    /// The value of a field of this event.
    pub fn get(&self, field: &Field) -> Option<&str> {
        match field {
            Field::Type => Some(&self.row.event_type),
            Field::Action => Some(&self.row.action),
            Field::Outcome => Some(&self.row.outcome),
            Field::Source => Some(&self.row.source),
            Field::Channel => self.channel.as_deref(),
            Field::Actor => Some(&self.row.actor),
            Field::TargetType => self.target_type.as_deref(),
            Field::Metadata(key) => self.metadata.get(key).map(String::as_str),
        }
    }

    /// The value of an optional dimension as a group key.
    pub fn key(&self, by: Option<&Field>) -> Option<String> {
        match by {
            None => Some("all".to_owned()),
            Some(field) => self.get(field).map(str::to_owned),
        }
    }
}

/// What a question reads of one of a customer's events: a scanned [`Event`], or a pair of the
/// path table ([`paths`]), so that one computation runs on either.
pub(crate) trait Stepped {
    fn time(&self) -> Micros;
    fn get(&self, field: &Field) -> Option<&str>;
}

impl Stepped for Event {
    fn time(&self) -> Micros {
        self.row.time
    }

    fn get(&self, field: &Field) -> Option<&str> {
        Event::get(self, field)
    }
}

impl Stepped for (Micros, &paths::Kind) {
    fn time(&self) -> Micros {
        self.0
    }

    fn get(&self, field: &Field) -> Option<&str> {
        self.1.get(field)
    }
}

/// Every event of `scan` in its order, Evident's own left out.
pub fn for_each_event(
    index: &dyn InsightIndex,
    tenant: &TenantId,
    scan: &Scan,
    mut each: impl FnMut(Event),
) -> Result<()> {
    let mut after: Option<Row> = None;
    loop {
        let rows = index.insight_rows(tenant, scan, after.as_ref(), PAGE)?;
        let full = rows.len() == PAGE;
        after = rows.last().map(|row| Row { entry: None, ..row.clone() });
        for row in rows {
            if !row.event_type.starts_with("evident.") {
                each(Event::new(row));
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Every subject of `scan` (which must be `by_subject`) with its events in time order.
pub fn for_each_subject(
    index: &dyn InsightIndex,
    tenant: &TenantId,
    scan: &Scan,
    mut each: impl FnMut(&str, &[Event]),
) -> Result<()> {
    debug_assert!(scan.by_subject);
    let mut current: Vec<Event> = Vec::new();
    for_each_event(index, tenant, scan, |event| {
        if current.first().is_some_and(|first| first.row.subject != event.row.subject) {
            let subject = current[0].row.subject.clone().unwrap_or_default();
            each(&subject, &current);
            current.clear();
        }
        current.push(event);
    })?;
    if let Some(first) = current.first() {
        let subject = first.row.subject.clone().unwrap_or_default();
        each(&subject, &current);
    }
    Ok(())
}

/// Who sees small cells: `min_customers` 0 suppresses nothing (callers with personal access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub min_customers: u64,
}

impl Threshold {
    /// Whether a cell of `customers` distinct subjects is hidden (an empty cell never is).
    pub fn hides(&self, customers: u64) -> bool {
        customers > 0 && customers < self.min_customers
    }
}

/// Complementary suppression over one set of cells that add up to something the caller can
/// learn (a total in the same answer, or the answer to the same question without its breakdown):
/// when any is hidden, the smallest shown ones (by customers, then position) are hidden too until
/// at least two are and the hidden ones count at least k customers together. A hidden cell is
/// then never the total minus the shown ones; only the sum of the hidden ones is. `sizes` are the
/// cells' distinct customers (an empty cell is never hidden); answers whether it hid another.
pub fn complement(hidden: &mut [bool], sizes: &[u64], threshold: Threshold) -> bool {
    complement_preferring(hidden, sizes, &[], threshold)
}

/// [`complement`], hiding first the cells `prefer` marks (say, those whose other group already
/// lost a cell, so that the loss stays in as few rows as it can).
pub fn complement_preferring(
    hidden: &mut [bool],
    sizes: &[u64],
    prefer: &[bool],
    threshold: Threshold,
) -> bool {
    let mut changed = false;
    loop {
        let (count, sum) = hidden
            .iter()
            .zip(sizes)
            .filter(|(h, _)| **h)
            .fold((0, 0), |(count, sum), (_, size)| (count + 1, sum + size));
        if count == 0 || (count >= 2 && sum >= threshold.min_customers) {
            return changed;
        }
        let smallest = (0..sizes.len())
            .filter(|&i| !hidden[i] && sizes[i] > 0)
            .min_by_key(|&i| (!prefer.get(i).copied().unwrap_or(false), sizes[i], i));
        let Some(i) = smallest else { return changed };
        hidden[i] = true;
        changed = true;
    }
}

/// Whether a part of a shown whole may be shown: `part` and `whole - part` are each empty or of
/// at least k customers (a part of fewer is hidden, and so is one whose rest is fewer, since the
/// rest is the whole minus it).
pub fn splits(threshold: Threshold, part: u64, whole: u64) -> bool {
    !threshold.hides(part) && !threshold.hides(whole.saturating_sub(part))
}

/// Nearest-rank percentile (`q` in 0..=1) of sorted seconds.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Microseconds as seconds.
pub fn seconds(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// A tenant's insight settings (`insight/<tenant>/settings` in service state), the default (k = 5)
/// if never set.
pub fn settings(store: &dyn KeyStore, tenant: &TenantId) -> Result<InsightSettings> {
    crate::privacy::load_blob(store, &format!("insight/{tenant}/settings"))
}

/// Replaces a tenant's insight settings, durably (the caller checks them).
pub fn put_settings(store: &dyn KeyStore, tenant: &TenantId, settings: &InsightSettings) -> Result<()> {
    crate::privacy::save_blob(store, &format!("insight/{tenant}/settings"), settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_thresholds() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&sorted, 0.5), Some(5.0));
        assert_eq!(percentile(&sorted, 0.9), Some(9.0));
        assert_eq!(percentile(&[3.0], 0.9), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
        let k = Threshold { min_customers: 5 };
        assert!(k.hides(4) && !k.hides(5) && !k.hides(0));
        assert!(!Threshold { min_customers: 0 }.hides(1));
        assert!(splits(k, 5, 10) && splits(k, 10, 10) && !splits(k, 8, 10) && !splits(k, 2, 10));
    }

    #[test]
    fn complementary_suppression_hides_the_next_smallest() {
        let k = Threshold { min_customers: 5 };
        let check = |sizes: &[u64], expect: &[bool]| {
            let mut hidden: Vec<bool> = sizes.iter().map(|n| k.hides(*n)).collect();
            complement(&mut hidden, sizes, k);
            assert_eq!(hidden, expect, "{sizes:?}");
        };
        check(&[10, 3, 0, 7, 6], &[false, true, false, false, true]);
        check(&[10, 3, 2, 7], &[false, true, true, false]);
        check(&[10, 2, 1, 7], &[false, true, true, true]); // 2 + 1 < k: one more
        check(&[10, 3, 2, 1, 7], &[false, true, true, true, false]);
        check(&[10, 20], &[false, false]);
        check(&[4, 0], &[true, false]); // nothing else to hide: the total is hidden too (4 < k)
        let mut open = vec![false, false];
        assert!(!complement(&mut open, &[1, 2], Threshold { min_customers: 0 }));
    }

    #[test]
    fn events_read_clear_fields_of_the_entry() {
        let entry = br#"{"origin":{"service":"phone"},"targets":[{"type":"ticket","id":"t1"}],"metadata":{"team":"blue"}}"#;
        let event = Event::new(Row { event_type: "a".into(), entry: Some(entry.to_vec()), ..Row::default() });
        assert_eq!(event.get(&Field::Channel), Some("phone"));
        assert_eq!(event.get(&Field::TargetType), Some("ticket"));
        assert_eq!(event.get(&Field::Metadata("team".into())), Some("blue"));
        assert_eq!(event.key(None), Some("all".into()));
        assert_eq!(event.key(Some(&Field::Metadata("x".into()))), None);
    }
}
