//! `evident verify`: checks offline what the service hands out (an export bundle, a
//! `c2sp.org/tlog-proof@v1` receipt with its entry, a signed checkpoint) against a verifier key
//! the user trusts; and, with `--watch URL`, follows a tenant log's checkpoints like a witness.
//!
//! Exit status: 0 when everything verifies; 1 when something does not verify or cannot be read;
//! 2 when a watched log shows evidence of misbehaviour (a fork, a rollback, a changed key, a bad
//! signature).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use evident_client::bundle::{BundleReader, verify_bundle};
use evident_client::{Client, Error as ClientError};
use evident_tlog::{Checkpoint, Hash, TlogProof, TreeSize, Verifier, verify_consistency};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::output;
use crate::witness_policy::{Policy, PolicyArgs, View, compare_view};

const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";

#[derive(clap::Args)]
pub struct Args {
    /// A bundle directory (or its bundle.ndjson), a `.tlog-proof` receipt, or a signed checkpoint.
    #[arg(required_unless_present = "watch", conflicts_with = "watch")]
    path: Option<PathBuf>,
    /// With a receipt: the file holding the event's exact entry bytes (GET /v1/events/{id}/entry).
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
    /// A verifier key to trust, as GET /v1/logs/{tenant}/vkeys answers it (repeatable).
    #[arg(long = "vkey", value_name = "VKEY")]
    vkeys: Vec<String>,
    /// A file of verifier keys to trust, one per line.
    #[arg(long, value_name = "FILE")]
    vkey_file: Option<PathBuf>,
    /// The log (checkpoint origin) the artefact must come from; by default the one it names.
    #[arg(long)]
    origin: Option<String>,
    /// Without --vkey: check a bundle against the key its header names. That proves it intact,
    /// NOT that it comes from your log; without this flag, no pinned key is a failure.
    #[arg(long, conflicts_with_all = ["vkeys", "vkey_file", "watch"])]
    trust_on_first_use: bool,
    /// Follow a tenant log's checkpoints, e.g. http://127.0.0.1:7411/v1/logs/default: each new
    /// one must be signed by the key pinned on first use and consistent with the last one seen.
    #[arg(long, value_name = "URL")]
    watch: Option<String>,
    /// The API key (for --watch).
    #[arg(long, env = "EVIDENT_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Where --watch keeps the last checkpoint seen and the pinned key (default:
    /// ~/.local/state/evident/watch-<hash of URL>.json). Verifying a file, the keys that watch
    /// pinned are trusted, and the log it follows is the expected origin.
    #[arg(long, value_name = "FILE", conflicts_with = "trust_on_first_use")]
    state: Option<PathBuf>,
    /// Seconds between two checks of --watch.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    interval: u64,
    /// Check once and exit (for cron and tests).
    #[arg(long, requires = "watch")]
    once: bool,
    /// Print JSON (one object per line) instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(url) = &args.watch {
        return watch(url, &args);
    }
    if !args.policy.witness_urls.is_empty() {
        bail!("--witness-url goes with --watch (it compares a witness's view with the log's checkpoints)");
    }
    let path = args.path.as_deref().expect("clap requires PATH without --watch");
    let (trusted, watched) = trusted_keys(&args, args.state.as_deref())?;
    let origin = args.origin.as_deref().or(watched.as_deref());
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if args.event.is_some() && metadata.is_dir() {
        bail!("--event goes with a .tlog-proof receipt, and {} is a directory", path.display());
    }
    let kind = if metadata.is_dir() { Kind::Bundle } else { kind_of_file(path)? };
    if args.event.is_some() && kind != Kind::Receipt {
        bail!("--event goes with a .tlog-proof receipt, and {} is not one", path.display());
    }
    let json = output::json_wanted(args.json);
    let policy = args.policy.policy()?;
    let code = match kind {
        Kind::Bundle => bundle(path, trusted, origin, args.trust_on_first_use, json),
        Kind::Receipt => receipt(path, &args, &trusted, origin, json),
        Kind::Checkpoint => checkpoint(path, &trusted, origin, json),
    }?;
    if let Some(policy) = policy {
        let summary = policy.check(&checkpoint_note(path, kind)?)?;
        match json {
            true => crate::outln!("{}", json!({"witness_policy": "met", "detail": summary})),
            false => crate::outln!("  witness policy met: {summary}"),
        }
    }
    Ok(code)
}

/// The signed checkpoint note an artefact (already verified) is made against.
fn checkpoint_note(path: &Path, kind: Kind) -> Result<String> {
    let read = || std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()));
    Ok(match kind {
        Kind::Bundle => BundleReader::open(path).map_err(|err| anyhow!("{err}"))?.header.checkpoint,
        Kind::Receipt => TlogProof::parse(&read()?)?.checkpoint,
        Kind::Checkpoint => read()?,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bundle,
    Receipt,
    Checkpoint,
}

fn kind_of_file(path: &Path) -> Result<Kind> {
    use std::io::Read as _;
    let mut start = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(64).read_to_end(&mut start))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let start = String::from_utf8_lossy(&start);
    Ok(if start.starts_with(RECEIPT_HEADER) {
        Kind::Receipt
    } else if start.trim_start().starts_with('{') {
        Kind::Bundle
    } else {
        Kind::Checkpoint
    })
}

/// The key a bundle names itself, accepted only with `--trust-on-first-use` (and loudly).
fn bundle_own_key(path: &Path, trust_on_first_use: bool) -> Result<Verifier> {
    if !trust_on_first_use {
        bail!(
            "bundle NOT verified: no verifier key is pinned, and a bundle signed by anyone would check \
             out against the key it names itself. Pin the log's key with --vkey VKEY or --vkey-file FILE \
             (GET /v1/logs/<tenant>/vkeys answers it; get it once and keep it), --state FILE (the key a \
             `verify --watch` pinned), or pass --trust-on-first-use to accept the bundle's own key"
        );
    }
    let reader = BundleReader::open(path).map_err(|err| anyhow!("bundle does NOT verify: {err}"))?;
    let vkey = reader.header.vkey.clone();
    let verifier = Verifier::parse(&vkey)
        .map_err(|err| anyhow!("bundle does NOT verify: the header's vkey {vkey:?}: {err}"))?;
    eprintln!(
        "evident: WARNING: --trust-on-first-use: the bundle is checked against the key it names itself \
         ({}+{:08x}). That proves it intact and self-consistent, NOT that it comes from your log: pin \
         the log's key with --vkey or --vkey-file",
        verifier.name(),
        verifier.key_id()
    );
    Ok(verifier)
}

/// The keys given with `--vkey` and `--vkey-file`, and those a watch pinned in `state`, with the
/// origin of the log that watch follows.
fn trusted_keys(args: &Args, state: Option<&Path>) -> Result<(Vec<Verifier>, Option<String>)> {
    let mut keys = Vec::new();
    let mut watched = None;
    if let Some(path) = state {
        let state = read_state(path)?.ok_or_else(|| {
            anyhow!("no watch state at {}: run `evident verify --watch URL` first", path.display())
        })?;
        for vkey in &state.vkeys {
            keys.push(
                Verifier::parse(vkey)
                    .with_context(|| format!("{}: {vkey:?} is not a verifier key", path.display()))?,
            );
        }
        watched = Some(state.origin);
    }
    for vkey in &args.vkeys {
        keys.push(
            Verifier::parse(vkey.trim()).with_context(|| format!("--vkey {vkey:?} is not a verifier key"))?,
        );
    }
    if let Some(file) = &args.vkey_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            keys.push(
                Verifier::parse(line.trim())
                    .with_context(|| format!("{} line {}: not a verifier key", file.display(), n + 1))?,
            );
        }
        if keys.is_empty() {
            bail!("{} holds no verifier key", file.display());
        }
    }
    Ok((keys, watched))
}

fn need_keys(trusted: &[Verifier], what: &str) -> Result<()> {
    if trusted.is_empty() {
        bail!(
            "verifying {what} needs the log's verifier key: --vkey VKEY or --vkey-file FILE \
             (GET /v1/logs/<tenant>/vkeys answers it; get it once and keep it)"
        );
    }
    Ok(())
}

/// The origin line of a signed checkpoint note (unverified; `Checkpoint::open` checks it).
fn origin_line(note: &str) -> &str {
    note.split('\n').next().unwrap_or_default()
}

fn signers(trusted: &[Verifier]) -> String {
    trusted.iter().map(|v| format!("{}+{:08x}", v.name(), v.key_id())).collect::<Vec<_>>().join(", ")
}

fn bundle(
    path: &Path,
    mut trusted: Vec<Verifier>,
    origin: Option<&str>,
    trust_on_first_use: bool,
    json: bool,
) -> Result<ExitCode> {
    let pinned = !trusted.is_empty();
    if !pinned {
        trusted.push(bundle_own_key(path, trust_on_first_use)?);
    }
    let report =
        verify_bundle(path, &trusted, origin).map_err(|err| anyhow!("bundle does NOT verify: {err}"))?;
    if json {
        let summary = json!({
            "verified": true, "kind": "bundle", "path": report.path.display().to_string(),
            "events": report.events, "origin": report.origin, "tree_size": report.tree_size,
            "root": report.root.to_base64(), "query": report.query,
            "personal_included": report.personal_included, "signed_by": report.signed_by,
            "key_pinned": pinned, "checked_jsonl": report.checked_jsonl, "checked_csv": report.checked_csv,
        });
        crate::outln!("{summary}");
    } else {
        crate::outln!(
            "bundle verifies: {} event{} of {} at tree size {} (root {}), query {}",
            report.events,
            if report.events == 1 { "" } else { "s" },
            report.origin,
            report.tree_size,
            report.root.to_base64(),
            Value::Object(report.query.clone())
        );
        crate::outln!(
            "  signed by {}{}",
            report.signed_by.join(", "),
            if pinned { "" } else { " (NOT pinned)" }
        );
        if report.personal_included > 0 {
            crate::outln!(
                "  personal parts: {} included, each matches its entry's commitment",
                report.personal_included
            );
        } else {
            crate::outln!("  personal parts: none included");
        }
        let views: Vec<&str> = [(report.checked_jsonl, "events.jsonl"), (report.checked_csv, "events.csv")]
            .into_iter()
            .filter_map(|(checked, name)| checked.then_some(name))
            .collect();
        if !views.is_empty() {
            crate::outln!("  {} agree with the bundle", views.join(" and "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn receipt(
    path: &Path,
    args: &Args,
    trusted: &[Verifier],
    origin: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    need_keys(trusted, "a receipt")?;
    let Some(event_file) = &args.event else {
        bail!(
            "verifying a receipt needs the event's entry: --event FILE, holding the exact entry bytes \
             (GET /v1/events/<event_id>/entry)"
        );
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let entry = std::fs::read(event_file).with_context(|| format!("cannot read {}", event_file.display()))?;
    let proof = TlogProof::parse(&text).map_err(|err| anyhow!("receipt does NOT verify: {err}"))?;
    let origin = origin.map_or_else(|| origin_line(&proof.checkpoint).to_owned(), str::to_owned);
    let checkpoint = proof.verify(&entry, trusted, &origin).map_err(|err| {
        let hint = match err {
            evident_tlog::Error::RootMismatch | evident_tlog::Error::ProofMismatch(_) => {
                format!(
                    " ({} is not the entry at index {} of the log: changed, or not the exact entry bytes)",
                    event_file.display(),
                    proof.index
                )
            }
            _ => String::new(),
        };
        anyhow!("receipt does NOT verify: {err}{hint}")
    })?;
    let event_id = serde_json::from_slice::<Value>(&entry)
        .ok()
        .and_then(|entry| entry.get("event_id").and_then(Value::as_str).map(str::to_owned));
    if json {
        let summary = json!({
            "verified": true, "kind": "receipt", "event_id": event_id, "index": proof.index.0,
            "origin": checkpoint.origin, "tree_size": checkpoint.size.0, "root": checkpoint.root.to_base64(),
        });
        crate::outln!("{summary}");
    } else {
        crate::outln!(
            "receipt verifies: {} is leaf {} of {} at tree size {} (root {}), signed by {}",
            event_id.map(|id| format!("event {id}")).unwrap_or_else(|| "the entry".into()),
            proof.index,
            checkpoint.origin,
            checkpoint.size,
            checkpoint.root.to_base64(),
            signers(trusted)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn checkpoint(path: &Path, trusted: &[Verifier], origin: Option<&str>, json: bool) -> Result<ExitCode> {
    need_keys(trusted, "a checkpoint")?;
    let note = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let origin = origin.unwrap_or_else(|| origin_line(&note));
    let (checkpoint, opened) = Checkpoint::open(&note, trusted, origin)
        .map_err(|err| anyhow!("checkpoint does NOT verify: {err}"))?;
    let signed_by: Vec<String> = opened.verified.iter().map(|s| s.name.clone()).collect();
    if json {
        let summary = json!({
            "verified": true, "kind": "checkpoint", "origin": checkpoint.origin,
            "tree_size": checkpoint.size.0, "root": checkpoint.root.to_base64(), "signed_by": signed_by,
        });
        crate::outln!("{summary}");
    } else {
        crate::outln!(
            "checkpoint verifies: {} at tree size {} (root {}), signed by {}",
            checkpoint.origin,
            checkpoint.size,
            checkpoint.root.to_base64(),
            signed_by.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---- --watch ----------------------------------------------------------------------------------

/// What a watch remembers between runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct WatchState {
    url: String,
    origin: String,
    /// The verifier keys pinned on first use.
    vkeys: Vec<String>,
    /// The last checkpoint seen.
    size: u64,
    root: String,
    checkpoint: String,
}

/// Why one check did not succeed.
enum WatchFailure {
    /// Evidence that the log misbehaved: exit 2.
    Alarm(String),
    /// Anything else (unreachable server, unreadable state): retried, or exit 1 with `--once`.
    Trouble(anyhow::Error),
}

impl From<anyhow::Error> for WatchFailure {
    fn from(err: anyhow::Error) -> WatchFailure {
        WatchFailure::Trouble(err)
    }
}

/// What one check found.
enum Seen {
    First(Checkpoint),
    Unchanged(Checkpoint),
    Consistent { checkpoint: Checkpoint, previous: u64 },
}

fn watch(url: &str, args: &Args) -> Result<ExitCode> {
    let url = url.trim_end_matches('/');
    let log = url
        .rsplit_once("/v1/logs/")
        .filter(|(base, tenant)| {
            (base.starts_with("http://") || base.starts_with("https://"))
                && !tenant.is_empty()
                && !tenant.contains('/')
        })
        .map(|(base, tenant)| Log { client: Client::new(base, args.key.clone()), tenant: tenant.to_owned() });
    let Some(log) = log else {
        bail!("--watch {url:?} is not a tenant log's URL, like http://127.0.0.1:7411/v1/logs/default");
    };
    let state_path = match &args.state {
        Some(path) => path.clone(),
        None => default_state_path(url)?,
    };
    let (pinned_flags, _) = trusted_keys(args, None)?;
    let json = output::json_wanted(args.json);
    let witnesses = Witnesses { policy: args.policy.policy()?, urls: args.policy.witness_urls.clone() };
    loop {
        match check_once(&log, url, &state_path, &pinned_flags, &witnesses) {
            Ok(seen) => report_seen(&seen, json, args.once),
            Err(WatchFailure::Alarm(message)) => {
                eprintln!("evident: ALARM: {url}: {message}");
                return Ok(ExitCode::from(2));
            }
            Err(WatchFailure::Trouble(err)) => {
                if args.once {
                    return Err(err.context(format!("watch {url}")));
                }
                eprintln!("evident: watch {url}: {err:#} (next try in {}s)", args.interval);
            }
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(args.interval.max(1)));
    }
}

fn report_seen(seen: &Seen, json: bool, once: bool) {
    let (status, checkpoint, previous) = match seen {
        Seen::First(checkpoint) => ("first", checkpoint, None),
        Seen::Unchanged(checkpoint) => ("unchanged", checkpoint, None),
        Seen::Consistent { checkpoint, previous } => ("consistent", checkpoint, Some(*previous)),
    };
    if matches!(seen, Seen::Unchanged(_)) && !once {
        return; // a line per new checkpoint only
    }
    if json {
        let line = json!({
            "status": status, "origin": checkpoint.origin, "tree_size": checkpoint.size.0,
            "root": checkpoint.root.to_base64(), "previous_size": previous,
        });
        crate::outln!("{line}");
        return;
    }
    let root = checkpoint.root.to_base64();
    match seen {
        Seen::First(_) => crate::outln!(
            "{} size {} root {root}: first checkpoint seen; key pinned",
            checkpoint.origin,
            checkpoint.size
        ),
        Seen::Unchanged(_) => {
            crate::outln!(
                "{} size {} root {root}: unchanged since last seen",
                checkpoint.origin,
                checkpoint.size
            )
        }
        Seen::Consistent { previous, .. } => crate::outln!(
            "{} size {} root {root}: consistent with size {previous} seen before",
            checkpoint.origin,
            checkpoint.size
        ),
    }
}

/// `~/.local/state/evident/watch-<hash of URL>.json` (or under `$XDG_STATE_HOME`).
fn default_state_path(url: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("no HOME; pass --state FILE"))?;
            PathBuf::from(home).join(".local/state")
        }
    };
    let digest = Sha256::digest(url.as_bytes());
    Ok(base.join("evident").join(format!("watch-{}.json", hex::encode(&digest[..8]))))
}

fn read_state(path: &Path) -> Result<Option<WatchState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("the watch state {} is not readable JSON", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).context(format!("cannot read the watch state {}", path.display())),
    }
}

/// Writes the state atomically: a temporary file in the same directory, synced, then renamed.
fn write_state(path: &Path, state: &WatchState) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("watch.json");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(state).expect("the state serialises"))?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    };
    write().with_context(|| format!("cannot write the watch state {}", path.display()))
}

/// A tenant's log on a server: what `--watch` follows.
struct Log {
    client: Client,
    tenant: String,
}

/// A failed read of a watched log, with a hint when the log is not there.
fn log_error(err: ClientError) -> anyhow::Error {
    match err {
        ClientError::Api { status: 404, .. } => {
            anyhow!("{err} (is the URL a tenant log, and is the log non-empty?)")
        }
        other => anyhow!(other),
    }
}

/// What a watch asks of witnesses: a policy on each checkpoint, and monitoring URLs to compare.
struct Witnesses {
    policy: Option<Policy>,
    urls: Vec<String>,
}

impl Witnesses {
    /// The policy on the log's checkpoint, and each witness's view of the log against it.
    fn check(
        &self,
        log: &Log,
        note: &str,
        verifiers: &[Verifier],
        checkpoint: &Checkpoint,
    ) -> Result<(), WatchFailure> {
        if let Some(policy) = &self.policy {
            policy.check(note)?;
        }
        for url in &self.urls {
            let consistency = |old, new| consistency_proof(log, old, new);
            if let View::Fork(message) =
                compare_view(url, &checkpoint.origin, verifiers, checkpoint, consistency)?
            {
                return Err(WatchFailure::Alarm(message));
            }
        }
        Ok(())
    }
}

fn consistency_proof(log: &Log, old: u64, new: u64) -> Result<Vec<Hash>> {
    let answer = log
        .client
        .consistency(&log.tenant, old, new)
        .with_context(|| format!("cannot get a consistency proof from tree size {old} to {new}"))?;
    answer
        .proof
        .iter()
        .map(|hash| Hash::from_base64(hash).map_err(|_| anyhow!("the consistency proof holds a bad hash")))
        .collect()
}

/// One check: the current checkpoint, verified against the pinned key and the last one seen.
fn check_once(
    log: &Log,
    url: &str,
    state_path: &Path,
    pinned_flags: &[Verifier],
    witnesses: &Witnesses,
) -> Result<Seen, WatchFailure> {
    let state = read_state(state_path)?;
    if let Some(state) = &state
        && state.url != url
    {
        return Err(WatchFailure::Trouble(anyhow!(
            "the watch state {} belongs to {}, not {url}",
            state_path.display(),
            state.url
        )));
    }
    let served: Vec<String> = log.client.vkeys(&log.tenant).map_err(log_error)?;
    let pinned: Vec<String> = match (&state, pinned_flags) {
        (Some(state), _) => state.vkeys.clone(),
        (None, []) => served.clone(),
        (None, flags) => flags.iter().map(Verifier::to_vkey).collect(),
    };
    let mut served_sorted = served.clone();
    served_sorted.sort();
    let mut pinned_sorted = pinned.clone();
    pinned_sorted.sort();
    if served_sorted != pinned_sorted {
        return Err(WatchFailure::Alarm(format!(
            "the log's verifier keys changed: pinned {pinned:?}, the server now names {served:?}; refusing \
             (if the change is legitimate, delete {} to pin the new keys)",
            state_path.display()
        )));
    }
    if !pinned_flags.is_empty() {
        let flags: Vec<String> = pinned_flags.iter().map(Verifier::to_vkey).collect();
        if flags.iter().any(|flag| !pinned.contains(flag)) {
            return Err(WatchFailure::Alarm(format!(
                "the --vkey given is not the log's pinned key {pinned:?}"
            )));
        }
    }
    let verifiers = pinned
        .iter()
        .map(|vkey| Verifier::parse(vkey).with_context(|| format!("the pinned vkey {vkey:?}")))
        .collect::<Result<Vec<_>>>()?;

    let note = log.client.checkpoint(&log.tenant).map_err(log_error)?;
    let origin = match &state {
        Some(state) => state.origin.clone(),
        None => origin_line(&note).to_owned(),
    };
    let (checkpoint, _) = Checkpoint::open(&note, &verifiers, &origin).map_err(|err| {
        WatchFailure::Alarm(format!("the log's checkpoint does not verify with the pinned key: {err}"))
    })?;
    witnesses.check(log, &note, &verifiers, &checkpoint)?;
    let save = |checkpoint: &Checkpoint| {
        write_state(
            state_path,
            &WatchState {
                url: url.to_owned(),
                origin: origin.clone(),
                vkeys: pinned.clone(),
                size: checkpoint.size.0,
                root: checkpoint.root.to_base64(),
                checkpoint: note.clone(),
            },
        )
    };
    let Some(state) = state else {
        save(&checkpoint)?;
        return Ok(Seen::First(checkpoint));
    };
    let seen_root = Hash::from_base64(&state.root)
        .with_context(|| format!("the watch state {} holds a bad root", state_path.display()))?;
    let size = checkpoint.size.0;
    if size < state.size {
        return Err(WatchFailure::Alarm(format!(
            "ROLLBACK: the log's checkpoint is at tree size {size} (root {}), but tree size {} (root {}) was \
             seen before: the log was rolled back or forked",
            checkpoint.root.to_base64(),
            state.size,
            state.root
        )));
    }
    if size == state.size {
        if checkpoint.root != seen_root {
            return Err(WatchFailure::Alarm(format!(
                "FORK: the log's checkpoint at tree size {size} has root {}, but root {} was seen before at \
                 the same size",
                checkpoint.root.to_base64(),
                state.root
            )));
        }
        return Ok(Seen::Unchanged(checkpoint));
    }
    let proof = consistency_proof(log, state.size, size)?;
    verify_consistency(TreeSize(state.size), checkpoint.size, &seen_root, &checkpoint.root, &proof).map_err(
        |err| {
            WatchFailure::Alarm(format!(
                "FORK: the log's checkpoint at tree size {size} (root {}) is not consistent with tree size {} \
                 (root {}) seen before: {err}",
                checkpoint.root.to_base64(),
                state.size,
                state.root
            ))
        },
    )?;
    save(&checkpoint)?;
    Ok(Seen::Consistent { checkpoint, previous: state.size })
}
