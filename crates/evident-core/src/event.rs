//! Producer events as `../shared/spec/EVENT-SCHEMA.md` §1 defines them, after validation.
//!
//! These are domain types, not wire types: parsing and validation from JSON live in
//! [`crate::validate`], the canonical leaf form in [`crate::leaf`].

use std::collections::BTreeMap;

use evident_wire::Micros;
use evident_wire::names::{Action, ActorType, DataClass, Outcome, Severity};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub method: Option<String>,
    pub mfa: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub actor_type: Option<ActorType>,
    /// Personal.
    pub display: Option<String>,
    pub on_behalf_of: Option<String>,
    pub session: Option<String>,
    pub auth: Option<Auth>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub target_type: String,
    pub id: String,
    /// Personal.
    pub display: Option<String>,
}

/// One changed field of the (first) target; `None` means absent (no value before a create, none
/// after a delete), which is not the same as JSON `null`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// An RFC 6901 JSON pointer into the record.
    pub field: String,
    /// Personal.
    pub before: Option<Value>,
    /// Personal.
    pub after: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EventOrigin {
    /// Personal.
    pub ip: Option<String>,
    /// Personal.
    pub user_agent: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Correlation {
    /// A valid W3C traceparent; a malformed one is dropped during validation.
    pub traceparent: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
}

/// A validated producer event (what the producer said; the service's additions live in
/// [`crate::leaf::Recorded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub action: Action,
    pub time: Micros,
    pub actor: Actor,
    pub subject: Option<String>,
    pub targets: Vec<Target>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub changes: Vec<Change>,
    pub origin: EventOrigin,
    pub correlation: Option<Correlation>,
    pub severity: Severity,
    pub data_classes: Vec<DataClass>,
    pub metadata: BTreeMap<String, String>,
}

/// What to do with card numbers and secrets found in free text (PCI DSS 3.3.1, 3.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SensitiveTextPolicy {
    /// Refuse the event, naming the field.
    #[default]
    Reject,
    /// Store it with the sensitive run masked (all but the last four digits of a card number,
    /// the whole value of a secret), and say so in the receipt's warnings.
    Mask,
}

/// Per-tenant rules that validation applies.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TenantPolicy {
    pub sensitive_text: SensitiveTextPolicy,
    /// Reads of personal data (a read-like action on an event with `data_classes`) must carry a
    /// `reason` stating the purpose.
    pub require_purpose_for_personal_reads: bool,
    /// Metadata keys whose values are personal and therefore sealed.
    pub personal_metadata_keys: Vec<String>,
}

impl TenantPolicy {
    /// The form every store keeps a policy in: a small JSON object.
    pub fn to_stored(&self) -> String {
        serde_json::json!({
            "sensitive_text": match self.sensitive_text {
                SensitiveTextPolicy::Reject => "reject",
                SensitiveTextPolicy::Mask => "mask",
            },
            "require_purpose_for_personal_reads": self.require_purpose_for_personal_reads,
            "personal_metadata_keys": self.personal_metadata_keys,
        })
        .to_string()
    }

    /// Reads [`TenantPolicy::to_stored`]'s form back; anything else is an integrity error.
    pub fn from_stored(text: &str) -> crate::Result<TenantPolicy> {
        let bad = || crate::Error::Integrity(format!("stored tenant policy is unreadable: {text}"));
        let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
        Ok(TenantPolicy {
            sensitive_text: match value["sensitive_text"].as_str() {
                Some("mask") => SensitiveTextPolicy::Mask,
                Some("reject") => SensitiveTextPolicy::Reject,
                _ => return Err(bad()),
            },
            require_purpose_for_personal_reads: value["require_purpose_for_personal_reads"]
                .as_bool()
                .ok_or_else(bad)?,
            personal_metadata_keys: value["personal_metadata_keys"]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|k| k.as_str().map(str::to_owned).ok_or_else(bad))
                .collect::<crate::Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_policies_read_back_and_unreadable_ones_are_refused() {
        let policy = TenantPolicy {
            sensitive_text: SensitiveTextPolicy::Mask,
            require_purpose_for_personal_reads: true,
            personal_metadata_keys: vec!["employee_id".into()],
        };
        assert_eq!(TenantPolicy::from_stored(&policy.to_stored()).unwrap(), policy);
        assert_eq!(
            TenantPolicy::from_stored(&TenantPolicy::default().to_stored()).unwrap(),
            TenantPolicy::default()
        );
        for bad in [
            "",
            "{}",
            r#"{"sensitive_text": "shred", "require_purpose_for_personal_reads": false, "personal_metadata_keys": []}"#,
            r#"{"sensitive_text": "mask", "require_purpose_for_personal_reads": "no", "personal_metadata_keys": []}"#,
            r#"{"sensitive_text": "mask", "require_purpose_for_personal_reads": false, "personal_metadata_keys": [1]}"#,
        ] {
            assert!(matches!(TenantPolicy::from_stored(bad), Err(crate::Error::Integrity(_))), "{bad:?}");
        }
    }
}
