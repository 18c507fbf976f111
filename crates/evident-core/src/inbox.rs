//! The wire form of requests a node puts in a shared store's inbox for the tenant's leader, and of
//! the leader's answers (see [`crate::store::Cluster`]). Both sides run the same build, but the
//! form is plain JSON with bytes in base64 so a mismatch fails loudly instead of misreading.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

use crate::engine::{Outcome, Prepared, Receipt};
use crate::error::{Error, Result};
use crate::store::{NewDataKey, NewEntry, TenantId};
use evident_wire::Micros;

const VERSION: &str = "evident-inbox/v1";

fn bytes(value: &[u8]) -> Value {
    Value::String(B64.encode(value))
}

fn bad(what: &str) -> Error {
    Error::Integrity(format!("inbox: malformed {what}"))
}

fn get_str<'a>(value: &'a Value, key: &str) -> Result<&'a str> {
    value.get(key).and_then(Value::as_str).ok_or_else(|| bad(key))
}

fn get_bytes(value: &Value, key: &str) -> Result<Vec<u8>> {
    B64.decode(get_str(value, key)?).map_err(|_| bad(key))
}

fn get_array<const N: usize>(value: &Value, key: &str) -> Result<[u8; N]> {
    get_bytes(value, key)?.try_into().map_err(|_| bad(key))
}

fn get_u64(value: &Value, key: &str) -> Result<u64> {
    value.get(key).and_then(Value::as_u64).ok_or_else(|| bad(key))
}

fn get_i64(value: &Value, key: &str) -> Result<i64> {
    value.get(key).and_then(Value::as_i64).ok_or_else(|| bad(key))
}

fn strings(value: &Value, key: &str) -> Result<Vec<String>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| bad(key))?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| bad(key)))
        .collect()
}

/// A request: the prepared (or already rejected) items of one submission.
pub(crate) fn encode_request(items: &[std::result::Result<Prepared, String>]) -> Vec<u8> {
    let items: Vec<Value> = items
        .iter()
        .map(|item| match item {
            Err(reason) => json!({"rejected": reason}),
            Ok(p) => {
                let e = &p.entry;
                json!({
                    "event_id": bytes(&p.event_id),
                    "source": p.source,
                    "producer_id": p.producer_id,
                    "content_hash": bytes(&p.content_hash),
                    "leaf_hash": bytes(&p.leaf_hash.0),
                    "time": e.time.0,
                    "recorded_at": e.recorded_at.0,
                    "type": e.event_type,
                    "action": e.action,
                    "outcome": e.outcome,
                    "actor": e.actor,
                    "subject": e.subject,
                    "targets": e.targets.iter().map(|(t, id)| json!([t, id])).collect::<Vec<_>>(),
                    "entry": bytes(&e.entry),
                    "sealed": e.sealed.as_ref().map(|(subject, sealed)| json!([subject, bytes(sealed)])),
                    "new_key": p.new_key.as_ref().map(|k| json!([k.subject, bytes(&k.wrapped)])),
                    "warnings": p.warnings,
                })
            }
        })
        .collect();
    serde_json::to_vec(&json!({"v": VERSION, "items": items})).expect("JSON values serialize")
}

pub(crate) fn decode_request(
    tenant: &TenantId,
    request: &[u8],
) -> Result<Vec<std::result::Result<Prepared, String>>> {
    let value: Value = serde_json::from_slice(request).map_err(|_| bad("request"))?;
    if value.get("v").and_then(Value::as_str) != Some(VERSION) {
        return Err(bad("request version"));
    }
    let items = value.get("items").and_then(Value::as_array).ok_or_else(|| bad("items"))?;
    items.iter().map(|item| decode_item(tenant, item)).collect()
}

fn decode_item(tenant: &TenantId, item: &Value) -> Result<std::result::Result<Prepared, String>> {
    if let Some(reason) = item.get("rejected").and_then(Value::as_str) {
        return Ok(Err(reason.to_owned()));
    }
    let event_id = get_array::<16>(item, "event_id")?;
    let source = get_str(item, "source")?.to_owned();
    let producer_id = get_str(item, "producer_id")?.to_owned();
    let content_hash = get_array::<32>(item, "content_hash")?;
    let targets = item
        .get("targets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("targets"))?
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(t), Value::String(id)]) => Ok((t.clone(), id.clone())),
            _ => Err(bad("targets")),
        })
        .collect::<Result<Vec<_>>>()?;
    let pair = |key: &str| -> Result<Option<(String, Vec<u8>)>> {
        match item.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(pair)) => match pair.as_slice() {
                [Value::String(subject), Value::String(data)] => {
                    Ok(Some((subject.clone(), B64.decode(data).map_err(|_| bad(key))?)))
                }
                _ => Err(bad(key)),
            },
            Some(_) => Err(bad(key)),
        }
    };
    let entry = NewEntry {
        index: 0,
        event_id,
        source: source.clone(),
        producer_id: producer_id.clone(),
        content_hash,
        time: Micros(get_i64(item, "time")?),
        recorded_at: Micros(get_i64(item, "recorded_at")?),
        event_type: get_str(item, "type")?.to_owned(),
        action: get_str(item, "action")?.to_owned(),
        outcome: get_str(item, "outcome")?.to_owned(),
        actor: get_str(item, "actor")?.to_owned(),
        subject: item.get("subject").and_then(Value::as_str).map(str::to_owned),
        targets,
        entry: get_bytes(item, "entry")?,
        sealed: pair("sealed")?,
    };
    Ok(Ok(Prepared {
        event_id,
        source,
        producer_id,
        content_hash,
        leaf_hash: evident_tlog::Hash(get_array::<32>(item, "leaf_hash")?),
        entry,
        new_key: pair("new_key")?.map(|(subject, wrapped)| NewDataKey {
            tenant: tenant.clone(),
            subject,
            wrapped,
        }),
        warnings: strings(item, "warnings")?,
        // Personal parts in clear never leave the node that took the event.
        personal: None,
    }))
}

/// An answer: the outcomes of a request, or why it failed as a whole.
pub(crate) fn encode_answer(answer: &Result<Vec<Outcome>>) -> Vec<u8> {
    let receipt = |r: &Receipt| {
        json!({
            "event_id": r.event_id.to_string(),
            "index": r.index,
            "tree_size": r.tree_size,
            "checkpoint": r.checkpoint.as_str(),
            "warnings": r.warnings,
        })
    };
    let value = match answer {
        Err(err) => json!({"v": VERSION, "error": err.to_string()}),
        Ok(outcomes) => {
            let outcomes: Vec<Value> = outcomes
                .iter()
                .map(|outcome| match outcome {
                    Outcome::Stored(r) => json!({"stored": receipt(r)}),
                    Outcome::Duplicate(r) => json!({"duplicate": receipt(r)}),
                    Outcome::Conflict { existing_event_id, existing_index } => {
                        json!({"conflict": {"event_id": existing_event_id.to_string(), "index": existing_index}})
                    }
                    Outcome::Rejected(reason) => json!({"rejected": reason}),
                })
                .collect();
            json!({"v": VERSION, "outcomes": outcomes})
        }
    };
    serde_json::to_vec(&value).expect("JSON values serialize")
}

pub(crate) fn decode_answer(answer: &[u8]) -> Result<Vec<Outcome>> {
    let value: Value = serde_json::from_slice(answer).map_err(|_| bad("answer"))?;
    if value.get("v").and_then(Value::as_str) != Some(VERSION) {
        return Err(bad("answer version"));
    }
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(Error::Unavailable(format!("the tenant's leader could not store the events: {error}")));
    }
    let uuid = |value: &Value, key: &str| Uuid::parse_str(get_str(value, key)?).map_err(|_| bad(key));
    let receipt = |r: &Value| -> Result<Receipt> {
        Ok(Receipt {
            event_id: uuid(r, "event_id")?,
            index: get_u64(r, "index")?,
            tree_size: get_u64(r, "tree_size")?,
            checkpoint: Arc::new(get_str(r, "checkpoint")?.to_owned()),
            warnings: strings(r, "warnings")?,
        })
    };
    value
        .get("outcomes")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("outcomes"))?
        .iter()
        .map(|outcome| {
            if let Some(r) = outcome.get("stored") {
                Ok(Outcome::Stored(receipt(r)?))
            } else if let Some(r) = outcome.get("duplicate") {
                Ok(Outcome::Duplicate(receipt(r)?))
            } else if let Some(c) = outcome.get("conflict") {
                Ok(Outcome::Conflict {
                    existing_event_id: uuid(c, "event_id")?,
                    existing_index: get_u64(c, "index")?,
                })
            } else if let Some(reason) = outcome.get("rejected").and_then(Value::as_str) {
                Ok(Outcome::Rejected(reason.to_owned()))
            } else {
                Err(bad("outcome"))
            }
        })
        .collect()
}
