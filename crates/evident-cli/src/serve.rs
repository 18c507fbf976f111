//! `evident serve`: the HTTP service on the embedded store, with zero configuration, or on
//! PostgreSQL (`--database-url`), where any number of nodes may share one database.
//!
//! Settings come from, strongest first: flags, environment variables (`EVIDENT_*`), the TOML file
//! (`--config` / `EVIDENT_CONFIG`), defaults. On the first start of a new data directory the keys
//! are made, the tenant `default` is created, and one line `admin key: <KEY>` is printed: the only
//! time that key is shown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use evident_core::engine::{Engine, EngineConfig};
use evident_core::event::TenantPolicy;
use evident_core::seal::MasterKey;
use evident_core::store::{Role, Store};
use evident_server::detect::{DetectConfig, Detector};
use evident_server::outstream::StreamConfig;
use evident_server::witness::{WitnessClient, WitnessEndpoint};
use evident_server::{AppState, ServerConfig, app, audit, auth};
use evident_store_postgres::{PgOptions, PgStore};
use serde::Deserialize;

use crate::datadir::{self, DataDir, MASTER_KEY_FILE, SIGNING_KEY_FILE};
use crate::keycheck;
use crate::tls::{TlsFiles, TlsListener};

#[derive(clap::Args)]
pub struct Args {
    /// The data directory of the embedded store [env: EVIDENT_DATA_DIR] [default: ./evident-data]
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address to listen on [env: EVIDENT_LISTEN] [default: 127.0.0.1:7411]
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// A TOML configuration file.
    #[arg(long, env = "EVIDENT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// PostgreSQL instead of the embedded store, e.g. `postgres://evident@db/evident`; the data
    /// directory then holds only the keys [env: EVIDENT_DATABASE_URL]
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); with --tls-key. SIGHUP reloads both
    /// [env: EVIDENT_TLS_CERT]
    #[arg(long)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert [env: EVIDENT_TLS_KEY]
    #[arg(long)]
    pub(crate) tls_key: Option<PathBuf>,
}

/// The configuration file. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    origin_prefix: Option<String>,
    #[serde(default)]
    batching: Batching,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    keys: Keys,
    #[serde(default)]
    database: Database,
    #[serde(default)]
    cluster: ClusterFile,
    #[serde(default)]
    outbound: Outbound,
    /// Witnesses asked to cosign every tenant's checkpoints (`[[witness]]`).
    #[serde(default)]
    witness: Vec<WitnessFile>,
    #[serde(default)]
    tls: TlsFile,
    #[serde(default)]
    timestamps: Timestamps,
}

/// A `[[witness]]` entry: its cosignature/v1 vkey, its submission URL, and optionally its name
/// (which must be the vkey's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessFile {
    name: Option<String>,
    vkey: String,
    url: String,
}

/// Trusted time: the RFC 3161 TSA that timestamps checkpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timestamps {
    url: Option<String>,
    /// Seconds between two rounds.
    interval: Option<u64>,
}

/// HTTPS: the certificate chain and key files (PEM).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// Connections the server makes on tenants' behalf (webhooks).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outbound {
    /// Allow loopback, private and link-local destinations (receivers on premises).
    allow_private: Option<bool>,
    /// CA certificates (PEM) trusted for https receivers besides the web roots.
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Database {
    url: Option<String>,
    schema: Option<String>,
    pool_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    node_id: Option<String>,
    lease_ttl_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batching {
    max_entries: Option<usize>,
    max_delay_ms: Option<f64>,
    queue_capacity: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_body_bytes: Option<usize>,
    max_batch_events: Option<usize>,
    max_inflight_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    master_key_file: Option<PathBuf>,
    signing_key_file: Option<PathBuf>,
}

/// The settings in force.
#[derive(Debug)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
    pub server: ServerConfig,
    pub master_key_file: Option<PathBuf>,
    pub signing_key_file: Option<PathBuf>,
    pub database: Option<DatabaseSettings>,
    /// Witnesses (`EVIDENT_WITNESSES`, or `[[witness]]` in the file) and the pause between rounds.
    pub witnesses: Vec<WitnessEndpoint>,
    pub witness_interval: Duration,
    /// HTTPS, when set.
    pub tls: Option<TlsFiles>,
}

/// Where the PostgreSQL store is.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub url: String,
    pub schema: Option<String>,
    pub pool_size: Option<usize>,
    /// The lease length of the nodes: a node stopped in the middle of a commit holds its lease
    /// row until the server ends its idle transaction, so that timeout follows the lease (between
    /// 1 and 5 s); a commit is idle in its transaction for milliseconds only.
    pub lease_ttl: Duration,
}

impl DatabaseSettings {
    pub fn open(&self) -> Result<Arc<dyn Store>> {
        let mut options = PgOptions {
            schema: self.schema.clone(),
            idle_in_transaction_timeout: self.lease_ttl.clamp(Duration::from_secs(1), Duration::from_secs(5)),
            ..PgOptions::default()
        };
        if let Some(size) = self.pool_size {
            options.pool_size = size.max(1);
        }
        Ok(Arc::new(PgStore::connect(&self.url, options)?))
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(text) => text.parse().map(Some).map_err(|_| anyhow::anyhow!("{name}={text:?} is not valid")),
        Err(_) => Ok(None),
    }
}

pub(crate) fn settings(args: &Args) -> Result<Settings> {
    let file = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("{} is not a valid configuration", path.display()))?
        }
        None => FileConfig::default(),
    };
    let tls = TlsFiles::pair(
        args.tls_cert.clone().or(env("EVIDENT_TLS_CERT")?).or(file.tls.cert.clone()),
        args.tls_key.clone().or(env("EVIDENT_TLS_KEY")?).or(file.tls.key.clone()),
    )?;
    let server = server_config(&file, tls.is_some())?;
    let engine_defaults = EngineConfig::default();
    let origin_prefix =
        env("EVIDENT_ORIGIN_PREFIX")?.or(file.origin_prefix).unwrap_or(engine_defaults.origin_prefix.clone());
    let delay_ms: f64 = env("EVIDENT_MAX_BATCH_DELAY_MS")?
        .or(file.batching.max_delay_ms)
        .unwrap_or(engine_defaults.max_batch_delay.as_secs_f64() * 1000.0);
    if !(0.0..=1000.0).contains(&delay_ms) {
        bail!("max batch delay must be between 0 and 1000 ms");
    }
    let lease_ttl_ms: u64 = env("EVIDENT_LEASE_TTL_MS")?
        .or(file.cluster.lease_ttl_ms)
        .unwrap_or(engine_defaults.lease_ttl.as_millis() as u64);
    if !(200..=600_000).contains(&lease_ttl_ms) {
        bail!("the lease must last between 200 ms and 10 minutes");
    }
    let database = match args.database_url.clone().or(env("EVIDENT_DATABASE_URL")?).or(file.database.url) {
        Some(url) => Some(DatabaseSettings {
            url,
            schema: env("EVIDENT_DATABASE_SCHEMA")?.or(file.database.schema),
            pool_size: env("EVIDENT_DATABASE_POOL_SIZE")?.or(file.database.pool_size),
            lease_ttl: Duration::from_millis(lease_ttl_ms),
        }),
        None => None,
    };
    Ok(Settings {
        listen: args
            .listen
            .clone()
            .or(env("EVIDENT_LISTEN")?)
            .or(file.listen)
            .unwrap_or("127.0.0.1:7411".into()),
        data_dir: args
            .data_dir
            .clone()
            .or(env("EVIDENT_DATA_DIR")?)
            .or(file.data_dir)
            .unwrap_or("./evident-data".into()),
        engine: EngineConfig {
            origin_prefix,
            max_batch_entries: env("EVIDENT_MAX_BATCH_ENTRIES")?
                .or(file.batching.max_entries)
                .unwrap_or(engine_defaults.max_batch_entries)
                .max(1),
            max_batch_delay: Duration::from_secs_f64(delay_ms / 1000.0),
            queue_capacity: env("EVIDENT_QUEUE_CAPACITY")?
                .or(file.batching.queue_capacity)
                .unwrap_or(engine_defaults.queue_capacity),
            node_id: env("EVIDENT_NODE_ID")?
                .or(file.cluster.node_id)
                .unwrap_or(engine_defaults.node_id.clone()),
            lease_ttl: Duration::from_millis(lease_ttl_ms),
            keep_checkpoint_entries: env("EVIDENT_KEEP_CHECKPOINT_ENTRIES")?
                .unwrap_or(engine_defaults.keep_checkpoint_entries)
                .max(1),
            keep_checkpoint_interval: env("EVIDENT_KEEP_CHECKPOINT_MS")?
                .map(Duration::from_millis)
                .unwrap_or(engine_defaults.keep_checkpoint_interval),
            ..engine_defaults
        },
        server,
        master_key_file: env("EVIDENT_MASTER_KEY_FILE")?.or(file.keys.master_key_file),
        signing_key_file: env("EVIDENT_SIGNING_KEY_FILE")?.or(file.keys.signing_key_file),
        database,
        witnesses: witnesses(&file.witness)?,
        witness_interval: Duration::from_millis(
            env("EVIDENT_WITNESS_INTERVAL_MS")?.unwrap_or(1000u64).max(10),
        ),
        tls,
    })
}

/// Streams out: polling and backoff (for tests), the extra CA file.
fn stream_config(file: &Outbound, defaults: &StreamConfig) -> Result<StreamConfig> {
    let millis = |name| -> Result<Option<Duration>> { Ok(env::<u64>(name)?.map(Duration::from_millis)) };
    Ok(StreamConfig {
        poll: millis("EVIDENT_STREAM_POLL_MS")?.unwrap_or(defaults.poll),
        backoff: millis("EVIDENT_STREAM_BACKOFF_MS")?.unwrap_or(defaults.backoff),
        batch: env::<usize>("EVIDENT_STREAM_BATCH")?.unwrap_or(defaults.batch).clamp(1, 10_000),
        ca_file: env::<PathBuf>("EVIDENT_OUTBOUND_CA_FILE")?.or(file.ca_file.clone()),
        ..defaults.clone()
    })
}

/// The server's settings: the environment over the file over the defaults. Console cookies are
/// `Secure` when the listener serves HTTPS (`secure_cookies`).
fn server_config(file: &FileConfig, secure_cookies: bool) -> Result<ServerConfig> {
    let server_defaults = ServerConfig::default();
    Ok(ServerConfig {
        max_body_bytes: env("EVIDENT_MAX_BODY_BYTES")?
            .or(file.limits.max_body_bytes)
            .unwrap_or(server_defaults.max_body_bytes),
        max_batch_events: env("EVIDENT_MAX_BATCH_EVENTS")?
            .or(file.limits.max_batch_events)
            .unwrap_or(server_defaults.max_batch_events),
        detect: DetectConfig {
            webhook_attempts: env("EVIDENT_WEBHOOK_ATTEMPTS")?
                .unwrap_or(server_defaults.detect.webhook_attempts)
                .clamp(1, 20),
            webhook_backoff: env::<u64>("EVIDENT_WEBHOOK_BACKOFF_MS")?
                .map(Duration::from_millis)
                .unwrap_or(server_defaults.detect.webhook_backoff),
            allow_private_destinations: env("EVIDENT_ALLOW_PRIVATE_DESTINATIONS")?
                .or(file.outbound.allow_private)
                .unwrap_or(server_defaults.detect.allow_private_destinations),
            outbound_roots: outbound_roots(
                env("EVIDENT_OUTBOUND_CA_FILE")?.or(file.outbound.ca_file.clone()),
            )?,
            ..server_defaults.detect.clone()
        },
        metrics_token: env::<String>("EVIDENT_METRICS_TOKEN")?.filter(|token| !token.is_empty()),
        auth_failure_burst: env("EVIDENT_AUTH_FAILURE_BURST")?.unwrap_or(server_defaults.auth_failure_burst),
        auth_failure_window: env::<u64>("EVIDENT_AUTH_FAILURE_WINDOW_SECS")?
            .map(Duration::from_secs)
            .unwrap_or(server_defaults.auth_failure_window),
        max_inflight_bytes: env("EVIDENT_MAX_INFLIGHT_BYTES")?
            .or(file.limits.max_inflight_bytes)
            .unwrap_or(server_defaults.max_inflight_bytes),
        tsa: tsa(
            env("EVIDENT_TSA_URL")?.or(file.timestamps.url.clone()),
            env("EVIDENT_TSA_INTERVAL_SECS")?.or(file.timestamps.interval),
        )?,
        stream_recheck: env::<u64>("EVIDENT_STREAM_RECHECK_MS")?
            .map(Duration::from_millis)
            .unwrap_or(server_defaults.stream_recheck),
        outstream: stream_config(&file.outbound, &server_defaults.outstream)?,
        console: evident_server::console::session::ConsoleConfig {
            idle: env::<u64>("EVIDENT_CONSOLE_IDLE_SECS")?
                .map(Duration::from_secs)
                .unwrap_or(server_defaults.console.idle),
            max_age: env::<u64>("EVIDENT_CONSOLE_MAX_AGE_SECS")?
                .map(Duration::from_secs)
                .unwrap_or(server_defaults.console.max_age),
            // Console cookies are `Secure` whenever the listener serves HTTPS.
            secure_cookies,
            ..server_defaults.console.clone()
        },
        ..server_defaults
    })
}

/// The witnesses of `EVIDENT_WITNESSES` (`<vkey> <url>, ...`), else of the file's `[[witness]]`.
fn witnesses(file: &[WitnessFile]) -> Result<Vec<WitnessEndpoint>> {
    if let Some(text) = env::<String>("EVIDENT_WITNESSES")? {
        return WitnessEndpoint::parse_list(&text).map_err(|err| anyhow::anyhow!("EVIDENT_WITNESSES: {err}"));
    }
    file.iter()
        .map(|entry| {
            let endpoint = WitnessEndpoint::parse(&entry.vkey, &entry.url)
                .map_err(|err| anyhow::anyhow!("[[witness]]: {err}"))?;
            if entry.name.as_deref().is_some_and(|name| name != endpoint.verifier.name()) {
                bail!(
                    "[[witness]] name {:?} is not the name of its vkey {:?}",
                    entry.name,
                    endpoint.verifier.name()
                );
            }
            Ok(endpoint)
        })
        .collect()
}

/// The TSA settings: a URL (http or https) and an interval of 1 s to a day (10 minutes by default).
fn tsa(
    url: Option<String>,
    interval_secs: Option<u64>,
) -> Result<Option<evident_server::timestamps::TsaConfig>> {
    let Some(url) = url.filter(|url| !url.is_empty()) else { return Ok(None) };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("EVIDENT_TSA_URL={url:?} is not an http:// or https:// URL");
    }
    let secs = interval_secs.unwrap_or(600);
    if !(1..=86_400).contains(&secs) {
        bail!("the timestamp interval must be between 1 second and a day");
    }
    Ok(Some(evident_server::timestamps::TsaConfig { url, interval: Duration::from_secs(secs) }))
}

/// The extra CA certificates for https webhook receivers (`EVIDENT_OUTBOUND_CA_FILE`).
fn outbound_roots(file: Option<PathBuf>) -> Result<Vec<evident_server::outbound::Certificate>> {
    let Some(path) = file else { return Ok(Vec::new()) };
    let pem = std::fs::read(&path).with_context(|| format!("EVIDENT_OUTBOUND_CA_FILE {}", path.display()))?;
    evident_server::outbound::extra_roots(&pem)
        .map_err(|why| anyhow::anyhow!("EVIDENT_OUTBOUND_CA_FILE {}: {why}", path.display()))
}

/// A key file: read, or made only for a new store (`create`); refused when missing otherwise.
fn key(
    dir: &DataDir,
    configured: &Option<PathBuf>,
    default_file: &str,
    create: bool,
    setting: &str,
    place: &str,
) -> Result<([u8; 32], PathBuf)> {
    let path = configured.clone().unwrap_or_else(|| dir.path.join(default_file));
    if !path.exists() && !create {
        return Err(keycheck::missing_key_file(&path, setting, place));
    }
    Ok((datadir::read_or_create_key(&path, create)?.0, path))
}

/// An engine over its store, and the data directory's write lock (held while the file is open;
/// none on PostgreSQL, whose nodes share).
pub(crate) type Opened = (Arc<Engine>, Arc<dyn Store>, Option<std::fs::File>);

/// The engine over the configured store, with its key files checked against what the store
/// recorded at its creation (made only for a new, empty store, and only when `create` is set);
/// for the embedded store, with the data directory's write lock.
pub(crate) fn open_engine(settings: &Settings, dir: &DataDir, create: bool) -> Result<Opened> {
    // The embedded store has one writer: this process, until it ends (PostgreSQL nodes share).
    let lock = if settings.database.is_none() { Some(dir.lock()?) } else { None };
    let store: Arc<dyn Store> = match &settings.database {
        Some(database) => database.open()?,
        None => Arc::new(dir.open_store()?),
    };
    let KeyMaterial { signing: signing_seed, retired, master } = keys(settings, dir, &*store, create)?;
    let engine = Arc::new(
        Engine::open_with_retired_keys(
            Arc::clone(&store),
            signing_seed,
            retired,
            MasterKey::from_bytes(master),
            settings.engine.clone(),
        )
        .context("the store does not verify against its checkpoints; run `evident fsck`")?,
    );
    Ok((engine, store, lock))
}

/// The signing seed, the retired signing seeds and the master key, checked against what the store
/// recorded at its creation (`keycheck.rs`); created only for a new store, when `create` is set.
fn keys(settings: &Settings, dir: &DataDir, store: &dyn Store, create: bool) -> Result<KeyMaterial> {
    let new = create && keycheck::store_is_new(store)?;
    let place = match &settings.database {
        Some(_) => "the PostgreSQL database".to_owned(),
        None => dir.store_path().display().to_string(),
    };
    let (signing, signing_path) =
        key(dir, &settings.signing_key_file, SIGNING_KEY_FILE, new, "EVIDENT_SIGNING_KEY_FILE", &place)?;
    let retired = datadir::retired_signing_keys(&signing_path)?;
    let (master, master_path) =
        key(dir, &settings.master_key_file, MASTER_KEY_FILE, new, "EVIDENT_MASTER_KEY_FILE", &place)?;
    let files = keycheck::KeyFiles { signing: &signing_path, master: &master_path };
    keycheck::check_or_record(store, &files, &signing, &retired, &master)?;
    Ok(KeyMaterial { signing, retired, master })
}

/// The keys a store is opened with.
struct KeyMaterial {
    signing: [u8; 32],
    retired: Vec<[u8; 32]>,
    master: [u8; 32],
}

pub(crate) fn init_logging() {
    let json = std::env::var("EVIDENT_LOG_FORMAT").is_ok_and(|f| f == "json");
    let level = match std::env::var("EVIDENT_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    // Colour only for a person at a terminal: a redirected log holds no escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_max_level(level).with_ansi(ansi).with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    init_logging();
    let settings = settings(&args)?;
    let dir = DataDir::open(&settings.data_dir, true)?;
    let (engine, store, _lock) = open_engine(&settings, &dir, true)?;
    let default_tenant = settings.server.default_tenant.clone();
    // Creating the default tenant is what marks a first start: on a shared database exactly one
    // of several nodes starting at once creates it, and so prints the one admin key.
    if engine.create_tenant(&default_tenant, TenantPolicy::default())? {
        let made = auth::new_key(&default_tenant, Role::Admin, true, Some("bootstrap admin".into()));
        store.put_api_key(&made.record)?;
        println!("admin key: {}", made.key);
    }
    let listen: SocketAddr =
        settings.listen.parse().with_context(|| format!("listen address {:?}", settings.listen))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let state = AppState::try_new(Arc::clone(&engine), settings.server.clone()).context(
        "detection cannot start: the detection secret (detect/secret in the store) cannot be read or \
             opened with the master key; restore it from a backup or use the store's own master.key (a new \
             secret is never made in its place); nothing was changed",
    )?;
    let place = match &settings.database {
        Some(_) => format!("PostgreSQL, node {}; keys in {}", engine.node_id(), dir.path.display()),
        None => format!("data in {}", dir.path.display()),
    };
    let witnesses = (settings.witnesses.clone(), settings.witness_interval);
    runtime.block_on(serve(state, listen, settings.tls.clone(), &place, witnesses))?;
    engine.shutdown();
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    state: AppState,
    listen: SocketAddr,
    tls: Option<TlsFiles>,
    place: &str,
    (witnesses, witness_interval): (Vec<WitnessEndpoint>, Duration),
) -> Result<()> {
    // The handler is in place before the address is announced: a SIGTERM from then on stops the
    // server gracefully (registered later, an early one would kill it before the stop is recorded).
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let (listener, scheme) = match tls {
        Some(files) => (Listening::Tls(TlsListener::start(listener, files)?), "https"),
        None => {
            crate::tls::warn_if_exposed(local);
            (Listening::Plain(listener), "http")
        }
    };
    tracing::info!(address = %local, store = place, scheme, "evident is serving");
    eprintln!("evident: listening on {scheme}://{local} ({place})");
    // Detection starts before the first request and stops after the last one.
    let detector = Detector::start(state.clone());
    let retention = evident_server::privacy::Retention::start(state.clone());
    let streamer = evident_server::outstream::Streamer::start(state.clone());
    let witness_client = WitnessClient::start(state.clone(), witnesses, witness_interval);
    let timestamper = evident_server::timestamps::Timestamper::start(state.clone());
    audit::record_lifecycle(&state, "evident.service.started").await;
    let router = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopping = Arc::clone(&state.stopping);
    let shutdown = async move {
        shutdown_signal(terminate).await;
        // Open streams end now rather than hold the shutdown up.
        stopping.send_replace(true);
    };
    match listener {
        // `tap_io` (doing nothing) is what gives a listener other than TCP the peer address.
        Listening::Tls(tls) => {
            let tls = axum::serve::ListenerExt::tap_io(tls, |_| {});
            axum::serve(tls, router).with_graceful_shutdown(shutdown).await
        }
        Listening::Plain(plain) => axum::serve(plain, router).with_graceful_shutdown(shutdown).await,
    }
    .context("the server failed")?;
    // Requests in flight have finished; record the counted failed authentications and the stop
    // while the engine still runs.
    evident_server::ratelimit::flush(&state).await;
    audit::record_lifecycle(&state, "evident.service.stopped").await;
    retention.stop().await;
    streamer.stop().await;
    if let Some(client) = witness_client {
        client.stop().await;
    }
    if let Some(timestamper) = timestamper {
        timestamper.stop().await;
    }
    // The engine still runs: findings already made are recorded, then the state is persisted.
    detector.stop().await;
    tracing::info!("evident stopped");
    Ok(())
}

/// What `serve` accepts connections on.
enum Listening {
    Plain(tokio::net::TcpListener),
    Tls(TlsListener),
}

async fn shutdown_signal(mut terminate: tokio::signal::unix::Signal) {
    let interrupt = tokio::signal::ctrl_c();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_are_strict() {
        assert!(
            toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\n[batching]\nmax_entries = 10\n").is_ok()
        );
        assert!(toml::from_str::<FileConfig>("lisen = \"127.0.0.1:1\"\n").is_err(), "typos are refused");
        let tls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[outbound]\nca_file = \"ca.pem\"\n";
        let timestamps = "[timestamps]\nurl = \"http://tsa.test/\"\ninterval = 60\n";
        let file = toml::from_str::<FileConfig>(&format!("{tls}{timestamps}")).expect("valid");
        assert_eq!(file.tls.cert, Some(PathBuf::from("c.pem")));
        assert_eq!(file.timestamps.interval, Some(60));
        assert!(tsa(Some("ftp://tsa".into()), None).is_err(), "an http(s) URL only");
        assert!(tsa(Some("http://tsa".into()), Some(0)).is_err(), "an interval of 1 s or more");
        assert!(toml::from_str::<FileConfig>("[batching]\nmax_entries = \"ten\"\n").is_err());
    }

    #[test]
    fn witnesses_come_from_the_file_with_names_checked() {
        let vkey = evident_tlog::Cosigner::from_seed("w1.example", [1; 32]).unwrap().verifier().to_vkey();
        let entry = |name: &str| {
            format!("[[witness]]\nname = \"{name}\"\nvkey = \"{vkey}\"\nurl = \"http://w1.example\"\n")
        };
        let file: FileConfig = toml::from_str(&entry("w1.example")).unwrap();
        let found = witnesses(&file.witness).unwrap();
        assert_eq!((found.len(), found[0].url.as_str()), (1, "http://w1.example"));
        let file: FileConfig = toml::from_str(&entry("w2.example")).unwrap();
        assert!(witnesses(&file.witness).unwrap_err().to_string().contains("is not the name of its vkey"));
        assert!(toml::from_str::<FileConfig>("[[witness]]\nvkey = \"x\"\n").is_err(), "url is required");
    }
}
