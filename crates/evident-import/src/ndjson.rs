//! Evident's own events, one JSON object per line (or a JSON array of them): sent as they are.
//!
//! The producer chose every field, `id` included, so nothing is mapped; the server validates each
//! event and says what is wrong with it. A line that is not JSON, or not an object, is a bad line.

use serde_json::Value;

/// Whether a record looks like an Evident event: an `id` and one of `source`, `type`, `actor`.
pub fn looks_like(record: &Value) -> bool {
    record.get("id").is_some() && ["source", "type", "actor"].iter().any(|name| record.get(*name).is_some())
}

/// The event: the record itself, if it is an object.
pub fn event(record: Value) -> Result<Value, String> {
    match record {
        Value::Object(_) => Ok(record),
        other => Err(format!("an event must be a JSON object, not {}", kind(&other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
