//! Google Workspace audit activities as the Admin SDK Reports API gives them
//! (`activities.list`: `{"kind": "admin#reports#activities", "items": [...]}`, a JSON array, or
//! NDJSON of `admin#reports#activity`), for the `admin` application and the others the API serves
//! (`login`, `drive`, `token`, `groups`, ...). One activity holds one or more events; each becomes
//! an event.
//!
//! | event field | from the activity and its event |
//! | --- | --- |
//! | `id` | `<id.applicationName>/<id.time>/<id.uniqueQualifier>/<n>`: the activity's id and the event's place in it |
//! | `source` | `//workspace.google.com/<id.customerId>` |
//! | `type` | `gworkspace.<applicationName>.<event name>` lowercased, e.g. `gworkspace.admin.create_user`, `gworkspace.login.login_failure` |
//! | `action` | from the event name, see [`action`]: `login_*` (but `logout`) → `login`; `logout` → `logout`; `CREATE_*` → `create`; `DELETE_*`, `REMOVE_*` (not from a group) → `delete`; `ADD_GROUP_MEMBER`, `ADD_*_TO_GROUP`, `ASSIGN_ROLE`, `GRANT_*`, `*_PRIVILEGE_GRANT`, `authorize` → `grant`; `REMOVE_GROUP_MEMBER`, `REMOVE_*_FROM_GROUP`, `UNASSIGN_ROLE`, `REVOKE_*`, `revoke` → `revoke`; `CHANGE_*`, `UPDATE_*`, `RENAME_*`, `SUSPEND_USER`, `UNSUSPEND_USER`, `*_PASSWORD*` → `update`; `DOWNLOAD*`, `*EXPORT*`, `*TAKEOUT*`, `download` → `export`; `VIEW*`, `view`, `access` → `read`; else `other` |
//! | `time` | `id.time` |
//! | `actor.id` | `google:<actor.profileId>` (an account's opaque id); calls with an OAuth key: `google:key:<actor.key>`; else the pseudonym of `actor.email` |
//! | `actor.display` (sealed) | `actor.email` |
//! | `actor.type` | `callerType` `KEY` → `service`; `applicationName` `admin` → `admin`; else `user` |
//! | `targets` | from the event's parameters: `USER_EMAIL` → `gworkspace.user` (id: the address's pseudonym, display: the address), `GROUP_EMAIL` → `gworkspace.group` (a group's address is not a person's: kept), `ORG_UNIT_NAME` → `gworkspace.org_unit`, `ROLE_NAME` → `gworkspace.role`, `DOMAIN_NAME` → `gworkspace.domain`, `APPLICATION_NAME` → `gworkspace.application`, `doc_id` → `gworkspace.document`; none: the customer (`gworkspace.customer`) |
//! | `outcome` | `login_failure` → `failure`, else `success` (the report lists what took effect) |
//! | `reason` | failures: `login_failure_type` (e.g. `login_failure_invalid_password`) |
//! | `changes` (sealed) | successful create/update with `NEW_VALUE`: `{"field": "/<SETTING_NAME>", "before": OLD_VALUE, "after": NEW_VALUE}`; otherwise the whole record (`after` its first target); successful delete: `before` it, `after` null |
//! | `origin.ip` (sealed) | `ipAddress` |
//! | `origin.service` | `workspace.google.com/<applicationName>` |
//! | `metadata` | `event_type` (the event's `type`), `owner_domain`, `customer_id`, `caller_type`, and each other parameter (`value`, `intValue`, `boolValue`, or `multiValue` joined), e-mail addresses in them pseudonymised; `OLD_VALUE` and `NEW_VALUE` only as sealed changes |

use serde_json::{Map, Value, json};

use crate::Mapped;
use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// Whether a record looks like a Reports API activity.
pub fn looks_like(record: &Value) -> bool {
    event::str_at(record, "/kind") == Some("admin#reports#activity")
        || (record.pointer("/id/applicationName").is_some()
            && record.get("events").is_some_and(Value::is_array))
}

/// The events of one activity (one per event it holds), or why there are none.
pub fn events(record: &Value, keys: &Pseudonyms) -> Vec<Mapped> {
    let activity = match Activity::read(record) {
        Ok(activity) => activity,
        Err(why) => return vec![Mapped::Bad(why)],
    };
    let items = record.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
    if items.is_empty() {
        return vec![Mapped::Bad("the activity holds no events".into())];
    }
    items.iter().enumerate().map(|(n, item)| activity.event(record, item, n + 1, keys).into()).collect()
}

/// What every event of an activity shares.
struct Activity<'r> {
    application: &'r str,
    time: String,
    unique: &'r str,
    customer: &'r str,
}

impl<'r> Activity<'r> {
    fn read(record: &'r Value) -> Result<Activity<'r>, String> {
        if !record.is_object() {
            return Err("a Workspace activity must be a JSON object".into());
        }
        let required = |pointer: &str| {
            event::str_at(record, pointer).ok_or_else(|| {
                format!("not a Workspace activity: no {}", pointer.trim_start_matches('/').replace('/', "."))
            })
        };
        let time = required("/id/time")?;
        Ok(Activity {
            application: required("/id/applicationName")?,
            time: event::rfc3339(time).ok_or_else(|| format!("id.time {time:?} is not an RFC 3339 time"))?,
            unique: required("/id/uniqueQualifier")?,
            customer: event::str_at(record, "/id/customerId").unwrap_or("unknown"),
        })
    }

    fn event(&self, record: &Value, item: &Value, n: usize, keys: &Pseudonyms) -> Result<Value, String> {
        let name =
            event::str_at(item, "/name").ok_or_else(|| format!("event {n} of the activity has no name"))?;
        let parameters = parameters(item);
        let action = action(name);
        let outcome = if name == "login_failure" { "failure" } else { "success" };
        let reason = (outcome == "failure").then(|| {
            parameters.get("login_failure_type").and_then(Value::as_str).unwrap_or("login_failure").to_owned()
        });
        let targets = targets(&parameters, self.customer, keys);
        let changes = event::changes(
            event::record_changes(action, outcome, setting_change(&parameters), &targets[0]),
            None,
        );
        let email = event::str_at(record, "/actor/email");
        let actor_id =
            match (event::str_at(record, "/actor/profileId"), event::str_at(record, "/actor/key"), email) {
                (Some(profile), _, _) => format!("google:{profile}"),
                (None, Some(key), _) => format!("google:key:{key}"),
                (None, None, Some(email)) => keys.of(email),
                (None, None, None) => "google".to_owned(),
            };
        let actor_type = match (event::str_at(record, "/actor/callerType"), self.application) {
            (Some("KEY"), _) => "service",
            (_, "admin") => "admin",
            _ => "user",
        };
        let mut event = json!({
            "id": event::bounded(&format!("{}/{}/{}/{n}", self.application, self.time, self.unique), 128),
            "source": event::bounded(
                &format!("//workspace.google.com/{}", event::source_segment(self.customer)),
                limit::SOURCE
            ),
            "type": format!("gworkspace.{}.{}", event::type_segment(self.application), event::type_segment(name)),
            "action": action,
            "time": self.time,
            "actor": {
                "id": event::bounded(&actor_id, limit::ACTOR_ID),
                "type": actor_type,
                "display": email.map(|email| event::bounded(email, limit::DISPLAY)),
            },
            "targets": targets,
            "outcome": outcome,
            "reason": reason,
            "changes": changes,
            "origin": {
                "ip": event::str_at(record, "/ipAddress").and_then(event::ip),
                "service": format!("workspace.google.com/{}", event::source_segment(self.application)),
            },
            "metadata": self.metadata(record, item, &parameters, keys),
        });
        event::prune(&mut event);
        Ok(event)
    }

    fn metadata(
        &self,
        record: &Value,
        item: &Value,
        parameters: &Map<String, Value>,
        keys: &Pseudonyms,
    ) -> Option<Value> {
        let mut metadata = Metadata::default();
        metadata.put_value("event_type", item.get("type"));
        metadata.put_value("owner_domain", record.get("ownerDomain"));
        metadata.put("customer_id", self.customer);
        metadata.put_value("caller_type", record.pointer("/actor/callerType"));
        for (name, value) in parameters {
            if matches!(name.as_str(), "OLD_VALUE" | "NEW_VALUE" | "USER_EMAIL") {
                continue;
            }
            if let Some(text) = event::text(Some(value), limit::METADATA_VALUE) {
                metadata.put(&name.to_lowercase(), &keys.redact(&text, &[]));
            }
        }
        metadata.into_value()
    }
}

/// The event's parameters by name: `value`, `intValue`, `boolValue`, or `multiValue` joined by
/// commas.
fn parameters(item: &Value) -> Map<String, Value> {
    let mut parameters = Map::new();
    for parameter in item.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = event::str_at(parameter, "/name") else { continue };
        let value = ["value", "intValue", "boolValue"]
            .iter()
            .find_map(|key| parameter.get(*key).cloned())
            .or_else(|| {
                let values = parameter.get("multiValue")?.as_array()?;
                Some(json!(values.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")))
            });
        if let Some(value) = value {
            parameters.insert(name.to_owned(), value);
        }
    }
    parameters
}

/// Parameters that name what an event acted on, and the target type of each.
const TARGETS: &[(&str, &str)] = &[
    ("USER_EMAIL", "gworkspace.user"),
    ("GROUP_EMAIL", "gworkspace.group"),
    ("ORG_UNIT_NAME", "gworkspace.org_unit"),
    ("ROLE_NAME", "gworkspace.role"),
    ("DOMAIN_NAME", "gworkspace.domain"),
    ("APPLICATION_NAME", "gworkspace.application"),
    ("doc_id", "gworkspace.document"),
];

fn targets(parameters: &Map<String, Value>, customer: &str, keys: &Pseudonyms) -> Vec<Value> {
    let mut targets = Vec::new();
    for (name, target_type) in TARGETS {
        let Some(value) = event::text(parameters.get(*name), limit::TARGET_ID) else { continue };
        let target = if *name == "USER_EMAIL" {
            json!({"type": target_type, "id": keys.of(&value), "display": value})
        } else {
            event::target(target_type, &value)
        };
        event::push_target(&mut targets, target);
    }
    if targets.is_empty() {
        event::push_target(&mut targets, event::target("gworkspace.customer", customer));
    }
    targets
}

/// `{"field": "/<SETTING_NAME>", "before": OLD_VALUE, "after": NEW_VALUE}` when the event says how
/// a setting changed.
fn setting_change(parameters: &Map<String, Value>) -> Vec<Value> {
    let Some(after) = parameters.get("NEW_VALUE") else { return Vec::new() };
    let setting = parameters.get("SETTING_NAME").and_then(Value::as_str).unwrap_or("value");
    let mut change = json!({"field": format!("/{}", event::pointer_token(setting)), "after": after});
    if let Some(before) = parameters.get("OLD_VALUE") {
        change["before"] = before.clone();
    }
    vec![change]
}

/// The schema action of a Reports API event name.
pub fn action(name: &str) -> &'static str {
    let upper = name.to_uppercase();
    let starts = |prefix: &str| upper.starts_with(prefix);
    match upper.as_str() {
        "LOGOUT" => return "logout",
        "AUTHORIZE" | "ADD_GROUP_MEMBER" => return "grant",
        "REVOKE" | "REMOVE_GROUP_MEMBER" => return "revoke",
        "DOWNLOAD" => return "export",
        "VIEW" | "ACCESS" | "ACCESS_URL" => return "read",
        _ => {}
    }
    if starts("LOGIN_") {
        return "login";
    }
    if (starts("ADD_") && upper.ends_with("_TO_GROUP"))
        || starts("ASSIGN_ROLE")
        || starts("GRANT_")
        || upper.ends_with("_PRIVILEGE_GRANT")
    {
        return "grant";
    }
    if (starts("REMOVE_") && upper.ends_with("_FROM_GROUP")) || starts("UNASSIGN_ROLE") || starts("REVOKE_") {
        return "revoke";
    }
    if starts("CREATE_") {
        return "create";
    }
    if starts("DELETE_") || starts("REMOVE_") {
        return "delete";
    }
    if starts("DOWNLOAD") || upper.contains("EXPORT") || upper.contains("TAKEOUT") {
        return "export";
    }
    if starts("CHANGE_")
        || starts("UPDATE_")
        || starts("RENAME_")
        || starts("SUSPEND_")
        || starts("UNSUSPEND_")
        || upper.contains("PASSWORD")
    {
        return "update";
    }
    if starts("VIEW") {
        return "read";
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::action;

    #[test]
    fn actions_follow_the_event_name() {
        for (name, expected) in [
            ("CREATE_USER", "create"),
            ("DELETE_USER", "delete"),
            ("ADD_GROUP_MEMBER", "grant"),
            ("REMOVE_GROUP_MEMBER", "revoke"),
            ("ADD_USER_TO_GROUP", "grant"),
            ("REMOVE_USER_FROM_GROUP", "revoke"),
            ("ASSIGN_ROLE", "grant"),
            ("UNASSIGN_ROLE", "revoke"),
            ("CHANGE_APPLICATION_SETTING", "update"),
            ("CHANGE_PASSWORD", "update"),
            ("SUSPEND_USER", "update"),
            ("login_success", "login"),
            ("login_failure", "login"),
            ("logout", "logout"),
            ("download", "export"),
            ("TAKEOUT_EXPORT", "export"),
            ("view", "read"),
        ] {
            assert_eq!(action(name), expected, "{name}");
        }
    }
}
