//! Which events a search or an export asks for: one typed [`Filter`], its query-string form (the
//! parameters of `GET /v1/events` and `GET /v1/export`, and the `query` object an export bundle
//! states), and its meaning on a log entry, which the offline verifier checks.
//!
//! Adding a filter: a field here, its arm in [`Filter::set`] and [`Filter::pairs`], its test in
//! [`Filter::mismatch`], then its column in each store's rendering of a search plan.

use serde_json::Value;

use crate::Micros;
use crate::names::{Action, Outcome, WireName};

/// Filters of a search; all given ones must hold. Times are event times, `from` inclusive and
/// `to` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub from: Option<Micros>,
    pub to: Option<Micros>,
    pub actor: Option<String>,
    /// The data subject (customer).
    pub subject: Option<String>,
    /// `(type, id)` of a target.
    pub target: Option<(String, String)>,
    pub event_type: Option<TypeFilter>,
    pub action: Option<Action>,
    pub outcome: Option<Outcome>,
    pub source: Option<String>,
}

/// The `type` filter: one type, or every type that begins with a prefix (`type=customer.*` on
/// the wire: a trailing `*`, nowhere else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeFilter {
    Exact(String),
    /// The characters before the `*`; at least one.
    Prefix(String),
}

impl TypeFilter {
    /// Parses the `type` parameter: `customer.updated`, or `customer.*` / `cust*` for a prefix.
    pub fn parse(name: &str, value: &str) -> Result<TypeFilter, Invalid> {
        let value = identifier(name, value, 128)?;
        match value.find('*') {
            None => Ok(TypeFilter::Exact(value)),
            Some(at) if at + 1 == value.len() && at > 0 => Ok(TypeFilter::Prefix(value[..at].to_owned())),
            Some(_) => Err(Invalid::new(
                name,
                "format",
                format!(
                    "{name} may end in * to ask for a prefix (e.g. customer.*); * elsewhere, or alone, is not allowed"
                ),
            )),
        }
    }

    /// Whether an event of type `event_type` is asked for.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            TypeFilter::Exact(wanted) => event_type == wanted,
            TypeFilter::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }

    /// The parameter's text, which [`TypeFilter::parse`] reads back.
    pub fn to_param(&self) -> String {
        match self {
            TypeFilter::Exact(wanted) => wanted.clone(),
            TypeFilter::Prefix(prefix) => format!("{prefix}*"),
        }
    }
}

/// The query-parameter names of the filters, in the order [`Filter::pairs`] lists them.
pub const NAMES: [&str; 10] =
    ["from", "to", "actor", "subject", "target_type", "target_id", "type", "action", "outcome", "source"];

/// A filter value that is refused: the parameter, the rule it breaks and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct Invalid {
    pub name: String,
    /// `format`, `length`, `enum`, `conditional` or `unknown_field`.
    pub rule: &'static str,
    pub reason: String,
}

impl Invalid {
    fn new(name: &str, rule: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid { name: name.to_owned(), rule, reason: reason.into() }
    }
}

impl Filter {
    /// Parses query-parameter pairs (only filter names; each at most once is not required: the
    /// last one wins). Every value is checked: an identifier that no event could hold is refused by
    /// name rather than answered with nothing.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Filter, Invalid> {
        let mut filter = Filter::default();
        let (mut target_type, mut target_id) = (None, None);
        for (name, value) in pairs {
            match name {
                "target_type" => target_type = Some(identifier(name, value, 128)?),
                "target_id" => target_id = Some(identifier(name, value, 256)?),
                _ => filter.set(name, value)?,
            }
        }
        filter.target = match (target_type, target_id) {
            (Some(kind), Some(id)) => Some((kind, id)),
            (None, None) => None,
            _ => {
                return Err(Invalid::new(
                    "target_type",
                    "conditional",
                    "target_type and target_id go together",
                ));
            }
        };
        Ok(filter)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), Invalid> {
        match name {
            "from" => self.from = Some(time(name, value)?),
            "to" => self.to = Some(time(name, value)?),
            "actor" => self.actor = Some(identifier(name, value, 256)?),
            "subject" => self.subject = Some(identifier(name, value, 256)?),
            "type" => self.event_type = Some(TypeFilter::parse(name, value)?),
            "source" => self.source = Some(identifier(name, value, 512)?),
            "action" => self.action = Some(choice(name, value)?),
            "outcome" => self.outcome = Some(choice(name, value)?),
            other => {
                return Err(Invalid::new(
                    other,
                    "unknown_field",
                    format!("unknown filter {other:?} (known: {})", NAMES.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The given filters by their query-parameter names, with normalised values (times in UTC
    /// with six fractional digits): what a search's audit record, an export's signed manifest and
    /// a client's request state.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let target = self.target.as_ref();
        [
            ("from", self.from.map(Micros::to_rfc3339)),
            ("to", self.to.map(Micros::to_rfc3339)),
            ("actor", self.actor.clone()),
            ("subject", self.subject.clone()),
            ("target_type", target.map(|t| t.0.clone())),
            ("target_id", target.map(|t| t.1.clone())),
            ("type", self.event_type.as_ref().map(TypeFilter::to_param)),
            ("action", self.action.map(|a| a.as_str().to_owned())),
            ("outcome", self.outcome.map(|o| o.as_str().to_owned())),
            ("source", self.source.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
    }

    /// The filters as a JSON object of strings (an export bundle's `query`).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.pairs().into_iter().map(|(name, value)| (name.to_owned(), Value::from(value))).collect(),
        )
    }

    /// Why a log entry (whose event time is `time`) does not match; `None` when it does.
    pub fn mismatch(&self, entry: &Value, time: Micros) -> Option<String> {
        let equal = [
            ("/actor/id", self.actor.as_deref()),
            ("/subject", self.subject.as_deref()),
            ("/action", self.action.map(Action::as_str)),
            ("/outcome", self.outcome.map(Outcome::as_str)),
            ("/source", self.source.as_deref()),
        ];
        for (pointer, wanted) in equal {
            let Some(wanted) = wanted else { continue };
            let found = entry.pointer(pointer).and_then(Value::as_str);
            if found != Some(wanted) {
                let found = found.map(|f| format!("{f:?}")).unwrap_or_else(|| "absent".into());
                return Some(format!("{pointer} is {found}, the query asks for {wanted:?}"));
            }
        }
        if let Some(wanted) = &self.event_type {
            let found = entry.pointer("/type").and_then(Value::as_str);
            if !found.is_some_and(|found| wanted.matches(found)) {
                let found = found.map(|f| format!("{f:?}")).unwrap_or_else(|| "absent".into());
                return Some(format!("/type is {found}, the query asks for {:?}", wanted.to_param()));
            }
        }
        if let Some((kind, id)) = &self.target {
            let targets = entry.get("targets").and_then(Value::as_array);
            let hit = targets.is_some_and(|targets| {
                targets.iter().any(|t| {
                    t.get("type").and_then(Value::as_str) == Some(kind)
                        && t.get("id").and_then(Value::as_str) == Some(id)
                })
            });
            if !hit {
                return Some(format!("no target is {kind}/{id}, which the query asks for"));
            }
        }
        if let Some(from) = self.from
            && time < from
        {
            let (time, from) = (time.to_rfc3339(), from.to_rfc3339());
            return Some(format!("its time {time} is before the query's from {from}"));
        }
        if let Some(to) = self.to
            && time >= to
        {
            let (time, to) = (time.to_rfc3339(), to.to_rfc3339());
            return Some(format!("its time {time} is not before the query's to {to}"));
        }
        None
    }
}

/// A caller-given identifier as events hold them: 1 to `max` characters without control
/// characters.
pub fn identifier(name: &str, value: &str, max: usize) -> Result<String, Invalid> {
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(name, "format", format!("{name} must not contain control characters")));
    }
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(Invalid::new(name, "length", format!("{name} must be 1 to {max} characters")));
    }
    Ok(value.to_owned())
}

fn choice<T: WireName>(name: &str, value: &str) -> Result<T, Invalid> {
    T::from_wire_name(value).ok_or_else(|| {
        Invalid::new(name, "enum", format!("{name} must be one of: {}", T::names().join(", ")))
    })
}

fn time(name: &str, value: &str) -> Result<Micros, Invalid> {
    Micros::parse_rfc3339(value).ok_or_else(|| Invalid::new(name, "format", "not an RFC 3339 time"))
}

/// Order of results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

impl Order {
    /// `newest` (the default when absent) or `oldest`.
    pub fn parse(text: Option<&str>) -> Result<Order, Invalid> {
        match text {
            None | Some("newest") => Ok(Order::NewestFirst),
            Some("oldest") => Ok(Order::OldestFirst),
            Some(other) => Err(Invalid::new("order", "enum", format!("{other:?} is not newest or oldest"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Order::NewestFirst => "newest",
            Order::OldestFirst => "oldest",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(pairs: &[(&str, &str)], expect: Result<Vec<(&str, &str)>, (&str, &str)>) {
        let parsed = Filter::from_pairs(pairs.iter().copied());
        match (parsed, expect) {
            (Ok(filter), Ok(expected)) => {
                let got = filter.pairs();
                let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (*n, v.as_str())).collect();
                assert_eq!(got, expected, "{pairs:?}");
                let again = Filter::from_pairs(filter.pairs().iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
                assert_eq!(again, filter, "pairs round-trip");
            }
            (Err(err), Err((name, rule))) => {
                assert_eq!((err.name.as_str(), err.rule), (name, rule), "{pairs:?}")
            }
            (got, expected) => panic!("{pairs:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn query_pairs_parse_normalise_and_refuse() {
        check(&[], Ok(vec![]));
        check(
            &[("to", "2026-11-20T01:00:00+01:00"), ("action", "update"), ("actor", "agent-7")],
            Ok(vec![("to", "2026-11-20T00:00:00.000000Z"), ("actor", "agent-7"), ("action", "update")]),
        );
        check(
            &[("target_id", "cus_1"), ("target_type", "customer")],
            Ok(vec![("target_type", "customer"), ("target_id", "cus_1")]),
        );
        check(&[("target_type", "customer")], Err(("target_type", "conditional")));
        check(&[("from", "yesterday")], Err(("from", "format")));
        check(&[("action", "destroy")], Err(("action", "enum")));
        check(&[("outcome", "")], Err(("outcome", "enum")));
        check(&[("actor", "")], Err(("actor", "length")));
        check(&[("subject", "a\u{7}b")], Err(("subject", "format")));
        check(&[("type", &"t".repeat(129))], Err(("type", "length")));
        check(&[("severity", "high")], Err(("severity", "unknown_field")));
        check(&[("type", "customer.*")], Ok(vec![("type", "customer.*")]));
        check(&[("type", "cust*")], Ok(vec![("type", "cust*")]));
        check(&[("type", "customer_%*")], Ok(vec![("type", "customer_%*")]));
        check(&[("type", "*")], Err(("type", "format")));
        check(&[("type", "customer.*.updated")], Err(("type", "format")));
        check(&[("type", "*.updated")], Err(("type", "format")));
        check(&[("type", "customer.**")], Err(("type", "format")));
    }

    #[test]
    fn entries_match_or_say_why_not() {
        let entry = json!({"actor": {"id": "a"}, "type": "customer.updated", "action": "update",
            "outcome": "success", "source": "crm", "targets": [{"type": "customer", "id": "c1"}]});
        let time = Micros::parse_rfc3339("2026-11-20T00:00:00Z").unwrap();
        let matches = |pairs: &[(&str, &str)]| {
            Filter::from_pairs(pairs.iter().copied()).unwrap().mismatch(&entry, time)
        };
        assert_eq!(
            matches(&[
                ("actor", "a"),
                ("action", "update"),
                ("target_type", "customer"),
                ("target_id", "c1")
            ]),
            None
        );
        assert!(matches(&[("subject", "s")]).unwrap().contains("/subject is absent"));
        assert!(matches(&[("outcome", "failure")]).unwrap().contains("\"failure\""));
        assert!(
            matches(&[("target_type", "customer"), ("target_id", "c2")]).unwrap().contains("customer/c2")
        );
        assert!(matches(&[("from", "2026-11-20T00:00:01Z")]).unwrap().contains("before the query's from"));
        assert!(matches(&[("to", "2026-11-20T00:00:00Z")]).unwrap().contains("not before the query's to"));
        assert_eq!(matches(&[("from", "2026-11-20T00:00:00Z")]), None);
        assert_eq!(matches(&[("type", "customer.*")]), None);
        assert_eq!(matches(&[("type", "customer.updated")]), None);
        assert_eq!(matches(&[("type", "c*")]), None);
        assert!(matches(&[("type", "customer.updated.*")]).unwrap().contains("\"customer.updated.*\""));
        assert!(matches(&[("type", "customer.update")]).unwrap().contains("/type is \"customer.updated\""));
        assert!(matches(&[("type", "customer_*")]).is_some());
    }

    #[test]
    fn orders() {
        assert_eq!(Order::parse(None), Ok(Order::NewestFirst));
        assert_eq!(Order::parse(Some("oldest")), Ok(Order::OldestFirst));
        assert_eq!(Order::parse(Some("sideways")).unwrap_err().rule, "enum");
    }
}
