//! The one parser of every time flag (`--from`, `--to`, `--at`): RFC 3339
//! (`2026-11-20T01:00:00+01:00`), a day (`2026-11-20`, midnight UTC) or an age before now (`30s`,
//! `15m`, `2h`, `7d`, `2w`). It runs as a clap value parser, so a refused value is reported by
//! clap with the flag's name, before any request is made; the API then gets RFC 3339 only.

use std::time::Duration;

use evident_wire::Micros;

/// What a time flag's help says about the forms it takes.
pub const FORMS: &str = "RFC 3339 (2026-11-20T01:00:00+01:00), a day (2026-11-20, midnight UTC), or an age \
                         (30s, 15m, 2h, 7d, 2w ago)";

/// Parses a time flag's value into RFC 3339 (UTC, microseconds), for clap's `value_parser`.
pub fn parse(text: &str) -> Result<String, String> {
    parse_at(text, Micros::now())
}

/// [`parse`] with ages counted back from `now`.
fn parse_at(text: &str, now: Micros) -> Result<String, String> {
    let text = text.trim();
    if let Some(age) = parse_age(text) {
        let micros = i64::try_from(age.as_micros()).ok().and_then(|age| now.0.checked_sub(age));
        return micros
            .filter(|m| chrono::DateTime::from_timestamp_micros(*m).is_some())
            .map(|m| Micros(m).to_rfc3339())
            .ok_or_else(|| format!("the age {text:?} reaches before any date this can represent"));
    }
    let is_day = text.len() == 10
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    let candidate = if is_day { format!("{text}T00:00:00Z") } else { text.to_owned() };
    Micros::parse_rfc3339(&candidate)
        .filter(|m| chrono::DateTime::from_timestamp_micros(m.0).is_some())
        .map(Micros::to_rfc3339)
        .ok_or_else(|| format!("{text:?} is not a time: give {FORMS}"))
}

/// `30s`, `15m`, `2h`, `7d`, `2w`.
fn parse_age(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_becomes_rfc3339() {
        let now = Micros::parse_rfc3339("2026-11-20T12:00:00Z").unwrap();
        assert_eq!(parse_at("2026-11-20", now).unwrap(), "2026-11-20T00:00:00.000000Z");
        assert_eq!(parse_at("2026-11-20T01:00:00+01:00", now).unwrap(), "2026-11-20T00:00:00.000000Z");
        assert_eq!(parse_at("15m", now).unwrap(), "2026-11-20T11:45:00.000000Z");
        assert_eq!(parse_at("14d", now).unwrap(), "2026-11-06T12:00:00.000000Z");
        assert_eq!(parse_at("1w", now).unwrap(), "2026-11-13T12:00:00.000000Z");
        assert_eq!(parse_age("m"), None);
    }

    #[test]
    fn other_text_is_refused_with_the_forms() {
        let now = Micros::now();
        for bad in ["yesterday", "2026-13-01", "2026-11-20 10:00", "14x", "", "99999999999999w"] {
            let err = parse_at(bad, now).unwrap_err();
            assert!(err.contains("RFC 3339") || err.contains("reaches before"), "{bad:?}: {err}");
        }
    }
}
