//! Customer insight over the audit trail (`/v1/insights/...`): the step and dimension language
//! the CLI and the API share, and the requests and answers of trends, funnels, journeys, cohorts
//! and service measures. Every count is an aggregate over subjects; a cell counted over fewer
//! customers than the tenant's threshold is `suppressed` (its counts absent) for callers without
//! personal access.
//!
//! A step is a query in the search qualifiers: `type:ticket.opened action:create channel:phone`,
//! space-separated `name:value` terms that must all hold (a `type` value ending in `*` matches a
//! prefix). Names: `type`, `action`, `outcome`, `source`, `channel` (`origin.service`), `actor`,
//! `target_type`, `metadata.KEY`. A dimension (`by`) is one of the same names; the subject is
//! never one.

use serde::{Deserialize, Serialize};

use crate::filter::Invalid;

/// What a step term or a dimension reads from an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Type,
    Action,
    Outcome,
    Source,
    /// `origin.service`.
    Channel,
    Actor,
    /// The first target's type.
    TargetType,
    /// A clear (not sealed) metadata value.
    Metadata(String),
}

impl Field {
    /// The names of the fixed fields, as steps and `by` spell them.
    pub const NAMES: [&'static str; 7] =
        ["type", "action", "outcome", "source", "channel", "actor", "target_type"];

    pub fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "type" => Field::Type,
            "action" => Field::Action,
            "outcome" => Field::Outcome,
            "source" => Field::Source,
            "channel" => Field::Channel,
            "actor" => Field::Actor,
            "target_type" => Field::TargetType,
            _ => {
                let key = name.strip_prefix("metadata.")?;
                if key.is_empty() || key.len() > 64 {
                    return None;
                }
                Field::Metadata(key.to_owned())
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Field::Type => "type".into(),
            Field::Action => "action".into(),
            Field::Outcome => "outcome".into(),
            Field::Source => "source".into(),
            Field::Channel => "channel".into(),
            Field::Actor => "actor".into(),
            Field::TargetType => "target_type".into(),
            Field::Metadata(key) => format!("metadata.{key}"),
        }
    }

    /// Whether reading it needs the stored entry (it is not an indexed column).
    pub fn needs_entry(&self) -> bool {
        matches!(self, Field::Channel | Field::TargetType | Field::Metadata(_))
    }
}

fn invalid(name: &str, rule: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid { name: name.to_owned(), rule, reason: reason.into() }
}

/// A dimension named by the parameter `param`: `None` when not given.
pub fn dimension(param: &str, text: Option<&str>) -> Result<Option<Field>, Invalid> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(None) };
    if text == "subject" {
        return Err(invalid(
            param,
            "enum",
            "the subject is never a dimension: insight answers are aggregates",
        ));
    }
    Field::parse(text).map(Some).ok_or_else(|| {
        invalid(param, "enum", format!("{text:?} is not one of {} or metadata.KEY", Field::NAMES.join(", ")))
    })
}

/// One step: every term must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub terms: Vec<(Field, String)>,
}

impl Step {
    /// Parses `name:value name:value ...`; `param` names the parameter in errors.
    pub fn parse(param: &str, text: &str) -> Result<Step, Invalid> {
        let mut terms = Vec::new();
        for term in text.split_whitespace() {
            let Some((name, value)) = term.split_once(':') else {
                return Err(invalid(param, "format", format!("{term:?} is not name:value")));
            };
            let field = Field::parse(name).ok_or_else(|| {
                invalid(
                    param,
                    "enum",
                    format!("{name:?} is not one of {} or metadata.KEY", Field::NAMES.join(", ")),
                )
            })?;
            if value.is_empty() || value.len() > 256 {
                return Err(invalid(param, "length", format!("the value of {name} must be 1 to 256 bytes")));
            }
            terms.push((field, value.to_owned()));
        }
        if terms.is_empty() {
            return Err(invalid(param, "required", "a step needs at least one name:value term"));
        }
        Ok(Step { terms })
    }

    /// Whether an event holds every term; `get` reads a field of it.
    pub fn matches<'a>(&self, get: impl Fn(&Field) -> Option<&'a str>) -> bool {
        self.terms.iter().all(|(field, want)| match get(field) {
            None => false,
            Some(value) => match (field, want.strip_suffix('*')) {
                (Field::Type, Some(prefix)) => value.starts_with(prefix),
                _ => value == want,
            },
        })
    }

    /// The exact event type every match has, if the step names one (lets a store skip the rest).
    pub fn exact_type(&self) -> Option<&str> {
        self.terms.iter().find_map(|(field, value)| {
            (*field == Field::Type && !value.ends_with('*')).then_some(value.as_str())
        })
    }

    pub fn needs_entry(&self) -> bool {
        self.terms.iter().any(|(field, _)| field.needs_entry())
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let terms: Vec<String> =
            self.terms.iter().map(|(field, value)| format!("{}:{value}", field.name())).collect();
        f.write_str(&terms.join(" "))
    }
}

/// Steps of a funnel as one parameter: queries separated by `;`.
pub fn steps(param: &str, text: &str) -> Result<Vec<Step>, Invalid> {
    let steps = text.split(';').map(|s| Step::parse(param, s)).collect::<Result<Vec<_>, _>>()?;
    if !(2..=10).contains(&steps.len()) {
        return Err(invalid(param, "length", format!("a funnel has 2 to 10 steps, not {}", steps.len())));
    }
    Ok(steps)
}

/// A duration: a number and `s`, `m`, `h`, `d` or `w` (`30m`, `7d`); answers microseconds.
pub fn duration(param: &str, text: &str) -> Result<i64, Invalid> {
    let bad = || invalid(param, "format", format!("{text:?} is not a duration like 30m, 24h, 7d or 2w"));
    let unit = text.chars().last().ok_or_else(bad)?;
    let seconds: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(bad()),
    };
    let number: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    if !(1..=3650 * 86_400).contains(&(number.saturating_mul(seconds))) {
        return Err(invalid(param, "range", format!("{text:?} must be between 1s and 3650d")));
    }
    Ok(number * seconds * 1_000_000)
}

/// Time buckets of a trend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
    /// Weeks start on Monday, in the chosen time zone.
    Week,
    Month,
}

impl Bucket {
    pub fn parse(param: &str, text: Option<&str>) -> Result<Bucket, Invalid> {
        Ok(match text.unwrap_or("day") {
            "minute" => Bucket::Minute,
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "week" => Bucket::Week,
            "month" => Bucket::Month,
            other => {
                return Err(invalid(
                    param,
                    "enum",
                    format!("{other:?} is not minute, hour, day, week or month"),
                ));
            }
        })
    }
}

/// A time zone as a fixed offset from UTC: `Z`, `+02:00`, `-05:30`; answers seconds east.
pub fn offset(param: &str, text: Option<&str>) -> Result<i32, Invalid> {
    let Some(text) = text.filter(|t| *t != "Z" && *t != "UTC") else { return Ok(0) };
    let bad = || invalid(param, "format", format!("{text:?} is not an offset like +02:00, -05:30 or Z"));
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
    let (hours, minutes): (i32, i32) =
        (hours.parse().map_err(|_| bad())?, minutes.parse().map_err(|_| bad())?);
    if hours.to_string().len() > 2 || hours > 14 || minutes > 59 || hours < 0 || minutes < 0 {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// Parameters every insight takes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct TrendParams {
    /// Start (RFC 3339, event time); default 30 days before `to`.
    pub from: Option<String>,
    /// End, exclusive (RFC 3339); default now.
    pub to: Option<String>,
    /// `type`, `action`, `outcome`, `source`, `channel`, `actor`, `target_type` or `metadata.KEY`;
    /// none: one series of everything.
    pub by: Option<String>,
    /// `minute`, `hour`, `day` (default), `week` or `month`.
    pub bucket: Option<String>,
    /// The time zone buckets start in: an offset (`+02:00`) or an IANA name (`Europe/Berlin`, with
    /// its daylight-saving days of 23 and 25 hours); default UTC.
    pub tz: Option<String>,
}

/// Counts of one cell. Absent counts: suppressed (fewer customers than the threshold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// Distinct subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    /// Distinct actors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actors: Option<u64>,
    /// Events with outcome `failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// `failures / events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// One bucket of a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrendPoint {
    /// The bucket's start (RFC 3339, UTC).
    pub start: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One value of the dimension over time, with the whole period and the one before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Series {
    /// The dimension's value (`null`: the event has none; absent `by`: `all`).
    pub key: Option<String>,
    pub total: Counts,
    /// The same length of time just before `from`.
    pub previous: Counts,
    pub points: Vec<TrendPoint>,
}

/// Answer of `GET /v1/insights/trend`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trend {
    pub from: String,
    pub to: String,
    pub bucket: Bucket,
    pub by: Option<String>,
    /// Cells with fewer distinct customers than this are suppressed (0: nothing is).
    pub min_customers: u64,
    /// By total events, most first.
    pub series: Vec<Series>,
}

/// Parameters of a funnel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FunnelParams {
    /// Steps in order, separated by `;` (`type:ticket.opened;type:ticket.resolved`), 2 to 10.
    pub steps: String,
    /// Conversion window from the first step: `30m`, `24h`, `7d` (default).
    pub within: Option<String>,
    /// Breakdown by a dimension of the first step's event.
    pub by: Option<String>,
    /// First steps at or after this time (RFC 3339); default 30 days before `to`.
    pub from: Option<String>,
    /// First steps before this time; default now.
    pub to: Option<String>,
    /// Investigators: list the subjects that reached step N-1 and not step N (N >= 2).
    pub dropped_at: Option<usize>,
}

/// One step's customers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelStep {
    /// 1-based.
    pub step: usize,
    pub query: String,
    /// Distinct subjects that reached this step in order within the window (absent: suppressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    /// Of those that reached step 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<f64>,
    /// Reached the step before and not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// Time from the first step to the last, over the customers who reached it (absent: the last
/// step is suppressed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Durations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_seconds: Option<f64>,
}

/// The funnel of one value of the breakdown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelGroup {
    pub key: Option<String>,
    pub steps: Vec<FunnelStep>,
    pub time_to_convert: Durations,
}

/// Answer of `GET /v1/insights/funnel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Funnel {
    pub from: String,
    pub to: String,
    pub within_seconds: i64,
    pub min_customers: u64,
    pub steps: Vec<FunnelStep>,
    pub time_to_convert: Durations,
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<FunnelGroup>,
    /// With `dropped_at`: the subjects that dropped off there (investigators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_subjects: Option<Vec<String>>,
}

/// Parameters of journeys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct JourneysParams {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Inactivity that ends a session: default `30m`.
    pub gap: Option<String>,
    /// Steps of a path kept (first N event types of a session), 1 to 10, default 5.
    pub depth: Option<usize>,
    /// Most common paths answered, 1 to 100, default 10.
    pub top: Option<usize>,
    /// The step that resolves a contact, e.g. `type:ticket.resolved`; with it, repeat contacts.
    pub resolved: Option<String>,
    /// A session starting within this after a resolved step is a repeat contact: default `7d`.
    pub repeat_within: Option<String>,
    /// Only events matching this step make sessions and paths, e.g. `type:contact.*`.
    pub only: Option<String>,
}

/// A path and how often it was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathCount {
    /// Event types in order (consecutive repeats folded).
    pub path: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// A Sankey link: sessions whose step `depth` was `from` and step `depth + 1` was `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    /// 1-based position of `from` in the path.
    pub depth: usize,
    pub from: String,
    /// `(end)` when the session ended.
    pub to: String,
    pub sessions: u64,
}

/// Customers back after a resolved step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repeats {
    pub resolved: String,
    pub within_seconds: i64,
    /// Customers with a resolved step (absent: suppressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_customers: Option<u64>,
    /// Of those, customers with a session starting within the window after one (absent:
    /// suppressed, also when the customers who did not come back are fewer than the threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_customers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// Answer of `GET /v1/insights/journeys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Journeys {
    pub from: String,
    pub to: String,
    pub gap_seconds: i64,
    pub min_customers: u64,
    /// Absent when the customers are fewer than the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    /// Most common first; paths of fewer customers than the threshold are left out for callers
    /// without personal access (and counted in `suppressed_paths`), with the smallest others
    /// needed so that no left-out path is the total minus the listed ones.
    pub paths: Vec<PathCount>,
    pub suppressed_paths: u64,
    /// Only links taken by at least `min_customers` customers, less those left out so that no
    /// left-out link is worked out from the others of its step or node.
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
}

/// Parameters of cohorts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct CohortsParams {
    /// Cohorts first seen at or after this (RFC 3339); default 12 weeks before `to`.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `week` (default) or `month`.
    pub period: Option<String>,
    /// Only events matching this step count as activity (and as first seen), e.g. `action:update`.
    pub activity: Option<String>,
}

/// Customers first seen in one period and their activity in each period since.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cohort {
    /// The period's start (RFC 3339, UTC).
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    /// `active[i]`: customers of the cohort active in period `i` after it (`active[0]` =
    /// `customers`); `null`: suppressed.
    pub active: Vec<Option<u64>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// Answer of `GET /v1/insights/cohorts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cohorts {
    pub from: String,
    pub to: String,
    pub period: Bucket,
    pub min_customers: u64,
    pub cohorts: Vec<Cohort>,
}

/// Parameters of a service measure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct MeasureParams {
    /// `duration` (default: `first` to `last` per group), `workload` (per actor) or `coverage`
    /// (top actors per value of `by`).
    pub kind: Option<String>,
    /// `duration`: the step that opens, e.g. `type:ticket.opened`.
    pub first: Option<String>,
    /// `duration`: the step that closes, e.g. `type:ticket.resolved`.
    pub last: Option<String>,
    /// The group: a dimension of the opening event (`duration`) or of the events (`coverage`).
    pub by: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `coverage`: actors per group, 1 to 20, default 3.
    pub top: Option<usize>,
}

/// One group of a measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeasureRow {
    pub key: Option<String>,
    /// `coverage`: the actor serving the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Events (`workload`, `coverage`) or completed pairs (`duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// Answer of `GET /v1/insights/measure`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Measure {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub by: Option<String>,
    pub min_customers: u64,
    pub rows: Vec<MeasureRow>,
}

/// A tenant's insight settings (`/v1/insights/settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InsightSettings {
    /// k: a cell counted over fewer distinct customers is suppressed for callers without personal
    /// access; 1 to 1000, default 5.
    pub min_customers: u64,
}

impl Default for InsightSettings {
    fn default() -> InsightSettings {
        InsightSettings { min_customers: 5 }
    }
}

impl InsightSettings {
    pub fn check(&self) -> Result<(), Invalid> {
        if !(1..=1000).contains(&self.min_customers) {
            return Err(invalid("min_customers", "range", "min_customers must be 1 to 1000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_match() {
        let step = Step::parse("steps", "type:ticket.* channel:phone metadata.team:blue").unwrap();
        assert_eq!(step.to_string(), "type:ticket.* channel:phone metadata.team:blue");
        let event = |field: &Field| match field {
            Field::Type => Some("ticket.opened"),
            Field::Channel => Some("phone"),
            Field::Metadata(key) if key == "team" => Some("blue"),
            _ => None,
        };
        assert!(step.matches(event));
        assert!(!Step::parse("s", "type:ticket").unwrap().matches(event));
        assert!(!Step::parse("s", "outcome:success").unwrap().matches(event));
        assert_eq!(step.exact_type(), None);
        assert_eq!(Step::parse("s", "type:a.b action:read").unwrap().exact_type(), Some("a.b"));
        assert_eq!(Step::parse("s", "color:red").unwrap_err().rule, "enum");
        assert_eq!(Step::parse("s", "type").unwrap_err().rule, "format");
        assert_eq!(Step::parse("s", "  ").unwrap_err().rule, "required");
        assert_eq!(steps("steps", "type:a").unwrap_err().reason, "a funnel has 2 to 10 steps, not 1");
        assert_eq!(steps("steps", "type:a;type:b").unwrap().len(), 2);
    }

    #[test]
    fn dimensions_durations_offsets() {
        assert_eq!(dimension("by", Some("metadata.team")).unwrap(), Some(Field::Metadata("team".into())));
        assert_eq!(dimension("by", None).unwrap(), None);
        assert!(dimension("by", Some("subject")).unwrap_err().reason.contains("never a dimension"));
        assert_eq!(duration("within", "7d").unwrap(), 7 * 86_400_000_000);
        assert_eq!(duration("within", "30m").unwrap(), 1_800_000_000);
        assert_eq!(duration("within", "7x").unwrap_err().name, "within");
        assert_eq!(duration("within", "0s").unwrap_err().rule, "range");
        assert_eq!(offset("tz", Some("+02:00")).unwrap(), 7200);
        assert_eq!(offset("tz", Some("-05:30")).unwrap(), -19_800);
        assert_eq!(offset("tz", None).unwrap(), 0);
        assert!(offset("tz", Some("Europe/Paris")).is_err());
        assert_eq!(Bucket::parse("bucket", Some("week")).unwrap(), Bucket::Week);
        assert!(Bucket::parse("bucket", Some("year")).is_err());
    }
}
