//! GitHub organisation (or enterprise) audit log entries, as the REST API
//! (`GET /orgs/{org}/audit-log`, `GET /enterprises/{enterprise}/audit-log`) and the web export give
//! them (with `_document_id`, or without one, with `created_at` in epoch milliseconds): a JSON
//! array, or NDJSON (audit log streaming), mapped onto events.
//!
//! | event field | from the audit log entry |
//! | --- | --- |
//! | `id` | `_document_id`; organisation and enterprise exports without one: `gh_` and the keyed hash of the entry's canonical JSON ([`Pseudonyms::record_id`]), so a re-import is idempotent |
//! | `source` | `//github.com/<org>`; enterprise entries without an org: `//github.com/enterprises/<business>` |
//! | `type` | `github.<action>`, e.g. `github.repo.create`, `github.team.add_member` |
//! | `action` | see [`action`]: the last part of `action` first: `add_member`, `add_admin`, `add_repository`, `add_collaborator` → `grant`; `remove_member`, `remove_admin`, `remove_repository`, `remove_collaborator`, `remove_outside_collaborator` → `revoke`; `login`, `sign_in` → `login`; `logout`, `sign_out` → `logout`; `enable*`, `disable*` → `configure`; `export*`, `download*` → `export`; `clone`, `fetch` → `read`; then GitHub's `operation_type`: `create`, `restore` → `create`, `access` → `read`, `modify`, `transfer` → `update`, `remove` → `delete`, `authentication` → `login`; then the last part again: `create` → `create`, `destroy`, `delete` → `delete`, `update`, `rename`, `edit`, `transfer`, `access`, `archived`, `unarchived`, `change*`, `update*` → `update`; anything else → `other` |
//! | `time` | `@timestamp`, else `created_at` (milliseconds since the epoch, or RFC 3339) |
//! | `actor.id` | the pseudonym of `actor` (a login is a person's name); bots (`…[bot]`) keep their login; entries without an actor (GitHub itself) → `github` |
//! | `actor.display` (sealed) | `actor`, the login |
//! | `actor.type` | no actor → `system`; a login ending in `[bot]`, `actor_is_bot`, or a GitHub App token → `service`; else `user` |
//! | `actor.auth.method` | `programmatic_access_type` (e.g. `Personal access token (classic)`) |
//! | `targets` | `repo` or `repository` → `github.repository`; `team` → `github.team`; `user` and `invitee` → `github.user` with the login's pseudonym as id and the login as (sealed) display; `hook_id` → `github.hook`; none of these: the org (`github.organization`) or enterprise (`github.enterprise`) |
//! | `outcome` | `success`: the audit log records what took effect and has no outcome field |
//! | `changes` (sealed) | successful create/update: `{"field": "/<x>", "before": old_<x>, "after": <x>}` for each `old_<x>` or `previous_<x>` the entry has (e.g. `permission`, `visibility`), else one change of the whole record whose `after` is the first target; successful delete: `{"field": "", "before": <first target>, "after": null}` |
//! | `origin.ip` (sealed) | `actor_ip` |
//! | `origin.user_agent` (sealed) | `user_agent` |
//! | `origin.service` | `github.com` |
//! | `correlation.request_id` | `request_id` |
//! | `metadata` | `country_code` (`actor_location.country_code`) and every other scalar member not mapped above, logins and e-mail addresses in them pseudonymised; left out as personal: `actor_id`, `user_id`, `invitee`, `actor_ip`, `user_agent`, e-mail members, `external_identity_*`, `hashed_token`, `token_id` |

use serde_json::{Map, Value, json};

use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// Whether a record looks like a GitHub audit log entry.
pub fn looks_like(record: &Value) -> bool {
    record.get("action").is_some_and(Value::is_string)
        && (record.get("actor").is_some() || record.get("actor_id").is_some())
        && (record.get("@timestamp").is_some() || record.get("created_at").is_some())
}

/// Members mapped to schema fields (not repeated as metadata) or left out as personal.
const NOT_METADATA: &[&str] = &[
    "_document_id",
    "@timestamp",
    "created_at",
    "action",
    "actor",
    "actor_ip",
    "actor_location",
    "user_agent",
    "org",
    "repo",
    "repository",
    "team",
    "user",
    "hook_id",
    "request_id",
    "hashed_token",
    "token_id",
    "programmatic_access_type",
    "actor_id",
    "user_id",
    "invitee",
    "invitee_id",
];

/// Target members, in order (the first present becomes the first target).
const TARGETS: &[(&str, &str)] = &[
    ("repo", "github.repository"),
    ("repository", "github.repository"),
    ("team", "github.team"),
    ("user", "github.user"),
    ("invitee", "github.user"),
    ("hook_id", "github.hook"),
];

/// The event for one audit log entry, or why there cannot be one.
pub fn event(record: &Value, keys: &Pseudonyms) -> Result<Value, String> {
    let Some(entry) = record.as_object() else {
        return Err("a GitHub audit log entry must be a JSON object".into());
    };
    let id = match event::str_at(record, "/_document_id") {
        Some(id) => id.to_owned(),
        None => keys.record_id("gh_", record),
    };
    let github_action = event::str_at(record, "/action").ok_or("not a GitHub audit log entry: no action")?;
    let time = time(entry).ok_or("the entry has no usable @timestamp or created_at")?;

    let org = event::str_at(record, "/org");
    let business = event::str_at(record, "/business");
    let source = match (org, business) {
        (Some(org), _) => format!("//github.com/{}", event::source_segment(org)),
        (None, Some(business)) => format!("//github.com/enterprises/{}", event::source_segment(business)),
        (None, None) => "//github.com".to_owned(),
    };
    let event_type = std::iter::once("github")
        .map(str::to_owned)
        .chain(github_action.split('.').map(event::type_segment))
        .collect::<Vec<_>>()
        .join(".");
    let action = action(github_action, event::str_at(record, "/operation_type"));
    let targets = targets(entry, org, business, keys);
    let outcome = "success";
    let changes =
        event::changes(event::record_changes(action, outcome, old_and_new(entry), &targets[0]), None);

    let mut event = json!({
        "id": event::bounded(&id, 128),
        "source": event::bounded(&source, limit::SOURCE),
        "type": event_type,
        "action": action,
        "time": time,
        "actor": actor(record, keys),
        "targets": targets,
        "outcome": outcome,
        "changes": changes,
        "origin": event::origin(event::str_at(record, "/actor_ip"), entry.get("user_agent"), "github.com"),
        "correlation": {"request_id": event::text(entry.get("request_id"), limit::REQUEST_ID)},
        "metadata": metadata(entry, keys),
    });
    event::prune(&mut event);
    Ok(event)
}

/// A login's stand-in in clear fields: its pseudonym; a bot's login as it is.
fn person(login: &str, keys: &Pseudonyms) -> String {
    if login.ends_with("[bot]") { login.to_owned() } else { keys.of(login) }
}

/// The repositories, teams, users and hooks an entry names; else its org or enterprise.
fn targets(
    entry: &Map<String, Value>,
    org: Option<&str>,
    business: Option<&str>,
    keys: &Pseudonyms,
) -> Vec<Value> {
    let mut targets = Vec::new();
    for (name, target_type) in TARGETS {
        if let Some(id) = event::text(entry.get(*name), limit::TARGET_ID) {
            let target = if *target_type == "github.user" {
                json!({"type": target_type, "id": person(&id, keys), "display": id})
            } else {
                event::target(target_type, &id)
            };
            event::push_target(&mut targets, target);
        }
    }
    if targets.is_empty() {
        let target = match (org, business) {
            (Some(org), _) => event::target("github.organization", org),
            (None, Some(business)) => event::target("github.enterprise", business),
            (None, None) => event::target("github", "github.com"),
        };
        event::push_target(&mut targets, target);
    }
    targets
}

fn actor(record: &Value, keys: &Pseudonyms) -> Value {
    let login = event::str_at(record, "/actor");
    let programmatic = event::str_at(record, "/programmatic_access_type");
    let actor_type = match login {
        None => "system",
        Some(login)
            if login.ends_with("[bot]")
                || record.get("actor_is_bot") == Some(&Value::Bool(true))
                || programmatic.is_some_and(|kind| kind.contains("GitHub App")) =>
        {
            "service"
        }
        Some(_) => "user",
    };
    let mut actor = json!({
        "id": event::bounded(&login.map_or("github".to_owned(), |login| person(login, keys)), limit::ACTOR_ID),
        "type": actor_type,
        "display": login.filter(|login| !login.ends_with("[bot]")),
        "auth": {"method": programmatic.map(|kind| event::bounded(kind, limit::AUTH_METHOD))},
    });
    event::prune(&mut actor);
    actor
}

/// The entry's other scalar members, logins and e-mail addresses in them pseudonymised.
fn metadata(entry: &Map<String, Value>, keys: &Pseudonyms) -> Option<Value> {
    let mut metadata = Metadata::default();
    metadata.put_value(
        "country_code",
        entry.get("actor_location").and_then(|location| location.get("country_code")),
    );
    let logins: Vec<&str> = ["actor", "user", "invitee"]
        .iter()
        .filter_map(|name| entry.get(*name).and_then(Value::as_str))
        .collect();
    for (key, value) in entry {
        let personal = key.contains("email") || key.starts_with("external_identity");
        if NOT_METADATA.contains(&key.as_str()) || personal {
            continue;
        }
        if let Some(text) = event::text(Some(value), limit::METADATA_VALUE) {
            let whole_login = logins.contains(&text.as_str());
            metadata.put(key, &if whole_login { keys.of(&text) } else { keys.redact(&text, &logins) });
        }
    }
    metadata.into_value()
}

/// `@timestamp` or `created_at`: milliseconds since the epoch, or RFC 3339.
fn time(entry: &Map<String, Value>) -> Option<String> {
    ["@timestamp", "created_at"].iter().filter_map(|name| entry.get(*name)).find_map(|value| match value {
        Value::Number(number) => number.as_i64().and_then(event::from_millis),
        Value::String(text) => {
            event::rfc3339(text).or_else(|| text.parse().ok().and_then(event::from_millis))
        }
        _ => None,
    })
}

/// `{"field": "/x", "before": old_x, "after": x}` for each `old_x` or `previous_x` in the entry.
fn old_and_new(entry: &Map<String, Value>) -> Vec<Value> {
    let mut changes = Vec::new();
    for (key, before) in entry {
        let Some(field) = key.strip_prefix("old_").or_else(|| key.strip_prefix("previous_")) else {
            continue;
        };
        let mut change = json!({"field": format!("/{}", event::pointer_token(field)), "before": before});
        if let Some(after) = entry.get(field) {
            change["after"] = after.clone();
        }
        changes.push(change);
    }
    changes
}

/// The schema action of a GitHub audit `action` (e.g. `repo.create`) and its `operation_type`.
pub fn action(github_action: &str, operation_type: Option<&str>) -> &'static str {
    let verb = github_action.rsplit('.').next().unwrap_or(github_action);
    match verb {
        "add_member" | "add_admin" | "add_repository" | "add_collaborator" => return "grant",
        "remove_member"
        | "remove_admin"
        | "remove_repository"
        | "remove_collaborator"
        | "remove_outside_collaborator" => return "revoke",
        "login" | "sign_in" => return "login",
        "logout" | "sign_out" => return "logout",
        "clone" | "fetch" => return "read",
        _ => {}
    }
    if verb.starts_with("enable") || verb.starts_with("disable") {
        return "configure";
    }
    if verb.starts_with("export") || verb.starts_with("download") {
        return "export";
    }
    match operation_type {
        Some("create" | "restore") => return "create",
        Some("access") => return "read",
        Some("modify" | "transfer") => return "update",
        Some("remove") => return "delete",
        Some("authentication") => return "login",
        _ => {}
    }
    match verb {
        "create" => "create",
        "destroy" | "delete" => "delete",
        "update" | "rename" | "edit" | "transfer" | "access" | "archived" | "unarchived" => "update",
        _ if verb.starts_with("change") || verb.starts_with("update") => "update",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::action;

    #[test]
    fn actions_follow_the_action_name_then_the_operation_type() {
        for (github_action, operation_type, expected) in [
            ("repo.create", None, "create"),
            ("repo.destroy", None, "delete"),
            ("team.add_member", Some("modify"), "grant"),
            ("org.remove_member", None, "revoke"),
            ("org.update_member", None, "update"),
            ("repo.access", None, "update"),
            ("git.clone", None, "read"),
            ("org.disable_two_factor_requirement", None, "configure"),
            ("org.invite_member", Some("create"), "create"),
            ("workflows.completed_workflow_run", None, "other"),
        ] {
            assert_eq!(action(github_action, operation_type), expected, "{github_action}");
        }
    }
}
