//! Witness policies in `evident verify`: `--witness VKEY ... --witness-threshold K` requires K
//! valid `cosignature/v1` cosignatures by those keys on the checkpoint of what is verified; with
//! `--watch`, `--witness-url URL` compares what each witness cosigned (its monitoring endpoint,
//! c2sp.org/tlog-witness) with the log's own checkpoints, a different root at one size being a fork.

use anyhow::{Context as _, Result, anyhow, bail};
use evident_tlog::{Checkpoint, Hash, TreeSize, Verifier, witness_policy};
use sha2::{Digest as _, Sha256};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// A witness's cosignature/v1 verifier key (repeatable): the checkpoint must carry the
    /// cosignatures of --witness-threshold of them.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned [default: all of them].
    #[arg(long, value_name = "K", requires = "witnesses")]
    pub witness_threshold: Option<usize>,
    /// With --watch: a witness's monitoring URL (repeatable); what it cosigned for the log must
    /// be consistent with the log's checkpoints.
    #[arg(long = "witness-url", value_name = "URL")]
    pub witness_urls: Vec<String>,
}

/// The witness keys and threshold in force (`None` without `--witness`).
pub struct Policy {
    witnesses: Vec<Verifier>,
    threshold: usize,
}

impl PolicyArgs {
    pub fn policy(&self) -> Result<Option<Policy>> {
        if self.witnesses.is_empty() {
            return Ok(None);
        }
        let witnesses = self
            .witnesses
            .iter()
            .map(|vkey| {
                Verifier::parse(vkey.trim())
                    .with_context(|| format!("--witness {vkey:?} is not a verifier key"))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(bad) = witnesses.iter().find(|w| w.alg() != evident_tlog::ALG_COSIGNATURE_V1) {
            bail!("--witness {} is not a witness's cosignature/v1 key (type 0x04)", bad.to_vkey());
        }
        let threshold = self.witness_threshold.unwrap_or(witnesses.len());
        if threshold == 0 || threshold > witnesses.len() {
            bail!(
                "--witness-threshold {threshold} must be between 1 and the {} --witness keys",
                witnesses.len()
            );
        }
        Ok(Some(Policy { witnesses, threshold }))
    }
}

impl Policy {
    /// Checks a signed checkpoint note; the failure names who cosigned and who did not.
    pub fn check(&self, note: &str) -> Result<String> {
        let report = witness_policy(note, &self.witnesses);
        let signed: Vec<String> =
            report.signed.iter().map(|(id, time)| format!("{id} (time {time})")).collect();
        let summary = format!(
            "cosigned by {} of {} witnesses (threshold {}): [{}]; not cosigned by: [{}]{}",
            report.signed.len(),
            self.witnesses.len(),
            self.threshold,
            signed.join(", "),
            report.missing.join(", "),
            if report.bad.is_empty() {
                String::new()
            } else {
                format!("; BAD cosignature by: [{}]", report.bad.join(", "))
            }
        );
        if !report.met(self.threshold) {
            bail!("witness policy NOT met: {summary}");
        }
        Ok(summary)
    }
}

/// What one witness's view says about the log's current checkpoint.
pub enum View {
    /// What the witness cosigned is consistent with the log.
    Consistent,
    /// Evidence of a fork or rollback (exit 2).
    Fork(String),
}

/// Fetches what the witness at `url` cosigned for `origin` and compares it with the log's
/// `checkpoint`; `consistency(old, new)` asks the log for a proof.
pub fn compare_view(
    url: &str,
    origin: &str,
    log_keys: &[Verifier],
    checkpoint: &Checkpoint,
    consistency: impl FnOnce(u64, u64) -> Result<Vec<Hash>>,
) -> Result<View> {
    let address = format!(
        "{}/{}/checkpoint",
        url.trim_end_matches('/'),
        hex::encode(Sha256::digest(origin.as_bytes()))
    );
    let response = reqwest::blocking::Client::new()
        .get(&address)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .with_context(|| format!("cannot reach the witness at {address}"))?;
    let status = response.status().as_u16();
    let text = response.text().with_context(|| format!("cannot read {address}"))?;
    if status != 200 {
        bail!("the witness at {address} answered {status}: {}", text.trim());
    }
    let (witnessed, _) = Checkpoint::open(&text, log_keys, origin).map_err(|err| {
        anyhow!("the witness at {url} serves a checkpoint the log's key does not verify: {err}")
    })?;
    let (seen, ours) = (witnessed.size.0, checkpoint.size.0);
    let root = |c: &Checkpoint| c.root.to_base64();
    if seen > ours {
        return Ok(View::Fork(format!(
            "the witness at {url} cosigned tree size {seen} (root {}), the log serves only size {ours}: a rollback or a split view",
            root(&witnessed)
        )));
    }
    if seen == ours && witnessed.root != checkpoint.root {
        return Ok(View::Fork(format!(
            "FORK: the witness at {url} cosigned tree size {seen} with root {}, the log serves root {} at the same size",
            root(&witnessed),
            root(checkpoint)
        )));
    }
    if seen > 0 && seen < ours {
        let proof = consistency(seen, ours)?;
        if let Err(err) = evident_tlog::verify_consistency(
            TreeSize(seen),
            checkpoint.size,
            &witnessed.root,
            &checkpoint.root,
            &proof,
        ) {
            return Ok(View::Fork(format!(
                "FORK: the witness at {url} cosigned tree size {seen} (root {}), not consistent with the log's size {ours}: {err}",
                root(&witnessed)
            )));
        }
    }
    Ok(View::Consistent)
}
