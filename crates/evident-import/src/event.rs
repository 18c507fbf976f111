//! Building Evident events (`EVENT-SCHEMA.md` §1) from other systems' records, within the limits
//! the server validates (`evident_core::validate`, which this crate does not depend on): bounded text, bounded metadata, dotted types,
//! RFC 3339 times, and the `changes` that every successful create, update and delete must carry.
//!
//! Only schema fields are ever built: the server rejects unknown ones.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// Length limits of the schema, in characters.
pub mod limit {
    pub const ACTOR_ID: usize = 256;
    pub const DISPLAY: usize = 256;
    pub const AUTH_METHOD: usize = 64;
    pub const TARGET_TYPE: usize = 128;
    pub const TARGET_ID: usize = 256;
    pub const REASON: usize = 2048;
    pub const USER_AGENT: usize = 1024;
    pub const HOST: usize = 256;
    pub const SERVICE: usize = 256;
    pub const REQUEST_ID: usize = 128;
    pub const SOURCE: usize = 512;
    pub const METADATA_KEYS: usize = 50;
    pub const METADATA_KEY: usize = 64;
    pub const METADATA_VALUE: usize = 1024;
    pub const TARGETS: usize = 100;
    pub const CHANGES: usize = 200;
    /// Change values copied from a source record, serialized (the server accepts 64 KiB in all).
    pub const CHANGE_BYTES: usize = 32 * 1024;
}

/// `text` without control characters (each becomes a space), trimmed, cut to `max` characters.
pub fn bounded(text: &str, max: usize) -> String {
    text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect()
}

/// A string (or number, or boolean) member as bounded text; `None` when absent or blank.
pub fn text(value: Option<&Value>, max: usize) -> Option<String> {
    let text = match value? {
        Value::String(text) => bounded(text, max),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A non-blank string at a JSON pointer.
pub fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|text| !text.trim().is_empty())
}

/// One segment of a dotted `type`: lowercase `a-z`, `0-9`, `_` and `-`; anything else becomes `_`.
pub fn type_segment(text: &str) -> String {
    let segment: String = text
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' { c } else { '_' }
        })
        .collect();
    if segment.is_empty() { "unknown".to_owned() } else { segment }
}

/// A URI path segment for a `source`: no whitespace, no `/`.
pub fn source_segment(text: &str) -> String {
    let segment: String = text
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() || c.is_control() || c == '/' { '_' } else { c })
        .collect();
    if segment.is_empty() { "unknown".to_owned() } else { segment }
}

/// An RFC 3339 time as given, if it is one.
pub fn rfc3339(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|_| text.trim().to_owned())
}

/// Milliseconds since the Unix epoch as RFC 3339 (UTC).
pub fn from_millis(millis: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// An IP address in the form the server accepts, if `text` is one.
pub fn ip(text: &str) -> Option<String> {
    text.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// An `origin`: the client's address (kept only when it is one), its user agent (bounded) and the
/// service that recorded the event. The first two are personal: the server seals them.
pub fn origin(ip_text: Option<&str>, user_agent: Option<&Value>, service: &str) -> Value {
    json!({
        "ip": ip_text.and_then(ip),
        "user_agent": text(user_agent, limit::USER_AGENT),
        "service": service,
    })
}

/// Metadata within the schema's bounds: at most 50 keys (later ones are dropped), keys cut to 64
/// characters, values to 1024. Values are derived from source records, not asserted by a
/// producer, so card numbers and secrets in them are masked here rather than failing the event.
/// Never put personal values here: metadata is part of the hashed skeleton.
#[derive(Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    pub fn put(&mut self, key: &str, value: &str) {
        let key = bounded(key, limit::METADATA_KEY);
        let value = bounded(value, limit::METADATA_VALUE);
        if key.is_empty() || value.is_empty() || self.0.len() >= limit::METADATA_KEYS {
            return;
        }
        let (masked, _) = evident_wire::sensitive::mask_sensitive(&value);
        self.0.insert(key, Value::String(masked));
    }

    /// A scalar member (string, number, boolean); others are skipped.
    pub fn put_value(&mut self, key: &str, value: Option<&Value>) {
        if let Some(text) = text(value, limit::METADATA_VALUE) {
            self.put(key, &text);
        }
    }

    pub fn into_value(self) -> Option<Value> {
        (!self.0.is_empty()).then_some(Value::Object(self.0))
    }
}

/// An RFC 6901 reference token for `key`.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `changes` for an event, which the schema requires of successful create, update and delete
/// events:
/// - delete: `[{"field": "", "before": {"type", "id"}, "after": null}]`: the whole record, named as
///   the source names it (the first target), is gone (what it held is not in these sources);
/// - create and update: `fields` when the source says which fields got which values (and they fit
///   the server's limits); otherwise one change of the whole record whose `after` is the record's
///   identity (`{"type", "id"}` of the first target), since the source records no content.
///
/// Empty for other actions and for failures (a failed change changed nothing); the server asks
/// for changes of every other create, update and delete, including those whose outcome is not
/// known yet (an Azure `Started` record, a Kubernetes `RequestReceived` stage).
pub fn record_changes(action: &str, outcome: &str, fields: Vec<Value>, first_target: &Value) -> Vec<Value> {
    if !matches!(action, "create" | "update" | "delete") || outcome == "failure" {
        return Vec::new();
    }
    let identity = json!({"type": first_target["type"], "id": first_target["id"]});
    if action == "delete" {
        return vec![json!({"field": "", "before": identity, "after": null})];
    }
    if !fields.is_empty() && fields.len() <= limit::CHANGES && change_bytes(&fields) <= limit::CHANGE_BYTES {
        return fields;
    }
    vec![json!({"field": "", "after": identity})]
}

/// The change that keeps what a request asked (its parameters, a statement) sealed:
/// `{"field": "/request", "after": <request>}`. Such values may name people, and `changes` values
/// are the schema's personal part, so they are sealed with the event and erased with its subject;
/// record histories use only the changes of successful creates, updates and deletes, and read
/// this one as the request's own field. Card numbers and secrets in it are masked; a request too
/// large for the server's limit is kept as the start of its JSON text.
pub fn request_change(request: &Value) -> Option<Value> {
    let empty = match request {
        Value::Null => true,
        Value::Object(members) => members.is_empty(),
        Value::String(text) => text.trim().is_empty(),
        _ => false,
    };
    if empty {
        return None;
    }
    let mut request = request.clone();
    mask_strings(&mut request);
    let text = serde_json::to_string(&request).unwrap_or_default();
    if text.len() <= limit::CHANGE_BYTES {
        return Some(json!({"field": "/request", "after": request}));
    }
    let cut: String = text.chars().take(limit::CHANGE_BYTES / 4).collect();
    Some(json!({"field": "/request", "after": format!("{cut}... (cut: {} bytes in all)", text.len())}))
}

/// Masks card numbers and secrets in every string inside `value`: a request's words are the
/// source's, not a producer's assertion, so they are masked rather than failing the event.
fn mask_strings(value: &mut Value) {
    match value {
        Value::String(text) => *text = evident_wire::sensitive::mask_sensitive(text).0,
        Value::Array(items) => items.iter_mut().for_each(mask_strings),
        Value::Object(members) => members.values_mut().for_each(mask_strings),
        _ => {}
    }
}

/// `changes` as the event carries them: the record's, then the request's (card numbers and
/// secrets masked); `None` when empty.
pub fn changes(record: Vec<Value>, request: Option<Value>) -> Option<Value> {
    let mut changes = record;
    let fits = |request: &Value| {
        change_bytes(&changes) + serde_json::to_vec(request).map_or(0, |b| b.len()) <= limit::CHANGE_BYTES
            && changes.len() < limit::CHANGES
    };
    if let Some(request) = request.filter(fits) {
        changes.push(request);
    }
    if changes.is_empty() {
        return None;
    }
    let mut changes = Value::Array(changes);
    mask_strings(&mut changes);
    Some(changes)
}

fn change_bytes(changes: &[Value]) -> usize {
    changes.iter().map(|change| serde_json::to_vec(change).map_or(0, |b| b.len())).sum()
}

/// One change per member of `values`, `{"field": "/<key>", "after": <value>}` (nulls skipped).
pub fn after_fields(values: Option<&Map<String, Value>>) -> Vec<Value> {
    values
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| json!({"field": format!("/{}", pointer_token(key)), "after": value}))
        .collect()
}

/// A target `{"type", "id"}`, bounded.
pub fn target(target_type: &str, id: &str) -> Value {
    json!({"type": bounded(target_type, limit::TARGET_TYPE), "id": bounded(id, limit::TARGET_ID)})
}

/// Appends `target` unless it is there already, up to the schema's limit.
pub fn push_target(targets: &mut Vec<Value>, target: Value) {
    let blank =
        target["type"].as_str().is_none_or(str::is_empty) || target["id"].as_str().is_none_or(str::is_empty);
    if !blank && targets.len() < limit::TARGETS && !targets.contains(&target) {
        targets.push(target);
    }
}

/// Removes members that are `null`, empty strings or empty objects, so that optional parts the
/// source does not have are absent.
pub fn prune(value: &mut Value) {
    if let Value::Object(members) = value {
        for member in members.values_mut() {
            prune(member);
        }
        members.retain(|_, member| match member {
            Value::Null => false,
            Value::String(text) => !text.is_empty(),
            Value::Object(inner) => !inner.is_empty(),
            _ => true,
        });
    }
}
