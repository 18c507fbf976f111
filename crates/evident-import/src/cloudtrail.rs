//! AWS CloudTrail records (a `{"Records": [...]}` log file as delivered to S3, gzip-compressed or
//! not, or NDJSON of records, e.g. from CloudTrail Lake or a log pipeline), mapped onto events.
//!
//! | event field | from the CloudTrail record |
//! | --- | --- |
//! | `id` | `eventID` (stable: running a file again stores nothing twice) |
//! | `source` | `//aws.amazon.com/cloudtrail/<recipientAccountId>/<awsRegion>` (account from `userIdentity.accountId` when there is no recipient) |
//! | `type` | `aws.<service>.<eventname>`: the service is `eventSource` before its first dot (`iam.amazonaws.com` gives `iam`), the name lowercased: `aws.iam.createuser` |
//! | `action` | from `eventName`, see [`action`]: `ConsoleLogin`, `AssumeRole*`, `GetSessionToken`, `GetFederationToken`, `SwitchRole` → `login`; `ExitRole` → `logout`; `Get*` `Describe*` `Head*` `BatchGet*` → `read`; `List*` → `list`; `Lookup*` `Search*` `Query*` `Scan*` `Select*` `Filter*` → `search`; `Create*` `Run*` `Import*` `Register*` `Allocate*` `Copy*` → `create`; `Delete*` `Terminate*` `Deregister*` `Release*` → `delete`; `Update*` `Put*` `Modify*` `Set*` `Change*` `Edit*` `Replace*` `Reset*` `Tag*` `Untag*` `Add*` `Remove*` → `update`; `Attach*` `Authorize*` `Grant*` `Add*Permission` `Add*ToGroup` → `grant`; `Detach*` `Revoke*` `Remove*Permission` `Remove*FromGroup` → `revoke`; `Enable*` `Disable*` → `configure`; `Export*` `Download*` → `export`; anything else → `other` |
//! | `time` | `eventTime` |
//! | `actor.id` | `userIdentity.arn`, else `principalId`, else `invokedBy` (AWS services), else `<accountId>:<type>` |
//! | `actor.type` | `userIdentity.type`: `Root` → `admin`; `IAMUser`, `FederatedUser`, `SAMLUser`, `WebIdentityUser`, `IdentityCenterUser`, `Directory` → `user`; `AssumedRole`, `Role` → `user` when the session name holds an `@` (SSO sessions), else `service`; `AWSService` → `service`; `Unknown` → `anonymous`; others absent |
//! | `actor.display` | `userIdentity.userName`, else the role session name (personal: sealed) |
//! | `actor.on_behalf_of` | `userIdentity.sessionContext.sessionIssuer.arn`: the role an assumed-role session acts as (or the user a federated session was issued by) |
//! | `actor.session` | `userIdentity.accessKeyId` |
//! | `actor.auth` | `method`: `console` for console sign-ins, `access_key` for `AKIA…` keys, `session_credentials` for `ASIA…` keys; `mfa`: `sessionContext.attributes.mfaAuthenticated` or `additionalEventData.MFAUsed` |
//! | `targets` | `resources[]` (`type`, `ARN`); else the resources named in `requestParameters` (`userName` → `AWS::IAM::User`, `roleName`, `groupName`, `policyArn`, `bucketName` (+ `key` → `AWS::S3::Object`), `instanceId` / `instancesSet.items[].instanceId` of the request or the response, `functionName`, `tableName`, `keyId`, `secretId`, …, see `REQUEST_TARGETS`); else the service: `{"type": "aws.service", "id": eventSource}` |
//! | `outcome` | `failure` when `errorCode` is set or `responseElements.ConsoleLogin` is `Failure`, else `success` |
//! | `reason` | failures: `<errorCode>: <errorMessage>` |
//! | `changes` | successful create/update: one change per `requestParameters` member (`{"field": "/userName", "after": "alice"}`); delete: the whole record; see `event::changes` |
//! | `origin.ip` | `sourceIPAddress` when it is an address (for calls made by AWS services it is the service's name, kept as metadata `source_ip_address`) |
//! | `origin.user_agent` | `userAgent` |
//! | `origin.host` | `tlsDetails.clientProvidedHostHeader` |
//! | `origin.service` | `eventSource` |
//! | `correlation.request_id` | `requestID` |
//! | `metadata` | `event_type`, `event_category`, `event_version`, `aws_region`, `recipient_account_id`, `account_id`, `user_identity_type`, `read_only`, `management_event`, `error_code`, `shared_event_id`, `invoked_by`, `session_issuer`, `source_identity`, `vpc_endpoint_id`, `api_version`, `tls_version`, `cipher_suite`, `source_ip_address`, `session_created`, `mfa_used` (none personal) |

use serde_json::{Map, Value, json};

use crate::event::{self, Metadata, limit};

/// Whether a record looks like a CloudTrail record: `eventVersion` and `eventSource`.
pub fn looks_like(record: &Value) -> bool {
    record.get("eventVersion").is_some() && record.get("eventSource").is_some()
}

/// The event for one CloudTrail record, or why there cannot be one.
pub fn event(record: &Value) -> Result<Value, String> {
    if !record.is_object() {
        return Err("a CloudTrail record must be a JSON object".into());
    }
    let required = |name: &str| {
        event::str_at(record, &format!("/{name}"))
            .ok_or_else(|| format!("not a CloudTrail record: no {name}"))
    };
    let id = required("eventID")?;
    let event_source = required("eventSource")?;
    let event_name = required("eventName")?;
    let time = event::rfc3339(required("eventTime")?).ok_or("eventTime is not an RFC 3339 time")?;
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);

    let account = event::str_at(record, "/recipientAccountId")
        .or_else(|| event::str_at(identity, "/accountId"))
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
    let service = event_source.split('.').next().unwrap_or(event_source);
    let event_type = format!("aws.{}.{}", event::type_segment(service), event::type_segment(event_name));
    let action = action(event_name);

    let error_code = event::str_at(record, "/errorCode");
    let error_message = event::str_at(record, "/errorMessage");
    let console_failure = event::str_at(record, "/responseElements/ConsoleLogin") == Some("Failure");
    let failed = error_code.is_some() || console_failure;
    let outcome = if failed { "failure" } else { "success" };
    let reason = failed.then(|| {
        let reason = match (error_code, error_message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.to_owned(),
            (None, None) => format!("{event_name}: Failure"),
        };
        event::bounded(&reason, limit::REASON)
    });

    let targets = targets(record, event_source);
    let parameters = record.get("requestParameters").and_then(Value::as_object);
    let changes = event::changes(action, outcome, event::after_fields(parameters), &targets[0]);

    let source_ip = event::str_at(record, "/sourceIPAddress");
    let origin = json!({
        "ip": source_ip.and_then(event::ip),
        "user_agent": event::text(record.get("userAgent"), limit::USER_AGENT),
        "host": event::text(record.pointer("/tlsDetails/clientProvidedHostHeader"), limit::HOST),
        "service": event::bounded(event_source, limit::SERVICE),
    });

    let mut metadata = Metadata::default();
    for (key, pointer) in [
        ("event_type", "/eventType"),
        ("event_category", "/eventCategory"),
        ("event_version", "/eventVersion"),
        ("aws_region", "/awsRegion"),
        ("recipient_account_id", "/recipientAccountId"),
        ("account_id", "/userIdentity/accountId"),
        ("user_identity_type", "/userIdentity/type"),
        ("read_only", "/readOnly"),
        ("management_event", "/managementEvent"),
        ("error_code", "/errorCode"),
        ("shared_event_id", "/sharedEventID"),
        ("invoked_by", "/userIdentity/invokedBy"),
        ("session_issuer", "/userIdentity/sessionContext/sessionIssuer/arn"),
        ("source_identity", "/userIdentity/sessionContext/sourceIdentity"),
        ("vpc_endpoint_id", "/vpcEndpointId"),
        ("api_version", "/apiVersion"),
        ("tls_version", "/tlsDetails/tlsVersion"),
        ("cipher_suite", "/tlsDetails/cipherSuite"),
        ("session_created", "/userIdentity/sessionContext/attributes/creationDate"),
        ("mfa_used", "/additionalEventData/MFAUsed"),
    ] {
        metadata.put_value(key, record.pointer(pointer));
    }
    if let Some(text) = source_ip.filter(|text| event::ip(text).is_none()) {
        metadata.put("source_ip_address", text);
    }

    let mut event = json!({
        "id": id,
        "source": source,
        "type": event_type,
        "action": action,
        "time": time,
        "actor": actor(record, identity),
        "targets": targets,
        "outcome": outcome,
        "reason": reason,
        "changes": changes,
        "origin": origin,
        "correlation": {"request_id": event::text(record.get("requestID"), limit::REQUEST_ID)},
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

fn actor(record: &Value, identity: &Value) -> Value {
    let identity_type = event::str_at(identity, "/type").unwrap_or("");
    let arn = event::str_at(identity, "/arn");
    let principal = event::str_at(identity, "/principalId");
    let invoked_by = event::str_at(identity, "/invokedBy");
    let id = arn.or(principal).or(invoked_by).map(str::to_owned).unwrap_or_else(|| {
        let account = event::str_at(identity, "/accountId").unwrap_or("unknown");
        format!("{account}:{}", if identity_type.is_empty() { "unknown" } else { identity_type })
    });
    // An assumed role's ARN ends with the session name (arn:aws:sts::1:assumed-role/Role/alice@example.com).
    let session_name = matches!(identity_type, "AssumedRole" | "Role")
        .then(|| arn.and_then(|arn| arn.rsplit('/').next()))
        .flatten();
    let actor_type = match identity_type {
        "Root" => Some("admin"),
        "IAMUser" | "FederatedUser" | "SAMLUser" | "WebIdentityUser" | "IdentityCenterUser" | "Directory" => {
            Some("user")
        }
        "AssumedRole" | "Role" => {
            Some(if session_name.is_some_and(|name| name.contains('@')) { "user" } else { "service" })
        }
        "AWSService" => Some("service"),
        "Unknown" => Some("anonymous"),
        _ => None,
    };
    let display = event::str_at(identity, "/userName").or(session_name);
    let access_key = event::str_at(identity, "/accessKeyId");
    let console = event::str_at(record, "/eventType") == Some("AwsConsoleSignIn");
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
    let mut actor = json!({
        "id": event::bounded(&id, limit::ACTOR_ID),
        "type": actor_type,
        "display": display.map(|name| event::bounded(name, limit::DISPLAY)),
        "on_behalf_of": event::text(identity.pointer("/sessionContext/sessionIssuer/arn"), limit::ACTOR_ID),
        "session": access_key.map(|key| event::bounded(key, limit::SESSION)),
        "auth": {"method": method, "mfa": mfa},
    });
    event::prune(&mut actor);
    actor
}

/// `requestParameters` members that name a resource, and its CloudFormation-style type.
const REQUEST_TARGETS: &[(&str, &str)] = &[
    ("userName", "AWS::IAM::User"),
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
    ("queueUrl", "AWS::SQS::Queue"),
    ("topicArn", "AWS::SNS::Topic"),
    ("trailName", "AWS::CloudTrail::Trail"),
    ("logGroupName", "AWS::Logs::LogGroup"),
    ("stackName", "AWS::CloudFormation::Stack"),
    ("repositoryName", "AWS::ECR::Repository"),
];

fn targets(record: &Value, event_source: &str) -> Vec<Value> {
    let mut targets = Vec::new();
    for resource in record.get("resources").and_then(Value::as_array).into_iter().flatten() {
        let arn = event::str_at(resource, "/ARN").or_else(|| event::str_at(resource, "/arn"));
        if let Some(arn) = arn {
            let resource_type = event::str_at(resource, "/type").unwrap_or("AWS::Resource");
            event::push_target(&mut targets, event::target(resource_type, arn));
        }
    }
    if targets.is_empty() {
        let parameters = record.get("requestParameters").and_then(Value::as_object);
        if let Some(parameters) = parameters {
            request_targets(parameters, &mut targets);
        }
        instance_targets(record, &mut targets);
    }
    if targets.is_empty() {
        event::push_target(&mut targets, event::target("aws.service", event_source));
    }
    targets
}

fn request_targets(parameters: &Map<String, Value>, targets: &mut Vec<Value>) {
    let bucket = parameters.get("bucketName").and_then(Value::as_str);
    if let (Some(bucket), Some(key)) = (bucket, parameters.get("key").and_then(Value::as_str)) {
        event::push_target(targets, event::target("AWS::S3::Object", &format!("{bucket}/{key}")));
    }
    for (name, target_type) in REQUEST_TARGETS {
        if let Some(id) = event::text(parameters.get(*name), limit::TARGET_ID) {
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
    use super::action;

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
