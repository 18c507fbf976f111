//! The path table: what a store keeps, off the acknowledgement path, so that funnels need not read
//! every event by subject. One row per (tenant, customer, UTC month) holds that customer's events
//! of the month in time order as compact pairs: the time since the previous pair (the first:
//! since the month's start) and a kind id, both LEB128 varints. A kind ([`Kind`]) is the five
//! fields a funnel step may test (type, action, outcome, first target's type, channel), numbered
//! per tenant in a dictionary the store keeps beside the rows. Evident's own events are not
//! folded, and nothing of an event's personal part is: customers are the store's integer ids of
//! the pseudonymous subject ids, as in the rollups.
//!
//! A store folds committed events ([`PathFold`]) in index order into rows kept sorted by time
//! ([`merge`]: a stable sort, so events of one time stay in index order, as a scan orders them),
//! each touched row rewritten once per fold, in the transaction that moves the table's watermark.
//! Questions read rows in (customer, month) order ([`PathItem`], [`for_each_customer`]);
//! `funnel.rs` and `journeys.rs` run on each customer's pairs the computation they run on scanned
//! events (`Stepped`), when every field they test is a kind's ([`Kind::answers`]).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::{DateTime, Datelike, NaiveDate};
use evident_wire::Micros;
use evident_wire::insight::{Field, Step};

use super::{Event, InsightIndex};
use crate::store::TenantId;

/// The fields of an event a path keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    pub event_type: String,
    pub action: String,
    pub outcome: String,
    pub target_type: Option<String>,
    pub channel: Option<String>,
}

impl Kind {
    pub fn of(event: &Event) -> Kind {
        Kind {
            event_type: event.row.event_type.clone(),
            action: event.row.action.clone(),
            outcome: event.row.outcome.clone(),
            target_type: event.target_type.clone(),
            channel: event.channel.clone(),
        }
    }

    /// The kind as stored in a dictionary: a JSON array of its five fields (null: no value).
    pub fn text(&self) -> String {
        serde_json::json!([self.event_type, self.action, self.outcome, self.target_type, self.channel])
            .to_string()
    }

    /// The inverse of [`Kind::text`]; `None` for text it did not write.
    pub fn parse(text: &str) -> Option<Kind> {
        let (event_type, action, outcome, target_type, channel) = serde_json::from_str(text).ok()?;
        Some(Kind { event_type, action, outcome, target_type, channel })
    }

    /// The value of a field, as [`Event::get`] answers it; `None` for a field no kind keeps.
    pub fn get(&self, field: &Field) -> Option<&str> {
        match field {
            Field::Type => Some(&self.event_type),
            Field::Action => Some(&self.action),
            Field::Outcome => Some(&self.outcome),
            Field::TargetType => self.target_type.as_deref(),
            Field::Channel => self.channel.as_deref(),
            Field::Source | Field::Actor | Field::Metadata(_) => None,
        }
    }

    /// Whether a kind keeps `field`.
    pub fn keeps(field: &Field) -> bool {
        matches!(field, Field::Type | Field::Action | Field::Outcome | Field::TargetType | Field::Channel)
    }

    /// Whether paths answer a question of these steps and breakdown exactly.
    pub fn answers(steps: &[Step], by: Option<&Field>) -> bool {
        steps.iter().all(|s| s.terms.iter().all(|(field, _)| Kind::keeps(field)))
            && by.is_none_or(Kind::keeps)
    }
}

/// The UTC month of a time, as months since January 1970.
pub fn month_of(t: Micros) -> i32 {
    let date = DateTime::from_timestamp_micros(t.0).unwrap_or_default().date_naive();
    (date.year() - 1970) * 12 + date.month0() as i32
}

/// The first microsecond of a month of [`month_of`].
pub fn month_start(month: i32) -> Micros {
    let (year, month0) = (1970 + month.div_euclid(12), month.rem_euclid(12) as u32);
    let date = NaiveDate::from_ymd_opt(year, month0 + 1, 1).unwrap_or_default();
    Micros(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros())
}

/// A customer's events of one month as (time, kind id), in time order.
pub type Pairs = Vec<(Micros, u32)>;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Pairs in time order as stored.
pub fn encode(month: i32, pairs: &[(Micros, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() * 4);
    let mut before = month_start(month).0;
    for (time, kind) in pairs {
        put_varint(&mut out, time.0.saturating_sub(before).max(0) as u64);
        put_varint(&mut out, u64::from(*kind));
        before = time.0;
    }
    out
}

/// The pairs of a stored row (a truncated last pair is left out; stores write whole rows).
pub fn decode(month: i32, bytes: &[u8]) -> impl Iterator<Item = (Micros, u32)> + '_ {
    let (mut rest, mut time) = (bytes, month_start(month).0);
    std::iter::from_fn(move || {
        let delta = varint(&mut rest)?;
        let kind = varint(&mut rest)?;
        time += delta as i64;
        Some((Micros(time), kind as u32))
    })
}

/// A stored row with new pairs (in index order, after every stored one) merged in: stable by
/// time, so pairs of one time stay in index order.
pub fn merge(month: i32, stored: &[u8], new: &[(Micros, u32)]) -> Vec<u8> {
    encode(month, &merged(month, stored, new))
}

/// The pairs of [`merge`], not yet encoded (for a store that splits them into several rows).
pub fn merged(month: i32, stored: &[u8], new: &[(Micros, u32)]) -> Pairs {
    let mut pairs: Pairs = decode(month, stored).collect();
    let sorted = new.windows(2).all(|w| w[0].0 <= w[1].0) && pairs.last().is_none_or(|l| new[0].0 >= l.0);
    pairs.extend_from_slice(new);
    if !sorted {
        pairs.sort_by_key(|(time, _)| *time);
    }
    pairs
}

/// Committed events folded into path changes, for a store to write in one transaction: per
/// (subject, month) the new pairs in index order, their kinds as indexes of `kinds`.
#[derive(Debug, Default)]
pub struct PathFold {
    pub kinds: Vec<Kind>,
    kind_index: HashMap<Kind, u32>,
    pub rows: BTreeMap<(String, i32), Vec<(Micros, u32)>>,
}

impl PathFold {
    /// Adds one committed event (none without a subject, and none of Evident's own).
    pub fn add(&mut self, event: &Event) {
        let Some(subject) = &event.row.subject else { return };
        if event.row.event_type.starts_with("evident.") {
            return;
        }
        let kind = Kind::of(event);
        let next = self.kinds.len() as u32;
        let index = *self.kind_index.entry(kind.clone()).or_insert(next);
        if index == next {
            self.kinds.push(kind);
        }
        let key = (subject.clone(), month_of(event.row.time));
        self.rows.entry(key).or_default().push((event.row.time, index));
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows with their kinds renumbered by `ids` (the fold's kind index to the store's id).
    pub fn rows_with_ids<'a>(&'a self, ids: &'a [u32]) -> impl Iterator<Item = (&'a str, i32, Pairs)> + 'a {
        self.rows.iter().map(move |((subject, month), pairs)| {
            (subject.as_str(), *month, pairs.iter().map(|(t, k)| (*t, ids[*k as usize])).collect())
        })
    }
}

/// What a question reads from the path table: the rows of these months.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRead {
    pub months: Range<i32>,
}

impl PathRead {
    /// The rows holding every event of `[from, to)`.
    pub fn covering(from: Micros, to: Micros) -> PathRead {
        PathRead { months: month_of(from)..month_of(Micros(to.0.saturating_sub(1))).saturating_add(1) }
    }
}

/// One item a store answers for a [`PathRead`]: a kind before any row that uses it, and rows in
/// (customer, month) order; a store may answer a (customer, month) as several rows, each in time
/// order, that overlap in time (SQLite's chunks), in the order they were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathItem<'a> {
    Kind { id: u32, text: &'a str },
    Row { customer: i64, month: i32, pairs: &'a [u8] },
}

/// Every customer of `read`'s rows with its events (times in `[from, to)`, their kinds) in time
/// order: the answer of a store's [`PathItem`]s grouped by customer, one customer in memory.
pub struct Customers<F: FnMut(&[(Micros, &Kind)])> {
    kinds: HashMap<u32, Kind>,
    current: Option<i64>,
    events: Vec<(Micros, u32)>,
    range: Range<Micros>,
    each: F,
    failed: Option<u32>,
}

impl<F: FnMut(&[(Micros, &Kind)])> Customers<F> {
    pub fn new(range: Range<Micros>, each: F) -> Self {
        Customers { kinds: HashMap::new(), current: None, events: Vec::new(), range, each, failed: None }
    }

    /// Takes one item of the store's answer.
    pub fn item(&mut self, item: PathItem<'_>) {
        match item {
            PathItem::Kind { id, text } => match Kind::parse(text) {
                Some(kind) => _ = self.kinds.insert(id, kind),
                None => self.failed = Some(id),
            },
            PathItem::Row { customer, month, pairs } => {
                if self.current != Some(customer) {
                    self.flush();
                    self.current = Some(customer);
                }
                let range = &self.range;
                self.events.extend(decode(month, pairs).filter(|(t, _)| range.contains(t)));
            }
        }
    }

    fn flush(&mut self) {
        if self.events.is_empty() {
            return;
        }
        // A store may keep a customer's month in pieces that overlap in time (SQLite's chunks):
        // stable, so pairs of one time stay in the order the store gave them (index order).
        self.events.sort_by_key(|(time, _)| *time);
        let mut resolved = Vec::with_capacity(self.events.len());
        for (time, id) in self.events.drain(..) {
            match self.kinds.get(&id) {
                Some(kind) => resolved.push((time, kind)),
                None => self.failed = Some(id),
            }
        }
        (self.each)(&resolved);
    }

    /// The last customer answered; an error if a row named a kind the store did not answer.
    pub fn finish(mut self) -> crate::Result<()> {
        self.flush();
        match self.failed {
            None => Ok(()),
            Some(id) => {
                Err(crate::Error::Integrity(format!("the path table names kind {id} it does not hold")))
            }
        }
    }
}

/// Every customer of the path table with its events of `range` (time order), one customer in
/// memory at a time; `false` (nothing answered) if the store keeps no path table.
pub fn for_each_customer(
    index: &dyn InsightIndex,
    tenant: &TenantId,
    range: Range<Micros>,
    each: impl FnMut(&[(Micros, &Kind)]),
) -> crate::Result<bool> {
    let read = PathRead::covering(range.start, range.end);
    let mut customers = Customers::new(range, each);
    if !index.paths(tenant, &read, &mut |item| customers.item(item))? {
        return Ok(false);
    }
    customers.finish()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insight::Row;

    #[test]
    fn months_and_pairs_round_trip() {
        // 2026-11-01T00:00:00Z, 2026-12-31T23:59:59Z, 1969-12-31T23:00:00Z.
        let november = month_of(Micros(1_793_491_200_000_000));
        assert_eq!(november, 56 * 12 + 10);
        assert_eq!(month_start(november), Micros(1_793_491_200_000_000));
        assert_eq!(month_of(Micros(1_798_761_599_000_000)), november + 1);
        assert_eq!(month_of(Micros(-3_600_000_000)), -1);
        assert_eq!(month_start(-1), Micros(-31 * 24 * 3_600_000_000));
        let t = |s: i64| Micros(1_793_491_200_000_000 + s * 1_000_000);
        let pairs = vec![(t(0), 1), (t(5), 300), (t(5), 2), (t(86_400 * 29), 7)];
        let bytes = encode(november, &pairs);
        assert_eq!(bytes.len(), 1 + 1 + 4 + 2 + 1 + 1 + 6 + 1);
        assert_eq!(decode(november, &bytes).collect::<Pairs>(), pairs);
        // Out of order: sorted by time, a tie after the stored pair of that time.
        let merged = merge(november, &bytes, &[(t(5), 9), (t(1), 4)]);
        let expect = vec![(t(0), 1), (t(1), 4), (t(5), 300), (t(5), 2), (t(5), 9), (t(86_400 * 29), 7)];
        assert_eq!(decode(november, &merged).collect::<Pairs>(), expect);
        assert_eq!(PathRead::covering(t(0), t(86_400 * 30)).months, november..november + 1);
        assert_eq!(PathRead::covering(t(-1), t(86_400 * 30 + 1)).months, november - 1..november + 2);
    }

    #[test]
    fn a_fold_keeps_kinds_once_and_skips_what_insight_leaves_out() {
        let event = |kind: &str, subject: Option<&str>, time: i64| Event {
            row: Row {
                event_type: kind.into(),
                outcome: "success".into(),
                subject: subject.map(str::to_owned),
                time: Micros(time),
                ..Row::default()
            },
            channel: Some("chat".into()),
            ..Event::default()
        };
        let mut fold = PathFold::default();
        fold.add(&event("contact.opened", Some("s1"), 10));
        fold.add(&event("contact.opened", Some("s2"), 5));
        fold.add(&event("contact.closed", Some("s1"), 3));
        fold.add(&event("contact.closed", None, 3));
        fold.add(&event("evident.audit.insight", Some("s1"), 3));
        assert_eq!(fold.kinds.len(), 2);
        assert_eq!(Kind::parse(&fold.kinds[0].text()), Some(fold.kinds[0].clone()));
        assert_eq!(fold.kinds[1].get(&Field::Channel), Some("chat"));
        let rows: Vec<_> = fold.rows_with_ids(&[7, 8]).collect();
        assert_eq!(
            rows,
            vec![("s1", 0, vec![(Micros(10), 7), (Micros(3), 8)]), ("s2", 0, vec![(Micros(5), 7)])]
        );
        let steps = [Step::parse("s", "type:a channel:chat").unwrap()];
        assert!(Kind::answers(&steps, Some(&Field::TargetType)));
        assert!(!Kind::answers(&steps, Some(&Field::Source)));
        assert!(!Kind::answers(&[Step::parse("s", "metadata.team:blue").unwrap()], None));
    }
}
