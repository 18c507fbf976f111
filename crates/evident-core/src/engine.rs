//! The engine: takes validated events, seals their personal parts, and sequences, integrates and
//! publishes them into their tenants' logs with group commit; answers reads and proofs.
//!
//! The append path, and what a crash at each step leaves behind:
//! 1. *Prepare* (caller's thread): event id, time of recording, leaf, sealing. Nothing is
//!    written; a crash loses only requests that were never acknowledged.
//! 2. *Queue*: bounded by events; a full queue answers [`Error::Overloaded`] at once.
//! 3. *Sequence* (the sequencer thread): a group of requests, up to `max_batch_entries` or
//!    `max_batch_delay`, is checked for idempotency, given indices, integrated into each tenant's
//!    tree, and its checkpoints signed, all in memory on copies of the log states.
//! 4. *Commit*: one storage transaction writes entries, index rows, tiles, data keys and the new
//!    checkpoints, swapping each log's size from the old to the new value. A crash before it
//!    commits leaves the store exactly as before the group; after, the whole group is durable.
//! 5. *Publish*: only after the commit are the in-memory states swapped and the callers answered
//!    with receipts. A failed commit answers every caller of the group with the error and reloads
//!    the affected logs from storage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evident_tlog::{Checkpoint, Hash, Signer, Verifier, leaf_hash};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{Micros, TenantPolicy};
use crate::leaf::{self, Recorded};
use crate::log::LogState;
use crate::seal::{DataKey, MasterKey, random_32};
use crate::stats::EngineStats;
use crate::store::{Commit, LogCommit, NewDataKey, NewEntry, Store, TenantId};
use crate::validate::Validated;

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Logs are named `<origin_prefix>/<tenant>`.
    pub origin_prefix: String,
    /// A group commit holds at most this many events.
    pub max_batch_entries: usize,
    /// How long the sequencer waits for more requests after the first of a group.
    pub max_batch_delay: Duration,
    /// Events waiting to be sequenced before new requests are refused as overloaded.
    pub queue_capacity: usize,
    /// Data keys kept unwrapped in memory.
    pub key_cache_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            origin_prefix: "evident.localhost".to_owned(),
            // Groups form by themselves while a commit runs; waiting on purpose only delays a lone
            // producer (0 ms: 1,383 acks/s for one producer against 424 with 1 ms), and smaller
            // groups shorten the latency tail under load (bench/README.md).
            max_batch_entries: 1024,
            max_batch_delay: Duration::ZERO,
            queue_capacity: 100_000,
            key_cache_capacity: 100_000,
        }
    }
}

/// What the engine answers for an accepted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub event_id: Uuid,
    pub index: u64,
    /// The size of the checkpoint that covers the event.
    pub tree_size: u64,
    pub checkpoint: Arc<String>,
    /// Non-fatal notes from validation (a dropped traceparent, a masked card number).
    pub warnings: Vec<String>,
}

/// Events one group commit stored in one tenant's log, as [`Engine::subscribe`] delivers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub tenant: TenantId,
    /// Stored entries in index order.
    pub entries: Vec<CommittedEntry>,
    /// The size of the log after the commit.
    pub tree_size: u64,
}

/// One stored event as [`Engine::subscribe`] delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    pub index: u64,
    pub event_id: Uuid,
    /// The log entry: the canonical skeleton.
    pub entry: Vec<u8>,
    /// The personal part in clear, as canonical JSON `{"<JSON pointer>": value, ...}` (what the
    /// store keeps sealed), when the event has one. Only in memory; never stored unsealed.
    pub personal: Option<Vec<u8>>,
}

/// Commits a subscriber may fall behind by before it misses some (and must read them from the
/// store: indices have no gaps, so a subscriber knows what it missed).
const COMMITTED_BACKLOG: usize = 4096;

/// The outcome of one submitted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Newly stored.
    Stored(Receipt),
    /// Stored before with the same content; the original event id and index.
    Duplicate(Receipt),
    /// Stored before with different content: nothing was stored.
    Conflict { existing_event_id: Uuid, existing_index: u64 },
    /// Not stored; the reason names the problem.
    Rejected(String),
}

struct Prepared {
    event_id: [u8; 16],
    source: String,
    producer_id: String,
    content_hash: [u8; 32],
    leaf_hash: Hash,
    entry: NewEntry,
    new_key: Option<NewDataKey>,
    warnings: Vec<String>,
    /// The personal part in clear, for subscribers.
    personal: Option<Vec<u8>>,
}

struct Request {
    tenant: TenantId,
    items: Vec<std::result::Result<Prepared, String>>,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

struct Tenant {
    policy: TenantPolicy,
    signer: Signer,
    /// The current key's verifier first, then those of retired signing keys, so checkpoints
    /// signed before a rotation still verify.
    verifiers: Vec<Verifier>,
}

struct CachedKey {
    key: DataKey,
    wrapped: Vec<u8>,
    persisted: bool,
}

struct Shared {
    store: Arc<dyn Store>,
    config: EngineConfig,
    signing_seed: zeroize::Zeroizing<[u8; 32]>,
    retired_seeds: Vec<zeroize::Zeroizing<[u8; 32]>>,
    master: MasterKey,
    tenants: RwLock<HashMap<TenantId, Arc<Tenant>>>,
    keys: Mutex<HashMap<(TenantId, String), CachedKey>>,
    queued: AtomicUsize,
    stats: EngineStats,
    committed: tokio::sync::broadcast::Sender<Arc<Committed>>,
}

/// The audit engine. Cheap to share behind an `Arc`; [`Engine::shutdown`] drains the queue.
pub struct Engine {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    sequencer: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Opens the engine over a store: loads and checks every tenant's log, then starts the
    /// sequencer. Fails if any log does not match its latest checkpoint.
    pub fn open(
        store: Arc<dyn Store>,
        signing_seed: [u8; 32],
        master: MasterKey,
        config: EngineConfig,
    ) -> Result<Engine> {
        Engine::open_with_retired_keys(store, signing_seed, Vec::new(), master, config)
    }

    /// [`Engine::open`] after signing-key rotations: new checkpoints are signed with
    /// `signing_seed`; those signed with a `retired` key still verify.
    pub fn open_with_retired_keys(
        store: Arc<dyn Store>,
        signing_seed: [u8; 32],
        retired: Vec<[u8; 32]>,
        master: MasterKey,
        config: EngineConfig,
    ) -> Result<Engine> {
        let shared = Arc::new(Shared {
            store,
            config,
            signing_seed: zeroize::Zeroizing::new(signing_seed),
            retired_seeds: retired.into_iter().map(zeroize::Zeroizing::new).collect(),
            master,
            tenants: RwLock::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            stats: EngineStats::default(),
            committed: tokio::sync::broadcast::channel(COMMITTED_BACKLOG).0,
        });
        let mut logs = HashMap::new();
        for (tenant, policy) in shared.store.tenants()? {
            let entry = shared.tenant_entry(&tenant, policy)?;
            let state = LogState::load(&*shared.store, &tenant, &shared.origin(&tenant), &entry.verifiers)?;
            logs.insert(tenant.clone(), state);
            shared.tenants.write().expect("tenants lock").insert(tenant, entry);
        }
        let (sender, receiver) = mpsc::channel();
        let sequencer_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("evident-sequencer".into())
            .spawn(move || Sequencer { shared: sequencer_shared, logs }.run(receiver))
            .map_err(|err| Error::Unavailable(format!("cannot start the sequencer thread: {err}")))?;
        Ok(Engine { shared, sender: Mutex::new(Some(sender)), sequencer: Mutex::new(Some(handle)) })
    }

    /// The origin line of a tenant's log.
    pub fn origin(&self, tenant: &TenantId) -> String {
        self.shared.origin(tenant)
    }

    /// The verifier of a tenant's checkpoints.
    pub fn verifier(&self, tenant: &TenantId) -> Result<Verifier> {
        Ok(self.shared.tenant(tenant)?.signer.verifier())
    }

    /// Every verifier of a tenant's checkpoints: the current key's first, then retired ones.
    pub fn verifiers(&self, tenant: &TenantId) -> Result<Vec<Verifier>> {
        Ok(self.shared.tenant(tenant)?.verifiers.clone())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Creates a tenant with an empty log; `false` if it existed.
    pub fn create_tenant(&self, tenant: &TenantId, policy: TenantPolicy) -> Result<bool> {
        let created = self.shared.store.create_tenant(tenant, &policy)?;
        let policy = self
            .shared
            .store
            .tenants()?
            .into_iter()
            .find(|(t, _)| t == tenant)
            .map(|(_, p)| p)
            .unwrap_or(policy);
        let entry = self.shared.tenant_entry(tenant, policy)?;
        self.shared.tenants.write().expect("tenants lock").insert(tenant.clone(), entry);
        Ok(created)
    }

    /// Signs a note text with a tenant's log key (checkpoints are signed elsewhere; this is for
    /// other statements of the log, such as export manifests, whose first line names them).
    pub(crate) fn sign_note(&self, tenant: &TenantId, text: &str) -> Result<String> {
        let entry = self.shared.tenant(tenant)?;
        evident_tlog::sign_note(text, &[&entry.signer]).map_err(|err| Error::InvalidArgument(err.to_string()))
    }

    /// Every tenant.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> =
            self.shared.tenants.read().expect("tenants lock").keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// The policy validation must apply for a tenant.
    pub fn policy(&self, tenant: &TenantId) -> Result<TenantPolicy> {
        Ok(self.shared.tenant(tenant)?.policy.clone())
    }

    /// Appends validated events and waits until they are durable: one outcome per event, in
    /// order. Blocks the calling thread; use [`Engine::append_async`] from async code.
    pub fn append(&self, tenant: &TenantId, events: Vec<Validated>) -> Result<Vec<Outcome>> {
        let begun = Instant::now();
        let outcomes = self.submit(tenant, events)?.blocking_recv().map_err(|_| Error::ShuttingDown)?;
        self.shared.stats.ack_latency.observe(begun.elapsed().as_secs_f64());
        outcomes
    }

    /// [`Engine::append`] for async callers.
    pub async fn append_async(&self, tenant: &TenantId, events: Vec<Validated>) -> Result<Vec<Outcome>> {
        let begun = Instant::now();
        let outcomes = self.submit(tenant, events)?.await.map_err(|_| Error::ShuttingDown)?;
        self.shared.stats.ack_latency.observe(begun.elapsed().as_secs_f64());
        outcomes
    }

    /// Every commit from now on, per tenant, in commit order, after it is durable. A receiver that
    /// falls more than a few thousand commits behind gets `Lagged` and must read the entries it
    /// missed from the store by index.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Committed>> {
        self.shared.committed.subscribe()
    }

    /// The engine's counters and histograms.
    pub fn stats(&self) -> &EngineStats {
        &self.shared.stats
    }

    /// Whether the sequencer thread is running.
    pub fn sequencer_alive(&self) -> bool {
        self.sequencer.lock().expect("sequencer lock").as_ref().is_some_and(|handle| !handle.is_finished())
    }

    fn submit(
        &self,
        tenant: &TenantId,
        events: Vec<Validated>,
    ) -> Result<oneshot::Receiver<Result<Vec<Outcome>>>> {
        let entry = self.shared.tenant(tenant)?;
        let count = events.len();
        let capacity = self.shared.config.queue_capacity;
        let queued = self.shared.queued.fetch_add(count, Ordering::AcqRel);
        if queued + count > capacity && queued > 0 {
            self.shared.queued.fetch_sub(count, Ordering::AcqRel);
            return Err(Error::Overloaded { retry_after: Duration::from_secs(1) });
        }
        let items =
            events.into_iter().map(|validated| self.shared.prepare(tenant, &entry, validated)).collect();
        let (reply, receiver) = oneshot::channel();
        let sender = self.sender.lock().expect("sender lock");
        let Some(sender) = sender.as_ref() else {
            self.shared.queued.fetch_sub(count, Ordering::AcqRel);
            return Err(Error::ShuttingDown);
        };
        sender.send(Request { tenant: tenant.clone(), items, reply }).map_err(|_| Error::ShuttingDown)?;
        Ok(receiver)
    }

    /// Stops taking work, lets the sequencer finish every queued request, and waits for it.
    pub fn shutdown(&self) {
        self.sender.lock().expect("sender lock").take();
        if let Some(handle) = self.sequencer.lock().expect("sequencer lock").take() {
            let _ = handle.join();
        }
    }

    /// Events waiting to be sequenced.
    pub fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Opens a subject's data key for reading personal parts.
    pub(crate) fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<DataKey>> {
        if let Some(cached) =
            self.shared.keys.lock().expect("keys lock").get(&(tenant.clone(), subject.to_owned()))
        {
            return Ok(Some(cached.key.clone()));
        }
        match self.shared.store.data_key(tenant, subject)? {
            Some(wrapped) => Ok(Some(self.shared.master.unwrap(tenant.as_str(), subject, &wrapped)?)),
            None => Ok(None),
        }
    }

    /// Destroys a subject's data key: its personal parts can no longer be opened, while every
    /// leaf still verifies. `false` if the subject had no key.
    pub fn erase_subject(&self, tenant: &TenantId, subject: &str) -> Result<bool> {
        let mut keys = self.shared.keys.lock().expect("keys lock");
        keys.remove(&(tenant.clone(), subject.to_owned()));
        self.shared.store.erase_data_key(tenant, subject)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn origin(&self, tenant: &TenantId) -> String {
        format!("{}/{}", self.config.origin_prefix, tenant)
    }

    fn tenant_entry(&self, tenant: &TenantId, policy: TenantPolicy) -> Result<Arc<Tenant>> {
        let origin = self.origin(tenant);
        let signer = |seed: &[u8; 32]| {
            Signer::from_seed(&origin, *seed)
                .map_err(|err| Error::InvalidArgument(format!("origin prefix: {err}")))
        };
        let current = signer(&self.signing_seed)?;
        let mut verifiers = vec![current.verifier()];
        for seed in &self.retired_seeds {
            verifiers.push(signer(seed)?.verifier());
        }
        Ok(Arc::new(Tenant { policy, signer: current, verifiers }))
    }

    fn tenant(&self, tenant: &TenantId) -> Result<Arc<Tenant>> {
        self.tenants
            .read()
            .expect("tenants lock")
            .get(tenant)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant}")))
    }

    /// Step 1 of the append path, on the caller's thread.
    fn prepare(
        &self,
        tenant: &TenantId,
        entry: &Tenant,
        validated: Validated,
    ) -> std::result::Result<Prepared, String> {
        let Validated { event, warnings } = validated;
        let event_id = Uuid::now_v7();
        let recorded = Recorded { tenant: tenant.to_string(), event_id, recorded_at: Micros::now() };
        let leaf =
            leaf::build_leaf(&event, &recorded, &entry.policy, random_32()).map_err(|err| err.to_string())?;
        let mut new_key = None;
        let sealed = match &leaf.personal {
            None => None,
            Some(personal) => {
                let subject = leaf::sealing_subject(&event);
                let (key, wrapped) = self.key_for_writing(tenant, &subject).map_err(|err| err.to_string())?;
                if let Some(wrapped) = wrapped {
                    new_key = Some(NewDataKey { tenant: tenant.clone(), subject: subject.clone(), wrapped });
                }
                Some((
                    subject,
                    key.seal(tenant.as_str(), event_id.as_bytes(), &personal.salt, &personal.canonical),
                ))
            }
        };
        Ok(Prepared {
            event_id: *event_id.as_bytes(),
            source: event.source.clone(),
            producer_id: event.id.clone(),
            content_hash: leaf.content_hash,
            leaf_hash: leaf_hash(&leaf.entry),
            entry: NewEntry {
                index: 0,
                event_id: *event_id.as_bytes(),
                source: event.source.clone(),
                producer_id: event.id.clone(),
                content_hash: leaf.content_hash,
                time: event.time,
                recorded_at: recorded.recorded_at,
                event_type: event.event_type.clone(),
                action: event.action.as_str().to_owned(),
                outcome: event.outcome.as_str().to_owned(),
                actor: event.actor.id.clone(),
                subject: event.subject.clone(),
                targets: event.targets.iter().map(|t| (t.target_type.clone(), t.id.clone())).collect(),
                entry: leaf.entry,
                sealed,
            },
            new_key,
            warnings,
            personal: leaf.personal.map(|personal| personal.canonical),
        })
    }

    /// The data key to seal a subject's personal part with, and its wrapped form when it is not
    /// yet known to be stored (the commit then stores it, unless already there).
    fn key_for_writing(&self, tenant: &TenantId, subject: &str) -> Result<(DataKey, Option<Vec<u8>>)> {
        let cache_key = (tenant.clone(), subject.to_owned());
        if let Some(cached) = self.keys.lock().expect("keys lock").get(&cache_key) {
            return Ok((cached.key.clone(), (!cached.persisted).then(|| cached.wrapped.clone())));
        }
        let stored = self.store.data_key(tenant, subject)?;
        let mut keys = self.keys.lock().expect("keys lock");
        if keys.len() >= self.config.key_cache_capacity {
            keys.retain(|_, cached| !cached.persisted);
        }
        let cached = match keys.entry(cache_key) {
            std::collections::hash_map::Entry::Occupied(occupied) => occupied.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                let cached = match stored {
                    Some(wrapped) => CachedKey {
                        key: self.master.unwrap(tenant.as_str(), subject, &wrapped)?,
                        wrapped,
                        persisted: true,
                    },
                    None => {
                        let key = DataKey::generate();
                        let wrapped = self.master.wrap(tenant.as_str(), subject, &key);
                        CachedKey { key, wrapped, persisted: false }
                    }
                };
                vacant.insert(cached)
            }
        };
        Ok((cached.key.clone(), (!cached.persisted).then(|| cached.wrapped.clone())))
    }
}

/// The single thread that sequences, commits and publishes.
struct Sequencer {
    shared: Arc<Shared>,
    logs: HashMap<TenantId, LogState>,
}

/// (tenant, source, producer id).
type IdempotencyKey = (TenantId, String, String);
/// The content hash, index and event id of the first item of a group with a given key.
type FirstInGroup = ([u8; 32], u64, [u8; 16]);

/// Where an item of a group ends up.
enum Slot {
    Done(Outcome),
    /// Stored by this group at this index.
    New {
        index: u64,
        tenant: TenantId,
    },
    /// Same key as an earlier item of this group.
    SameAs {
        index: u64,
        event_id: [u8; 16],
        tenant: TenantId,
    },
}

impl Sequencer {
    fn run(mut self, receiver: mpsc::Receiver<Request>) {
        let max_entries = self.shared.config.max_batch_entries.max(1);
        let delay = self.shared.config.max_batch_delay;
        while let Ok(first) = receiver.recv() {
            let mut entries = first.items.len();
            let mut group = vec![first];
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
            self.shared.queued.fetch_sub(entries, Ordering::AcqRel);
            self.process(group);
        }
    }

    fn process(&mut self, mut group: Vec<Request>) {
        match self.sequence_and_commit(&mut group) {
            Ok(outcomes) => {
                for (request, outcomes) in group.into_iter().zip(outcomes) {
                    let _ = request.reply.send(Ok(outcomes));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "group commit failed; reloading the affected logs");
                for request in &group {
                    self.logs.remove(&request.tenant);
                }
                let message = err.to_string();
                for request in group {
                    let _ = request.reply.send(Err(match &err {
                        Error::Conflict(_) => Error::Unavailable(message.clone()),
                        Error::Integrity(_) => Error::Integrity(message.clone()),
                        _ => Error::Unavailable(message.clone()),
                    }));
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

    fn sequence_and_commit(&mut self, group: &mut [Request]) -> Result<Vec<Vec<Outcome>>> {
        // Idempotency and index assignment, per tenant, in arrival order.
        let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(group.len());
        let mut next_states: HashMap<TenantId, (LogState, Vec<Hash>, Vec<NewEntry>)> = HashMap::new();
        // The personal parts in clear of new entries, per tenant in index order, for subscribers.
        let mut personals: HashMap<TenantId, Vec<Option<Vec<u8>>>> = HashMap::new();
        let mut seen: HashMap<IdempotencyKey, FirstInGroup> = HashMap::new();
        let mut commit = Commit::default();
        for request in group.iter_mut() {
            let tenant_entry = self.shared.tenant(&request.tenant)?;
            if !next_states.contains_key(&request.tenant) {
                let state = self.log_state(&request.tenant, &tenant_entry.verifiers)?;
                next_states.insert(request.tenant.clone(), (state, Vec::new(), Vec::new()));
            }
            let keys: Vec<(&str, &str)> = request
                .items
                .iter()
                .filter_map(|item| item.as_ref().ok())
                .map(|p| (p.source.as_str(), p.producer_id.as_str()))
                .collect();
            let mut existing = self.shared.store.find_existing(&request.tenant, &keys)?.into_iter();
            let (state, hashes, entries) = next_states.get_mut(&request.tenant).expect("inserted above");
            let mut request_slots = Vec::with_capacity(request.items.len());
            for item in request.items.iter_mut() {
                let prepared = match item {
                    Err(reason) => {
                        request_slots.push(Slot::Done(Outcome::Rejected(reason.clone())));
                        continue;
                    }
                    Ok(prepared) => prepared,
                };
                if let Some(found) = existing.next().expect("one answer per key") {
                    let receipt = Receipt {
                        event_id: Uuid::from_bytes(found.event_id),
                        index: found.index,
                        tree_size: 0,
                        checkpoint: Arc::new(String::new()),
                        warnings: prepared.warnings.clone(),
                    };
                    request_slots.push(Slot::Done(if found.content_hash == prepared.content_hash {
                        Outcome::Duplicate(receipt)
                    } else {
                        Outcome::Conflict { existing_event_id: receipt.event_id, existing_index: found.index }
                    }));
                    continue;
                }
                let key = (request.tenant.clone(), prepared.source.clone(), prepared.producer_id.clone());
                if let Some((content_hash, index, event_id)) = seen.get(&key) {
                    request_slots.push(if *content_hash == prepared.content_hash {
                        Slot::SameAs { index: *index, event_id: *event_id, tenant: request.tenant.clone() }
                    } else {
                        Slot::Done(Outcome::Conflict {
                            existing_event_id: Uuid::from_bytes(*event_id),
                            existing_index: *index,
                        })
                    });
                    continue;
                }
                let index = state.size().0 + hashes.len() as u64;
                seen.insert(key, (prepared.content_hash, index, prepared.event_id));
                hashes.push(prepared.leaf_hash);
                let mut entry = std::mem::take(&mut prepared.entry);
                entry.index = index;
                entries.push(entry);
                personals.entry(request.tenant.clone()).or_default().push(prepared.personal.take());
                if let Some(new_key) = prepared.new_key.take() {
                    commit.data_keys.push(new_key);
                }
                request_slots.push(Slot::New { index, tenant: request.tenant.clone() });
            }
            slots.push(request_slots);
        }

        // Integrate and sign, per tenant.
        let mut heads: HashMap<TenantId, (u64, Arc<String>)> = HashMap::new();
        let mut published: Vec<(TenantId, LogState)> = Vec::new();
        for (tenant, (mut state, hashes, entries)) in next_states {
            if hashes.is_empty() {
                let size = state.size().0;
                heads.insert(tenant, (size, Arc::new(state.checkpoint.clone().unwrap_or_default())));
                continue;
            }
            let integrated = state.integrate(&hashes);
            let signer = &self.shared.tenant(&tenant)?.signer;
            let checkpoint =
                Checkpoint::new(&self.shared.origin(&tenant), integrated.new_size, integrated.root)
                    .sign(&[signer])
                    .map_err(|err| Error::Integrity(format!("cannot sign checkpoint: {err}")))?;
            state.checkpoint = Some(checkpoint.clone());
            heads.insert(tenant.clone(), (integrated.new_size.0, Arc::new(checkpoint.clone())));
            commit.logs.push(LogCommit {
                tenant: tenant.clone(),
                old_size: integrated.old_size,
                new_size: integrated.new_size,
                entries,
                tiles: integrated.tiles,
                checkpoint,
            });
            published.push((tenant, state));
        }

        if !commit.logs.is_empty() {
            let stats = &self.shared.stats;
            if let Err(err) = self.shared.store.commit(&commit) {
                stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                return Err(err);
            }
            let stored: usize = commit.logs.iter().map(|log| log.entries.len()).sum();
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.events_stored.fetch_add(stored as u64, Ordering::Relaxed);
            stats.batch_size.observe(stored as f64);
            stats.last_commit_micros.store(Micros::now().0, Ordering::Relaxed);
            if self.shared.committed.receiver_count() > 0 {
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
        }
        for (tenant, state) in published {
            self.logs.insert(tenant, state);
        }
        if !commit.data_keys.is_empty() {
            let mut keys = self.shared.keys.lock().expect("keys lock");
            for new_key in &commit.data_keys {
                if let Some(cached) = keys.get_mut(&(new_key.tenant.clone(), new_key.subject.clone())) {
                    cached.persisted = true;
                }
            }
        }

        // Receipts.
        let receipt_for = |tenant: &TenantId, index: u64, event_id: [u8; 16], warnings: Vec<String>| {
            let (tree_size, checkpoint) =
                heads.get(tenant).cloned().expect("every tenant of the group has a head");
            Receipt { event_id: Uuid::from_bytes(event_id), index, tree_size, checkpoint, warnings }
        };
        let mut answers = Vec::with_capacity(group.len());
        for (request, request_slots) in group.iter().zip(slots) {
            let mut outcomes = Vec::with_capacity(request_slots.len());
            for (item, slot) in request.items.iter().zip(request_slots) {
                let warnings = item.as_ref().map(|p| p.warnings.clone()).unwrap_or_default();
                outcomes.push(match slot {
                    Slot::Done(Outcome::Duplicate(receipt)) => Outcome::Duplicate(receipt_for(
                        &request.tenant,
                        receipt.index,
                        *receipt.event_id.as_bytes(),
                        warnings,
                    )),
                    Slot::Done(outcome) => outcome,
                    Slot::New { index, tenant } => {
                        let event_id = item.as_ref().expect("new items were prepared").event_id;
                        Outcome::Stored(receipt_for(&tenant, index, event_id, warnings))
                    }
                    Slot::SameAs { index, event_id, tenant } => {
                        Outcome::Duplicate(receipt_for(&tenant, index, event_id, warnings))
                    }
                });
            }
            answers.push(outcomes);
        }
        Ok(answers)
    }
}
