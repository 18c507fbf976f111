//! `evident export`: the events matching a query, as a bundle directory that verifies offline
//! (`evident_client::bundle` describes the format): `bundle.ndjson` exactly as the server streamed
//! it, and `events.jsonl` and `events.csv` made from it. The bundle is verified before the command
//! reports success, with the verifier keys the server names (which proves it intact; to prove it
//! comes from your log, verify it again with a pinned key).
//!
//! `--format parquet` writes the skeletons as one Parquet file instead (`parquet.rs`, behind the
//! cargo feature `parquet`).

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use evident_client::bundle::{BundleReader, BundleReport, csv_record, verify_bundle};
use evident_tlog::Verifier;
use evident_wire::export::{BUNDLE_FILE, CSV_COLUMNS, EVENTS_CSV, EVENTS_JSONL, Line};
use serde_json::json;

use crate::ClientArgs;
use crate::output;
use crate::search::Filters;

/// How long an export may take to stream: it holds every match.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

#[derive(clap::Args)]
pub struct Args {
    /// Which events (the filters of `search`); with --purpose, investigators' exports include
    /// the personal parts (recorded in the audit trail).
    #[command(flatten)]
    filters: Filters,
    /// The bundle directory to write (created; it must be empty unless --force), or with
    /// `--format parquet` the file.
    #[arg(long, short = 'o', value_name = "DIR|FILE")]
    output: PathBuf,
    /// Write into a directory that is not empty (the bundle's files are replaced), or replace the
    /// Parquet file.
    #[arg(long)]
    force: bool,
    /// `bundle` (default): a directory that verifies offline; `parquet`: the skeletons as one
    /// Parquet file for BI tools (needs the cargo feature `parquet`).
    #[arg(long, value_enum, default_value_t = Format::Bundle)]
    format: Format,
    /// `--format parquet`: rows per row group at most (readers skip whole row groups by their
    /// statistics; smaller groups use less memory while writing).
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    row_group_rows: u64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Bundle,
    Parquet,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let params = args.filters.params()?;
    if args.format == Format::Parquet {
        return parquet(&args, &params);
    }
    let client = args.client.client()?;
    let dir = &args.output;
    let created = prepare_dir(dir, args.force)?;

    let bundle_path = dir.join(BUNDLE_FILE);
    let file = create_private(&bundle_path)?;
    let mut out = BufWriter::new(file);
    let streamed = client.export_to_writer(&params, EXPORT_TIMEOUT, &mut out).map_err(anyhow::Error::new);
    let streamed = streamed.and_then(|bytes| {
        out.flush().with_context(|| format!("cannot write {}", bundle_path.display()))?;
        Ok(bytes)
    });
    drop(out);
    if let Err(err) = streamed {
        // Nothing useful was written: leave no half bundle behind.
        let _ = std::fs::remove_file(&bundle_path);
        if created {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(err).context(format!("export from {} failed", client.base()));
    }

    let origin = write_views(dir)?;
    let tenant = origin.rsplit('/').next().unwrap_or_default();
    let vkeys = client
        .vkeys(tenant)
        .with_context(|| format!("cannot fetch the verifier keys of the log of tenant {tenant}"))?;
    let trusted = vkeys
        .iter()
        .map(|line| Verifier::parse(line).with_context(|| format!("the server's vkey {line:?}")))
        .collect::<Result<Vec<_>>>()?;
    let report = verify_bundle(dir, &trusted, Some(&origin))
        .with_context(|| format!("the bundle written to {} does NOT verify", dir.display()))?;
    crate::timestamps::fetch(&client, tenant, report.tree_size, dir)?;
    print_summary(dir, &report, args.filters.purpose.is_some(), args.client.json);
    Ok(ExitCode::SUCCESS)
}

/// Creates (or truncates) an output file readable by its owner only (mode 0600, whatever the
/// umask): the files may hold personal data.
pub(crate) fn create_private(path: &Path) -> Result<File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // An existing file keeps its mode on open: narrow it too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(file)
}

/// Makes `dir` ready for a bundle; answers whether it was created.
fn prepare_dir(dir: &Path, force: bool) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                if !force {
                    bail!(
                        "{} is not empty; choose a new --output directory or pass --force to replace its bundle",
                        dir.display()
                    );
                }
                for name in [BUNDLE_FILE, EVENTS_JSONL, EVENTS_CSV, evident_client::timestamp::BUNDLE_FILE] {
                    match std::fs::remove_file(dir.join(name)) {
                        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                            return Err(err).context(format!("cannot replace {}", dir.join(name).display()));
                        }
                        _ => {}
                    }
                }
            }
            Ok(false)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
            Ok(true)
        }
        Err(err) => Err(err).context(format!("cannot use {} as the output directory", dir.display())),
    }
}

/// Writes `events.jsonl` and `events.csv` from the bundle in `dir`; answers the bundle's origin.
fn write_views(dir: &Path) -> Result<String> {
    let mut reader = BundleReader::open(dir).context("the server's answer is not an export bundle")?;
    let jsonl_path = dir.join(EVENTS_JSONL);
    let csv_path = dir.join(EVENTS_CSV);
    let mut jsonl = BufWriter::new(create_private(&jsonl_path)?);
    let mut csv = csv::Writer::from_writer(create_private(&csv_path)?);
    csv.write_record(CSV_COLUMNS)?;
    // The bundle is checked afterwards; a malformed line stops the views here and fails that check.
    while let Ok(Some(Line::Event(event))) = reader.next_line() {
        serde_json::to_writer(&mut jsonl, &event.event)?;
        jsonl.write_all(b"\n")?;
        csv.write_record(csv_record(&event))?;
    }
    jsonl.flush().with_context(|| format!("cannot write {}", jsonl_path.display()))?;
    csv.flush().with_context(|| format!("cannot write {}", csv_path.display()))?;
    Ok(reader.header.origin.clone())
}

fn print_summary(dir: &Path, report: &BundleReport, purpose_given: bool, json: bool) {
    if output::json_wanted(json) {
        let summary = json!({
            "output": dir.display().to_string(),
            "events": report.events,
            "origin": report.origin,
            "tree_size": report.tree_size,
            "root": report.root.to_base64(),
            "checkpoint": report.checkpoint,
            "query": report.query,
            "personal_included": report.personal_included,
            "files": [BUNDLE_FILE, EVENTS_JSONL, EVENTS_CSV],
            "verified": true,
        });
        crate::outln!("{summary}");
        return;
    }
    let plural = if report.events == 1 { "" } else { "s" };
    crate::outln!("exported {} event{plural} to {}", report.events, dir.display());
    crate::outln!(
        "  checkpoint: {} at tree size {}, root {}",
        report.origin,
        report.tree_size,
        report.root.to_base64()
    );
    crate::outln!("  query: {}", serde_json::Value::Object(report.query.clone()));
    if report.personal_included > 0 || purpose_given {
        crate::outln!(
            "  personal parts: included for {} of them, each checked against its commitment",
            report.personal_included
        );
    } else {
        crate::outln!("  personal parts: not included (investigators may ask with --purpose)");
    }
    crate::outln!("  files: {BUNDLE_FILE} (the proofs), {EVENTS_JSONL}, {EVENTS_CSV}");
    crate::outln!(
        "  verified with the server's key; check it offline with: evident verify {} --vkey \"$VKEY\" \
         (the log's key you keep)",
        dir.display()
    );
}

#[cfg(feature = "parquet")]
fn parquet(args: &Args, params: &evident_wire::api::SearchParams) -> Result<ExitCode> {
    let client = args.client.client()?;
    let written =
        crate::parquet::export(&client, params, &args.output, args.force, args.row_group_rows as usize)?;
    if output::json_wanted(args.client.json) {
        let summary = json!({
            "output": args.output.display().to_string(), "format": "parquet", "events": written.rows,
            "row_groups": written.row_groups, "origin": written.origin, "tree_size": written.tree_size,
            "verified": true,
        });
        crate::outln!("{summary}");
    } else {
        crate::outln!(
            "exported {} events to {} (Parquet, {} row groups; skeletons only, no personal values)",
            written.rows,
            args.output.display(),
            written.row_groups
        );
        crate::outln!(
            "  checked as it streamed: {} at tree size {}, every inclusion proof and the signed manifest",
            written.origin,
            written.tree_size
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "parquet"))]
fn parquet(_: &Args, _: &evident_wire::api::SearchParams) -> Result<ExitCode> {
    bail!(
        "this evident was built without Parquet export: --format parquet needs the cargo feature \
         `parquet` (cargo build --release -p evident-cli --features parquet)"
    )
}
