//! Kubernetes audit events (`audit.k8s.io/v1`, and the older `v1beta1` whose events carry
//! `timestamp`), from an `EventList` (what the webhook backend posts, or `kubectl get --raw` style
//! dumps) or NDJSON (what the log backend writes); and the same events as managed clusters deliver
//! them: GKE's Cloud Logging entries (`protoPayload` of `@type`
//! `type.googleapis.com/google.cloud.audit.AuditLog`, service `k8s.io`) and AKS diagnostic records
//! (`category` `kube-audit` or `kube-audit-admin`, the event as a string in `properties.log`, in
//! `{"records": [...]}` files or NDJSON). Mapped onto events:
//!
//! | event field | from the audit event |
//! | --- | --- |
//! | `id` | `<auditID>/<stage>`: one request makes an event per stage (`RequestReceived`, `ResponseStarted`, `ResponseComplete`, `Panic`), all with its `auditID` (`<auditID>` alone when an old event has no stage); GKE: `gke/<insertId>` |
//! | `source` | `//k8s/<cluster>`: `--cluster` (`Options::cluster`), else the cluster the wrapper names (GKE `resource.labels.cluster_name`, AKS the last part of `resourceId`), else [`DEFAULT_CLUSTER`] |
//! | `type` | `k8s.<resource>[.<subresource>].<verb>`, e.g. `k8s.secrets.get`, `k8s.pods.exec.create`; requests to non-resource URLs: `k8s.nonresource.<verb>` |
//! | `action` | from `verb`, see [`action`]: `get` → `read`; `list`, `watch` → `list`; `create` → `create`; `update`, `patch` → `update`; `delete`, `deletecollection` → `delete`; `bind`, `escalate` → `grant`; `create` of `*reviews` (token and access reviews: questions, not objects) → `read`; the `exec`, `attach`, `portforward` and `proxy` subresources, `impersonate` and anything else → `other`; non-resource `get`/`head` → `read` |
//! | `time` | `requestReceivedTimestamp`, else `timestamp` (older API servers), else `stageTimestamp`; GKE: the entry's `timestamp` |
//! | `actor.id` | `user.username` for system identities (`system:…`: nodes, controllers, service accounts); a person's user name (anything else) becomes its pseudonym |
//! | `actor.display` (sealed) | `user.username` of a person |
//! | `actor.type` | `system:serviceaccount:*` → `service`; `system:anonymous` → `anonymous`; other `system:*` (nodes, controllers, the API server) → `system`; a member of `system:masters` → `admin`; else `user` |
//! | `actor.on_behalf_of` | `impersonatedUser.username` (pseudonymised like `actor.id`): the user impersonated |
//! | `actor.session` | the pseudonym of `user.extra["authentication.kubernetes.io/credential-id"][0]` (a token's `JTI=…` or a certificate's fingerprint) |
//! | `targets` | `objectRef`: `type` `<resource>` (`<resource>.<apiGroup>` outside the core group, as kubectl names them), `id` `<namespace>/<name>` (`<namespace>/*` for a collection, `<name>` or `*` when cluster-scoped); non-resource requests: `{"type": "nonresource", "id": <path of requestURI>}`; GKE: parsed from `resourceName` |
//! | `outcome` | `responseStatus.code` >= 400 → `failure`, other codes → `success`; stage `Panic` → `failure`; no status yet (`RequestReceived`) → `unknown`; GKE: `protoPayload.responseStatus.code` (HTTP) when present, else `status.code` (google.rpc codes as HTTP ones; 0 or none → `success`) |
//! | `reason` | failures: `<code> <responseStatus.reason>: <responseStatus.message>`; successes: the `authorization.k8s.io/reason` annotation (the authorizer's justification); user names and e-mail addresses in either pseudonymised |
//! | `changes` (sealed) | successful create/update/patch: request bodies are never copied (they may hold Secret data), so one change of the whole record whose `after` is its object reference; successful delete: `{"field": "", "before": <object reference>, "after": null}` |
//! | `origin.ip` (sealed) | `sourceIPs[0]` (the others, proxies, are personal too and are not kept); GKE: `requestMetadata.callerIp` |
//! | `origin.user_agent` (sealed) | `userAgent`; GKE: `requestMetadata.callerSuppliedUserAgent` |
//! | `origin.service` | `kube-apiserver` |
//! | `correlation.request_id` | `auditID` |
//! | `metadata` | `stage`, `level`, `verb`, `request_uri`, `api_group`, `api_version`, `subresource`, `response_code`, `stage_timestamp`, `user_groups`, `impersonated_groups`, and each annotation but the authorizer's reason as `annotation.<key>` (names pseudonymised); AKS: `aks_category`; GKE: `gke_method`, `gke_project` |

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// The cluster's name in the events' source when neither `--cluster` nor the record names one.
pub const DEFAULT_CLUSTER: &str = "kubernetes";

/// Whether a record looks like a Kubernetes audit event, bare or in a GKE or AKS wrapper.
pub fn looks_like(record: &Value) -> bool {
    is_audit_event(record) || is_gke(record) || is_aks(record)
}

fn is_audit_event(record: &Value) -> bool {
    record
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|version| version.starts_with("audit.k8s.io/"))
        && record.get("kind").and_then(Value::as_str) == Some("Event")
}

/// A Cloud Logging entry of a GKE cluster's audit log.
fn is_gke(record: &Value) -> bool {
    event::str_at(record, "/protoPayload/@type") == Some("type.googleapis.com/google.cloud.audit.AuditLog")
        && event::str_at(record, "/protoPayload/serviceName") == Some("k8s.io")
}

/// An AKS diagnostic record of the `kube-audit` or `kube-audit-admin` category.
fn is_aks(record: &Value) -> bool {
    event::str_at(record, "/category").is_some_and(|category| category.starts_with("kube-audit"))
        && record.pointer("/properties/log").is_some_and(Value::is_string)
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

/// The event for one audit event (bare, or in a GKE or AKS wrapper), or why there cannot be one.
/// `cluster`: the name asked for, which wins over the one a wrapper gives.
pub fn event(record: &Value, cluster: Option<&str>, keys: &Pseudonyms) -> Result<Value, String> {
    let (audit, named_cluster, extra) = unwrap(record)?;
    let cluster = cluster.or(named_cluster.as_deref()).unwrap_or(DEFAULT_CLUSTER);
    let mut event = audit_event(&audit, cluster, keys)?;
    for (key, value) in extra {
        if let Some(metadata) = event.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(key.to_owned(), json!(event::bounded(&value, limit::METADATA_VALUE)));
        } else {
            event["metadata"] = json!({key: event::bounded(&value, limit::METADATA_VALUE)});
        }
    }
    if let Some(insert_id) = is_gke(record).then(|| event::str_at(record, "/insertId")).flatten() {
        event["id"] = json!(event::bounded(&format!("gke/{insert_id}"), 128));
    }
    Ok(event)
}

/// The audit event itself, the cluster its wrapper names, and metadata from the wrapper.
type Unwrapped<'r> = (Cow<'r, Value>, Option<String>, Vec<(&'static str, String)>);

fn unwrap(record: &Value) -> Result<Unwrapped<'_>, String> {
    if is_aks(record) {
        let log = record.pointer("/properties/log").and_then(Value::as_str).unwrap_or_default();
        let audit = evident_wire::json::parse(log.as_bytes())
            .map_err(|err| format!("properties.log of the AKS record is not a JSON audit event: {err}"))?;
        let cluster = event::str_at(record, "/resourceId")
            .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
            .map(str::to_lowercase);
        let category = event::str_at(record, "/category").unwrap_or_default().to_owned();
        return Ok((Cow::Owned(audit), cluster, vec![("aks_category", category)]));
    }
    if is_gke(record) {
        let cluster = event::str_at(record, "/resource/labels/cluster_name").map(str::to_owned);
        let mut extra = Vec::new();
        for (key, pointer) in
            [("gke_method", "/protoPayload/methodName"), ("gke_project", "/resource/labels/project_id")]
        {
            if let Some(value) = event::str_at(record, pointer) {
                extra.push((key, value.to_owned()));
            }
        }
        return Ok((Cow::Owned(gke_audit_event(record)?), cluster, extra));
    }
    if !is_audit_event(record) {
        return Err(
            "not a Kubernetes audit event (apiVersion audit.k8s.io/v1, kind Event), nor a GKE or AKS \
                    audit record"
                .into(),
        );
    }
    Ok((Cow::Borrowed(record), None, Vec::new()))
}

/// A GKE Cloud Logging entry as the audit event the API server logged.
fn gke_audit_event(record: &Value) -> Result<Value, String> {
    let payload = &record["protoPayload"];
    let method =
        event::str_at(payload, "/methodName").ok_or("the GKE audit entry has no protoPayload.methodName")?;
    let verb = method.rsplit('.').next().unwrap_or(method);
    let principal = event::str_at(payload, "/authenticationInfo/principalEmail")
        .ok_or("the GKE audit entry has no protoPayload.authenticationInfo.principalEmail")?;
    let time = event::str_at(record, "/timestamp").ok_or("the GKE audit entry has no timestamp")?;
    // The HTTP status when the entry gives it, else the google.rpc code of `status`.
    let code = payload
        .pointer("/responseStatus/code")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| http_code(payload.pointer("/status/code").and_then(Value::as_i64).unwrap_or(0)));
    let mut audit = json!({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Event",
        "auditID": event::str_at(record, "/operation/id").or_else(|| event::str_at(record, "/insertId")),
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": principal},
        "requestReceivedTimestamp": time,
        "sourceIPs": event::str_at(payload, "/requestMetadata/callerIp").map(|ip| vec![ip]),
        "userAgent": event::str_at(payload, "/requestMetadata/callerSuppliedUserAgent"),
        "responseStatus": {
            "code": code,
            "message": event::str_at(payload, "/status/message"),
        },
        "annotations": record.get("labels").filter(|labels| labels.is_object()),
    });
    match event::str_at(payload, "/resourceName").and_then(object_ref) {
        Some(object) => audit["objectRef"] = object,
        None => audit["requestURI"] = json!(event::str_at(payload, "/resourceName").unwrap_or("/")),
    }
    event::prune(&mut audit);
    Ok(audit)
}

/// The HTTP status of a `google.rpc.Code`.
fn http_code(code: i64) -> i64 {
    match code {
        0 => 200,
        3 | 9 | 11 => 400,
        16 => 401,
        7 => 403,
        5 => 404,
        6 | 10 => 409,
        8 => 429,
        1 => 499,
        12 => 501,
        14 => 503,
        4 => 504,
        _ => 500,
    }
}

/// The object reference a GKE `resourceName` spells:
/// `<group>/<version>/[namespaces/<namespace>/]<resource>[/<name>[/<subresource>]]`.
fn object_ref(resource_name: &str) -> Option<Value> {
    let parts: Vec<&str> = resource_name.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        [group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        _ => (None, rest),
    };
    let mut object = json!({
        "apiGroup": (group != "core").then_some(group),
        "apiVersion": version,
        "resource": rest[0],
        "namespace": namespace,
        "name": rest.get(1),
        "subresource": rest.get(2),
    });
    event::prune(&mut object);
    Some(object)
}

/// Whether a Kubernetes user name is a system identity rather than a person.
fn is_system(username: &str) -> bool {
    username.starts_with("system:")
}

/// The event of a (bare) audit event.
fn audit_event(record: &Value, cluster: &str, keys: &Pseudonyms) -> Result<Value, String> {
    let required = |name: &str| {
        event::str_at(record, &format!("/{name}")).ok_or_else(|| format!("the audit event has no {name}"))
    };
    let audit_id = required("auditID")?;
    let stage = event::str_at(record, "/stage");
    let verb = required("verb")?;
    let username = event::str_at(record, "/user/username").ok_or("the audit event has no user.username")?;
    let time = ["/requestReceivedTimestamp", "/timestamp", "/stageTimestamp", "/metadata/creationTimestamp"]
        .iter()
        .find_map(|pointer| event::str_at(record, pointer))
        .ok_or("the audit event has no requestReceivedTimestamp (nor timestamp or stageTimestamp)")?;
    let time = event::rfc3339(time)
        .ok_or_else(|| format!("the audit event's time {time:?} is not an RFC 3339 time"))?;

    let object = record.get("objectRef").filter(|object| event::str_at(object, "/resource").is_some());
    let resource = object.and_then(|object| event::str_at(object, "/resource"));
    let subresource = object.and_then(|object| event::str_at(object, "/subresource"));
    let event_type = [Some(resource.unwrap_or("nonresource")), subresource, Some(verb)]
        .into_iter()
        .flatten()
        .fold("k8s".to_owned(), |event_type, part| format!("{event_type}.{}", event::type_segment(part)));
    let action = action(verb, resource, subresource);
    let impersonated = event::str_at(record, "/impersonatedUser/username");
    let people: Vec<&str> =
        [Some(username), impersonated].into_iter().flatten().filter(|u| !is_system(u)).collect();
    let (outcome, reason) = outcome_and_reason(record, stage, keys, &people);
    let target = match object {
        Some(object) => object_target(object),
        None => {
            let uri = event::str_at(record, "/requestURI").unwrap_or("/");
            event::target("nonresource", uri.split('?').next().unwrap_or(uri))
        }
    };
    let id = match stage {
        Some(stage) => format!("{audit_id}/{stage}"),
        None => audit_id.to_owned(),
    };
    let mut event = json!({
        "id": event::bounded(&id, 128),
        "source": event::bounded(&format!("//k8s/{}", event::source_segment(cluster)), limit::SOURCE),
        "type": event_type,
        "action": action,
        "time": time,
        "actor": actor(record, username, impersonated, keys),
        "changes": event::changes(event::record_changes(action, outcome, Vec::new(), &target), None),
        "targets": [target],
        "outcome": outcome,
        "reason": reason,
        "origin": event::origin(event::str_at(record, "/sourceIPs/0"), record.get("userAgent"), "kube-apiserver"),
        "correlation": {"request_id": event::bounded(audit_id, limit::REQUEST_ID)},
        "metadata": metadata(record, object, keys, &people),
    });
    event::prune(&mut event);
    Ok(event)
}

/// The outcome, and the reason: why it failed, or the authorizer's justification of a success;
/// people named in either pseudonymised.
fn outcome_and_reason(
    record: &Value,
    stage: Option<&str>,
    keys: &Pseudonyms,
    people: &[&str],
) -> (&'static str, Option<String>) {
    let code = record.pointer("/responseStatus/code").and_then(Value::as_i64);
    let outcome = match (stage, code) {
        (Some("Panic"), _) => "failure",
        (_, Some(code)) if code >= 400 => "failure",
        (_, Some(_)) => "success",
        (_, None) => "unknown",
    };
    if outcome != "failure" {
        let reason = event::text(record.pointer("/annotations/authorization.k8s.io~1reason"), limit::REASON);
        return (outcome, reason.map(|reason| keys.redact(&reason, people)));
    }
    let status_reason = event::str_at(record, "/responseStatus/reason").unwrap_or("");
    let message = event::str_at(record, "/responseStatus/message").unwrap_or("");
    let reason = match (code, stage) {
        (_, Some("Panic")) => format!("the API server panicked while serving the request {message}"),
        (Some(code), _) => format!("{code} {status_reason}").trim_end().to_owned() + ": " + message,
        (None, _) => message.to_owned(),
    };
    (outcome, Some(event::bounded(&keys.redact(reason.trim_end_matches([':', ' ']), people), limit::REASON)))
}

/// The groups at `pointer`, joined by commas.
fn groups(record: &Value, pointer: &str) -> Option<String> {
    record
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|groups| groups.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
}

/// The actor: system identities by name, people by pseudonym (the name sealed as `display`).
fn actor(record: &Value, username: &str, impersonated: Option<&str>, keys: &Pseudonyms) -> Value {
    let person = |name: &str| if is_system(name) { name.to_owned() } else { keys.of(name) };
    let masters = groups(record, "/user/groups")
        .is_some_and(|groups| groups.split(", ").any(|g| g == "system:masters"));
    let actor_type = if username.starts_with("system:serviceaccount:") {
        "service"
    } else if username == "system:anonymous" {
        "anonymous"
    } else if is_system(username) {
        "system"
    } else if masters {
        "admin"
    } else {
        "user"
    };
    let mut actor = json!({
        "id": event::bounded(&person(username), limit::ACTOR_ID),
        "type": actor_type,
        "display": (!is_system(username)).then(|| event::bounded(username, limit::DISPLAY)),
        "on_behalf_of": impersonated.map(|name| event::bounded(&person(name), limit::ACTOR_ID)),
        "session": event::str_at(record, "/user/extra/authentication.kubernetes.io~1credential-id/0")
            .map(|credential| keys.of(credential)),
    });
    event::prune(&mut actor);
    actor
}

fn metadata(record: &Value, object: Option<&Value>, keys: &Pseudonyms, people: &[&str]) -> Option<Value> {
    let mut metadata = Metadata::default();
    for (key, value) in [
        ("stage", record.get("stage")),
        ("level", record.get("level")),
        ("verb", record.get("verb")),
        ("request_uri", record.get("requestURI")),
        ("api_group", object.and_then(|object| object.get("apiGroup"))),
        ("api_version", object.and_then(|object| object.get("apiVersion"))),
        ("subresource", object.and_then(|object| object.get("subresource"))),
        ("response_code", record.pointer("/responseStatus/code")),
        ("stage_timestamp", record.get("stageTimestamp")),
    ] {
        metadata.put_value(key, value);
    }
    for (key, pointer) in
        [("user_groups", "/user/groups"), ("impersonated_groups", "/impersonatedUser/groups")]
    {
        if let Some(groups) = groups(record, pointer) {
            metadata.put(key, &groups);
        }
    }
    let annotations = record.get("annotations").and_then(Value::as_object);
    for (key, value) in
        annotations.into_iter().flatten().filter(|(key, _)| *key != "authorization.k8s.io/reason")
    {
        if let Some(text) = event::text(Some(value), limit::METADATA_VALUE) {
            metadata.put(&format!("annotation.{key}"), &keys.redact(&text, people));
        }
    }
    metadata.into_value()
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
    use super::{action, object_ref};
    use serde_json::json;

    #[test]
    fn gke_resource_names_become_object_references() {
        assert_eq!(
            object_ref("core/v1/namespaces/payments/secrets/db-credentials"),
            Some(
                json!({"apiVersion": "v1", "resource": "secrets", "namespace": "payments", "name": "db-credentials"})
            )
        );
        assert_eq!(
            object_ref("apps/v1/namespaces/payments/deployments/api/scale"),
            Some(
                json!({"apiGroup": "apps", "apiVersion": "v1", "resource": "deployments", "namespace": "payments", "name": "api", "subresource": "scale"})
            )
        );
        assert_eq!(
            object_ref("rbac.authorization.k8s.io/v1/clusterrolebindings/admins"),
            Some(
                json!({"apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1", "resource": "clusterrolebindings", "name": "admins"})
            )
        );
        assert_eq!(object_ref("core/v1"), None);
    }

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
