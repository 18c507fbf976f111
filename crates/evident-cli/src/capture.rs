//! `evident capture postgres`: flag parsing and the drain loop around `evident-capture` (install the
//! triggers, drain the outbox into the log, or `--uninstall`). Described in `docs/capture.md`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use evident_capture::{Database, Drainer, Error};

use crate::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    source: Source,
}

#[derive(clap::Subcommand, Debug)]
enum Source {
    /// Capture changes of PostgreSQL tables: install triggers writing each change to an outbox in
    /// the same transaction, then send the outbox to the log (until stopped, or `--once`).
    Postgres(PostgresArgs),
}

#[derive(clap::Args, Debug)]
struct PostgresArgs {
    /// The database whose tables are captured (`postgres://user@host/database`).
    #[arg(long, env = "EVIDENT_CAPTURE_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// A table to capture, with the column holding the data subject's id (repeatable).
    #[arg(long = "table", value_name = "NAME[:SUBJECT_COLUMN]")]
    tables: Vec<String>,
    /// A column whose change marks the event as personal data (`data_classes: ["pii"]`).
    #[arg(long, value_name = "TABLE.COLUMN")]
    personal: Vec<String>,
    /// A column never captured (its values never leave the database).
    #[arg(long, value_name = "TABLE.COLUMN")]
    exclude: Vec<String>,
    /// A column captured as a salted SHA-256 of its value only.
    #[arg(long, value_name = "TABLE.COLUMN")]
    hash: Vec<String>,
    /// Remove the triggers and the `evident_capture` schema (refused while changes are unsent).
    #[arg(long)]
    uninstall: bool,
    /// With --uninstall: discard changes not yet sent.
    #[arg(long, requires = "uninstall")]
    force: bool,
    /// Exit once the outbox is empty instead of waiting for more changes.
    #[arg(long)]
    once: bool,
    /// Changes per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch: i64,
    /// How often an empty outbox is read again, in milliseconds.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Source::Postgres(args) = args.source;
    let mut db = Database::connect(&args.database_url).context("connecting to --database-url")?;
    if args.uninstall {
        let removed = evident_capture::uninstall(&mut db, args.force)?;
        eprintln!("{}", if removed { "capture uninstalled" } else { "capture was not installed" });
        return Ok(ExitCode::SUCCESS);
    }
    let client = crate::search::client(&args.client)?;
    let tables = evident_capture::plan(&args.tables, &args.personal, &args.exclude, &args.hash)?;
    if !tables.is_empty() {
        evident_capture::install(&mut db, &tables)?;
        eprintln!("capturing {}", tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "));
    }
    let mut drainer = Drainer::new(db, client, args.batch)?;
    drain(&mut drainer, args.once, Duration::from_millis(args.poll_ms))
}

/// Drains until stopped (or, with `once`, until the outbox is empty), retrying refused requests
/// with backoff: the outbox keeps every change until the server acknowledges it.
fn drain(drainer: &mut Drainer, once: bool, poll: Duration) -> Result<ExitCode> {
    let mut backoff = Duration::from_millis(100);
    let (mut delivered, mut dead_lettered) = (0, 0);
    loop {
        match drainer.drain_batch() {
            Ok(drained) if drained.delivered + drained.dead_lettered == 0 => {
                if once {
                    eprintln!("{delivered} changes sent, {dead_lettered} dead-lettered");
                    return Ok(ExitCode::SUCCESS);
                }
                std::thread::sleep(poll);
            }
            Ok(drained) => {
                delivered += drained.delivered;
                dead_lettered += drained.dead_lettered;
                backoff = Duration::from_millis(100);
            }
            Err(Error::Send(err)) => {
                let retry_after = match &err {
                    evident_client::Error::Api { retry_after, .. } => retry_after.map(Duration::from_secs),
                    _ => None,
                };
                eprintln!("evident: {err}; retrying");
                std::thread::sleep(retry_after.unwrap_or_default().max(backoff));
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(err) => return Err(err.into()),
        }
    }
}
