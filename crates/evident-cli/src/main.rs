//! `evident`: the one binary. Flag parsing and wiring only; the work is done by the library crates.

mod capture;
mod console_link;
mod datadir;
mod demo;
mod detect;
mod export;
mod fsck;
mod hammer;
mod ingest;
mod insight;
mod keycheck;
mod keys;
mod output;
#[cfg(feature = "parquet")]
mod parquet;
mod privacy;
mod records;
mod search;
mod serve;
mod timearg;
mod timestamps;
mod tls;
mod verify;
mod witness;
mod witness_policy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The append path allocates many small, short-lived buffers (JSON values, canonical forms); the
/// system allocator spent a fifth of the ingest CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Evident: a tamper-evident audit trail for customer data.
#[derive(Parser)]
#[command(name = "evident", version, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service on the embedded store (zero configuration needed).
    Serve(serve::Args),
    /// Fill a server with a realistic customer-service history to explore.
    Demo(demo::Args),
    /// Send events from files: NDJSON, CSV, AWS CloudTrail, Kubernetes audit (also GKE, AKS), GitHub
    /// audit log, Okta System Log, Azure Activity Log, Entra ID sign-ins, Google Workspace, pgaudit.
    Ingest(ingest::Args),
    /// Capture changes from an application's database into the log.
    Capture(capture::Args),
    /// Search events.
    Search(search::Args),
    /// Print events as they arrive (`tail -f`).
    Tail(search::TailArgs),
    /// A customer's timeline: every event about a data subject.
    Timeline(records::TimelineArgs),
    /// A record's versions: who changed what and when; with --at, the version in force then.
    History(records::HistoryArgs),
    /// Write events matching a query to a bundle that verifies offline.
    Export(export::Args),
    /// Verify a receipt, an export bundle or a checkpoint offline, or follow a log like a witness.
    Verify(verify::Args),
    /// Create, list and revoke API keys.
    Keys(keys::KeysArgs),
    /// Create and list tenants.
    Tenants(keys::TenantsArgs),
    /// Detection rules: list, templates, create, delete, backtest.
    Rules(detect::RulesArgs),
    /// Findings of the detection rules and their workflow.
    Findings(detect::FindingsArgs),
    /// Webhooks that receive findings, and their dead letters.
    Webhooks(detect::WebhooksArgs),
    /// Erase a data subject: its personal values become unreadable everywhere, every proof stays valid.
    Erase(privacy::EraseArgs),
    /// Write a report about a subject: access, disclosures or erasure (JSON, or HTML for .html).
    Report(privacy::ReportArgs),
    /// Legal holds: create, list, release. A hold stops erasure of what it covers.
    Holds(privacy::HoldsArgs),
    /// Verify a stopped store: every entry, tile and checkpoint of every log.
    Fsck(fsck::Args),
    /// Load tool: append generated events straight into a data directory's store and report
    /// throughput and acknowledgement latency (benchmarks and crash tests use it).
    Hammer(hammer::Args),
    /// Customer insight: trends, funnels, journeys, cohorts and service measures (aggregates only).
    Insights(insight::Args),
    /// Run a C2SP witness (POST /add-checkpoint) for logs it follows; add-log, vkey.
    Witness(witness::Args),
    /// Print a short-lived, one-time sign-in link to the web console for the given key.
    ConsoleLink(console_link::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Capture(args) => capture::run(args),
        Command::Search(args) => search::run(args),
        Command::Tail(args) => search::tail(args),
        Command::Timeline(args) => records::timeline(args),
        Command::History(args) => records::history(args),
        Command::Export(args) => export::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Keys(args) => keys::keys(args),
        Command::Tenants(args) => keys::tenants(args),
        Command::Rules(args) => detect::rules(args),
        Command::Findings(args) => detect::findings(args),
        Command::Webhooks(args) => detect::webhooks(args),
        Command::Erase(args) => privacy::erase(args),
        Command::Holds(args) => privacy::holds(args),
        Command::Report(args) => privacy::report(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Hammer(args) => hammer::run(args),
        Command::Insights(args) => insight::run(args),
        Command::Witness(args) => witness::run(args),
        Command::ConsoleLink(args) => console_link::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("evident: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--data-dir`, shared by the commands that open a store directly.
#[derive(clap::Args, Clone, Debug)]
struct DataDirArg {
    /// The data directory of the embedded store.
    #[arg(long, env = "EVIDENT_DATA_DIR", default_value = "./evident-data")]
    data_dir: PathBuf,
}

/// Where the server is and which key to use: shared by the client commands.
#[derive(clap::Args, Clone, Debug)]
struct ClientArgs {
    /// The server's URL.
    #[arg(long, global = true, env = "EVIDENT_URL", default_value = "http://127.0.0.1:7411")]
    url: String,
    /// The API key.
    #[arg(long, global = true, env = "EVIDENT_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print JSON (one object per line) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// CA certificates (PEM) to trust for an https --url, besides the bundled web roots.
    #[arg(long, global = true, env = "EVIDENT_CA_FILE")]
    ca_file: Option<PathBuf>,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<evident_client::Client> {
        tls::client(&self.url, self.key.clone(), self.ca_file.as_deref())
    }
}
