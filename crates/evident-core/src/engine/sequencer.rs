//! The sequencer thread: gathers requests into a group and takes the group through four steps,
//! each a function below whose doc says what a crash after it leaves behind:
//! [`Sequencer::plan`] (idempotency and indices), [`Sequencer::integrate_and_sign`] (the new
//! trees and checkpoints), [`Sequencer::commit`] (one storage transaction) and
//! [`Sequencer::publish`] (in-memory states and subscribers); `process` then answers the callers.
//! Everything before the commit happens in memory on copies of the log states, so a crash or a
//! failure before it leaves the store exactly as it was.
//!
//! The sequencer's state sits behind a mutex. Its thread ([`run`]) takes it for each group; a
//! lone blocking caller on a single-node store takes it too and processes its own request on
//! its own thread, sparing the two thread hand-offs that otherwise double a lone caller's wait
//! beyond the commit ([`super::Engine::append`]). Either way one group at a time is processed,
//! in the order the mutex is taken.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use evident_tlog::{Checkpoint, Hash, Verifier};
use uuid::Uuid;

use super::{Committed, CommittedEntry, Held, Reply, Request, Shared};
use crate::append::{Outcome, Prepared, Receipt};
use crate::error::{Error, Result};
use crate::log::LogState;
use crate::privacy::idempotency::same_event;
use crate::store::{Commit, Existing, Fence, LogCommit, NewDataKey, NewEntry, TenantId};
use evident_wire::Micros;

/// The single thread that sequences, commits and publishes.
pub(super) struct Sequencer {
    pub(super) shared: Arc<Shared>,
    pub(super) logs: HashMap<TenantId, LogState>,
    /// On a shared store, the lease epoch each cached log state was loaded under: a state is
    /// only trusted while this node keeps leading at that epoch.
    pub(super) epochs: HashMap<TenantId, u64>,
    /// Per log, the size and time of the last checkpoint kept in its history.
    pub(super) kept: HashMap<TenantId, (u64, Instant)>,
    /// When the inbox was last read: at most once per `inbox_poll`, busy or not, so a busy
    /// leader does not pay an extra round trip per group.
    pub(super) inbox_read: Instant,
}

/// (tenant, source, producer id).
type IdempotencyKey = (TenantId, String, String);
/// The idempotency digest, index and event id of the first item of a group with a given key.
type FirstInGroup = (Vec<u8>, u64, [u8; 16]);

/// Where an item of a group ends up (in its request's tenant's log).
enum Slot {
    /// Answered without a receipt: rejected, or a conflict.
    Done(Outcome),
    /// Stored by this group at this index.
    New { index: u64 },
    /// Stored before, or by an earlier item of this group, with the same content.
    Duplicate { index: u64, event_id: [u8; 16] },
}

/// A group's plan: where each item ends up, and what the group adds to each tenant's log.
struct Plan {
    /// Per request, per item.
    slots: Vec<Vec<Slot>>,
    /// Every tenant of the group, new entries or not.
    batches: HashMap<TenantId, Batch>,
    /// Data keys of new subjects, stored with the entries they seal.
    data_keys: Vec<NewDataKey>,
    /// The first item of the group with each idempotency key.
    seen: HashMap<IdempotencyKey, FirstInGroup>,
}

/// What a group adds to one tenant's log.
struct Batch {
    /// The log before the group.
    state: LogState,
    hashes: Vec<Hash>,
    entries: Vec<NewEntry>,
    /// The personal parts in clear of `entries`, in the same order, for subscribers.
    personals: Vec<Option<Vec<u8>>>,
}

/// A group integrated and signed, in memory.
struct Signed {
    /// Per tenant of the group: the tree size and checkpoint its receipts cite.
    heads: HashMap<TenantId, (u64, Arc<String>)>,
    /// Per tenant with new entries: its part of the commit.
    logs: Vec<LogCommit>,
    /// Per tenant with new entries: its log state after the group, trusted once committed.
    states: Vec<(TenantId, LogState)>,
    personals: HashMap<TenantId, Vec<Option<Vec<u8>>>>,
}

/// The sequencer thread's loop: gathers a group from the queue, then takes the sequencer (a
/// lone caller of [`super::Engine::append`] may hold it, committing its own request) and
/// processes the group. Ends when the queue's sender is dropped (shutdown).
pub(super) fn run(core: Arc<Mutex<Sequencer>>, receiver: mpsc::Receiver<Request>) {
    let shared = Arc::clone(&core.lock().expect("sequencer lock").shared);
    let max_entries = shared.config.max_batch_entries.max(1);
    let delay = shared.config.max_batch_delay;
    let shared_store = shared.cluster.is_some();
    loop {
        // On a shared store the sequencer also wakes to look for other nodes' requests.
        let first = if shared_store {
            match receiver.recv_timeout(shared.config.inbox_poll) {
                Ok(first) => Some(first),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(first) => Some(first),
                Err(_) => break,
            }
        };
        let mut entries = 0;
        let mut group = Vec::new();
        if let Some(first) = first {
            entries = first.items.len();
            group.push(first);
            let deadline = Instant::now() + delay;
            while entries < max_entries {
                let next = match deadline.checked_duration_since(Instant::now()) {
                    Some(wait) if !wait.is_zero() => receiver.recv_timeout(wait).ok(),
                    _ => receiver.try_recv().ok(),
                };
                let Some(next) = next else { break };
                entries += next.items.len();
                group.push(next);
            }
        }
        // A lone caller may hold the sequencer: until it is free, the group still waits.
        let mut sequencer = core.lock().expect("sequencer lock");
        // Out of the queue: the queue's count is of events waiting to be sequenced.
        group.iter_mut().for_each(|request| request.queued.release());
        if shared_store {
            sequencer.route(&mut group);
            if sequencer.inbox_read.elapsed() >= shared.config.inbox_poll {
                sequencer.inbox_read = Instant::now();
                sequencer.take_inbox(&mut group, max_entries.saturating_sub(entries));
            }
        }
        if !group.is_empty() {
            sequencer.process(group);
        }
    }
}

impl Sequencer {
    /// Sequences and commits a group, then answers its local callers: with their outcomes, or
    /// all with the error when the group failed (its logs are then reloaded from the store).
    pub(super) fn process(&mut self, mut group: Vec<Request>) {
        let checked = checked_keys(&group);
        let optimistic = self.shared.store.refuses_duplicate_entries();
        let result = match self.sequence_and_commit(&mut group, !optimistic) {
            // Most likely a retried event: sequence the group again, looking its keys up.
            Err(Error::Conflict(_)) if optimistic => self.sequence_and_commit(&mut group, true),
            other => other,
        };
        match result {
            Ok(outcomes) => {
                for (request, outcomes) in group.into_iter().zip(outcomes) {
                    if let Reply::Local(reply) = request.reply {
                        let _ = reply.send(Ok(outcomes));
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "group commit failed; reloading the affected logs");
                if !checked.is_empty() {
                    self.answer_unstorable(&checked, &err);
                }
                for request in &group {
                    self.logs.remove(&request.tenant);
                    self.epochs.remove(&request.tenant);
                }
                let message = err.to_string();
                for request in group {
                    // Inbox requests stay unanswered in the store: the leader takes them again.
                    if let Reply::Local(reply) = request.reply {
                        let _ = reply.send(Err(match &err {
                            Error::Conflict(_) => Error::Unavailable(message.clone()),
                            Error::Integrity(_) => Error::Integrity(message.clone()),
                            _ => Error::Unavailable(message.clone()),
                        }));
                    }
                }
            }
        }
    }

    /// After a failed group: another node's requests sealed with a data key that is no longer
    /// the subject's stored one (erased, or lost by the store) would fail every time they are
    /// taken again, and hold up the tenant's inbox. They are answered with the failure instead,
    /// in a commit of those answers alone: their callers send the events again, sealed with the
    /// subject's key as it is now. The others stay in the inbox, to be taken again.
    fn answer_unstorable(&mut self, checked: &[CheckedKeys], err: &Error) {
        let mut answered = Vec::new();
        let mut leases: Vec<(TenantId, u64)> = Vec::new();
        for (ticket, tenant, keys) in checked {
            let gone = keys.iter().any(|key| match self.shared.store.data_key(tenant, &key.subject) {
                Ok(stored) => stored.as_ref() != Some(&key.wrapped),
                Err(_) => false,
            });
            let Some(epoch) = self.epochs.get(tenant).copied().filter(|_| gone) else { continue };
            if !leases.iter().any(|(t, _)| t == tenant) {
                leases.push((tenant.clone(), epoch));
            }
            answered.push((*ticket, crate::inbox::encode_failure(&err.to_string())));
        }
        if answered.is_empty() {
            return;
        }
        let fence = Some(Fence { node: self.shared.config.node_id.clone(), leases });
        if let Err(err) = self.commit(&Commit { answered, fence, ..Commit::default() }) {
            tracing::warn!(error = %err, "cannot answer inbox requests sealed with a data key that is gone");
        }
    }

    /// The group's steps, in order. `lookup`: look the group's idempotency keys up in the store
    /// first. A store that refuses duplicate entries in its commits
    /// ([`crate::store::LogStore::refuses_duplicate_entries`]) lets the engine skip that round
    /// trip and retry with it after a conflict.
    fn sequence_and_commit(&mut self, group: &mut [Request], lookup: bool) -> Result<Vec<Vec<Outcome>>> {
        let plan = self.plan(group, lookup)?;
        let signed = self.integrate_and_sign(plan.batches)?;
        let answers = answers(group, plan.slots, &signed.heads);
        let mut commit = Commit { data_keys: plan.data_keys, logs: signed.logs, ..Commit::default() };
        self.fence(group, &answers, &mut commit)?;
        if !commit.logs.is_empty() || !commit.answered.is_empty() {
            if let Err(err) = self.commit(&commit) {
                self.shared.forget_unconfirmed(&commit.data_keys);
                return Err(err);
            }
            self.notify_subscribers(&commit, signed.personals);
        }
        for log in commit.logs.iter().filter(|log| log.keep_checkpoint) {
            self.kept.insert(log.tenant.clone(), (log.new_size.0, Instant::now()));
        }
        self.publish(signed.states, &commit.data_keys);
        Ok(answers)
    }

    /// Step 1, *plan*: checks each item's idempotency key against the store (with `lookup`) and
    /// against the group's earlier items, and gives each new event the next index of its log.
    /// Reads only: a crash after it leaves the store as it was and the callers unanswered.
    fn plan(&mut self, group: &mut [Request], lookup: bool) -> Result<Plan> {
        let mut existing = self.look_up_existing(group, lookup)?;
        let mut plan = Plan {
            slots: Vec::with_capacity(group.len()),
            batches: HashMap::new(),
            data_keys: Vec::new(),
            seen: HashMap::new(),
        };
        for request in group.iter_mut() {
            let tenant_entry = self.shared.tenant(&request.tenant)?;
            if !plan.batches.contains_key(&request.tenant) {
                let state = self.log_state(&request.tenant, &tenant_entry.verifiers)?;
                let batch = Batch { state, hashes: Vec::new(), entries: Vec::new(), personals: Vec::new() };
                plan.batches.insert(request.tenant.clone(), batch);
            }
            let existing = existing.get_mut(&request.tenant).expect("looked up for every tenant");
            let mut request_slots = Vec::with_capacity(request.items.len());
            for item in request.items.iter_mut() {
                request_slots.push(match item {
                    Err(reason) => Slot::Done(Outcome::Rejected(reason.clone())),
                    Ok(prepared) => {
                        let found = existing.next().expect("one answer per key");
                        plan.place(&request.tenant, prepared, found, lookup)?
                    }
                });
            }
            plan.slots.push(request_slots);
        }
        Ok(plan)
    }

    /// The stored entries with the group's idempotency keys, per tenant in request order: one
    /// query per tenant for the whole group, not one per request. Without `lookup`, none.
    fn look_up_existing(
        &self,
        group: &[Request],
        lookup: bool,
    ) -> Result<HashMap<TenantId, std::vec::IntoIter<Option<Existing>>>> {
        let mut keys: HashMap<&TenantId, Vec<(&str, &str)>> = HashMap::new();
        for request in group {
            keys.entry(&request.tenant).or_default().extend(
                request
                    .items
                    .iter()
                    .filter_map(|item| item.as_ref().ok())
                    .map(|p| (p.source.as_str(), p.producer_id.as_str())),
            );
        }
        let mut existing = HashMap::new();
        for (tenant, keys) in keys {
            let found =
                if lookup { self.shared.store.find_existing(tenant, &keys)? } else { vec![None; keys.len()] };
            existing.insert(tenant.clone(), found.into_iter());
        }
        Ok(existing)
    }

    /// Step 2, *integrate and sign*: extends each tenant's tree by the group's new entries and
    /// signs a checkpoint of the new size, on a copy of its log state. In memory only: a crash
    /// after it leaves the store as it was; these checkpoints were never seen by anyone.
    fn integrate_and_sign(&self, batches: HashMap<TenantId, Batch>) -> Result<Signed> {
        let mut signed =
            Signed { heads: HashMap::new(), logs: Vec::new(), states: Vec::new(), personals: HashMap::new() };
        for (tenant, Batch { mut state, hashes, entries, personals }) in batches {
            if hashes.is_empty() {
                let size = state.size().0;
                signed.heads.insert(tenant, (size, Arc::new(state.checkpoint.clone().unwrap_or_default())));
                continue;
            }
            let integrated = state.integrate(&hashes);
            let signer = &self.shared.tenant(&tenant)?.signer;
            let checkpoint =
                Checkpoint::new(&self.shared.origin(&tenant), integrated.new_size, integrated.root)
                    .sign(&[signer])
                    .map_err(|err| Error::Integrity(format!("cannot sign checkpoint: {err}")))?;
            state.checkpoint = Some(checkpoint.clone());
            signed.heads.insert(tenant.clone(), (integrated.new_size.0, Arc::new(checkpoint.clone())));
            signed.logs.push(LogCommit {
                tenant: tenant.clone(),
                old_size: integrated.old_size,
                new_size: integrated.new_size,
                entries,
                tiles: integrated.tiles,
                checkpoint,
                keep_checkpoint: self.keeps_checkpoint(&tenant, integrated.new_size.0),
            });
            signed.personals.insert(tenant.clone(), personals);
            signed.states.push((tenant, state));
        }
        Ok(signed)
    }

    /// Whether the checkpoint at `new_size` goes into the log's history: the first this sequencer
    /// signs for the log, then one per `keep_checkpoint_entries` entries or
    /// `keep_checkpoint_interval`, whichever comes first.
    fn keeps_checkpoint(&self, tenant: &TenantId, new_size: u64) -> bool {
        let config = &self.shared.config;
        self.kept.get(tenant).is_none_or(|(size, at)| {
            new_size.saturating_sub(*size) >= config.keep_checkpoint_entries
                || at.elapsed() >= config.keep_checkpoint_interval
        })
    }

    /// Step 3, *commit*: one storage transaction with the entries, index rows, tiles, data keys,
    /// checkpoints, and (on a shared store) the inbox answers, moving each log's head by
    /// compare-and-swap. A crash before it returns leaves all of it or none of it; after it, the
    /// group is durable though no caller has been answered: a caller's retry is answered as a
    /// duplicate, and the next start loads the logs from the store.
    fn commit(&self, commit: &Commit) -> Result<()> {
        let stats = &self.shared.stats;
        if let Err(err) = self.shared.store.commit(commit) {
            stats.commit_failures.fetch_add(1, Ordering::Relaxed);
            return Err(err);
        }
        let stored: usize = commit.logs.iter().map(|log| log.entries.len()).sum();
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.events_stored.fetch_add(stored as u64, Ordering::Relaxed);
        stats.batch_size.observe(stored as f64);
        stats.last_commit_micros.store(Micros::now().0, Ordering::Relaxed);
        Ok(())
    }

    /// Hands the committed entries to subscribers (detection), with their personal parts in
    /// clear, in memory only. A crash after it: a subscriber catches up from the store.
    fn notify_subscribers(&self, commit: &Commit, mut personals: HashMap<TenantId, Vec<Option<Vec<u8>>>>) {
        if self.shared.committed.receiver_count() == 0 {
            return;
        }
        for log in &commit.logs {
            let mut personal = personals.remove(&log.tenant).unwrap_or_default().into_iter();
            let entries = log
                .entries
                .iter()
                .map(|e| CommittedEntry {
                    index: e.index,
                    event_id: Uuid::from_bytes(e.event_id),
                    entry: e.entry.clone(),
                    personal: personal.next().flatten(),
                })
                .collect();
            let _ = self.shared.committed.send(Arc::new(Committed {
                tenant: log.tenant.clone(),
                entries,
                tree_size: log.new_size.0,
            }));
        }
    }

    /// Step 4, *publish*: the committed log states become the ones the next group builds on,
    /// and the data keys the commit stored or checked are known to be durable (unless the cache
    /// holds another key for the subject by now). In memory only, like what follows it
    /// (answering the callers): a crash after it loses nothing durable.
    fn publish(&mut self, states: Vec<(TenantId, LogState)>, data_keys: &[NewDataKey]) {
        for (tenant, state) in states {
            self.logs.insert(tenant, state);
        }
        if !data_keys.is_empty() {
            let mut keys = self.shared.keys.lock().expect("keys lock");
            for new_key in data_keys {
                if let Some(cached) = keys.get_mut(&(new_key.tenant.clone(), new_key.subject.clone()))
                    && cached.wrapped == new_key.wrapped
                {
                    cached.held = Held::Durable;
                }
            }
        }
    }

    fn log_state(&mut self, tenant: &TenantId, verifiers: &[Verifier]) -> Result<LogState> {
        if let Some(state) = self.logs.get(tenant) {
            return Ok(state.clone());
        }
        let state = LogState::load(&*self.shared.store, tenant, &self.shared.origin(tenant), verifiers)?;
        self.logs.insert(tenant.clone(), state.clone());
        Ok(state)
    }
}

/// An inbox request's ticket, tenant, and the data keys its commit must check.
type CheckedKeys = (u64, TenantId, Vec<NewDataKey>);

/// The data keys each of the group's inbox requests relies on without storing them.
fn checked_keys(group: &[Request]) -> Vec<CheckedKeys> {
    group
        .iter()
        .filter_map(|request| {
            let Reply::Inbox(ticket) = request.reply else { return None };
            let keys: Vec<NewDataKey> = request
                .items
                .iter()
                .filter_map(|item| item.as_ref().ok()?.new_key.clone().filter(|key| key.stored))
                .collect();
            (!keys.is_empty()).then(|| (ticket, request.tenant.clone(), keys))
        })
        .collect()
}

impl Plan {
    /// Where a prepared event of `tenant` ends up: a duplicate or a conflict of the stored entry
    /// `found` or of an earlier item of the group, or else the next index of the tenant's log.
    fn place(
        &mut self,
        tenant: &TenantId,
        prepared: &mut Prepared,
        found: Option<Existing>,
        lookup: bool,
    ) -> Result<Slot> {
        let key = (tenant.clone(), prepared.source.clone(), prepared.producer_id.clone());
        let earlier = match found {
            Some(found) => Some((found.idempotency, found.index, found.event_id)),
            None => self.seen.get(&key).cloned(),
        };
        if let Some((stored, index, event_id)) = earlier {
            // An unreadable stored digest fails the group as an integrity failure (a 5xx).
            return Ok(if same_event(&stored, &prepared.idempotency)? {
                Slot::Duplicate { index, event_id }
            } else {
                Slot::Done(Outcome::Conflict {
                    existing_event_id: Uuid::from_bytes(event_id),
                    existing_index: index,
                })
            });
        }
        let batch = self.batches.get_mut(tenant).expect("every tenant of the group has a batch");
        let index = batch.state.size().0 + batch.hashes.len() as u64;
        self.seen.insert(key, (prepared.idempotency.clone(), index, prepared.event_id));
        batch.hashes.push(prepared.leaf_hash);
        // Without the lookup the group may be sequenced again (see `sequence_and_commit`): copy
        // what a second pass needs; with it this is the last pass, so move.
        let (mut entry, personal, new_key) = if lookup {
            (std::mem::take(&mut prepared.entry), prepared.personal.take(), prepared.new_key.take())
        } else {
            (prepared.entry.clone(), prepared.personal.clone(), prepared.new_key.clone())
        };
        entry.index = index;
        batch.entries.push(entry);
        batch.personals.push(personal);
        self.data_keys.extend(new_key);
        Ok(Slot::New { index })
    }
}

/// The outcome of every item of the group, with receipts citing each tenant's new head.
fn answers(
    group: &[Request],
    slots: Vec<Vec<Slot>>,
    heads: &HashMap<TenantId, (u64, Arc<String>)>,
) -> Vec<Vec<Outcome>> {
    let mut answers = Vec::with_capacity(group.len());
    for (request, request_slots) in group.iter().zip(slots) {
        let (tree_size, checkpoint) =
            heads.get(&request.tenant).expect("every tenant of the group has a head");
        let receipt = |index: u64, event_id: [u8; 16], warnings: Vec<String>| Receipt {
            event_id: Uuid::from_bytes(event_id),
            index,
            tree_size: *tree_size,
            checkpoint: Arc::clone(checkpoint),
            warnings,
        };
        let mut outcomes = Vec::with_capacity(request_slots.len());
        for (item, slot) in request.items.iter().zip(request_slots) {
            let warnings = item.as_ref().map(|p| p.warnings.clone()).unwrap_or_default();
            outcomes.push(match slot {
                Slot::Done(outcome) => outcome,
                Slot::New { index } => {
                    let event_id = item.as_ref().expect("new items were prepared").event_id;
                    Outcome::Stored(receipt(index, event_id, warnings))
                }
                Slot::Duplicate { index, event_id } => Outcome::Duplicate(receipt(index, event_id, warnings)),
            });
        }
        answers.push(outcomes);
    }
    answers
}
