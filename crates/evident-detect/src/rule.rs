//! Rules: a template, its parameters, a severity. The wire and storage form is JSON
//! `{id, template, params, severity, enabled, description}`; [`Rule::compile`] checks the parameters
//! once and answers the typed [`Params`] the evaluator runs.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Error, Result};

/// How urgent a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// A rule as stored and exchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1 to 64 of `[a-z0-9_-]`, unique within the tenant.
    pub id: String,
    /// One of [`TEMPLATES`].
    pub template: String,
    #[serde(default = "empty_object")]
    pub params: Value,
    pub severity: Severity,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
}

fn empty_object() -> Value {
    json!({})
}

fn yes() -> bool {
    true
}

/// Who a window counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Actor,
    Ip,
    Source,
}

/// (a) One actor reads or exports more than `threshold` distinct customers within `window_secs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MassAccess {
    pub threshold: u32,
    pub window_secs: u64,
    pub actions: Vec<String>,
    /// A target of one of these types counts as a customer when the event names no subject.
    pub target_types: Vec<String>,
}

impl Default for MassAccess {
    fn default() -> MassAccess {
        MassAccess {
            threshold: 100,
            window_secs: 3600,
            actions: strings(&["read", "export"]),
            target_types: strings(&["customer"]),
        }
    }
}

/// (b) `threshold` failed logins or denied requests from one actor or one IP within `window_secs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailedBurst {
    pub threshold: u32,
    pub window_secs: u64,
    /// `actor` or `ip`.
    pub by: By,
}

impl Default for FailedBurst {
    fn default() -> FailedBurst {
        FailedBurst { threshold: 10, window_secs: 300, by: By::Ip }
    }
}

/// (c) Access outside working hours: `days` (ISO, Monday = 1), `start`..`end` ("HH:MM", local
/// time at the fixed `utc_offset`, e.g. "+01:00"; `end` before `start` means a night shift).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OffHours {
    pub days: Vec<u8>,
    pub start: String,
    pub end: String,
    pub utc_offset: String,
    pub actions: Vec<String>,
    pub actor_types: Vec<String>,
    /// One finding per actor per this many seconds.
    pub cooldown_secs: u64,
}

impl Default for OffHours {
    fn default() -> OffHours {
        OffHours {
            days: vec![1, 2, 3, 4, 5],
            start: "07:00".into(),
            end: "20:00".into(),
            utc_offset: "+00:00".into(),
            actions: strings(&["read", "export", "update", "delete", "create", "list", "search"]),
            actor_types: strings(&["user", "admin"]),
            cooldown_secs: 3600,
        }
    }
}

/// (d) Any access to a watched customer (`subjects`) or record (`targets`, as `type:id`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watchlist {
    pub subjects: Vec<String>,
    pub targets: Vec<String>,
    /// Actors allowed to touch them (e.g. a VIP desk).
    pub exempt_actors: Vec<String>,
    /// One finding per actor and record per this many seconds.
    pub cooldown_secs: u64,
}

/// (e) Reads of personal data without a stated purpose (`reason`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoPurpose {
    pub actions: Vec<String>,
    /// The event must carry one of these data classes (empty: any event of the actions).
    pub data_classes: Vec<String>,
    pub cooldown_secs: u64,
}

impl Default for NoPurpose {
    fn default() -> NoPurpose {
        NoPurpose {
            actions: strings(&["read", "export"]),
            data_classes: strings(&["pii", "phi", "pci", "financial"]),
            cooldown_secs: 600,
        }
    }
}

/// (f) A change to a sensitive field of a customer, followed within `window_secs` by an export
/// concerning that customer, or a login of that customer (as actor) from a place (IP) not seen
/// for them before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensitiveChange {
    /// JSON pointers of `changes[].field`.
    pub fields: Vec<String>,
    pub window_secs: u64,
}

impl Default for SensitiveChange {
    fn default() -> SensitiveChange {
        SensitiveChange {
            fields: strings(&["/email", "/phone", "/bank_account", "/iban", "/password"]),
            window_secs: 3600,
        }
    }
}

/// (g) Privilege grants and changes to the audit system's own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivilegeChange {
    /// Event types starting with one of these are changes to the audit system's settings.
    pub type_prefixes: Vec<String>,
    /// Key creation (`evident.admin.key_created`) counts only for these roles.
    pub privileged_roles: Vec<String>,
    /// Producer events with these actions count too (role grants in the customer's systems).
    pub actions: Vec<String>,
    /// The severity of a privileged key that an admin key created through the API (`POST
    /// /v1/keys`, `evident keys create`): the documented way to give an auditor or investigator
    /// access, so expected, and recorded at this lower severity; every other grant or change
    /// (a break-glass key made from the data directory included) has the rule's severity.
    pub api_key_grant_severity: Severity,
}

impl Default for PrivilegeChange {
    fn default() -> PrivilegeChange {
        PrivilegeChange {
            type_prefixes: strings(&["evident.rule.", "evident.webhook.", "evident.admin.tenant"]),
            privileged_roles: strings(&["admin", "auditor", "investigator"]),
            actions: strings(&["grant"]),
            api_key_grant_severity: Severity::Low,
        }
    }
}

/// (h) An actor touches a kind of record (target type) never touched before, once the actor has
/// `min_events` events of history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirstTouch {
    pub min_events: u32,
}

impl Default for FirstTouch {
    fn default() -> FirstTouch {
        FirstTouch { min_events: 100 }
    }
}

/// (i) A source stops sending: no event for longer than `factor` times its usual gap between
/// arrivals, and at least `min_silence_secs` (wall-clock, judged by the periodic tick).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Silence {
    pub factor: f64,
    pub min_silence_secs: u64,
    /// Arrivals seen before a source's gap is trusted.
    pub min_events: u32,
}

impl Default for Silence {
    fn default() -> Silence {
        Silence { factor: 10.0, min_silence_secs: 3600, min_events: 20 }
    }
}

/// (2) Hourly activity per actor or source departs from its learned level: more than `factor`
/// times the usual events per active hour, and at least `min_count`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Baseline {
    /// `actor` or `source`.
    pub by: By,
    pub factor: f64,
    pub min_count: u32,
    /// Active hours observed before the level is trusted.
    pub learning_hours: u32,
}

impl Default for Baseline {
    fn default() -> Baseline {
        Baseline { by: By::Actor, factor: 5.0, min_count: 50, learning_hours: 8 }
    }
}

/// A rule's checked parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Params {
    MassAccess(MassAccess),
    FailedBurst(FailedBurst),
    OffHours(OffHoursCompiled),
    Watchlist(Watchlist),
    NoPurpose(NoPurpose),
    SensitiveChange(SensitiveChange),
    PrivilegeChange(PrivilegeChange),
    FirstTouch(FirstTouch),
    Silence(Silence),
    Baseline(Baseline),
}

/// Working hours in minutes of the local day.
#[derive(Clone, Debug, PartialEq)]
pub struct OffHoursCompiled {
    pub params: OffHours,
    pub start_minute: i64,
    pub end_minute: i64,
    pub offset_secs: i64,
}

/// The templates, with what each finds.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("mass_access", "one actor reads or exports more than N distinct customers within T"),
    ("failed_burst", "N failed logins or denied requests from one actor or one IP within T"),
    ("off_hours", "access outside working hours (days, hours, UTC offset)"),
    ("watchlist", "any access to watched customers or records (VIPs, employees' own records)"),
    ("no_purpose", "reads of personal data without a stated purpose (reason)"),
    ("sensitive_change", "a sensitive field changes, then an export or a login from a new place within T"),
    ("privilege_change", "privilege grants and changes to the audit system's own settings"),
    ("first_touch", "an actor touches a kind of record never touched before"),
    ("silence", "a source stops sending for longer than its usual gap"),
    ("baseline", "hourly activity of an actor or source departs from its learned level"),
];

/// The catalogue `GET /v1/rules/templates` answers: each template with its default parameters.
pub fn templates() -> Vec<Value> {
    TEMPLATES
        .iter()
        .map(|(name, finds)| {
            let params = match *name {
                "mass_access" => json!(MassAccess::default()),
                "failed_burst" => json!(FailedBurst::default()),
                "off_hours" => json!(OffHours::default()),
                "watchlist" => {
                    json!(Watchlist { subjects: vec!["cus_00006".into()], ..Watchlist::default() })
                }
                "no_purpose" => json!(NoPurpose::default()),
                "sensitive_change" => json!(SensitiveChange::default()),
                "privilege_change" => json!(PrivilegeChange::default()),
                "first_touch" => json!(FirstTouch::default()),
                "silence" => json!(Silence::default()),
                _ => json!(Baseline::default()),
            };
            json!({"template": name, "finds": finds, "params": params})
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidRule { field: field.to_owned(), reason: reason.into() }
}

fn parse<T: DeserializeOwned>(params: &Value) -> Result<T> {
    if !params.is_object() {
        return Err(invalid("params", "must be a JSON object"));
    }
    serde_json::from_value(params.clone()).map_err(|err| invalid("params", err.to_string()))
}

fn window(field: &str, secs: u64) -> Result<()> {
    if secs == 0 || secs > 31 * 86_400 {
        return Err(invalid(field, "must be between 1 second and 31 days"));
    }
    Ok(())
}

fn cooldown(field: &str, secs: u64) -> Result<()> {
    if secs > 31 * 86_400 {
        return Err(invalid(field, "at most 31 days"));
    }
    Ok(())
}

fn threshold(field: &str, n: u32) -> Result<()> {
    if n == 0 || n > 5000 {
        return Err(invalid(field, "must be between 1 and 5000"));
    }
    Ok(())
}

const ACTIONS: &[&str] = &[
    "create",
    "read",
    "update",
    "delete",
    "list",
    "search",
    "export",
    "login",
    "logout",
    "grant",
    "revoke",
    "configure",
    "other",
];

fn actions(field: &str, actions: &[String]) -> Result<()> {
    match actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
        Some(bad) => Err(invalid(field, format!("{bad:?} is not an action ({})", ACTIONS.join(", ")))),
        None => Ok(()),
    }
}

fn list_len(field: &str, items: &[String], max: usize) -> Result<()> {
    if items.len() > max {
        return Err(invalid(field, format!("at most {max} items")));
    }
    if items.iter().any(|s| s.is_empty() || s.len() > 256) {
        return Err(invalid(field, "items must be 1 to 256 characters"));
    }
    Ok(())
}

fn factor(field: &str, f: f64) -> Result<()> {
    if !(f.is_finite() && (1.0..=1000.0).contains(&f)) {
        return Err(invalid(field, "must be between 1 and 1000"));
    }
    Ok(())
}

/// "HH:MM" as minutes of the day (24:00 allowed as an end).
fn minute_of_day(field: &str, text: &str) -> Result<i64> {
    let bad = || invalid(field, "must be HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// "+HH:MM" / "-HH:MM" / "Z" as seconds east of UTC.
fn utc_offset(field: &str, text: &str) -> Result<i64> {
    if text == "Z" {
        return Ok(0);
    }
    let bad = || invalid(field, "must be a fixed UTC offset like +01:00");
    let sign = match text.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(bad()),
    };
    let minutes = minute_of_day(field, &text[1..]).map_err(|_| bad())?;
    if minutes > 14 * 60 {
        return Err(bad());
    }
    Ok(sign * minutes * 60)
}

impl Rule {
    /// Checks the id, template and parameters; answers what the evaluator runs.
    pub fn compile(&self) -> Result<Params> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(invalid("id", "must be 1 to 64 of a-z, 0-9, '-' and '_'"));
        }
        if self.description.len() > 1000 {
            return Err(invalid("description", "at most 1000 characters"));
        }
        let params = &self.params;
        Ok(match self.template.as_str() {
            "mass_access" => {
                let p: MassAccess = parse(params)?;
                threshold("params.threshold", p.threshold)?;
                window("params.window_secs", p.window_secs)?;
                actions("params.actions", &p.actions)?;
                list_len("params.target_types", &p.target_types, 50)?;
                Params::MassAccess(p)
            }
            "failed_burst" => {
                let p: FailedBurst = parse(params)?;
                threshold("params.threshold", p.threshold)?;
                window("params.window_secs", p.window_secs)?;
                if p.by == By::Source {
                    return Err(invalid("params.by", "must be actor or ip"));
                }
                Params::FailedBurst(p)
            }
            "off_hours" => {
                let p: OffHours = parse(params)?;
                if p.days.iter().any(|d| !(1..=7).contains(d)) {
                    return Err(invalid("params.days", "days are 1 (Monday) to 7 (Sunday)"));
                }
                let start_minute = minute_of_day("params.start", &p.start)?;
                let end_minute = minute_of_day("params.end", &p.end)?;
                if start_minute == end_minute {
                    return Err(invalid("params.end", "must differ from start"));
                }
                let offset_secs = utc_offset("params.utc_offset", &p.utc_offset)?;
                actions("params.actions", &p.actions)?;
                list_len("params.actor_types", &p.actor_types, 10)?;
                cooldown("params.cooldown_secs", p.cooldown_secs)?;
                Params::OffHours(OffHoursCompiled { params: p, start_minute, end_minute, offset_secs })
            }
            "watchlist" => {
                let p: Watchlist = parse(params)?;
                list_len("params.subjects", &p.subjects, 10_000)?;
                list_len("params.targets", &p.targets, 10_000)?;
                list_len("params.exempt_actors", &p.exempt_actors, 1000)?;
                cooldown("params.cooldown_secs", p.cooldown_secs)?;
                if p.subjects.is_empty() && p.targets.is_empty() {
                    return Err(invalid("params.subjects", "name at least one subject or target"));
                }
                Params::Watchlist(p)
            }
            "no_purpose" => {
                let p: NoPurpose = parse(params)?;
                actions("params.actions", &p.actions)?;
                list_len("params.data_classes", &p.data_classes, 10)?;
                cooldown("params.cooldown_secs", p.cooldown_secs)?;
                Params::NoPurpose(p)
            }
            "sensitive_change" => {
                let p: SensitiveChange = parse(params)?;
                window("params.window_secs", p.window_secs)?;
                list_len("params.fields", &p.fields, 200)?;
                if p.fields.is_empty() {
                    return Err(invalid("params.fields", "name at least one field"));
                }
                Params::SensitiveChange(p)
            }
            "privilege_change" => {
                let p: PrivilegeChange = parse(params)?;
                list_len("params.type_prefixes", &p.type_prefixes, 100)?;
                list_len("params.privileged_roles", &p.privileged_roles, 10)?;
                actions("params.actions", &p.actions)?;
                Params::PrivilegeChange(p)
            }
            "first_touch" => {
                let p: FirstTouch = parse(params)?;
                if p.min_events > 1_000_000 {
                    return Err(invalid("params.min_events", "at most 1000000"));
                }
                Params::FirstTouch(p)
            }
            "silence" => {
                let p: Silence = parse(params)?;
                factor("params.factor", p.factor)?;
                window("params.min_silence_secs", p.min_silence_secs)?;
                if p.min_events < 2 {
                    return Err(invalid("params.min_events", "at least 2"));
                }
                Params::Silence(p)
            }
            "baseline" => {
                let p: Baseline = parse(params)?;
                factor("params.factor", p.factor)?;
                threshold("params.min_count", p.min_count)?;
                if p.by == By::Ip {
                    return Err(invalid("params.by", "must be actor or source"));
                }
                if p.learning_hours > 24 * 365 {
                    return Err(invalid("params.learning_hours", "at most a year"));
                }
                Params::Baseline(p)
            }
            other => {
                let known: Vec<&str> = TEMPLATES.iter().map(|(name, _)| *name).collect();
                return Err(invalid(
                    "template",
                    format!("unknown template {other:?}; known: {}", known.join(", ")),
                ));
            }
        })
    }
}

/// The rules every tenant starts with. Tuned on `evident demo`: its three planted patterns are
/// found, its ordinary traffic raises nothing. The working hours are the demo's (UTC+01:00,
/// 06:00 to 22:00 every day); change them to the tenant's calendar.
pub fn default_rules() -> Vec<Rule> {
    let rule = |id: &str, template: &str, params: Value, severity, description: &str| Rule {
        id: id.into(),
        template: template.into(),
        params,
        severity,
        enabled: true,
        description: description.into(),
    };
    vec![
        rule(
            "mass-access",
            "mass_access",
            json!(MassAccess::default()),
            Severity::High,
            "one actor read or exported more than 100 distinct customers within an hour",
        ),
        rule(
            "failed-logins-ip",
            "failed_burst",
            json!(FailedBurst::default()),
            Severity::High,
            "10 failed logins or denied requests from one IP address within 5 minutes",
        ),
        rule(
            "failed-logins-actor",
            "failed_burst",
            json!(FailedBurst { by: By::Actor, ..FailedBurst::default() }),
            Severity::Medium,
            "10 failed logins or denied requests by one actor within 5 minutes",
        ),
        rule(
            "off-hours",
            "off_hours",
            json!(OffHours {
                days: vec![1, 2, 3, 4, 5, 6, 7],
                start: "06:00".into(),
                end: "22:00".into(),
                utc_offset: "+01:00".into(),
                ..OffHours::default()
            }),
            Severity::Medium,
            "access to records between 22:00 and 06:00 (UTC+01:00)",
        ),
        rule(
            "no-purpose",
            "no_purpose",
            json!(NoPurpose::default()),
            Severity::Medium,
            "a read of personal data without a stated purpose",
        ),
        rule(
            "sensitive-change",
            "sensitive_change",
            json!(SensitiveChange::default()),
            Severity::High,
            "a customer's e-mail, phone or bank account changed, then an export or a login from a new place",
        ),
        rule(
            "privilege-change",
            "privilege_change",
            json!(PrivilegeChange::default()),
            Severity::Medium,
            "privileged keys granted, detection rules or webhooks changed",
        ),
        rule(
            "source-silence",
            "silence",
            json!(Silence::default()),
            Severity::Low,
            "a source sent nothing for ten times its usual gap (at least an hour)",
        ),
        rule(
            "actor-baseline",
            "baseline",
            json!(Baseline::default()),
            Severity::Medium,
            "an actor's hourly activity is five times its usual level",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(template: &str, params: Value, expect_error: Option<&str>) {
        let rule = Rule {
            id: "r1".into(),
            template: template.into(),
            params,
            severity: Severity::Low,
            enabled: true,
            description: String::new(),
        };
        match (rule.compile(), expect_error) {
            (Ok(_), None) => {}
            (Err(Error::InvalidRule { field, .. }), Some(expected)) => assert_eq!(field, expected),
            (other, _) => panic!("{template}: {other:?}, expected {expect_error:?}"),
        }
    }

    #[test]
    fn parameters_are_checked() {
        check("mass_access", json!({}), None);
        check("mass_access", json!({"threshold": -1}), Some("params"));
        check("mass_access", json!({"threshold": 0}), Some("params.threshold"));
        check("mass_access", json!({"window_secs": 0}), Some("params.window_secs"));
        check("mass_access", json!({"actions": ["peek"]}), Some("params.actions"));
        check("mass_access", json!({"bogus": 1}), Some("params"));
        check("mass_access", json!([1]), Some("params"));
        check("failed_burst", json!({"by": "source"}), Some("params.by"));
        check("off_hours", json!({"start": "25:00"}), Some("params.start"));
        check("off_hours", json!({"utc_offset": "Europe/Paris"}), Some("params.utc_offset"));
        check("off_hours", json!({"days": [0]}), Some("params.days"));
        check("off_hours", json!({"start": "22:00", "end": "06:00", "utc_offset": "-05:30"}), None);
        check("watchlist", json!({}), Some("params.subjects"));
        check("no_purpose", json!({"cooldown_secs": u64::MAX}), Some("params.cooldown_secs"));
        check("off_hours", json!({"cooldown_secs": 40 * 86_400}), Some("params.cooldown_secs"));
        check("watchlist", json!({"subjects": ["cus_1"]}), None);
        check("silence", json!({"factor": 0.5}), Some("params.factor"));
        check("baseline", json!({"by": "ip"}), Some("params.by"));
        check("nope", json!({}), Some("template"));
        for template in templates() {
            check(template["template"].as_str().unwrap(), template["params"].clone(), None);
        }
        for rule in default_rules() {
            rule.compile().unwrap();
        }
        let bad_id = Rule { id: "Bad Id".into(), ..default_rules()[0].clone() };
        assert!(matches!(bad_id.compile(), Err(Error::InvalidRule { field, .. }) if field == "id"));
    }
}
