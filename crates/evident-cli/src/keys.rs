//! `evident keys` and `evident tenants`: administration over the API with an admin key.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use evident_wire::api::{CreateKey, CreateTenant, KeyInfo};
use serde::Serialize;

use crate::ClientArgs;
use crate::output;

#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed this once.
    Create {
        /// producer, reader, investigator, auditor or admin.
        #[arg(long)]
        role: String,
        /// The tenant (defaults to the admin key's own).
        #[arg(long)]
        tenant: Option<String>,
        /// A note saying what the key is for.
        #[arg(long)]
        label: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by its id.
    Revoke { key_id: String },
    /// Replace the service's checkpoint signing key; checkpoints signed so far keep verifying (the
    /// old key is kept as retired and still listed in each log's vkeys). Run it while the service
    /// is stopped; it works on the data directory, not over the API.
    /// Re-wrap every data key and service secret with a new master key; afterwards the old one is
    /// not needed (and is gone from the data directory). Run it while the service is stopped;
    /// rerun it after an interruption.
    RotateMasterKey(crate::privacy::RotateMasterKeyArgs),
    RotateSigningKey {
        /// The data directory of the embedded store.
        #[arg(long, env = "EVIDENT_DATA_DIR", default_value = "./evident-data")]
        data_dir: std::path::PathBuf,
        /// The signing key file, if it is not the data directory's.
        #[arg(long, env = "EVIDENT_SIGNING_KEY_FILE")]
        signing_key_file: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct TenantsArgs {
    #[command(subcommand)]
    command: TenantsCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Create a tenant (needs the global admin key that `serve` printed on its first start).
    Create { id: String },
    /// List tenants.
    List,
}

fn key_row(key: &KeyInfo) -> Vec<String> {
    let optional = |text: &Option<String>| text.clone().unwrap_or_default();
    vec![
        key.key_id.clone(),
        key.tenant.clone(),
        key.role.clone(),
        optional(&key.label),
        key.created_at.clone(),
        optional(&key.revoked_at),
    ]
}

/// One line of JSON output.
fn json_line(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("an API answer serialises")
}

const KEY_HEADER: &[&str] = &["KEY ID", "TENANT", "ROLE", "LABEL", "CREATED", "REVOKED"];

pub fn keys(args: KeysArgs) -> Result<ExitCode> {
    if let KeysCommand::RotateMasterKey(rotate) = args.command {
        return crate::privacy::rotate_master_key(rotate);
    }
    if let KeysCommand::RotateSigningKey { data_dir, signing_key_file } = &args.command {
        let dir = crate::datadir::DataDir::open(data_dir, false)?;
        let path = dir.signing_key_path(signing_key_file);
        crate::datadir::rotate_signing_key(&path)?;
        let retired = crate::datadir::retired_signing_keys(&path)?.len();
        println!(
            "rotated the signing key in {}; {retired} retired key(s) kept for old checkpoints",
            path.display()
        );
        println!("restart the service to sign with the new key");
        return Ok(ExitCode::SUCCESS);
    }
    let client = args.client.client();
    let json = output::json_wanted(args.client.json);
    match args.command {
        KeysCommand::Create { role, tenant, label } => {
            let key =
                client.create_key(&CreateKey { tenant, role, label }).context("cannot create the key")?;
            if json {
                println!("{}", json_line(&key));
            } else {
                println!("key: {}", key.key);
                println!("(shown this once; it is stored only as a hash)");
                output::table(KEY_HEADER, &[key_row(&key.info)]);
            }
        }
        KeysCommand::List => {
            let keys = client.list_keys().context("cannot list keys")?.keys;
            if json {
                keys.iter().for_each(|key| println!("{}", json_line(key)));
            } else {
                output::table(KEY_HEADER, &keys.iter().map(key_row).collect::<Vec<_>>());
            }
        }
        KeysCommand::RotateSigningKey { .. } | KeysCommand::RotateMasterKey(_) => {
            unreachable!("handled above")
        }
        KeysCommand::Revoke { key_id } => {
            let key = client.revoke_key(&key_id).with_context(|| format!("cannot revoke {key_id}"))?;
            if json {
                println!("{}", json_line(&key));
            } else {
                println!("revoked {key_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tenants(args: TenantsArgs) -> Result<ExitCode> {
    let client = args.client.client();
    let json = output::json_wanted(args.client.json);
    match args.command {
        TenantsCommand::Create { id } => {
            let tenant =
                client.create_tenant(&CreateTenant { id: id.clone() }).context("cannot create the tenant")?;
            if json {
                println!("{}", json_line(&tenant));
            } else if tenant.created {
                println!("created tenant {id}, log {}", tenant.origin);
            } else {
                println!("tenant {id} exists, log {}", tenant.origin);
            }
        }
        TenantsCommand::List => {
            let tenants = client.list_tenants().context("cannot list tenants")?.tenants;
            if json {
                tenants.iter().for_each(|id| println!("{}", serde_json::json!({ "id": id })));
            } else {
                output::table(&["TENANT"], &tenants.iter().map(|id| vec![id.clone()]).collect::<Vec<_>>());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
