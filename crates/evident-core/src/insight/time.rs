//! Time buckets (minute to month) in a time zone given as a fixed offset from UTC; weeks start
//! on Monday.

use chrono::{Datelike, NaiveDate};
use evident_wire::Micros;
use evident_wire::insight::Bucket;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 1440 * MINUTE;

/// Buckets in a time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub bucket: Bucket,
    /// Seconds east of UTC.
    pub offset: i32,
}

impl Clock {
    fn local(&self, t: Micros) -> i64 {
        t.0 + i64::from(self.offset) * 1_000_000
    }

    fn utc(&self, local: i64) -> Micros {
        Micros(local - i64::from(self.offset) * 1_000_000)
    }

    /// The start of the bucket holding `t`.
    pub fn start(&self, t: Micros) -> Micros {
        let local = self.local(t);
        let floor = |size: i64| local.div_euclid(size) * size;
        self.utc(match self.bucket {
            Bucket::Minute => floor(MINUTE),
            Bucket::Hour => floor(60 * MINUTE),
            Bucket::Day => floor(DAY),
            Bucket::Week => {
                // 1970-01-01 was a Thursday: days since a Monday are (days + 3) mod 7.
                let days = local.div_euclid(DAY);
                (days - (days + 3).rem_euclid(7)) * DAY
            }
            Bucket::Month => {
                let date = date_of(local);
                days_of(NaiveDate::from_ymd_opt(date.year(), date.month(), 1).expect("a month's first day"))
                    * DAY
            }
        })
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(&self, start: Micros) -> Micros {
        match self.bucket {
            Bucket::Minute => Micros(start.0 + MINUTE),
            Bucket::Hour => Micros(start.0 + 60 * MINUTE),
            Bucket::Day => Micros(start.0 + DAY),
            Bucket::Week => Micros(start.0 + 7 * DAY),
            Bucket::Month => {
                let date = date_of(self.local(start));
                let (year, month) =
                    if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
                self.utc(days_of(NaiveDate::from_ymd_opt(year, month, 1).expect("a month's first day")) * DAY)
            }
        }
    }

    /// Every bucket start from the one holding `from` to the last before `to`; `None` when there
    /// would be more than `max`.
    pub fn starts(&self, from: Micros, to: Micros, max: usize) -> Option<Vec<Micros>> {
        let mut starts = Vec::new();
        let mut start = self.start(from);
        while start < to {
            if starts.len() == max {
                return None;
            }
            starts.push(start);
            start = self.next(start);
        }
        Some(starts)
    }

    /// How many buckets after the one starting at `base` the time `t` falls (`t >= base`).
    pub fn index(&self, base: Micros, t: Micros) -> usize {
        let start = self.start(t);
        match self.bucket {
            Bucket::Month => {
                let (a, b) = (date_of(self.local(base)), date_of(self.local(start)));
                ((b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32).max(0) as usize
            }
            _ => ((start.0 - base.0) / (self.next(base).0 - base.0)).max(0) as usize,
        }
    }
}

fn date_of(local: i64) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(local.div_euclid(DAY) + 719_163).unwrap_or(719_163))
        .expect("a date in range")
}

fn days_of(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - 719_163
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Micros {
        Micros::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn buckets_in_a_time_zone() {
        let clock = |bucket, offset| Clock { bucket, offset };
        let t = at("2026-11-18T23:30:00Z"); // a Wednesday
        assert_eq!(clock(Bucket::Day, 0).start(t), at("2026-11-18T00:00:00Z"));
        assert_eq!(clock(Bucket::Day, 3600).start(t), at("2026-11-19T00:00:00+01:00"));
        assert_eq!(clock(Bucket::Week, 0).start(t), at("2026-11-16T00:00:00Z"));
        assert_eq!(clock(Bucket::Month, 0).start(t), at("2026-11-01T00:00:00Z"));
        assert_eq!(clock(Bucket::Month, 0).next(at("2026-12-01T00:00:00Z")), at("2027-01-01T00:00:00Z"));
        assert_eq!(clock(Bucket::Hour, -19_800).start(t), at("2026-11-18T18:00:00-05:30"));
        let days = clock(Bucket::Day, 0).starts(at("2026-11-01T12:00:00Z"), at("2026-11-04T00:00:00Z"), 10);
        assert_eq!(days.unwrap().len(), 3);
        assert_eq!(
            clock(Bucket::Minute, 0).starts(at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z"), 10),
            None
        );
        let months = clock(Bucket::Month, 0);
        assert_eq!(months.index(at("2026-11-01T00:00:00Z"), at("2027-02-03T00:00:00Z")), 3);
        assert_eq!(clock(Bucket::Week, 0).index(at("2026-11-16T00:00:00Z"), at("2026-11-30T01:00:00Z")), 2);
    }
}
