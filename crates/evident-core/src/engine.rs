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
use crate::event::TenantPolicy;
use crate::leaf::{self, Recorded};
use crate::log::LogState;
use crate::seal::{DataKey, MasterKey, random_32};
use crate::stats::EngineStats;
use crate::store::{Commit, Fence, LogCommit, NewDataKey, NewEntry, Store, TenantId};
use crate::validate::Validated;
use evident_wire::Micros;

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
    /// This node's name among the nodes sharing a store (unused on a single-node store).
    pub node_id: String,
    /// How long a tenant's lease lasts without renewal: a failed leader's tenants are taken over
    /// after at most about this long. Renewed every quarter of it.
    pub lease_ttl: Duration,
    /// How often a leader looks for requests other nodes queued, and a follower for answers.
    pub inbox_poll: Duration,
    /// How long a follower waits for the leader's answer before telling the caller to retry.
    pub forward_timeout: Duration,
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
            node_id: default_node_id(),
            lease_ttl: Duration::from_secs(5),
            inbox_poll: Duration::from_millis(5),
            forward_timeout: Duration::from_secs(30),
        }
    }
}

/// `<host>-<pid>-<random>`: unique per process, readable in lease listings.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), u16::from_le_bytes([random_32()[0], random_32()[1]]))
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

/// An event ready to be sequenced.
pub(crate) struct Prepared {
    pub(crate) event_id: [u8; 16],
    pub(crate) source: String,
    pub(crate) producer_id: String,
    pub(crate) content_hash: [u8; 32],
    pub(crate) leaf_hash: Hash,
    pub(crate) entry: NewEntry,
    pub(crate) new_key: Option<NewDataKey>,
    pub(crate) warnings: Vec<String>,
    /// The personal part in clear, for subscribers.
    pub(crate) personal: Option<Vec<u8>>,
}

type Answer = oneshot::Sender<Result<Vec<Outcome>>>;

/// Where the outcomes of a request go.
enum Reply {
    /// A caller on this node.
    Local(Answer),
    /// A request another node put in the inbox: answered in the commit that stores its events.
    Inbox(u64),
}

struct Request {
    tenant: TenantId,
    items: Vec<std::result::Result<Prepared, String>>,
    reply: Reply,
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
    /// Set when the store is shared by several nodes.
    cluster: Option<ClusterNode>,
}

/// This node's part in a cluster of nodes sharing one store.
struct ClusterNode {
    /// Tenants whose lease this node holds: epoch, and when the store last confirmed it.
    leases: Mutex<HashMap<TenantId, (u64, Instant)>>,
    /// Requests this node put in the inbox, by ticket: the caller, the events counted in the
    /// queue, and the deadline.
    waiting: Mutex<HashMap<u64, (Answer, usize, Instant)>>,
    stop: std::sync::atomic::AtomicBool,
    /// Wakes the lease keeper and the answer collector early on shutdown.
    wake: std::sync::Condvar,
    wake_lock: Mutex<()>,
}

/// The audit engine. Cheap to share behind an `Arc`; [`Engine::shutdown`] drains the queue.
pub struct Engine {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    sequencer: Mutex<Option<JoinHandle<()>>>,
    /// The lease keeper and the answer collector, on a shared store.
    helpers: Mutex<Vec<JoinHandle<()>>>,
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
        let store_is_shared = store.cluster().is_some();
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
            cluster: store_is_shared.then(|| ClusterNode {
                leases: Mutex::new(HashMap::new()),
                waiting: Mutex::new(HashMap::new()),
                stop: std::sync::atomic::AtomicBool::new(false),
                wake: std::sync::Condvar::new(),
                wake_lock: Mutex::new(()),
            }),
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
            .spawn(move || {
                Sequencer {
                    shared: sequencer_shared,
                    logs,
                    epochs: HashMap::new(),
                    inbox_read: Instant::now(),
                }
                .run(receiver)
            })
            .map_err(|err| Error::Unavailable(format!("cannot start the sequencer thread: {err}")))?;
        let mut helpers = Vec::new();
        if shared.cluster.is_some() {
            let spawn = |name: &str, f: fn(Arc<Shared>)| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || f(shared))
                    .map_err(|err| Error::Unavailable(format!("cannot start {name}: {err}")))
            };
            helpers.push(spawn("evident-leases", Shared::keep_leases)?);
            helpers.push(spawn("evident-answers", Shared::collect_answers)?);
        }
        Ok(Engine {
            shared,
            sender: Mutex::new(Some(sender)),
            sequencer: Mutex::new(Some(handle)),
            helpers: Mutex::new(helpers),
        })
    }

    /// The tenants this node sequences, with their lease epochs; every tenant on a single-node
    /// store (epoch 0).
    pub fn led_tenants(&self) -> Vec<(TenantId, u64)> {
        let mut led: Vec<(TenantId, u64)> = match &self.shared.cluster {
            None => self.tenants().into_iter().map(|t| (t, 0)).collect(),
            Some(_) => self
                .tenants()
                .into_iter()
                .filter_map(|t| self.shared.held(&t).map(|epoch| (t, epoch)))
                .collect(),
        };
        led.sort();
        led
    }

    /// This node's name among the nodes sharing the store.
    pub fn node_id(&self) -> &str {
        &self.shared.config.node_id
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
        if let Some(cluster) = &self.shared.cluster {
            // Let the lease keeper take the new log's lease now rather than at its next round.
            cluster.wake.notify_all();
        }
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
        let items: Vec<_> =
            events.into_iter().map(|validated| self.shared.prepare(tenant, &entry, validated)).collect();
        let (reply, receiver) = oneshot::channel();
        if self.shared.cluster.is_some() && self.shared.held(tenant).is_none() {
            self.shared.forward(tenant, &items, reply, count);
            return Ok(receiver);
        }
        let sender = self.sender.lock().expect("sender lock");
        let Some(sender) = sender.as_ref() else {
            self.shared.queued.fetch_sub(count, Ordering::AcqRel);
            return Err(Error::ShuttingDown);
        };
        sender
            .send(Request { tenant: tenant.clone(), items, reply: Reply::Local(reply) })
            .map_err(|_| Error::ShuttingDown)?;
        Ok(receiver)
    }

    /// Stops taking work, lets the sequencer finish every queued request, and waits for it.
    pub fn shutdown(&self) {
        self.sender.lock().expect("sender lock").take();
        if let Some(handle) = self.sequencer.lock().expect("sequencer lock").take() {
            let _ = handle.join();
        }
        if let Some(cluster) = &self.shared.cluster {
            cluster.stop.store(true, Ordering::SeqCst);
            cluster.wake.notify_all();
            for handle in self.helpers.lock().expect("helpers lock").drain(..) {
                let _ = handle.join();
            }
        }
    }

    /// Events waiting to be sequenced.
    pub fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Opens a subject's data key for reading personal parts.
    pub(crate) fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<DataKey>> {
        self.shared.data_key(tenant, subject)
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
        if let Some(entry) = self.tenants.read().expect("tenants lock").get(tenant) {
            return Ok(Arc::clone(entry));
        }
        // Another node sharing the store may have created it.
        if self.cluster.is_some()
            && let Some((_, policy)) = self.store.tenants()?.into_iter().find(|(t, _)| t == tenant)
        {
            let entry = self.tenant_entry(tenant, policy)?;
            self.tenants.write().expect("tenants lock").insert(tenant.clone(), Arc::clone(&entry));
            return Ok(entry);
        }
        Err(Error::NotFound(format!("tenant {tenant}")))
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

    fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<DataKey>> {
        if let Some(cached) = self.keys.lock().expect("keys lock").get(&(tenant.clone(), subject.to_owned()))
        {
            return Ok(Some(cached.key.clone()));
        }
        match self.store.data_key(tenant, subject)? {
            Some(wrapped) => Ok(Some(self.master.unwrap(tenant.as_str(), subject, &wrapped)?)),
            None => Ok(None),
        }
    }

    /// The data key to seal a subject's personal part with, and its wrapped form when it is not
    /// yet known to be stored (the commit then stores it, unless already there).
    fn key_for_writing(&self, tenant: &TenantId, subject: &str) -> Result<(DataKey, Option<Vec<u8>>)> {
        let cache_key = (tenant.clone(), subject.to_owned());
        if let Some(cached) = self.keys.lock().expect("keys lock").get(&cache_key) {
            return Ok((cached.key.clone(), (!cached.persisted).then(|| cached.wrapped.clone())));
        }
        let stored = match self.store.cluster() {
            // Another node may be sealing for the same new subject right now: store a key first
            // (one round trip, outside the cache lock), and use whichever key the store kept.
            Some(cluster) => {
                let fresh = self.master.wrap(tenant.as_str(), subject, &DataKey::generate());
                Some(cluster.ensure_data_key(tenant, subject, &fresh)?)
            }
            None => self.store.data_key(tenant, subject)?,
        };
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

/// Leadership and forwarding on a shared store.
impl Shared {
    /// The epoch of the tenant's lease if this node holds it, confirmed recently enough that it
    /// cannot have expired yet by the store's clock (renewals take a quarter of the lease; a
    /// lease not confirmed for three quarters is treated as lost). The store checks again in
    /// every commit, so this only steers work; it never decides safety.
    fn held(&self, tenant: &TenantId) -> Option<u64> {
        let cluster = self.cluster.as_ref()?;
        let leases = cluster.leases.lock().expect("leases lock");
        let (epoch, confirmed) = leases.get(tenant)?;
        (confirmed.elapsed() < self.config.lease_ttl * 3 / 4).then_some(*epoch)
    }

    /// Puts a request in the store's inbox for the tenant's leader and registers the caller to
    /// be answered when the leader has stored it.
    /// `count` events of the queue's count are released when the answer comes.
    fn forward(
        &self,
        tenant: &TenantId,
        items: &[std::result::Result<Prepared, String>],
        reply: Answer,
        count: usize,
    ) {
        let cluster = self.cluster.as_ref().expect("forwarding only on a shared store");
        let store = self.store.cluster().expect("a shared store");
        let ticket = match store.enqueue(tenant, &crate::inbox::encode_request(items)) {
            Ok(ticket) => ticket,
            Err(err) => {
                self.queued.fetch_sub(count, Ordering::AcqRel);
                let _ = reply.send(Err(err));
                return;
            }
        };
        self.stats.forwarded.fetch_add(items.len() as u64, Ordering::Relaxed);
        let deadline = Instant::now() + self.config.forward_timeout;
        cluster.waiting.lock().expect("waiting lock").insert(ticket, (reply, count, deadline));
    }

    fn sleep(&self, cluster: &ClusterNode, wait: Duration) {
        let guard = cluster.wake_lock.lock().expect("wake lock");
        if !cluster.stop.load(Ordering::SeqCst) {
            let _ = cluster.wake.wait_timeout(guard, wait);
        }
    }

    /// The lease keeper: takes free or expired leases of every tenant and renews held ones,
    /// every quarter of the lease; gives them up on shutdown so another node takes over at once.
    fn keep_leases(self: Arc<Shared>) {
        let cluster = self.cluster.as_ref().expect("a shared store");
        let store = self.store.cluster().expect("a shared store");
        let node = self.config.node_id.as_str();
        let ttl = self.config.lease_ttl;
        while !cluster.stop.load(Ordering::SeqCst) {
            let round = Instant::now();
            match self.store.tenants() {
                Err(err) => tracing::warn!(error = %err, "cannot list tenants for leases"),
                Ok(tenants) => {
                    for (tenant, _) in tenants {
                        let asked = Instant::now();
                        let held = store.acquire_lease(&tenant, node, ttl);
                        let mut leases = cluster.leases.lock().expect("leases lock");
                        match held {
                            Ok(Some(epoch)) => {
                                let previous = leases.insert(tenant.clone(), (epoch, asked));
                                if previous.is_none_or(|(old, _)| old != epoch) {
                                    tracing::info!(%tenant, epoch, node, "leading the tenant's log");
                                    self.stats.lease_takeovers.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(None) => {
                                if leases.remove(&tenant).is_some() {
                                    tracing::warn!(%tenant, node, "lost the tenant's lease to another node");
                                }
                            }
                            Err(err) => tracing::warn!(%tenant, error = %err, "cannot renew the lease"),
                        }
                    }
                }
            }
            self.sleep(cluster, (ttl / 4).saturating_sub(round.elapsed()));
        }
        let held: Vec<(TenantId, (u64, Instant))> =
            cluster.leases.lock().expect("leases lock").drain().collect();
        for (tenant, (epoch, _)) in held {
            if let Err(err) = store.release_lease(&tenant, node, epoch) {
                tracing::warn!(%tenant, error = %err, "cannot release the lease");
            }
        }
    }

    /// Answers callers whose requests went to another node's inbox, once that node stored them
    /// (or tells them to retry when it takes too long; their ids make a retry safe).
    fn collect_answers(self: Arc<Shared>) {
        let cluster = self.cluster.as_ref().expect("a shared store");
        let store = self.store.cluster().expect("a shared store");
        loop {
            let stopping = cluster.stop.load(Ordering::SeqCst);
            let tickets: Vec<u64> = cluster.waiting.lock().expect("waiting lock").keys().copied().collect();
            if tickets.is_empty() && stopping {
                return;
            }
            if !tickets.is_empty() {
                match store.answers(&tickets) {
                    Err(err) => tracing::warn!(error = %err, "cannot read inbox answers"),
                    Ok(answers) => {
                        let done: Vec<u64> = answers.iter().map(|(ticket, _)| *ticket).collect();
                        let mut waiting = cluster.waiting.lock().expect("waiting lock");
                        for (ticket, answer) in answers {
                            if let Some((reply, count, _)) = waiting.remove(&ticket) {
                                self.queued.fetch_sub(count, Ordering::AcqRel);
                                let _ = reply.send(crate::inbox::decode_answer(&answer));
                            }
                        }
                        drop(waiting);
                        if !done.is_empty()
                            && let Err(err) = store.forget(&done)
                        {
                            tracing::warn!(error = %err, "cannot delete answered inbox requests");
                        }
                    }
                }
                let now = Instant::now();
                let mut waiting = cluster.waiting.lock().expect("waiting lock");
                let late: Vec<u64> = waiting
                    .iter()
                    .filter(|(_, (_, _, deadline))| stopping || *deadline <= now)
                    .map(|(ticket, _)| *ticket)
                    .collect();
                for ticket in late {
                    let (reply, count, _) = waiting.remove(&ticket).expect("listed above");
                    self.queued.fetch_sub(count, Ordering::AcqRel);
                    let _ = reply.send(Err(Error::Unavailable(format!(
                        "the tenant's leader has not stored request {ticket} yet; \
                         send the same events again (their ids make it safe)"
                    ))));
                }
            }
            self.sleep(cluster, self.config.inbox_poll);
        }
    }
}

/// The single thread that sequences, commits and publishes.
struct Sequencer {
    shared: Arc<Shared>,
    logs: HashMap<TenantId, LogState>,
    /// On a shared store, the lease epoch each cached log state was loaded under: a state is
    /// only trusted while this node keeps leading at that epoch.
    epochs: HashMap<TenantId, u64>,
    /// When the inbox was last read: at most once per `inbox_poll`, busy or not, so a busy
    /// leader does not pay an extra round trip per group.
    inbox_read: Instant,
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
        let shared_store = self.shared.cluster.is_some();
        loop {
            // On a shared store the sequencer also wakes to look for other nodes' requests.
            let first = if shared_store {
                match receiver.recv_timeout(self.shared.config.inbox_poll) {
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
                self.shared.queued.fetch_sub(entries, Ordering::AcqRel);
            }
            if shared_store {
                self.route(&mut group);
                if self.inbox_read.elapsed() >= self.shared.config.inbox_poll {
                    self.inbox_read = Instant::now();
                    self.take_inbox(&mut group, max_entries.saturating_sub(entries));
                }
            }
            if !group.is_empty() {
                self.process(group);
            }
        }
    }

    /// On a shared store: hands requests for tenants this node does not lead (any more) to the
    /// inbox, and forgets log states loaded under another lease epoch.
    fn route(&mut self, group: &mut Vec<Request>) {
        let mut kept = Vec::with_capacity(group.len());
        for request in group.drain(..) {
            let Some(epoch) = self.shared.held(&request.tenant) else {
                self.logs.remove(&request.tenant);
                self.epochs.remove(&request.tenant);
                if let Reply::Local(reply) = request.reply {
                    // Its events already left the queue's count.
                    self.shared.forward(&request.tenant, &request.items, reply, 0);
                }
                // An inbox request of a tenant this node no longer leads stays for its leader.
                continue;
            };
            if self.epochs.get(&request.tenant) != Some(&epoch) {
                self.logs.remove(&request.tenant);
                self.epochs.insert(request.tenant.clone(), epoch);
            }
            kept.push(request);
        }
        *group = kept;
    }

    /// On a shared store: adds requests other nodes queued for the tenants this node leads.
    fn take_inbox(&mut self, group: &mut Vec<Request>, room: usize) {
        let cluster = self.shared.cluster.as_ref().expect("a shared store");
        let store = self.shared.store.cluster().expect("a shared store");
        let waiting = match store.tenants_with_pending() {
            Ok(waiting) => waiting,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the inbox");
                return;
            }
        };
        let led: Vec<TenantId> = {
            let leases = cluster.leases.lock().expect("leases lock");
            waiting.into_iter().filter(|tenant| leases.contains_key(tenant)).collect()
        };
        let mut room = room;
        for tenant in led {
            let Some(epoch) = self.shared.held(&tenant) else { continue };
            if room == 0 {
                break;
            }
            let pending = match store.pending(&tenant, room.min(256)) {
                Ok(pending) => pending,
                Err(err) => {
                    tracing::warn!(%tenant, error = %err, "cannot read the inbox");
                    continue;
                }
            };
            if pending.is_empty() {
                continue;
            }
            if self.epochs.get(&tenant) != Some(&epoch) {
                self.logs.remove(&tenant);
                self.epochs.insert(tenant.clone(), epoch);
            }
            for (ticket, request) in pending {
                let mut items = crate::inbox::decode_request(&tenant, &request).unwrap_or_else(|err| {
                    tracing::error!(%tenant, ticket, error = %err, "unreadable inbox request");
                    vec![Err(format!("the forwarding node sent an unreadable request: {err}"))]
                });
                if self.shared.committed.receiver_count() > 0 {
                    // Personal parts travel sealed; subscribers (detection) get them in clear.
                    for prepared in items.iter_mut().filter_map(|item| item.as_mut().ok()) {
                        let Some((subject, sealed)) = &prepared.entry.sealed else { continue };
                        if let Ok(Some(key)) = self.shared.data_key(&tenant, subject)
                            && let Ok((_, canonical)) =
                                key.unseal(tenant.as_str(), &prepared.event_id, sealed)
                        {
                            prepared.personal = Some(canonical);
                        }
                    }
                }
                room = room.saturating_sub(items.len());
                self.shared.stats.inbox_requests.fetch_add(1, Ordering::Relaxed);
                group.push(Request { tenant: tenant.clone(), items, reply: Reply::Inbox(ticket) });
            }
        }
    }

    fn process(&mut self, mut group: Vec<Request>) {
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

    fn log_state(&mut self, tenant: &TenantId, verifiers: &[Verifier]) -> Result<LogState> {
        if let Some(state) = self.logs.get(tenant) {
            return Ok(state.clone());
        }
        let state = LogState::load(&*self.shared.store, tenant, &self.shared.origin(tenant), verifiers)?;
        self.logs.insert(tenant.clone(), state.clone());
        Ok(state)
    }

    /// `lookup`: look the group's idempotency keys up in the store first. A store that refuses
    /// duplicate entries in its commits ([`crate::store::LogStore::refuses_duplicate_entries`])
    /// lets the engine skip that round trip and retry with it after a conflict.
    fn sequence_and_commit(&mut self, group: &mut [Request], lookup: bool) -> Result<Vec<Vec<Outcome>>> {
        // Idempotency and index assignment, per tenant, in arrival order.
        let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(group.len());
        let mut next_states: HashMap<TenantId, (LogState, Vec<Hash>, Vec<NewEntry>)> = HashMap::new();
        // The personal parts in clear of new entries, per tenant in index order, for subscribers.
        let mut personals: HashMap<TenantId, Vec<Option<Vec<u8>>>> = HashMap::new();
        let mut seen: HashMap<IdempotencyKey, FirstInGroup> = HashMap::new();
        let mut commit = Commit::default();
        // Idempotency keys looked up once per tenant for the whole group (one query, not one per
        // request), answers in request order.
        let mut existing_by_tenant: HashMap<TenantId, std::vec::IntoIter<Option<crate::store::Existing>>> =
            HashMap::new();
        {
            let mut keys: HashMap<&TenantId, Vec<(&str, &str)>> = HashMap::new();
            for request in group.iter() {
                keys.entry(&request.tenant).or_default().extend(
                    request
                        .items
                        .iter()
                        .filter_map(|item| item.as_ref().ok())
                        .map(|p| (p.source.as_str(), p.producer_id.as_str())),
                );
            }
            for (tenant, keys) in keys {
                let found = if lookup {
                    self.shared.store.find_existing(tenant, &keys)?
                } else {
                    vec![None; keys.len()]
                };
                existing_by_tenant.insert(tenant.clone(), found.into_iter());
            }
        }
        for request in group.iter_mut() {
            let tenant_entry = self.shared.tenant(&request.tenant)?;
            if !next_states.contains_key(&request.tenant) {
                let state = self.log_state(&request.tenant, &tenant_entry.verifiers)?;
                next_states.insert(request.tenant.clone(), (state, Vec::new(), Vec::new()));
            }
            let existing = existing_by_tenant.get_mut(&request.tenant).expect("looked up above");
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
                // Without the lookup the group may be sequenced again (see `lookup`): copy what a
                // second pass needs; with it this is the last pass, so move.
                let mut entry =
                    if lookup { std::mem::take(&mut prepared.entry) } else { prepared.entry.clone() };
                entry.index = index;
                entries.push(entry);
                personals.entry(request.tenant.clone()).or_default().push(if lookup {
                    prepared.personal.take()
                } else {
                    prepared.personal.clone()
                });
                if let Some(new_key) = if lookup { prepared.new_key.take() } else { prepared.new_key.clone() }
                {
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
        if self.shared.cluster.is_some() {
            let mut leases = Vec::new();
            for request in group.iter() {
                if !leases.iter().any(|(t, _)| t == &request.tenant) {
                    let epoch = self.epochs.get(&request.tenant).copied().ok_or_else(|| {
                        Error::Conflict(format!("this node does not lead tenant {}", request.tenant))
                    })?;
                    leases.push((request.tenant.clone(), epoch));
                }
            }
            commit.fence = Some(Fence { node: self.shared.config.node_id.clone(), leases });
            for (request, outcomes) in group.iter().zip(&answers) {
                if let Reply::Inbox(ticket) = request.reply {
                    commit.answered.push((ticket, crate::inbox::encode_answer(&Ok(outcomes.clone()))));
                }
            }
        }
        if !commit.logs.is_empty() || !commit.answered.is_empty() {
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

        Ok(answers)
    }
}
