//! `evident fsck`: re-verifies every log of a stopped embedded store, or of a PostgreSQL store
//! (`--database-url`; the data directory then only lends its signing keys).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use evident_core::fsck::check_log;
use evident_core::store::{LogStore, Store};
use evident_store_sqlite::SqliteStore;
use evident_tlog::{Checkpoint, Signer};

use crate::DataDirArg;
use crate::datadir::{DataDir, SIGNING_KEY_FILE};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Check only this tenant's log.
    #[arg(long)]
    tenant: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Check the PostgreSQL store at this URL instead of the embedded one.
    #[arg(long, env = "EVIDENT_DATABASE_URL")]
    database_url: Option<String>,
    /// The PostgreSQL schema Evident lives in (default `public`).
    #[arg(long, env = "EVIDENT_DATABASE_SCHEMA")]
    database_schema: Option<String>,
}

/// A stopped store: PostgreSQL at `database_url`, or the data directory's embedded one.
pub fn open_store(
    dir: &DataDir,
    database_url: &Option<String>,
    schema: &Option<String>,
) -> Result<Arc<dyn Store>> {
    Ok(match database_url {
        Some(url) => crate::serve::DatabaseSettings {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: Some(2),
            lease_ttl: evident_core::engine::EngineConfig::default().lease_ttl,
        }
        .open()?,
        None => Arc::new(SqliteStore::open(&dir.store_path())?),
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = DataDir::open(&args.data_dir.data_dir, false)?;
    if args.database_url.is_none() && !dir.store_path().exists() {
        anyhow::bail!("no store at {}", dir.store_path().display());
    }
    let (seed, _) = dir.key(SIGNING_KEY_FILE, false)?;
    let mut seeds = vec![seed];
    seeds.extend(crate::datadir::retired_signing_keys(&dir.signing_key_path(&None))?);
    let store = open_store(&dir, &args.database_url, &args.database_schema)?;
    let started = std::time::Instant::now();
    let mut all_ok = true;
    let mut total_entries = 0u64;
    for (tenant, _) in store.tenants()? {
        if args.tenant.as_deref().is_some_and(|t| t != tenant.as_str()) {
            continue;
        }
        // The origin comes from the log's own head; the verifier is our key under that name,
        // and the origin must name this tenant.
        let origin = match store.head(&tenant)? {
            Some(head) => {
                head_origin(&head.checkpoint).with_context(|| format!("head checkpoint of {tenant}"))?
            }
            None => format!("unknown/{tenant}"),
        };
        let verifiers = seeds
            .iter()
            .map(|seed| {
                Ok(Signer::from_seed(&origin, *seed).context("origin is not a valid key name")?.verifier())
            })
            .collect::<Result<Vec<_>>>()?;
        let mut report = check_log(&*store as &dyn LogStore, &tenant, &origin, &verifiers)?;
        if !origin.ends_with(&format!("/{tenant}")) {
            report.problems.push(evident_core::fsck::Problem {
                index: None,
                what: format!("head checkpoint names log {origin:?}, not this tenant's"),
            });
        }
        total_entries += report.entries_checked;
        all_ok &= report.ok();
        if args.json {
            crate::outln!(
                "{}",
                serde_json::json!({
                    "tenant": report.tenant, "size": report.size, "ok": report.ok(),
                    "entries_checked": report.entries_checked, "tiles_checked": report.tiles_checked,
                    "checkpoints_checked": report.checkpoints_checked,
                    "first_bad_index": report.first_bad_index(),
                    "problems": report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                })
            );
        } else {
            let verdict = if report.ok() { "ok" } else { "FAILED" };
            crate::outln!(
                "{}: {verdict}: {} entries, {} tiles, {} checkpoints checked",
                report.tenant,
                report.entries_checked,
                report.tiles_checked,
                report.checkpoints_checked
            );
            if let Some(index) = report.first_bad_index() {
                crate::outln!("  first bad index: {index}");
            }
            for problem in &report.problems {
                crate::outln!("  {problem}");
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if !args.json {
        crate::outln!(
            "checked {total_entries} entries in {seconds:.2} s ({:.0} entries/s)",
            total_entries as f64 / seconds.max(1e-9)
        );
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The origin line of a signed checkpoint (unverified; verification follows with our key).
fn head_origin(note: &str) -> Result<String> {
    let body = note.split_once("\n\n").map(|(body, _)| format!("{body}\n")).context("not a signed note")?;
    Ok(Checkpoint::parse(&body)?.origin)
}
