//! The shared store: PostgreSQL, for one node or several sharing a database. It implements the
//! same contract as the embedded store (the conformance suite checks both) and [`Cluster`]:
//! leases, a durable inbox and fenced commits.
//!
//! # Schema choices
//! The schema lives in numbered migrations (`migrations/0001_init.sql`, ...), applied in order in
//! one transaction under an advisory lock, so nodes starting together do not race;
//! `schema_migrations` records what was applied. A store lives in one PostgreSQL schema
//! ([`PgOptions::schema`]), set as the `search_path` of every pooled session.
//!
//! ```no_run
//! use evident_store_postgres::{PgOptions, PgStore};
//!
//! let options = PgOptions { schema: Some("evident".into()), pool_size: 8, ..PgOptions::default() };
//! let store = PgStore::connect("postgres://evident@db.example:5432/audit", options)?;
//! # Ok::<(), evident_core::Error>(())
//! ```
//!
//! - **`events` is partitioned by month of `recorded_at`** (microseconds, the store's clock at
//!   sequencing). Recording times only grow, so each month's partition is written for a month and
//!   then only read: it can be vacuumed, detached or archived whole, and the indexes being written
//!   stay small. Partitions are created on demand before the commit that needs them (in their own
//!   statement, tolerant of another node creating the same one); a DEFAULT partition takes
//!   anything outside them.
//! - **Global uniqueness lives in small unpartitioned tables.** A unique constraint on a
//!   partitioned table must include the partition key, which would make `(tenant, source,
//!   producer id)` unique only within a month. So `event_keys` holds the idempotency key (and a
//!   unique leaf index per tenant): it is what [`LogStore::find_existing`] reads, and inserting
//!   into it in the commit is what makes a duplicate entry fail the commit. `event_ids` makes
//!   event ids unique and finds an event by id. Both carry `recorded_at`, so the lookup of the
//!   event row itself can skip the other partitions.
//! - Each search filter has an index ending in `(time, idx)`, so a page is a merge of index
//!   scans in the requested order; targets are in `event_targets` (not partitioned).
//!
//! # Writes
//! One [`LogStore::commit`] is one statement, so one transaction and one round trip (durable on
//! return: `synchronous_commit` is left on). Its data-modifying `WITH` clauses write each table
//! with one multi-row `INSERT ... SELECT FROM UNNEST(...)`, whatever the number of entries. A
//! log's head moves by compare-and-swap on its size (`UPDATE logs ... WHERE size = old`); no
//! row updated means another writer moved it, and the commit rolls back. A duplicate entry (index, idempotency key
//! or event id) fails the commit on `event_keys` or `event_ids` as [`Error::Conflict`].
//!
//! # Fencing
//! When several nodes share the store, each tenant's log is written by the holder of its lease
//! (table `leases`, times by the database clock). A commit made under a [`Fence`] first locks the
//! lease rows it names (`SELECT ... FOR UPDATE`) and checks that the node still holds each at the
//! given epoch and that none expired; the row locks keep a lease from changing hands until the
//! commit ends, so a node that lost its lease (paused, partitioned away) cannot write after its
//! successor started. Pooled sessions run with `idle_in_transaction_session_timeout` and
//! `lock_timeout`, so a stopped node holding such a lock delays a takeover by seconds, not forever.
//!
//! # Threads
//! The store traits are synchronous and are called from plain threads and from other runtimes'
//! worker threads alike, so the store owns a private two-thread tokio runtime: every operation is
//! spawned onto it and its caller waits on a channel (never `block_on` on the caller's thread),
//! at most [`PgOptions::operation_timeout`]. An operation that timed out may leave its statement
//! running on its connection; the next user of that connection waits behind it.
//!
//! [`Fence`]: evident_core::store::Fence

mod db;
mod insight;
mod migrate;
mod partition;
mod paths;
mod rollup;
mod search;
mod streams;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use evident_core::event::TenantPolicy;
use evident_core::store::{
    ApiKeyRecord, Cluster, Commit, EventIndex, Existing, KeyStore, Lease, LogHead, LogStore, ScannedEntry,
    SearchPlan, StoredEvent, TenantId,
};
use evident_core::{Error, Result};
use evident_tlog::TileId;
use evident_wire::Micros;

use crate::db::Db;

/// How a [`PgStore`] connects.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The PostgreSQL schema the store lives in, created if missing: 1 to 63 of `[a-z0-9_]`,
    /// starting with a letter or `_`. `None` is `public`.
    pub schema: Option<String>,
    /// Most connections the store holds open at once.
    pub pool_size: usize,
    /// How long a session may sit idle inside a transaction before the server ends it (and so
    /// releases its locks, leases included).
    pub idle_in_transaction_timeout: Duration,
    /// How long a statement waits for a row or table lock before it fails.
    pub lock_timeout: Duration,
    /// How long a caller waits for any one operation before it is told [`Error::Unavailable`]
    /// (a server that stopped answering, a network that drops packets). A commit that times out
    /// may still have committed; the engine's idempotency answers its retry.
    pub operation_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            schema: None,
            pool_size: 8,
            idle_in_transaction_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(60),
        }
    }
}

/// The store in a PostgreSQL database. Dropping it closes its connections and stops its runtime.
pub struct PgStore {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    db: Arc<Db>,
    operation_timeout: Duration,
    /// The database's collation orders text by code point: a type prefix is searched as a
    /// range the type index serves (else by `starts_with` alone).
    code_point_order: bool,
    /// Whether insight's rollups are kept (`EVIDENT_INSIGHT_ROLLUPS=off` turns them off, to
    /// measure what they cost; insight then scans).
    rollups: bool,
    /// Whether the rollups' follower runs (from the first commit: a store opened only to read or
    /// check writes nothing).
    following: std::sync::atomic::AtomicBool,
    /// Rows per page of a path table read ([`PgStore::with_path_page`]).
    path_page: usize,
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` connection
    /// string), creates the schema if needed and applies the migrations it lacks.
    ///
    /// TLS follows libpq's `sslmode` and `sslrootcert` in `url` (`verify-full`, `verify-ca`,
    /// `require`, `prefer`; none is plain TCP): see `tls.rs`.
    ///
    /// An unparsable `url` or a bad schema name is [`Error::InvalidArgument`]; a server that does
    /// not answer or refuses the login is [`Error::Unavailable`], naming the host.
    pub fn connect(url: &str, options: PgOptions) -> Result<PgStore> {
        let schema = options.schema.clone().unwrap_or_else(|| "public".to_owned());
        check_schema_name(&schema)?;
        let (url, tls) = tls::split(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|err| {
            Error::InvalidArgument(format!("the database url is not a PostgreSQL connection string: {err}"))
        })?;
        config.ssl_mode(tls.mode.ssl_mode());
        let connector = tls::connector(&tls)?;
        let server = describe_server(&config);
        let startup = format!(
            "{} -c search_path=\"{schema}\" -c idle_in_transaction_session_timeout={} -c lock_timeout={}",
            config.get_options().unwrap_or_default(),
            options.idle_in_transaction_timeout.as_millis().max(1),
            options.lock_timeout.as_millis().max(1),
        );
        config.options(startup.trim_start());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // Notice a vanished server or peer within a minute rather than hours.
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("evident");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("evident-postgres")
            .enable_all()
            .build()
            .map_err(|err| Error::Unavailable(format!("cannot start the PostgreSQL runtime: {err}")))?;
        let build = |config: &tokio_postgres::Config, size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                connector.clone(),
                ManagerConfig { recycling_method: RecyclingMethod::Fast },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(30)))
                .create_timeout(Some(Duration::from_secs(10)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|err| Error::Unavailable(format!("cannot build the PostgreSQL pool: {err}")))
        };
        let pool = build(&config, options.pool_size.max(1))?;
        // The sequencer is one thread: one connection of its own is all it uses. Its statements
        // (idempotency lookups and commits) keep one plan each: planned afresh for every call,
        // as PostgreSQL's choice does here, a commit spent about a fifth of its time planning.
        let mut writer_config = config.clone();
        writer_config.options(format!("{startup} -c plan_cache_mode=force_generic_plan").trim_start());
        let writer = build(&writer_config, 1)?;
        let mut store = PgStore {
            runtime: Some(runtime),
            db: Arc::new(Db::new(pool, writer, server, schema)),
            operation_timeout: options.operation_timeout,
            code_point_order: false,
            rollups: std::env::var("EVIDENT_INSIGHT_ROLLUPS").as_deref() != Ok("off"),
            following: std::sync::atomic::AtomicBool::new(false),
            path_page: paths::PAGE,
        };
        // Another node's migration may hold the lock for a while.
        store.run_within(MIGRATION_TIMEOUT.max(options.operation_timeout), |db| async move {
            db.migrate().await
        })?;
        store.code_point_order = store.run(|db| async move { db.text_in_code_point_order().await })?;
        Ok(store)
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        self.db.schema()
    }

    /// Runs `op` on the store's runtime and waits for its answer on the caller's thread.
    fn run<T, F>(&self, op: impl FnOnce(Arc<Db>) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        self.run_within(self.operation_timeout, op)
    }

    /// The store reading its path table `rows` rows per round trip instead of
    /// 20,000 (tests read small pages, so that customers span pages).
    pub fn with_path_page(mut self, rows: usize) -> PgStore {
        self.path_page = rows.max(1);
        self
    }

    /// Starts the follower that folds rollups and the path table, once (from the first commit or
    /// question: a store opened only to check writes nothing).
    fn follow(&self) {
        if self.rollups && !self.following.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let runtime = self.runtime.as_ref().expect("the runtime lives as long as the store");
            runtime.spawn(rollup::follow(Arc::clone(&self.db)));
        }
    }

    /// [`PgStore::run`] with its own timeout.
    fn run_within<T, F>(&self, timeout: Duration, op: impl FnOnce(Arc<Db>) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the store");
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let future = op(Arc::clone(&self.db));
        let server = self.db.server().to_owned();
        runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, future).await.unwrap_or_else(|_| {
                Err(Error::Unavailable(format!("PostgreSQL at {server} did not answer within {timeout:?}")))
            });
            let _ = answer.send(result);
        });
        answered
            .recv()
            .map_err(|_| Error::Unavailable("postgres: the operation ended without an answer".into()))?
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.db.close();
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped on another runtime's thread, which must not block; nothing of ours is in
                // flight (every operation was waited for), so only idle connection tasks are left.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(5));
            }
        }
    }
}

/// Longest wait for the migration lock at connect.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Schema names go into SQL and into the startup options unescaped, so they are kept plain.
fn check_schema_name(schema: &str) -> Result<()> {
    let valid = (1..=63).contains(&schema.len())
        && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "schema {schema:?} must be 1 to 63 of a-z 0-9 _, not starting with a digit"
        )))
    }
}

/// `host:port` of every server the configuration names, for messages (never the password).
fn describe_server(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    if hosts.is_empty() { "localhost:5432 (default)".to_owned() } else { hosts.join(",") }
}

impl LogStore for PgStore {
    fn create_tenant(&self, tenant: &TenantId, policy: &TenantPolicy) -> Result<bool> {
        let (tenant, policy) = (tenant.clone(), policy.to_stored());
        self.run(move |db| async move { db.create_tenant(&tenant, &policy).await })
    }

    fn tenants(&self) -> Result<Vec<(TenantId, TenantPolicy)>> {
        self.run(|db| async move { db.tenants().await })
    }

    fn head(&self, tenant: &TenantId) -> Result<Option<LogHead>> {
        let tenant = tenant.clone();
        self.run(move |db| async move { db.head(&tenant).await })
    }

    fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<LogHead>> {
        let tenant = tenant.clone();
        self.run(move |db| async move { db.checkpoints(&tenant).await })
    }

    fn keep_checkpoint(&self, tenant: &TenantId, checkpoint: &LogHead) -> Result<()> {
        let (tenant, checkpoint) = (tenant.clone(), checkpoint.clone());
        self.run(move |db| async move { db.keep_checkpoint(&tenant, &checkpoint).await })
    }

    fn read_tiles(&self, tenant: &TenantId, tiles: &[TileId]) -> Result<Vec<Vec<u8>>> {
        let (tenant, tiles) = (tenant.clone(), tiles.to_vec());
        self.run(move |db| async move { db.read_tiles(&tenant, &tiles).await })
    }

    fn entries(&self, tenant: &TenantId, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        let tenant = tenant.clone();
        self.run(move |db| async move { db.entries(&tenant, start, end).await })
    }

    fn scan_entries(&self, tenant: &TenantId, start: u64, limit: usize) -> Result<Vec<ScannedEntry>> {
        let tenant = tenant.clone();
        self.run(move |db| async move { db.scan_entries(&tenant, start, limit).await })
    }

    fn find_existing(&self, tenant: &TenantId, keys: &[(&str, &str)]) -> Result<Vec<Option<Existing>>> {
        let tenant = tenant.clone();
        let (sources, producer_ids): (Vec<String>, Vec<String>) =
            keys.iter().map(|(source, id)| (source.to_string(), id.to_string())).unzip();
        self.run(move |db| async move { db.find_existing(&tenant, &sources, &producer_ids).await })
    }

    fn data_key(&self, tenant: &TenantId, subject: &str) -> Result<Option<Vec<u8>>> {
        let (tenant, subject) = (tenant.clone(), subject.to_owned());
        self.run(move |db| async move { db.data_key(&tenant, &subject).await })
    }

    fn data_key_names(&self, tenant: &TenantId, subject: Option<&str>) -> Result<Vec<String>> {
        let (tenant, subject) = (tenant.clone(), subject.map(str::to_owned));
        self.run(move |db| async move { db.data_key_names(&tenant, subject.as_deref()).await })
    }

    fn forget_search_tokens(&self, tenant: &TenantId, subject: &str) -> Result<u64> {
        let (tenant, subject) = (tenant.clone(), subject.to_owned());
        self.run(move |db| async move { db.forget_search_tokens(&tenant, &subject).await })
    }

    fn replace_data_key(&self, tenant: &TenantId, name: &str, wrapped: &[u8]) -> Result<bool> {
        let (tenant, name, wrapped) = (tenant.clone(), name.to_owned(), wrapped.to_vec());
        self.run(move |db| async move { db.replace_data_key(&tenant, &name, &wrapped).await })
    }

    fn erase_data_key(&self, tenant: &TenantId, subject: &str) -> Result<bool> {
        let (tenant, subject) = (tenant.clone(), subject.to_owned());
        self.run(move |db| async move { db.erase_data_key(&tenant, &subject).await })
    }

    fn commit(&self, commit: &Commit) -> Result<()> {
        let commit = commit.clone();
        self.run(move |db| async move { db.commit(&commit).await })?;
        self.follow();
        Ok(())
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }

    /// `event_keys` holds every idempotency key under a unique constraint, checked in the commit.
    fn refuses_duplicate_entries(&self) -> bool {
        true
    }
}

impl EventIndex for PgStore {
    fn event_by_id(&self, tenant: &TenantId, event_id: &[u8; 16]) -> Result<Option<StoredEvent>> {
        let (tenant, event_id) = (tenant.clone(), *event_id);
        self.run(move |db| async move { db.event_by_id(&tenant, &event_id).await })
    }

    fn event_by_index(&self, tenant: &TenantId, index: u64) -> Result<Option<StoredEvent>> {
        let tenant = tenant.clone();
        self.run(move |db| async move { db.event_by_index(&tenant, index).await })
    }

    fn search(&self, tenant: &TenantId, plan: &SearchPlan) -> Result<Vec<StoredEvent>> {
        let (sql, params) = search::search_sql(plan, self.code_point_order);
        let tenant = tenant.clone();
        self.run(move |db| async move { db.search(&tenant, &sql, params).await })
    }

    fn insight(&self) -> Option<&dyn evident_core::insight::InsightIndex> {
        Some(self)
    }
}

impl KeyStore for PgStore {
    fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let key = key.clone();
        self.run(move |db| async move { db.put_api_key(&key).await })
    }

    fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        let key_id = key_id.to_owned();
        self.run(move |db| async move { db.api_key(&key_id).await })
    }

    fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>> {
        let tenant = tenant.cloned();
        self.run(move |db| async move { db.api_keys(tenant.as_ref()).await })
    }

    fn revoke_api_key(&self, key_id: &str, at: Micros) -> Result<bool> {
        let key_id = key_id.to_owned();
        self.run(move |db| async move { db.revoke_api_key(&key_id, at).await })
    }

    fn check_writable(&self) -> Result<()> {
        self.run(|db| async move { db.check_writable().await })
    }

    fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.run(move |db| async move { db.get_state(&name).await })
    }

    fn put_state(&self, name: &str, value: &[u8]) -> Result<()> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.run(move |db| async move { db.put_state(&name, &value).await })
    }

    fn delete_state(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.run(move |db| async move { db.delete_state(&name).await })
    }

    fn state_names(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.run(move |db| async move { db.state_names(&prefix).await })
    }
}

impl Cluster for PgStore {
    fn acquire_lease(&self, tenant: &TenantId, node: &str, ttl: Duration) -> Result<Option<u64>> {
        let (tenant, node) = (tenant.clone(), node.to_owned());
        self.run(move |db| async move { db.acquire_lease(&tenant, &node, ttl).await })
    }

    fn release_lease(&self, tenant: &TenantId, node: &str, epoch: u64) -> Result<()> {
        let (tenant, node) = (tenant.clone(), node.to_owned());
        self.run(move |db| async move { db.release_lease(&tenant, &node, epoch).await })
    }

    fn lease(&self, tenant: &TenantId) -> Result<Option<Lease>> {
        let tenant = tenant.clone();
        self.run(move |db| async move { db.lease(&tenant).await })
    }

    fn enqueue(&self, tenant: &TenantId, request: &[u8]) -> Result<u64> {
        let (tenant, request) = (tenant.clone(), request.to_vec());
        self.run(move |db| async move { db.enqueue(&tenant, &request).await })
    }

    fn pending(&self, tenants: &[TenantId], limit: usize) -> Result<Vec<(TenantId, u64, Vec<u8>)>> {
        let tenants = tenants.to_vec();
        self.run(move |db| async move { db.pending(&tenants, limit).await })
    }

    fn take_answers(&self, tickets: &[u64]) -> Result<Vec<(u64, Vec<u8>)>> {
        let tickets = tickets.to_vec();
        self.run(move |db| async move { db.take_answers(&tickets).await })
    }

    fn sweep_answered(&self, older_than: Duration) -> Result<u64> {
        self.run(move |db| async move { db.sweep_answered(older_than).await })
    }

    fn ensure_data_key(&self, tenant: &TenantId, subject: &str, wrapped: &[u8]) -> Result<Vec<u8>> {
        let (tenant, subject, wrapped) = (tenant.clone(), subject.to_owned(), wrapped.to_vec());
        self.run(move |db| async move { db.ensure_data_key(&tenant, &subject, &wrapped).await })
    }
}
