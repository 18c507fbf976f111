//! Kubernetes audit events (`audit.k8s.io/v1`, `kind: Event`), from an `EventList` (what the
//! webhook backend posts, or `kubectl get --raw` style dumps) or NDJSON (what the log backend
//! writes), mapped onto events.
//!
//! | event field | from the audit event |
//! | --- | --- |
//! | `id` | `<auditID>/<stage>`: one request makes an event per stage (`RequestReceived`, `ResponseStarted`, `ResponseComplete`, `Panic`), all with its `auditID` |
//! | `source` | `//k8s/<cluster>`: audit events do not name their cluster, so `Options::cluster` does (`evident ingest --cluster`; default [`DEFAULT_CLUSTER`]) |
//! | `type` | `k8s.<resource>[.<subresource>].<verb>`, e.g. `k8s.secrets.get`, `k8s.pods.exec.create`; requests to non-resource URLs: `k8s.nonresource.<verb>` |
//! | `action` | from `verb`, see [`action`]: `get` → `read`; `list`, `watch` → `list`; `create` → `create`; `update`, `patch` → `update`; `delete`, `deletecollection` → `delete`; `bind`, `escalate` → `grant`; `create` of `*reviews` (token and access reviews: questions, not objects) → `read`; the `exec`, `attach`, `portforward` and `proxy` subresources, `impersonate` and anything else → `other`; non-resource `get`/`head` → `read` |
//! | `time` | `requestReceivedTimestamp`, else `stageTimestamp` |
//! | `actor.id` | `user.username` |
//! | `actor.type` | `system:serviceaccount:*` → `service`; `system:anonymous` → `anonymous`; other `system:*` (nodes, controllers, the API server) → `system`; a member of `system:masters` → `admin`; else `user` |
//! | `actor.on_behalf_of` | `impersonatedUser.username`: the user impersonated (the actor sent the request as them) |
//! | `actor.session` | `user.extra["authentication.kubernetes.io/credential-id"][0]` (e.g. a token's `JTI=…`) |
//! | `targets` | `objectRef`: `type` `<resource>` (`<resource>.<apiGroup>` outside the core group, as kubectl names them), `id` `<namespace>/<name>` (`<namespace>/*` for a collection, `<name>` or `*` when cluster-scoped); non-resource requests: `{"type": "nonresource", "id": <path of requestURI>}` |
//! | `outcome` | `responseStatus.code` >= 400 → `failure`, other codes → `success`; stage `Panic` → `failure`; no status yet (`RequestReceived`) → `unknown` |
//! | `reason` | failures: `<code> <responseStatus.reason>: <responseStatus.message>`; successes: the `authorization.k8s.io/reason` annotation (the authorizer's justification) |
//! | `changes` | successful create/update/patch: request bodies are never copied (they may hold Secret data), so one change of the whole record whose `after` is its object reference; delete: the whole record; see `event::changes` |
//! | `origin.ip` | `sourceIPs[0]` (the others, proxies, are personal too and are not kept) |
//! | `origin.user_agent` | `userAgent` |
//! | `origin.service` | `kube-apiserver` |
//! | `correlation.request_id` | `auditID` |
//! | `metadata` | `stage`, `level`, `verb`, `request_uri`, `api_group`, `api_version`, `subresource`, `response_code`, `stage_timestamp`, `user_groups`, `impersonated_groups`, and each annotation but the authorizer's reason as `annotation.<key>` |

use serde_json::{Value, json};

use crate::event::{self, Metadata, limit};

/// The cluster's name in the events' source when none is given.
pub const DEFAULT_CLUSTER: &str = "kubernetes";

/// Whether a record looks like a Kubernetes audit event.
pub fn looks_like(record: &Value) -> bool {
    record
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|version| version.starts_with("audit.k8s.io/"))
        && record.get("kind").and_then(Value::as_str) == Some("Event")
}

/// Resources whose `create` asks a question rather than making an object.
const REVIEWS: &[&str] = &[
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "localsubjectaccessreviews",
    "selfsubjectrulesreviews",
    "selfsubjectreviews",
];

/// Subresources that open a stream to a workload rather than change an object.
const STREAMS: &[&str] = &["exec", "attach", "portforward", "proxy"];

/// The event for one audit event, or why there cannot be one.
pub fn event(record: &Value, cluster: &str) -> Result<Value, String> {
    if !looks_like(record) {
        return Err("not a Kubernetes audit event (apiVersion audit.k8s.io/v1, kind Event)".into());
    }
    let required = |name: &str| {
        event::str_at(record, &format!("/{name}")).ok_or_else(|| format!("the audit event has no {name}"))
    };
    let audit_id = required("auditID")?;
    let stage = required("stage")?;
    let verb = required("verb")?;
    let username = event::str_at(record, "/user/username").ok_or("the audit event has no user.username")?;
    let time = event::str_at(record, "/requestReceivedTimestamp")
        .or_else(|| event::str_at(record, "/stageTimestamp"))
        .ok_or("the audit event has no requestReceivedTimestamp")?;
    let time = event::rfc3339(time).ok_or("requestReceivedTimestamp is not an RFC 3339 time")?;

    let object = record.get("objectRef").filter(|object| event::str_at(object, "/resource").is_some());
    let resource = object.and_then(|object| event::str_at(object, "/resource"));
    let subresource = object.and_then(|object| event::str_at(object, "/subresource"));
    let mut event_type = format!("k8s.{}", event::type_segment(resource.unwrap_or("nonresource")));
    if let Some(subresource) = subresource {
        event_type = format!("{event_type}.{}", event::type_segment(subresource));
    }
    event_type = format!("{event_type}.{}", event::type_segment(verb));
    let action = action(verb, resource, subresource);

    let code = record.pointer("/responseStatus/code").and_then(Value::as_i64);
    let outcome = match (stage, code) {
        ("Panic", _) => "failure",
        (_, Some(code)) if code >= 400 => "failure",
        (_, Some(_)) => "success",
        (_, None) => "unknown",
    };
    let reason = if outcome == "failure" {
        let status_reason = event::str_at(record, "/responseStatus/reason").unwrap_or("");
        let message = event::str_at(record, "/responseStatus/message").unwrap_or("");
        let reason = match (code, stage) {
            (_, "Panic") => format!("the API server panicked while serving the request {message}"),
            (Some(code), _) => format!("{code} {status_reason}: {message}"),
            (None, _) => message.to_owned(),
        };
        Some(event::bounded(reason.trim_end_matches([':', ' ']), limit::REASON))
    } else {
        event::text(record.pointer("/annotations/authorization.k8s.io~1reason"), limit::REASON)
    };

    let target = match object {
        Some(object) => object_target(object),
        None => {
            let uri = event::str_at(record, "/requestURI").unwrap_or("/");
            event::target("nonresource", uri.split('?').next().unwrap_or(uri))
        }
    };
    let changes = event::changes(action, outcome, Vec::new(), &target);

    let groups = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|groups| groups.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
    };
    let user_groups = groups("/user/groups");
    let actor_type = if username.starts_with("system:serviceaccount:") {
        "service"
    } else if username == "system:anonymous" {
        "anonymous"
    } else if username.starts_with("system:") {
        "system"
    } else if user_groups.as_deref().is_some_and(|groups| groups.split(", ").any(|g| g == "system:masters")) {
        "admin"
    } else {
        "user"
    };
    let mut actor = json!({
        "id": event::bounded(username, limit::ACTOR_ID),
        "type": actor_type,
        "on_behalf_of": event::text(record.pointer("/impersonatedUser/username"), limit::ACTOR_ID),
        "session": event::text(
            record.pointer("/user/extra/authentication.kubernetes.io~1credential-id/0"),
            limit::SESSION
        ),
    });
    event::prune(&mut actor);

    let origin = json!({
        "ip": event::str_at(record, "/sourceIPs/0").and_then(event::ip),
        "user_agent": event::text(record.get("userAgent"), limit::USER_AGENT),
        "service": "kube-apiserver",
    });

    let mut metadata = Metadata::default();
    metadata.put("stage", stage);
    metadata.put_value("level", record.get("level"));
    metadata.put("verb", verb);
    metadata.put_value("request_uri", record.get("requestURI"));
    metadata.put_value("api_group", object.and_then(|object| object.get("apiGroup")));
    metadata.put_value("api_version", object.and_then(|object| object.get("apiVersion")));
    metadata.put_value("subresource", object.and_then(|object| object.get("subresource")));
    metadata.put_value("response_code", record.pointer("/responseStatus/code"));
    metadata.put_value("stage_timestamp", record.get("stageTimestamp"));
    if let Some(groups) = &user_groups {
        metadata.put("user_groups", groups);
    }
    if let Some(groups) = groups("/impersonatedUser/groups") {
        metadata.put("impersonated_groups", &groups);
    }
    let annotations = record.get("annotations").and_then(Value::as_object);
    for (key, value) in annotations.into_iter().flatten() {
        if key != "authorization.k8s.io/reason" {
            metadata.put_value(&format!("annotation.{key}"), Some(value));
        }
    }

    let mut event = json!({
        "id": event::bounded(&format!("{audit_id}/{stage}"), 128),
        "source": event::bounded(&format!("//k8s/{}", event::source_segment(cluster)), limit::SOURCE),
        "type": event_type,
        "action": action,
        "time": time,
        "actor": actor,
        "targets": [target],
        "outcome": outcome,
        "reason": reason,
        "changes": changes,
        "origin": origin,
        "correlation": {"request_id": event::bounded(audit_id, limit::REQUEST_ID)},
        "metadata": metadata.into_value(),
    });
    event::prune(&mut event);
    Ok(event)
}

/// The schema action of a request: its verb, on a resource (and subresource) or not.
pub fn action(verb: &str, resource: Option<&str>, subresource: Option<&str>) -> &'static str {
    if subresource.is_some_and(|subresource| STREAMS.contains(&subresource)) {
        return "other";
    }
    if resource.is_none() {
        return if matches!(verb, "get" | "head") { "read" } else { "other" };
    }
    match verb {
        "create" if resource.is_some_and(|resource| REVIEWS.contains(&resource)) => "read",
        "get" => "read",
        "list" | "watch" => "list",
        "create" => "create",
        "update" | "patch" => "update",
        "delete" | "deletecollection" => "delete",
        "bind" | "escalate" => "grant",
        _ => "other",
    }
}

/// The target an `objectRef` names.
fn object_target(object: &Value) -> Value {
    let resource = event::str_at(object, "/resource").unwrap_or("unknown");
    let target_type = match event::str_at(object, "/apiGroup") {
        Some(group) => format!("{resource}.{group}"),
        None => resource.to_owned(),
    };
    let name = event::str_at(object, "/name");
    let id = match (event::str_at(object, "/namespace"), name) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (Some(namespace), None) => format!("{namespace}/*"),
        (None, Some(name)) => name.to_owned(),
        (None, None) => "*".to_owned(),
    };
    event::target(&target_type, &id)
}

#[cfg(test)]
mod tests {
    use super::action;

    #[test]
    fn actions_follow_the_verb() {
        for (verb, resource, subresource, expected) in [
            ("get", Some("secrets"), None, "read"),
            ("list", Some("pods"), None, "list"),
            ("watch", Some("pods"), None, "list"),
            ("create", Some("deployments"), None, "create"),
            ("patch", Some("deployments"), None, "update"),
            ("deletecollection", Some("pods"), None, "delete"),
            ("create", Some("pods"), Some("exec"), "other"),
            ("create", Some("subjectaccessreviews"), None, "read"),
            ("bind", Some("clusterroles"), None, "grant"),
            ("impersonate", Some("users"), None, "other"),
            ("get", None, None, "read"),
            ("post", None, None, "other"),
        ] {
            assert_eq!(action(verb, resource, subresource), expected, "{verb} {resource:?} {subresource:?}");
        }
    }
}
