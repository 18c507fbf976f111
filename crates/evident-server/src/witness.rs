//! The witness client (c2sp.org/tlog-witness): every tenant log this node leads sends its new
//! checkpoints, with consistency proofs, to each configured witness's `add-checkpoint`, and stores
//! the `cosignature/v1` lines that verify under the witness's key (`evident_core::cosigned`), from
//! where the checkpoint path, receipts and exports carry them.
//!
//! What the client remembers of a witness (its latest size per log) lives in memory only: after a
//! restart it sends `old 0`, and the witness's 409 names its size, from which it resends. A
//! witness that fails or cannot be reached is retried with a doubling delay (at most
//! [`MAX_BACKOFF`]); the next attempt sends the log's newest checkpoint then.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use evident_core::store::TenantId;
use evident_tlog::{AddCheckpoint, TreeSize, Verifier, cosignature_lines};

use crate::AppState;

/// The longest wait before a failed witness is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A 409 is followed by at most this many resends in one round.
const CONFLICT_RESENDS: usize = 3;

/// A witness to ask for cosignatures: its `cosignature/v1` verifier key and submission prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessEndpoint {
    pub verifier: Verifier,
    /// The submission prefix: `add-checkpoint` is `<url>/add-checkpoint`.
    pub url: String,
}

impl WitnessEndpoint {
    /// `<vkey> <url>`, as in `EVIDENT_WITNESSES` (entries separated by commas).
    pub fn parse(vkey: &str, url: &str) -> Result<WitnessEndpoint, String> {
        let verifier = Verifier::parse(vkey.trim()).map_err(|err| format!("witness key: {err}"))?;
        if verifier.alg() != evident_tlog::ALG_COSIGNATURE_V1 {
            return Err(format!("witness key {vkey:?} is not a cosignature/v1 key (type 0x04)"));
        }
        let url = url.trim().trim_end_matches('/');
        if !url.starts_with("http://") {
            return Err(format!("witness URL {url:?} must start with http:// (this build has no TLS)"));
        }
        Ok(WitnessEndpoint { verifier, url: url.to_owned() })
    }

    /// Every entry of `EVIDENT_WITNESSES`: `<vkey> <url>[, <vkey> <url> ...]`.
    pub fn parse_list(text: &str) -> Result<Vec<WitnessEndpoint>, String> {
        text.split([',', '\n'])
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                let (vkey, url) = entry
                    .trim()
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("witness entry {entry:?} is not `<vkey> <url>`"))?;
                WitnessEndpoint::parse(vkey, url)
            })
            .collect()
    }
}

/// What the client knows of one witness for one log.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    /// The size the witness last cosigned (as far as we know).
    size: Option<u64>,
    /// No attempt before this.
    not_before: Option<Instant>,
    backoff: Duration,
}

/// The background task.
pub struct WitnessClient {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WitnessClient {
    /// Starts the task (none without witnesses); `interval` is the pause between two rounds.
    pub fn start(
        state: AppState,
        witnesses: Vec<WitnessEndpoint>,
        interval: Duration,
    ) -> Option<WitnessClient> {
        if witnesses.is_empty() {
            return None;
        }
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        let task = tokio::spawn(async move {
            let mut known: HashMap<(TenantId, usize), Known> = HashMap::new();
            loop {
                for (tenant, _) in state.engine.led_tenants() {
                    for (n, witness) in witnesses.iter().enumerate() {
                        let entry = known.entry((tenant.clone(), n)).or_default();
                        round(&state, &http, &tenant, witness, entry).await;
                    }
                }
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
        Some(WitnessClient { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One round for one log and one witness: nothing when the witness already cosigned the log's
/// size or is backing off; otherwise a submission, its outcome recorded in `known`.
async fn round(
    state: &AppState,
    http: &reqwest::Client,
    tenant: &TenantId,
    witness: &WitnessEndpoint,
    known: &mut Known,
) {
    if known.not_before.is_some_and(|at| Instant::now() < at) {
        return;
    }
    let (engine, who) = (state.engine.clone(), tenant.clone());
    let head = match tokio::task::spawn_blocking(move || engine.head(&who)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return,
        Ok(Err(err)) => {
            return tracing::warn!(%tenant, error = %err, "witness client: cannot read the checkpoint");
        }
        Err(_) => return,
    };
    if known.size == Some(head.0.0) {
        return;
    }
    match submit(state, http, tenant, witness, head, known.size.unwrap_or(0)).await {
        Ok(size) => *known = Known { size: Some(size), not_before: None, backoff: Duration::ZERO },
        Err(err) => {
            known.backoff = (known.backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
            known.not_before = Some(Instant::now() + known.backoff);
            tracing::warn!(%tenant, witness = witness.verifier.name(), error = %err, retry_in_ms = known.backoff.as_millis() as u64,
                "witness did not cosign; retried later");
        }
    }
}

/// Sends the checkpoint from `old` (resending from the witness's size after a 409) and stores
/// the cosignature; answers the size now cosigned.
async fn submit(
    state: &AppState,
    http: &reqwest::Client,
    tenant: &TenantId,
    witness: &WitnessEndpoint,
    (size, note): (TreeSize, String),
    mut old: u64,
) -> Result<u64, String> {
    for _ in 0..=CONFLICT_RESENDS {
        if old > size.0 {
            return Err(format!(
                "the witness holds size {old}, above the log's {size}: a fork or a lost log"
            ));
        }
        let proof = if old == 0 || old == size.0 {
            Vec::new()
        } else {
            let (engine, who) = (state.engine.clone(), tenant.clone());
            tokio::task::spawn_blocking(move || engine.consistency_proof(&who, old, size.0))
                .await
                .map_err(|err| err.to_string())?
                .map_err(|err| format!("consistency proof {old} to {size}: {err}"))?
        };
        let body = AddCheckpoint { old_size: TreeSize(old), proof, checkpoint: note.clone() }.to_text();
        let response = http
            .post(format!("{}/add-checkpoint", witness.url))
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|err| format!("unreachable: {err}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|err| format!("reading the answer: {err}"))?;
        match status {
            200 => {
                let lines = cosignature_lines(&note, &text, &witness.verifier)
                    .map_err(|err| format!("the answer holds no valid cosignature by its key: {err}"))?;
                let (engine, who) = (state.engine.clone(), tenant.clone());
                tokio::task::spawn_blocking(move || engine.add_cosignatures(&who, &note, &lines))
                    .await
                    .map_err(|err| err.to_string())?
                    .map_err(|err| format!("storing the cosignature: {err}"))?;
                tracing::debug!(%tenant, witness = witness.verifier.name(), size = size.0, "cosigned");
                return Ok(size.0);
            }
            409 => {
                old = text
                    .strip_suffix('\n')
                    .and_then(|size| size.parse().ok())
                    .ok_or_else(|| format!("409 without a size: {text:?}"))?;
            }
            _ => return Err(format!("status {status}: {}", text.trim())),
        }
    }
    Err("the witness's size kept changing".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_lists_name_each_bad_entry() {
        let w1 = evident_tlog::Cosigner::from_seed("w1.example", [1; 32]).unwrap().verifier().to_vkey();
        let w2 = evident_tlog::Cosigner::from_seed("w2.example", [2; 32]).unwrap().verifier().to_vkey();
        let list =
            WitnessEndpoint::parse_list(&format!("{w1} http://127.0.0.1:7412/, {w2}  http://w2.example:80"));
        let list = list.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].verifier.name(), list[0].url.as_str()), ("w1.example", "http://127.0.0.1:7412"));
        assert_eq!((list[1].verifier.name(), list[1].url.as_str()), ("w2.example", "http://w2.example:80"));
        assert_eq!(WitnessEndpoint::parse_list("").unwrap(), Vec::new());
        let log_key = evident_tlog::Signer::from_seed("log.example", [3; 32]).unwrap().verifier().to_vkey();
        for (text, why) in [
            (w1.clone(), "is not `<vkey> <url>`"),
            (format!("{w1} https://w1.example"), "must start with http://"),
            (format!("{log_key} http://w1.example"), "not a cosignature/v1 key"),
            ("nonsense http://w1.example".to_owned(), "witness key"),
        ] {
            let err = WitnessEndpoint::parse_list(&text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
