//! `evident keys` and `evident tenants`: administration over the API with an admin key; and the
//! break-glass path for an operator who lost every admin key: `evident keys create --global` makes
//! a new global admin key straight in the data directory's store (or the database), records it as
//! an `evident.admin.key_created` event by the operator (so the privilege-change rule reports it
//! at the rule's full severity), and prints it once.

use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use evident_core::store::Role;
use evident_wire::api::{CreateKey, CreateTenant, KeyInfo, NewKey};
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
    /// Create a key; it is printed this once. With --global: a new global admin key made from
    /// the data directory (the server stopped) or the database, when every admin key is lost.
    Create {
        /// producer, reader, investigator, auditor or admin.
        #[arg(long, required_unless_present = "global")]
        role: Option<String>,
        /// The tenant (defaults to the admin key's own).
        #[arg(long, conflicts_with = "global")]
        tenant: Option<String>,
        /// A note saying what the key is for.
        #[arg(long)]
        label: Option<String>,
        /// Break-glass: make a global admin key without the API, from --data-dir (stop `serve`
        /// first) or --database-url; recorded in the log as created by this operator.
        #[arg(long)]
        global: bool,
        /// With --global: the data directory (its keys, and the embedded store).
        #[arg(long, requires = "global", value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
        /// With --global: the PostgreSQL store, when the server runs on one.
        #[arg(long, requires = "global", value_name = "URL")]
        database_url: Option<String>,
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
        crate::outln!(
            "rotated the signing key in {}; {retired} retired key(s) kept for old checkpoints",
            path.display()
        );
        crate::outln!("restart the service to sign with the new key");
        return Ok(ExitCode::SUCCESS);
    }
    let client = args.client.client()?;
    let json = output::json_wanted(args.client.json);
    match args.command {
        KeysCommand::Create { global: true, role, label, data_dir, database_url, .. } => {
            if role.as_deref().is_some_and(|role| role != "admin") {
                bail!("--global makes an admin key; leave out --role or give --role admin");
            }
            let key = break_glass(data_dir, database_url, label)?;
            print_new_key(
                &key,
                json,
                "a global admin key, shown this once; its creation is recorded in the log",
            );
        }
        KeysCommand::Create { role, tenant, label, .. } => {
            let role = role.expect("clap requires --role without --global");
            let key =
                client.create_key(&CreateKey { tenant, role, label }).context("cannot create the key")?;
            print_new_key(&key, json, "shown this once; it is stored only as a hash");
        }
        KeysCommand::List => {
            let keys = client.list_keys().context("cannot list keys")?.keys;
            if json {
                keys.iter().for_each(|key| crate::outln!("{}", json_line(key)));
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
                crate::outln!("{}", json_line(&key));
            } else {
                crate::outln!("revoked {key_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a new key: one JSON line, or the key, `note` and its table row.
fn print_new_key(key: &NewKey, json: bool, note: &str) {
    if json {
        crate::outln!("{}", json_line(key));
    } else {
        crate::outln!("key: {}", key.key);
        crate::outln!("({note})");
        output::table(KEY_HEADER, &[key_row(&key.info)]);
    }
}

/// Makes a global admin key of the default tenant in the store itself, recording it first.
fn break_glass(
    data_dir: Option<std::path::PathBuf>,
    database_url: Option<String>,
    label: Option<String>,
) -> Result<NewKey> {
    use evident_server::audit::{AuditEvent, validated};
    let serve_args = crate::serve::Args {
        data_dir,
        listen: None,
        config: None,
        database_url,
        tls_cert: None,
        tls_key: None,
    };
    let settings = crate::serve::settings(&serve_args)?;
    let dir = crate::datadir::DataDir::open(&settings.data_dir, false)?;
    if settings.database.is_none() && !dir.store_path().exists() {
        bail!("no store in {}: give the data directory `evident serve` uses", dir.path.display());
    }
    let (engine, store, _lock) = crate::serve::open_engine(&settings, &dir, false)?;
    let tenant = settings.server.default_tenant.clone();
    engine.policy(&tenant).with_context(|| format!("the tenant {tenant} does not exist in this store"))?;
    let label = label.unwrap_or_else(|| "break-glass admin".to_owned());
    let made = evident_server::auth::new_key(&tenant, Role::Admin, true, Some(label));
    let place = match &settings.database {
        Some(_) => "the database".to_owned(),
        None => format!("the data directory {}", dir.path.display()),
    };
    let event = AuditEvent {
        event_type: "evident.admin.key_created",
        action: "grant",
        outcome: "success",
        actor_id: operator(),
        actor_type: "admin",
        target: ("api_key".to_owned(), made.record.key_id.clone()),
        reason: Some(format!("break-glass: a global admin key made from {place}, without the API")),
        metadata: [
            ("role", "admin"),
            ("tenant", tenant.as_str()),
            ("global", "true"),
            ("path", "break-glass"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..AuditEvent::default()
    };
    let validated = validated(&event).map_err(|err| anyhow!("cannot record the new key: {err:?}"))?;
    // Recorded before the key exists: a key that works is never missing from the log.
    let outcome = engine.append(&tenant, vec![validated]).context("cannot record the new key in the log")?;
    if !matches!(outcome.first(), Some(evident_core::engine::Outcome::Stored(_))) {
        bail!("the log did not store the key's creation ({outcome:?}); no key was made");
    }
    store.put_api_key(&made.record).context("cannot store the new key")?;
    engine.shutdown();
    Ok(NewKey { key: made.key, info: evident_server::admin::key_info(&made.record) })
}

/// Who runs this command, as an actor id: `operator:<user>@<host>`.
fn operator() -> String {
    let user =
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("operator:{user}@{host}")
}

pub fn tenants(args: TenantsArgs) -> Result<ExitCode> {
    let client = args.client.client()?;
    let json = output::json_wanted(args.client.json);
    match args.command {
        TenantsCommand::Create { id } => {
            let tenant =
                client.create_tenant(&CreateTenant { id: id.clone() }).context("cannot create the tenant")?;
            if json {
                crate::outln!("{}", json_line(&tenant));
            } else if tenant.created {
                crate::outln!("created tenant {id}, log {}", tenant.origin);
            } else {
                crate::outln!("tenant {id} exists, log {}", tenant.origin);
            }
        }
        TenantsCommand::List => {
            let tenants = client.list_tenants().context("cannot list tenants")?.tenants;
            if json {
                tenants.iter().for_each(|id| crate::outln!("{}", serde_json::json!({ "id": id })));
            } else {
                output::table(&["TENANT"], &tenants.iter().map(|id| vec![id.clone()]).collect::<Vec<_>>());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
