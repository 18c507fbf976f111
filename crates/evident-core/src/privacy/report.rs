//! The reports a privacy officer hands out about one data subject, as JSON:
//! - `access` (GDPR Art. 15, with CJEU C-579/21): the subject's events with their personal data,
//!   and every access to that data with its date, who, their role and the stated purpose: the
//!   producers' read-like events (an agent viewing the record; the role is the actor's type) and
//!   the service's own `evident.audit.*` records naming the subject (the role is the key's);
//! - `disclosures` (HIPAA 164.528): the subject's events of the last six years that disclosed
//!   data to someone outside (action `export`, or a type ending in `.disclosed` or `.shared`);
//! - `erasure`: the `evident.privacy.erased` events naming the subject, whether any key of the
//!   subject is left, and the latest signed checkpoint, which proves the history otherwise unchanged.
//!
//! Every report names the search filter whose export bundle carries its events with proofs
//! (`bundle_filter`), so it can be checked offline.

use serde_json::{Value, json};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::read::{Access, EventView};
use crate::store::TenantId;
use evident_wire::Micros;
use evident_wire::filter::{Filter, Order, TypeFilter};

/// Events a report lists at most (older ones are left out, and the report says so).
pub const MAX_EVENTS: usize = 10_000;
const PAGE: usize = 1000;
const SIX_YEARS_MICROS: i64 = 6 * 365 * 86_400_000_000;

/// Which report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Access,
    Disclosures,
    Erasure,
}

impl Kind {
    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "access" => Some(Kind::Access),
            "disclosures" => Some(Kind::Disclosures),
            "erasure" => Some(Kind::Erasure),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Disclosures => "disclosures",
            Kind::Erasure => "erasure",
        }
    }
}

/// A read of the subject's data: a producer's event with a read-like action, or one of the
/// service's `evident.audit.*` records.
fn is_access(event: &Value) -> bool {
    if event["source"] == "evident" {
        return event["type"].as_str().is_some_and(|t| t.starts_with("evident.audit."));
    }
    matches!(event["action"].as_str(), Some("read" | "list" | "search" | "export"))
}

fn row(view: &EventView) -> Value {
    json!({"index": view.index, "event_id": view.event_id.to_string(), "personal": view.personal.as_str(), "event": view.event})
}

impl Engine {
    /// Up to [`MAX_EVENTS`] events matching `filter`, oldest first, and whether more were left out.
    fn all_events(
        &self,
        tenant: &TenantId,
        filter: &Filter,
        access: Access,
    ) -> Result<(Vec<EventView>, bool)> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.search(tenant, filter, Order::OldestFirst, cursor.as_deref(), PAGE, access)?;
            events.extend(page.items);
            if events.len() >= MAX_EVENTS {
                events.truncate(MAX_EVENTS);
                return Ok((events, page.next_cursor.is_some()));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok((events, false)),
            }
        }
    }

    /// A report about `subject`, as of `now`.
    pub fn subject_report(&self, tenant: &TenantId, subject: &str, kind: Kind, now: Micros) -> Result<Value> {
        let of_subject = Filter { subject: Some(subject.to_owned()), ..Filter::default() };
        let (checkpoint, bundle_filter, body) = match kind {
            Kind::Access => {
                let (events, truncated) = self.all_events(tenant, &of_subject, Access::Personal)?;
                // Accesses: the producers' own reads of the subject's data (an agent viewing the
                // record) and the service's records of reads through Evident.
                let accesses: Vec<Value> = events
                    .iter()
                    .filter(|v| is_access(&v.event))
                    .map(|v| self.access_row(v))
                    .collect::<Result<_>>()?;
                let own: Vec<&EventView> = events.iter().filter(|v| v.event["source"] != "evident").collect();
                let events: Vec<Value> = own.into_iter().map(row).collect();
                (
                    self.checkpoint(tenant)?,
                    of_subject.to_json(),
                    json!({"events": events, "accesses": accesses, "truncated": truncated}),
                )
            }
            Kind::Disclosures => {
                let filter = Filter { from: Some(Micros(now.0 - SIX_YEARS_MICROS)), ..of_subject };
                let (events, truncated) = self.all_events(tenant, &filter, Access::Personal)?;
                let disclosures: Vec<Value> = events
                    .iter()
                    .filter(|v| {
                        let kind = v.event["type"].as_str().unwrap_or("");
                        v.event["source"] != "evident"
                            && (v.event["action"] == "export"
                                || kind.ends_with(".disclosed")
                                || kind.ends_with(".shared"))
                    })
                    .map(row)
                    .collect();
                (
                    self.checkpoint(tenant)?,
                    filter.to_json(),
                    json!({"since": filter.from.map(Micros::to_rfc3339), "disclosures": disclosures, "truncated": truncated}),
                )
            }
            Kind::Erasure => {
                let filter = Filter {
                    target: Some(("subject".to_owned(), subject.to_owned())),
                    event_type: Some(TypeFilter::Exact("evident.privacy.erased".to_owned())),
                    ..Filter::default()
                };
                let (events, _) = self.all_events(tenant, &filter, Access::Skeleton)?;
                let keys_left = self.store().data_key_names(tenant, Some(subject))?.len();
                let erasures: Vec<Value> = events.iter().map(row).collect();
                (
                    self.checkpoint(tenant)?,
                    filter.to_json(),
                    json!({"erasures": erasures, "keys_left": keys_left, "erased": !erasures.is_empty() && keys_left == 0}),
                )
            }
        };
        let mut report = json!({
            "kind": kind.as_str(),
            "tenant": tenant.as_str(),
            "subject": subject,
            "generated_at": now.to_rfc3339(),
            "origin": self.origin(tenant),
            "checkpoint": checkpoint.map(|(_, note)| note),
            "bundle_filter": bundle_filter,
        });
        report.as_object_mut().expect("an object").extend(body.as_object().expect("an object").clone());
        Ok(report)
    }

    /// One access: when, which key in which role, what it did and why.
    fn access_row(&self, view: &EventView) -> Result<Value> {
        let actor = view.event["actor"]["id"].as_str().unwrap_or("");
        // A key's role for reads through Evident; the actor's type for the producers' own.
        let role = match (view.event["source"] == "evident", actor.strip_prefix("key:")) {
            (true, Some(key_id)) => self.store().api_key(key_id)?.map(|key| key.role.as_str().to_owned()),
            _ => view.event["actor"]["type"].as_str().map(str::to_owned),
        };
        Ok(json!({
            "time": view.event["time"], "index": view.index, "event_id": view.event_id.to_string(),
            "type": view.event["type"], "actor": actor, "role": role.unwrap_or_else(|| "unknown".to_owned()),
            "purpose": view.event.get("reason").cloned().unwrap_or(Value::Null),
            "personal_data": view.event.get("data_classes").is_some(),
        }))
    }
}

impl crate::read::PersonalState {
    /// The wire name (`none`, `withheld`, `included`, `erased`).
    pub fn as_str(&self) -> &'static str {
        match self {
            crate::read::PersonalState::None => "none",
            crate::read::PersonalState::Withheld => "withheld",
            crate::read::PersonalState::Included => "included",
            crate::read::PersonalState::Erased => "erased",
        }
    }
}

/// An unknown kind, named.
pub fn unknown_kind(kind: &str) -> Error {
    Error::InvalidArgument(format!("kind {kind:?} must be access, disclosures or erasure"))
}
