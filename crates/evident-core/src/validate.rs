//! Parsing and validation of one producer event (`EVENT-SCHEMA.md` §1): JSON in, an [`Event`] plus
//! warnings out, or every failing field and rule.
//!
//! Field names in errors are dotted paths with indices (`actor.id`, `targets[2].type`,
//! `metadata.region`); rules are the stable identifiers in [`rule`]. Where the schema is silent,
//! the rules are decided here:
//! - JSON `null` for a schema member means "absent" (except `changes[].before`/`after`, where it
//!   is a value); a metadata value must be a string. Duplicate object keys are invalid JSON.
//! - Lengths count `char`s; control characters are refused everywhere except inside
//!   `changes[].before`/`after`.
//! - Free text (`reason`, `actor.display`, `targets[].display`, `origin.user_agent`, metadata
//!   values, strings inside `changes[].before`/`after`) is screened by [`evident_wire::sensitive`];
//!   [`SensitiveTextPolicy`] decides between an error and masking with a warning.
//! - A malformed `correlation.traceparent` is dropped with a warning; a `correlation` or
//!   `actor.auth` left without members becomes `None`. `origin.ip` is stored in canonical form.
//! - A conditionally required `reason` must not be blank.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::event::{
    Actor, Auth, Change, Correlation, Event, EventOrigin, SensitiveTextPolicy, Target, TenantPolicy,
};
use evident_wire::Micros;
use evident_wire::names::{Action, ActorType, DataClass, Outcome, WireName};
use evident_wire::sensitive::{self, SensitiveKind};

/// Raw JSON of one event, at most.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
pub const MAX_TARGETS: usize = 100;
pub const MAX_CHANGES: usize = 200;
/// All `changes[].before` and `after` values together, serialized.
pub const MAX_CHANGE_VALUE_BYTES: usize = 64 * 1024;
pub const MAX_METADATA_KEYS: usize = 50;

/// `10000-01-01T00:00:00Z`: times must fall in years 1970 to 9999 (UTC).
const END_OF_YEAR_9999: Micros = Micros(253_402_300_800_000_000);

/// The rules a [`FieldError`] names.
pub mod rule {
    pub const REQUIRED: &str = "required";
    /// Wrong JSON type.
    pub const TYPE: &str = "type";
    pub const ENUM: &str = "enum";
    pub const LENGTH: &str = "length";
    pub const FORMAT: &str = "format";
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// A number out of bounds (reserved: no numeric member of an event is bounded today).
    pub const RANGE: &str = "range";
    pub const CARD_NUMBER: &str = "card_number";
    pub const SECRET: &str = "secret";
    pub const JSON: &str = "json";
    pub const SIZE: &str = "size";
    pub const DUPLICATE: &str = "duplicate";
    /// Required because of another field's value (`reason` when `outcome` is `failure`).
    pub const CONDITIONAL: &str = "conditional";
    pub const MIN_ITEMS: &str = "min_items";
    pub const MAX_ITEMS: &str = "max_items";
}

/// One failing field and rule, e.g. `{field: "actor.id", rule: "required", message: "actor.id is
/// required"}`. The field is `""` for the event as a whole. Messages never repeat the sensitive
/// text they refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub rule: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, rule: &'static str, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), rule, message: message.into() }
    }
}

/// A validated event plus non-fatal notes (a dropped traceparent, a masked card number).
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    pub event: Event,
    pub warnings: Vec<String>,
}

/// Parses and validates the raw JSON of one event: at most [`MAX_EVENT_BYTES`], valid JSON without
/// duplicate keys, an object.
pub fn parse_event_json(bytes: &[u8], policy: &TenantPolicy) -> Result<Validated, Vec<FieldError>> {
    if bytes.len() > MAX_EVENT_BYTES {
        let message = format!("the event is {} bytes; at most {MAX_EVENT_BYTES} are accepted", bytes.len());
        return Err(vec![FieldError::new("", rule::SIZE, message)]);
    }
    let value = parse_json(bytes).map_err(|err| vec![err])?;
    validate_event(&value, policy)
}

/// Parses JSON text, refusing duplicate object keys (RFC 8259 §4 leaves them to the parser; one
/// event must not mean different things to different parsers). Errors name line and column.
pub fn parse_json(bytes: &[u8]) -> Result<Value, FieldError> {
    evident_wire::json::parse(bytes)
        .map_err(|err| FieldError::new("", rule::JSON, format!("invalid JSON: {err}")))
}

/// Validates one event, reporting every failing field.
pub fn validate_event(value: &Value, policy: &TenantPolicy) -> Result<Validated, Vec<FieldError>> {
    let mut checker = Checker { policy, errors: Vec::new(), warnings: Vec::new() };
    let event = checker.event(value);
    match event {
        Some(event) if checker.errors.is_empty() => Ok(Validated { event, warnings: checker.warnings }),
        _ => {
            debug_assert!(!checker.errors.is_empty(), "an incomplete event must come with an error");
            Err(checker.errors)
        }
    }
}

// ---- the event and its members ----

const EVENT_FIELDS: &[&str] = &[
    "id",
    "source",
    "type",
    "action",
    "time",
    "actor",
    "subject",
    "targets",
    "outcome",
    "reason",
    "changes",
    "origin",
    "correlation",
    "severity",
    "data_classes",
    "metadata",
];
const ACTOR_FIELDS: &[&str] = &["id", "type", "display", "on_behalf_of", "session", "auth"];
const AUTH_FIELDS: &[&str] = &["method", "mfa"];
const TARGET_FIELDS: &[&str] = &["type", "id", "display"];
const CHANGE_FIELDS: &[&str] = &["field", "before", "after"];
const ORIGIN_FIELDS: &[&str] = &["ip", "user_agent", "host", "service"];
const CORRELATION_FIELDS: &[&str] = &["traceparent", "request_id", "correlation_id"];

const EVENT_ID: Text = Text::plain(1, 128);
const SOURCE: Text = Text { min: 1, max: 512, kind: TextKind::UriReference };
const EVENT_TYPE: Text = Text::plain(1, 128);
const ACTOR_ID: Text = Text::plain(1, 256);
const ON_BEHALF_OF: Text = Text::plain(1, 256);
const SESSION: Text = Text::plain(0, 256);
const AUTH_METHOD: Text = Text::plain(0, 64);
const DISPLAY: Text = Text::free(0, 256);
const SUBJECT: Text = Text::plain(1, 256);
const TARGET_TYPE: Text = Text::plain(1, 128);
const TARGET_ID: Text = Text::plain(1, 256);
const REASON: Text = Text::free(0, 2048);
const POINTER: Text = Text::plain(0, 1024);
const USER_AGENT: Text = Text::free(0, 1024);
const HOST: Text = Text::plain(0, 256);
const SERVICE: Text = Text::plain(0, 256);
const REQUEST_ID: Text = Text::plain(0, 128);
const METADATA_KEY: Text = Text::plain(1, 64);
const METADATA_VALUE: Text = Text::free(0, 1024);

impl Checker<'_> {
    fn event(&mut self, value: &Value) -> Option<Event> {
        let Some(members) = value.as_object() else {
            self.error("", rule::TYPE, "an event must be a JSON object");
            return None;
        };
        let obj = self.members(members, String::new(), EVENT_FIELDS);
        let id = self.required_text(&obj, "id", EVENT_ID);
        let source = self.required_text(&obj, "source", SOURCE);
        let event_type = self.event_type(&obj);
        let action = self.required_choice::<Action>(&obj, "action");
        let time = self.time(&obj);
        let actor = self.required(&obj, "actor").and_then(|value| self.actor(value, obj.field("actor")));
        let subject = self.optional_text(&obj, "subject", SUBJECT);
        let targets = self.targets(&obj);
        let outcome = self.required_choice::<Outcome>(&obj, "outcome");
        let reason = self.optional_text(&obj, "reason", REASON);
        let changes = self.changes(&obj);
        let origin = self.origin(&obj);
        let correlation =
            obj.get("correlation").and_then(|value| self.correlation(value, obj.field("correlation")));
        let severity = obj.get("severity").and_then(|value| self.choice(value, &obj.field("severity")));
        let data_classes = self.data_classes(&obj);
        let metadata = self.metadata(&obj);
        self.conditionally_required(&obj, action, outcome, &data_classes);
        Some(Event {
            id: id?,
            source: source?,
            event_type: event_type?,
            action: action?,
            time: time?,
            actor: actor?,
            subject,
            targets: targets?,
            outcome: outcome?,
            reason,
            changes,
            origin: origin?,
            correlation,
            severity: severity.unwrap_or_default(),
            data_classes,
            metadata,
        })
    }

    /// `type`: two or more dot-separated segments of `[a-z0-9_-]`.
    fn event_type(&mut self, obj: &Obj) -> Option<String> {
        let text = self.required_text(obj, "type", EVENT_TYPE)?;
        let segment_ok = |segment: &str| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if text.split('.').count() < 2 || !text.split('.').all(segment_ok) {
            let message = "type must be two or more dot-separated segments of a-z, 0-9, `_` and `-`, \
                           e.g. customer.record.updated";
            self.error(obj.field("type"), rule::FORMAT, message);
            return None;
        }
        Some(text)
    }

    /// `time`: RFC 3339, in years 1970 to 9999 (UTC).
    fn time(&mut self, obj: &Obj) -> Option<Micros> {
        let value = self.required(obj, "time")?;
        let field = obj.field("time");
        let Some(text) = value.as_str() else {
            self.error(&field, rule::TYPE, format!("{field} must be a string"));
            return None;
        };
        let time = Micros::parse_rfc3339(text).filter(|time| (Micros(0)..END_OF_YEAR_9999).contains(time));
        if time.is_none() {
            let message = format!(
                "{field} must be an RFC 3339 date-time between 1970 and 9999, e.g. 2026-11-26T10:53:25.123Z"
            );
            self.error(&field, rule::FORMAT, message);
        }
        time
    }

    fn actor(&mut self, value: &Value, path: String) -> Option<Actor> {
        let obj = self.object(value, path, ACTOR_FIELDS)?;
        let id = self.required_text(&obj, "id", ACTOR_ID);
        let actor_type =
            obj.get("type").and_then(|value| self.choice::<ActorType>(value, &obj.field("type")));
        let display = self.optional_text(&obj, "display", DISPLAY);
        let on_behalf_of = self.optional_text(&obj, "on_behalf_of", ON_BEHALF_OF);
        let session = self.optional_text(&obj, "session", SESSION);
        let auth = obj.get("auth").and_then(|value| self.auth(value, obj.field("auth")));
        Some(Actor { id: id?, actor_type, display, on_behalf_of, session, auth })
    }

    fn auth(&mut self, value: &Value, path: String) -> Option<Auth> {
        let obj = self.object(value, path, AUTH_FIELDS)?;
        let method = self.optional_text(&obj, "method", AUTH_METHOD);
        let mfa = obj.get("mfa").and_then(|value| {
            let field = obj.field("mfa");
            let mfa = value.as_bool();
            if mfa.is_none() {
                self.error(&field, rule::TYPE, format!("{field} must be true or false"));
            }
            mfa
        });
        (method.is_some() || mfa.is_some()).then_some(Auth { method, mfa })
    }

    fn targets(&mut self, obj: &Obj) -> Option<Vec<Target>> {
        let value = self.required(obj, "targets")?;
        let field = obj.field("targets");
        let items = self.array(value, &field, 1, MAX_TARGETS)?;
        let targets: Vec<Option<Target>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| self.target(item, item_path(&field, index)))
            .collect();
        targets.into_iter().collect()
    }

    fn target(&mut self, value: &Value, path: String) -> Option<Target> {
        let obj = self.object(value, path, TARGET_FIELDS)?;
        let target_type = self.required_text(&obj, "type", TARGET_TYPE);
        let id = self.required_text(&obj, "id", TARGET_ID);
        let display = self.optional_text(&obj, "display", DISPLAY);
        Some(Target { target_type: target_type?, id: id?, display })
    }

    /// `reason` when the outcome is a failure, or for a read of personal data when the tenant requires
    /// a purpose (then it must not be blank); `changes` for actions that change a record (then it
    /// must not be empty) unless it failed.
    fn conditionally_required(
        &mut self,
        obj: &Obj,
        action: Option<Action>,
        outcome: Option<Outcome>,
        data_classes: &[DataClass],
    ) {
        let reason_blank = match obj.get("reason") {
            None => true,
            Some(value) => value.as_str().is_some_and(|text| text.trim().is_empty()),
        };
        let personal_read = self.policy.require_purpose_for_personal_reads
            && action.is_some_and(Action::is_read)
            && !data_classes.is_empty();
        if reason_blank && outcome == Some(Outcome::Failure) {
            self.error(obj.field("reason"), rule::CONDITIONAL, "reason is required when outcome is failure");
        } else if reason_blank && personal_read {
            let message = "reason (the purpose of the access) is required for reads of personal data \
                           (an event with data_classes)";
            self.error(obj.field("reason"), rule::CONDITIONAL, message);
        }

        let changes_empty = match obj.get("changes") {
            None => true,
            Some(value) => value.as_array().is_some_and(Vec::is_empty),
        };
        // A failed change changed nothing, so it need not say what would have changed.
        let succeeded = outcome != Some(Outcome::Failure);
        if let Some(action) = action.filter(|action| action.changes_record() && changes_empty && succeeded) {
            let message =
                format!("changes is required and must not be empty for action `{}`", action.as_str());
            self.error(obj.field("changes"), rule::CONDITIONAL, message);
        }
    }

    /// `changes`: at most [`MAX_CHANGES`], their values at most [`MAX_CHANGE_VALUE_BYTES`] together.
    fn changes(&mut self, obj: &Obj) -> Vec<Change> {
        let Some(value) = obj.get("changes") else { return Vec::new() };
        let field = obj.field("changes");
        let Some(items) = self.array(value, &field, 0, MAX_CHANGES) else { return Vec::new() };
        let value_bytes: usize = items.iter().map(change_value_bytes).sum();
        if value_bytes > MAX_CHANGE_VALUE_BYTES {
            let message = format!(
                "the before and after values of {field} take {value_bytes} bytes; \
                 at most {MAX_CHANGE_VALUE_BYTES} are accepted"
            );
            self.error(&field, rule::SIZE, message);
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| self.change(item, item_path(&field, index)))
            .collect()
    }

    fn change(&mut self, value: &Value, path: String) -> Option<Change> {
        let obj = self.object(value, path, CHANGE_FIELDS)?;
        let field = self.required_text(&obj, "field", POINTER).filter(|pointer| {
            let valid = is_json_pointer(pointer);
            if !valid {
                let field = obj.field("field");
                let message =
                    format!("{field} must be an RFC 6901 JSON pointer, e.g. /email or /address/city");
                self.error(field, rule::FORMAT, message);
            }
            valid
        });
        let before = obj.members.get("before").map(|value| self.change_value(value, &obj.field("before")));
        let after = obj.members.get("after").map(|value| self.change_value(value, &obj.field("after")));
        Some(Change { field: field?, before, after })
    }

    /// A `before` or `after` value, with the strings inside it screened.
    fn change_value(&mut self, value: &Value, field: &str) -> Value {
        let mut value = value.clone();
        let mut kinds = Vec::new();
        screen_strings(&mut value, self.policy.sensitive_text == SensitiveTextPolicy::Mask, &mut kinds);
        kinds.sort();
        kinds.dedup();
        self.report_sensitive(field, &kinds);
        value
    }

    /// `origin`: an object with at least one member.
    fn origin(&mut self, obj: &Obj) -> Option<EventOrigin> {
        let value = self.required(obj, "origin")?;
        let origin = self.object(value, obj.field("origin"), ORIGIN_FIELDS)?;
        let n_members = ORIGIN_FIELDS.iter().filter(|name| origin.get(name).is_some()).count();
        if n_members == 0 {
            let message = format!("{} must have at least one of {}", origin.path, ORIGIN_FIELDS.join(", "));
            self.error(&origin.path, rule::MIN_ITEMS, message);
            return None;
        }
        Some(EventOrigin {
            ip: origin.get("ip").and_then(|value| self.ip_address(value, &origin.field("ip"))),
            user_agent: self.optional_text(&origin, "user_agent", USER_AGENT),
            host: self.optional_text(&origin, "host", HOST),
            service: self.optional_text(&origin, "service", SERVICE),
        })
    }

    /// An IPv4 or IPv6 address, in canonical form.
    fn ip_address(&mut self, value: &Value, field: &str) -> Option<String> {
        let Some(text) = value.as_str() else {
            self.error(field, rule::TYPE, format!("{field} must be a string"));
            return None;
        };
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip.to_string()),
            Err(_) => {
                self.error(field, rule::FORMAT, format!("{field} must be an IPv4 or IPv6 address"));
                None
            }
        }
    }

    fn correlation(&mut self, value: &Value, path: String) -> Option<Correlation> {
        let obj = self.object(value, path, CORRELATION_FIELDS)?;
        let correlation = Correlation {
            traceparent: obj
                .get("traceparent")
                .and_then(|value| self.traceparent(value, &obj.field("traceparent"))),
            request_id: self.optional_text(&obj, "request_id", REQUEST_ID),
            correlation_id: self.optional_text(&obj, "correlation_id", REQUEST_ID),
        };
        (correlation != Correlation::default()).then_some(correlation)
    }

    /// A W3C traceparent; a malformed one is dropped with a warning, never an error.
    fn traceparent(&mut self, value: &Value, field: &str) -> Option<String> {
        let checked =
            value.as_str().ok_or("not a string").and_then(|text| check_traceparent(text).map(|()| text));
        match checked {
            Ok(text) => Some(text.to_owned()),
            Err(why) => {
                self.warnings.push(format!("{field}: malformed W3C traceparent dropped ({why})"));
                None
            }
        }
    }

    /// `data_classes`: known classes, each at most once.
    fn data_classes(&mut self, obj: &Obj) -> Vec<DataClass> {
        let Some(value) = obj.get("data_classes") else { return Vec::new() };
        let field = obj.field("data_classes");
        let Some(items) = self.array(value, &field, 0, usize::MAX) else { return Vec::new() };
        let mut classes = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_field = item_path(&field, index);
            let Some(class) = self.choice::<DataClass>(item, &item_field) else { continue };
            if classes.contains(&class) {
                let message = format!("{item_field} repeats `{}`", class.as_str());
                self.error(item_field, rule::DUPLICATE, message);
            } else {
                classes.push(class);
            }
        }
        classes
    }

    /// `metadata`: string to string, bounded.
    fn metadata(&mut self, obj: &Obj) -> BTreeMap<String, String> {
        let mut metadata = BTreeMap::new();
        let Some(value) = obj.get("metadata") else { return metadata };
        let field = obj.field("metadata");
        let Some(members) = value.as_object() else {
            self.error(&field, rule::TYPE, format!("{field} must be an object of strings"));
            return metadata;
        };
        if members.len() > MAX_METADATA_KEYS {
            let message =
                format!("{field} has {} keys; at most {MAX_METADATA_KEYS} are accepted", members.len());
            self.error(&field, rule::MAX_ITEMS, message);
        }
        for (key, value) in members {
            let entry_field = child_path(&field, key);
            let key_ok = self.text_rules(key, &entry_field, "key of", METADATA_KEY).is_some();
            if let Some(text) = self.text(value, &entry_field, METADATA_VALUE).filter(|_| key_ok) {
                metadata.insert(key.clone(), text);
            }
        }
        metadata
    }
}

/// Serialized size of a change's `before` and `after`, as sent.
fn change_value_bytes(change: &Value) -> usize {
    let Some(members) = change.as_object() else { return 0 };
    ["before", "after"]
        .iter()
        .filter_map(|name| members.get(*name))
        .map(|value| {
            let mut counter = ByteCounter(0);
            serde_json::to_writer(&mut counter, value).expect("counting cannot fail");
            counter.0
        })
        .sum()
}

struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Masks (when `apply`) the sensitive runs in every string inside `value`; collects their kinds.
fn screen_strings(value: &mut Value, apply: bool, kinds: &mut Vec<SensitiveKind>) {
    match value {
        Value::String(text) => {
            let (masked, found) = sensitive::mask_sensitive(text);
            if !found.is_empty() {
                kinds.extend(found);
                if apply {
                    *text = masked;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| screen_strings(item, apply, kinds)),
        Value::Object(members) => members.values_mut().for_each(|item| screen_strings(item, apply, kinds)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// RFC 6901: empty, or `/`-prefixed reference tokens where `~` is always `~0` or `~1`.
fn is_json_pointer(text: &str) -> bool {
    let bytes = text.as_bytes();
    let escapes_ok =
        bytes.iter().enumerate().all(|(i, &b)| b != b'~' || matches!(bytes.get(i + 1), Some(b'0' | b'1')));
    (text.is_empty() || text.starts_with('/')) && escapes_ok
}

/// W3C Trace Context §3.2: `version-traceid-parentid-flags`, lowercase hex.
fn check_traceparent(text: &str) -> Result<(), &'static str> {
    const VERSION_00_LEN: usize = 55;
    const MAX_LEN: usize = 512;
    let bytes = text.as_bytes();
    let hex = |range: std::ops::Range<usize>| {
        bytes[range].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let zeros = |range: std::ops::Range<usize>| bytes[range].iter().all(|&b| b == b'0');
    if bytes.len() < VERSION_00_LEN || bytes.len() > MAX_LEN {
        return Err("wrong length");
    }
    if [2, 35, 52].iter().any(|&at| bytes[at] != b'-') {
        return Err("wrong separators");
    }
    if !hex(0..2) || bytes[0..2] == *b"ff" {
        return Err("bad version");
    }
    if !hex(3..35) || zeros(3..35) {
        return Err("bad trace id");
    }
    if !hex(36..52) || zeros(36..52) {
        return Err("bad parent id");
    }
    if !hex(53..55) {
        return Err("bad flags");
    }
    let version_00 = bytes[0..2] == *b"00";
    if (version_00 && bytes.len() != VERSION_00_LEN) || (bytes.len() > VERSION_00_LEN && bytes[55] != b'-') {
        return Err("wrong length");
    }
    Ok(())
}

// ---- the checker: errors, warnings and the rules shared by every member ----

/// Validation state: the tenant's policy and everything found so far.
struct Checker<'p> {
    policy: &'p TenantPolicy,
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

/// A JSON object under validation, with its path.
struct Obj<'v> {
    members: &'v Map<String, Value>,
    path: String,
}

impl<'v> Obj<'v> {
    fn field(&self, name: &str) -> String {
        child_path(&self.path, name)
    }

    /// A member; JSON `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'v Value> {
        self.members.get(name).filter(|value| !value.is_null())
    }
}

/// Rules for a string member: length bounds in `char`s, and what else to check.
#[derive(Clone, Copy)]
struct Text {
    min: usize,
    max: usize,
    kind: TextKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// No control characters.
    Plain,
    /// No control characters and no whitespace.
    UriReference,
    /// No control characters; screened for card numbers and secrets.
    Free,
}

impl Text {
    const fn plain(min: usize, max: usize) -> Text {
        Text { min, max, kind: TextKind::Plain }
    }

    const fn free(min: usize, max: usize) -> Text {
        Text { min, max, kind: TextKind::Free }
    }
}

impl Checker<'_> {
    fn error(&mut self, field: impl Into<String>, rule: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, rule, message));
    }

    /// The object at `path`, its unknown members reported.
    fn object<'v>(&mut self, value: &'v Value, path: String, known: &[&str]) -> Option<Obj<'v>> {
        match value.as_object() {
            Some(members) => Some(self.members(members, path, known)),
            None => {
                self.error(&path, rule::TYPE, format!("{path} must be an object"));
                None
            }
        }
    }

    fn members<'v>(&mut self, members: &'v Map<String, Value>, path: String, known: &[&str]) -> Obj<'v> {
        let obj = Obj { members, path };
        for name in members.keys().filter(|name| !known.contains(&name.as_str())) {
            let message = match closest(name, known) {
                Some(suggestion) => format!("unknown field `{name}`; did you mean `{suggestion}`?"),
                None => format!("unknown field `{name}`"),
            };
            self.error(obj.field(name), rule::UNKNOWN_FIELD, message);
        }
        obj
    }

    fn required<'v>(&mut self, obj: &Obj<'v>, name: &str) -> Option<&'v Value> {
        let value = obj.get(name);
        if value.is_none() {
            let field = obj.field(name);
            self.error(&field, rule::REQUIRED, format!("{field} is required"));
        }
        value
    }

    /// An array of `min..=max` items (the count is reported, the items are returned anyway).
    fn array<'v>(&mut self, value: &'v Value, field: &str, min: usize, max: usize) -> Option<&'v [Value]> {
        let Some(items) = value.as_array() else {
            self.error(field, rule::TYPE, format!("{field} must be an array"));
            return None;
        };
        if items.len() < min {
            self.error(field, rule::MIN_ITEMS, format!("{field} must have at least {min} item(s)"));
        } else if items.len() > max {
            let message = format!("{field} has {} items; at most {max} are accepted", items.len());
            self.error(field, rule::MAX_ITEMS, message);
        }
        Some(items)
    }

    fn choice<T: WireName>(&mut self, value: &Value, field: &str) -> Option<T> {
        let parsed = value.as_str().and_then(T::from_wire_name);
        if parsed.is_none() {
            let names: Vec<&str> = T::ALL.iter().map(|variant| variant.wire_name()).collect();
            let rule = if value.is_string() { rule::ENUM } else { rule::TYPE };
            self.error(field, rule, format!("{field} must be one of: {}", names.join(", ")));
        }
        parsed
    }

    fn required_choice<T: WireName>(&mut self, obj: &Obj, name: &str) -> Option<T> {
        self.required(obj, name).and_then(|value| self.choice(value, &obj.field(name)))
    }

    fn required_text(&mut self, obj: &Obj, name: &str, spec: Text) -> Option<String> {
        self.required(obj, name).and_then(|value| self.text(value, &obj.field(name), spec))
    }

    fn optional_text(&mut self, obj: &Obj, name: &str, spec: Text) -> Option<String> {
        obj.get(name).and_then(|value| self.text(value, &obj.field(name), spec))
    }

    /// A string following `spec`; `None` when it does not (the errors are recorded).
    fn text(&mut self, value: &Value, field: &str, spec: Text) -> Option<String> {
        let Some(text) = value.as_str() else {
            self.error(field, rule::TYPE, format!("{field} must be a string"));
            return None;
        };
        self.text_rules(text, field, "", spec)
    }

    /// `text` checked against `spec`, masked when the policy says so. `what` prefixes the field in
    /// messages (`"key of"` for a metadata key).
    fn text_rules(&mut self, text: &str, field: &str, what: &str, spec: Text) -> Option<String> {
        let subject = if what.is_empty() { field.to_owned() } else { format!("{what} {field}") };
        let n_errors = self.errors.len();
        if text.chars().any(char::is_control) {
            self.error(field, rule::FORMAT, format!("{subject} must not contain control characters"));
        }
        if spec.kind == TextKind::UriReference && text.chars().any(char::is_whitespace) {
            self.error(field, rule::FORMAT, format!("{subject} must be a URI reference without whitespace"));
        }
        let text = match spec.kind {
            TextKind::Free => self.screen_text(text, field),
            TextKind::Plain | TextKind::UriReference => text.to_owned(),
        };
        let n_chars = text.chars().count();
        if n_chars < spec.min || n_chars > spec.max {
            let message = match (spec.min, n_chars) {
                (1, 0) => format!("{subject} must not be empty"),
                (0, _) => format!("{subject} must be at most {} characters (got {n_chars})", spec.max),
                _ => format!("{subject} must be {} to {} characters (got {n_chars})", spec.min, spec.max),
            };
            self.error(field, rule::LENGTH, message);
        }
        (self.errors.len() == n_errors).then_some(text)
    }

    /// Free text with card numbers and secrets refused or masked, per the tenant's policy.
    fn screen_text(&mut self, text: &str, field: &str) -> String {
        let (masked, kinds) = sensitive::mask_sensitive(text);
        self.report_sensitive(field, &kinds);
        match self.policy.sensitive_text {
            SensitiveTextPolicy::Reject => text.to_owned(),
            SensitiveTextPolicy::Mask => masked,
        }
    }

    /// An error (policy `Reject`) or a warning (policy `Mask`) per kind found in `field`. Never
    /// repeats the sensitive text.
    fn report_sensitive(&mut self, field: &str, kinds: &[SensitiveKind]) {
        for &kind in kinds {
            let what = match kind {
                SensitiveKind::CardNumber => "card number",
                SensitiveKind::Secret => "secret",
            };
            match self.policy.sensitive_text {
                SensitiveTextPolicy::Reject => {
                    let message = match kind {
                        SensitiveKind::CardNumber => format!(
                            "{field} contains a card number (a Luhn-valid run of 13 to 19 digits); \
                             remove it or mask all but the last four digits"
                        ),
                        SensitiveKind::Secret => format!(
                            "{field} contains a secret (a password, token, API key or private key); remove it"
                        ),
                    };
                    self.error(field, kind.as_str(), message);
                }
                SensitiveTextPolicy::Mask => self.warnings.push(format!("field {field}: {what} masked")),
            }
        }
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") }
}

fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The known name closest to `name`, if it is within 2 edits and the edits are at most a third of
/// `name` (so `actr` suggests `actor`, but `kind` does not suggest `id`).
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    const MAX_DISTANCE: usize = 2;
    let n_chars = name.chars().count();
    let max_distance = (n_chars / 3).clamp(1, MAX_DISTANCE);
    known
        .iter()
        .filter(|candidate| n_chars.abs_diff(candidate.chars().count()) <= max_distance)
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, _)| *distance <= max_distance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance in `char`s, counting insertions, deletions, substitutions and transpositions of
/// adjacent characters (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // distances[i][j]: between the first i chars of a and the first j chars of b.
    let mut distances = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in distances.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in distances[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = distances[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(distances[i - 1][j] + 1).min(distances[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(distances[i - 2][j - 2] + 1);
            }
            distances[i][j] = best;
        }
    }
    distances[a.len()][b.len()]
}
