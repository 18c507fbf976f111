//! Times as the wire and the leaves spell them.

/// Time as microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Micros(pub i64);

impl Micros {
    pub fn now() -> Micros {
        Micros(chrono::Utc::now().timestamp_micros())
    }

    /// RFC 3339 in UTC with exactly six fractional digits, e.g. `2026-11-26T10:53:25.000000Z`.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_micros(self.0)
            .expect("stored times are in chrono's range")
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    }

    /// Parses RFC 3339 with any offset; sub-microsecond digits are truncated.
    pub fn parse_rfc3339(text: &str) -> Option<Micros> {
        let parsed = chrono::DateTime::parse_from_rfc3339(text).ok()?;
        Some(Micros(parsed.timestamp_micros()))
    }
}
