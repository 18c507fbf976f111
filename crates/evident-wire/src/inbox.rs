//! The inbox between nodes sharing a store: the requests a follower queues for a tenant's leader,
//! and the leader's answers. Both sides run the same build, but the form is plain JSON with bytes
//! in base64 and a version tag, so a mismatch fails loudly instead of misreading.
//!
//! A request: `{"v": VERSION, "items": [{"rejected": reason} | {"event": {...}}, ...]}`.
//! An answer: `{"v": VERSION, "outcomes": [{"stored": receipt} | {"duplicate": receipt} |
//! {"conflict": {"event_id", "index"}} | {"rejected": reason}, ...]}` or `{"v": VERSION, "error": text}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The version tag of both requests and answers. v1 spelled a request's items without the
/// `event` tag; v2 carried an unsalted `content_hash` of the whole event instead of the
/// `idempotency` digest; v3 had no `checked_key` (its followers stored a subject's key durably
/// before sealing with it); all are refused as malformed.
pub const VERSION: &str = "evident-inbox/v4";

/// A request or an answer that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("inbox: malformed {what}: {reason}")]
pub struct Malformed {
    /// `request` or `answer`.
    pub what: &'static str,
    pub reason: String,
}

/// The version tag: serializes as [`VERSION`], refuses any other on reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(VERSION)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Version, D::Error> {
        let version = String::deserialize(deserializer)?;
        if version != VERSION {
            return Err(D::Error::custom(format!("version {version:?}, expected {VERSION:?}")));
        }
        Ok(Version)
    }
}

/// Bytes spelled as standard base64.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Base64, D::Error> {
        let text = String::deserialize(deserializer)?;
        B64.decode(text).map(Base64).map_err(|err| D::Error::custom(format!("bad base64: {err}")))
    }
}

/// `[u8; N]` spelled as standard base64 of exactly `N` bytes.
mod fixed {
    use super::{Base64, Deserialize, Deserializer, Serialize, Serializer};
    use serde::de::Error as _;

    pub(super) fn serialize<S: Serializer, const N: usize>(
        value: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Base64(value.to_vec()).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let Base64(bytes) = Base64::deserialize(deserializer)?;
        let length = bytes.len();
        bytes.try_into().map_err(|_| D::Error::custom(format!("{length} bytes, expected {N}")))
    }
}

/// The events of one submission, as the follower prepared them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: Version,
    pub items: Vec<Item>,
}

/// One event of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// Refused on the follower already (validation, sealing); the reason is answered as is.
    Rejected(String),
    /// Ready to be sequenced.
    Event(Box<Event>),
}

/// An event prepared for sequencing: its idempotency key, hashes, the columns of its stored row,
/// the entry, and its personal part sealed (personal values in clear never leave their node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "fixed")]
    pub event_id: [u8; 16],
    pub source: String,
    pub producer_id: String,
    /// The idempotency digest's stored form (keyed for the personal part: nothing personal in clear).
    pub idempotency: Base64,
    #[serde(with = "fixed")]
    pub leaf_hash: [u8; 32],
    /// Microseconds since the Unix epoch.
    pub time: i64,
    /// Microseconds since the Unix epoch.
    pub recorded_at: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub action: String,
    pub outcome: String,
    pub actor: String,
    pub subject: Option<String>,
    /// `[type, id]` of every target.
    pub targets: Vec<(String, String)>,
    /// The log entry: the canonical skeleton.
    pub entry: Base64,
    /// `[subject, sealed personal part]`.
    pub sealed: Option<(String, Base64)>,
    /// `[subject, wrapped data key]` when the follower made the subject's key.
    pub new_key: Option<(String, Base64)>,
    /// `[subject, wrapped data key]` when the follower sealed with a key the store holds, perhaps
    /// not yet durably: the leader's commit checks it is still the subject's stored key.
    pub checked_key: Option<(String, Base64)>,
    pub warnings: Vec<String>,
}

/// The leader's answer to a request, stored in the commit that stores its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub v: Version,
    #[serde(flatten)]
    pub body: AnswerBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerBody {
    /// One outcome per item of the request, in order.
    Outcomes(Vec<Outcome>),
    /// Why the request failed as a whole.
    Error(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Stored(Receipt),
    Duplicate(Receipt),
    /// Stored before with other content.
    Conflict {
        /// The stored event's id, a hyphenated UUID.
        event_id: String,
        index: u64,
    },
    Rejected(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// A hyphenated UUID.
    pub event_id: String,
    pub index: u64,
    pub tree_size: u64,
    /// The signed checkpoint note that covers the event.
    pub checkpoint: String,
    pub warnings: Vec<String>,
}

impl Request {
    pub fn new(items: Vec<Item>) -> Request {
        Request { v: Version, items }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Request, Malformed> {
        serde_json::from_slice(bytes).map_err(|err| Malformed { what: "request", reason: err.to_string() })
    }
}

impl Answer {
    pub fn new(body: AnswerBody) -> Answer {
        Answer { v: Version, body }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an answer serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Answer, Malformed> {
        serde_json::from_slice(bytes).map_err(|err| Malformed { what: "answer", reason: err.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event() -> Event {
        Event {
            event_id: [1; 16],
            source: "app".into(),
            producer_id: "e-1".into(),
            idempotency: Base64(vec![2; 33]),
            leaf_hash: [3; 32],
            time: 1_700_000_000_000_000,
            recorded_at: 1_700_000_000_000_001,
            event_type: "user.login".into(),
            action: "read".into(),
            outcome: "success".into(),
            actor: "ann".into(),
            subject: None,
            targets: vec![("doc".into(), "d-1".into())],
            entry: Base64(b"{}".to_vec()),
            sealed: Some(("ann".into(), Base64(vec![0, 255]))),
            new_key: None,
            checked_key: Some(("ann".into(), Base64(vec![7; 40]))),
            warnings: vec!["masked".into()],
        }
    }

    fn request_json() -> Value {
        serde_json::from_slice(&Request::new(vec![Item::Event(Box::new(event()))]).to_bytes()).unwrap()
    }

    /// Reading `value` as a request fails, naming `expect` in the message.
    fn refused(value: Value, expect: &str) {
        let err = Request::from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("inbox: malformed request: "), "{message}");
        assert!(message.contains(expect), "{message:?} does not name {expect:?}");
    }

    #[test]
    fn requests_and_answers_read_back() {
        let request = Request::new(vec![Item::Rejected("no".into()), Item::Event(Box::new(event()))]);
        assert_eq!(Request::from_bytes(&request.to_bytes()).unwrap(), request);
        let value = request_json();
        assert_eq!(value["v"], json!(VERSION));
        assert_eq!(value["items"][0]["event"]["event_id"], json!("AQEBAQEBAQEBAQEBAQEBAQ=="));
        assert_eq!(value["items"][0]["event"]["targets"], json!([["doc", "d-1"]]));
        assert_eq!(value["items"][0]["event"]["sealed"], json!(["ann", "AP8="]));
        let receipt = Receipt {
            event_id: "0190a1b2-0000-7000-8000-000000000000".into(),
            index: 4,
            tree_size: 5,
            checkpoint: "note\n".into(),
            warnings: vec![],
        };
        for body in [
            AnswerBody::Outcomes(vec![
                Outcome::Stored(receipt.clone()),
                Outcome::Duplicate(receipt),
                Outcome::Conflict { event_id: "x".into(), index: 1 },
                Outcome::Rejected("bad".into()),
            ]),
            AnswerBody::Error("down".into()),
        ] {
            let answer = Answer::new(body);
            assert_eq!(Answer::from_bytes(&answer.to_bytes()).unwrap(), answer);
        }
    }

    #[test]
    fn malformed_requests_are_refused_naming_the_problem() {
        refused(json!("not an object"), "expected struct Request");
        let mut value = request_json();
        value["v"] = json!("evident-inbox/v1");
        refused(value, "version \"evident-inbox/v1\"");
        let mut value = request_json();
        value["items"][0]["event"].as_object_mut().unwrap().remove("source");
        refused(value, "missing field `source`");
        let mut value = request_json();
        value["items"][0]["event"]["event_id"] = json!("AQID");
        refused(value, "3 bytes, expected 16");
        let mut value = request_json();
        value["items"][0]["event"]["entry"] = json!("not base64!");
        refused(value, "bad base64");
        let mut value = request_json();
        value["items"][0]["event"]["targets"] = json!([["doc"]]);
        refused(value, "invalid length 1");
        let mut value = request_json();
        value["items"][0]["event"]["time"] = json!("noon");
        refused(value, "invalid type: string \"noon\"");
        // v2's unsalted whole-event hash.
        let mut value = request_json();
        value["v"] = json!("evident-inbox/v3");
        refused(value, "version \"evident-inbox/v3\"");
        let mut value = request_json();
        let event = value["items"][0]["event"].as_object_mut().unwrap();
        event.remove("idempotency");
        event.insert("content_hash".into(), json!("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="));
        refused(value, "missing field `idempotency`");
        // v1's untagged item.
        let mut value = request_json();
        value["items"][0] = value["items"][0]["event"].clone();
        refused(value, "expected `rejected` or `event`");
        let answer = Answer::from_bytes(br#"{"v":"evident-inbox/v4","outcomes":[{"lost":1}]}"#).unwrap_err();
        assert!(answer.to_string().starts_with("inbox: malformed answer: "), "{answer}");
    }
}
