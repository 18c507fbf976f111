//! Renderings of a log entry (the stored skeleton: no personal value is ever streamed) for SIEMs:
//! OCSF 1.8.0 (API Activity 6003, Authentication 3002, Account Change 3001), CEF, RFC 5424
//! syslog with structured data, CloudEvents 1.0 structured JSON, and plain JSON. The field
//! mapping of each is the table in `docs/integrations.md`.

use serde_json::{Map, Value, json};

use evident_wire::Micros;

/// A stream's rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Ocsf,
    Cef,
    Rfc5424,
    Cloudevents,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "ocsf" => Format::Ocsf,
            "cef" => Format::Cef,
            "rfc5424" => Format::Rfc5424,
            "cloudevents" => Format::Cloudevents,
            "json" => Format::Json,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ocsf => "ocsf",
            Format::Cef => "cef",
            Format::Rfc5424 => "rfc5424",
            Format::Cloudevents => "cloudevents",
            Format::Json => "json",
        }
    }

    /// The media type of one rendered event.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Cef | Format::Rfc5424 => "text/plain; charset=utf-8",
            Format::Cloudevents => "application/cloudevents+json",
            Format::Ocsf | Format::Json => "application/json",
        }
    }
}

/// One entry and where it sits: what every rendering starts from.
pub struct Entry<'a> {
    pub index: u64,
    /// The log's origin line (`<prefix>/<tenant>`).
    pub origin: &'a str,
    pub entry: &'a Value,
}

impl Entry<'_> {
    fn text(&self, pointer: &str) -> Option<&str> {
        self.entry.pointer(pointer).and_then(Value::as_str)
    }

    fn text_or<'b>(&'b self, pointer: &str, default: &'b str) -> &'b str {
        self.text(pointer).unwrap_or(default)
    }

    /// The event time in milliseconds since the epoch (0 when unreadable, which a stored entry never is).
    fn millis(&self, pointer: &str) -> i64 {
        self.text(pointer).and_then(Micros::parse_rfc3339).map_or(0, |t| t.0.div_euclid(1000))
    }

    pub fn event_id(&self) -> &str {
        self.text_or("/event_id", "")
    }

    pub fn event_type(&self) -> &str {
        self.text_or("/type", "")
    }

    pub fn recorded_at(&self) -> Micros {
        self.text("/recorded_at").and_then(Micros::parse_rfc3339).unwrap_or(Micros(0))
    }

    /// The host part of the origin line: the syslog HOSTNAME and the HEC `host`.
    pub fn host(&self) -> &str {
        self.origin.split('/').next().filter(|h| !h.is_empty()).unwrap_or("evident")
    }

    fn targets(&self) -> Vec<(&str, &str)> {
        let targets = self.entry.get("targets").and_then(Value::as_array);
        targets
            .into_iter()
            .flatten()
            .map(|t| {
                let field = |name| t.get(name).and_then(Value::as_str).unwrap_or("");
                (field("type"), field("id"))
            })
            .collect()
    }
}

/// A rendered event: a JSON value, or a line of text (CEF, syslog).
#[derive(Clone, Debug, PartialEq)]
pub enum Rendered {
    Json(Value),
    Text(String),
}

impl Rendered {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Rendered::Json(value) => serde_json::to_vec(value).expect("JSON serialises"),
            Rendered::Text(text) => text.clone().into_bytes(),
        }
    }

    /// As a member of a JSON batch (text becomes a JSON string).
    pub fn to_value(&self) -> Value {
        match self {
            Rendered::Json(value) => value.clone(),
            Rendered::Text(text) => Value::from(text.as_str()),
        }
    }
}

pub fn render(format: Format, entry: &Entry<'_>) -> Rendered {
    match format {
        Format::Ocsf => Rendered::Json(ocsf(entry)),
        Format::Cef => Rendered::Text(cef(entry)),
        Format::Rfc5424 => Rendered::Text(rfc5424(entry, None)),
        Format::Cloudevents => Rendered::Json(cloudevents(entry)),
        Format::Json => Rendered::Json(plain_json(entry)),
    }
}

/// The stored entry with its leaf index and log.
fn plain_json(entry: &Entry<'_>) -> Value {
    let mut value = entry.entry.clone();
    if let Some(object) = value.as_object_mut() {
        object.insert("index".into(), json!(entry.index));
        object.insert("log".into(), json!(entry.origin));
    }
    value
}

/// CloudEvents 1.0, structured mode: `source` is the log, `id` the event id, `sequence` the leaf
/// index zero-padded to 20 digits (so that it sorts as text), `data` the stored entry.
fn cloudevents(entry: &Entry<'_>) -> Value {
    let mut event = json!({
        "specversion": "1.0",
        "id": entry.event_id(),
        "source": entry.origin,
        "type": entry.event_type(),
        "time": entry.text_or("/time", ""),
        "datacontenttype": "application/json",
        "sequence": format!("{:020}", entry.index),
        "data": entry.entry,
    });
    if let Some(subject) = entry.text("/subject") {
        event["subject"] = json!(subject);
    }
    event
}

/// The OCSF class of an entry: Authentication for logins and logouts, Account Change for grants,
/// revocations and changes of account-like targets, API Activity for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcsfClass {
    ApiActivity,
    Authentication,
    AccountChange,
}

const ACCOUNT_TARGETS: [&str; 6] = ["user", "account", "api_key", "role", "group", "service_account"];

pub fn ocsf_class(entry: &Entry<'_>) -> OcsfClass {
    let action = entry.text_or("/action", "");
    let account_target = entry.targets().iter().any(|(kind, _)| ACCOUNT_TARGETS.contains(kind));
    match action {
        "login" | "logout" => OcsfClass::Authentication,
        "grant" | "revoke" => OcsfClass::AccountChange,
        "create" | "update" | "delete" if account_target => OcsfClass::AccountChange,
        _ => OcsfClass::ApiActivity,
    }
}

/// (class uid, class name, category uid, category name, activity id, activity name).
fn ocsf_activity(
    class: OcsfClass,
    action: &str,
) -> (u32, &'static str, u32, &'static str, u32, &'static str) {
    let (activity_id, activity_name) = match (class, action) {
        (OcsfClass::Authentication, "login") => (1, "Logon"),
        (OcsfClass::Authentication, "logout") => (2, "Logoff"),
        (OcsfClass::AccountChange, "create") => (1, "Create"),
        (OcsfClass::AccountChange, "delete") => (6, "Delete"),
        (OcsfClass::AccountChange, "grant") => (7, "Attach Policy"),
        (OcsfClass::AccountChange, "revoke") => (8, "Detach Policy"),
        (OcsfClass::ApiActivity, "create") => (1, "Create"),
        (OcsfClass::ApiActivity, "read" | "list" | "search" | "export") => (2, "Read"),
        (OcsfClass::ApiActivity, "update") => (3, "Update"),
        (OcsfClass::ApiActivity, "delete") => (4, "Delete"),
        _ => (99, "Other"),
    };
    match class {
        OcsfClass::ApiActivity => {
            (6003, "API Activity", 6, "Application Activity", activity_id, activity_name)
        }
        OcsfClass::Authentication => {
            (3002, "Authentication", 3, "Identity & Access Management", activity_id, activity_name)
        }
        OcsfClass::AccountChange => {
            (3001, "Account Change", 3, "Identity & Access Management", activity_id, activity_name)
        }
    }
}

/// OCSF 1.8.0 event of the entry's class (see [`ocsf_class`]); what OCSF has no attribute for is
/// under `unmapped.evident`.
fn ocsf(entry: &Entry<'_>) -> Value {
    let class = ocsf_class(entry);
    let action = entry.text_or("/action", "other");
    let (class_uid, class_name, category_uid, category_name, activity_id, activity_name) =
        ocsf_activity(class, action);
    let (severity_id, severity) = ocsf_severity(entry.text_or("/severity", "info"));
    let (status_id, status) = match entry.text_or("/outcome", "unknown") {
        "success" => (1, "Success"),
        "failure" => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let mut event = json!({
        "class_uid": class_uid, "class_name": class_name,
        "category_uid": category_uid, "category_name": category_name,
        "activity_id": activity_id, "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": format!("{class_name}: {activity_name}"),
        "time": entry.millis("/time"),
        "severity_id": severity_id, "severity": severity,
        "status_id": status_id, "status": status,
        "message": format!("{} {} {}", entry.event_type(), action, status.to_lowercase()),
        "metadata": ocsf_metadata(entry),
        "actor": ocsf_actor(entry),
        "src_endpoint": ocsf_endpoint(entry),
        "unmapped": {"evident": ocsf_unmapped(entry)},
    });
    if let Some(reason) = entry.text("/reason") {
        event["status_detail"] = json!(reason);
    }
    ocsf_class_fields(event.as_object_mut().expect("an object"), class, entry);
    event
}

/// The attributes of the entry's class: API details and resources, or the user and service.
fn ocsf_class_fields(object: &mut Map<String, Value>, class: OcsfClass, entry: &Entry<'_>) {
    match class {
        OcsfClass::ApiActivity => {
            let mut api =
                json!({"operation": entry.event_type(), "service": {"name": entry.text_or("/source", "")}});
            if let Some(id) = entry.text("/id") {
                api["request"] = json!({"uid": id});
            }
            object.insert("api".into(), api);
            let resources: Vec<Value> =
                entry.targets().iter().map(|(kind, id)| json!({"type": kind, "uid": id})).collect();
            object.insert("resources".into(), Value::Array(resources));
        }
        OcsfClass::Authentication => {
            object.insert("user".into(), ocsf_user(entry));
            object.insert("service".into(), json!({"name": entry.text_or("/source", "")}));
            if let Some(mfa) = entry.entry.pointer("/actor/auth/mfa").and_then(Value::as_bool) {
                object.insert("is_mfa".into(), json!(mfa));
            }
            if let Some(method) = entry.text("/actor/auth/method") {
                object.insert("auth_protocol_id".into(), json!(99));
                object.insert("auth_protocol".into(), json!(method));
            }
        }
        OcsfClass::AccountChange => {
            let targets = entry.targets();
            let account = targets.iter().find(|(kind, _)| ACCOUNT_TARGETS.contains(kind)).or(targets.first());
            let user = match account {
                Some((kind, id)) => json!({"uid": id, "type": kind}),
                None => ocsf_user(entry),
            };
            object.insert("user".into(), user);
        }
    }
}

fn ocsf_severity(severity: &str) -> (u32, &'static str) {
    match severity {
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        "critical" => (5, "Critical"),
        _ => (1, "Informational"),
    }
}

fn ocsf_metadata(entry: &Entry<'_>) -> Value {
    let mut metadata = json!({
        "version": "1.8.0",
        "product": {"name": "Evident", "vendor_name": "Evident"},
        "uid": entry.event_id(),
        "log_name": entry.origin,
        "sequence": entry.index,
        "logged_time": entry.millis("/recorded_at"),
        "original_time": entry.text_or("/time", ""),
        "event_code": entry.event_type(),
    });
    if let Some(tenant) = entry.text("/tenant") {
        metadata["tenant_uid"] = json!(tenant);
    }
    let correlation = ["/correlation/correlation_id", "/correlation/request_id"];
    if let Some(uid) = correlation.iter().find_map(|p| entry.text(p)) {
        metadata["correlation_uid"] = json!(uid);
    }
    metadata
}

/// The actor's id and kind (`display` is personal and never streamed).
fn ocsf_user(entry: &Entry<'_>) -> Value {
    let kind = entry.text_or("/actor/type", "user");
    let type_id = match kind {
        "user" => 1,
        "admin" => 2,
        "system" => 3,
        "service" => 4,
        _ => 99,
    };
    json!({"uid": entry.text_or("/actor/id", ""), "type": kind, "type_id": type_id})
}

fn ocsf_actor(entry: &Entry<'_>) -> Value {
    let mut actor = json!({"user": ocsf_user(entry)});
    if let Some(session) = entry.text("/actor/session") {
        actor["session"] = json!({"uid": session});
    }
    actor
}

/// Where the event came from: the origin's host and service (its IP and user agent are
/// personal), else the producing source.
fn ocsf_endpoint(entry: &Entry<'_>) -> Value {
    let mut endpoint = Map::new();
    if let Some(host) = entry.text("/origin/host") {
        endpoint.insert("hostname".into(), json!(host));
    }
    let service = entry.text("/origin/service").or(entry.text("/source")).unwrap_or("unknown");
    endpoint.insert("svc_name".into(), json!(service));
    Value::Object(endpoint)
}

/// What OCSF has no attribute for, as Evident names it.
fn ocsf_unmapped(entry: &Entry<'_>) -> Value {
    let mut unmapped = Map::new();
    unmapped.insert("index".into(), json!(entry.index));
    let fields = [
        "source",
        "type",
        "action",
        "subject",
        "on_behalf_of",
        "data_classes",
        "metadata",
        "correlation",
        "pii_commitment",
        "changes",
    ];
    for field in fields {
        let value = if field == "on_behalf_of" {
            entry.entry.pointer("/actor/on_behalf_of")
        } else {
            entry.entry.get(field)
        };
        if let Some(value) = value {
            unmapped.insert(field.into(), value.clone());
        }
    }
    Value::Object(unmapped)
}

/// CEF severity (0 to 10) of an event severity.
fn cef_severity(severity: &str) -> u8 {
    match severity {
        "low" => 3,
        "medium" => 5,
        "high" => 8,
        "critical" => 10,
        _ => 1,
    }
}

/// A CEF header field: `\` and `|` escaped, line breaks as spaces (CEF 25 header rules).
pub fn cef_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n` and `\r`.
pub fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// `CEF:0|Evident|Evident|1|<type>|<type> <action> <outcome>|<severity>|<extension>`.
fn cef(entry: &Entry<'_>) -> String {
    let (event_type, action, outcome) =
        (entry.event_type(), entry.text_or("/action", ""), entry.text_or("/outcome", ""));
    let targets: Vec<String> = entry.targets().iter().map(|(kind, id)| format!("{kind}/{id}")).collect();
    let mut extension: Vec<(&str, String)> = vec![
        ("rt", entry.millis("/recorded_at").to_string()),
        ("end", entry.millis("/time").to_string()),
        ("act", action.to_owned()),
        ("outcome", outcome.to_owned()),
        ("suser", entry.text_or("/actor/id", "").to_owned()),
        ("externalId", entry.event_id().to_owned()),
        ("cs1Label", "tenant".into()),
        ("cs1", entry.text_or("/tenant", "").to_owned()),
        ("cs2Label", "source".into()),
        ("cs2", entry.text_or("/source", "").to_owned()),
        ("cs3Label", "targets".into()),
        ("cs3", targets.join(",")),
        ("cn1Label", "index".into()),
        ("cn1", entry.index.to_string()),
    ];
    let optional = [
        ("duser", "/subject"),
        ("reason", "/reason"),
        ("dvchost", "/origin/host"),
        ("cs4", "/pii_commitment"),
    ];
    for (key, pointer) in optional {
        if let Some(value) = entry.text(pointer) {
            if key == "cs4" {
                extension.push(("cs4Label", "pii_commitment".into()));
            }
            extension.push((key, value.to_owned()));
        }
    }
    let extension: Vec<String> = extension.iter().map(|(k, v)| format!("{k}={}", cef_value(v))).collect();
    format!(
        "CEF:0|Evident|Evident|1|{}|{}|{}|{}",
        cef_header(event_type),
        cef_header(&format!("{event_type} {action} {outcome}")),
        cef_severity(entry.text_or("/severity", "info")),
        extension.join(" ")
    )
}

/// The private enterprise number placeholder of our SD-ID (RFC 5424 §7.2.2; 32473 is the one
/// RFC 5612 reserves for documentation).
pub const SD_ID: &str = "evident@32473";

/// An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
pub fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// PRINTUSASCII only, at most `max` characters, `-` when empty (RFC 5424 §6.2 header fields).
fn header_field(text: &str, max: usize) -> String {
    let field: String = text.chars().filter(|c| ('!'..='~').contains(c)).take(max).collect();
    if field.is_empty() { "-".into() } else { field }
}

/// The syslog severity of an event severity (RFC 5424 §6.2.1).
fn syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    }
}

/// Facility 13, log audit (RFC 5424 §6.2.1).
const FACILITY_LOG_AUDIT: u8 = 13;

/// An RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME evident - MSGID SD MSG`. Without `body`, the
/// SD element `[evident@32473 ...]` carries the event's fields and MSG is the entry as JSON;
/// with it (another rendering sent over syslog), SD is `-` and MSG is `body`. MSG starts with the
/// UTF-8 BOM (§6.4).
pub fn rfc5424(entry: &Entry<'_>, body: Option<&str>) -> String {
    let pri = FACILITY_LOG_AUDIT * 8 + syslog_severity(entry.text_or("/severity", "info"));
    let timestamp = entry.text_or("/time", "-");
    let header = format!(
        "<{pri}>1 {} {} evident - {}",
        header_field(timestamp, 64),
        header_field(entry.host(), 255),
        header_field(entry.event_type(), 32)
    );
    match body {
        Some(body) => format!("{header} - \u{feff}{body}"),
        None => {
            let json = serde_json::to_string(entry.entry).expect("JSON serialises");
            format!("{header} {} \u{feff}{json}", structured_data(entry))
        }
    }
}

fn structured_data(entry: &Entry<'_>) -> String {
    let mut params: Vec<(&str, String)> = vec![("index", entry.index.to_string())];
    let fields = [
        ("tenant", "/tenant"),
        ("event_id", "/event_id"),
        ("type", "/type"),
        ("action", "/action"),
        ("outcome", "/outcome"),
        ("actor", "/actor/id"),
        ("source", "/source"),
        ("subject", "/subject"),
        ("reason", "/reason"),
    ];
    for (name, pointer) in fields {
        if let Some(value) = entry.text(pointer) {
            params.push((name, value.to_owned()));
        }
    }
    for (kind, id) in entry.targets() {
        params.push(("target", format!("{kind}/{id}")));
    }
    let params: Vec<String> =
        params.iter().map(|(name, value)| format!("{name}=\"{}\"", sd_value(value))).collect();
    format!("[{SD_ID} {}]", params.join(" "))
}

#[cfg(test)]
mod tests;
