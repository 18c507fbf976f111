//! AWS CloudTrail records (a `{"Records": [...]}` log file as delivered to S3, gzip-compressed or
//! not, or NDJSON of records, e.g. from CloudTrail Lake or a log pipeline), CloudTrail Insights
//! records, and digest files (recognised and skipped: they list log files and their hashes, they
//! hold no events), mapped onto events.
//!
//! | event field | from the CloudTrail record |
//! | --- | --- |
//! | `id` | `eventID` (stable: running a file again stores nothing twice) |
//! | `source` | `//aws.amazon.com/cloudtrail/<recipientAccountId>/<awsRegion>` (account from `userIdentity.accountId` when there is no recipient) |
//! | `type` | `aws.<service>.<eventname>`: the service is `eventSource` before its first dot (`iam.amazonaws.com` gives `iam`), the name lowercased: `aws.iam.createuser`; Insights: `aws.cloudtrail.insight.<insighttype>` |
//! | `action` | from `eventName`, see [`action`]: `ConsoleLogin`, `AssumeRole*`, `GetSessionToken`, `GetFederationToken`, `SwitchRole` → `login`; `ExitRole` → `logout`; `Get*` `Describe*` `Head*` `BatchGet*` → `read`; `List*` → `list`; `Lookup*` `Search*` `Query*` `Scan*` `Select*` `Filter*` → `search`; `Create*` `Run*` `Import*` `Register*` `Allocate*` `Copy*` → `create`; `Delete*` `Terminate*` `Deregister*` `Release*` → `delete`; `Update*` `Put*` `Modify*` `Set*` `Change*` `Edit*` `Replace*` `Reset*` `Tag*` `Untag*` `Add*` `Remove*` → `update`; `Attach*` `Authorize*` `Grant*` `Add*Permission` `Add*ToGroup` → `grant`; `Detach*` `Revoke*` `Remove*Permission` `Remove*FromGroup` → `revoke`; `Enable*` `Disable*` → `configure`; `Export*` `Download*` → `export`; anything else (and Insights) → `other` |
//! | `time` | `eventTime` |
//! | `actor.id` | `userIdentity.arn` with a person's name in it (an IAM user's, an assumed-role or federated session's name unless it is machine-made, like an instance id) replaced by its pseudonym: `arn:aws:iam::1:user/ps_…`; without an ARN: `principalId` (the same way), `invokedBy` (AWS services), `aws:identitystore:<onBehalfOf.userId>` (Identity Center), else `<accountId>:<type>`; Insights: `cloudtrail.amazonaws.com` |
//! | `actor.type` | a console sign-in (`ConsoleLogin`, `eventType` `AwsConsoleSignIn`) → `user` (`admin` for the root user), whoever signs in; else `userIdentity.type`: `Root` → `admin`; `IAMUser`, `FederatedUser`, `SAMLUser`, `WebIdentityUser`, `IdentityCenterUser`, `Directory` → `user`; `AssumedRole`, `Role` → `user` when the session name holds an `@` (SSO sessions), else `service`; `AWSService` → `service`; `Unknown` → `anonymous`; Insights → `system` |
//! | `actor.display` (sealed) | `userIdentity.userName`, else the session name |
//! | `actor.on_behalf_of` | `userIdentity.sessionContext.sessionIssuer.arn` (a person's name in it pseudonymised): the role an assumed-role session acts as, or the user a federated session was issued by |
//! | `actor.session` | the pseudonym of `userIdentity.accessKeyId` (an access key id is a person's credential) |
//! | `actor.auth` | `method`: `console` for console sign-ins, `access_key` for `AKIA…` keys, `session_credentials` for `ASIA…` keys; `mfa`: `sessionContext.attributes.mfaAuthenticated` or `additionalEventData.MFAUsed` |
//! | `targets` | `resources[]` (`type`, `ARN`, names pseudonymised, the name as `display`); else the resources named in `requestParameters` (`userName` → `AWS::IAM::User` `arn:aws:iam::<account>:user/ps_…` with the name as `display`, `roleName`, `groupName`, `policyArn`, `bucketName` (+ `key` → `AWS::S3::Object`), `instanceId` / `instancesSet.items[].instanceId` of the request or the response, `functionName`, `tableName`, `keyId`, `secretId`, each of `secretIdList`, …, see `REQUEST_TARGETS`); else the service: `{"type": "aws.service", "id": eventSource}`; Insights: `{"type": "aws.api", "id": "<eventSource>:<eventName>"}` |
//! | `outcome` | `failure` when `errorCode` is set or `responseElements.ConsoleLogin` is `Failure`, else `success` |
//! | `reason` | failures: `<errorCode>: <errorMessage>`, names, ARNs and e-mail addresses in the message pseudonymised |
//! | `changes` (sealed) | successful create/update: one change per `requestParameters` member (`{"field": "/userName", "after": "alice"}`); successful delete: `{"field": "", "before": <first target>, "after": null}`; every other event with `requestParameters`: `{"field": "/request", "after": requestParameters}`, so tags, e-mail addresses and session names in them are sealed, never dropped or in clear; `responseElements` are not copied (but instance ids) |
//! | `origin.ip` (sealed) | `sourceIPAddress` when it is an address (for calls made by AWS services it is the service's name, kept as metadata `source_ip_address`) |
//! | `origin.user_agent` (sealed) | `userAgent` |
//! | `origin.host` | `tlsDetails.clientProvidedHostHeader` |
//! | `origin.service` | `eventSource` |
//! | `correlation.request_id` | `requestID` |
//! | `metadata` | `event_type`, `event_category`, `event_version`, `aws_region`, `recipient_account_id`, `account_id`, `user_identity_type`, `read_only`, `management_event`, `error_code`, `shared_event_id`, `invoked_by`, `session_issuer` (pseudonymised like `on_behalf_of`), `source_identity` (pseudonym), `vpc_endpoint_id`, `api_version`, `tls_version`, `cipher_suite`, `source_ip_address`, `session_created`, `mfa_used`; Insights: `insight_state`, `insight_type`, `insight_event_source`, `insight_event_name`, `insight_error_code`, `baseline_average`, `insight_average`, `insight_duration`, `baseline_duration` (attributions, which name callers, are left out) |
//!
//! A digest file (`digestStartTime`, `logFiles`, ...) is skipped with one line saying what it is.

use serde_json::{Map, Value, json};

use crate::Mapped;
use crate::event::{self, Metadata, limit};
use crate::pseudonym::Pseudonyms;

/// Whether a record looks like a CloudTrail record (`eventVersion` and `eventSource`), an
/// Insights record (`eventVersion` and `insightDetails`) or a digest file.
pub fn looks_like(record: &Value) -> bool {
    (record.get("eventVersion").is_some()
        && (record.get("eventSource").is_some() || record.get("insightDetails").is_some()))
        || is_digest(record)
}

/// A digest file: it lists the log files of an hour and their hashes, signed.
fn is_digest(record: &Value) -> bool {
    record.get("digestStartTime").is_some() && record.get("logFiles").is_some()
}

/// The event for one CloudTrail record, why there cannot be one, or why a digest is skipped.
pub fn event(record: &Value, keys: &Pseudonyms) -> Mapped {
    if is_digest(record) {
        let account = event::str_at(record, "/awsAccountId").unwrap_or("?");
        let end = event::str_at(record, "/digestEndTime").unwrap_or("?");
        return Mapped::Skipped(format!(
            "a CloudTrail digest file (account {account}, up to {end}): it lists log files and their hashes, \
             not events; import the log files it lists (`aws cloudtrail validate-logs` checks them against it)"
        ));
    }
    let result = if record.get("insightDetails").is_some() && record.get("eventSource").is_none() {
        insight_event(record)
    } else {
        api_event(record, keys)
    };
    result.into()
}

/// The parts every record has: id, source and time.
fn common(record: &Value) -> Result<(String, String, String), String> {
    if !record.is_object() {
        return Err("a CloudTrail record must be a JSON object".into());
    }
    let id = event::str_at(record, "/eventID").ok_or("not a CloudTrail record: no eventID")?;
    let time = event::str_at(record, "/eventTime").ok_or("not a CloudTrail record: no eventTime")?;
    let time = event::rfc3339(time).ok_or("eventTime is not an RFC 3339 time")?;
    let account = event::str_at(record, "/recipientAccountId")
        .or_else(|| event::str_at(record, "/userIdentity/accountId"))
        .unwrap_or("unknown");
    let region = event::str_at(record, "/awsRegion").unwrap_or("global");
    let source = event::bounded(
        &format!(
            "//aws.amazon.com/cloudtrail/{}/{}",
            event::source_segment(account),
            event::source_segment(region)
        ),
        limit::SOURCE,
    );
    Ok((id.to_owned(), source, time))
}

/// An API call (management or data event), a console sign-in, or an AWS service event.
fn api_event(record: &Value, keys: &Pseudonyms) -> Result<Value, String> {
    let (id, source, time) = common(record)?;
    let required = |name: &str| {
        event::str_at(record, &format!("/{name}"))
            .ok_or_else(|| format!("not a CloudTrail record: no {name}"))
    };
    let event_source = required("eventSource")?;
    let event_name = required("eventName")?;
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);
    let service = event_source.split('.').next().unwrap_or(event_source);
    let event_type = format!("aws.{}.{}", event::type_segment(service), event::type_segment(event_name));
    let action = action(event_name);
    let actor = actor(record, identity, keys);
    let account = event::str_at(record, "/recipientAccountId")
        .or_else(|| event::str_at(identity, "/accountId"))
        .unwrap_or("unknown");
    let targets = targets(record, event_source, account, keys);

    let (outcome, reason) = outcome_and_reason(record, event_name, &actor, &targets, keys);
    let parameters = record.get("requestParameters").filter(|value| value.is_object());
    let fields = event::after_fields(parameters.and_then(Value::as_object));
    let record_changes = event::record_changes(action, outcome, fields.clone(), &targets[0]);
    let parameters_in_record = !fields.is_empty() && record_changes == fields;
    let request = if parameters_in_record { None } else { parameters.and_then(event::request_change) };
    let changes = event::changes(record_changes, request);

    let source_ip = event::str_at(record, "/sourceIPAddress");
    let origin = json!({
        "ip": source_ip.and_then(event::ip),
        "user_agent": event::text(record.get("userAgent"), limit::USER_AGENT),
        "host": event::text(record.pointer("/tlsDetails/clientProvidedHostHeader"), limit::HOST),
        "service": event::bounded(event_source, limit::SERVICE),
    });

    let mut event = json!({
        "id": id,
        "source": source,
        "type": event_type,
        "action": action,
        "time": time,
        "actor": actor,
        "targets": targets,
        "outcome": outcome,
        "reason": reason,
        "changes": changes,
        "origin": origin,
        "correlation": {"request_id": event::text(record.get("requestID"), limit::REQUEST_ID)},
        "metadata": metadata(record, source_ip, keys),
    });
    event::prune(&mut event);
    Ok(event)
}

/// The outcome, and for a failure why: `<errorCode>: <errorMessage>`, with the names, ARNs and
/// e-mail addresses in the message pseudonymised.
fn outcome_and_reason(
    record: &Value,
    event_name: &str,
    actor: &Value,
    targets: &[Value],
    keys: &Pseudonyms,
) -> (&'static str, Option<String>) {
    let error_code = event::str_at(record, "/errorCode");
    let error_message = event::str_at(record, "/errorMessage").map(|message| {
        let names = std::iter::once(actor).chain(targets).filter_map(|named| named["display"].as_str());
        keys.redact(&redact_arns(message, keys), &names.collect::<Vec<_>>())
    });
    let console_failure = event::str_at(record, "/responseElements/ConsoleLogin") == Some("Failure");
    let failed = error_code.is_some() || console_failure;
    let outcome = if failed { "failure" } else { "success" };
    let reason = failed.then(|| {
        let reason = match (error_code, error_message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            (None, Some(message)) => message,
            (None, None) => format!("{event_name}: Failure"),
        };
        event::bounded(&reason, limit::REASON)
    });

    (outcome, reason)
}

/// Metadata every CloudTrail record carries, API call or Insights record alike.
const RECORD_METADATA: [(&str, &str); 5] = [
    ("event_type", "/eventType"),
    ("event_category", "/eventCategory"),
    ("event_version", "/eventVersion"),
    ("aws_region", "/awsRegion"),
    ("recipient_account_id", "/recipientAccountId"),
];

/// The metadata of an API call (none of it personal: names in it are pseudonymised).
fn metadata(record: &Value, source_ip: Option<&str>, keys: &Pseudonyms) -> Option<Value> {
    let mut metadata = Metadata::default();
    for (key, pointer) in RECORD_METADATA.into_iter().chain([
        ("account_id", "/userIdentity/accountId"),
        ("user_identity_type", "/userIdentity/type"),
        ("read_only", "/readOnly"),
        ("management_event", "/managementEvent"),
        ("error_code", "/errorCode"),
        ("shared_event_id", "/sharedEventID"),
        ("invoked_by", "/userIdentity/invokedBy"),
        ("vpc_endpoint_id", "/vpcEndpointId"),
        ("api_version", "/apiVersion"),
        ("tls_version", "/tlsDetails/tlsVersion"),
        ("cipher_suite", "/tlsDetails/cipherSuite"),
        ("session_created", "/userIdentity/sessionContext/attributes/creationDate"),
        ("mfa_used", "/additionalEventData/MFAUsed"),
    ]) {
        metadata.put_value(key, record.pointer(pointer));
    }
    if let Some(issuer) = event::str_at(record, "/userIdentity/sessionContext/sessionIssuer/arn") {
        metadata.put("session_issuer", &pseudonymise_arn(issuer, keys).0);
    }
    if let Some(source_identity) = event::str_at(record, "/userIdentity/sessionContext/sourceIdentity") {
        metadata.put("source_identity", &keys.of(source_identity));
    }
    if let Some(text) = source_ip.filter(|text| event::ip(text).is_none()) {
        metadata.put("source_ip_address", text);
    }
    metadata.into_value()
}

/// An Insights record: CloudTrail noticed an unusual rate of calls (or errors) of one API.
fn insight_event(record: &Value) -> Result<Value, String> {
    let (id, source, time) = common(record)?;
    let details = &record["insightDetails"];
    let api_source = event::str_at(details, "/eventSource").unwrap_or("unknown");
    let api_name = event::str_at(details, "/eventName").unwrap_or("unknown");
    let insight_type = event::str_at(details, "/insightType").unwrap_or("insight");
    let mut metadata = Metadata::default();
    for (key, pointer) in RECORD_METADATA.into_iter().chain([
        ("shared_event_id", "/sharedEventID"),
        ("insight_state", "/insightDetails/state"),
        ("insight_type", "/insightDetails/insightType"),
        ("insight_event_source", "/insightDetails/eventSource"),
        ("insight_event_name", "/insightDetails/eventName"),
        ("insight_error_code", "/insightDetails/errorCode"),
        ("baseline_average", "/insightDetails/insightContext/statistics/baseline/average"),
        ("insight_average", "/insightDetails/insightContext/statistics/insight/average"),
        ("insight_duration", "/insightDetails/insightContext/statistics/insightDuration"),
        ("baseline_duration", "/insightDetails/insightContext/statistics/baselineDuration"),
    ]) {
        metadata.put_value(key, record.pointer(pointer));
    }
    let mut event = json!({
        "id": id,
        "source": source,
        "type": format!("aws.cloudtrail.insight.{}", event::type_segment(insight_type)),
        "action": "other",
        "time": time,
        "actor": {"id": "cloudtrail.amazonaws.com", "type": "system"},
        "targets": [event::target("aws.api", &format!("{api_source}:{api_name}"))],
        "outcome": "success",
        "origin": {"service": "cloudtrail.amazonaws.com"},
        "metadata": metadata.into_value(),
    });
    event::prune(&mut event);
    Ok(event)
}

/// The schema action of a CloudTrail `eventName`.
pub fn action(event_name: &str) -> &'static str {
    const EXACT: &[(&str, &str)] = &[
        ("ConsoleLogin", "login"),
        ("AssumeRole", "login"),
        ("AssumeRoleWithSAML", "login"),
        ("AssumeRoleWithWebIdentity", "login"),
        ("GetSessionToken", "login"),
        ("GetFederationToken", "login"),
        ("SwitchRole", "login"),
        ("ExitRole", "logout"),
    ];
    const PREFIXES: &[(&str, &str)] = &[
        ("BatchGet", "read"),
        ("Get", "read"),
        ("Describe", "read"),
        ("Head", "read"),
        ("List", "list"),
        ("Lookup", "search"),
        ("Search", "search"),
        ("Query", "search"),
        ("Scan", "search"),
        ("Select", "search"),
        ("Filter", "search"),
        ("Create", "create"),
        ("Run", "create"),
        ("Import", "create"),
        ("Register", "create"),
        ("Allocate", "create"),
        ("Copy", "create"),
        ("Delete", "delete"),
        ("Terminate", "delete"),
        ("Deregister", "delete"),
        ("Release", "delete"),
        ("Update", "update"),
        ("Put", "update"),
        ("Modify", "update"),
        ("Set", "update"),
        ("Change", "update"),
        ("Edit", "update"),
        ("Replace", "update"),
        ("Reset", "update"),
        ("Tag", "update"),
        ("Untag", "update"),
        ("Attach", "grant"),
        ("Authorize", "grant"),
        ("Grant", "grant"),
        ("Detach", "revoke"),
        ("Revoke", "revoke"),
        ("Enable", "configure"),
        ("Disable", "configure"),
        ("Export", "export"),
        ("Download", "export"),
    ];
    if let Some((_, action)) = EXACT.iter().find(|(name, _)| *name == event_name) {
        return action;
    }
    let has_prefix = |prefix: &str| {
        event_name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().next().is_none_or(|c| c.is_ascii_uppercase()))
    };
    if has_prefix("Add") {
        let grants = event_name.ends_with("Permission") || event_name.ends_with("ToGroup");
        return if grants { "grant" } else { "update" };
    }
    if has_prefix("Remove") {
        let revokes = event_name.ends_with("Permission") || event_name.ends_with("FromGroup");
        return if revokes { "revoke" } else { "update" };
    }
    PREFIXES.iter().find(|(prefix, _)| has_prefix(prefix)).map_or("other", |(_, action)| action)
}

/// Whether a name was made by a machine (an instance id, a number, a UUID), not given to a person.
fn machine_made(name: &str) -> bool {
    let hex = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    name.strip_prefix("i-").is_some_and(hex) || hex(name)
}

/// An ARN with a person's name replaced by its pseudonym: an IAM user's name (`user/…`), an
/// assumed-role session's or a federated user's (unless machine-made); and the name, if replaced.
pub fn pseudonymise_arn(arn: &str, keys: &Pseudonyms) -> (String, Option<String>) {
    let mut parts = arn.splitn(6, ':');
    let prefix: Vec<&str> = parts.by_ref().take(5).collect();
    let Some(resource) = parts.next().filter(|_| prefix.len() == 5 && prefix[0] == "arn") else {
        return (arn.to_owned(), None);
    };
    let segments: Vec<&str> = resource.split('/').collect();
    let personal = matches!(segments[0], "user" | "assumed-role" | "federated-user") && segments.len() >= 2;
    let name = segments[segments.len() - 1];
    if !personal || name.is_empty() || name.starts_with(crate::pseudonym::PREFIX) || machine_made(name) {
        return (arn.to_owned(), None);
    }
    let kept = &arn[..arn.len() - name.len()];
    (format!("{kept}{}", keys.of(name)), Some(name.to_owned()))
}

/// `text` with the ARNs in it pseudonymised ([`pseudonymise_arn`]).
fn redact_arns(text: &str, keys: &Pseudonyms) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("arn:aws") {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'`,;()[]{}<>".contains(c))
            .map_or(rest.len(), |n| at + n);
        let arn = rest[at..end].trim_end_matches('.');
        out.push_str(&pseudonymise_arn(arn, keys).0);
        rest = &rest[at + arn.len()..];
    }
    out.push_str(rest);
    out
}

fn actor(record: &Value, identity: &Value, keys: &Pseudonyms) -> Value {
    let identity_type = event::str_at(identity, "/type").unwrap_or("");
    let user_name = event::str_at(identity, "/userName");
    let (id, arn_name) = identity_id(identity, identity_type, keys);
    let display = user_name.map(str::to_owned).or(arn_name);
    let console = event::str_at(record, "/eventType") == Some("AwsConsoleSignIn")
        || event::str_at(record, "/eventName") == Some("ConsoleLogin");
    let actor_type = match identity_type {
        "Root" => Some("admin"),
        _ if console => Some("user"),
        "IAMUser" | "FederatedUser" | "SAMLUser" | "WebIdentityUser" | "IdentityCenterUser" | "Directory" => {
            Some("user")
        }
        "AssumedRole" | "Role" => {
            Some(if display.as_deref().is_some_and(|name| name.contains('@')) { "user" } else { "service" })
        }
        "AWSService" => Some("service"),
        "Unknown" => Some("anonymous"),
        _ => None,
    };
    let access_key = event::str_at(identity, "/accessKeyId");
    let method = if console {
        Some("console")
    } else {
        access_key.and_then(|key| match key.get(..4) {
            Some("AKIA") => Some("access_key"),
            Some("ASIA") => Some("session_credentials"),
            _ => None,
        })
    };
    let mfa = match event::str_at(identity, "/sessionContext/attributes/mfaAuthenticated")
        .or_else(|| event::str_at(record, "/additionalEventData/MFAUsed"))
    {
        Some("true" | "Yes") => Some(true),
        Some("false" | "No") => Some(false),
        _ => None,
    };
    let issuer = event::str_at(identity, "/sessionContext/sessionIssuer/arn")
        .map(|arn| event::bounded(&pseudonymise_arn(arn, keys).0, limit::ACTOR_ID));
    let mut actor = json!({
        "id": event::bounded(&id, limit::ACTOR_ID),
        "type": actor_type,
        "display": display.map(|name| event::bounded(&name, limit::DISPLAY)),
        "on_behalf_of": issuer,
        "session": access_key.map(|key| keys.of(key)),
        "auth": {"method": method, "mfa": mfa},
    });
    event::prune(&mut actor);
    actor
}

/// The actor's id, personal names pseudonymised, and the name taken out of it.
fn identity_id(identity: &Value, identity_type: &str, keys: &Pseudonyms) -> (String, Option<String>) {
    if let Some(arn) = event::str_at(identity, "/arn") {
        return pseudonymise_arn(arn, keys);
    }
    if let Some(user_id) = event::str_at(identity, "/onBehalfOf/userId") {
        return (format!("aws:identitystore:{user_id}"), None);
    }
    if let Some(principal) = event::str_at(identity, "/principalId") {
        // `AROA…:session` (a role's session) or `provider:name`; `AIDA…` alone is an opaque id.
        return match principal.split_once(':') {
            Some((id, name)) if !machine_made(name) && !name.is_empty() => {
                (format!("{id}:{}", keys.of(name)), Some(name.to_owned()))
            }
            _ => (principal.to_owned(), None),
        };
    }
    if let Some(invoked_by) = event::str_at(identity, "/invokedBy") {
        return (invoked_by.to_owned(), None);
    }
    let account = event::str_at(identity, "/accountId").unwrap_or("unknown");
    match event::str_at(identity, "/userName") {
        Some(name) => (format!("{account}:{}", keys.of(name)), None),
        None => {
            (format!("{account}:{}", if identity_type.is_empty() { "unknown" } else { identity_type }), None)
        }
    }
}

/// `requestParameters` members that name a resource, and its CloudFormation-style type (a list of
/// names makes one target each).
const REQUEST_TARGETS: &[(&str, &str)] = &[
    ("roleName", "AWS::IAM::Role"),
    ("roleArn", "AWS::IAM::Role"),
    ("groupName", "AWS::IAM::Group"),
    ("policyArn", "AWS::IAM::Policy"),
    ("instanceProfileName", "AWS::IAM::InstanceProfile"),
    ("bucketName", "AWS::S3::Bucket"),
    ("instanceId", "AWS::EC2::Instance"),
    ("groupId", "AWS::EC2::SecurityGroup"),
    ("volumeId", "AWS::EC2::Volume"),
    ("vpcId", "AWS::EC2::VPC"),
    ("functionName", "AWS::Lambda::Function"),
    ("tableName", "AWS::DynamoDB::Table"),
    ("dBInstanceIdentifier", "AWS::RDS::DBInstance"),
    ("keyId", "AWS::KMS::Key"),
    ("secretId", "AWS::SecretsManager::Secret"),
    ("secretIdList", "AWS::SecretsManager::Secret"),
    ("queueUrl", "AWS::SQS::Queue"),
    ("topicArn", "AWS::SNS::Topic"),
    ("trailName", "AWS::CloudTrail::Trail"),
    ("logGroupName", "AWS::Logs::LogGroup"),
    ("stackName", "AWS::CloudFormation::Stack"),
    ("repositoryName", "AWS::ECR::Repository"),
];

fn targets(record: &Value, event_source: &str, account: &str, keys: &Pseudonyms) -> Vec<Value> {
    let mut targets = Vec::new();
    for resource in record.get("resources").and_then(Value::as_array).into_iter().flatten() {
        let arn = event::str_at(resource, "/ARN").or_else(|| event::str_at(resource, "/arn"));
        if let Some(arn) = arn {
            let resource_type = event::str_at(resource, "/type").unwrap_or("AWS::Resource");
            let (arn, name) = pseudonymise_arn(arn, keys);
            event::push_target(&mut targets, person_target(resource_type, &arn, name));
        }
    }
    if targets.is_empty() {
        let parameters = record.get("requestParameters").and_then(Value::as_object);
        if let Some(parameters) = parameters {
            request_targets(parameters, account, keys, &mut targets);
        }
        instance_targets(record, &mut targets);
    }
    if targets.is_empty() {
        event::push_target(&mut targets, event::target("aws.service", event_source));
    }
    targets
}

/// A target, with the person's name it stands for as its (sealed) display.
fn person_target(target_type: &str, id: &str, name: Option<String>) -> Value {
    let mut target = event::target(target_type, id);
    if let Some(name) = name {
        target["display"] = json!(event::bounded(&name, limit::DISPLAY));
    }
    target
}

fn request_targets(
    parameters: &Map<String, Value>,
    account: &str,
    keys: &Pseudonyms,
    targets: &mut Vec<Value>,
) {
    let bucket = parameters.get("bucketName").and_then(Value::as_str);
    if let (Some(bucket), Some(key)) = (bucket, parameters.get("key").and_then(Value::as_str)) {
        event::push_target(targets, event::target("AWS::S3::Object", &format!("{bucket}/{key}")));
    }
    if let Some(user) = event::text(parameters.get("userName"), limit::TARGET_ID) {
        let arn = format!("arn:aws:iam::{account}:user/{}", keys.of(&user));
        event::push_target(targets, person_target("AWS::IAM::User", &arn, Some(user)));
    }
    for (name, target_type) in REQUEST_TARGETS {
        let values = match parameters.get(*name) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(value) => vec![value],
            None => Vec::new(),
        };
        for id in values.into_iter().filter_map(|value| event::text(Some(value), limit::TARGET_ID)) {
            event::push_target(targets, event::target(target_type, &id));
        }
    }
}

/// The instances an EC2 call names: `instancesSet.items[].instanceId` of the request, or of the
/// response (`RunInstances` learns its instances' ids only there).
fn instance_targets(record: &Value, targets: &mut Vec<Value>) {
    for pointer in ["/requestParameters/instancesSet/items", "/responseElements/instancesSet/items"] {
        for instance in record.pointer(pointer).and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = event::str_at(instance, "/instanceId") {
                event::push_target(targets, event::target("AWS::EC2::Instance", id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{action, pseudonymise_arn, redact_arns};
    use crate::pseudonym::Pseudonyms;

    #[test]
    fn names_in_arns_become_pseudonyms() {
        let keys = Pseudonyms::new([5; 32]);
        let alice = keys.of("test@example.com");
        for (arn, expected, name) in [
            (
                "arn:aws:iam::123456789012:user/test@example.com",
                format!("arn:aws:iam::123456789012:user/{alice}"),
                true,
            ),
            (
                "arn:aws:iam::123456789012:user/dev/test@example.com",
                format!("arn:aws:iam::123456789012:user/dev/{alice}"),
                true,
            ),
            (
                "arn:aws:sts::1:assumed-role/Admin/test@example.com",
                format!("arn:aws:sts::1:assumed-role/Admin/{alice}"),
                true,
            ),
            (
                "arn:aws:sts::1:assumed-role/app/i-0a1b2c3d4e5f67890",
                "arn:aws:sts::1:assumed-role/app/i-0a1b2c3d4e5f67890".into(),
                false,
            ),
            ("arn:aws:iam::1:role/Admin", "arn:aws:iam::1:role/Admin".into(), false),
            ("arn:aws:iam::1:root", "arn:aws:iam::1:root".into(), false),
            ("not an arn", "not an arn".into(), false),
        ] {
            let (pseudonymised, taken) = pseudonymise_arn(arn, &keys);
            assert_eq!(pseudonymised, expected, "{arn}");
            assert_eq!(taken.is_some(), name, "{arn}");
        }
        let message =
            "User: arn:aws:iam::1:user/test@example.com is not authorized to perform: iam:ListUsers";
        assert_eq!(
            redact_arns(message, &keys),
            format!("User: arn:aws:iam::1:user/{alice} is not authorized to perform: iam:ListUsers")
        );
    }

    #[test]
    fn actions_follow_the_verb_of_the_event_name() {
        for (name, expected) in [
            ("ConsoleLogin", "login"),
            ("AssumeRole", "login"),
            ("GetObject", "read"),
            ("DescribeInstances", "read"),
            ("ListBuckets", "list"),
            ("CreateUser", "create"),
            ("RunInstances", "create"),
            ("DeleteBucket", "delete"),
            ("TerminateInstances", "delete"),
            ("PutBucketPolicy", "update"),
            ("ModifyInstanceAttribute", "update"),
            ("AttachUserPolicy", "grant"),
            ("AddUserToGroup", "grant"),
            ("RemoveUserFromGroup", "revoke"),
            ("AddTagsToResource", "update"),
            ("DetachRolePolicy", "revoke"),
            ("StartInstances", "other"),
            ("Settle", "other"),
            ("Decrypt", "other"),
        ] {
            assert_eq!(action(name), expected, "{name}");
        }
    }
}
