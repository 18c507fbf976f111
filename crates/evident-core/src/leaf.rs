//! The leaf (`EVENT-SCHEMA.md` §3): the RFC 8785 canonical JSON of an event's skeleton, which holds
//! every field except personal values, plus what the service adds and the `pii_commitment` to the
//! personal part.
//!
//! The personal part is a JSON object mapping RFC 6901 pointers into the full event to the values
//! taken out of it (`{"/actor/display": "Ann", "/origin/ip": "10.0.0.7"}`), so putting an event
//! back together is a matter of setting each pointer.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{Event, TenantPolicy};
use evident_wire::Micros;
use evident_wire::entry::{escape_pointer_token, take_pointer};

/// What the service adds to an event when it accepts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub tenant: String,
    pub event_id: Uuid,
    /// Server clock; authoritative.
    pub recorded_at: Micros,
}

/// A leaf ready to be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The entry: `JCS(skeleton)`. Its leaf hash is what the tree commits to.
    pub entry: Vec<u8>,
    /// The personal part, absent when the event has no personal values.
    pub personal: Option<Personal>,
    /// The skeleton digest (`privacy/idempotency.rs`): the non-personal half of what idempotency
    /// compares; the engine adds the keyed digest of the personal part.
    pub skeleton_digest: [u8; 32],
}

/// A personal part before sealing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Personal {
    pub salt: [u8; 32],
    /// `JCS({pointer: value, ...})`.
    pub canonical: Vec<u8>,
}

/// RFC 8785 canonical JSON.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    evident_wire::jcs::to_vec(value)
}

/// The normalised producer event as JSON (times in UTC microseconds, defaults filled in); what
/// idempotency compares and what an authorised read returns.
pub fn event_json(event: &Event) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(event.id));
    out.insert("source".into(), json!(event.source));
    out.insert("type".into(), json!(event.event_type));
    out.insert("action".into(), json!(event.action.as_str()));
    out.insert("time".into(), json!(event.time.to_rfc3339()));
    let mut actor = Map::new();
    actor.insert("id".into(), json!(event.actor.id));
    put_opt(&mut actor, "type", event.actor.actor_type.map(|t| t.as_str()));
    put_opt(&mut actor, "display", event.actor.display.as_deref());
    put_opt(&mut actor, "on_behalf_of", event.actor.on_behalf_of.as_deref());
    put_opt(&mut actor, "session", event.actor.session.as_deref());
    if let Some(auth) = &event.actor.auth {
        let mut auth_json = Map::new();
        put_opt(&mut auth_json, "method", auth.method.as_deref());
        if let Some(mfa) = auth.mfa {
            auth_json.insert("mfa".into(), json!(mfa));
        }
        actor.insert("auth".into(), Value::Object(auth_json));
    }
    out.insert("actor".into(), Value::Object(actor));
    put_opt(&mut out, "subject", event.subject.as_deref());
    let targets: Vec<Value> = event
        .targets
        .iter()
        .map(|target| {
            let mut t = Map::new();
            t.insert("type".into(), json!(target.target_type));
            t.insert("id".into(), json!(target.id));
            put_opt(&mut t, "display", target.display.as_deref());
            Value::Object(t)
        })
        .collect();
    out.insert("targets".into(), Value::Array(targets));
    out.insert("outcome".into(), json!(event.outcome.as_str()));
    put_opt(&mut out, "reason", event.reason.as_deref());
    if !event.changes.is_empty() {
        let changes: Vec<Value> = event
            .changes
            .iter()
            .map(|change| {
                let mut c = Map::new();
                c.insert("field".into(), json!(change.field));
                if let Some(before) = &change.before {
                    c.insert("before".into(), before.clone());
                }
                if let Some(after) = &change.after {
                    c.insert("after".into(), after.clone());
                }
                Value::Object(c)
            })
            .collect();
        out.insert("changes".into(), Value::Array(changes));
    }
    let mut origin = Map::new();
    put_opt(&mut origin, "ip", event.origin.ip.as_deref());
    put_opt(&mut origin, "user_agent", event.origin.user_agent.as_deref());
    put_opt(&mut origin, "host", event.origin.host.as_deref());
    put_opt(&mut origin, "service", event.origin.service.as_deref());
    out.insert("origin".into(), Value::Object(origin));
    if let Some(correlation) = &event.correlation {
        let mut c = Map::new();
        put_opt(&mut c, "traceparent", correlation.traceparent.as_deref());
        put_opt(&mut c, "request_id", correlation.request_id.as_deref());
        put_opt(&mut c, "correlation_id", correlation.correlation_id.as_deref());
        if !c.is_empty() {
            out.insert("correlation".into(), Value::Object(c));
        }
    }
    out.insert("severity".into(), json!(event.severity.as_str()));
    if !event.data_classes.is_empty() {
        out.insert(
            "data_classes".into(),
            json!(event.data_classes.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
        );
    }
    if !event.metadata.is_empty() {
        out.insert("metadata".into(), json!(event.metadata));
    }
    out
}

fn put_opt(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        map.insert(key.into(), json!(value));
    }
}

/// The pointers of every personal value present in `event`.
pub fn personal_pointers(event: &Event, policy: &TenantPolicy) -> Vec<String> {
    let mut pointers = Vec::new();
    if event.actor.display.is_some() {
        pointers.push("/actor/display".to_owned());
    }
    for (i, target) in event.targets.iter().enumerate() {
        if target.display.is_some() {
            pointers.push(format!("/targets/{i}/display"));
        }
    }
    for (i, change) in event.changes.iter().enumerate() {
        if change.before.is_some() {
            pointers.push(format!("/changes/{i}/before"));
        }
        if change.after.is_some() {
            pointers.push(format!("/changes/{i}/after"));
        }
    }
    if event.origin.ip.is_some() {
        pointers.push("/origin/ip".to_owned());
    }
    if event.origin.user_agent.is_some() {
        pointers.push("/origin/user_agent".to_owned());
    }
    for key in event.metadata.keys() {
        if policy.personal_metadata_keys.iter().any(|k| k == key) {
            pointers.push(format!("/metadata/{}", escape_pointer_token(key)));
        }
    }
    pointers
}

/// The key under which an event's personal part is sealed: its subject, or its actor when it
/// concerns no customer.
pub fn sealing_subject(event: &Event) -> String {
    match &event.subject {
        Some(subject) => subject.clone(),
        None => format!("actor:{}", event.actor.id),
    }
}

/// Builds the leaf of an accepted event. `salt` is used only when there is a personal part.
pub fn build_leaf(event: &Event, recorded: &Recorded, policy: &TenantPolicy, salt: [u8; 32]) -> Result<Leaf> {
    let mut skeleton = Value::Object(event_json(event));
    let mut personal = Map::new();
    for pointer in personal_pointers(event, policy) {
        if let Some(value) = take_pointer(&mut skeleton, &pointer) {
            personal.insert(pointer, value);
        }
    }
    let personal = (!personal.is_empty())
        .then(|| Personal { salt, canonical: canonical_json(&Value::Object(personal)) });
    let mut service = vec![
        ("tenant", json!(recorded.tenant)),
        ("event_id", json!(recorded.event_id.to_string())),
        ("recorded_at", json!(recorded.recorded_at.to_rfc3339())),
    ];
    if let Some(personal) = &personal {
        service.push((
            "pii_commitment",
            json!(evident_wire::entry::commitment(&personal.salt, &personal.canonical)),
        ));
    }
    // The skeleton is serialised once: the idempotency digest hashes its canonical bytes, the
    // entry is the same members with the service's fields merged in.
    let object = skeleton.as_object().expect("an event is an object");
    let (canonical_skeleton, entry) = evident_wire::jcs::to_vec_and_extended(object, &service);
    let skeleton_digest = crate::privacy::idempotency::skeleton_digest_of_canonical(&canonical_skeleton);
    if entry.len() > evident_tlog::MAX_ENTRY_LEN {
        return Err(Error::InvalidArgument(format!(
            "the event's leaf is {} bytes; at most {} fit a log entry",
            entry.len(),
            evident_tlog::MAX_ENTRY_LEN
        )));
    }
    Ok(Leaf { entry, personal, skeleton_digest })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::privacy::idempotency::legacy_from_entry;

    /// The entry is canonical, and the skeleton digest is that of the entry without the
    /// service's fields (what the store migration recomputes from an entry).
    #[test]
    fn the_entry_and_the_digest_share_one_serialisation() {
        let policy = TenantPolicy::default();
        let recorded = Recorded {
            tenant: "acme".into(),
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            recorded_at: Micros(1_780_000_000_000_000),
        };
        let with_personal = json!({
            "id": "e-1", "source": "//crm.example.com", "type": "customer.address.changed",
            "action": "update", "time": "2026-05-01T10:00:00Z", "outcome": "success",
            "actor": {"id": "agent-7", "type": "user", "display": "Ann Agent"},
            "subject": "cust-1", "origin": {"ip": "192.0.2.7", "service": "crm"},
            "changes": [{"field": "/address/city", "before": "Ghent", "after": "Zürich"}],
            "targets": [{"type": "customer", "id": "cust-1"}],
            "metadata": {"ticket": "T-1", "zeta": "z", "Ω": "o"}
        });
        let mut plain = with_personal.clone();
        plain.as_object_mut().unwrap().remove("changes");
        plain["action"] = json!("read");
        plain["origin"] = json!({"service": "crm"});
        plain["actor"].as_object_mut().unwrap().remove("display");
        for (event, has_personal) in [(with_personal, true), (plain, false)] {
            let event = crate::validate::validate_event(&event, &policy).unwrap().event;
            let leaf = build_leaf(&event, &recorded, &policy, [7; 32]).unwrap();
            let parsed: Value = serde_json::from_slice(&leaf.entry).unwrap();
            assert_eq!(canonical_json(&parsed), leaf.entry);
            assert_eq!(parsed["tenant"], "acme");
            assert_eq!(parsed["event_id"], "01900000-0000-7000-8000-000000000001");
            assert_eq!(parsed.get("pii_commitment").is_some(), has_personal);
            assert_eq!(leaf.personal.is_some(), has_personal);
            assert_eq!(legacy_from_entry(&leaf.entry).unwrap().skeleton, leaf.skeleton_digest);
        }
    }
}
