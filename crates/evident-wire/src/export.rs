//! Export bundles: a query's events as of one checkpoint, in a form that verifies offline. This
//! module owns the format (its constant, its lines, the manifest text and digest); the server
//! writes with it, and `evident-client`'s verifier reads with it.
//!
//! # Format (`evident-export/v1`)
//!
//! The server answers `GET /v1/export?<search filters>[&purpose=...]` with NDJSON, which the CLI
//! writes unchanged as `bundle.ndjson` in the bundle directory:
//!
//! 1. A header line:
//!    `{"format":"evident-export/v1","origin":O,"tree_size":N,"checkpoint":C,"vkey":V,"query":Q}`,
//!    where `C` is the signed checkpoint note at size `N`, `V` the log's verifier key (informative:
//!    verification uses a key the verifier trusts), and `Q` the filters as a JSON object of strings.
//! 2. One line per event, oldest first: in increasing (event `time`, index), the order in which the
//!    server pages through the query:
//!    `{"index":I,"event_id":E,"entry":B,"proof":[H,...],"event":J,"personal":P,"previous":R}`, where `B` is
//!    the base64 of the exact entry bytes (the canonical skeleton), `H` the base64 hashes of its
//!    inclusion proof at size `N`, `J` the event as JSON (the skeleton, with personal values merged
//!    in when `P` is present), and `P`, only for keys allowed to see personal data,
//!    `{"salt":S,"part":X}`: the salt (base64) and the personal part (`{pointer: value}`) whose
//!    `SHA-256(salt || JCS(part))` must equal the entry's `pii_commitment`; `R`, absent on the
//!    first line, is `{"index":I,"event_id":E}` of the event line before this one.
//! 3. A trailer line `{"manifest":M,"last":R}`: `R` names the last event line as above (absent
//!    when there is none), and `M` is a signed note by the log's key whose text is
//!
//!    ```text
//!    evident-export/v1
//!    <origin>
//!    <tree_size>
//!    <count>
//!    <base64 SHA-256 over the events, in order, of (8-byte big-endian index || leaf hash)>
//!    <JCS of the query object>
//!    ```
//!
//!    so that dropping, adding or reordering events, or changing the query, is caught.
//!
//! The `previous` and `last` links are not signed: in a genuine bundle each names the line before
//! it, which verifiers check; when events were dropped, the link of the line after the gap (or the
//! trailer's) names the missing event, so that the failure can say which one it was.
//!
//! Next to `bundle.ndjson`, `evident export` writes two derived views for people and spreadsheets:
//! `events.jsonl` (the `J` values, one per line, in bundle order) and `events.csv` (one row per
//! event, columns [`CSV_COLUMNS`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use evident_tlog::{Hash, TreeSize, leaf_hash};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::filter::Filter;

/// The format line of a bundle header and of its manifest.
pub const FORMAT: &str = "evident-export/v1";
/// The bundle proper, as the server streamed it.
pub const BUNDLE_FILE: &str = "bundle.ndjson";
/// The events, one JSON object per line.
pub const EVENTS_JSONL: &str = "events.jsonl";
/// The events as a table.
pub const EVENTS_CSV: &str = "events.csv";
/// The columns of `events.csv`.
pub const CSV_COLUMNS: [&str; 14] = [
    "index",
    "event_id",
    "time",
    "recorded_at",
    "tenant",
    "source",
    "type",
    "action",
    "outcome",
    "actor",
    "subject",
    "targets",
    "reason",
    "personal_included",
];

/// A line of `bundle.ndjson` that is not in the format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A line that names no event.
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    /// An event line with a bad field.
    #[error("event at line {line} (index {index}, event_id {event_id}): {reason}")]
    Event { line: usize, index: u64, event_id: String, reason: String },
}

/// The header line of a bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub origin: String,
    pub tree_size: u64,
    pub checkpoint: String,
    /// The log's verifier key as the server stated it (informative, not trusted).
    pub vkey: String,
    /// The query as stated: filter names to strings.
    pub query: Map<String, Value>,
}

impl Header {
    /// The header line (without its newline).
    pub fn to_line(&self) -> Vec<u8> {
        let value = json!({
            "format": FORMAT, "origin": self.origin, "tree_size": self.tree_size,
            "checkpoint": self.checkpoint, "vkey": self.vkey, "query": self.query,
        });
        serde_json::to_vec(&value).expect("JSON serialises")
    }

    /// The stated query as a filter.
    pub fn filter(&self) -> Result<Filter, crate::filter::Invalid> {
        Filter::from_pairs(
            self.query.iter().map(|(name, value)| (name.as_str(), value.as_str().unwrap_or_default())),
        )
    }
}

/// One event line of a bundle, decoded but not yet checked.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLine {
    /// 1-based line number in `bundle.ndjson` (0 when writing).
    pub line: usize,
    pub index: u64,
    pub event_id: String,
    pub entry: Vec<u8>,
    pub proof: Vec<Hash>,
    pub event: Value,
    /// The salt and the personal part, when included.
    pub personal: Option<([u8; 32], Value)>,
    /// The event line before this one: (index, event id); `None` on the first.
    pub previous: Option<(u64, String)>,
}

impl EventLine {
    /// The error of this event with `reason`.
    pub fn fail(&self, reason: impl Into<String>) -> FormatError {
        FormatError::Event {
            line: self.line,
            index: self.index,
            event_id: self.event_id.clone(),
            reason: reason.into(),
        }
    }

    /// The event line (without its newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut value = json!({
            "index": self.index, "event_id": self.event_id,
            "entry": BASE64.encode(&self.entry),
            "proof": self.proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
            "event": self.event,
        });
        if let Some((salt, part)) = &self.personal {
            value["personal"] = json!({"salt": BASE64.encode(salt), "part": part});
        }
        if let Some(previous) = &self.previous {
            value["previous"] = link(previous);
        }
        serde_json::to_vec(&value).expect("JSON serialises")
    }
}

/// `{"index": I, "event_id": E}` of a `previous` or `last` link.
fn link((index, event_id): &(u64, String)) -> Value {
    json!({"index": index, "event_id": event_id})
}

/// A `previous` or `last` link of `object`, if it has one.
fn parse_link(
    line: usize,
    object: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<(u64, String)>, FormatError> {
    let Some(value) = object.get(key) else { return Ok(None) };
    let index = value.get("index").and_then(Value::as_u64);
    let event_id = value.get("event_id").and_then(Value::as_str);
    match (index, event_id) {
        (Some(index), Some(event_id)) => Ok(Some((index, event_id.to_owned()))),
        _ => Err(malformed(line, format!("{key:?} is not {{\"index\": N, \"event_id\": \"...\"}}"))),
    }
}

/// The trailer: the signed manifest and the link to the last event line.
#[derive(Clone, Debug, PartialEq)]
pub struct Trailer {
    /// The signed manifest note.
    pub manifest: String,
    /// The last event line: (index, event id); `None` when the bundle holds no event.
    pub last: Option<(u64, String)>,
}

/// The lines after the header.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Event(Box<EventLine>),
    /// The trailer.
    Manifest(Trailer),
}

/// The trailer line (without its newline) carrying the signed manifest note and the link to the
/// last event line.
pub fn trailer_line(manifest: &str, last: Option<&(u64, String)>) -> Vec<u8> {
    let mut value = json!({ "manifest": manifest });
    if let Some(last) = last {
        value["last"] = link(last);
    }
    serde_json::to_vec(&value).expect("JSON serialises")
}

/// The text of an export manifest: what a signed manifest states.
pub fn manifest_text(origin: &str, size: TreeSize, count: u64, digest: &[u8; 32], query: &Value) -> String {
    format!(
        "{FORMAT}\n{origin}\n{}\n{count}\n{}\n{}\n",
        size.0,
        BASE64.encode(digest),
        String::from_utf8(crate::jcs::to_vec(query)).expect("JCS is UTF-8")
    )
}

/// Accumulates the manifest digest: SHA-256 over `(8-byte big-endian index || leaf hash)` per event.
#[derive(Clone, Debug, Default)]
pub struct ExportDigest(Sha256, u64);

impl ExportDigest {
    pub fn add(&mut self, index: u64, entry: &[u8]) {
        self.0.update(index.to_be_bytes());
        self.0.update(leaf_hash(entry).0);
        self.1 += 1;
    }

    pub fn count(&self) -> u64 {
        self.1
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn malformed(line: usize, reason: impl Into<String>) -> FormatError {
    FormatError::Malformed { line, reason: reason.into() }
}

/// Decodes the header line.
pub fn parse_header(text: &str) -> Result<Header, FormatError> {
    let bad = |reason: String| malformed(1, format!("header: {reason}"));
    let value: Value = serde_json::from_str(text).map_err(|err| bad(format!("not JSON: {err}")))?;
    let object = value.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    match object.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        Some(other) => return Err(bad(format!("format {other:?} is not {FORMAT:?}"))),
        None => return Err(bad(format!("no \"format\"; an {FORMAT} bundle starts with its header"))),
    }
    let string = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("no string {key:?}")))
    };
    let tree_size = object
        .get("tree_size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no \"tree_size\" (an unsigned integer)".into()))?;
    let query =
        object.get("query").and_then(Value::as_object).ok_or_else(|| bad("no \"query\" object".into()))?;
    for (key, value) in query {
        if !value.is_string() {
            return Err(bad(format!("query value of {key:?} is not a string")));
        }
    }
    Ok(Header {
        origin: string("origin")?,
        tree_size,
        checkpoint: string("checkpoint")?,
        vkey: string("vkey")?,
        query: query.clone(),
    })
}

/// Decodes a line after the header (`line` is its 1-based number).
pub fn parse_line(line: usize, text: &str) -> Result<Line, FormatError> {
    if text.trim().is_empty() {
        return Err(malformed(line, "blank line"));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|err| malformed(line, format!("not JSON: {err}")))?;
    let Value::Object(mut object) = value else { return Err(malformed(line, "not a JSON object")) };
    if let Some(manifest) = object.get("manifest") {
        let manifest =
            manifest.as_str().ok_or_else(|| malformed(line, "trailer: manifest is not a string"))?;
        let last = parse_link(line, &object, "last")?;
        return Ok(Line::Manifest(Trailer { manifest: manifest.to_owned(), last }));
    }
    let index = object
        .get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed(line, "neither an event (no unsigned \"index\") nor the trailer"))?;
    let event_id = object
        .get("event_id")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(line, format!("event with index {index} has no string \"event_id\"")))?
        .to_owned();
    let mut partial = EventLine {
        line,
        index,
        event_id,
        entry: Vec::new(),
        proof: Vec::new(),
        event: Value::Null,
        personal: None,
        previous: None,
    };
    partial.previous = parse_link(line, &object, "previous")?;
    let entry =
        object.get("entry").and_then(Value::as_str).ok_or_else(|| partial.fail("no \"entry\" string"))?;
    partial.entry =
        BASE64.decode(entry).map_err(|err| partial.fail(format!("entry is not base64: {err}")))?;
    let proof =
        object.get("proof").and_then(Value::as_array).ok_or_else(|| partial.fail("no \"proof\" array"))?;
    partial.proof = proof
        .iter()
        .enumerate()
        .map(|(i, hash)| {
            hash.as_str()
                .and_then(|text| Hash::from_base64(text).ok())
                .ok_or_else(|| partial.fail(format!("proof hash {i} is not a base64 SHA-256 hash")))
        })
        .collect::<Result<_, _>>()?;
    partial.event = object.remove("event").ok_or_else(|| partial.fail("no \"event\""))?;
    if let Some(personal) = object.remove("personal") {
        let salt = personal
            .get("salt")
            .and_then(Value::as_str)
            .and_then(|text| BASE64.decode(text).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| partial.fail("personal part: salt is not 32 bytes of base64"))?;
        let part = personal.get("part").filter(|part| part.is_object()).cloned();
        let part = part.ok_or_else(|| partial.fail("personal part: \"part\" is not an object"))?;
        partial.personal = Some((salt, part));
    }
    Ok(Line::Event(Box::new(partial)))
}
