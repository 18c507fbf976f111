//! Retention: how long a tenant keeps personal parts. Data keys are per subject, calendar month
//! of the event's time, event type and data classes (key name
//! `subject<US>YYYY-MM<US>type<US>class,class`, `<US>` = U+001F), so personal parts older than the
//! maximum that applies to them can be made unrecoverable (their key destroyed) even while the
//! same subject has newer events, or events of another type in the same month, under a longer
//! maximum. Leaves, proofs and the non-personal skeleton stay forever.
//!
//! A policy has a default rule (a minimum: what must be kept, where named presets give the floors
//! of PCI DSS v4.0.1 10.5.1, HIPAA 164.316(b)(2) and SOX 802; and a maximum: storage limitation,
//! GDPR Art. 5(1)(e)) and rules by event type and data class ([`Rule`]); the most specific rule
//! that matches a key applies ([`Policy::rule_for`]). A minimum or maximum (of any rule) below a
//! preset's floor is refused unless an override reason is given, which the server records.
//! Policies live in the service-state blob `privacy/<tenant>/retention`.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::Result;
use crate::store::{KeyStore, TenantId};
use evident_wire::Micros;

/// Between a sealing subject and the month in a data key's name: no identifier holds it.
pub const PERIOD_SEPARATOR: char = '\u{1f}';

/// The name of the data key that seals a personal part of `sealing_subject` from an event at
/// `time` of `event_type` with `data_classes` (wire names).
pub fn key_name(sealing_subject: &str, time: Micros, event_type: &str, data_classes: &[&str]) -> String {
    let month = chrono::DateTime::from_timestamp_micros(time.0)
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "0000-00".to_owned());
    let sep = PERIOD_SEPARATOR;
    format!("{sealing_subject}{sep}{month}{sep}{event_type}{sep}{}", data_classes.join(","))
}

/// What a key name says: its subject, the first instant after its month, and the event type and
/// data classes of what it seals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub subject: &'a str,
    /// `None` for keys made before periods, which retention leaves to erasure.
    pub end: Option<Micros>,
    /// `None` for keys made before keys were split by type (only the default rule applies).
    pub event_type: Option<&'a str>,
    pub data_classes: Vec<&'a str>,
}

/// Reads a key name made by [`key_name`] (or by earlier versions: `subject` alone, or
/// `subject<US>YYYY-MM`).
pub fn split_key_name(name: &str) -> KeyParts<'_> {
    let mut parts = name.split(PERIOD_SEPARATOR);
    let subject = parts.next().unwrap_or(name);
    let end = parts.next().and_then(|month| {
        chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
            .ok()
            .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|next| Micros(next.and_utc().timestamp_micros()))
    });
    let event_type = parts.next();
    let data_classes = parts.next().map_or(Vec::new(), |c| c.split(',').filter(|c| !c.is_empty()).collect());
    KeyParts { subject, end, event_type, data_classes }
}

/// Named minimums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// PCI DSS v4.0.1 10.5.1: audit logs kept 12 months, the last 3 immediately available.
    PciDss,
    /// HIPAA 45 CFR 164.316(b)(2): 6 years.
    Hipaa,
    /// SOX (18 U.S.C. 1519, SEC rule 2-06): 7 years.
    Sox,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::PciDss, Preset::Hipaa, Preset::Sox];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::PciDss => "pci_dss",
            Preset::Hipaa => "hipaa",
            Preset::Sox => "sox",
        }
    }

    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The minimum it requires, in days.
    pub fn floor_days(self) -> u32 {
        match self {
            Preset::PciDss => 365,
            Preset::Hipaa => 6 * 365,
            Preset::Sox => 7 * 365,
        }
    }

    /// How much of it must be immediately available (online), in days.
    pub fn online_days(self) -> u32 {
        match self {
            Preset::PciDss => 90,
            other => other.floor_days(),
        }
    }
}

/// A rule by event type and/or data class: how long the personal parts it matches are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// A data class (`pii`, `phi`, ...) the event must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_class: Option<String>,
    /// An exact event type, or a prefix ending in `.*` (`billing.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub min_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<u32>,
}

impl Rule {
    /// How specifically the rule matches a key's event type and classes, `None` if it does not.
    /// An exact type beats a longer prefix beats a shorter one beats no type; at equal type, a
    /// rule that also names a class beats one that does not.
    fn specificity(&self, event_type: Option<&str>, classes: &[&str]) -> Option<(usize, bool)> {
        let by_type = match (&self.event_type, event_type) {
            (None, _) => 0,
            (Some(_), None) => return None,
            (Some(pattern), Some(actual)) => match pattern.strip_suffix('*') {
                Some(prefix) if actual.starts_with(prefix) => 1 + prefix.len(),
                Some(_) => return None,
                None if pattern == actual => usize::MAX,
                None => return None,
            },
        };
        match &self.data_class {
            Some(class) if !classes.contains(&class.as_str()) => None,
            class => Some((by_type, class.is_some())),
        }
    }
}

/// A tenant's retention: the default rule (`min_days`, `max_days`) and rules by type and class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub presets: Vec<Preset>,
    /// Personal parts are kept at least this long.
    pub min_days: u32,
    /// Personal parts older than this become unrecoverable; `None`: kept until erased.
    pub max_days: Option<u32>,
    /// Why a setting below a preset's floor is accepted; recorded.
    pub override_reason: Option<String>,
    /// Rules by event type and data class; what none matches follows the default.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// Why a policy is refused: the field, whether it is under a preset's floor (the request is well
/// formed but the policy forbids it: 422) or malformed (400), and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub below_floor: bool,
    pub reason: String,
}

impl Policy {
    /// The highest floor of the policy's presets.
    pub fn floor_days(&self) -> u32 {
        self.presets.iter().map(|p| p.floor_days()).max().unwrap_or(0)
    }

    /// The rule that applies to a key's event type and classes: its index in `rules` (`None`: the
    /// default) and its maximum. Ties go to the rule listed first.
    pub fn rule_for(&self, event_type: Option<&str>, classes: &[&str]) -> (Option<usize>, Option<u32>) {
        let best = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| rule.specificity(event_type, classes).map(|s| (s, std::cmp::Reverse(i))))
            .max();
        match best {
            Some((_, std::cmp::Reverse(i))) => (Some(i), self.rules[i].max_days),
            None => (None, self.max_days),
        }
    }

    /// Checks the policy; a minimum or maximum below a preset's floor needs an override reason.
    pub fn check(&self) -> std::result::Result<(), Refused> {
        self.check_rule("", self.min_days, self.max_days)?;
        for (i, rule) in self.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            if rule.data_class.is_none() && rule.event_type.is_none() {
                return Err(Refused {
                    field,
                    below_floor: false,
                    reason: "a rule names an event_type, a data_class or both".to_owned(),
                });
            }
            if let Some(pattern) = &rule.event_type
                && let body = pattern.strip_suffix(".*").unwrap_or(pattern)
                && (body.is_empty() || body.contains('*'))
            {
                return Err(Refused {
                    field: format!("{field}.event_type"),
                    below_floor: false,
                    reason: format!("event_type {pattern:?} is an exact type or a prefix ending in \".*\""),
                });
            }
            self.check_rule(&format!("{field}."), rule.min_days, rule.max_days)?;
        }
        Ok(())
    }

    fn check_rule(&self, prefix: &str, min: u32, max: Option<u32>) -> std::result::Result<(), Refused> {
        if let Some(max) = max
            && (max == 0 || max < min)
        {
            return Err(Refused {
                field: format!("{prefix}max_days"),
                below_floor: false,
                reason: format!("{prefix}max_days ({max}) must be at least 1 and at least min_days ({min})"),
            });
        }
        let Some(preset) = self.presets.iter().copied().max_by_key(|p| p.floor_days()) else { return Ok(()) };
        let floor = preset.floor_days();
        let below = [("min_days", Some(min)), ("max_days", max)]
            .into_iter()
            .find(|(_, days)| days.is_some_and(|d| d < floor));
        if let Some((name, Some(days))) = below
            && self.override_reason.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            let field = format!("{prefix}{name}");
            return Err(Refused {
                reason: format!(
                    "{field} ({days} days) is below the {floor}-day floor of preset {}; give override_reason to accept it",
                    preset.as_str()
                ),
                field,
                below_floor: true,
            });
        }
        Ok(())
    }
}

fn blob_name(tenant: &TenantId) -> String {
    format!("privacy/{tenant}/retention")
}

/// A tenant's policy; the default (keep until erased) if none was set.
pub fn policy(store: &dyn KeyStore, tenant: &TenantId) -> Result<Policy> {
    super::load_blob(store, &blob_name(tenant))
}

/// Replaces a tenant's policy, durably.
pub fn put_policy(store: &dyn KeyStore, tenant: &TenantId, policy: &Policy) -> Result<()> {
    super::save_blob(store, &blob_name(tenant), policy)
}

/// What one run of retention did for a tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Whether any rule has a maximum (a run without one does nothing and is not recorded).
    pub active: bool,
    /// The default rule's cutoff: personal parts that only it covers are unrecoverable after the
    /// run when older than this.
    pub cutoff: Option<Micros>,
    /// Month keys destroyed now.
    pub keys_destroyed: u64,
    /// Month keys past their cutoff kept because a legal hold covers their subject.
    pub keys_held: u64,
    /// Of `keys_destroyed`, how many under each rule of `Policy::rules` (by index) that has one.
    pub destroyed_by_rule: std::collections::BTreeMap<usize, u64>,
}

const DAY: i64 = 86_400_000_000;

impl Engine {
    /// Applies a tenant's maxima: destroys every key whose month ended before `now` minus the
    /// maximum of the most specific rule that matches the key's event type and data classes,
    /// unless a legal hold covers its subject.
    pub fn apply_retention(&self, tenant: &TenantId, now: Micros) -> Result<Run> {
        let policy = policy(&**self.store(), tenant)?;
        let mut run = Run {
            active: policy.max_days.is_some() || policy.rules.iter().any(|r| r.max_days.is_some()),
            cutoff: policy.max_days.map(|max| Micros(now.0 - i64::from(max) * DAY)),
            ..Run::default()
        };
        if !run.active {
            return Ok(run);
        }
        for name in self.store().data_key_names(tenant, None)? {
            let parts = split_key_name(&name);
            let Some(end) = parts.end else { continue };
            let (rule, Some(max_days)) = policy.rule_for(parts.event_type, &parts.data_classes) else {
                continue;
            };
            if end > Micros(now.0 - i64::from(max_days) * DAY) {
                continue;
            }
            if self.hold_covering_subject(tenant, parts.subject)?.is_some() {
                run.keys_held += 1;
            } else if self.erase_data_key(tenant, &name)? {
                run.keys_destroyed += 1;
                if let Some(rule) = rule {
                    *run.destroyed_by_rule.entry(rule).or_default() += 1;
                }
            }
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_carry_the_month() {
        let time = Micros::parse_rfc3339("2026-02-14T10:00:00Z").unwrap();
        let name = key_name("cust-1", time, "billing.charged", &["pii", "pci"]);
        assert_eq!(name, "cust-1\u{1f}2026-02\u{1f}billing.charged\u{1f}pii,pci");
        assert_eq!(
            split_key_name(&name),
            KeyParts {
                subject: "cust-1",
                end: Micros::parse_rfc3339("2026-03-01T00:00:00Z"),
                event_type: Some("billing.charged"),
                data_classes: vec!["pii", "pci"],
            }
        );
        let december = key_name("c", Micros::parse_rfc3339("2025-12-31T23:59:59Z").unwrap(), "t", &[]);
        assert_eq!(split_key_name(&december).end, Micros::parse_rfc3339("2026-01-01T00:00:00Z"));
        assert_eq!(split_key_name(&december).data_classes, Vec::<&str>::new());
        let older = split_key_name("cust-1\u{1f}2026-02");
        assert_eq!((older.subject, older.event_type), ("cust-1", None));
        assert_eq!(split_key_name("cust-1").end, None);
    }

    #[test]
    fn floors_need_an_override() {
        let check = |policy: Policy| policy.check().map_err(|r| &*r.field.leak());
        let pci = |min, max| Policy {
            presets: vec![Preset::PciDss],
            min_days: min,
            max_days: max,
            override_reason: None,
            rules: Vec::new(),
        };
        assert_eq!(check(pci(365, Some(400))), Ok(()));
        assert_eq!(check(pci(300, None)), Err("min_days"));
        assert_eq!(check(pci(365, Some(200))), Err("max_days"));
        assert_eq!(
            check(Policy { override_reason: Some("court order".into()), ..pci(300, Some(300)) }),
            Ok(())
        );
        assert_eq!(check(Policy { override_reason: Some(" ".into()), ..pci(300, None) }), Err("min_days"));
        assert_eq!(
            check(Policy { presets: vec![Preset::PciDss, Preset::Sox], ..pci(400, None) }),
            Err("min_days")
        );
        assert_eq!(check(Policy { min_days: 30, max_days: Some(10), ..Policy::default() }), Err("max_days"));
        assert_eq!(check(Policy { max_days: Some(0), ..Policy::default() }), Err("max_days"));
    }

    fn rule(event_type: Option<&str>, data_class: Option<&str>, max: Option<u32>) -> Rule {
        Rule {
            event_type: event_type.map(str::to_owned),
            data_class: data_class.map(str::to_owned),
            min_days: 0,
            max_days: max,
        }
    }

    #[test]
    fn the_most_specific_rule_applies() {
        let policy = Policy {
            max_days: Some(1000),
            rules: vec![
                rule(None, Some("phi"), Some(10)),
                rule(Some("billing.*"), None, Some(20)),
                rule(Some("billing.card.*"), None, Some(30)),
                rule(Some("billing.card.charged"), None, Some(40)),
                rule(Some("billing.*"), Some("pci"), Some(50)),
                rule(None, Some("pii"), None),
            ],
            ..Policy::default()
        };
        let at = |t: Option<&str>, classes: &[&str]| policy.rule_for(t, classes);
        assert_eq!(at(Some("login"), &[]), (None, Some(1000)), "nothing matches: the default");
        assert_eq!(at(Some("login"), &["phi"]), (Some(0), Some(10)), "by class");
        assert_eq!(at(Some("login"), &["pii", "phi"]), (Some(0), Some(10)), "equal: the first listed");
        assert_eq!(at(Some("login"), &["pii"]), (Some(5), None), "a rule without a maximum keeps");
        assert_eq!(at(Some("billing.refund"), &["phi"]), (Some(1), Some(20)), "type beats class");
        assert_eq!(at(Some("billing.card.voided"), &[]), (Some(2), Some(30)), "longer prefix");
        assert_eq!(at(Some("billing.card.charged"), &["pci"]), (Some(3), Some(40)), "exact type");
        assert_eq!(at(Some("billing.refund"), &["pci"]), (Some(4), Some(50)), "type and class");
        assert_eq!(at(None, &["phi"]), (Some(0), Some(10)), "old keys: classes only");
        assert_eq!(at(Some("billingx"), &[]), (None, Some(1000)), "a prefix ends at its dot");
    }

    #[test]
    fn every_rule_meets_the_floors() {
        let refused = |rules: Vec<Rule>, reason: Option<&str>| {
            Policy {
                presets: vec![Preset::Hipaa],
                min_days: 2190,
                rules,
                override_reason: reason.map(str::to_owned),
                ..Policy::default()
            }
            .check()
            .err()
            .map(|r| (r.field, r.below_floor))
        };
        let short = |days| Rule { min_days: days, ..rule(Some("login.*"), None, Some(days)) };
        assert_eq!(refused(vec![short(2190)], None), None);
        assert_eq!(refused(vec![short(30)], None), Some(("rules[0].min_days".to_owned(), true)));
        assert_eq!(refused(vec![short(30)], Some("court order")), None);
        assert_eq!(
            refused(vec![short(2190), rule(None, None, None)], None),
            Some(("rules[1]".to_owned(), false))
        );
        assert_eq!(
            refused(vec![Rule { min_days: 2190, ..rule(Some("a*b.*"), None, None) }], None),
            Some(("rules[0].event_type".to_owned(), false))
        );
        let refusal = Policy {
            presets: vec![Preset::Hipaa],
            rules: vec![short(30)],
            min_days: 2190,
            ..Policy::default()
        }
        .check()
        .unwrap_err();
        assert!(refusal.reason.contains("hipaa"), "{}", refusal.reason);
    }
}
