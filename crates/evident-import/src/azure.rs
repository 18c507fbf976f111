//! The Azure Activity Log, in both documented shapes: events as the REST API and the portal's
//! export give them (`eventDataId`, `eventTimestamp`, `operationName.value`, `status.value`,
//! `caller`, `claims`, ...) and records as diagnostic settings deliver them to a storage account or
//! an event hub (`time`, `resourceId`, `operationName`, `category`, `resultType`, `identity`, ...;
//! NDJSON or `{"records": [...]}`), mapped onto events.
//!
//! | event field | from the Activity Log event |
//! | --- | --- |
//! | `id` | `eventDataId`; diagnostic records have none: `az_` and the keyed hash of the record's canonical JSON ([`Pseudonyms::record_id`]) |
//! | `source` | `//azure/<subscription>` (`subscriptionId`, else from `resourceId`; lowercased, as diagnostic records spell ids in capitals) |
//! | `type` | `azure.<operation>`: `operationName` lowercased, `/` as `.`: `azure.microsoft_compute.virtualmachines.write` |
//! | `action` | from the operation, see [`action`]: `Microsoft.Authorization/roleAssignments/write` → `grant`, `…/delete` → `revoke`; `*/write` → `update` (Azure's write creates or updates); `*/delete` → `delete`; `*/read` → `read`; `*/list*/action` (keys, secrets) → `read`; `*/regenerateKey/action` → `update`; other actions → `other` |
//! | `time` | `eventTimestamp`, else `time` |
//! | `actor.id` | `entra:<oid>` (the object id claim: a directory id, not a name); else the caller: an application id as `entra:app:<id>`, a user name's pseudonym; else `azure` |
//! | `actor.display` (sealed) | the `upn`, `name` or `unique_name` claim, else the caller when it is a user name |
//! | `actor.type` | `authorization.evidence.principalType` `ServicePrincipal`, or an app-only token (`idtyp` `app`, or an `appid` without a user name) → `service`; no caller → `system`; else `user` |
//! | `targets` | `resourceId`: `type` `resourceType.value` (else the provider and type in `resourceId`, e.g. `Microsoft.Compute/virtualMachines`), `id` `resourceId`; else the subscription |
//! | `outcome` | `status.value` or `resultType`: `Succeeded`, `Success` → `success`; `Failed`, `Failure` → `failure`; `Started`, `Accepted`, `Start`, `Accept`, … → `unknown` (one operation writes a record per stage, each with its own id) |
//! | `reason` | failures: `properties.statusMessage` (else `statusCode`, `subStatus.value` or `resultSignature`), names and e-mail addresses pseudonymised |
//! | `changes` (sealed) | successful writes and deletes: the whole resource (`after` or `before` it), as the Activity Log records no property values |
//! | `origin.ip` (sealed) | `httpRequest.clientIpAddress`, else `callerIpAddress` |
//! | `origin.service` | `management.azure.com` |
//! | `correlation` | `correlation_id`: `correlationId`; `request_id`: `httpRequest.clientRequestId`, else `properties.serviceRequestId` |
//! | `metadata` | `category`, `level`, `status`, `sub_status`, `result_signature`, `resource_group`, `resource_provider`, `subscription_id`, `tenant_id`, `location`, `operation_id`, `authorization_action`, `authorization_scope`, `role`, `principal_type`, `status_code`, `duration_ms`, `http_method` |

use serde_json::{Value, json};

use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// Whether a record looks like an Activity Log event (`eventDataId`, or `operationName` and
/// `eventTimestamp`) or a diagnostic record of one (`time`, `resourceId`, `operationName`,
/// `category`).
pub fn looks_like(record: &Value) -> bool {
    let has = |name: &str| record.get(name).is_some();
    (has("operationName") && (has("eventDataId") || has("eventTimestamp")))
        || (has("time") && has("resourceId") && has("operationName") && has("category"))
}

const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const UPN_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";

/// The event for one Activity Log event or record, or why there cannot be one.
pub fn event(record: &Value, keys: &Pseudonyms) -> Result<Value, String> {
    if !record.is_object() {
        return Err("an Activity Log event must be a JSON object".into());
    }
    let operation = event::str_at(record, "/operationName/value")
        .or_else(|| event::str_at(record, "/operationName"))
        .ok_or("not an Activity Log event: no operationName")?;
    let time = event::str_at(record, "/eventTimestamp")
        .or_else(|| event::str_at(record, "/time"))
        .ok_or("not an Activity Log event: no eventTimestamp (or time)")?;
    let time = event::rfc3339(time).ok_or_else(|| format!("the time {time:?} is not an RFC 3339 time"))?;
    let id = match event::str_at(record, "/eventDataId") {
        Some(id) => id.to_owned(),
        None => keys.record_id("az_", record),
    };
    let resource_id = event::str_at(record, "/resourceId");
    let subscription = event::str_at(record, "/subscriptionId")
        .or_else(|| resource_id.and_then(|id| segment_after(id, "subscriptions")))
        .unwrap_or("unknown")
        .to_lowercase();
    let action = action(operation);

    let status = event::str_at(record, "/status/value").or_else(|| event::str_at(record, "/resultType"));
    let outcome = match status.map(str::to_lowercase).as_deref() {
        Some("succeeded" | "success") => "success",
        Some("failed" | "failure") => "failure",
        _ => "unknown",
    };
    let claims = record.get("claims").or_else(|| record.pointer("/identity/claims")).unwrap_or(&Value::Null);
    let (actor, people) = actor(record, claims, keys);
    let reason = (outcome == "failure").then(|| failure_reason(record, keys, &people));

    let target = target(record, resource_id, &subscription);
    let changes = event::changes(event::record_changes(action, outcome, Vec::new(), &target), None);

    let event_type = std::iter::once("azure".to_owned())
        .chain(operation.split('/').map(event::type_segment))
        .collect::<Vec<_>>()
        .join(".");
    let mut event = json!({
        "id": event::bounded(&id, 128),
        "source": event::bounded(&format!("//azure/{}", event::source_segment(&subscription)), limit::SOURCE),
        "type": event_type,
        "action": action,
        "time": time,
        "actor": actor,
        "targets": [target],
        "outcome": outcome,
        "reason": reason,
        "changes": changes,
        "origin": {
            "ip": event::str_at(record, "/httpRequest/clientIpAddress")
                .or_else(|| event::str_at(record, "/callerIpAddress"))
                .and_then(event::ip),
            "service": "management.azure.com",
        },
        "correlation": {
            "correlation_id": event::text(record.get("correlationId"), limit::REQUEST_ID),
            "request_id": event::text(record.pointer("/httpRequest/clientRequestId"), limit::REQUEST_ID)
                .or_else(|| event::text(record.pointer("/properties/serviceRequestId"), limit::REQUEST_ID)),
        },
        "metadata": metadata(record, &subscription),
    });
    event::prune(&mut event);
    Ok(event)
}

/// The resource a `resourceId` names (typed by `resourceType`, else by the id); else the
/// subscription.
fn target(record: &Value, resource_id: Option<&str>, subscription: &str) -> Value {
    let resource_type = event::str_at(record, "/resourceType/value")
        .map(str::to_owned)
        .or_else(|| resource_id.and_then(resource_type));
    match (resource_id, resource_type) {
        (Some(id), Some(resource_type)) => event::target(&resource_type, id),
        (Some(id), None) => event::target("azure.resource", id),
        (None, _) => event::target("azure.subscription", subscription),
    }
}

/// Why an operation failed: `statusMessage` (else `statusCode`, `subStatus`, `resultSignature`),
/// people named in it pseudonymised.
fn failure_reason(record: &Value, keys: &Pseudonyms, people: &[&str]) -> String {
    let reason =
        ["/properties/statusMessage", "/properties/statusCode", "/subStatus/value", "/resultSignature"]
            .iter()
            .find_map(|pointer| event::str_at(record, pointer))
            .unwrap_or("Failed");
    event::bounded(&keys.redact(reason, people), limit::REASON)
}

/// The actor, and the personal values it was named by (for redacting free text).
fn actor<'r>(record: &'r Value, claims: &'r Value, keys: &Pseudonyms) -> (Value, Vec<&'r str>) {
    let claim = |names: &[&str]| names.iter().find_map(|name| claims.get(*name).and_then(Value::as_str));
    let object_id = claim(&[OBJECT_ID_CLAIM, "oid"]);
    let user_name = claim(&[UPN_CLAIM, "upn", "name", "unique_name"]);
    let caller = event::str_at(record, "/caller");
    let caller_is_id = caller.is_some_and(is_guid);
    let id = match (object_id, caller) {
        (Some(oid), _) => format!("entra:{oid}"),
        (None, Some(app)) if caller_is_id => format!("entra:app:{app}"),
        (None, Some(name)) => keys.of(name),
        (None, None) => "azure".to_owned(),
    };
    let display = user_name.or(caller.filter(|_| !caller_is_id));
    let app_only = claim(&["idtyp"]) == Some("app") || (claim(&["appid"]).is_some() && user_name.is_none());
    let service_principal = event::str_at(record, "/authorization/evidence/principalType")
        .or_else(|| event::str_at(record, "/identity/authorization/evidence/principalType"))
        == Some("ServicePrincipal");
    let actor_type = if service_principal || app_only || (caller_is_id && user_name.is_none()) {
        "service"
    } else if caller.is_none() && object_id.is_none() {
        "system"
    } else {
        "user"
    };
    let mut actor = json!({
        "id": event::bounded(&id, limit::ACTOR_ID),
        "type": actor_type,
        "display": display.map(|name| event::bounded(name, limit::DISPLAY)),
    });
    event::prune(&mut actor);
    let people = [user_name, caller.filter(|_| !caller_is_id), claim(&["name"]), claim(&["unique_name"])]
        .into_iter()
        .flatten()
        .collect();
    (actor, people)
}

fn metadata(record: &Value, subscription: &str) -> Option<Value> {
    let mut metadata = Metadata::default();
    for (key, pointers) in [
        ("category", &["/category/value", "/category"][..]),
        ("level", &["/level"]),
        ("status", &["/status/value", "/resultType"]),
        ("sub_status", &["/subStatus/value"]),
        ("result_signature", &["/resultSignature"]),
        ("resource_group", &["/resourceGroupName"]),
        ("resource_provider", &["/resourceProviderName/value"]),
        ("tenant_id", &["/tenantId"]),
        ("location", &["/location"]),
        ("operation_id", &["/operationId"]),
        ("authorization_action", &["/authorization/action", "/identity/authorization/action"]),
        ("authorization_scope", &["/authorization/scope", "/identity/authorization/scope"]),
        ("role", &["/authorization/evidence/role", "/identity/authorization/evidence/role"]),
        (
            "principal_type",
            &["/authorization/evidence/principalType", "/identity/authorization/evidence/principalType"],
        ),
        ("status_code", &["/properties/statusCode"]),
        ("duration_ms", &["/durationMs"]),
        ("http_method", &["/httpRequest/method"]),
    ] {
        metadata.put_value(
            key,
            pointers.iter().find_map(|pointer| record.pointer(pointer).filter(|v| !v.is_null())),
        );
    }
    metadata.put("subscription_id", subscription);
    metadata.into_value()
}

/// `8-4-4-4-12` hex digits.
fn is_guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|part| part.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|part| part.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The path segment after `name` (case-insensitive) in a resource id.
fn segment_after<'t>(id: &'t str, name: &str) -> Option<&'t str> {
    let mut segments = id.split('/');
    segments.by_ref().find(|segment| segment.eq_ignore_ascii_case(name))?;
    segments.next().filter(|segment| !segment.is_empty())
}

/// The resource type a resource id names: `Microsoft.Compute/virtualMachines` for
/// `/subscriptions/…/providers/Microsoft.Compute/virtualMachines/vm-1` (nested types joined).
fn resource_type(id: &str) -> Option<String> {
    let (_, rest) = id.rsplit_once("/providers/").or_else(|| id.rsplit_once("/PROVIDERS/"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let provider = segments.first()?;
    let types: Vec<&str> = segments[1..].iter().step_by(2).copied().collect();
    (!types.is_empty()).then(|| format!("{provider}/{}", types.join("/")))
}

/// The schema action of an Azure operation (`<provider>/<type>/<verb>`).
pub fn action(operation: &str) -> &'static str {
    let lower = operation.to_lowercase();
    let segments: Vec<&str> = lower.split('/').collect();
    let verb = segments.last().copied().unwrap_or("");
    let role_assignment = lower.starts_with("microsoft.authorization/roleassignments/");
    match verb {
        "write" if role_assignment => "grant",
        "delete" if role_assignment => "revoke",
        "write" => "update",
        "delete" => "delete",
        "read" => "read",
        "action" => match segments.len().checked_sub(2).map(|at| segments[at]) {
            Some(name) if name.starts_with("list") => "read",
            Some(name) if name.starts_with("regenerate") => "update",
            _ => "other",
        },
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::{action, resource_type};

    #[test]
    fn actions_follow_the_operation() {
        for (operation, expected) in [
            ("Microsoft.Compute/virtualMachines/write", "update"),
            ("Microsoft.Compute/virtualMachines/delete", "delete"),
            ("Microsoft.Authorization/roleAssignments/write", "grant"),
            ("Microsoft.Authorization/roleAssignments/delete", "revoke"),
            ("Microsoft.Storage/storageAccounts/listKeys/action", "read"),
            ("Microsoft.Storage/storageAccounts/regenerateKey/action", "update"),
            ("Microsoft.Compute/virtualMachines/restart/action", "other"),
            ("Microsoft.Resources/subscriptions/resourceGroups/read", "read"),
        ] {
            assert_eq!(action(operation), expected, "{operation}");
        }
    }

    #[test]
    fn resource_types_come_from_resource_ids() {
        assert_eq!(
            resource_type(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
            ),
            Some("Microsoft.Compute/virtualMachines".into())
        );
        assert_eq!(
            resource_type(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Sql/servers/db1/databases/orders"
            ),
            Some("Microsoft.Sql/servers/databases".into())
        );
        assert_eq!(resource_type("/subscriptions/s/resourceGroups/rg"), None);
    }
}
