//! Trusted time in the client commands: `evident export` keeps the TSA's reply for the bundle's
//! checkpoint next to it (`checkpoint.tsr`), and `evident verify DIR --tsa-cert FILE` checks it
//! (`evident_client::timestamp`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use evident_client::bundle::BundleReader;
use evident_client::timestamp::{self, BUNDLE_FILE};
use serde_json::json;

/// Writes the server's timestamp of the checkpoint at `size` into the bundle `dir`, if it has
/// one; a server without one (404) is no error, and a TSA that cannot be reached only a warning.
pub fn fetch(client: &evident_client::Client, tenant: &str, size: u64, dir: &Path) -> Result<bool> {
    match client.timestamp(tenant, size) {
        Ok(reply) => {
            let path = dir.join(BUNDLE_FILE);
            std::fs::write(&path, reply).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(true)
        }
        Err(evident_client::Error::Api { status: 404, .. }) => Ok(false),
        Err(err) => {
            eprintln!("evident: WARNING: the bundle has no trusted timestamp: {err}");
            Ok(false)
        }
    }
}

/// The directory a bundle path (the directory or its `bundle.ndjson`) stands for.
fn bundle_dir(path: &Path) -> PathBuf {
    if path.is_dir() { path.to_owned() } else { path.parent().map(Path::to_owned).unwrap_or_default() }
}

/// Checks the bundle's `checkpoint.tsr` against `tsa_cert` (required then), or says it is there
/// unchecked.
pub fn check_bundle(path: &Path, tsa_cert: Option<&Path>, json: bool) -> Result<()> {
    let reply_path = bundle_dir(path).join(BUNDLE_FILE);
    let Some(cert_path) = tsa_cert else {
        if reply_path.exists() && !json {
            crate::outln!("  trusted time: {BUNDLE_FILE} present, not checked (pass --tsa-cert FILE)");
        }
        return Ok(());
    };
    let cert = std::fs::read(cert_path)
        .with_context(|| format!("cannot read --tsa-cert {}", cert_path.display()))?;
    let cert = timestamp::tsa_certificate(&cert)
        .map_err(|why| anyhow!("--tsa-cert {}: {why}", cert_path.display()))?;
    if !reply_path.exists() {
        bail!("timestamp does NOT verify: the bundle has no {BUNDLE_FILE} (--tsa-cert asks for one)");
    }
    let reply =
        std::fs::read(&reply_path).with_context(|| format!("cannot read {}", reply_path.display()))?;
    let reader = BundleReader::open(path).map_err(|err| anyhow!("bundle does NOT verify: {err}"))?;
    let stamped = timestamp::verify(&reply, &reader.header.checkpoint, &cert)
        .map_err(|why| anyhow!("timestamp does NOT verify: {why}"))?;
    if json {
        let line = json!({"verified": true, "kind": "timestamp", "time": stamped.time, "serial": stamped.serial,
            "tree_size": reader.header.tree_size});
        crate::outln!("{line}");
    } else {
        crate::outln!(
            "  trusted time: the TSA saw this checkpoint (size {}) at {} (token serial {})",
            reader.header.tree_size,
            stamped.time,
            stamped.serial
        );
    }
    Ok(())
}
