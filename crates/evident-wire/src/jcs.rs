//! RFC 8785 JSON Canonicalization Scheme over `serde_json::Value`: object members sorted by their
//! names' UTF-16 code units, no white space, strings escaped as ECMAScript's `JSON.stringify`
//! does, numbers in ECMAScript's shortest round-trip form (`ryu-js`).
//!
//! Hand-written because it is on the append path of every event: the general-purpose serializer
//! we measured first spent a third of the ingest CPU buffering and re-sorting.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// The canonical bytes of a JSON value.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_value(&mut out, value);
    out
}

/// The canonical bytes of an object, and of the same object with `added` members (distinct
/// names; one a member already has replaces it), each member of `object` serialised once:
/// `(object, object with added)`. The append path digests the first and logs the second.
pub fn to_vec_and_extended(object: &Map<String, Value>, added: &[(&str, Value)]) -> (Vec<u8>, Vec<u8>) {
    let mut members: Vec<(&String, &Value)> = object.iter().collect();
    members.sort_by(|(a, _), (b, _)| utf16_order(a, b));
    let mut plain = Vec::with_capacity(512);
    let mut spans = Vec::with_capacity(members.len());
    plain.push(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            plain.push(b',');
        }
        let start = plain.len();
        write_member(&mut plain, name, value);
        spans.push(start..plain.len());
    }
    plain.push(b'}');
    let mut added: Vec<&(&str, Value)> = added.iter().collect();
    added.sort_by(|(a, _), (b, _)| utf16_order(a, b));
    let mut extended = Vec::with_capacity(plain.len() + 256);
    extended.push(b'{');
    let (mut next_member, mut next_added) =
        (members.iter().zip(spans).peekable(), added.into_iter().peekable());
    loop {
        let order = match (next_member.peek(), next_added.peek()) {
            (Some(((name, _), _)), Some((added_name, _))) => utf16_order(name, added_name),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        if extended.len() > 1 {
            extended.push(b',');
        }
        if order == Ordering::Less {
            let (_, span) = next_member.next().expect("peeked");
            extended.extend_from_slice(&plain[span]);
        } else {
            if order == Ordering::Equal {
                next_member.next();
            }
            let (name, value) = next_added.next().expect("peeked");
            write_member(&mut extended, name, value);
        }
    }
    extended.push(b'}');
    (plain, extended)
}

fn write_member(out: &mut Vec<u8>, name: &str, value: &Value) {
    write_string(out, name);
    out.push(b':');
    write_value(out, value);
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|(a, _), (b, _)| utf16_order(a, b));
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_member(out, name, value);
    }
    out.push(b'}');
}

/// Orders names by UTF-16 code units (RFC 8785 §3.2.3); ASCII names compare as bytes.
fn utf16_order(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.as_bytes().cmp(b.as_bytes());
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\x08' => b"\\b",
            b'\x0c' => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// RFC 8785 §3.2.2.3: numbers are IEEE 754 doubles printed as ECMAScript does.
fn write_number(out: &mut Vec<u8>, number: &Number) {
    const EXACT: u64 = 1 << 53;
    if let Some(n) = number.as_u64().filter(|n| *n <= EXACT) {
        out.extend_from_slice(n.to_string().as_bytes());
    } else if let Some(n) = number.as_i64().filter(|n| n.unsigned_abs() <= EXACT) {
        out.extend_from_slice(n.to_string().as_bytes());
    } else {
        let float = number.as_f64().unwrap_or(f64::NAN);
        if float.is_finite() {
            let mut buffer = ryu_js::Buffer::new();
            out.extend_from_slice(buffer.format_finite(float).as_bytes());
        } else {
            // serde_json never holds a non-finite number; keep the output well-formed anyway.
            out.extend_from_slice(b"null");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc8785_sorting_example() {
        // RFC 8785 §3.2.3.
        let value: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",
                "\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(String::from_utf8(to_vec(&value)).unwrap(), want);
    }

    #[test]
    fn rfc8785_numbers_and_escapes() {
        // RFC 8785 §3.2.2 example values.
        // Parsed from text so the RFC's literals stay exactly as written.
        let value: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#,
        )
        .unwrap();
        let want = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(String::from_utf8(to_vec(&value)).unwrap(), want);
        assert_eq!(to_vec(&json!(9007199254740993u64)), b"9007199254740992");
        assert_eq!(to_vec(&json!(-0.0)), b"0");
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The general-purpose `serde_jcs` crate is the oracle.
        #[test]
        fn agrees_with_serde_jcs(value in arbitrary_json()) {
            prop_assert_eq!(to_vec(&value), serde_jcs::to_vec(&value).unwrap());
        }

        /// Both byte strings are those of the object before and after inserting the members.
        #[test]
        fn extended_objects_are_the_objects_with_the_members_inserted(
            object in proptest::collection::btree_map(any::<String>(), arbitrary_json(), 0..8),
            added in proptest::collection::btree_map(
                prop_oneof![any::<String>(), Just("a".to_owned()), Just("é".to_owned())], arbitrary_json(), 0..5),
        ) {
            let mut object: Map<String, Value> = object.into_iter().collect();
            object.insert("a".into(), json!(1));
            let added: Vec<(&str, Value)> = added.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let (plain, extended) = to_vec_and_extended(&object, &added);
            prop_assert_eq!(plain, to_vec(&Value::Object(object.clone())));
            for (name, value) in &added {
                object.insert((*name).to_owned(), value.clone());
            }
            prop_assert_eq!(extended, to_vec(&Value::Object(object)));
        }
    }
}
