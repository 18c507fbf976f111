//! API keys and who may do what.
//!
//! A key reads `evk_<key id>_<secret>`: the key id (16 hex digits) names it in listings and
//! revocations; only `SHA-256(secret)` is stored, compared in constant time. The key's tenant
//! comes from the key, never from the request, so a key can only reach its own tenant's data.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use evident_core::store::{ApiKeyRecord, Role, TenantId};
use evident_wire::Micros;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::error::{ApiError, ApiResult};
use crate::principal::{Need, Principal};

/// What a route asks of its caller, as a type: the marker in `Caller<auth::Read>`.
pub trait Requirement: Send + Sync + 'static {
    const NEED: Need;
}

/// Producers: append events.
pub struct Append;
/// Readers, investigators, auditors and admins: read audit data.
pub struct Read;
/// Auditors, investigators and admins: work findings, run backtests.
pub struct Review;
/// Admins.
pub struct Admin;
/// Privacy officers and admins.
pub struct Privacy;

impl Requirement for Append {
    const NEED: Need = Need::Append;
}
impl Requirement for Read {
    const NEED: Need = Need::Read;
}
impl Requirement for Review {
    const NEED: Need = Need::Review;
}
impl Requirement for Admin {
    const NEED: Need = Need::Admin;
}
impl Requirement for Privacy {
    const NEED: Need = Need::Privacy;
}

/// An authenticated caller that meets `R`: the type in a handler's signature is the check. On a
/// route with a `{tenant}` segment, the caller's key must belong to that tenant. A missing or bad
/// key answers 401, a caller that falls short 403; both are recorded (see [`authenticate`] and
/// [`require`]) before the handler runs.
pub struct Caller<R> {
    pub principal: Principal,
    need: PhantomData<R>,
}

impl<R> Deref for Caller<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R: Requirement> FromRequestParts<AppState> for Caller<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|connect| connect.0.ip());
        let principal = match crate::console::session::principal(state, parts, ip).await? {
            Some(principal) => principal,
            None => authenticate(state, &parts.headers, ip).await?,
        };
        let tenant = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => {
                params.iter().find(|(name, _)| *name == "tenant").map(|(_, value)| value.to_owned())
            }
            Err(_) => None,
        };
        let tenant = tenant
            .map(|t| TenantId::new(&t).map_err(|_| ApiError::NotFound(format!("tenant {t:?}"))))
            .transpose()?;
        require(state, &principal, R::NEED, tenant.as_ref()).await?;
        Ok(Caller { principal, need: PhantomData })
    }
}

/// A newly made key: the text to hand out once, and the record to store.
pub struct NewKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

/// Makes a random key for a tenant and role.
pub fn new_key(tenant: &TenantId, role: Role, global: bool, label: Option<String>) -> NewKey {
    let random = evident_core::seal::random_32();
    let key_id: String = random[..8].iter().map(|b| format!("{b:02x}")).collect();
    let secret = B64URL.encode(evident_core::seal::random_32());
    NewKey {
        key: format!("evk_{key_id}_{secret}"),
        record: ApiKeyRecord {
            key_id,
            tenant: tenant.clone(),
            role,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
            global,
            label,
            created_at: Micros::now(),
            revoked_at: None,
        },
    }
}

/// Splits `evk_<id>_<secret>`.
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("evk_")?;
    let (key_id, secret) = rest.split_once('_')?;
    let valid_id = key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit());
    (valid_id && !secret.is_empty() && secret.len() <= 128).then_some((key_id, secret))
}

/// Checks the request's credential. A missing, malformed, unknown, wrong or revoked key answers
/// 401 and is itself recorded as `evident.auth.failed` (in the key's tenant when the key id is
/// known, else in the default tenant).
pub async fn authenticate(state: &AppState, headers: &HeaderMap, ip: Option<IpAddr>) -> ApiResult<Principal> {
    if let Some(wait) = state.auth_failures.throttled(ip) {
        fail(state, None, "too many failed attempts from this address", ip).await;
        return Err(ApiError::TooManyRequests(wait));
    }
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(fail(state, None, "missing credential", ip).await);
    };
    let Some((key_id, secret)) = parse_key(presented) else {
        return Err(fail(state, None, "malformed key", ip).await);
    };
    let record = match state.key_records.get(key_id) {
        Ok(record) => Some(record),
        Err(read_at) => {
            let (engine, id) = (state.engine.clone(), key_id.to_owned());
            let record = crate::offload::blocking(move || engine.store().api_key(&id)).await?;
            if let Some(record) = &record {
                state.key_records.keep(record, read_at);
            }
            record
        }
    };
    let Some(record) = record else {
        return Err(fail(state, None, "unknown key", ip).await);
    };
    let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    if !bool::from(hash.ct_eq(&record.secret_hash)) {
        return Err(fail(state, Some(&record), "wrong secret", ip).await);
    }
    if record.revoked_at.is_some() {
        // The secret is right: its holder may know that it was revoked (and nothing more).
        fail(state, Some(&record), "revoked key", ip).await;
        return Err(ApiError::Revoked);
    }
    Ok(Principal {
        key_id: record.key_id,
        tenant: record.tenant,
        role: record.role,
        global: record.global,
        ip,
    })
}

/// API key records as read from the store, kept by key id on a single-node store, where every
/// change to a key passes through this node's [`KeyRecords::changed`]. On a shared store another
/// node may revoke a key at any time, so every request reads its key there.
pub struct KeyRecords {
    /// `None` on a shared store.
    kept: Option<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    records: HashMap<String, ApiKeyRecord>,
    /// Changes to keys so far: a record read before a change is not kept after it.
    changes: u64,
}

/// At most this many records are kept (a node has few keys; past it, reads go to the store).
const KEPT_RECORDS: usize = 4096;

impl KeyRecords {
    pub fn new(single_node: bool) -> KeyRecords {
        KeyRecords { kept: single_node.then(Mutex::default) }
    }

    /// The kept record, or else the changes so far, to pass to [`KeyRecords::keep`] with the
    /// record then read from the store.
    fn get(&self, key_id: &str) -> Result<ApiKeyRecord, u64> {
        let Some(kept) = &self.kept else { return Err(0) };
        let kept = kept.lock().expect("key records lock");
        kept.records.get(key_id).cloned().ok_or(kept.changes)
    }

    /// Keeps a record read from the store, unless a key changed since `read_at` (the record may
    /// predate the change).
    fn keep(&self, record: &ApiKeyRecord, read_at: u64) {
        let Some(kept) = &self.kept else { return };
        let mut kept = kept.lock().expect("key records lock");
        if kept.changes == read_at && kept.records.len() < KEPT_RECORDS {
            kept.records.insert(record.key_id.clone(), record.clone());
        }
    }

    /// Forgets a key's record: call after the store has changed it (revoked it; a key just made
    /// has no record kept, since unknown keys are not kept).
    pub fn changed(&self, key_id: &str) {
        if let Some(kept) = &self.kept {
            let mut kept = kept.lock().expect("key records lock");
            kept.changes += 1;
            kept.records.remove(key_id);
        }
    }
}

/// Counts a failed authentication and records it as `ratelimit.rs` says (the first of its kind
/// in a window at once, the rest as a count).
async fn fail(
    state: &AppState,
    record: Option<&ApiKeyRecord>,
    why: &'static str,
    ip: Option<IpAddr>,
) -> ApiError {
    state.metrics.auth_failures.inc();
    let tenant = record.map_or_else(|| state.config.default_tenant.clone(), |r| r.tenant.clone());
    let actor = record.map_or_else(|| "anonymous".to_owned(), |r| format!("key:{}", r.key_id));
    crate::ratelimit::record_failure(state, crate::ratelimit::Stream { ip, reason: why, tenant, actor })
        .await;
    ApiError::Unauthenticated
}

/// Refuses, and records the refusal (`evident.access.denied`), when the caller lacks `need` or
/// names another tenant than its own.
pub async fn require(
    state: &AppState,
    principal: &Principal,
    need: Need,
    tenant: Option<&TenantId>,
) -> ApiResult<()> {
    let other_tenant = tenant.is_some_and(|t| *t != principal.tenant);
    if principal.may(need) && !other_tenant {
        return Ok(());
    }
    let why = if other_tenant {
        "the key belongs to another tenant".to_owned()
    } else {
        format!(
            "role {} may not {}",
            principal.role.as_str(),
            match need {
                Need::Append => "append events",
                Need::Read => "read audit data",
                Need::Review => "work findings",
                Need::Admin => "administer",
                Need::Privacy => "act for privacy (erasure, holds, retention, reports)",
            }
        )
    };
    Err(deny(state, principal, tenant.unwrap_or(&principal.tenant), why).await)
}

/// Refuses `principal` a request about `tenant` for the reason `why`, recorded as
/// `evident.access.denied` in the caller's tenant (answers the recording's error if it fails).
pub async fn deny(state: &AppState, principal: &Principal, tenant: &TenantId, why: String) -> ApiError {
    let event = AuditEvent {
        event_type: "evident.access.denied",
        action: "other",
        outcome: "failure",
        reason: Some(why.clone()),
        target: ("tenant".to_owned(), tenant.to_string()),
        ..AuditEvent::by(principal)
    };
    match audit::record(state, &principal.tenant, event).await {
        Ok(()) => ApiError::Forbidden(why),
        Err(err) => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_record_read_before_a_change_is_not_kept() {
        let tenant = TenantId::new("acme").unwrap();
        let made = new_key(&tenant, Role::Producer, false, None);
        let id = made.record.key_id.clone();
        let records = KeyRecords::new(true);
        // Read, then the key changed (revoked) before the reader could keep what it read.
        let read_at = records.get(&id).unwrap_err();
        records.changed(&id);
        records.keep(&made.record, read_at);
        assert!(records.get(&id).is_err(), "a record from before the revocation was kept");
        // Read after the change: kept, until the next change forgets it.
        records.keep(&made.record, records.get(&id).unwrap_err());
        assert_eq!(records.get(&id), Ok(made.record.clone()));
        records.changed(&id);
        assert!(records.get(&id).is_err());
        // On a shared store nothing is kept: another node may revoke the key.
        let shared = KeyRecords::new(false);
        shared.keep(&made.record, shared.get(&id).unwrap_err());
        assert!(shared.get(&id).is_err());
    }

    #[test]
    fn keys_parse_and_hash() {
        let tenant = TenantId::new("acme").unwrap();
        let made = new_key(&tenant, Role::Reader, false, None);
        let (key_id, secret) = parse_key(&made.key).unwrap();
        assert_eq!(key_id, made.record.key_id);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(secret.as_bytes())), made.record.secret_hash);
        assert!(!made.key.contains(&B64URL.encode(made.record.secret_hash)));
        for bad in [
            "",
            "evk_",
            "evk_123_abc",
            "evk_zzzzzzzzzzzzzzzz_abc",
            "xyz_0123456789abcdef_abc",
            "evk_0123456789abcdef_",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
