//! `evident keys` and `evident tenants`: administration over the API with an admin key.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use serde_json::{Value, json};

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

fn key_row(key: &Value) -> Vec<String> {
    let text = |name: &str| key[name].as_str().unwrap_or("").to_owned();
    vec![text("key_id"), text("tenant"), text("role"), text("label"), text("created_at"), text("revoked_at")]
}

const KEY_HEADER: &[&str] = &["KEY ID", "TENANT", "ROLE", "LABEL", "CREATED", "REVOKED"];

pub fn keys(args: KeysArgs) -> Result<ExitCode> {
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
            let mut body = json!({ "role": role });
            if let Some(tenant) = tenant {
                body["tenant"] = json!(tenant);
            }
            if let Some(label) = label {
                body["label"] = json!(label);
            }
            let (_, key) = client.post_json("/v1/keys", &body).context("cannot create the key")?;
            if json {
                println!("{key}");
            } else {
                println!("key: {}", key["key"].as_str().unwrap_or(""));
                println!("(shown this once; it is stored only as a hash)");
                output::table(KEY_HEADER, &[key_row(&key)]);
            }
        }
        KeysCommand::List => {
            let list = client.get_json("/v1/keys", &[]).context("cannot list keys")?;
            let keys = list["keys"].as_array().cloned().unwrap_or_default();
            if json {
                keys.iter().for_each(|key| println!("{key}"));
            } else {
                output::table(KEY_HEADER, &keys.iter().map(key_row).collect::<Vec<_>>());
            }
        }
        KeysCommand::RotateSigningKey { .. } => unreachable!("handled above"),
        KeysCommand::Revoke { key_id } => {
            let key = client
                .delete(&format!("/v1/keys/{key_id}"))
                .with_context(|| format!("cannot revoke {key_id}"))?;
            if json {
                println!("{key}");
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
            let (status, tenant) =
                client.post_json("/v1/tenants", &json!({ "id": id })).context("cannot create the tenant")?;
            if json {
                println!("{tenant}");
            } else if status == 201 {
                println!("created tenant {id}, log {}", tenant["origin"].as_str().unwrap_or(""));
            } else {
                println!("tenant {id} exists, log {}", tenant["origin"].as_str().unwrap_or(""));
            }
        }
        TenantsCommand::List => {
            let list = client.get_json("/v1/tenants", &[]).context("cannot list tenants")?;
            let tenants = list["tenants"].as_array().cloned().unwrap_or_default();
            if json {
                tenants.iter().for_each(|t| println!("{}", json!({ "id": t })));
            } else {
                output::table(
                    &["TENANT"],
                    &tenants.iter().map(|t| vec![t.as_str().unwrap_or("").to_owned()]).collect::<Vec<_>>(),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
