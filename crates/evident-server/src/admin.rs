//! Administration: tenants and API keys. Admin keys act within their tenant; the bootstrap
//! ("global") admin key may create tenants and keys for any tenant. Every action is recorded.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use evident_core::event::TenantPolicy;
use evident_core::store::{ApiKeyRecord, Role, TenantId};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::principal::{Need, Principal};
use evident_wire::api::{CreateKey, CreateTenant, KeyInfo, KeyList, NewKey, Tenant, TenantList};

/// Revocations of global keys, one at a time, so two cannot both pass the "not the last one"
/// check (on one node; nodes sharing a store would need the store to decide).
static GLOBAL_REVOCATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An admin may act on its own tenant; only the global admin on others.
async fn require_tenant(state: &AppState, principal: &Principal, tenant: &TenantId) -> ApiResult<()> {
    if principal.global {
        return Ok(());
    }
    auth::require(state, principal, Need::Admin, Some(tenant)).await
}

/// A JSON request body, whatever content type it came with (`curl -d` sends a form type).
fn body<T: serde::de::DeserializeOwned>(bytes: &axum::body::Bytes) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::invalid_param("body", "json", format!("invalid request body: {err}")))
}

pub fn key_info(record: &ApiKeyRecord) -> KeyInfo {
    KeyInfo {
        key_id: record.key_id.clone(),
        tenant: record.tenant.to_string(),
        role: record.role.as_str().to_owned(),
        label: record.label.clone(),
        created_at: record.created_at.to_rfc3339(),
        revoked_at: record.revoked_at.map(|t| t.to_rfc3339()),
    }
}

fn admin_event(principal: &Principal, event_type: &'static str, target: (String, String)) -> AuditEvent {
    AuditEvent { event_type, action: "configure", target, ..AuditEvent::by(principal) }
}

/// Create a tenant (global admin only).
#[utoipa::path(post, path = "/v1/tenants", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 200, description = "It existed", body = Tenant),
              (status = 400, body = evident_wire::api::Problem), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    request: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let principal = caller.principal;
    let request: CreateTenant = body(&request)?;
    let tenant =
        TenantId::new(&request.id).map_err(|err| ApiError::invalid_param("id", "format", err.to_string()))?;
    if !principal.global {
        return Err(auth::deny(
            &state,
            &principal,
            &tenant,
            "only the global admin key creates tenants".into(),
        )
        .await);
    }
    let engine = state.engine.clone();
    let id = tenant.clone();
    let created = tokio::task::spawn_blocking(move || engine.create_tenant(&id, TenantPolicy::default()))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))??;
    let event =
        admin_event(&principal, "evident.admin.tenant_created", ("tenant".into(), tenant.to_string()));
    audit::record(&state, &principal.tenant, event.clone()).await?;
    if created && tenant != principal.tenant {
        audit::record(&state, &tenant, event).await?;
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Tenant { id: tenant.to_string(), origin: state.engine.origin(&tenant), created })))
}

/// List tenants: all for the global admin, its own for other admins.
#[utoipa::path(get, path = "/v1/tenants",
    responses((status = 200, body = TenantList), (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
) -> ApiResult<Json<TenantList>> {
    let principal = caller.principal;
    let tenants = state
        .engine
        .tenants()
        .into_iter()
        .filter(|t| principal.global || *t == principal.tenant)
        .map(|t| t.to_string())
        .collect();
    Ok(Json(TenantList { tenants }))
}

/// Create an API key; the key is in this answer only.
#[utoipa::path(post, path = "/v1/keys", request_body = CreateKey,
    responses((status = 201, body = NewKey), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    request: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    let principal = caller.principal;
    let request: CreateKey = body(&request)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::invalid_param(
            "role",
            "enum",
            "role must be producer, reader, investigator, auditor or admin",
        )
    })?;
    let tenant = match &request.tenant {
        Some(t) => {
            TenantId::new(t).map_err(|err| ApiError::invalid_param("tenant", "format", err.to_string()))?
        }
        None => principal.tenant.clone(),
    };
    if let Some(label) = &request.label
        && (label.chars().count() > 128 || label.chars().any(char::is_control))
    {
        return Err(ApiError::invalid_param(
            "label",
            "length",
            "label must be at most 128 characters, no control characters",
        ));
    }
    require_tenant(&state, &principal, &tenant).await?;
    state.engine.policy(&tenant)?; // the tenant must exist
    let made = auth::new_key(&tenant, role, false, request.label.clone());
    state.engine.store().put_api_key(&made.record)?;
    let mut event =
        admin_event(&principal, "evident.admin.key_created", ("api_key".into(), made.record.key_id.clone()));
    event.action = "grant";
    event.metadata.insert("role".into(), role.as_str().into());
    event.metadata.insert("tenant".into(), tenant.to_string());
    audit::record(&state, &tenant, event).await?;
    Ok((StatusCode::CREATED, Json(NewKey { key: made.key, info: key_info(&made.record) })))
}

/// List API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/keys",
    responses((status = 200, body = KeyList), (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
) -> ApiResult<Json<KeyList>> {
    let principal = caller.principal;
    let scope = (!principal.global).then_some(&principal.tenant);
    let keys = state.engine.store().api_keys(scope)?;
    Ok(Json(KeyList { keys: keys.iter().map(key_info).collect() }))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", params(("key_id" = String, Path)),
    responses((status = 200, body = KeyInfo), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem),
              (status = 409, description = "The last global admin key", body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(key_id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    let principal = caller.principal;
    let store = state.engine.store();
    let record = store.api_key(&key_id)?.ok_or_else(|| ApiError::NotFound(format!("key {key_id}")))?;
    if !principal.global && record.tenant != principal.tenant {
        // Do not reveal that another tenant's key exists.
        return Err(ApiError::NotFound(format!("key {key_id}")));
    }
    // Global keys are managed by global admins only, and the last one stays: without it no tenant
    // can ever be created again (the break-glass path is `evident keys create --global`).
    let _one_at_a_time = GLOBAL_REVOCATION.lock().await;
    if record.global {
        if !principal.global {
            let why = "only a global admin key may revoke a global key".to_owned();
            return Err(auth::deny(&state, &principal, &record.tenant, why).await);
        }
        let engine = state.engine.clone();
        let keys = crate::offload::blocking(move || engine.store().api_keys(None)).await?;
        let active_global = keys.iter().filter(|k| k.global && k.revoked_at.is_none()).count();
        if record.revoked_at.is_none() && active_global <= 1 {
            return Err(ApiError::Conflict(
                "this is the last global admin key; it cannot be revoked. Make another first \
                 (`evident keys create --global --data-dir DIR` on the server), then revoke this one"
                    .into(),
            ));
        }
    }
    store.revoke_api_key(&key_id, evident_wire::Micros::now())?;
    state.key_records.changed(&key_id);
    let mut event = admin_event(&principal, "evident.admin.key_revoked", ("api_key".into(), key_id.clone()));
    event.action = "revoke";
    audit::record(&state, &record.tenant, event).await?;
    let record = store.api_key(&key_id)?.ok_or_else(|| ApiError::NotFound(format!("key {key_id}")))?;
    Ok(Json(key_info(&record)))
}
