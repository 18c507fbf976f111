//! `evident`: the one binary. Flag parsing and wiring only; the work is done by the library crates.

mod datadir;
mod fsck;
mod hammer;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The append path allocates many small, short-lived buffers (JSON values, canonical forms); the
/// system allocator spent a fifth of the ingest CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Evident: a tamper-evident audit trail for customer data.
#[derive(Parser)]
#[command(name = "evident", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service on the embedded store (zero configuration needed).
    Serve(serve::Args),
    /// Verify a stopped store: every entry, tile and checkpoint of every log.
    Fsck(fsck::Args),
    /// Load tool: append generated events straight into a data directory's store and report
    /// throughput and acknowledgement latency (benchmarks and crash tests use it).
    Hammer(hammer::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Hammer(args) => hammer::run(args),
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
