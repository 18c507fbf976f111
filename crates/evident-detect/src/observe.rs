//! What rules look at, taken from a committed entry: a few skeleton fields and, from the personal
//! part, only a keyed hash of the IP address. Personal values never enter detection state,
//! findings or deliveries.

use serde_json::Value;

use crate::signature::hmac_sha256;

/// One event as rules see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub index: u64,
    pub event_id: String,
    /// Event time (producer clock, UTC microseconds).
    pub time: i64,
    pub source: String,
    pub event_type: String,
    pub action: String,
    pub outcome: String,
    pub actor: String,
    pub actor_type: String,
    pub subject: Option<String>,
    /// (type, id)
    pub targets: Vec<(String, String)>,
    pub reason: Option<String>,
    /// `changes[].field`
    pub changed_fields: Vec<String>,
    pub data_classes: Vec<String>,
    /// `ip:<16 hex>`, a keyed hash of `origin.ip`; absent when the personal part was not at hand.
    pub ip: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
}

impl Observed {
    /// Events Evident writes itself.
    pub fn is_evident(&self) -> bool {
        self.source == "evident"
    }

    /// Events the detector made or that describe detection's own bookkeeping; never evaluated,
    /// so that findings cannot raise findings.
    pub fn is_detection_output(&self) -> bool {
        self.is_evident()
            && (self.event_type.starts_with("evident.finding.")
                || self.event_type.starts_with("evident.detect.")
                || self.actor == "evident-detect")
    }

    /// Reads a committed entry (canonical skeleton JSON) and, when given, its personal part
    /// (`{"<pointer>": value}` in clear), keeping of the latter only a hash of the IP under `ip_key`.
    pub fn from_entry(
        index: u64,
        event_id: &str,
        entry: &[u8],
        personal: Option<&[u8]>,
        ip_key: &[u8; 32],
    ) -> Option<Observed> {
        let event: Value = serde_json::from_slice(entry).ok()?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let time = evident_core::event::Micros::parse_rfc3339(event["time"].as_str()?)?.0;
        let ip = personal.and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok()).and_then(|part| {
            part.get("/origin/ip").and_then(Value::as_str).map(|ip| ip_pseudonym(ip_key, ip))
        });
        Some(Observed {
            index,
            event_id: event_id.to_owned(),
            time,
            source: text(&event["source"]).unwrap_or_default(),
            event_type: text(&event["type"]).unwrap_or_default(),
            action: text(&event["action"]).unwrap_or_default(),
            outcome: text(&event["outcome"]).unwrap_or_default(),
            actor: text(&event["actor"]["id"]).unwrap_or_default(),
            actor_type: text(&event["actor"]["type"]).unwrap_or_default(),
            subject: text(&event["subject"]),
            targets: event["targets"]
                .as_array()
                .map(|targets| {
                    targets.iter().filter_map(|t| Some((text(&t["type"])?, text(&t["id"])?))).collect()
                })
                .unwrap_or_default(),
            reason: text(&event["reason"]),
            changed_fields: event["changes"]
                .as_array()
                .map(|changes| changes.iter().filter_map(|c| text(&c["field"])).collect())
                .unwrap_or_default(),
            data_classes: event["data_classes"]
                .as_array()
                .map(|classes| classes.iter().filter_map(text).collect())
                .unwrap_or_default(),
            ip,
            metadata: event["metadata"].as_object().cloned().unwrap_or_default(),
        })
    }
}

/// A keyed, non-reversible name for an IP address (the key never leaves the server), so that
/// findings can say "the same address" without naming it.
pub fn ip_pseudonym(key: &[u8; 32], ip: &str) -> String {
    format!("ip:{}", &hex::encode(hmac_sha256(key, ip.as_bytes()))[..16])
}
