//! JSON text as the wire reads it: objects with a repeated key are refused (RFC 8259 §4 leaves
//! them to the parser; one event must not mean different things to different parsers).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses JSON text, refusing duplicate object keys. Errors name line and column.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<UniqueKeys>(bytes).map(|UniqueKeys(value)| value)
}

/// A JSON value whose objects have no repeated keys.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UniqueKeys, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            let UniqueKeys(value) = map.next_value()?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// What stops [`for_each_item`] early.
#[derive(Debug, PartialEq, Eq)]
pub enum ArrayError {
    /// More than the allowed number of items; nothing after the limit was read.
    TooMany(usize),
    /// The text is not one JSON array (the message names line and column).
    Invalid(String),
}

/// One item of an array that is not handed over as a value.
#[derive(Debug, PartialEq, Eq)]
pub enum ItemError {
    /// Its text is longer than the limit: it was never parsed.
    TooLarge,
    /// Its text does not parse (a repeated key).
    Invalid(String),
}

/// Hands each item of the JSON array `bytes` to `each`, in order, one at a time, so that only one
/// item is ever materialised: an item longer than `max_item_bytes` is measured, not parsed, and
/// reading stops after `max_items` items.
pub fn for_each_item(
    bytes: &[u8],
    max_items: usize,
    max_item_bytes: usize,
    each: &mut dyn FnMut(Result<Value, ItemError>),
) -> Result<usize, ArrayError> {
    let too_many = std::cell::Cell::new(false);
    let visitor = ItemsVisitor { max_items, max_item_bytes, each, too_many: &too_many };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let counted = deserializer.deserialize_seq(visitor).and_then(|n| deserializer.end().map(|()| n));
    match counted {
        Ok(n) => Ok(n),
        Err(_) if too_many.get() => Err(ArrayError::TooMany(max_items)),
        Err(err) => Err(ArrayError::Invalid(err.to_string())),
    }
}

struct ItemsVisitor<'a, 'f> {
    max_items: usize,
    max_item_bytes: usize,
    each: &'a mut (dyn FnMut(Result<Value, ItemError>) + 'f),
    too_many: &'a std::cell::Cell<bool>,
}

impl<'de> Visitor<'de> for ItemsVisitor<'_, '_> {
    type Value = usize;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
            if count == self.max_items {
                self.too_many.set(true);
                return Err(de::Error::custom("too many items"));
            }
            count += 1;
            let text = raw.get();
            (self.each)(if text.len() > self.max_item_bytes {
                Err(ItemError::TooLarge)
            } else {
                parse(text.as_bytes()).map_err(|err| ItemError::Invalid(err.to_string()))
            });
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_items_are_measured_before_they_are_parsed_and_counted() {
        let mut seen = Vec::new();
        let text = br#"[{"a": 1}, [0, 0, 0, 0, 0, 0], {"b": 1, "b": 2}, 7]"#;
        let n = for_each_item(text, 10, 17, &mut |item| seen.push(item)).expect("an array");
        assert_eq!(n, 4);
        assert_eq!(seen[0], Ok(serde_json::json!({"a": 1})));
        assert_eq!(seen[1], Err(ItemError::TooLarge));
        assert!(matches!(&seen[2], Err(ItemError::Invalid(e)) if e.contains("duplicate key")));
        assert_eq!(seen[3], Ok(serde_json::json!(7)));
        let zeros = format!("[{}0]", "0,".repeat(100_000));
        let mut calls = 0;
        let refused = for_each_item(zeros.as_bytes(), 10, 100, &mut |_| calls += 1);
        assert_eq!((refused, calls), (Err(ArrayError::TooMany(10)), 10), "stops after the limit");
        assert!(matches!(for_each_item(b"{}", 10, 10, &mut |_| {}), Err(ArrayError::Invalid(_))));
        assert!(matches!(for_each_item(b"[1] x", 10, 10, &mut |_| {}), Err(ArrayError::Invalid(_))));
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        assert!(parse(br#"{"a": 1, "b": [{"c": 2, "d": 3}]}"#).is_ok());
        for text in [r#"{"a": 1, "a": 1}"#, r#"[{"b": {"c": 1, "c": 2}}]"#] {
            let error = parse(text.as_bytes()).expect_err(text).to_string();
            assert!(error.starts_with("duplicate key `"), "{text}: {error}");
        }
    }
}
