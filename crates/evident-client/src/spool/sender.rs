//! The spool's sender thread: reads durable frames from the cursor, posts them as one NDJSON batch,
//! and settles the server's answer item by item before the cursor moves.
//!
//! Crash points: after the server stored a batch and before the cursor moved, a restart sends the
//! batch again with the same ids and the server answers duplicates (nothing twice in the log);
//! after dead letters were written and before the cursor moved, the dead-letter file may hold the
//! same event twice (that file is at-least-once, the log is exactly-once).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use evident_tlog::{Checkpoint, LeafIndex, TlogProof, Verifier};
use evident_wire::api::{InvalidParam, ItemStatus};
use serde_json::{Value, json};

use super::files::{self, Frame, Position, Reader};
use super::{ReceiptCheck, Shared, SpoolError, now_micros};
use crate::{Client, Error};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LAST_BACKOFF: Duration = Duration::from_secs(30);

pub(super) fn dead_letter_path(dir: &Path) -> PathBuf {
    dir.join("dead-letter.ndjson")
}

/// The parsed form of [`ReceiptCheck`].
pub(super) struct Receipts {
    verifiers: Vec<Verifier>,
    origin: String,
    reader: Option<Client>,
}

/// An acknowledged event: its id, index and the checkpoint the answer carried.
pub(super) struct Acknowledged {
    event_id: String,
    index: u64,
    checkpoint: String,
}

impl Receipts {
    pub fn new(check: &ReceiptCheck) -> Result<Receipts, SpoolError> {
        let verifiers = check
            .vkeys
            .iter()
            .map(|vkey| {
                Verifier::parse(vkey)
                    .map_err(|err| SpoolError::Invalid(format!("verify_receipts.vkeys: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if verifiers.is_empty() {
            return Err(SpoolError::Invalid("verify_receipts.vkeys: at least one key is needed".into()));
        }
        Ok(Receipts { verifiers, origin: check.origin.clone(), reader: check.reader.clone() })
    }

    /// Checks an acknowledgement: its checkpoint, and with a reader the inclusion proof.
    fn check(&self, acknowledged: &Acknowledged) -> Result<(), String> {
        let Acknowledged { event_id, index, checkpoint } = acknowledged;
        let (checkpoint, _) =
            Checkpoint::open(checkpoint, &self.verifiers, &self.origin).map_err(|err| err.to_string())?;
        if *index >= checkpoint.size.0 {
            return Err(format!("the checkpoint of size {} does not cover index {index}", checkpoint.size.0));
        }
        let Some(client) = &self.reader else { return Ok(()) };
        let text = client.receipt(event_id).map_err(|err| err.to_string())?;
        let receipt = TlogProof::parse(&text).map_err(|err| err.to_string())?;
        if receipt.index != LeafIndex(*index) {
            return Err(format!(
                "the receipt is for index {}, the server acknowledged {index}",
                receipt.index.0
            ));
        }
        let entry = client.entry(event_id).map_err(|err| err.to_string())?;
        receipt.verify(&entry, &self.verifiers, &self.origin).map(|_| ()).map_err(|err| err.to_string())
    }
}

/// What one attempt at a batch came to.
enum Attempt {
    /// The server answered every item: the batch is settled. `acknowledged`: event id and index.
    Settled { delivered: u64, dead: Vec<DeadLetter>, acknowledged: Vec<Acknowledged> },
    /// Try again after at least this long.
    Retry { after: Option<Duration>, why: String },
    /// The batch is too large for the server: send fewer.
    TooLarge { why: String },
}

/// The sender's loop, until the spool closes.
pub(super) fn run(shared: &Arc<Shared>, client: &Client, receipts: Option<&Receipts>, cursor: Position) {
    let config = &shared.config;
    let mut reader = Reader::new(&config.dir, cursor);
    let mut backoff = FIRST_BACKOFF;
    let mut batch_limit = config.batch_events;
    while let Some(count) = next_batch(shared, batch_limit) {
        let (frames, after) = match reader.peek(count) {
            Ok(read) => read,
            Err(err) => {
                note_failure(shared, format!("reading the spool: {err}"));
                if !pause(shared, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(LAST_BACKOFF);
                continue;
            }
        };
        let outcome = match attempt(client, &frames) {
            Attempt::Settled { delivered, dead, acknowledged } => {
                let settled = settle(shared, &mut reader, after, &frames, delivered, dead);
                if let (Ok(()), Some(receipts)) = (&settled, receipts) {
                    check_receipts(shared, receipts, &acknowledged);
                }
                settled
            }
            Attempt::TooLarge { why } if frames.len() == 1 => {
                let errors = vec![InvalidParam { name: String::new(), rule: "size".into(), reason: why }];
                let dead =
                    DeadLetter { event: event_value(&frames[0]), status: ItemStatus::Rejected, errors };
                settle(shared, &mut reader, after, &frames, 0, vec![dead])
            }
            Attempt::TooLarge { why } => {
                batch_limit = (frames.len() / 2).max(1);
                note_failure(shared, why);
                continue;
            }
            Attempt::Retry { after, why } => Err((after, why)),
        };
        match outcome {
            Ok(()) => {
                backoff = FIRST_BACKOFF;
                batch_limit = config.batch_events;
            }
            Err((retry_after, why)) => {
                note_failure(shared, why);
                let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
                if !pause(shared, retry_after.unwrap_or_default().max(backoff + jitter)) {
                    return;
                }
                backoff = (backoff * 2).min(LAST_BACKOFF);
            }
        }
    }
}

/// Waits for spooled events; answers how many to send next (`None` when the spool closes).
fn next_batch(shared: &Shared, batch_limit: usize) -> Option<usize> {
    let mut state = shared.lock();
    while state.queue.is_empty() {
        if state.closing {
            return None;
        }
        state = shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
    }
    if state.closing {
        return None;
    }
    let mut bytes = 0;
    let mut count = 0;
    for queued in state.queue.iter().take(batch_limit) {
        bytes += queued.frame_bytes - files::FRAME_HEADER + 1;
        if count > 0 && bytes > shared.config.batch_bytes {
            break;
        }
        count += 1;
    }
    Some(count)
}

/// Verifies the receipts of acknowledged events and counts the verdicts.
fn check_receipts(shared: &Shared, receipts: &Receipts, acknowledged: &[Acknowledged]) {
    for item in acknowledged {
        let verdict = receipts.check(item);
        let mut state = shared.lock();
        match verdict {
            Ok(()) => state.stats.receipts_verified += 1,
            Err(why) => {
                state.stats.receipts_failed += 1;
                let event_id = &item.event_id;
                state.stats.last_error =
                    Some(format!("the receipt of event {event_id} does not verify: {why}"));
            }
        }
    }
}

/// Sleeps for `duration` unless the spool closes first (then false).
fn pause(shared: &Shared, duration: Duration) -> bool {
    let state = shared.lock();
    let (state, _) = shared
        .changed
        .wait_timeout_while(state, duration, |state| !state.closing)
        .unwrap_or_else(|p| p.into_inner());
    !state.closing
}

fn note_failure(shared: &Shared, why: String) {
    let mut state = shared.lock();
    state.stats.failed_attempts += 1;
    state.stats.last_error = Some(why);
}

fn event_value(frame: &Frame) -> Value {
    serde_json::from_slice(&frame.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&frame.payload).into()))
}

/// A refused event and why, as the dead-letter file keeps it.
struct DeadLetter {
    event: Value,
    status: ItemStatus,
    errors: Vec<InvalidParam>,
}

/// Posts `frames` as one NDJSON body and sorts the answer.
fn attempt(client: &Client, frames: &[Frame]) -> Attempt {
    let mut body = Vec::with_capacity(frames.iter().map(|frame| frame.payload.len() + 1).sum());
    for frame in frames {
        body.extend_from_slice(&frame.payload);
        body.push(b'\n');
    }
    match client.post_events("application/x-ndjson", body) {
        Ok((_, answer)) if answer.receipts.len() == frames.len() => {
            let mut delivered = 0;
            let mut dead = Vec::new();
            let mut acknowledged = Vec::new();
            for (frame, item) in frames.iter().zip(answer.receipts) {
                match item.status {
                    ItemStatus::Stored | ItemStatus::Duplicate => {
                        delivered += 1;
                        // A part missing fails the check (an empty checkpoint does not open).
                        acknowledged.push(Acknowledged {
                            event_id: item.event_id.unwrap_or_default(),
                            index: item.index.unwrap_or(u64::MAX),
                            checkpoint: item.checkpoint.unwrap_or_default(),
                        });
                    }
                    status @ (ItemStatus::Rejected | ItemStatus::Conflict) => {
                        dead.push(DeadLetter { event: event_value(frame), status, errors: item.errors })
                    }
                }
            }
            Attempt::Settled { delivered, dead, acknowledged }
        }
        Ok((_, answer)) => Attempt::Retry {
            after: None,
            why: format!(
                "the server answered {} items for a batch of {}",
                answer.receipts.len(),
                frames.len()
            ),
        },
        Err(err @ Error::Api { status: 413, .. }) => Attempt::TooLarge { why: err.to_string() },
        Err(err) => {
            let after = match &err {
                Error::Api { retry_after, .. } => retry_after.map(Duration::from_secs),
                _ => None,
            };
            Attempt::Retry { after, why: err.to_string() }
        }
    }
}

/// Makes a settled batch final: dead letters durable first, then the cursor, then the old
/// segments go and the counts change.
fn settle(
    shared: &Shared,
    reader: &mut Reader,
    after: Position,
    frames: &[Frame],
    delivered: u64,
    dead: Vec<DeadLetter>,
) -> Result<(), (Option<Duration>, String)> {
    let dir = &shared.config.dir;
    let dead_count = dead.len() as u64;
    let written = write_dead_letters(dir, dead)
        .and_then(|()| files::write_cursor(dir, after))
        .and_then(|()| files::remove_before(dir, after.segment));
    if let Err(err) = written {
        return Err((None, format!("settling a batch in {}: {err}", dir.display())));
    }
    reader.advance(after);
    let mut state = shared.lock();
    for _ in frames {
        let queued = state.queue.pop_front().expect("a settled frame was queued");
        state.depth_bytes -= queued.frame_bytes;
    }
    state.stats.delivered += delivered;
    state.stats.dead_lettered += dead_count;
    shared.changed.notify_all();
    Ok(())
}

fn write_dead_letters(dir: &Path, dead: Vec<DeadLetter>) -> std::io::Result<()> {
    if dead.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for DeadLetter { event, status, errors } in dead {
        let line = json!({
            "dead_lettered_at_micros": now_micros(), "status": status, "errors": errors, "event": event
        });
        serde_json::to_writer(&mut lines, &line)?;
        lines.push(b'\n');
    }
    let mut file = OpenOptions::new().create(true).append(true).open(dead_letter_path(dir))?;
    file.write_all(&lines)?;
    file.sync_data()
}
