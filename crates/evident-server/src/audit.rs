//! The service audits itself (PCI DSS 10.2.1.2 to 10.2.1.7): searches, reads and exports of audit
//! data, admin actions, failed authentication, denied requests, and every start and stop become
//! events (source `evident`, type `evident.*`) in the log they concern. Recording is fail-closed:
//! a read whose audit event cannot be made durable is refused. No setting turns it off.

use std::collections::BTreeMap;
use std::net::IpAddr;

use evident_core::event::{SensitiveTextPolicy, TenantPolicy};
use evident_core::store::TenantId;
use evident_core::validate::validate_event;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;

/// An event about the service's own use.
#[derive(Clone, Debug, Default)]
pub struct AuditEvent {
    pub event_type: &'static str,
    pub action: &'static str,
    pub outcome: &'static str,
    pub actor_id: String,
    pub actor_type: &'static str,
    pub subject: Option<String>,
    pub target: (String, String),
    /// The purpose stated by the caller, or why it failed.
    pub reason: Option<String>,
    pub ip: Option<IpAddr>,
    pub metadata: BTreeMap<String, String>,
    pub data_classes: Vec<&'static str>,
    /// The producer id; random unless given (findings give a deterministic one, so that a
    /// replay after a crash is answered as a duplicate instead of stored twice).
    pub id: Option<String>,
    /// The event time; now unless given.
    pub time: Option<evident_wire::Micros>,
    pub severity: Option<&'static str>,
}

impl AuditEvent {
    /// An event caused by `principal`, filled in with its actor and address.
    pub fn by(principal: &Principal) -> AuditEvent {
        AuditEvent {
            actor_id: principal.actor_id(),
            actor_type: "api_key",
            ip: principal.ip,
            outcome: "success",
            ..AuditEvent::default()
        }
    }

    fn to_json(&self) -> Value {
        let mut origin = json!({"service": "evident"});
        if let Some(ip) = self.ip {
            origin["ip"] = json!(ip.to_string());
        }
        let mut event = json!({
            "id": self.id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            "source": "evident",
            "type": self.event_type,
            "action": self.action,
            "time": self.time.unwrap_or_else(evident_wire::Micros::now).to_rfc3339(),
            "actor": {
                "id": identifier(&self.actor_id, 256),
                "type": if self.actor_type.is_empty() { "system" } else { self.actor_type },
            },
            "targets": [{"type": identifier(&self.target.0, 128), "id": identifier(&self.target.1, 256)}],
            "outcome": self.outcome,
            "origin": origin,
        });
        if let Some(subject) = self.subject.as_deref().map(|s| truncate(s, 256)).filter(|s| !s.is_empty()) {
            event["subject"] = json!(subject);
        }
        if let Some(reason) = &self.reason {
            event["reason"] = json!(truncate(reason, 2000));
        }
        if !self.metadata.is_empty() {
            let metadata: BTreeMap<&str, String> =
                self.metadata.iter().take(50).map(|(k, v)| (k.as_str(), truncate(v, 1000))).collect();
            event["metadata"] = json!(metadata);
        }
        if !self.data_classes.is_empty() {
            event["data_classes"] = json!(self.data_classes);
        }
        if let Some(severity) = self.severity {
            event["severity"] = json!(severity);
        }
        event
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max_chars).collect()
}

/// An identifier as events must hold it (1 to `max_chars`, no control characters), whatever the
/// caller sent: a self-audit event never fails validation on what it describes.
fn identifier(text: &str, max_chars: usize) -> String {
    let text = truncate(text, max_chars);
    if text.is_empty() { "-".to_owned() } else { text }
}

/// Appends a self-audit event to `tenant`'s log and waits until it is durable.
pub async fn record(state: &AppState, tenant: &TenantId, event: AuditEvent) -> ApiResult<()> {
    match record_outcome(state, tenant, event).await? {
        evident_core::engine::Outcome::Stored(_) => Ok(()),
        other => Err(ApiError::Internal(format!("self-audit event was not stored: {other:?}"))),
    }
}

/// Appends an event with a deterministic `id`: answers its index, whether newly stored or stored
/// before (a replay).
pub async fn record_idempotent(state: &AppState, tenant: &TenantId, event: AuditEvent) -> ApiResult<u64> {
    let mut indices = record_many_idempotent(state, tenant, vec![event]).await?;
    indices.pop().ok_or_else(|| ApiError::Internal("no outcome for an appended event".into()))
}

/// Appends events with deterministic ids in one commit; answers the index of each, whether newly
/// stored or stored before (a replay).
pub async fn record_many_idempotent(
    state: &AppState,
    tenant: &TenantId,
    events: Vec<AuditEvent>,
) -> ApiResult<Vec<u64>> {
    use evident_core::engine::Outcome;
    let validated = events.iter().map(validated).collect::<ApiResult<Vec<_>>>()?;
    let outcomes = append(state, tenant, validated).await?;
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::Stored(receipt) | Outcome::Duplicate(receipt) => Ok(receipt.index),
            Outcome::Conflict { existing_index, .. } => Ok(existing_index),
            other => Err(ApiError::Internal(format!("event was not stored: {other:?}"))),
        })
        .collect()
}

/// The event, validated for appending (to append it without a server: `evident keys create
/// --global`).
pub fn validated(event: &AuditEvent) -> ApiResult<evident_core::validate::Validated> {
    // Our own events mask rather than refuse anything that looks like a card number or a secret
    // (a search for one, say), so that recording never fails on content.
    let policy = TenantPolicy { sensitive_text: SensitiveTextPolicy::Mask, ..TenantPolicy::default() };
    validate_event(&event.to_json(), &policy).map_err(|errors| {
        ApiError::Internal(format!("self-audit event {} is invalid: {errors:?}", event.event_type))
    })
}

async fn append(
    state: &AppState,
    tenant: &TenantId,
    validated: Vec<evident_core::validate::Validated>,
) -> ApiResult<Vec<evident_core::engine::Outcome>> {
    state.engine.append_async(tenant, validated).await.map_err(|err| match err {
        evident_core::Error::Overloaded { .. } => ApiError::Unavailable("cannot record the access".into()),
        other => ApiError::from(other),
    })
}

/// Appends a self-audit event and answers its outcome (a receipt when stored).
pub(crate) async fn record_outcome(
    state: &AppState,
    tenant: &TenantId,
    event: AuditEvent,
) -> ApiResult<evident_core::engine::Outcome> {
    let outcomes = append(state, tenant, vec![validated(&event)?]).await?;
    outcomes.into_iter().next().ok_or_else(|| ApiError::Internal("no outcome for an appended event".into()))
}

/// Records a start or stop of the service in every tenant's log.
pub async fn record_lifecycle(state: &AppState, event_type: &'static str) {
    for tenant in state.engine.tenants() {
        let event = AuditEvent {
            event_type,
            action: "configure",
            outcome: "success",
            actor_id: "evident".to_owned(),
            actor_type: "system",
            target: ("service".to_owned(), "evident-api".to_owned()),
            metadata: BTreeMap::from([("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
            ..AuditEvent::default()
        };
        if let Err(err) = record(state, &tenant, event).await {
            tracing::error!(error = ?err, %tenant, event_type, "could not record a lifecycle event");
        }
    }
}
