//! The engine: takes validated events, seals their personal parts, and sequences, integrates and
//! publishes them into their tenants' logs with group commit; answers reads and proofs.
//!
//! The append path, and what a crash at each step leaves behind:
//! 1. *Prepare* (caller's thread, `Shared::prepare`): event id, time of recording, leaf,
//!    sealing. Nothing is written; a crash loses only requests that were never acknowledged.
//! 2. *Queue*: bounded by events, counted by `QueueSlots` (`queue.rs`); a full queue
//!    answers [`Error::Overloaded`] at once.
//! 3. *Plan*, then *integrate and sign* (the sequencer thread, `sequencer.rs`): a group of
//!    requests, up to `max_batch_entries` or `max_batch_delay`, is checked for idempotency, given
//!    indices, integrated into each tenant's tree, and its checkpoints signed, all in memory on
//!    copies of the log states.
//! 4. *Commit*: one storage transaction writes entries, index rows, tiles, data keys, the new
//!    checkpoints and the answers to other nodes' requests, swapping each log's size from the old
//!    to the new value. A crash before it commits leaves the store exactly as before the group;
//!    after, the whole group is durable.
//! 5. *Publish*: only after the commit are the in-memory states swapped and the callers answered
//!    with receipts. A failed commit answers every caller of the group with the error and reloads
//!    the affected logs from storage.
//!
//! On a store shared by several nodes, `cluster.rs` adds leases, forwarding to the tenant's
//! leader through the store's inbox, and fenced commits.

mod cluster;
mod queue;
mod sequencer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evident_tlog::{Signer, Verifier, leaf_hash};
use tokio::sync::oneshot;
use uuid::Uuid;

pub use crate::append::{Outcome, Receipt};

use self::cluster::ClusterNode;
use self::queue::QueueSlots;
use self::sequencer::Sequencer;
use crate::append::Prepared;
use crate::error::{Error, Result};
use crate::event::TenantPolicy;
use crate::leaf::{self, Recorded};
use crate::log::LogState;
use crate::privacy::idempotency::{Idempotency, PersonalDigest};
use crate::privacy::retention;
use crate::seal::{DataKey, MasterKey, random_32};
use crate::stats::EngineStats;
use crate::store::{NewDataKey, NewEntry, Store, TenantId};
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
    /// On a store shared by several nodes, how long a data key stays in memory before it is
    /// read from the store again: the bound within which every node stops using a key another
    /// node erased. (A single node's erasures drop the key from its cache at once.)
    pub key_cache_ttl: Duration,
    /// This node's name among the nodes sharing a store (unused on a single-node store).
    pub node_id: String,
    /// How long a tenant's lease lasts without renewal: a failed leader's tenants are taken over
    /// after at most about this long. Renewed every quarter of it.
    pub lease_ttl: Duration,
    /// How often a leader looks for requests other nodes queued, and a follower for answers.
    pub inbox_poll: Duration,
    /// How long a follower waits for the leader's answer before telling the caller to retry.
    pub forward_timeout: Duration,
    /// Every commit signs a checkpoint and answers with it, and the store keeps the latest as
    /// the head; a commit's checkpoint is also kept in the log's history when at least this many
    /// entries were added since the last kept one, or `keep_checkpoint_interval` passed (or it is
    /// this sequencer's first commit of the log). So the checkpoints `fsck` verifies grow with
    /// entries and time, not with commits. 1 keeps every checkpoint.
    pub keep_checkpoint_entries: u64,
    /// See `keep_checkpoint_entries`.
    pub keep_checkpoint_interval: Duration,
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
            key_cache_ttl: Duration::from_secs(5),
            node_id: default_node_id(),
            lease_ttl: Duration::from_secs(5),
            inbox_poll: Duration::from_millis(5),
            forward_timeout: Duration::from_secs(30),
            // One strict Ed25519 verification costs fsck about 35 us: at most one per 1,000
            // entries or per second keeps it far below the entries' own cost (bench/README.md).
            keep_checkpoint_entries: 1000,
            keep_checkpoint_interval: Duration::from_secs(1),
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
    /// The request's events in the queue's count, until the sequencer takes them.
    queued: QueueSlots,
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
    held: Held,
    /// When it was read from the store (or made); stale after `key_cache_ttl`.
    cached_at: Instant,
}

/// What the store is known to hold of a cached data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Nothing: made here, the commit of the entries sealed with it stores it.
    Nothing,
    /// The key, perhaps not durably: read or ensured on a shared store, whose crash may lose a
    /// key another node stored moments before. The commit of the entries sealed with it checks
    /// that it is stored ([`NewDataKey::stored`]).
    Unconfirmed,
    /// The key, durably.
    Durable,
}

/// How recently a cached data key must have been read for a part sealed under another key not
/// to have it read again ([`Shared::key_to_open`]).
const REREAD_AFTER: Duration = Duration::from_secs(1);

/// Data keys in memory, by tenant and key name.
type KeyCache = HashMap<(TenantId, String), CachedKey>;

impl CachedKey {
    /// A key cached now.
    fn new(key: DataKey, wrapped: Vec<u8>, held: Held) -> CachedKey {
        CachedKey { key, wrapped, held, cached_at: Instant::now() }
    }

    /// What the commit of entries sealed with this key must store or check of it.
    fn for_commit(&self, tenant: &TenantId, subject: &str) -> Option<NewDataKey> {
        let stored = match self.held {
            Held::Durable => return None,
            Held::Nothing => false,
            Held::Unconfirmed => true,
        };
        Some(NewDataKey {
            tenant: tenant.clone(),
            subject: subject.to_owned(),
            wrapped: self.wrapped.clone(),
            stored,
        })
    }
}

struct Shared {
    store: Arc<dyn Store>,
    config: EngineConfig,
    signing_seed: zeroize::Zeroizing<[u8; 32]>,
    retired_seeds: Vec<zeroize::Zeroizing<[u8; 32]>>,
    master: MasterKey,
    /// The secret search tokens derive from (`privacy/search.rs`).
    search_secret: zeroize::Zeroizing<[u8; 32]>,
    tenants: RwLock<HashMap<TenantId, Arc<Tenant>>>,
    keys: Mutex<KeyCache>,
    /// Erasures of data keys so far, counted under the `keys` lock: a key read from the store
    /// outside that lock is cached only if no erasure came between the read and the caching.
    key_erasures: AtomicU64,
    /// Events waiting to be sequenced, counted by [`QueueSlots`].
    queued: Arc<AtomicUsize>,
    /// Callers of `append` and `append_async` not yet answered (`Caller`).
    callers: AtomicUsize,
    stats: EngineStats,
    committed: tokio::sync::broadcast::Sender<Arc<Committed>>,
    /// Set when the store is shared by several nodes.
    cluster: Option<ClusterNode>,
}

/// The audit engine. Cheap to share behind an `Arc`; [`Engine::shutdown`] drains the queue.
pub struct Engine {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    /// The sequencer's state: its thread takes it per group, a lone blocking caller for its own
    /// request (`sequencer.rs`).
    core: Arc<Mutex<Sequencer>>,
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
        let search_secret = crate::privacy::search::load_secret(&*store, &master)?;
        let shared = Arc::new(Shared {
            store,
            config,
            signing_seed: zeroize::Zeroizing::new(signing_seed),
            retired_seeds: retired.into_iter().map(zeroize::Zeroizing::new).collect(),
            master,
            search_secret,
            tenants: RwLock::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            key_erasures: AtomicU64::new(0),
            queued: Arc::new(AtomicUsize::new(0)),
            callers: AtomicUsize::new(0),
            stats: EngineStats::default(),
            committed: tokio::sync::broadcast::channel(COMMITTED_BACKLOG).0,
            cluster: store_is_shared.then(ClusterNode::new),
        });
        let mut logs = HashMap::new();
        for (tenant, policy) in shared.store.tenants()? {
            let entry = shared.tenant_entry(&tenant, policy)?;
            let state = LogState::load(&*shared.store, &tenant, &shared.origin(&tenant), &entry.verifiers)?;
            logs.insert(tenant.clone(), state);
            shared.tenants.write().expect("tenants lock").insert(tenant, entry);
        }
        let (sender, receiver) = mpsc::channel();
        let core = Arc::new(Mutex::new(Sequencer {
            shared: Arc::clone(&shared),
            logs,
            epochs: HashMap::new(),
            kept: HashMap::new(),
            inbox_read: Instant::now(),
        }));
        let thread_core = Arc::clone(&core);
        let handle = std::thread::Builder::new()
            .name("evident-sequencer".into())
            .spawn(move || sequencer::run(thread_core, receiver))
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
            core,
            sequencer: Mutex::new(Some(handle)),
            helpers: Mutex::new(helpers),
        })
    }

    /// The tenants this node sequences, with their lease epochs; every tenant on a single-node
    /// store (epoch 0).
    pub fn led_tenants(&self) -> Vec<(TenantId, u64)> {
        let mut led: Vec<(TenantId, u64)> = match &self.shared.cluster {
            None => self.tenants().into_iter().map(|t| (t, 0)).collect(),
            // The leases the keeper holds, not this engine's list of tenants: a tenant another
            // node created is leased here before this engine has loaded it (the cluster tests'
            // flake: the store said node-b held the lease, node-b led nothing).
            Some(cluster) => {
                let leased: Vec<TenantId> =
                    cluster.leases.lock().expect("leases lock").keys().cloned().collect();
                leased.into_iter().filter_map(|t| self.shared.held(&t).map(|epoch| (t, epoch))).collect()
            }
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
    ///
    /// A caller alone with the engine (no other request unanswered, the sequencer idle; on a
    /// shared store, this node leading the tenant) commits its request on its own thread
    /// instead of handing it to the sequencer's and waiting to be woken: the same group steps,
    /// one thread hand-off each way less.
    pub fn append(&self, tenant: &TenantId, events: Vec<Validated>) -> Result<Vec<Outcome>> {
        let begun = Instant::now();
        let _caller = Caller::enter(&self.shared.callers);
        let outcomes = self
            .submit(tenant, events, Submit::MayCommitHere)?
            .blocking_recv()
            .map_err(|_| Error::ShuttingDown)?;
        self.shared.stats.ack_latency.observe(begun.elapsed().as_secs_f64());
        outcomes
    }

    /// [`Engine::append`] for async callers.
    pub async fn append_async(&self, tenant: &TenantId, events: Vec<Validated>) -> Result<Vec<Outcome>> {
        let begun = Instant::now();
        let _caller = Caller::enter(&self.shared.callers);
        let outcomes = self.submit(tenant, events, Submit::Queue)?.await.map_err(|_| Error::ShuttingDown)?;
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
        how: Submit,
    ) -> Result<oneshot::Receiver<Result<Vec<Outcome>>>> {
        let entry = self.shared.tenant(tenant)?;
        let queued = QueueSlots::take(&self.shared.queued, events.len(), self.shared.config.queue_capacity)
            .ok_or(Error::Overloaded { retry_after: Duration::from_secs(1) })?;
        // A failure of ours while preparing (a data key that cannot be read or opened) fails the
        // whole request before anything is queued: nothing is stored, and the caller is told to
        // retry rather than that its events are wrong.
        let items = events
            .into_iter()
            .map(|validated| self.shared.prepare(tenant, &entry, validated))
            .collect::<Result<Vec<_>>>()?;
        let (reply, receiver) = oneshot::channel();
        if self.shared.cluster.is_some() && self.shared.held(tenant).is_none() {
            self.shared.forward(tenant, &items, reply, queued);
            return Ok(receiver);
        }
        let mut request = Request { tenant: tenant.clone(), items, reply: Reply::Local(reply), queued };
        let guard = self.sender.lock().expect("sender lock");
        let Some(sender) = guard.as_ref() else { return Err(Error::ShuttingDown) };
        if how == Submit::MayCommitHere
            && self.shared.callers.load(Ordering::Acquire) == 1
            && let Ok(mut core) = self.core.try_lock()
        {
            drop(guard);
            request.queued.release();
            let mut group = vec![request];
            // On a shared store: fenced by this node's lease, or forwarded if it was just lost.
            // Other nodes' requests wait for the sequencer thread's next look at the inbox.
            if self.shared.cluster.is_some() {
                core.route(&mut group);
            }
            if !group.is_empty() {
                // Answers `reply` before it returns.
                core.process(group);
            }
            return Ok(receiver);
        }
        // A request the sequencer can no longer take (its thread ended) gives its slots back as
        // it is dropped with the send error.
        sender.send(request).map_err(|_| Error::ShuttingDown)?;
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

    /// How long a node may keep using a cached data key another node erased: none on a
    /// single-node store, where there is no other node.
    pub fn key_cache_ttl(&self) -> Duration {
        self.shared.key_cache_ttl().unwrap_or(Duration::ZERO)
    }

    /// The search token of a personal value (`privacy/search.rs`), or `None` when `field` is not
    /// searchable in the tenant.
    pub fn search_token(
        &self,
        tenant: &TenantId,
        field: &str,
        value: &serde_json::Value,
    ) -> Result<Option<String>> {
        let policy = self.policy(tenant)?;
        Ok(crate::privacy::search::searchable(field, &policy).then(|| {
            crate::privacy::search::token(&self.shared.search_secret, tenant.as_str(), field, value)
        }))
    }

    /// The master key, which wraps data keys and service secrets.
    pub fn master_key(&self) -> &MasterKey {
        &self.shared.master
    }

    /// The data key to open a subject's sealed part with ([`Shared::key_to_open`]).
    pub(crate) fn key_to_open(
        &self,
        tenant: &TenantId,
        subject: &str,
        sealed: &[u8],
    ) -> Result<Option<DataKey>> {
        self.shared.key_to_open(tenant, subject, sealed)
    }

    /// Destroys every data key of a subject (its own and its months'): its personal parts can no
    /// longer be opened, while every leaf still verifies. `false` if the subject had no key.
    pub fn erase_subject(&self, tenant: &TenantId, subject: &str) -> Result<bool> {
        // Its search tokens first: the subject drops out of personal-field search.
        self.shared.store.forget_search_tokens(tenant, subject)?;
        let mut destroyed = false;
        for name in self.shared.store.data_key_names(tenant, Some(subject))? {
            destroyed |= self.erase_data_key(tenant, &name)?;
        }
        Ok(destroyed)
    }

    /// Destroys one data key by its name (and this node's cached copy).
    pub(crate) fn erase_data_key(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        let mut keys = self.shared.keys.lock().expect("keys lock");
        keys.remove(&(tenant.clone(), name.to_owned()));
        self.shared.key_erasures.fetch_add(1, Ordering::AcqRel);
        self.shared.store.erase_data_key(tenant, name)
    }
}

/// How `Engine::submit` may hand a request on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Submit {
    /// Through the queue to the sequencer's thread.
    Queue,
    /// On the caller's thread when it is alone (`Engine::append`); through the queue otherwise.
    MayCommitHere,
}

/// A caller of `append` or `append_async` counted in `Shared::callers` until it is answered.
struct Caller<'a>(&'a AtomicUsize);

impl<'a> Caller<'a> {
    fn enter(callers: &'a AtomicUsize) -> Caller<'a> {
        callers.fetch_add(1, Ordering::AcqRel);
        Caller(callers)
    }
}

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

    /// Step 1 of the append path, on the caller's thread. The inner error is the event's fault
    /// (its leaf does not fit a log entry) and rejects that event; the outer one is ours (a data
    /// key that cannot be read or opened) and is always [`Error::Unavailable`], so it is answered
    /// as "retry later", never as a rejection.
    fn prepare(
        &self,
        tenant: &TenantId,
        entry: &Tenant,
        validated: Validated,
    ) -> Result<std::result::Result<Prepared, String>> {
        let Validated { event, warnings } = validated;
        let event_id = Uuid::now_v7();
        let recorded = Recorded { tenant: tenant.to_string(), event_id, recorded_at: Micros::now() };
        let leaf = match leaf::build_leaf(&event, &recorded, &entry.policy, random_32()) {
            Ok(leaf) => leaf,
            Err(err) => return Ok(Err(err.to_string())),
        };
        let mut new_key = None;
        let mut personal_digest = PersonalDigest::None;
        let sealed = match &leaf.personal {
            None => None,
            Some(personal) => {
                let classes: Vec<&str> = event.data_classes.iter().map(|c| c.as_str()).collect();
                let subject = retention::key_name(
                    &leaf::sealing_subject(&event),
                    event.time,
                    &event.event_type,
                    &classes,
                );
                let key;
                (key, new_key) = self.key_for_writing(tenant, &subject).map_err(|err| {
                    Error::Unavailable(format!("the data key of a subject of tenant {tenant}: {err}"))
                })?;
                personal_digest = PersonalDigest::Keyed(key.idempotency_mac(&personal.canonical));
                Some((
                    subject,
                    key.seal(tenant.as_str(), event_id.as_bytes(), &personal.salt, &personal.canonical),
                ))
            }
        };
        let idempotency =
            Idempotency { skeleton: leaf.skeleton_digest, personal: personal_digest }.to_bytes();
        Ok(Ok(Prepared {
            event_id: *event_id.as_bytes(),
            source: event.source.clone(),
            producer_id: event.id.clone(),
            idempotency: idempotency.clone(),
            leaf_hash: leaf_hash(&leaf.entry),
            entry: NewEntry {
                index: 0,
                event_id: *event_id.as_bytes(),
                source: event.source.clone(),
                producer_id: event.id.clone(),
                idempotency,
                time: event.time,
                recorded_at: recorded.recorded_at,
                event_type: event.event_type.clone(),
                action: event.action.as_str().to_owned(),
                outcome: event.outcome.as_str().to_owned(),
                actor: event.actor.id.clone(),
                subject: event.subject.clone(),
                targets: self.targets(tenant, &event, &entry.policy),
                entry: leaf.entry,
                sealed,
            },
            new_key,
            warnings,
            personal: leaf.personal.map(|personal| personal.canonical),
        }))
    }

    /// The event's targets for the index, and a search token per searchable personal value.
    fn targets(
        &self,
        tenant: &TenantId,
        event: &crate::event::Event,
        policy: &TenantPolicy,
    ) -> Vec<(String, String)> {
        use crate::privacy::search;
        let mut targets: Vec<(String, String)> =
            event.targets.iter().map(|t| (t.target_type.clone(), t.id.clone())).collect();
        for (field, value) in search::fields(event, policy) {
            let token = search::token(&self.search_secret, tenant.as_str(), &field, &value);
            targets.push((format!("{}{field}", search::TARGET_PREFIX), token));
        }
        targets
    }

    /// The data key to open a subject's sealed part with. On a shared store a cached key may be
    /// older than the part: another node erased the subject's key and sealed the part under a
    /// new one, or the store lost the cached key and the part got a new one. A part sealed
    /// under another key than the cached one has the key read from the store again, unless the
    /// cached one was read less than [`REREAD_AFTER`] ago (so the parts of an erased key, all
    /// sealed under another, do not each cost a read).
    fn key_to_open(&self, tenant: &TenantId, subject: &str, sealed: &[u8]) -> Result<Option<DataKey>> {
        if self.cluster.is_some() {
            let mut keys = self.keys.lock().expect("keys lock");
            let cache_key = (tenant.clone(), subject.to_owned());
            if keys.get(&cache_key).is_some_and(|cached| {
                cached.held != Held::Nothing
                    && cached.cached_at.elapsed() >= REREAD_AFTER
                    && cached.key.sealed_another(sealed)
            }) {
                keys.remove(&cache_key);
            }
        }
        self.data_key(tenant, subject)
    }

    fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<DataKey>> {
        if let Some(cached) = self.cached_key(tenant, subject) {
            return Ok(Some(cached.0));
        }
        let (mut keys, stored) = self.read_for_cache(|| self.store.data_key(tenant, subject))?;
        let Some(wrapped) = stored else { return Ok(None) };
        let key = self.master.unwrap(tenant.as_str(), subject, &wrapped)?;
        // Kept for the reads after this one. When the cache is full, reads do not make room:
        // writes do (`key_for_writing`).
        if keys.len() < self.config.key_cache_capacity {
            let held = self.held_when_read();
            keys.entry((tenant.clone(), subject.to_owned()))
                .or_insert_with(|| CachedKey::new(key.clone(), wrapped, held));
        }
        Ok(Some(key))
    }

    /// A wrapped key read from the store by `read`, with the `keys` lock held, so that it may be
    /// cached: when an erasure came between the read and the lock (maybe of this very key), it
    /// is read again under the lock that erasures hold.
    fn read_for_cache(
        &self,
        read: impl Fn() -> Result<Option<Vec<u8>>>,
    ) -> Result<(std::sync::MutexGuard<'_, KeyCache>, Option<Vec<u8>>)> {
        let erasures = self.key_erasures.load(Ordering::Acquire);
        let mut stored = read()?;
        let keys = self.keys.lock().expect("keys lock");
        if self.key_erasures.load(Ordering::Acquire) != erasures {
            stored = read()?;
        }
        Ok((keys, stored))
    }

    /// How long a stored key stays cached: `key_cache_ttl` on a shared store, where other nodes
    /// may erase it; without bound on a single-node store, whose every erasure goes through this
    /// engine (`Engine::erase_data_key` drops the key from the cache).
    fn key_cache_ttl(&self) -> Option<Duration> {
        self.cluster.is_some().then_some(self.config.key_cache_ttl)
    }

    /// After a commit that relied on `data_keys` failed, or a request sealed with them was
    /// refused: the keys it was to check may be gone from the store (erased by another node, or
    /// lost in a crash of the store), so they are read again before their next use. Keys made
    /// here stay: the commit may have stored them before it failed to answer, and a retry must
    /// carry the same ones.
    fn forget_unconfirmed(&self, data_keys: &[NewDataKey]) {
        let mut keys = self.keys.lock().expect("keys lock");
        for checked in data_keys.iter().filter(|key| key.stored) {
            let cache_key = (checked.tenant.clone(), checked.subject.clone());
            if keys.get(&cache_key).is_some_and(|cached| cached.wrapped == checked.wrapped) {
                keys.remove(&cache_key);
            }
        }
    }

    /// How a key read from the store is held: durably on a single-node store (its keys are
    /// written by durable commits), perhaps not on a shared one ([`Cluster::ensure_data_key`]).
    fn held_when_read(&self) -> Held {
        if self.store.cluster().is_some() { Held::Unconfirmed } else { Held::Durable }
    }

    /// A subject's key from the cache, with what the commit of entries sealed with it must store
    /// or check. On a shared store, a stored key older than `key_cache_ttl` is dropped instead
    /// (another node may have erased it); on a single-node store every erasure goes through this
    /// engine, which drops the key from the cache as it destroys it. A key not yet stored stays:
    /// the commit that stores it is on its way.
    fn cached_key(&self, tenant: &TenantId, subject: &str) -> Option<(DataKey, Option<NewDataKey>)> {
        let mut keys = self.keys.lock().expect("keys lock");
        let cache_key = (tenant.clone(), subject.to_owned());
        let cached = keys.get(&cache_key)?;
        if cached.held != Held::Nothing
            && self.key_cache_ttl().is_some_and(|ttl| cached.cached_at.elapsed() >= ttl)
        {
            keys.remove(&cache_key);
            return None;
        }
        Some((cached.key.clone(), cached.for_commit(tenant, subject)))
    }

    /// The subject's wrapped key as the store has it (on a shared store, made and stored first
    /// if there was none).
    fn stored_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<Vec<u8>>> {
        Ok(match self.store.cluster() {
            // Another node may be sealing for the same new subject right now: store a key first
            // (one round trip, outside the cache lock), and use whichever key the store kept.
            Some(cluster) => {
                let fresh = self.master.wrap(tenant.as_str(), subject, &DataKey::generate());
                Some(cluster.ensure_data_key(tenant, subject, &fresh)?)
            }
            None => self.store.data_key(tenant, subject)?,
        })
    }

    /// The data key to seal a subject's personal part with, and what the commit of the entry
    /// must store (a key made here) or check (a key not known to be durable) of it.
    fn key_for_writing(&self, tenant: &TenantId, subject: &str) -> Result<(DataKey, Option<NewDataKey>)> {
        let cache_key = (tenant.clone(), subject.to_owned());
        if let Some(cached) = self.cached_key(tenant, subject) {
            return Ok(cached);
        }
        let (mut keys, stored) = self.read_for_cache(|| self.stored_key(tenant, subject))?;
        if keys.len() >= self.config.key_cache_capacity {
            keys.retain(|_, cached| cached.held == Held::Nothing);
        }
        let held = self.held_when_read();
        let cached = match keys.entry(cache_key) {
            std::collections::hash_map::Entry::Occupied(occupied) => occupied.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                let cached = match stored {
                    Some(wrapped) => {
                        CachedKey::new(self.master.unwrap(tenant.as_str(), subject, &wrapped)?, wrapped, held)
                    }
                    None => {
                        let key = DataKey::generate();
                        let wrapped = self.master.wrap(tenant.as_str(), subject, &key);
                        CachedKey::new(key, wrapped, Held::Nothing)
                    }
                };
                vacant.insert(cached)
            }
        };
        Ok((cached.key.clone(), cached.for_commit(tenant, subject)))
    }
}
