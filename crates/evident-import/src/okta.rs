//! The Okta System Log (`LogEvent`s as `GET /api/v1/logs` answers them: a JSON array, or NDJSON
//! from an export or a log stream), mapped onto events.
//!
//! | event field | from the Okta `LogEvent` |
//! | --- | --- |
//! | `id` | `uuid` |
//! | `source` | `//okta/<org>`: `--okta-org` (`Options::okta_org`), else the host of `debugContext.debugData.url` when it is a whole URL (it is mostly a path), else `//okta` |
//! | `type` | `okta.<eventType>`, e.g. `okta.user.session.start`, `okta.group.user_membership.add` |
//! | `action` | from `eventType`, see [`action`]: `*.session.start`, `user.authentication.*` → `login`; `*.session.end` → `logout`; `*membership.add`, `*.grant*`, `*.assign*`, `*.privilege.grant` → `grant`; `*membership.remove`, `*.revoke*`, `*.unassign*` → `revoke`; `*.create` → `create`; `*.delete*` (also `user.lifecycle.delete.completed`) → `delete`; `*.update*`, `*.activate`, `*.deactivate`, `*.suspend`, `*.unsuspend`, `*.unlock`, `*.reset_password`, `*.update_password` → `update`; `*.read`, `*.access`, `*.sso` → `read`; `*.export*`, `*.download*` → `export`; else `other` |
//! | `time` | `published` |
//! | `actor.id` | `actor.id` (Okta's opaque id, e.g. `00u1a2b3c4D5e6F7g8h9`) |
//! | `actor.display` (sealed) | `actor.displayName`, else `actor.alternateId` (a login, often an e-mail address) |
//! | `actor.type` | `actor.type`: `User` → `user`; `SystemPrincipal` → `system`; `PublicClientApp`, `AppInstance`, `Client` → `service`; else absent |
//! | `actor.session` | the pseudonym of `authenticationContext.externalSessionId` |
//! | `actor.auth` | `method`: `authenticationContext.credentialType` (e.g. `PASSWORD`, `OTP`) lowercased; `mfa`: true for `user.authentication.auth_via_mfa` events that succeeded |
//! | `targets` | each of `target[]`: `type` `okta.<type lowercased>` (`okta.user`, `okta.usergroup`, `okta.appinstance`), `id` its `id`, `display` (sealed) its `displayName` or `alternateId`; none: `{"type": "okta.org", "id": "okta"}` |
//! | `outcome` | `outcome.result`: `SUCCESS`, `ALLOW` → `success`; `FAILURE`, `DENY` → `failure`; `SKIPPED`, `CHALLENGE`, `UNKNOWN` → `unknown` |
//! | `reason` | failures: `outcome.reason` (else the result), names and e-mail addresses pseudonymised |
//! | `changes` (sealed) | successful create/update: the whole record, `after` its first target; successful delete: `before` it, `after` null (the System Log records no field values) |
//! | `origin.ip` (sealed) | `client.ipAddress` |
//! | `origin.user_agent` (sealed) | `client.userAgent.rawUserAgent` |
//! | `origin.service` | `okta` |
//! | `correlation` | `request_id`: `debugContext.debugData.requestId`; `correlation_id`: `transaction.id` |
//! | `metadata` | `severity`, `legacy_event_type`, `display_message` (pseudonymised), `transaction_type`, `client_zone`, `country` (`client.geographicalContext.country`), `as_org` (`securityContext.asOrg`), `is_proxy`, `credential_provider`, `authentication_step`, `log_version`; city, postal code and coordinates are not kept |

use serde_json::{Value, json};

use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// Whether a record looks like an Okta `LogEvent`: `uuid`, `published`, `eventType` and `actor`.
pub fn looks_like(record: &Value) -> bool {
    ["uuid", "published", "eventType", "actor"].iter().all(|name| record.get(*name).is_some())
}

/// The event for one `LogEvent`, or why there cannot be one.
pub fn event(record: &Value, org: Option<&str>, keys: &Pseudonyms) -> Result<Value, String> {
    if !record.is_object() {
        return Err("an Okta LogEvent must be a JSON object".into());
    }
    let required = |name: &str| {
        event::str_at(record, &format!("/{name}")).ok_or_else(|| format!("not an Okta LogEvent: no {name}"))
    };
    let id = required("uuid")?;
    let event_type = required("eventType")?;
    let time = event::rfc3339(required("published")?).ok_or("published is not an RFC 3339 time")?;
    let actor_id = event::str_at(record, "/actor/id").ok_or("not an Okta LogEvent: no actor.id")?;
    let action = action(event_type);

    let (targets, people) = targets(record);
    let outcome = match event::str_at(record, "/outcome/result") {
        Some("SUCCESS" | "ALLOW") => "success",
        Some("FAILURE" | "DENY") => "failure",
        _ => "unknown",
    };
    let reason = (outcome == "failure").then(|| {
        let reason = event::str_at(record, "/outcome/reason")
            .or_else(|| event::str_at(record, "/outcome/result"))
            .unwrap_or("FAILURE");
        event::bounded(&keys.redact(reason, &people), limit::REASON)
    });
    let changes = event::changes(event::record_changes(action, outcome, Vec::new(), &targets[0]), None);

    let mut event = json!({
        "id": event::bounded(id, 128),
        "source": source(record, org),
        "type": format!("okta.{}", event_type.split('.').map(event::type_segment).collect::<Vec<_>>().join(".")),
        "action": action,
        "time": time,
        "actor": actor(record, actor_id, event_type, outcome, keys),
        "targets": targets,
        "outcome": outcome,
        "reason": reason,
        "changes": changes,
        "origin": event::origin(
            event::str_at(record, "/client/ipAddress"),
            record.pointer("/client/userAgent/rawUserAgent"),
            "okta"
        ),
        "correlation": {
            "request_id": event::text(record.pointer("/debugContext/debugData/requestId"), limit::REQUEST_ID),
            "correlation_id": event::text(record.pointer("/transaction/id"), limit::REQUEST_ID),
        },
        "metadata": metadata(record, keys, &people),
    });
    event::prune(&mut event);
    Ok(event)
}

fn actor(record: &Value, actor_id: &str, event_type: &str, outcome: &str, keys: &Pseudonyms) -> Value {
    let actor_type = match event::str_at(record, "/actor/type") {
        Some("User") => Some("user"),
        Some("SystemPrincipal") => Some("system"),
        Some("PublicClientApp" | "AppInstance" | "Client") => Some("service"),
        _ => None,
    };
    let mfa = (event_type == "user.authentication.auth_via_mfa" && outcome == "success").then_some(true);
    let mut actor = json!({
        "id": event::bounded(actor_id, limit::ACTOR_ID),
        "type": actor_type,
        "display": names(&record["actor"]).first().map(|name| event::bounded(name, limit::DISPLAY)),
        "session": event::str_at(record, "/authenticationContext/externalSessionId").map(|id| keys.of(id)),
        "auth": {
            "method": event::str_at(record, "/authenticationContext/credentialType")
                .map(|method| event::bounded(&method.to_lowercase(), limit::AUTH_METHOD)),
            "mfa": mfa,
        },
    });
    event::prune(&mut actor);
    actor
}

/// The targets, and the names of the people among them and the actor (for redacting free text).
fn targets(record: &Value) -> (Vec<Value>, Vec<&str>) {
    let mut people: Vec<&str> = names(&record["actor"]);
    let mut targets = Vec::new();
    for target in record.get("target").and_then(Value::as_array).into_iter().flatten() {
        let (Some(target_type), Some(target_id)) =
            (event::str_at(target, "/type"), event::str_at(target, "/id"))
        else {
            continue;
        };
        let mut mapped = event::target(&format!("okta.{}", target_type.to_lowercase()), target_id);
        if let Some(display) = names(target).first() {
            mapped["display"] = json!(event::bounded(display, limit::DISPLAY));
        }
        if target_type == "User" {
            people.extend(names(target));
        }
        event::push_target(&mut targets, mapped);
    }
    if targets.is_empty() {
        event::push_target(&mut targets, event::target("okta.org", "okta"));
    }
    (targets, people)
}

/// The names a `LogEvent` gives an actor or a target: `displayName`, `alternateId`.
fn names(value: &Value) -> Vec<&str> {
    ["/displayName", "/alternateId"].iter().filter_map(|pointer| event::str_at(value, pointer)).collect()
}

/// `//okta/<org>`: the org asked for, else the host of the request URL Okta recorded (most
/// records give only its path), else `//okta`.
fn source(record: &Value, org: Option<&str>) -> String {
    let host = org.or_else(|| {
        event::str_at(record, "/debugContext/debugData/url")
            .and_then(|url| url.split_once("://"))
            .and_then(|(_, rest)| rest.split(['/', '?']).next())
            .filter(|host| !host.is_empty())
    });
    match host {
        Some(host) => event::bounded(&format!("//okta/{}", event::source_segment(host)), limit::SOURCE),
        None => "//okta".to_owned(),
    }
}

fn metadata(record: &Value, keys: &Pseudonyms, people: &[&str]) -> Option<Value> {
    let mut metadata = Metadata::default();
    for (key, pointer) in [
        ("severity", "/severity"),
        ("legacy_event_type", "/legacyEventType"),
        ("transaction_type", "/transaction/type"),
        ("client_zone", "/client/zone"),
        ("country", "/client/geographicalContext/country"),
        ("as_org", "/securityContext/asOrg"),
        ("is_proxy", "/securityContext/isProxy"),
        ("credential_provider", "/authenticationContext/credentialProvider"),
        ("authentication_step", "/authenticationContext/authenticationStep"),
        ("log_version", "/version"),
    ] {
        metadata.put_value(key, record.pointer(pointer));
    }
    if let Some(message) = event::str_at(record, "/displayMessage") {
        metadata.put("display_message", &keys.redact(message, people));
    }
    metadata.into_value()
}

/// The schema action of an Okta `eventType`.
pub fn action(event_type: &str) -> &'static str {
    let parts: Vec<&str> = event_type.split('.').collect();
    let last = parts.last().copied().unwrap_or("");
    let has = |part: &str| parts.contains(&part);
    if event_type.starts_with("user.authentication.") || event_type.ends_with(".session.start") {
        return "login";
    }
    if event_type.ends_with(".session.end") {
        return "logout";
    }
    if (has("user_membership") || has("membership")) && last == "add" {
        return "grant";
    }
    if (has("user_membership") || has("membership")) && last == "remove" {
        return "revoke";
    }
    match last {
        "grant" | "assign" | "add_assignment" => "grant",
        "revoke" | "unassign" | "remove_assignment" => "revoke",
        "create" => "create",
        "delete" | "delete_initiated" | "delete_completed" => "delete",
        "activate" | "deactivate" | "suspend" | "unsuspend" | "unlock" | "reset_password"
        | "update_password" | "update" | "update_profile" => "update",
        "read" | "access" | "sso" => "read",
        _ if last.starts_with("update") => "update",
        _ if last.starts_with("delete") || has("delete") => "delete",
        _ if last.starts_with("export") || last.starts_with("download") => "export",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::{action, source};
    use serde_json::json;

    #[test]
    fn the_source_names_the_org_asked_for_or_the_one_a_whole_url_gives() {
        let path_only = json!({"debugContext": {"debugData": {"url": "/api/v1/authn?"}}});
        let whole_url =
            json!({"debugContext": {"debugData": {"url": "https://acme.okta.com/api/v1/authn?"}}});
        assert_eq!(source(&path_only, None), "//okta");
        assert_eq!(source(&path_only, Some("acme.okta.com")), "//okta/acme.okta.com");
        assert_eq!(source(&whole_url, None), "//okta/acme.okta.com");
        assert_eq!(source(&whole_url, Some("other.okta.com")), "//okta/other.okta.com");
    }

    #[test]
    fn actions_follow_the_event_type() {
        for (event_type, expected) in [
            ("user.session.start", "login"),
            ("user.authentication.sso", "login"),
            ("user.authentication.auth_via_mfa", "login"),
            ("user.session.end", "logout"),
            ("group.user_membership.add", "grant"),
            ("application.user_membership.remove", "revoke"),
            ("user.account.privilege.grant", "grant"),
            ("user.lifecycle.create", "create"),
            ("user.lifecycle.deactivate", "update"),
            ("user.lifecycle.delete.completed", "delete"),
            ("group.lifecycle.delete", "delete"),
            ("user.account.update_password", "update"),
            ("system.api_token.create", "create"),
            ("policy.evaluate_sign_on", "other"),
        ] {
            assert_eq!(action(event_type), expected, "{event_type}");
        }
    }
}
