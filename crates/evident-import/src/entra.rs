//! Microsoft Entra ID sign-in logs: `signIn` resources as Microsoft Graph gives them
//! (`GET /auditLogs/signIns`: `{"value": [...]}`, a JSON array, or NDJSON) and the records
//! diagnostic settings deliver (`category` `SignInLogs`, `NonInteractiveUserSignInLogs`,
//! `ServicePrincipalSignInLogs` or `ManagedIdentitySignInLogs`, the sign-in in `properties`),
//! mapped onto events.
//!
//! | event field | from the sign-in |
//! | --- | --- |
//! | `id` | `id` (the sign-in's id; a diagnostic record's `properties.id`) |
//! | `source` | `//login.microsoftonline.com/<tenant>` (`tenantId`, else `resourceTenantId`, else `homeTenantId`; without one `//login.microsoftonline.com`) |
//! | `type` | `entra.signin` for interactive sign-ins; `entra.signin.noninteractive`, `entra.signin.serviceprincipal`, `entra.signin.managedidentity` by the record's category (or `isInteractive` false, or a `servicePrincipalId` without a user) |
//! | `action` | `login` |
//! | `time` | `createdDateTime` (a diagnostic record's `time` when its sign-in has none) |
//! | `actor.id` | `entra:<userId>` (a directory object id, not a name); service principals: `entra:sp:<servicePrincipalId>` |
//! | `actor.display` (sealed) | `userPrincipalName`, else `userDisplayName`; service principals: `servicePrincipalName` |
//! | `actor.type` | `user`; service principal and managed identity sign-ins → `service` |
//! | `actor.auth` | `method`: `clientAppUsed` (e.g. `Browser`, `Mobile Apps and Desktop clients`); `mfa`: `authenticationRequirement` is `multiFactorAuthentication` and the sign-in succeeded |
//! | `actor.session` | the pseudonym of `sessionId` (newer logs) |
//! | `targets` | the application signed in to: `{"type": "entra.application", "id": appId}`; and the resource (API) asked for: `{"type": "entra.resource", "id": resourceId}` |
//! | `outcome` | `status.errorCode` 0 → `success`, any other code → `failure` (interrupted sign-ins, such as an MFA prompt, included) |
//! | `reason` | failures: `<errorCode>: <failureReason>` (names and e-mail addresses pseudonymised) |
//! | `origin.ip` (sealed) | `ipAddress` (else the record's `callerIpAddress`) |
//! | `origin.user_agent` (sealed) | `userAgent` (beta API) |
//! | `origin.service` | `login.microsoftonline.com` |
//! | `correlation.correlation_id` | `correlationId` |
//! | `metadata` | `app_display_name`, `resource_display_name`, `client_app_used`, `conditional_access_status`, `is_interactive`, `authentication_requirement`, `risk_level_aggregated`, `risk_level_during_sign_in`, `risk_state`, `risk_detail`, `country` (`location.countryOrRegion`), `device_os`, `device_browser`, `device_is_compliant`, `device_is_managed`, `device_trust_type`, `token_issuer_type`, `category`; the city, the coordinates and the device's name are not kept |

use serde_json::{Value, json};

use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// Categories of diagnostic records that hold sign-ins, and the event type of each.
const CATEGORIES: &[(&str, &str)] = &[
    ("SignInLogs", "entra.signin"),
    ("NonInteractiveUserSignInLogs", "entra.signin.noninteractive"),
    ("ServicePrincipalSignInLogs", "entra.signin.serviceprincipal"),
    ("ManagedIdentitySignInLogs", "entra.signin.managedidentity"),
];

/// Whether a record looks like a sign-in (`createdDateTime` and `userPrincipalName`, `userId` or
/// `appId`, and `status`) or a diagnostic record of one.
pub fn looks_like(record: &Value) -> bool {
    let has = |name: &str| record.get(name).is_some();
    let diagnostic = event::str_at(record, "/category")
        .is_some_and(|category| CATEGORIES.iter().any(|(name, _)| *name == category))
        && record.get("properties").is_some_and(Value::is_object);
    diagnostic
        || (has("createdDateTime")
            && has("status")
            && (has("userPrincipalName") || has("userId") || has("appId")))
}

/// The event for one sign-in, or why there cannot be one.
pub fn event(record: &Value, keys: &Pseudonyms) -> Result<Value, String> {
    if !record.is_object() {
        return Err("an Entra ID sign-in must be a JSON object".into());
    }
    let category = event::str_at(record, "/category");
    let sign_in = match record.get("properties") {
        Some(properties) if category.is_some() => properties,
        _ => record,
    };
    let id = event::str_at(sign_in, "/id").ok_or("not an Entra ID sign-in: no id")?;
    let time = event::str_at(sign_in, "/createdDateTime")
        .or_else(|| event::str_at(record, "/time"))
        .ok_or("not an Entra ID sign-in: no createdDateTime")?;
    let time =
        event::rfc3339(time).ok_or_else(|| format!("createdDateTime {time:?} is not an RFC 3339 time"))?;

    let principal_only = event::str_at(sign_in, "/userId").is_none()
        && event::str_at(sign_in, "/servicePrincipalId").is_some();
    let event_type = match category.and_then(|name| CATEGORIES.iter().find(|(known, _)| *known == name)) {
        Some((_, event_type)) => *event_type,
        None if principal_only => "entra.signin.serviceprincipal",
        None if sign_in.get("isInteractive") == Some(&Value::Bool(false)) => "entra.signin.noninteractive",
        None => "entra.signin",
    };
    let people: Vec<&str> = ["/userPrincipalName", "/userDisplayName"]
        .iter()
        .filter_map(|pointer| event::str_at(sign_in, pointer))
        .collect();

    let code = sign_in.pointer("/status/errorCode").and_then(Value::as_i64).unwrap_or(0);
    let outcome = if code == 0 { "success" } else { "failure" };
    let reason = (outcome == "failure").then(|| {
        let why = event::str_at(sign_in, "/status/failureReason").unwrap_or("sign-in failed");
        event::bounded(&keys.redact(&format!("{code}: {why}"), &people), limit::REASON)
    });
    let mfa = (outcome == "success"
        && event::str_at(sign_in, "/authenticationRequirement") == Some("multiFactorAuthentication"))
    .then_some(true);

    let targets = targets(record, sign_in);
    let source = match tenant(record, sign_in) {
        Some(tenant) => format!("//login.microsoftonline.com/{}", event::source_segment(tenant)),
        None => "//login.microsoftonline.com".to_owned(),
    };

    let mut event = json!({
        "id": event::bounded(id, 128),
        "source": event::bounded(&source, limit::SOURCE),
        "type": event_type,
        "action": "login",
        "time": time,
        "actor": actor(sign_in, event_type, mfa, keys)?,
        "targets": targets,
        "outcome": outcome,
        "reason": reason,
        "origin": event::origin(
            event::str_at(sign_in, "/ipAddress").or_else(|| event::str_at(record, "/callerIpAddress")),
            sign_in.get("userAgent"),
            "login.microsoftonline.com"
        ),
        "correlation": {"correlation_id": event::text(sign_in.get("correlationId"), limit::REQUEST_ID)},
        "metadata": metadata(sign_in, category),
    });
    event::prune(&mut event);
    Ok(event)
}

/// The application signed in to and the resource asked for; else the tenant.
fn targets(record: &Value, sign_in: &Value) -> Vec<Value> {
    let mut targets = Vec::new();
    if let Some(app) = event::str_at(sign_in, "/appId") {
        event::push_target(&mut targets, event::target("entra.application", app));
    }
    if let Some(resource) = event::str_at(sign_in, "/resourceId") {
        event::push_target(&mut targets, event::target("entra.resource", resource));
    }
    if targets.is_empty() {
        event::push_target(
            &mut targets,
            event::target("entra.tenant", tenant(record, sign_in).unwrap_or("unknown")),
        );
    }
    targets
}

/// Who signed in: a user by directory id, or a service principal.
fn actor(sign_in: &Value, event_type: &str, mfa: Option<bool>, keys: &Pseudonyms) -> Result<Value, String> {
    let user_id = event::str_at(sign_in, "/userId");
    let principal_id = event::str_at(sign_in, "/servicePrincipalId").filter(|_| user_id.is_none());
    let service = event_type.ends_with("serviceprincipal") || event_type.ends_with("managedidentity");
    let (actor_id, display) = match (user_id, principal_id) {
        (Some(user), _) => (
            format!("entra:{user}"),
            event::str_at(sign_in, "/userPrincipalName")
                .or_else(|| event::str_at(sign_in, "/userDisplayName")),
        ),
        (None, Some(principal)) => {
            (format!("entra:sp:{principal}"), event::str_at(sign_in, "/servicePrincipalName"))
        }
        (None, None) => return Err("the sign-in names no user (userId) and no service principal".into()),
    };
    Ok(json!({
        "id": event::bounded(&actor_id, limit::ACTOR_ID),
        "type": if service { "service" } else { "user" },
        "display": display.map(|name| event::bounded(name, limit::DISPLAY)),
        "session": event::str_at(sign_in, "/sessionId").map(|session| keys.of(session)),
        "auth": {
            "method": event::text(sign_in.get("clientAppUsed"), limit::AUTH_METHOD),
            "mfa": mfa,
        },
    }))
}

fn tenant<'r>(record: &'r Value, sign_in: &'r Value) -> Option<&'r str> {
    ["/tenantId", "/resourceTenantId", "/homeTenantId"]
        .iter()
        .find_map(|pointer| event::str_at(sign_in, pointer).or_else(|| event::str_at(record, pointer)))
}

fn metadata(sign_in: &Value, category: Option<&str>) -> Option<Value> {
    let mut metadata = Metadata::default();
    for (key, pointer) in [
        ("app_display_name", "/appDisplayName"),
        ("resource_display_name", "/resourceDisplayName"),
        ("client_app_used", "/clientAppUsed"),
        ("conditional_access_status", "/conditionalAccessStatus"),
        ("is_interactive", "/isInteractive"),
        ("authentication_requirement", "/authenticationRequirement"),
        ("risk_level_aggregated", "/riskLevelAggregated"),
        ("risk_level_during_sign_in", "/riskLevelDuringSignIn"),
        ("risk_state", "/riskState"),
        ("risk_detail", "/riskDetail"),
        ("country", "/location/countryOrRegion"),
        ("device_os", "/deviceDetail/operatingSystem"),
        ("device_browser", "/deviceDetail/browser"),
        ("device_is_compliant", "/deviceDetail/isCompliant"),
        ("device_is_managed", "/deviceDetail/isManaged"),
        ("device_trust_type", "/deviceDetail/trustType"),
        ("token_issuer_type", "/tokenIssuerType"),
    ] {
        metadata.put_value(key, sign_in.pointer(pointer));
    }
    if let Some(category) = category {
        metadata.put("category", category);
    }
    metadata.into_value()
}
