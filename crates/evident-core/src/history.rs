//! Record history: the versions of one record (a target `(type, id)`) rebuilt from the `changes`
//! of the successful create, update and delete events whose first target it is; the diff between
//! two versions; and the record's state at any past time, with who changed what, when and why.
//!
//! Values are personal, so they appear only for callers with [`Access::Personal`]; others see
//! which fields changed, by whom, when and why, but not the values.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::read::{Access, PersonalState};
use crate::store::TenantId;
use evident_wire::Micros;
use evident_wire::filter::{Filter, Order};

/// At most this many versions are rebuilt for one record.
pub const MAX_VERSIONS: usize = 10_000;

/// One changed field. `before`/`after` are `None` when absent or withheld.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// One version of a record: the event that made it and the state after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// 1-based.
    pub number: usize,
    pub index: u64,
    pub event_id: Uuid,
    pub time: String,
    pub action: String,
    /// The actor object of the event (its `display` only with personal access).
    pub actor: Value,
    /// Why, as the producer stated it.
    pub reason: Option<String>,
    pub changes: Vec<FieldChange>,
    /// The record after this version: `None` when values are withheld, `Null` once deleted.
    pub state: Option<Value>,
}

/// Every version of one record, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordHistory {
    pub target_type: String,
    pub target_id: String,
    /// Whether values are included (personal access, no erased subject).
    pub values: bool,
    pub versions: Vec<Version>,
}

impl RecordHistory {
    /// The version in force at `at` (the last one whose event time is not after it).
    pub fn at(&self, at: Micros) -> Option<&Version> {
        let at = at.to_rfc3339();
        self.versions.iter().rev().find(|version| version.time <= at)
    }

    /// What differs between two versions (by number), field by field.
    pub fn diff(&self, from: usize, to: usize) -> Result<Vec<FieldChange>> {
        let version = |n: usize| {
            self.versions.get(n.wrapping_sub(1)).ok_or_else(|| {
                Error::InvalidArgument(format!("no version {n}; there are {}", self.versions.len()))
            })
        };
        let (a, b) = (version(from)?, version(to)?);
        match (&a.state, &b.state) {
            (Some(a), Some(b)) => {
                let mut out = Vec::new();
                diff_values("", Some(a), Some(b), &mut out);
                Ok(out)
            }
            _ => {
                // Without values: the fields touched by the versions after `from` up to `to`.
                let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
                let mut fields: Vec<String> = self.versions[lo..hi]
                    .iter()
                    .flat_map(|v| v.changes.iter().map(|c| c.field.clone()))
                    .collect();
                fields.sort();
                fields.dedup();
                Ok(fields.into_iter().map(|field| FieldChange { field, before: None, after: None }).collect())
            }
        }
    }
}

impl Engine {
    /// Rebuilds the history of the record `(target_type, target_id)`.
    pub fn record_history(
        &self,
        tenant: &TenantId,
        target_type: &str,
        target_id: &str,
        access: Access,
    ) -> Result<RecordHistory> {
        let filter =
            Filter { target: Some((target_type.to_owned(), target_id.to_owned())), ..Filter::default() };
        let mut history = RecordHistory {
            target_type: target_type.into(),
            target_id: target_id.into(),
            values: true,
            versions: Vec::new(),
        };
        let mut state: Value = Value::Null;
        let mut cursor: Option<String> = None;
        loop {
            let page = self.search(tenant, &filter, Order::OldestFirst, cursor.as_deref(), 500, access)?;
            for view in page.items {
                let event = &view.event;
                let first_target = event.pointer("/targets/0");
                let is_this_record = first_target.and_then(|t| t.get("type")).and_then(Value::as_str)
                    == Some(target_type)
                    && first_target.and_then(|t| t.get("id")).and_then(Value::as_str) == Some(target_id);
                let action = event.get("action").and_then(Value::as_str).unwrap_or_default();
                let succeeded = event.get("outcome").and_then(Value::as_str) == Some("success");
                let Some(changes) = event.get("changes").and_then(Value::as_array) else { continue };
                if !is_this_record || !succeeded || !matches!(action, "create" | "update" | "delete") {
                    continue;
                }
                if history.versions.len() == MAX_VERSIONS {
                    return Err(Error::InvalidArgument(format!(
                        "record has more than {MAX_VERSIONS} versions; narrow the query"
                    )));
                }
                let with_values =
                    view.personal == PersonalState::Included || view.personal == PersonalState::None;
                history.values &= with_values;
                let changes: Vec<FieldChange> = changes
                    .iter()
                    .map(|change| FieldChange {
                        field: change.get("field").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        before: change.get("before").cloned(),
                        after: change.get("after").cloned(),
                    })
                    .collect();
                if history.values {
                    if action == "create" && !state.is_object() {
                        state = Value::Object(Map::new());
                    }
                    for change in &changes {
                        apply_change(&mut state, &change.field, change.after.clone());
                    }
                    if action == "delete" {
                        state = Value::Null;
                    }
                }
                let mut actor = event.get("actor").cloned().unwrap_or(Value::Null);
                if !with_values && let Some(actor) = actor.as_object_mut() {
                    actor.remove("display");
                }
                history.versions.push(Version {
                    number: history.versions.len() + 1,
                    index: view.index,
                    event_id: view.event_id,
                    time: event.get("time").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    action: action.to_owned(),
                    actor,
                    reason: event.get("reason").and_then(Value::as_str).map(str::to_owned),
                    changes,
                    state: history.values.then(|| state.clone()),
                });
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if !history.values {
            for version in &mut history.versions {
                version.state = None;
                for change in &mut version.changes {
                    change.before = None;
                    change.after = None;
                }
            }
        }
        Ok(history)
    }
}

/// Sets (or with `None`, removes) the value at an RFC 6901 pointer, creating objects on the way.
fn apply_change(state: &mut Value, pointer: &str, value: Option<Value>) {
    if pointer.is_empty() {
        *state = value.unwrap_or(Value::Null);
        return;
    }
    if !state.is_object() {
        *state = Value::Object(Map::new());
    }
    let tokens: Vec<String> =
        pointer.trim_start_matches('/').split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let mut node = state;
    for token in &tokens[..tokens.len() - 1] {
        let map = node.as_object_mut().expect("made an object above");
        let child = map.entry(token.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child;
    }
    let map = node.as_object_mut().expect("made an object above");
    let last = tokens.last().expect("a non-empty pointer has a token").clone();
    match value {
        Some(value) => {
            map.insert(last, value);
        }
        None => {
            map.remove(&last);
        }
    }
}

fn diff_values(pointer: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                diff_values(&child, x.get(key), y.get(key), out);
            }
        }
        (a, b) if a != b => {
            out.push(FieldChange { field: pointer.to_owned(), before: a.cloned(), after: b.cloned() })
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changes_build_states_and_diffs() {
        let mut state = Value::Object(Map::new());
        apply_change(&mut state, "/email", Some(json!("a@x")));
        apply_change(&mut state, "/address/city", Some(json!("Oslo")));
        apply_change(&mut state, "/a~1b", Some(json!(1)));
        assert_eq!(state, json!({"email": "a@x", "address": {"city": "Oslo"}, "a/b": 1}));
        let before = state.clone();
        apply_change(&mut state, "/email", None);
        apply_change(&mut state, "/address/city", Some(json!("Bergen")));
        let mut diff = Vec::new();
        diff_values("", Some(&before), Some(&state), &mut diff);
        assert_eq!(
            diff,
            vec![
                FieldChange {
                    field: "/address/city".into(),
                    before: Some(json!("Oslo")),
                    after: Some(json!("Bergen"))
                },
                FieldChange { field: "/email".into(), before: Some(json!("a@x")), after: None },
            ]
        );
    }
}
