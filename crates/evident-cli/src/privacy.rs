//! Privacy commands over the API: `evident erase SUBJECT --reason TEXT --reference REF`,
//! `evident holds create|list|release`, `evident report SUBJECT --kind KIND --output FILE`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use evident_wire::privacy::{CreateHold, EraseRequest, HoldView};

use crate::ClientArgs;
use crate::output;

#[derive(clap::Args)]
pub struct EraseArgs {
    /// The data subject's pseudonymous id, as events carry it in `subject`.
    subject: String,
    /// Why the subject is erased (for example the GDPR Art. 17 ground).
    #[arg(long)]
    reason: String,
    /// The request this answers: a ticket or case number.
    #[arg(long)]
    reference: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn erase(args: EraseArgs) -> Result<ExitCode> {
    let client = args.client.client()?;
    let request = EraseRequest { reason: args.reason, reference: args.reference };
    let erasure =
        client.erase(&args.subject, &request).with_context(|| format!("cannot erase {}", args.subject))?;
    if output::json_wanted(args.client.json) {
        crate::outln!("{}", serde_json::to_string(&erasure).expect("an API answer serialises"));
    } else {
        let what = if erasure.key_destroyed { "erased" } else { "nothing left to erase for" };
        crate::outln!(
            "{what} {} (recorded as event {} at index {})",
            erasure.subject,
            erasure.event_id,
            erasure.index
        );
        if erasure.cache_bound_secs > 0 {
            crate::outln!("other nodes stop using a cached key within {} s", erasure.cache_bound_secs);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct HoldsArgs {
    #[command(subcommand)]
    command: HoldsCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum HoldsCommand {
    /// Place a hold on one subject (--subject), on what search filters match (--filter NAME=VALUE,
    /// repeatable), or on the whole tenant (--tenant).
    Create {
        /// The subject the hold covers (every event about it).
        #[arg(long, conflicts_with_all = ["filter", "tenant"])]
        subject: Option<String>,
        /// A search filter, e.g. `type=customer.record.updated` (repeatable).
        #[arg(long, value_name = "NAME=VALUE", conflicts_with = "tenant")]
        filter: Vec<String>,
        /// Cover the whole tenant.
        #[arg(long)]
        tenant: bool,
        /// Why (a lawsuit, an investigation).
        #[arg(long)]
        reason: String,
        /// A case or matter number.
        #[arg(long)]
        reference: String,
    },
    /// List holds, active and released.
    List,
    /// Release a hold by its id, saying why.
    Release {
        id: String,
        /// Why the hold ends (the case settled, the inquiry closed).
        #[arg(long)]
        reason: String,
    },
}

const HOLD_HEADER: &[&str] = &["ID", "SCOPE", "ACTIVE", "REFERENCE", "REASON", "CREATED", "RELEASED"];

fn hold_row(hold: &HoldView) -> Vec<String> {
    vec![
        hold.id.clone(),
        hold.scope.to_string(),
        hold.active.to_string(),
        hold.reference.clone(),
        hold.reason.clone(),
        hold.created_at.clone(),
        hold.released_at.clone().unwrap_or_default(),
    ]
}

fn create_request(
    subject: Option<String>,
    filter: Vec<String>,
    tenant: bool,
    reason: String,
    reference: String,
) -> Result<CreateHold> {
    let filter = if filter.is_empty() {
        None
    } else {
        let pairs = filter.iter().map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .with_context(|| format!("--filter {pair:?}: expected NAME=VALUE"))
        });
        Some(pairs.collect::<Result<_>>()?)
    };
    Ok(CreateHold { subject, filter, tenant: tenant.then_some(true), reason, reference })
}

pub fn holds(args: HoldsArgs) -> Result<ExitCode> {
    let client = args.client.client()?;
    let json = output::json_wanted(args.client.json);
    let shown = match args.command {
        HoldsCommand::Create { subject, filter, tenant, reason, reference } => {
            let request = create_request(subject, filter, tenant, reason, reference)?;
            vec![client.create_hold(&request).context("cannot create the hold")?]
        }
        HoldsCommand::List => client.list_holds().context("cannot list holds")?.holds,
        HoldsCommand::Release { id, reason } => {
            vec![client.release_hold(&id, &reason).with_context(|| format!("cannot release {id}"))?]
        }
    };
    if json {
        for hold in &shown {
            crate::outln!("{}", serde_json::to_string(hold).expect("an API answer serialises"));
        }
    } else {
        output::table(HOLD_HEADER, &shown.iter().map(hold_row).collect::<Vec<_>>());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The data subject's pseudonymous id.
    subject: String,
    /// access, disclosures or erasure.
    #[arg(long)]
    kind: String,
    /// Where to write it: a printable HTML page when the name ends in .html, JSON otherwise.
    #[arg(long)]
    output: std::path::PathBuf,
    /// Also write the export bundle of the report's events, which `evident verify` checks offline.
    #[arg(long, value_name = "PATH")]
    bundle: Option<std::path::PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let client = args.client.client()?;
    let html = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    let what = format!("the {} report of {}", args.kind, args.subject);
    let body =
        client.report(&args.subject, &args.kind, html).with_context(|| format!("cannot get {what}"))?;
    std::fs::write(&args.output, &body).with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(bundle) = &args.bundle {
        let json = if html { client.report(&args.subject, &args.kind, false)? } else { body };
        let report: serde_json::Value = serde_json::from_slice(&json).context("the report is not JSON")?;
        let pairs: Vec<(String, String)> = report["bundle_filter"]
            .as_object()
            .map(|filter| {
                filter.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect()
            })
            .unwrap_or_default();
        let params = search_params(&pairs);
        let mut file =
            std::fs::File::create(bundle).with_context(|| format!("cannot create {}", bundle.display()))?;
        client
            .export_to_writer(&params, std::time::Duration::from_secs(600), &mut file)
            .with_context(|| format!("cannot export the events of {what}"))?;
    }
    if !output::json_wanted(args.client.json) {
        crate::outln!("wrote {what} to {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// An export's parameters from a report's `bundle_filter` (search filters by their query names).
fn search_params(pairs: &[(String, String)]) -> evident_wire::api::SearchParams {
    let mut params = evident_wire::api::SearchParams::default();
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "from" => &mut params.from,
            "to" => &mut params.to,
            "actor" => &mut params.actor,
            "subject" => &mut params.subject,
            "target_type" => &mut params.target_type,
            "target_id" => &mut params.target_id,
            "type" => &mut params.event_type,
            "action" => &mut params.action,
            "outcome" => &mut params.outcome,
            "source" => &mut params.source,
            _ => continue,
        };
        *slot = Some(value.clone());
    }
    params
}

#[derive(clap::Args)]
pub struct RotateMasterKeyArgs {
    #[command(flatten)]
    data_dir: crate::DataDirArg,
    /// The master key file, if it is not the data directory's.
    #[arg(long, env = "EVIDENT_MASTER_KEY_FILE")]
    master_key_file: Option<std::path::PathBuf>,
    /// The PostgreSQL store at this URL instead of the embedded one.
    #[arg(long, env = "EVIDENT_DATABASE_URL")]
    database_url: Option<String>,
    /// The PostgreSQL schema Evident lives in (default `public`).
    #[arg(long, env = "EVIDENT_DATABASE_SCHEMA")]
    database_schema: Option<String>,
}

/// Makes `<master key file>.next` (or takes the one an interrupted run left), re-wraps every key
/// with it, then moves it over the master key file: the old key is gone. Interrupted before the
/// move, a rerun finishes (keys already re-wrapped are left as they are).
pub fn rotate_master_key(args: RotateMasterKeyArgs) -> Result<ExitCode> {
    use evident_core::seal::MasterKey;
    let dir = crate::datadir::DataDir::open(&args.data_dir.data_dir, false)?;
    let path = args.master_key_file.clone().unwrap_or_else(|| dir.path.join(crate::datadir::MASTER_KEY_FILE));
    let next_path = std::path::PathBuf::from(format!("{}.next", path.display()));
    let (old, _) = crate::datadir::read_or_create_key(&path, false)?;
    let (next, _) = crate::datadir::read_or_create_key(&next_path, true)?;
    let store = crate::fsck::open_store(&dir, &args.database_url, &args.database_schema)?;
    let rotated = evident_core::privacy::rotation::rewrap_all(
        &*store,
        &MasterKey::from_bytes(old),
        &MasterKey::from_bytes(next),
    )
    .context("cannot re-wrap the keys (the old master key is kept; rerun to finish)")?;
    // From here the store expects the new key (`serve` checks it); an interrupted run is finished
    // by running it again.
    crate::keycheck::record_master(&*store, &next)?;
    drop(store);
    std::fs::rename(&next_path, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).ok();
    }
    crate::outln!(
        "re-wrapped {} data keys and {} service secrets ({} already done); {} holds the new master key",
        rotated.data_keys,
        rotated.secrets,
        rotated.already,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
