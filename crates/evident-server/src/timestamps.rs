//! Trusted time (RFC 3161): a Time-Stamping Authority (`EVIDENT_TSA_URL`, TOML `[timestamps]
//! url`) countersigns the SHA-256 of each tenant's signed checkpoint note, so that anyone holding
//! the TSA's certificate can show the log had that size no later than the token's time.
//!
//! [`Timestamper`] runs every `interval` (`EVIDENT_TSA_INTERVAL_SECS`, TOML `[timestamps]
//! interval`; 10 minutes by default): for every tenant this node leads whose head has no
//! token yet, it POSTs an `application/timestamp-query` and keeps the `TimeStampResp` (DER, as the
//! TSA sent it) in the store's service state under `timestamps/<tenant>/<size>`.
//! `GET /v1/logs/{tenant}/timestamps/{size}` answers it as `application/timestamp-reply`
//! (obtaining one for the current head on demand), which `evident export` puts next to the bundle
//! and `evident verify --tsa-cert` checks (`evident_client::timestamp`).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use der::asn1::{Int, OctetString};
use der::{Any, Decode as _, Encode as _};
use evident_core::store::TenantId;
use sha2::{Digest as _, Sha256};
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::query::blocking;

/// The media type of a reply (RFC 3161 section 4).
pub const REPLY_TYPE: &str = "application/timestamp-reply";

/// Where and how often checkpoints are timestamped.
#[derive(Clone, Debug)]
pub struct TsaConfig {
    pub url: String,
    pub interval: Duration,
}

/// The store's state name of the token of `tenant`'s checkpoint at `size`.
fn state_name(tenant: &TenantId, size: u64) -> String {
    format!("timestamps/{tenant}/{size}")
}

/// The `TimeStampReq` (DER) for the SHA-256 of `checkpoint`, asking for the TSA's certificate.
pub fn query(checkpoint: &str) -> Vec<u8> {
    let sha256 = der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
    let mut nonce = uuid::Uuid::now_v7().into_bytes();
    nonce[0] = nonce[0] & 0x7f | 0x01; // positive and minimal
    let request = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: algorithm(sha256),
            hashed_message: OctetString::new(Sha256::digest(checkpoint.as_bytes()).to_vec())
                .expect("32 bytes"),
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce).expect("a positive integer")),
        cert_req: true,
        extensions: None,
    };
    request.to_der().expect("a TimeStampReq encodes")
}

fn algorithm(oid: der::oid::ObjectIdentifier) -> cms::cert::x509::spki::AlgorithmIdentifier<Any> {
    cms::cert::x509::spki::AlgorithmIdentifier { oid, parameters: Some(Any::null()) }
}

/// Refuses a reply that does not grant a token.
fn check_reply(reply: &[u8]) -> Result<(), String> {
    let response = TimeStampResp::from_der(reply).map_err(|err| format!("not a TimeStampResp: {err}"))?;
    use cmpv2::status::PkiStatus;
    if !matches!(response.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods) {
        return Err(format!("the TSA refused: {:?}", response.status.status));
    }
    if response.time_stamp_token.is_none() {
        return Err("the TSA granted no token".into());
    }
    Ok(())
}

/// Asks the TSA for a token of `checkpoint`; the reply as sent.
async fn request(http: &reqwest::Client, url: &str, checkpoint: &str) -> Result<Vec<u8>, String> {
    let response = http
        .post(url)
        .header(header::CONTENT_TYPE.as_str(), "application/timestamp-query")
        .body(query(checkpoint))
        .send()
        .await
        .map_err(|err| format!("the TSA at {url} cannot be reached: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("the TSA at {url} answered {}", response.status().as_u16()));
    }
    let reply = response.bytes().await.map_err(|err| format!("the TSA's reply was cut: {err}"))?.to_vec();
    check_reply(&reply)?;
    Ok(reply)
}

/// The token of `tenant`'s checkpoint at `size`, if stored.
async fn stored(state: &AppState, tenant: &TenantId, size: u64) -> ApiResult<Option<Vec<u8>>> {
    let (engine, name) = (state.engine.clone(), state_name(tenant, size));
    blocking(move || engine.store().get_state(&name)).await
}

/// `tenant`'s current head: its size and signed checkpoint note.
async fn head(state: &AppState, tenant: &TenantId) -> ApiResult<(u64, String)> {
    let (engine, who) = (state.engine.clone(), tenant.clone());
    let head = blocking(move || engine.export_head(&who)).await?;
    Ok((head.size.0, head.checkpoint))
}

/// The signed checkpoint note of `tenant` at `size` (the head, or one before it: an export's
/// checkpoint is older than the head by the export's own audit event).
async fn checkpoint_at(state: &AppState, tenant: &TenantId, size: u64) -> ApiResult<String> {
    let (head_size, note) = head(state, tenant).await?;
    if head_size == size {
        return Ok(note);
    }
    let (engine, who) = (state.engine.clone(), tenant.clone());
    let all = blocking(move || engine.store().checkpoints(&who)).await?;
    all.into_iter()
        .find(|checkpoint| checkpoint.size.0 == size)
        .map(|checkpoint| checkpoint.checkpoint)
        .ok_or_else(|| ApiError::NotFound(format!("no checkpoint of size {size}")))
}

/// Obtains and stores a token for `tenant`'s checkpoint (`size`, `checkpoint`) unless it has one.
async fn stamp(
    state: &AppState,
    http: &reqwest::Client,
    tsa: &TsaConfig,
    tenant: &TenantId,
    (size, checkpoint): (u64, String),
) -> Result<Vec<u8>, String> {
    if let Some(reply) = stored(state, tenant, size).await.map_err(|err| format!("{err:?}"))? {
        return Ok(reply);
    }
    let reply = request(http, &tsa.url, &checkpoint).await?;
    let (engine, name, kept) = (state.engine.clone(), state_name(tenant, size), reply.clone());
    blocking(move || engine.store().put_state(&name, &kept))
        .await
        .map_err(|err| format!("the token is not stored: {err:?}"))?;
    tracing::info!(%tenant, size, "checkpoint timestamped");
    Ok(reply)
}

fn tsa_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client")
}

/// The background task that timestamps the heads of the tenants this node leads.
pub struct Timestamper {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Timestamper {
    /// Starts it when a TSA is configured.
    pub fn start(state: AppState) -> Option<Timestamper> {
        let tsa = state.config.tsa.clone()?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let http = tsa_client();
        let task = tokio::spawn(async move {
            loop {
                for (tenant, _) in state.engine.led_tenants() {
                    let stamped = match head(&state, &tenant).await {
                        Ok(head) => stamp(&state, &http, &tsa, &tenant, head).await,
                        Err(_) => continue, // an empty log: nothing to timestamp yet
                    };
                    if let Err(err) = stamped {
                        tracing::warn!(%tenant, error = %err, "cannot timestamp the checkpoint; next try in one interval");
                    }
                }
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(tsa.interval) => {}
                }
            }
        });
        Some(Timestamper { stop, task })
    }

    /// Stops it, without waiting for a TSA that is slow to answer (the next start asks again).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The RFC 3161 reply (DER) of the TSA for a tenant's checkpoint at `size`; for the current
/// head, obtained now when the timestamper has not yet.
#[utoipa::path(get, path = "/v1/logs/{tenant}/timestamps/{size}",
    params(("tenant" = String, Path, description = "The tenant id; a key reads its own tenant only", example = "default"),
           ("size" = u64, Path, description = "The checkpoint's tree size")),
    responses((status = 200, content_type = "application/timestamp-reply", body = String),
              (status = 400, body = evident_wire::api::Problem), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem),
              (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_timestamp(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path((_tenant, size)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tenant = caller.principal.tenant;
    let size: u64 =
        size.parse().map_err(|_| ApiError::invalid_param("size", "format", "an unsigned integer"))?;
    let reply = match stored(&state, &tenant, size).await? {
        Some(reply) => reply,
        None => {
            let Some(tsa) = state.config.tsa.clone() else {
                return Err(ApiError::NotFound(format!("no timestamp of size {size}: no TSA is configured")));
            };
            let checkpoint = checkpoint_at(&state, &tenant, size).await?;
            stamp(&state, &tsa_client(), &tsa, &tenant, (size, checkpoint))
                .await
                .map_err(ApiError::Unavailable)?
        }
    };
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(REPLY_TYPE))], reply).into_response())
}
