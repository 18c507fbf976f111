//! Core's side of the inbox (`evident_wire::inbox`, the form requests and answers travel in
//! between nodes sharing a store): prepared events and their outcomes to and from that form.

use std::sync::Arc;

use evident_tlog::Hash;
use evident_wire::Micros;
use evident_wire::inbox::{self as wire, Base64};
use uuid::Uuid;

use crate::append::{Outcome, Prepared, Receipt};
use crate::error::{Error, Result};
use crate::store::{NewDataKey, NewEntry, TenantId};

/// A request: the prepared (or already rejected) items of one submission.
pub(crate) fn encode_request(items: &[std::result::Result<Prepared, String>]) -> Vec<u8> {
    let items = items
        .iter()
        .map(|item| match item {
            Err(reason) => wire::Item::Rejected(reason.clone()),
            Ok(prepared) => wire::Item::Event(Box::new(event_to_wire(prepared))),
        })
        .collect();
    wire::Request::new(items).to_bytes()
}

/// The items of a request another node queued for `tenant`; an unreadable request is refused
/// as a whole ([`Error::Integrity`], naming what is wrong).
pub(crate) fn decode_request(
    tenant: &TenantId,
    request: &[u8],
) -> Result<Vec<std::result::Result<Prepared, String>>> {
    let request = wire::Request::from_bytes(request).map_err(|err| Error::Integrity(err.to_string()))?;
    Ok(request
        .items
        .into_iter()
        .map(|item| match item {
            wire::Item::Rejected(reason) => Err(reason),
            wire::Item::Event(event) => Ok(event_from_wire(tenant, *event)),
        })
        .collect())
}

fn event_to_wire(prepared: &Prepared) -> wire::Event {
    let entry = &prepared.entry;
    wire::Event {
        event_id: prepared.event_id,
        source: prepared.source.clone(),
        producer_id: prepared.producer_id.clone(),
        idempotency: Base64(prepared.idempotency.clone()),
        leaf_hash: prepared.leaf_hash.0,
        time: entry.time.0,
        recorded_at: entry.recorded_at.0,
        event_type: entry.event_type.clone(),
        action: entry.action.clone(),
        outcome: entry.outcome.clone(),
        actor: entry.actor.clone(),
        subject: entry.subject.clone(),
        targets: entry.targets.clone(),
        entry: Base64(entry.entry.clone()),
        sealed: entry.sealed.as_ref().map(|(subject, sealed)| (subject.clone(), Base64(sealed.clone()))),
        new_key: prepared
            .new_key
            .as_ref()
            .filter(|key| !key.stored)
            .map(|key| (key.subject.clone(), Base64(key.wrapped.clone()))),
        checked_key: prepared
            .new_key
            .as_ref()
            .filter(|key| key.stored)
            .map(|key| (key.subject.clone(), Base64(key.wrapped.clone()))),
        warnings: prepared.warnings.clone(),
    }
}

fn event_from_wire(tenant: &TenantId, event: wire::Event) -> Prepared {
    Prepared {
        event_id: event.event_id,
        source: event.source.clone(),
        producer_id: event.producer_id.clone(),
        idempotency: event.idempotency.0.clone(),
        leaf_hash: Hash(event.leaf_hash),
        entry: NewEntry {
            index: 0,
            event_id: event.event_id,
            source: event.source,
            producer_id: event.producer_id,
            idempotency: event.idempotency.0,
            time: Micros(event.time),
            recorded_at: Micros(event.recorded_at),
            event_type: event.event_type,
            action: event.action,
            outcome: event.outcome,
            actor: event.actor,
            subject: event.subject,
            targets: event.targets,
            entry: event.entry.0,
            sealed: event.sealed.map(|(subject, Base64(sealed))| (subject, sealed)),
        },
        new_key: match (event.new_key, event.checked_key) {
            (Some((subject, Base64(wrapped))), _) => {
                Some(NewDataKey { tenant: tenant.clone(), subject, wrapped, stored: false })
            }
            (None, Some((subject, Base64(wrapped)))) => {
                Some(NewDataKey { tenant: tenant.clone(), subject, wrapped, stored: true })
            }
            (None, None) => None,
        },
        warnings: event.warnings,
        // Personal parts in clear never leave the node that took the event.
        personal: None,
    }
}

/// An answer: the outcomes of a request's items, in order.
pub(crate) fn encode_answer(outcomes: &[Outcome]) -> Vec<u8> {
    let receipt = |r: &Receipt| wire::Receipt {
        event_id: r.event_id.to_string(),
        index: r.index,
        tree_size: r.tree_size,
        checkpoint: r.checkpoint.to_string(),
        warnings: r.warnings.clone(),
    };
    let outcomes = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Stored(r) => wire::Outcome::Stored(receipt(r)),
            Outcome::Duplicate(r) => wire::Outcome::Duplicate(receipt(r)),
            Outcome::Conflict { existing_event_id, existing_index } => {
                wire::Outcome::Conflict { event_id: existing_event_id.to_string(), index: *existing_index }
            }
            Outcome::Rejected(reason) => wire::Outcome::Rejected(reason.clone()),
        })
        .collect();
    wire::Answer::new(wire::AnswerBody::Outcomes(outcomes)).to_bytes()
}

/// An answer failing a request as a whole: its caller is told to send its events again.
pub(crate) fn encode_failure(reason: &str) -> Vec<u8> {
    wire::Answer::new(wire::AnswerBody::Error(reason.to_owned())).to_bytes()
}

/// The outcomes the leader answered, or why it failed the request as a whole.
pub(crate) fn decode_answer(answer: &[u8]) -> Result<Vec<Outcome>> {
    let answer = wire::Answer::from_bytes(answer).map_err(|err| Error::Integrity(err.to_string()))?;
    let outcomes = match answer.body {
        wire::AnswerBody::Error(error) => {
            return Err(Error::Unavailable(format!(
                "the tenant's leader could not store the events: {error}"
            )));
        }
        wire::AnswerBody::Outcomes(outcomes) => outcomes,
    };
    let uuid = |text: &str| {
        Uuid::parse_str(text)
            .map_err(|err| Error::Integrity(format!("inbox: malformed answer: event id {text:?}: {err}")))
    };
    let receipt = |r: wire::Receipt| -> Result<Receipt> {
        Ok(Receipt {
            event_id: uuid(&r.event_id)?,
            index: r.index,
            tree_size: r.tree_size,
            checkpoint: Arc::new(r.checkpoint),
            warnings: r.warnings,
        })
    };
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            wire::Outcome::Stored(r) => Ok(Outcome::Stored(receipt(r)?)),
            wire::Outcome::Duplicate(r) => Ok(Outcome::Duplicate(receipt(r)?)),
            wire::Outcome::Conflict { event_id, index } => {
                Ok(Outcome::Conflict { existing_event_id: uuid(&event_id)?, existing_index: index })
            }
            wire::Outcome::Rejected(reason) => Ok(Outcome::Rejected(reason)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared() -> Prepared {
        let entry = NewEntry {
            index: 0,
            event_id: [1; 16],
            source: "app".into(),
            producer_id: "e-1".into(),
            idempotency: vec![1; 33],
            time: Micros(10),
            recorded_at: Micros(11),
            event_type: "user.login".into(),
            action: "read".into(),
            outcome: "success".into(),
            actor: "ann".into(),
            subject: Some("doc-1".into()),
            targets: vec![("doc".into(), "d-1".into())],
            entry: b"{\"a\":1}".to_vec(),
            sealed: Some(("ann".into(), vec![0, 255, 7])),
        };
        Prepared {
            event_id: entry.event_id,
            source: entry.source.clone(),
            producer_id: entry.producer_id.clone(),
            idempotency: entry.idempotency.clone(),
            leaf_hash: Hash([3; 32]),
            entry,
            new_key: Some(NewDataKey {
                tenant: tenant(),
                subject: "ann".into(),
                wrapped: vec![9; 40],
                stored: false,
            }),
            warnings: vec!["masked a card number".into()],
            personal: Some(b"{}".to_vec()),
        }
    }

    fn tenant() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    #[test]
    fn a_request_carries_everything_but_the_personal_part_in_clear() {
        let bytes = encode_request(&[Err("bad event".into()), Ok(prepared())]);
        let items = decode_request(&tenant(), &bytes).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().err().map(String::as_str), Some("bad event"));
        let (sent, got) = (prepared(), items[1].as_ref().expect("an event"));
        assert_eq!(got.entry, sent.entry);
        assert_eq!(got.new_key, sent.new_key);
        // A key the follower's commit would only check travels as such.
        let mut checked = prepared();
        checked.new_key.as_mut().expect("a key").stored = true;
        let decoded = decode_request(&tenant(), &encode_request(&[Ok(checked)])).unwrap();
        let key = decoded[0].as_ref().expect("an event").new_key.as_ref().expect("a key");
        assert_eq!((key.subject.as_str(), key.wrapped.len(), key.stored), ("ann", 40, true));
        assert_eq!(
            (got.event_id, &got.source, &got.producer_id),
            (sent.event_id, &sent.source, &sent.producer_id)
        );
        assert_eq!(
            (&got.idempotency, got.leaf_hash, &got.warnings),
            (&sent.idempotency, sent.leaf_hash, &sent.warnings)
        );
        assert_eq!(got.personal, None);
    }

    #[test]
    fn answers_read_back() {
        let receipt = Receipt {
            event_id: Uuid::now_v7(),
            index: 3,
            tree_size: 4,
            checkpoint: Arc::new("note\n".into()),
            warnings: vec!["w".into()],
        };
        let outcomes = vec![
            Outcome::Stored(receipt.clone()),
            Outcome::Duplicate(receipt.clone()),
            Outcome::Conflict { existing_event_id: receipt.event_id, existing_index: 1 },
            Outcome::Rejected("no".into()),
        ];
        assert_eq!(decode_answer(&encode_answer(&outcomes)).unwrap(), outcomes);
    }

    #[test]
    fn unreadable_requests_and_answers_are_refused() {
        for bytes in
            [&b"not json"[..], br#"{"v":"evident-inbox/v1","items":[]}"#, br#"{"v":"evident-inbox/v4"}"#]
        {
            match decode_request(&tenant(), bytes) {
                Err(Error::Integrity(message)) => {
                    assert!(message.starts_with("inbox: malformed request: "), "{message}")
                }
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("{bytes:?} was read"),
            }
        }
        let bad_id = br#"{"v":"evident-inbox/v4","outcomes":[{"conflict":{"event_id":"x","index":1}}]}"#;
        assert!(matches!(decode_answer(bad_id), Err(Error::Integrity(m)) if m.contains("event id \"x\"")));
        let failed = br#"{"v":"evident-inbox/v4","error":"disk full"}"#;
        assert!(matches!(decode_answer(failed), Err(Error::Unavailable(m)) if m.ends_with("disk full")));
    }
}
