//! An outbox row as an Evident event (`EVENT-SCHEMA.md` §1):
//!
//! | event field | from |
//! | --- | --- |
//! | `id` | `pg-<install id>-<outbox id>`: the idempotency key, stable across retries and restarts, distinct across reinstalls |
//! | `source` | `//postgres/<database>` |
//! | `type`, `action` | `<table>.row.created` / `updated` / `deleted`; `create`, `update`, `delete` (`<table>` without `public.`) |
//! | `time` | the trigger's `clock_timestamp()` |
//! | `actor` | `evident.actor` as a `user`; without it the database role, `postgres:<role>`, as a `service` |
//! | `subject` | the subject column's value |
//! | `targets` | one: `type` the table, `id` the primary key's values joined by `,` |
//! | `reason` | `evident.reason` |
//! | `changes` | one per changed column, `field` `/<column>`, `before` and `after` (sealed as personal by the service) |
//! | `origin` | `service` `postgres`, `host` the database name |
//! | `correlation.correlation_id` | `txid:<transaction id>`: the changes of one transaction share it |
//! | `data_classes` | `["pii"]` when a column marked personal changed |
//! | `metadata` | `table`, `outbox_id`, `txid` |

use serde_json::{Map, Value, json};

/// One row of `evident_capture.outbox`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// `schema.table`.
    pub table_name: String,
    /// `insert`, `update` or `delete`.
    pub op: String,
    pub row_id: Option<String>,
    pub subject: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub changed: Vec<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub db_user: String,
    pub txid: i64,
    /// RFC 3339, UTC.
    pub at: String,
    pub database: String,
}

/// A column name as a JSON pointer segment (RFC 6901 §3).
fn pointer(column: &str) -> String {
    format!("/{}", column.replace('~', "~0").replace('/', "~1"))
}

impl OutboxRow {
    /// The event of this change; `personal` are the table's columns marked personal.
    pub fn event(&self, install_id: &str, personal: &[String]) -> Value {
        let (action, verb) = match self.op.as_str() {
            "insert" => ("create", "created"),
            "delete" => ("delete", "deleted"),
            _ => ("update", "updated"),
        };
        let table = self.table_name.strip_prefix("public.").unwrap_or(&self.table_name);
        let actor = match &self.actor {
            Some(actor) => json!({"id": actor, "type": "user"}),
            None => json!({"id": format!("postgres:{}", self.db_user), "type": "service"}),
        };
        let value_of = |row: &Option<Value>, column: &str| {
            row.as_ref().and_then(|row| row.get(column)).cloned().unwrap_or(Value::Null)
        };
        let changes: Vec<Value> = self
            .changed
            .iter()
            .map(|column| {
                json!({
                    "field": pointer(column),
                    "before": value_of(&self.before, column),
                    "after": value_of(&self.after, column),
                })
            })
            .collect();
        let mut event = Map::new();
        event.insert("id".into(), json!(format!("pg-{install_id}-{}", self.id)));
        event.insert("source".into(), json!(format!("//postgres/{}", self.database)));
        event.insert("type".into(), json!(format!("{table}.row.{verb}")));
        event.insert("action".into(), json!(action));
        event.insert("time".into(), json!(self.at));
        event.insert("actor".into(), actor);
        if let Some(subject) = &self.subject {
            event.insert("subject".into(), json!(subject));
        }
        let target_id = self.row_id.clone().unwrap_or_else(|| format!("outbox-{}", self.id));
        event.insert("targets".into(), json!([{"type": table, "id": target_id}]));
        event.insert("outcome".into(), json!("success"));
        if let Some(reason) = &self.reason {
            event.insert("reason".into(), json!(reason));
        }
        event.insert("changes".into(), Value::Array(changes));
        event.insert("origin".into(), json!({"service": "postgres", "host": self.database}));
        event.insert("correlation".into(), json!({"correlation_id": format!("txid:{}", self.txid)}));
        if self.changed.iter().any(|column| personal.contains(column)) {
            event.insert("data_classes".into(), json!(["pii"]));
        }
        event.insert(
            "metadata".into(),
            json!({"table": self.table_name, "outbox_id": self.id.to_string(), "txid": self.txid.to_string()}),
        );
        Value::Object(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> OutboxRow {
        OutboxRow {
            id: 42,
            table_name: "public.customers".into(),
            op: "update".into(),
            row_id: Some("7".into()),
            subject: Some("cust-7".into()),
            before: Some(json!({"id": 7, "email": "a@example.com", "a/b": 1})),
            after: Some(json!({"id": 7, "email": "b@example.com", "a/b": 2})),
            changed: vec!["a/b".into(), "email".into()],
            actor: Some("alice".into()),
            reason: Some("ticket 12".into()),
            db_user: "app".into(),
            txid: 900,
            at: "2026-12-03T10:00:00.000001Z".into(),
            database: "crm".into(),
        }
    }

    #[test]
    fn an_update_becomes_an_event_with_its_changes() {
        let event = row().event("abc", &["email".into()]);
        assert_eq!(event["id"], "pg-abc-42");
        assert_eq!(event["source"], "//postgres/crm");
        assert_eq!(
            (event["type"].as_str(), event["action"].as_str()),
            (Some("customers.row.updated"), Some("update"))
        );
        assert_eq!(event["actor"], json!({"id": "alice", "type": "user"}));
        assert_eq!(event["targets"], json!([{"type": "customers", "id": "7"}]));
        assert_eq!(event["changes"][0], json!({"field": "/a~1b", "before": 1, "after": 2}));
        assert_eq!(event["changes"][1]["after"], "b@example.com");
        assert_eq!(event["data_classes"], json!(["pii"]));
        assert_eq!(event["correlation"]["correlation_id"], "txid:900");
    }

    #[test]
    fn without_a_session_actor_the_database_role_acts() {
        let mut row = row();
        row.actor = None;
        row.op = "delete".into();
        row.table_name = "billing.accounts".into();
        let event = row.event("abc", &[]);
        assert_eq!(event["actor"], json!({"id": "postgres:app", "type": "service"}));
        assert_eq!(event["type"], "billing.accounts.row.deleted");
        assert!(event.get("data_classes").is_none());
    }
}
