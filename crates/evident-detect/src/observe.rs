//! What rules look at, taken from a committed entry: a few skeleton fields and, from the personal
//! part, only a keyed hash of the IP address. Personal values never enter detection state,
//! findings or deliveries.

use serde::Deserialize;
use serde_json::Value;

use evident_wire::signature::hmac_sha256;

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
    /// The entry has a personal part (its skeleton holds a `pii_commitment`).
    pub has_personal: bool,
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
        let mut observed = Observed::from_stored(index, entry)?;
        observed.event_id = event_id.to_owned();
        let ip = personal
            .and_then(|bytes| serde_json::from_slice::<PersonalIp>(bytes).ok())
            .and_then(|part| part.ip);
        if let Some(ip) = ip {
            observed.set_ip(&ip, ip_key);
        }
        Some(observed)
    }

    /// Reads a stored entry (canonical skeleton JSON) alone: the event id comes from the entry,
    /// and the IP address is not known until [`Observed::set_ip`] (when [`Observed::has_personal`]).
    pub fn from_stored(index: u64, entry: &[u8]) -> Option<Observed> {
        let event: Skeleton = serde_json::from_slice(entry).ok()?;
        let time = evident_wire::Micros::parse_rfc3339(&event.time)?.0;
        Some(Observed {
            index,
            event_id: event.event_id,
            time,
            source: event.source,
            event_type: event.event_type,
            action: event.action,
            outcome: event.outcome,
            actor: event.actor.id,
            actor_type: event.actor.actor_type,
            subject: event.subject,
            targets: event.targets.into_iter().map(|t| (t.target_type, t.id)).collect(),
            reason: event.reason,
            changed_fields: event.changes.into_iter().map(|c| c.field).collect(),
            data_classes: event.data_classes,
            ip: None,
            metadata: event.metadata,
            has_personal: event.pii_commitment.is_some(),
        })
    }

    /// Keeps of the event's IP address only its keyed hash under `ip_key`.
    pub fn set_ip(&mut self, ip: &str, ip_key: &[u8; 32]) {
        self.ip = Some(ip_pseudonym(ip_key, ip));
    }
}

/// The skeleton fields rules read; the rest is skipped by the parser.
#[derive(Deserialize)]
struct Skeleton {
    #[serde(default)]
    event_id: String,
    /// Present when the event has a personal part; its value is not needed here.
    pii_commitment: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    source: String,
    #[serde(rename = "type", default)]
    event_type: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    time: String,
    #[serde(default)]
    actor: SkeletonActor,
    subject: Option<String>,
    #[serde(default)]
    targets: Vec<SkeletonTarget>,
    reason: Option<String>,
    #[serde(default)]
    changes: Vec<SkeletonChange>,
    #[serde(default)]
    data_classes: Vec<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

#[derive(Default, Deserialize)]
struct SkeletonActor {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default)]
    actor_type: String,
}

#[derive(Deserialize)]
struct SkeletonTarget {
    #[serde(rename = "type", default)]
    target_type: String,
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct SkeletonChange {
    #[serde(default)]
    field: String,
}

/// Of the personal part, only the IP address.
#[derive(Deserialize)]
struct PersonalIp {
    #[serde(rename = "/origin/ip")]
    ip: Option<String>,
}

/// A keyed, non-reversible name for an IP address (the key never leaves the server), so that
/// findings can say "the same address" without naming it.
pub fn ip_pseudonym(key: &[u8; 32], ip: &str) -> String {
    format!("ip:{}", &hex::encode(hmac_sha256(key, ip.as_bytes()))[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_and_the_ip_is_only_hashed() {
        let entry = br#"{"action":"read","actor":{"id":"a1","type":"user"},"changes":[{"field":"/email"}],
            "data_classes":["pii"],"event_id":"e","metadata":{"role":"admin"},"outcome":"success",
            "reason":"ticket 1","source":"//crm","subject":"c1","targets":[{"id":"c1","type":"customer"}],
            "time":"2026-11-26T10:00:00.000000Z","type":"customer.record.viewed"}"#;
        let personal = br#"{"/actor/display":"Ann","/origin/ip":"192.0.2.7"}"#;
        let observed = Observed::from_entry(3, "e", entry, Some(personal), &[7; 32]).unwrap();
        assert_eq!(observed.actor, "a1");
        assert_eq!(observed.targets, [("customer".to_owned(), "c1".to_owned())]);
        assert_eq!(observed.changed_fields, ["/email"]);
        assert_eq!(observed.metadata["role"], "admin");
        let ip = observed.ip.unwrap();
        assert!(ip.starts_with("ip:") && !ip.contains("192.0.2.7"));
        assert_eq!(ip, ip_pseudonym(&[7; 32], "192.0.2.7"));
        assert_ne!(ip, ip_pseudonym(&[8; 32], "192.0.2.7"), "keyed");
        assert!(Observed::from_entry(0, "e", b"{}", None, &[0; 32]).is_none(), "no time");
        assert!(!observed.has_personal, "no pii_commitment in this skeleton");
    }

    #[test]
    fn a_stored_entry_says_whether_it_has_a_personal_part() {
        let with =
            br#"{"action":"read","event_id":"evt_1","pii_commitment":"q83v","time":"2026-11-26T10:00:00Z",
            "metadata":{"note":"\"pii_commitment\""}}"#;
        let observed = Observed::from_stored(4, with).unwrap();
        assert_eq!((observed.index, observed.event_id.as_str(), observed.has_personal), (4, "evt_1", true));
        assert_eq!(observed.ip, None);
        // The name only as a value (or a metadata key) is not a personal part.
        let without = br#"{"action":"read","event_id":"evt_2","reason":"\"pii_commitment\"",
            "metadata":{"pii_commitment":"x"},"time":"2026-11-26T10:00:00Z"}"#;
        assert!(!Observed::from_stored(5, without).unwrap().has_personal);
    }
}
