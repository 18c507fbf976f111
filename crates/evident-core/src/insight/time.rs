//! Time buckets (minute to month) in a time zone: a fixed offset from UTC (`+02:00`) or a named
//! IANA zone (`Europe/Berlin`, the database compiled in by `chrono-tz`); weeks start on Monday.
//!
//! A bucket is the stretch of time whose local time truncates to the same minute, hour, day, week
//! or month, as `date_trunc(unit, local time)` does in SQL; its start is the first instant of it.
//! So across a daylight-saving change a day lasts 23 or 25 hours, and in the autumn the local hour
//! that happens twice (02:00 in Berlin) is one bucket of two hours, the one skipped in spring
//! none. A local midnight that does not exist (a zone changing at midnight) starts its day at the
//! first minute after the gap.

use chrono::{
    DateTime, Datelike, Days, Duration, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike,
};
use chrono_tz::Tz;
use evident_wire::Micros;
use evident_wire::filter::Invalid;
use evident_wire::insight::Bucket;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 1440 * MINUTE;

/// A time zone buckets are counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// Seconds east of UTC.
    Fixed(i32),
    /// An IANA zone, with its daylight-saving rules.
    Named(Tz),
}

impl Zone {
    pub const UTC: Zone = Zone::Fixed(0);

    /// A zone as a request names it: an offset (`Z`, `+02:00`, `-05:30`) or an IANA name
    /// (`Europe/Berlin`); none is UTC. `param` names the parameter in errors.
    pub fn parse(param: &str, text: Option<&str>) -> Result<Zone, Invalid> {
        let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(Zone::UTC) };
        if text.starts_with(['+', '-']) || text == "Z" || text == "UTC" {
            return evident_wire::insight::offset(param, Some(text)).map(Zone::Fixed);
        }
        text.parse::<Tz>().map(Zone::Named).map_err(|_| Invalid {
            name: param.to_owned(),
            rule: "format",
            reason: format!(
                "{text:?} is neither an offset like +02:00 nor a time zone name like Europe/Berlin"
            ),
        })
    }

    fn local(&self, t: Micros) -> NaiveDateTime {
        let utc = DateTime::from_timestamp_micros(t.0).unwrap_or_default();
        match self {
            Zone::Fixed(offset) => utc.with_timezone(&fixed(*offset)).naive_local(),
            Zone::Named(tz) => utc.with_timezone(tz).naive_local(),
        }
    }

    /// The first instant whose local time is `local`, or the first minute after it when the zone
    /// skips it.
    fn instant(&self, local: NaiveDateTime) -> Micros {
        // A gap lasts at most a day (Samoa, 2011-12-30): step through it a minute at a time.
        for minute in 0..=1440 {
            let wanted = local + Duration::minutes(minute);
            let earliest = match self {
                Zone::Fixed(offset) => {
                    fixed(*offset).from_local_datetime(&wanted).earliest().map(|t| t.timestamp_micros())
                }
                Zone::Named(tz) => tz.from_local_datetime(&wanted).earliest().map(|t| t.timestamp_micros()),
            };
            if let Some(micros) = earliest {
                return Micros(micros);
            }
        }
        Micros(local.and_utc().timestamp_micros())
    }
}

fn fixed(offset: i32) -> FixedOffset {
    FixedOffset::east_opt(offset).unwrap_or(FixedOffset::east_opt(0).expect("UTC"))
}

/// Buckets in a time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub bucket: Bucket,
    pub zone: Zone,
}

impl Clock {
    /// The local time `t`'s bucket starts at.
    fn truncate(&self, t: Micros) -> NaiveDateTime {
        let local = self.zone.local(t);
        let midnight = |date: NaiveDate| date.and_hms_opt(0, 0, 0).expect("midnight");
        match self.bucket {
            Bucket::Minute => local.with_second(0).and_then(|l| l.with_nanosecond(0)).expect("a minute"),
            Bucket::Hour => local.date().and_hms_opt(local.hour(), 0, 0).expect("an hour"),
            Bucket::Day => midnight(local.date()),
            Bucket::Week => {
                let monday = local.date() - Days::new(u64::from(local.weekday().num_days_from_monday()));
                midnight(monday)
            }
            Bucket::Month => midnight(local.date().with_day(1).expect("a month's first day")),
        }
    }

    /// The local start of the bucket after the one starting at local `start`.
    fn step(&self, start: NaiveDateTime) -> NaiveDateTime {
        match self.bucket {
            Bucket::Minute => start + Duration::minutes(1),
            Bucket::Hour => start + Duration::hours(1),
            Bucket::Day => start + Days::new(1),
            Bucket::Week => start + Days::new(7),
            Bucket::Month => start + Months::new(1),
        }
    }

    /// The start of the bucket holding `t`.
    pub fn start(&self, t: Micros) -> Micros {
        self.zone.instant(self.truncate(t))
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(&self, start: Micros) -> Micros {
        let next = self.zone.instant(self.step(self.truncate(start)));
        // Never stand still, whatever a zone's history holds.
        if next > start { next } else { Micros(start.0 + 60_000_000) }
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

    /// How many buckets after the one starting at `base` the time `t` falls (`t >= base`), in
    /// calendar units of local time (a week of a daylight-saving change is still one week).
    pub fn index(&self, base: Micros, t: Micros) -> usize {
        // Cohorts ask this of every event: integer arithmetic where a fixed offset allows it.
        if let Zone::Fixed(offset) = self.zone
            && self.bucket != Bucket::Month
        {
            let unit = |t: Micros| {
                let local = t.0 + i64::from(offset) * 1_000_000;
                match self.bucket {
                    Bucket::Minute => local.div_euclid(MINUTE),
                    Bucket::Hour => local.div_euclid(60 * MINUTE),
                    // 1970-01-01 was a Thursday: the Monday before it is day -3.
                    Bucket::Week => (local.div_euclid(DAY) + 3).div_euclid(7),
                    _ => local.div_euclid(DAY),
                }
            };
            return (unit(t) - unit(base)).max(0) as usize;
        }
        let (a, b) = (self.truncate(base), self.truncate(t));
        let units = match self.bucket {
            Bucket::Month => i64::from((b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32),
            Bucket::Week => (b.date() - a.date()).num_days() / 7,
            Bucket::Day => (b.date() - a.date()).num_days(),
            Bucket::Hour => (b - a).num_hours(),
            Bucket::Minute => (b - a).num_minutes(),
        };
        units.max(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Micros {
        Micros::parse_rfc3339(text).unwrap()
    }

    fn clock(bucket: Bucket, zone: &str) -> Clock {
        Clock { bucket, zone: Zone::parse("tz", Some(zone)).unwrap() }
    }

    #[test]
    fn buckets_in_a_fixed_offset() {
        let t = at("2026-11-18T23:30:00Z"); // a Wednesday
        assert_eq!(clock(Bucket::Day, "Z").start(t), at("2026-11-18T00:00:00Z"));
        assert_eq!(clock(Bucket::Day, "+01:00").start(t), at("2026-11-19T00:00:00+01:00"));
        assert_eq!(clock(Bucket::Week, "Z").start(t), at("2026-11-16T00:00:00Z"));
        assert_eq!(clock(Bucket::Month, "Z").start(t), at("2026-11-01T00:00:00Z"));
        assert_eq!(clock(Bucket::Month, "Z").next(at("2026-12-01T00:00:00Z")), at("2027-01-01T00:00:00Z"));
        assert_eq!(clock(Bucket::Hour, "-05:30").start(t), at("2026-11-18T18:00:00-05:30"));
        assert_eq!(
            clock(Bucket::Minute, "Z").start(at("2026-11-18T23:30:59.5Z")),
            at("2026-11-18T23:30:00Z")
        );
        let days = clock(Bucket::Day, "Z").starts(at("2026-11-01T12:00:00Z"), at("2026-11-04T00:00:00Z"), 10);
        assert_eq!(days.unwrap().len(), 3);
        assert_eq!(
            clock(Bucket::Minute, "Z").starts(at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z"), 10),
            None
        );
        let months = clock(Bucket::Month, "Z");
        assert_eq!(months.index(at("2026-11-01T00:00:00Z"), at("2027-02-03T00:00:00Z")), 3);
        assert_eq!(clock(Bucket::Week, "Z").index(at("2026-11-16T00:00:00Z"), at("2026-11-30T01:00:00Z")), 2);
        assert_eq!(clock(Bucket::Week, "Z").index(at("2026-11-16T00:00:00Z"), at("2026-11-29T23:59:59Z")), 1);
        assert_eq!(
            clock(Bucket::Day, "+02:00").index(at("2026-11-15T22:00:00Z"), at("2026-11-16T21:59:59Z")),
            0
        );
        let named = clock(Bucket::Week, "Europe/Berlin");
        assert_eq!(named.index(at("2026-10-18T22:00:00Z"), at("2026-11-01T23:00:00Z")), 2);
    }

    #[test]
    fn daylight_saving_days_last_23_and_25_hours() {
        // Berlin: 2026-03-29 02:00 CET becomes 03:00 CEST; 2026-10-25 03:00 CEST becomes 02:00 CET.
        let days = clock(Bucket::Day, "Europe/Berlin");
        let spring = days.starts(at("2026-03-28T12:00:00Z"), at("2026-03-30T12:00:00Z"), 10).unwrap();
        assert_eq!(
            spring,
            [at("2026-03-27T23:00:00Z"), at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z")]
        );
        assert_eq!(spring[2].0 - spring[1].0, 23 * 3_600_000_000);
        let autumn = days.starts(at("2026-10-25T12:00:00Z"), at("2026-10-26T12:00:00Z"), 10).unwrap();
        assert_eq!(autumn, [at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z")]);
        assert_eq!(days.start(at("2026-10-25T22:59:59Z")), at("2026-10-24T22:00:00Z"));
        // Hours: the skipped 02:00 has no bucket; the doubled 02:00 is one bucket of two hours.
        let hours = clock(Bucket::Hour, "Europe/Berlin");
        let spring = hours.starts(at("2026-03-29T00:00:00Z"), at("2026-03-29T02:00:00Z"), 10).unwrap();
        assert_eq!(spring, [at("2026-03-29T00:00:00Z"), at("2026-03-29T01:00:00Z")]);
        let autumn = hours.starts(at("2026-10-25T00:00:00Z"), at("2026-10-25T03:00:00Z"), 10).unwrap();
        assert_eq!(autumn, [at("2026-10-25T00:00:00Z"), at("2026-10-25T02:00:00Z")]);
        // Weeks and months start at local midnight, in the offset of that day.
        assert_eq!(
            clock(Bucket::Week, "Europe/Berlin").start(at("2026-10-28T12:00:00Z")),
            at("2026-10-25T23:00:00Z")
        );
        assert_eq!(
            clock(Bucket::Month, "America/New_York").next(at("2026-10-01T04:00:00Z")),
            at("2026-11-01T04:00:00Z")
        );
        assert_eq!(
            clock(Bucket::Month, "America/New_York").next(at("2026-11-01T04:00:00Z")),
            at("2026-12-01T05:00:00Z")
        );
    }

    #[test]
    fn a_missing_midnight_starts_the_day_after_the_gap() {
        // Samoa skipped 2011-12-30; Santiago's clocks go from 00:00 to 01:00 (2026-09-06).
        let samoa = clock(Bucket::Day, "Pacific/Apia");
        assert_eq!(samoa.next(samoa.start(at("2011-12-29T12:00:00-10:00"))), at("2011-12-31T00:00:00+14:00"));
        let santiago = clock(Bucket::Day, "America/Santiago");
        assert_eq!(santiago.start(at("2026-09-06T12:00:00Z")), at("2026-09-06T01:00:00-03:00"));
    }

    #[test]
    fn zones_parse_or_are_refused_naming_the_parameter() {
        assert_eq!(Zone::parse("tz", None).unwrap(), Zone::UTC);
        assert_eq!(Zone::parse("tz", Some("+02:00")).unwrap(), Zone::Fixed(7200));
        assert_eq!(Zone::parse("tz", Some("Europe/Berlin")).unwrap(), Zone::Named(Tz::Europe__Berlin));
        for bad in ["Mars", "Europe/Atlantis", "+25:00", "europe berlin"] {
            let err = Zone::parse("tz", Some(bad)).unwrap_err();
            assert_eq!(err.name, "tz", "{bad}");
        }
    }
}
