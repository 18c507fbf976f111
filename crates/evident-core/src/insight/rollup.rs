//! Incremental rollups: what a store keeps, off the acknowledgement path, so that trends and
//! cohorts need not read every event. A store folds committed events ([`Fold`]) into two tables
//! in the same transaction as its watermark, so a read that waits for the watermark sees exact
//! numbers:
//!
//! - counts: events and failures per (dimension, value, UTC hour), additive over hours;
//! - seen: per (dimension, value, customer) and per (dimension, value, actor) the sorted distinct
//!   UTC hours it had events in ([`encode_hours`]), from which the distinct customers and actors
//!   of any range of whole hours are exact. A store may keep the same facts transposed instead:
//!   per (dimension, value, UTC hour) the set of its numbers for the customers, and for the
//!   actors, seen in that hour ([`RollupItem::Hour`]), so that a range is the union of its hours'
//!   sets and a question reads one row per hour rather than one per customer.
//!
//! The rolled dimensions are [`RollDim`]'s: every [`Field`] but the actor (one row per actor and
//! customer would be as big as the events) and metadata (open-ended keys). Evident's own events
//! are not folded, as insight leaves them out.
//!
//! A rollup answers a question only if every boundary of it (range ends, bucket starts) is a
//! whole UTC hour ([`aligned`]); minute buckets, zones whose offset is not whole hours, and the
//! dimensions not rolled are answered by the exact scan. Funnels and journeys read each customer's
//! events in order from the path table (`paths.rs`) instead; measures scan.

use std::collections::BTreeSet;
use std::ops::Range;

use evident_wire::Micros;
use evident_wire::insight::{Field, Step};
use roaring::RoaringTreemap;

use super::Event;
use crate::error::{Error, Result};

/// The rollups' grain: an hour, in microseconds.
pub const HOUR: i64 = 3_600_000_000;

/// A dimension the rollups keep, with the number stores record it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RollDim {
    /// No dimension: one value, every event.
    All = 0,
    Type = 1,
    Action = 2,
    Outcome = 3,
    Source = 4,
    Channel = 5,
    TargetType = 6,
}

impl RollDim {
    pub const EVERY: [RollDim; 7] = [
        RollDim::All,
        RollDim::Type,
        RollDim::Action,
        RollDim::Outcome,
        RollDim::Source,
        RollDim::Channel,
        RollDim::TargetType,
    ];

    /// The rolled dimension of a question's `by`, if it is rolled.
    pub fn of(by: Option<&Field>) -> Option<RollDim> {
        Some(match by {
            None => RollDim::All,
            Some(Field::Type) => RollDim::Type,
            Some(Field::Action) => RollDim::Action,
            Some(Field::Outcome) => RollDim::Outcome,
            Some(Field::Source) => RollDim::Source,
            Some(Field::Channel) => RollDim::Channel,
            Some(Field::TargetType) => RollDim::TargetType,
            Some(Field::Actor | Field::Metadata(_)) => return None,
        })
    }

    /// The value of this dimension for an event (`None` for `All` and for a missing field).
    pub fn value(self, event: &Event) -> Option<&str> {
        let field = match self {
            RollDim::All => return None,
            RollDim::Type => Field::Type,
            RollDim::Action => Field::Action,
            RollDim::Outcome => Field::Outcome,
            RollDim::Source => Field::Source,
            RollDim::Channel => Field::Channel,
            RollDim::TargetType => Field::TargetType,
        };
        event.get(&field)
    }
}

/// Whose distinct hours a seen row keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Who {
    Customer = 0,
    Actor = 1,
}

/// The UTC hour of a time (hours since 1970, saturated to `i32`).
pub fn hour_of(t: Micros) -> i32 {
    t.0.div_euclid(HOUR).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Whether every time is a whole UTC hour, so that hour rollups answer exactly.
pub fn aligned(times: impl IntoIterator<Item = Micros>) -> bool {
    times.into_iter().all(|t| t.0.rem_euclid(HOUR) == 0)
}

/// Sorted distinct hours as stored: 4 bytes little-endian each.
pub fn encode_hours(hours: &BTreeSet<i32>) -> Vec<u8> {
    hours.iter().flat_map(|h| h.to_le_bytes()).collect()
}

/// The hours of a stored value (a trailing partial value is ignored; stores write whole ones).
pub fn decode_hours(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Stored hours merged with new ones.
pub fn merge_hours(stored: &[u8], new: &BTreeSet<i32>) -> Vec<u8> {
    let mut all: BTreeSet<i32> = decode_hours(stored).collect();
    all.extend(new);
    encode_hours(&all)
}

/// A set of a store's numbers for customers or actors, as stored: the portable serialization of
/// a Roaring treemap (64-bit).
pub fn encode_ids(ids: &RoaringTreemap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ids.serialized_size());
    ids.serialize_into(&mut bytes).expect("writing to a Vec does not fail");
    bytes
}

/// The set of a stored value; a value that is not one is reported as damage to the rollups.
pub fn decode_ids(bytes: &[u8]) -> Result<RoaringTreemap> {
    RoaringTreemap::deserialize_from(bytes).map_err(|e| {
        Error::Unavailable(format!(
            "an insight rollup's id set is damaged ({e}); EVIDENT_INSIGHT_ROLLUPS=off answers from the events"
        ))
    })
}

/// A count row's key: dimension, value, hour.
pub type CountKey = (RollDim, Option<String>, i32);
/// A seen row's key: dimension, value, whose hours, their id (subject or actor).
pub type SeenKey = (RollDim, Option<String>, Who, String);

/// Events folded into rollup changes, for a store to add to its tables in one transaction.
///
/// A fold sees the same few keys over and over (every event adds to seven counts and up to
/// fourteen seen keys), so keys are looked up by borrowed strings and copied only when new.
#[derive(Debug, Default)]
pub struct Fold {
    /// Events and failures to add.
    pub counts: hashbrown::HashMap<CountKey, (u64, u64)>,
    /// Hours to merge into the stored ones.
    pub seen: hashbrown::HashMap<SeenKey, BTreeSet<i32>>,
}

/// A [`CountKey`] of borrowed strings; hashes as the owned key does (fields in order, a `&str`
/// as its `String`).
#[derive(Hash)]
struct CountRef<'a>(RollDim, Option<&'a str>, i32);

impl hashbrown::Equivalent<CountKey> for CountRef<'_> {
    fn equivalent(&self, key: &CountKey) -> bool {
        self.0 == key.0 && self.1 == key.1.as_deref() && self.2 == key.2
    }
}

/// A [`SeenKey`] of borrowed strings, hashed as the owned key.
#[derive(Hash)]
struct SeenRef<'a>(RollDim, Option<&'a str>, Who, &'a str);

impl hashbrown::Equivalent<SeenKey> for SeenRef<'_> {
    fn equivalent(&self, key: &SeenKey) -> bool {
        self.0 == key.0 && self.1 == key.1.as_deref() && self.2 == key.2 && self.3 == key.3
    }
}

impl Fold {
    /// Adds one committed event (Evident's own are skipped, as insight leaves them out).
    pub fn add(&mut self, event: &Event) {
        if event.row.event_type.starts_with("evident.") {
            return;
        }
        let hour = hour_of(event.row.time);
        let failed = u64::from(event.row.outcome == "failure");
        for dim in RollDim::EVERY {
            let value = dim.value(event);
            match self.counts.get_mut(&CountRef(dim, value, hour)) {
                Some(count) => (count.0, count.1) = (count.0 + 1, count.1 + failed),
                None => {
                    self.counts.insert((dim, value.map(str::to_owned), hour), (1, failed));
                }
            }
            if let Some(subject) = &event.row.subject {
                self.see(SeenRef(dim, value, Who::Customer, subject), hour);
            }
            self.see(SeenRef(dim, value, Who::Actor, &event.row.actor), hour);
        }
    }

    fn see(&mut self, key: SeenRef<'_>, hour: i32) {
        match self.seen.get_mut(&key) {
            Some(hours) => {
                hours.insert(hour);
            }
            None => {
                let SeenRef(dim, value, who, id) = key;
                self.seen.insert((dim, value.map(str::to_owned), who, id.to_owned()), BTreeSet::from([hour]));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.seen.is_empty()
    }
}

/// What a question reads from the rollups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupRead {
    pub dim: RollDim,
    /// Only this value of the dimension (every value if none).
    pub only: Option<String>,
    /// Count rows of these hours (none: no count rows).
    pub counts: Option<Range<i32>>,
    /// Seen rows of these kinds.
    pub seen: Vec<Who>,
    /// The hours the question needs of them: a store answering [`RollupItem::Hour`] may leave
    /// out the others (seen rows carry every hour; the question skips the rest).
    pub seen_hours: Range<i32>,
}

/// One row a store answers for a [`RollupRead`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RollupItem<'a> {
    Count {
        value: Option<&'a str>,
        hour: i32,
        events: u64,
        failures: u64,
    },
    Seen {
        who: Who,
        value: Option<&'a str>,
        hours: &'a [u8],
    },
    /// Seen facts transposed: the customers (or actors) seen in one hour, as a store's numbers
    /// for them. A store answers either `Seen` or `Hour` items for a read, never both.
    Hour {
        who: Who,
        value: Option<&'a str>,
        hour: i32,
        ids: &'a RoaringTreemap,
    },
}

/// The step a cohort's activity filter reads from the rollups: none (every event), or exactly
/// one event type.
pub fn activity_rollup(activity: Option<&Step>) -> Option<Option<String>> {
    match activity {
        None => Some(None),
        Some(step) => match step.terms.as_slice() {
            [(Field::Type, value)] if !value.ends_with('*') => Some(Some(value.clone())),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insight::Row;

    #[test]
    fn hours_round_trip_and_merge() {
        let hours: BTreeSet<i32> = [-3, 5, 480_000].into();
        assert_eq!(decode_hours(&encode_hours(&hours)).collect::<Vec<_>>(), vec![-3, 5, 480_000]);
        let merged = merge_hours(&encode_hours(&hours), &[5, 6].into());
        assert_eq!(decode_hours(&merged).collect::<Vec<_>>(), vec![-3, 5, 6, 480_000]);
        assert_eq!(hour_of(Micros(-1)), -1);
        assert!(aligned([Micros(0), Micros(7 * HOUR)]) && !aligned([Micros(HOUR + 60_000_000)]));
    }

    #[test]
    fn id_sets_round_trip_and_damage_is_reported() {
        let ids: RoaringTreemap = [1u64, 7, 70_000, u64::from(u32::MAX) + 5].into_iter().collect();
        assert_eq!(decode_ids(&encode_ids(&ids)).unwrap(), ids);
        let mut bytes = encode_ids(&ids);
        bytes.truncate(bytes.len() - 3);
        let damaged = decode_ids(&bytes).unwrap_err().to_string();
        assert!(damaged.contains("EVIDENT_INSIGHT_ROLLUPS=off"), "{damaged}");
    }

    #[test]
    fn a_fold_counts_every_rolled_dimension_and_skips_evidents_own() {
        let event = |kind: &str, outcome: &str| Event {
            row: Row {
                event_type: kind.into(),
                outcome: outcome.into(),
                actor: "a1".into(),
                subject: Some("s1".into()),
                time: Micros(HOUR + 5),
                ..Row::default()
            },
            channel: Some("chat".into()),
            ..Event::default()
        };
        let mut fold = Fold::default();
        fold.add(&event("contact.opened", "failure"));
        fold.add(&event("contact.opened", "success"));
        fold.add(&event("evident.audit.insight", "success"));
        assert_eq!(fold.counts[&(RollDim::All, None, 1)], (2, 1));
        assert_eq!(fold.counts[&(RollDim::Channel, Some("chat".into()), 1)], (2, 1));
        assert_eq!(fold.counts[&(RollDim::TargetType, None, 1)], (2, 1));
        let seen = &fold.seen[&(RollDim::Type, Some("contact.opened".into()), Who::Customer, "s1".into())];
        assert_eq!(seen, &BTreeSet::from([1]));
        assert_eq!(fold.counts.len(), 8, "one count row per dimension and value");
    }
}
