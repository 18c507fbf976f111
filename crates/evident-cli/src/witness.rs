//! `evident witness`: a C2SP witness (c2sp.org/tlog-witness) for any log that speaks the protocol.
//!
//! The data directory holds `witness.key` (the cosigner key, made on first start, mode 0600),
//! `logs.toml` (the logs followed: `[[log]]` with `origin` and `vkeys`; `evident witness add-log`
//! writes it, the server rereads it when it changes) and `witness.db` (SQLite: per origin the
//! latest cosigned size, root and checkpoint). The check of the old size and the update of the
//! record are one transaction under one lock, and the record is durable before the answer
//! (`synchronous=FULL`), as the protocol demands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use evident_tlog::{
    AddCheckpoint, Cosigner, Hash, Refusal, SIZE_CONTENT_TYPE, TreeSize, Verifier, add_signature_lines,
    check_add_checkpoint,
};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::datadir::DataDir;

const KEY_FILE: &str = "witness.key";
const LOGS_FILE: &str = "logs.toml";
const DB_FILE: &str = "witness.db";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The witness's data directory (key, followed logs, cosigned checkpoints).
    #[arg(long, env = "EVIDENT_WITNESS_DATA_DIR", default_value = "./evident-witness")]
    data_dir: PathBuf,
    /// Address to listen on; `POST /add-checkpoint` is served at its root.
    #[arg(long, env = "EVIDENT_WITNESS_LISTEN", default_value = "127.0.0.1:7412")]
    listen: String,
    /// The witness's name (its key name, e.g. witness.example.com/w1), used when the key is made.
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Follow a log: its verifier key (GET /v1/logs/{tenant}/vkeys answers it for an Evident log).
    AddLog {
        /// The witness's data directory.
        #[arg(long, env = "EVIDENT_WITNESS_DATA_DIR", default_value = "./evident-witness")]
        data_dir: PathBuf,
        /// The log's verifier key (vkey).
        vkey: String,
        /// The log's origin line; by default the vkey's name (as Evident names its keys).
        #[arg(long)]
        origin: Option<String>,
    },
    /// Print the witness's verifier key (making the key if there is none yet).
    Vkey {
        /// The witness's data directory.
        #[arg(long, env = "EVIDENT_WITNESS_DATA_DIR", default_value = "./evident-witness")]
        data_dir: PathBuf,
        /// The witness's name, used when the key is made (e.g. witness.example.com/w1).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `logs.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsFile {
    #[serde(default)]
    log: Vec<FollowedLog>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowedLog {
    origin: String,
    vkeys: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.action {
        Some(Action::AddLog { data_dir, vkey, origin }) => add_log(&data_dir, &vkey, origin),
        Some(Action::Vkey { data_dir, name }) => {
            let dir = DataDir::open(&data_dir, true)?;
            println!("{}", cosigner(&dir.path, name.as_deref())?.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        None => serve(args.serve),
    }
}

fn add_log(data_dir: &Path, vkey: &str, origin: Option<String>) -> Result<ExitCode> {
    let dir = DataDir::open(data_dir, true)?;
    let verifier = Verifier::parse(vkey.trim()).with_context(|| format!("{vkey:?} is not a verifier key"))?;
    if verifier.alg() != evident_tlog::ALG_ED25519 {
        bail!("{vkey:?} is not a log's (Ed25519 note) key");
    }
    let origin = origin.unwrap_or_else(|| verifier.name().to_owned());
    let path = dir.path.join(LOGS_FILE);
    let mut logs = read_logs(&path)?;
    match logs.log.iter_mut().find(|log| log.origin == origin) {
        Some(log) if log.vkeys.contains(&verifier.to_vkey()) => {}
        Some(log) => log.vkeys.push(verifier.to_vkey()),
        None => logs.log.push(FollowedLog { origin: origin.clone(), vkeys: vec![verifier.to_vkey()] }),
    }
    let text = logs_toml(&logs);
    let temporary = dir.path.join(format!(".{LOGS_FILE}.tmp"));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("following {origin} with {}", verifier.to_vkey());
    Ok(ExitCode::SUCCESS)
}

/// `logs.toml` text (JSON strings are TOML basic strings).
fn logs_toml(logs: &LogsFile) -> String {
    let quote = |text: &str| serde_json::to_string(text).expect("a string serialises");
    let mut out = String::new();
    for log in &logs.log {
        let vkeys: Vec<String> = log.vkeys.iter().map(|vkey| quote(vkey)).collect();
        out.push_str(&format!(
            "[[log]]\norigin = {}\nvkeys = [{}]\n\n",
            quote(&log.origin),
            vkeys.join(", ")
        ));
    }
    out
}

fn read_logs(path: &Path) -> Result<LogsFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("{} is not a valid log list", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(LogsFile::default()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The cosigner key of the data directory, made (with `name`, or one derived from the key) on
/// first use.
fn cosigner(dir: &Path, name: Option<&str>) -> Result<Cosigner> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let cosigner = Cosigner::parse(text.trim())
                .with_context(|| format!("{} is not a witness key", path.display()))?;
            if let Some(name) = name.filter(|name| *name != cosigner.name()) {
                bail!("{} holds the key of witness {:?}, not {name:?}", path.display(), cosigner.name());
            }
            Ok(cosigner)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let seed = evident_core::seal::random_32();
            let default_name;
            let name = match name {
                Some(name) => name,
                None => {
                    let public = Cosigner::from_seed("w", seed)?.verifier().to_vkey();
                    default_name =
                        format!("witness-{}", &hex::encode(Sha256::digest(public.as_bytes()))[..8]);
                    &default_name
                }
            };
            let cosigner = Cosigner::from_seed(name, seed).context("witness name")?;
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(format!("{}\n", cosigner.to_text()).as_bytes())?;
            file.sync_all()?;
            Ok(cosigner)
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The witness's state, shared by its requests.
#[derive(Clone)]
struct Witness {
    cosigner: Arc<Cosigner>,
    db: Arc<Mutex<Connection>>,
    logs: Arc<Mutex<(Option<SystemTime>, Vec<FollowedLog>)>>,
    logs_path: PathBuf,
}

fn open_db(path: &Path) -> Result<Connection> {
    let db = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS checkpoints (
             origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, checkpoint TEXT NOT NULL
         ) STRICT;",
    )
    .with_context(|| format!("cannot set up {}", path.display()))?;
    Ok(db)
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    crate::serve::init_logging();
    let dir = DataDir::open(&args.data_dir, true)?;
    let _lock = dir.lock()?;
    let cosigner = cosigner(&dir.path, args.name.as_deref())?;
    let db = open_db(&dir.path.join(DB_FILE))?;
    let witness = Witness {
        cosigner: Arc::new(cosigner),
        db: Arc::new(Mutex::new(db)),
        logs: Arc::new(Mutex::new((None, Vec::new()))),
        logs_path: dir.path.join(LOGS_FILE),
    };
    witness.followed()?;
    println!("witness vkey: {}", witness.cosigner.verifier().to_vkey());
    let listen: SocketAddr =
        args.listen.parse().with_context(|| format!("listen address {:?}", args.listen))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "evident witness: listening on http://{} (data in {})",
            listener.local_addr()?,
            dir.path.display()
        );
        let router = Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .route("/{origin_hash}/checkpoint", get(latest_checkpoint))
            .with_state(witness);
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            })
            .await
            .context("the witness failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

impl Witness {
    /// The followed logs, reread when `logs.toml` changed.
    fn followed(&self) -> Result<Vec<FollowedLog>> {
        let modified = std::fs::metadata(&self.logs_path).and_then(|m| m.modified()).ok();
        let mut cached = self.logs.lock().expect("logs lock");
        if cached.0 != modified || modified.is_none() {
            *cached = (modified, read_logs(&self.logs_path)?.log);
        }
        Ok(cached.1.clone())
    }

    fn log_keys(&self, logs: &[FollowedLog], origin: &str) -> Option<Vec<Verifier>> {
        let log = logs.iter().find(|log| log.origin == origin)?;
        Some(log.vkeys.iter().filter_map(|vkey| Verifier::parse(vkey).ok()).collect())
    }

    /// The add-checkpoint decision and the record's update, in one transaction under the lock.
    fn add(&self, request: &AddCheckpoint) -> Result<Result<String, Refusal>> {
        let logs = self.followed()?;
        let mut db = self.db.lock().expect("db lock");
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stored = None;
        let checked = check_add_checkpoint(
            request,
            |origin| self.log_keys(&logs, origin),
            |origin| {
                stored = latest(&tx, origin).ok().flatten();
                stored.as_ref().map(|(size, root, _)| (*size, *root))
            },
        );
        let checkpoint = match checked {
            Ok(checkpoint) => checkpoint,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1).max(1);
        let line = self.cosigner.cosign(&checkpoint.body(), now)?;
        let cosigned = add_signature_lines(&request.checkpoint, &line)?;
        tx.execute(
            "INSERT INTO checkpoints (origin, size, root, checkpoint) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (origin) DO UPDATE SET size = ?2, root = ?3, checkpoint = ?4",
            rusqlite::params![
                checkpoint.origin,
                checkpoint.size.0 as i64,
                checkpoint.root.0.to_vec(),
                cosigned
            ],
        )?;
        tx.commit()?;
        tracing::info!(origin = %checkpoint.origin, size = checkpoint.size.0, "cosigned");
        Ok(Ok(line))
    }
}

fn latest(db: &Connection, origin: &str) -> rusqlite::Result<Option<(TreeSize, Hash, String)>> {
    db.query_row("SELECT size, root, checkpoint FROM checkpoints WHERE origin = ?1", [origin], |row| {
        let root: Vec<u8> = row.get(1)?;
        let root =
            Hash::from_slice(&root).map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        Ok((TreeSize(row.get::<_, i64>(0)? as u64), root, row.get(2)?))
    })
    .optional()
}

fn plain(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `POST /add-checkpoint` (c2sp.org/tlog-witness): 200 with the cosignature line, or the
/// protocol's refusal; 500 (with `Retry-After`) only for the witness's own failures.
async fn add_checkpoint(State(witness): State<Witness>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return plain(StatusCode::BAD_REQUEST, "text/plain", "the body is not UTF-8\n".into());
    };
    let request = match AddCheckpoint::parse(text) {
        Ok(request) => request,
        Err(err) => return plain(StatusCode::BAD_REQUEST, "text/plain", format!("{err}\n")),
    };
    let answer = tokio::task::spawn_blocking(move || witness.add(&request)).await;
    match answer {
        Ok(Ok(Ok(line))) => plain(StatusCode::OK, "text/plain; charset=utf-8", line),
        Ok(Ok(Err(refusal))) => {
            let status = StatusCode::from_u16(refusal.status()).expect("a protocol status");
            let content_type = if status == StatusCode::CONFLICT { SIZE_CONTENT_TYPE } else { "text/plain" };
            plain(status, content_type, refusal.body())
        }
        Ok(Err(err)) => {
            tracing::error!(error = %format!("{err:#}"), "add-checkpoint failed");
            let mut response =
                plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "internal error\n".into());
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "internal error\n".into()),
    }
}

/// `GET /<origin hash>/checkpoint`: the latest checkpoint cosigned for a log, with the log's
/// signatures and this witness's cosignature (the protocol's monitoring interface).
async fn latest_checkpoint(
    State(witness): State<Witness>,
    UrlPath(origin_hash): UrlPath<String>,
) -> Response {
    let found = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        let logs = witness.followed()?;
        let db = witness.db.lock().expect("db lock");
        for log in logs {
            if hex::encode(Sha256::digest(log.origin.as_bytes())) == origin_hash {
                return Ok(latest(&db, &log.origin)?.map(|(_, _, checkpoint)| checkpoint));
            }
        }
        Ok(None)
    })
    .await;
    match found {
        Ok(Ok(Some(checkpoint))) => plain(StatusCode::OK, "text/plain; charset=utf-8", checkpoint),
        Ok(Ok(None)) => {
            plain(StatusCode::NOT_FOUND, "text/plain", "no checkpoint cosigned for this log\n".into())
        }
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "internal error\n".into()),
    }
}
