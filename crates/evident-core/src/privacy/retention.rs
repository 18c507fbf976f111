//! Retention: how long a tenant keeps personal parts. Data keys are per subject *and* calendar
//! month of the event's time (key name `subject<U+001F>YYYY-MM`), so personal parts older than the
//! tenant's maximum can be made unrecoverable (their month's key destroyed) even while the same
//! subject has newer events. Leaves, proofs and the non-personal skeleton stay forever.
//!
//! A policy has a minimum (what must be kept: named presets give the floors of PCI DSS v4.0.1
//! 10.5.1, HIPAA 164.316(b)(2) and SOX 802) and a maximum (storage limitation, GDPR Art. 5(1)(e)).
//! A setting below a preset's floor is refused unless an override reason is given, which the
//! server records. Policies live in the service-state blob `privacy/<tenant>/retention`.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::{KeyStore, TenantId};
use evident_wire::Micros;

/// Between a sealing subject and the month in a data key's name: no identifier holds it.
pub const PERIOD_SEPARATOR: char = '\u{1f}';

/// The name of the data key that seals a personal part of `sealing_subject` from an event at `time`.
pub fn key_name(sealing_subject: &str, time: Micros) -> String {
    let month = chrono::DateTime::from_timestamp_micros(time.0)
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_else(|| "0000-00".to_owned());
    format!("{sealing_subject}{PERIOD_SEPARATOR}{month}")
}

/// The subject of a key name, and the first instant after its month (`None` for keys made
/// before periods, which retention leaves to erasure).
pub fn split_key_name(name: &str) -> (&str, Option<Micros>) {
    let Some((subject, month)) = name.split_once(PERIOD_SEPARATOR) else { return (name, None) };
    let end = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .map(|next| Micros(next.and_utc().timestamp_micros()));
    (subject, end)
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

/// A tenant's retention.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub presets: Vec<Preset>,
    /// Personal parts are kept at least this long.
    pub min_days: u32,
    /// Personal parts older than this become unrecoverable; `None`: kept until erased.
    pub max_days: Option<u32>,
    /// Why a setting below a preset's floor is accepted; recorded.
    pub override_reason: Option<String>,
}

/// Why a policy is refused: the field and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

impl Policy {
    /// The highest floor of the policy's presets.
    pub fn floor_days(&self) -> u32 {
        self.presets.iter().map(|p| p.floor_days()).max().unwrap_or(0)
    }

    /// Checks the policy; a minimum or maximum below a preset's floor needs an override reason.
    pub fn check(&self) -> std::result::Result<(), Refused> {
        if let Some(max) = self.max_days
            && (max == 0 || max < self.min_days)
        {
            return Err(Refused {
                field: "max_days",
                reason: format!(
                    "max_days ({max}) must be at least 1 and at least min_days ({})",
                    self.min_days
                ),
            });
        }
        let floor = self.floor_days();
        let below = [("min_days", Some(self.min_days)), ("max_days", self.max_days)]
            .into_iter()
            .find(|(_, days)| days.is_some_and(|d| d < floor));
        if let Some((field, Some(days))) = below
            && self.override_reason.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            return Err(Refused {
                field,
                reason: format!(
                    "{field} ({days} days) is below the {floor}-day floor of the presets; give override.reason to accept it"
                ),
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
    match store.get_state(&blob_name(tenant))? {
        None => Ok(Policy::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| Error::Integrity(format!("stored retention of {tenant} is unreadable: {err}"))),
    }
}

/// Replaces a tenant's policy, durably.
pub fn put_policy(store: &dyn KeyStore, tenant: &TenantId, policy: &Policy) -> Result<()> {
    store.put_state(&blob_name(tenant), &serde_json::to_vec(policy).expect("a policy serialises"))
}

/// What one run of retention did for a tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Personal parts older than this are unrecoverable after the run.
    pub cutoff: Option<Micros>,
    /// Month keys destroyed now.
    pub keys_destroyed: u64,
    /// Month keys past the cutoff kept because a legal hold covers their subject.
    pub keys_held: u64,
}

impl Engine {
    /// Applies a tenant's maximum: destroys every month key whose month ended before
    /// `now - max_days`, unless a legal hold covers its subject.
    pub fn apply_retention(&self, tenant: &TenantId, now: Micros) -> Result<Run> {
        let policy = policy(&**self.store(), tenant)?;
        let Some(max_days) = policy.max_days else { return Ok(Run::default()) };
        let cutoff = Micros(now.0 - i64::from(max_days) * 86_400_000_000);
        let mut run = Run { cutoff: Some(cutoff), ..Run::default() };
        for name in self.store().data_key_names(tenant, None)? {
            let (subject, Some(end)) = split_key_name(&name) else { continue };
            if end > cutoff {
                continue;
            }
            if self.hold_covering_subject(tenant, subject)?.is_some() {
                run.keys_held += 1;
            } else if self.erase_data_key(tenant, &name)? {
                run.keys_destroyed += 1;
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
        let name = key_name("cust-1", time);
        assert_eq!(name, "cust-1\u{1f}2026-02");
        assert_eq!(split_key_name(&name), ("cust-1", Micros::parse_rfc3339("2026-03-01T00:00:00Z")));
        let december = key_name("c", Micros::parse_rfc3339("2025-12-31T23:59:59Z").unwrap());
        assert_eq!(split_key_name(&december).1, Micros::parse_rfc3339("2026-01-01T00:00:00Z"));
        assert_eq!(split_key_name("cust-1"), ("cust-1", None));
    }

    #[test]
    fn floors_need_an_override() {
        let check = |policy: Policy| policy.check().map_err(|r| r.field);
        let pci = |min, max| Policy {
            presets: vec![Preset::PciDss],
            min_days: min,
            max_days: max,
            override_reason: None,
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
}
