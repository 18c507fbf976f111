//! What the engine needs from storage. Backends (`evident-store-sqlite`, later PostgreSQL)
//! implement [`Store`]; every backend runs the same conformance suite.
//!
//! Two traits, by concern: [`LogStore`] holds the logs (entries, tiles, checkpoints, data keys)
//! and commits a sequenced batch atomically; [`EventIndex`] answers queries over stored events.

use evident_tlog::{TileId, TreeSize};

use crate::error::Result;
use crate::event::TenantPolicy;
use evident_wire::Micros;
use evident_wire::filter::{Filter, Order, TypeFilter};

/// A tenant's identity: 1..=64 of `[a-z0-9_-]`, starting with a letter or digit. It becomes the
/// last element of the log's origin, so it is kept URL- and path-safe.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: &str) -> Result<TenantId> {
        let valid = (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && id.as_bytes()[0].is_ascii_alphanumeric();
        if !valid {
            return Err(crate::Error::InvalidArgument(format!(
                "tenant id {id:?} must be 1 to 64 of a-z 0-9 - _, starting with a letter or digit"
            )));
        }
        Ok(TenantId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The latest published state of a tenant's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHead {
    pub size: TreeSize,
    /// The signed checkpoint note at `size`.
    pub checkpoint: String,
}

/// One sequenced entry with the columns queries use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEntry {
    pub index: u64,
    pub event_id: [u8; 16],
    pub source: String,
    /// The producer's own id (idempotency key with `source`).
    pub producer_id: String,
    /// The idempotency digest's stored form (`privacy/idempotency.rs`).
    pub idempotency: Vec<u8>,
    pub time: Micros,
    pub recorded_at: Micros,
    pub event_type: String,
    pub action: String,
    pub outcome: String,
    pub actor: String,
    pub subject: Option<String>,
    /// `(type, id)` of every target.
    pub targets: Vec<(String, String)>,
    /// The log entry: canonical skeleton.
    pub entry: Vec<u8>,
    /// The sealed personal part and the subject whose key seals it.
    pub sealed: Option<(String, Vec<u8>)>,
}

/// A tenant log's part of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCommit {
    pub tenant: TenantId,
    /// The size the store must still hold; anything else means another writer moved the log and
    /// the commit fails as a whole ([`crate::Error::Conflict`]).
    pub old_size: TreeSize,
    pub new_size: TreeSize,
    pub entries: Vec<NewEntry>,
    /// Tiles that changed and are kept ([`keeps_tile`]), full or partial (a partial tile replaces
    /// the narrower one stored for the same level and index; narrower widths are its prefixes).
    /// The level-0 partial tile is not among them: stores derive it from the entries
    /// ([`answer_tile`]).
    pub tiles: Vec<(TileId, Vec<u8>)>,
    pub checkpoint: String,
    /// Whether the store keeps `checkpoint` among the log's historical checkpoints
    /// ([`LogStore::checkpoints`]) once a later one replaces it as the head. The engine keeps one
    /// at a bounded rate (`EngineConfig::keep_checkpoint_entries` and `_interval`), so the
    /// signatures `fsck` verifies are bounded by time and entries, not by commits.
    pub keep_checkpoint: bool,
}

/// A data key a commit's entries were sealed with, wrapped: stored by the commit unless one is
/// already stored for the subject, or, when `stored`, checked by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDataKey {
    pub tenant: TenantId,
    pub subject: String,
    pub wrapped: Vec<u8>,
    /// The store holds it already ([`Cluster::ensure_data_key`], which may answer before the key
    /// is durable): the commit writes nothing of it, and fails as a whole with
    /// [`crate::Error::Conflict`] unless the subject's stored key is this one. The commit being
    /// durable then makes the key durable too, and a key erased meanwhile is never stored again.
    pub stored: bool,
}

/// The refusal of a commit naming a `stored` data key ([`NewDataKey::stored`]) that is not the
/// subject's stored key (erased meanwhile, or lost in a crash of the store). It names no
/// subject: the key names of subjects are personal.
pub fn data_key_changed(tenant: &TenantId) -> crate::Error {
    crate::Error::Conflict(format!(
        "a data key of {tenant} that the events were sealed with is no longer stored (erased, or lost \
         by the store): nothing was stored; send the events again"
    ))
}

/// Everything one group commit writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    pub data_keys: Vec<NewDataKey>,
    pub logs: Vec<LogCommit>,
    /// Set when several nodes share the store: the leases this commit is made under. The store
    /// checks, inside the commit's transaction, that `node` still holds each lease at its epoch
    /// and has not let it expire, and keeps them from changing hands until the commit ends;
    /// otherwise the whole commit fails with [`crate::Error::Conflict`]. Single-node stores
    /// refuse a commit with a fence.
    pub fence: Option<Fence>,
    /// Inbox requests ([`Cluster::enqueue`]) this commit answers: `(ticket, answer)`, stored in
    /// the same transaction so a request is answered exactly when its events are durable.
    pub answered: Vec<(u64, Vec<u8>)>,
}

/// The leases a commit is made under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    /// `(tenant, epoch)` of every tenant the commit writes or answers for.
    pub leases: Vec<(TenantId, u64)>,
}

/// Who holds a tenant's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub node: String,
    /// Grows by one each time the lease changes hands.
    pub epoch: u64,
    /// Time left before it expires, by the store's clock; negative once expired.
    pub remaining_ms: i64,
}

/// Coordination of several nodes sharing one store (PostgreSQL). A tenant's log is sequenced and
/// signed by the node that holds its lease; other nodes put their requests in a durable inbox
/// the leader answers. All times are the store's clock, never a node's.
pub trait Cluster: Send + Sync {
    /// Takes the tenant's lease for `node` if it is free or expired (the epoch grows by one), or
    /// renews it if `node` holds it (same epoch); either way it then expires `ttl` from now.
    /// `None` when another node holds an unexpired lease.
    fn acquire_lease(&self, tenant: &TenantId, node: &str, ttl: std::time::Duration) -> Result<Option<u64>>;

    /// Gives the lease up (it expires now) if `node` holds it at `epoch`.
    fn release_lease(&self, tenant: &TenantId, node: &str, epoch: u64) -> Result<()>;

    /// The current holder of the tenant's lease, if it ever had one.
    fn lease(&self, tenant: &TenantId) -> Result<Option<Lease>>;

    /// Stores a request for the tenant's leader durably; answers its ticket.
    fn enqueue(&self, tenant: &TenantId, request: &[u8]) -> Result<u64>;

    /// Up to `limit` unanswered requests of the given tenants (those this node leads), oldest
    /// first: one question per poll, however many tenants a leader leads.
    fn pending(&self, tenants: &[TenantId], limit: usize) -> Result<Vec<(TenantId, u64, Vec<u8>)>>;

    /// The answers of those of `tickets` that have one, and their requests deleted in the same
    /// step: the node that queued them takes each answer once. The delete need not be durable;
    /// one a crash of the store loses leaves an answered request, which no node takes again.
    fn take_answers(&self, tickets: &[u64]) -> Result<Vec<(u64, Vec<u8>)>>;

    /// Deletes requests answered more than `older_than` ago, which their node no longer waits
    /// for (it gave up after its timeout, stopped, or the delete of [`Cluster::take_answers`] was
    /// lost); answers how many. Unanswered requests stay, whatever their age.
    fn sweep_answered(&self, older_than: std::time::Duration) -> Result<u64>;

    /// Stores a subject's wrapped data key unless one is stored already, at once, and answers the
    /// stored one: nodes sealing for the same new subject at the same time must end up using one
    /// key. The answer may come before the key is durable (a crash of the store may lose it), so
    /// the commit of entries sealed with it names it as `stored` ([`NewDataKey::stored`]).
    fn ensure_data_key(&self, tenant: &TenantId, subject: &str, wrapped: &[u8]) -> Result<Vec<u8>>;
}

/// A stored entry found by its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub index: u64,
    pub event_id: [u8; 16],
    /// The idempotency digest's stored form (`privacy/idempotency.rs`).
    pub idempotency: Vec<u8>,
}

/// An entry as a scan returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedEntry {
    pub index: u64,
    pub event_id: [u8; 16],
    pub entry: Vec<u8>,
}

/// Whether a store keeps a tile a commit hands it ([`LogCommit::tiles`]). Level-0 partial tiles
/// are not kept: the rightmost one changes with every commit (rewriting up to 8 KB each time),
/// and it is only the leaf hashes of entries the same commit stores, so [`answer_tile`] derives
/// it from them at read time. Full tiles and partial tiles of higher levels (which change only
/// when a level-0 tile fills) are kept.
pub fn keeps_tile(tile: &TileId) -> bool {
    tile.level > 0 || !tile.is_partial()
}

/// What [`LogStore::read_tiles`] answers for one request, given the widest version of the tile
/// the store holds (`None`: none) and, for a level-0 tile, a way to read the entries of a leaf
/// range: [`stored_tile`], else a level-0 tile's leaf hashes from `leaf_tiles` and the entries it
/// lacks; otherwise [`crate::Error::NotFound`].
pub fn answer_tile(
    tenant: &TenantId,
    tile: &TileId,
    stored: Option<Vec<u8>>,
    leaf_tiles: &LeafTiles,
    entries: impl FnOnce(std::ops::Range<u64>) -> Result<Vec<Vec<u8>>>,
) -> Result<Vec<u8>> {
    match stored_tile(tile, stored) {
        Some(data) => Ok(data),
        None if tile.level == 0 => {
            let known = leaf_tiles.known(tenant, tile);
            let missing = LeafTiles::missing(tile, &known);
            let entries = if missing.is_empty() { Vec::new() } else { entries(missing)? };
            leaf_tiles.extend(tenant, tile, known, &entries)
        }
        None => Err(crate::Error::NotFound(format!("tile {} of {tenant}", tile.path()))),
    }
}

/// A request answered from the widest stored version of its tile: its first `width * 32` bytes
/// if it is wide enough. At level 0 only a full tile is trusted, so a partial row an older
/// version kept (or anyone put there) never answers.
pub fn stored_tile(tile: &TileId, stored: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let want = tile.width as usize * 32;
    let full = evident_tlog::TILE_WIDTH as usize * 32;
    let mut data = stored.filter(|data| data.len() >= want && (tile.level > 0 || data.len() == full))?;
    data.truncate(want);
    Some(data)
}

/// The leaves a level-0 tile hashes.
fn leaf_range(tile: &TileId) -> std::ops::Range<u64> {
    let start = tile.index * evident_tlog::TILE_WIDTH as u64;
    start..start + tile.width as u64
}

/// The leaf hashes of the rightmost level-0 tile each log was last read at, so that reading it
/// again (every proof against the head does) hashes only the entries committed since. Entries
/// never change once committed, so a prefix it holds stays right; it holds at most one tile per
/// tenant.
#[derive(Debug, Default)]
pub struct LeafTiles(std::sync::Mutex<std::collections::HashMap<TenantId, (u64, Vec<u8>)>>);

impl LeafTiles {
    /// The leaf hashes known of a level-0 tile, at most `width` of them.
    pub fn known(&self, tenant: &TenantId, tile: &TileId) -> Vec<u8> {
        let tiles = self.0.lock().expect("leaf tiles lock");
        match tiles.get(tenant) {
            Some((index, hashes)) if *index == tile.index => {
                hashes[..hashes.len().min(tile.width as usize * 32)].to_vec()
            }
            _ => Vec::new(),
        }
    }

    /// The leaves of `tile` that `known` lacks.
    pub fn missing(tile: &TileId, known: &[u8]) -> std::ops::Range<u64> {
        let leaves = leaf_range(tile);
        leaves.start + (known.len() / 32) as u64..leaves.end
    }

    /// The tile: `known` and the leaf hashes of `entries` (those of [`LeafTiles::missing`]),
    /// remembered if it is the widest of the rightmost tile read so far;
    /// [`crate::Error::NotFound`] when the store answered fewer entries.
    pub fn extend(
        &self,
        tenant: &TenantId,
        tile: &TileId,
        mut known: Vec<u8>,
        entries: &[Vec<u8>],
    ) -> Result<Vec<u8>> {
        if tile.level != 0 || known.len() / 32 + entries.len() != tile.width as usize {
            return Err(crate::Error::NotFound(format!("tile {} of {tenant}", tile.path())));
        }
        known.extend(entries.iter().flat_map(|entry| evident_tlog::leaf_hash(entry).0));
        let mut tiles = self.0.lock().expect("leaf tiles lock");
        let wider = match tiles.get(tenant) {
            Some((index, hashes)) => (tile.index, known.len()) > (*index, hashes.len()),
            None => true,
        };
        if wider {
            tiles.insert(tenant.clone(), (tile.index, known.clone()));
        }
        Ok(known)
    }
}

/// Storage of logs. Implementations are shared between threads.
pub trait LogStore: Send + Sync {
    /// Creates a tenant with an empty log; `false` if it existed (its policy is left as it was).
    fn create_tenant(&self, tenant: &TenantId, policy: &TenantPolicy) -> Result<bool>;

    /// Every tenant with its policy.
    fn tenants(&self) -> Result<Vec<(TenantId, TenantPolicy)>>;

    /// The latest head of a tenant's log, `None` before its first entry.
    fn head(&self, tenant: &TenantId) -> Result<Option<LogHead>>;

    /// The tenant's kept signed checkpoints (those committed with
    /// [`LogCommit::keep_checkpoint`] or kept by [`LogStore::keep_checkpoint`]) and its head, by
    /// increasing size, each size once.
    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<LogHead>>;

    /// Keeps a checkpoint the log published (the head an export or a timestamp is made against)
    /// among its historical checkpoints, durably, unless one of that size is kept already.
    fn keep_checkpoint(&self, tenant: &TenantId, checkpoint: &LogHead) -> Result<()>;

    /// Tiles of the log as of its current size: one byte string per request, exactly
    /// `width * 32` bytes (a narrower width of a stored tile is its prefix; a level-0 tile not
    /// stored full is the leaf hashes of its entries, [`answer_tile`]). A tile the store does not
    /// hold (or, at level 0, whose entries it does not hold) is [`crate::Error::NotFound`].
    fn read_tiles(&self, tenant: &TenantId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>>;

    /// Entries `[start, end)` in index order; fewer when the log is shorter.
    fn entries(&self, tenant: &TenantId, start: u64, end: u64) -> Result<Vec<Vec<u8>>>;

    /// Up to `limit` stored entries with index `>= start`, in index order, with their indices
    /// (gaps show as jumps), including any beyond the head. For verification.
    fn scan_entries(&self, tenant: &TenantId, start: u64, limit: usize) -> Result<Vec<ScannedEntry>>;

    /// Looks up idempotency keys `(source, producer id)`.
    fn find_existing(&self, tenant: &TenantId, keys: &[(&str, &str)]) -> Result<Vec<Option<Existing>>>;

    /// The wrapped data key of a subject, if one is stored.
    fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<Vec<u8>>>;

    /// The names of the stored data keys of `subject` (its own and its periods',
    /// `subject<U+001F><period>`, see `crate::privacy::retention`), or of every subject of the
    /// tenant when `None`.
    fn data_key_names(&self, tenant: &TenantId, subject: Option<&str>) -> Result<Vec<String>>;

    /// Deletes the search tokens (targets typed `pii:...`, `crate::privacy::search`) of the events
    /// sealed under any key of `subject`; answers how many.
    fn forget_search_tokens(&self, tenant: &TenantId, subject: &str) -> Result<u64>;

    /// Replaces the wrapped form of a stored data key (master-key rotation); `false` if there is
    /// no such key.
    fn replace_data_key(&self, tenant: &TenantId, name: &str, wrapped: &[u8]) -> Result<bool>;

    /// Destroys a subject's data key; `false` if there was none. On return no copy of the wrapped
    /// key is left in the store's files that the store can overwrite (journal, free pages), even
    /// when there was none to delete (a retry after a failure finishes the job).
    fn erase_data_key(&self, tenant: &TenantId, subject: &str) -> Result<bool>;

    /// Writes a whole group commit in one durable transaction: durable on return, nothing of it
    /// visible on failure. Each log's `old_size` is compared and swapped; on mismatch the whole
    /// commit fails with [`crate::Error::Conflict`].
    fn commit(&self, commit: &Commit) -> Result<()>;

    /// Whether a commit holding an entry whose idempotency key `(source, producer id)` is already
    /// stored fails as a whole with [`crate::Error::Conflict`]. The engine then skips looking the
    /// keys up before sequencing (one round trip less per group) and, after such a conflict,
    /// sequences the group again with the lookup.
    fn refuses_duplicate_entries(&self) -> bool {
        false
    }

    /// The coordination of several nodes, for stores that several nodes may share.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }
}

/// A stored event as queries return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub index: u64,
    pub event_id: [u8; 16],
    pub time: Micros,
    pub entry: Vec<u8>,
    pub sealed: Option<(String, Vec<u8>)>,
}

/// Where a page starts: strictly after this (time, index) in the page order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub time: Micros,
    pub index: u64,
}

/// A search as a store runs it: which events, in which order, after which position, how many.
/// Each store renders it into its own SQL ([`SearchPlan::conditions`] says what must hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchPlan<'a> {
    pub filter: &'a Filter,
    pub order: Order,
    /// Where the page starts (exclusive), in `order`.
    pub after: Option<Position>,
    pub limit: usize,
}

/// A column a search compares for equality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Actor,
    Subject,
    EventType,
    Action,
    Outcome,
    Source,
}

/// One condition of a search, besides the tenant and the target (which decides the walk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition<'a> {
    Equals(Column, &'a str),
    /// The column begins with this text: a store compares it as a range, `>= prefix` and
    /// `< prefix_end(prefix)`, which an index on the column serves and in which no character is
    /// a wildcard.
    Prefix(Column, &'a str),
    /// Event time at or after.
    TimeAtLeast(Micros),
    /// Event time before.
    TimeBefore(Micros),
    /// (time, index) strictly after this position in the plan's order.
    After(Position),
}

impl<'a> SearchPlan<'a> {
    /// A target filter makes the search walk the targets index (`(type, id)`), ordered by time
    /// there; otherwise it walks the events.
    pub fn target(&self) -> Option<(&'a str, &'a str)> {
        self.filter.target.as_ref().map(|(kind, id)| (kind.as_str(), id.as_str()))
    }

    pub fn descending(&self) -> bool {
        self.order == Order::NewestFirst
    }

    /// What must hold of every result, in a stable order (so a store's statement cache hits).
    pub fn conditions(&self) -> Vec<Condition<'a>> {
        let filter = self.filter;
        let event_type = filter.event_type.as_ref().map(|wanted| match wanted {
            TypeFilter::Exact(exact) => Condition::Equals(Column::EventType, exact.as_str()),
            TypeFilter::Prefix(prefix) => Condition::Prefix(Column::EventType, prefix.as_str()),
        });
        let equal = [
            (Column::Actor, filter.actor.as_deref()),
            (Column::Subject, filter.subject.as_deref()),
            (Column::Action, filter.action.map(|a| a.as_str())),
            (Column::Outcome, filter.outcome.map(|o| o.as_str())),
            (Column::Source, filter.source.as_deref()),
        ];
        let mut conditions: Vec<Condition<'a>> = equal
            .into_iter()
            .filter_map(|(column, value)| value.map(|v| Condition::Equals(column, v)))
            .collect();
        conditions.extend(event_type);
        conditions.extend(filter.from.map(Condition::TimeAtLeast));
        conditions.extend(filter.to.map(Condition::TimeBefore));
        conditions.extend(self.after.map(Condition::After));
        conditions
    }
}

/// The least text above every text that begins with `prefix` in code-point order (which is UTF-8
/// byte order, SQLite's `BINARY` and PostgreSQL's `C` collation): the prefix with its last
/// character advanced by one, past any `char::MAX`. `None` when there is no such text (the prefix
/// is all `char::MAX`): then only the lower bound applies.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Queries over stored events; all scoped to one tenant.
pub trait EventIndex: Send + Sync {
    fn event_by_id(&self, tenant: &TenantId, event_id: &[u8; 16]) -> Result<Option<StoredEvent>>;

    fn event_by_index(&self, tenant: &TenantId, index: u64) -> Result<Option<StoredEvent>>;

    /// Up to `plan.limit` events matching `plan.filter`, ordered by (time, index) in
    /// `plan.order`, starting after `plan.after`.
    fn search(&self, tenant: &TenantId, plan: &SearchPlan) -> Result<Vec<StoredEvent>>;

    /// The scans customer insight runs (`crate::insight`), for stores that answer them.
    fn insight(&self) -> Option<&dyn crate::insight::InsightIndex> {
        None
    }

    /// For a store whose search index follows the logs (the embedded store): how far behind
    /// it is and how often commits waited for it. `None` for an index written with the events.
    fn index_progress(&self) -> Option<IndexProgress> {
        None
    }
}

/// How far a search index that follows the logs is behind them ([`EventIndex::index_progress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IndexProgress {
    /// Entries committed to every log but not indexed yet.
    pub behind: u64,
    /// Commits whose acknowledgement waited for the index to catch up, since the store opened.
    pub throttled_commits: u64,
    /// How long those waits took in all.
    pub throttled_for: std::time::Duration,
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Append events only.
    Producer,
    /// Search and read events without personal data.
    Reader,
    /// Read personal data too, stating a purpose that is recorded.
    Investigator,
    /// Proofs, tiles, checkpoints and exports.
    Auditor,
    /// Keys, tenants and settings (and everything above, within its tenant).
    Admin,
    /// Privacy officer: erasure, legal holds, retention and subject reports of its tenant.
    Privacy,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Producer, Role::Reader, Role::Investigator, Role::Auditor, Role::Admin, Role::Privacy];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Reader => "reader",
            Role::Investigator => "investigator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Privacy => "privacy",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// A stored API key: never the key itself, only the SHA-256 of its secret part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key, which names it in listings and revocations.
    pub key_id: String,
    pub tenant: TenantId,
    pub role: Role,
    pub secret_hash: [u8; 32],
    /// The bootstrap admin key may administer every tenant.
    pub global: bool,
    pub label: Option<String>,
    pub created_at: Micros,
    pub revoked_at: Option<Micros>,
}

/// Storage of API keys.
pub trait KeyStore: Send + Sync {
    fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()>;

    fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>>;

    /// Every key of a tenant (or of all tenants), revoked ones included.
    fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>>;

    /// Marks a key revoked; `false` if there is no such key or it was already revoked.
    fn revoke_api_key(&self, key_id: &str, at: Micros) -> Result<bool>;

    /// Checks that the store takes writes right now (for health checks); writes nothing.
    fn check_writable(&self) -> Result<()>;

    /// A named blob of service state (detection state, for one), `None` if never put.
    fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Replaces a named blob of service state, durably.
    fn put_state(&self, name: &str, value: &[u8]) -> Result<()>;

    /// Deletes a named blob of service state, durably; answers whether it was there, so of
    /// several nodes deleting one name at once exactly one learns that it took it.
    fn delete_state(&self, name: &str) -> Result<bool>;

    /// The names of the service-state blobs that begin with `prefix`, in byte order.
    fn state_names(&self, prefix: &str) -> Result<Vec<String>>;
}

/// An outbound stream as the store keeps it; the server's `outstream` owns what `spec` and
/// `status` hold (JSON it writes and reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRow {
    pub id: String,
    pub tenant: TenantId,
    /// The definition: format, destination, filter.
    pub spec: Vec<u8>,
    /// The next leaf index to deliver.
    pub cursor: u64,
    /// Delivery state: the last error, attempts, times.
    pub status: Vec<u8>,
}

/// Storage of outbound streams and their cursors. Every call is durable on return; a cursor only
/// changes by compare-and-set, so a node that lost the tenant's lease, or a delivery that raced a
/// repositioning, cannot move it.
pub trait StreamStore: Send + Sync {
    /// Stores a new stream; [`crate::Error::Conflict`] when its id is taken.
    fn create_stream(&self, row: &StreamRow) -> Result<()> {
        let _ = row;
        Err(crate::Error::Unavailable("this store keeps no streams".into()))
    }

    /// Every stream of a tenant (or of all tenants), by id.
    fn streams(&self, tenant: Option<&TenantId>) -> Result<Vec<StreamRow>> {
        let _ = tenant;
        Ok(Vec::new())
    }

    /// Deletes a stream; `false` when the tenant has none of that id.
    fn delete_stream(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        let _ = (tenant, id);
        Ok(false)
    }

    /// Sets the cursor to `to` and the status, only if the cursor is still `from` (`from == to`
    /// records a status alone); `false` when it moved or the stream is gone.
    fn advance_stream(&self, tenant: &TenantId, id: &str, from: u64, to: u64, status: &[u8]) -> Result<bool> {
        let _ = (tenant, id, from, to, status);
        Ok(false)
    }

    /// Puts the cursor at `cursor` whatever it was (a restart from a position); `false` when the
    /// tenant has no such stream.
    fn position_stream(&self, tenant: &TenantId, id: &str, cursor: u64) -> Result<bool> {
        let _ = (tenant, id, cursor);
        Ok(false)
    }
}

/// A complete backend.
pub trait Store: LogStore + EventIndex + KeyStore + StreamStore {}

impl<T: LogStore + EventIndex + KeyStore + StreamStore> Store for T {}

#[cfg(test)]
mod tests {
    use super::{LeafTiles, TenantId, prefix_end};
    use evident_tlog::{TileId, leaf_hash};

    /// A level-0 tile read again hashes only the entries it lacks; an older tile read meanwhile
    /// does not push the rightmost one out.
    #[test]
    fn leaf_tiles_hash_each_entry_once() {
        let tiles = LeafTiles::default();
        let acme = TenantId::new("acme").unwrap();
        let tile = |index, width| TileId { level: 0, index, width };
        let entries = |range: std::ops::Range<u64>| -> Vec<Vec<u8>> {
            range.map(|i| i.to_string().into_bytes()).collect()
        };
        let hashes = |range: std::ops::Range<u64>| -> Vec<u8> {
            entries(range).iter().flat_map(|e| leaf_hash(e).0).collect()
        };
        let read = |t: TileId, answered: std::ops::Range<u64>| {
            let known = tiles.known(&acme, &t);
            let missing = LeafTiles::missing(&t, &known);
            (missing, tiles.extend(&acme, &t, known, &entries(answered)).ok())
        };
        assert_eq!(read(tile(1, 44), 256..300), (256..300, Some(hashes(256..300))));
        assert_eq!(read(tile(1, 3), 259..259), (259..259, Some(hashes(256..259))));
        assert_eq!(read(tile(1, 50), 300..306), (300..306, Some(hashes(256..306))));
        assert_eq!(read(tile(0, 10), 0..10), (0..10, Some(hashes(0..10))));
        assert_eq!(read(tile(1, 51), 306..307), (306..307, Some(hashes(256..307))));
        // The store answered fewer entries than the tile needs: not found, nothing remembered.
        let known = tiles.known(&acme, &tile(1, 60));
        let short = tiles.extend(&acme, &tile(1, 60), known, &entries(307..309));
        assert!(matches!(short, Err(crate::Error::NotFound(_))), "{short:?}");
        assert_eq!(tiles.known(&acme, &tile(1, 60)), hashes(256..307));
    }

    #[test]
    fn a_prefix_ends_below_the_next_character() {
        let check = |prefix: &str, expect: Option<&str>| assert_eq!(prefix_end(prefix).as_deref(), expect);
        check("customer.", Some("customer/"));
        check("customer_", Some("customer`"));
        check("a%", Some("a&"));
        check("z\u{d7ff}", Some("z\u{e000}"));
        check("ab\u{10ffff}", Some("ac"));
        check("\u{10ffff}\u{10ffff}", None);
        for (prefix, inside, outside) in
            [("customer.", "customer.zzz", "customerx"), ("é", "é\u{10ffff}", "ê")]
        {
            let end = prefix_end(prefix).unwrap();
            assert!(prefix <= inside && inside < end.as_str(), "{inside} in [{prefix}, {end})");
            assert!(outside >= end.as_str(), "{outside} past {end}");
        }
    }
}
