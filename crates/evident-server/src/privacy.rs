//! Privacy endpoints, for the `privacy` role and admins: erasure of a data subject (GDPR Art. 17)
//! and legal holds (which stop erasure). Each action is an event in the tenant's own log
//! (`evident.privacy.*`), recorded before it takes effect.
//!
//! Erasure destroys the subject's data key (`Engine::erase_subject`): every personal part sealed
//! under it becomes unreadable, while every leaf, proof, receipt and export stays valid. Other nodes
//! stop using a cached copy of the key within `EngineConfig::key_cache_ttl`, which the answer states.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use evident_core::engine::Outcome;
use evident_core::privacy::holds::{self, Hold, Release, Scope};
use evident_wire::privacy::{CreateHold, EraseRequest, Erasure, HoldList, HoldView, ReleaseHold};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::query::blocking;

/// A JSON body, whatever content type it came with, every unknown field refused by name.
fn body<T: serde::de::DeserializeOwned>(bytes: &axum::body::Bytes) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::invalid_param("body", "json", format!("invalid request body: {err}")))
}

/// A required free-text field: 1 to `max` characters, no control characters.
fn required_text(name: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_param(
            name,
            "length",
            format!("{name} is required: 1 to {max} characters, no control characters"),
        ));
    }
    Ok(())
}

/// Erase a data subject: its data key is destroyed, so its personal values cannot be read again
/// anywhere, while every proof stays valid. Recorded as `evident.privacy.erased`.
#[utoipa::path(post, path = "/v1/subjects/{subject}/erasure", request_body = EraseRequest,
    params(("subject" = String, Path, description = "The data subject's pseudonymous id")),
    responses((status = 200, body = Erasure), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 409, description = "A legal hold covers the subject", body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    Path(subject): Path<String>,
    request: axum::body::Bytes,
) -> ApiResult<Json<Erasure>> {
    let principal = caller.principal;
    evident_wire::filter::identifier("subject", &subject, 256)?;
    let request: EraseRequest = body(&request)?;
    required_text("reason", &request.reason, 2000)?;
    required_text("reference", &request.reference, 256)?;
    let (engine, tenant, who) = (state.engine.clone(), principal.tenant.clone(), subject.clone());
    if let Some(hold) = blocking(move || engine.hold_covering_subject(&tenant, &who)).await? {
        return Err(ApiError::Conflict(format!(
            "legal hold {} covers subject {subject} ({}, reference {}); release it before erasing",
            hold.id, hold.reason, hold.reference
        )));
    }
    let (engine, tenant, who) = (state.engine.clone(), principal.tenant.clone(), subject.clone());
    let key_destroyed = blocking(move || engine.erase_subject(&tenant, &who)).await?;
    let event = AuditEvent {
        event_type: "evident.privacy.erased",
        action: "other",
        // Named as the target, not as the event's subject: the event's own personal part (the
        // caller's address) must not be sealed under a new key of the subject just erased.
        target: ("subject".to_owned(), subject.clone()),
        reason: Some(request.reason),
        metadata: BTreeMap::from([
            ("reference".to_owned(), request.reference),
            ("key_destroyed".to_owned(), key_destroyed.to_string()),
        ]),
        ..AuditEvent::by(&principal)
    };
    let receipt = match audit::record_outcome(&state, &principal.tenant, event).await? {
        Outcome::Stored(receipt) => receipt,
        other => return Err(ApiError::Internal(format!("erasure event was not stored: {other:?}"))),
    };
    Ok(Json(Erasure {
        subject,
        key_destroyed,
        event_id: receipt.event_id.to_string(),
        index: receipt.index,
        erased_at: evident_wire::Micros::now().to_rfc3339(),
        cache_bound_secs: state.engine.key_cache_ttl().as_secs(),
    }))
}

/// Changes of holds on this node, one at a time (each reads, changes and writes the tenant's
/// holds; nodes sharing a store should place holds through one of them).
static HOLD_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn hold_view(hold: Hold) -> HoldView {
    let released = hold.released;
    HoldView {
        id: hold.id,
        scope: hold.scope.to_json(),
        reason: hold.reason,
        reference: hold.reference,
        placed_by: hold.placed_by,
        created_at: hold.created_at,
        active: released.is_none(),
        released_at: released.as_ref().map(|r| r.at.clone()),
        released_by: released.as_ref().map(|r| r.by.clone()),
        release_reason: released.map(|r| r.reason),
    }
}

/// The scope a request names: exactly one of subject, filter, tenant.
fn scope(request: &CreateHold) -> ApiResult<Scope> {
    let named = [request.subject.is_some(), request.filter.is_some(), request.tenant.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        return Err(ApiError::invalid_param(
            "scope",
            "conditional",
            "name exactly one of subject, filter or tenant (true)",
        ));
    }
    if let Some(subject) = &request.subject {
        evident_wire::filter::identifier("subject", subject, 256)?;
        return Ok(Scope::Subject(subject.clone()));
    }
    if let Some(filter) = &request.filter {
        let parsed =
            evident_wire::filter::Filter::from_pairs(filter.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let pairs: Vec<(String, String)> =
            parsed.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if pairs.is_empty() {
            return Err(ApiError::invalid_param(
                "filter",
                "length",
                "a filter hold needs at least one filter",
            ));
        }
        return Ok(Scope::Filter(pairs));
    }
    if request.tenant != Some(true) {
        return Err(ApiError::invalid_param(
            "tenant",
            "enum",
            "tenant must be true to hold the whole tenant",
        ));
    }
    Ok(Scope::Tenant)
}

fn hold_event(
    principal: &crate::principal::Principal,
    event_type: &'static str,
    hold: &Hold,
    reason: &str,
) -> AuditEvent {
    AuditEvent {
        event_type,
        action: "configure",
        target: ("legal_hold".to_owned(), hold.id.clone()),
        reason: Some(reason.to_owned()),
        metadata: BTreeMap::from([
            ("reference".to_owned(), hold.reference.clone()),
            ("scope".to_owned(), hold.scope.to_json().to_string()),
        ]),
        ..AuditEvent::by(principal)
    }
}

/// Place a legal hold on the whole tenant, a subject, or the events a search filter matches.
/// Recorded as `evident.privacy.hold_created`.
#[utoipa::path(post, path = "/v1/holds", request_body = CreateHold,
    responses((status = 201, body = HoldView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_hold(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    request: axum::body::Bytes,
) -> ApiResult<(axum::http::StatusCode, Json<HoldView>)> {
    let principal = caller.principal;
    let request: CreateHold = body(&request)?;
    let scope = scope(&request)?;
    required_text("reason", &request.reason, 2000)?;
    required_text("reference", &request.reference, 256)?;
    let hold = Hold {
        id: holds::new_hold_id(),
        scope,
        reason: request.reason,
        reference: request.reference,
        placed_by: principal.actor_id(),
        created_at: evident_wire::Micros::now().to_rfc3339(),
        released: None,
    };
    let _changing = HOLD_CHANGES.lock().await;
    audit::record(
        &state,
        &principal.tenant,
        hold_event(&principal, "evident.privacy.hold_created", &hold, &hold.reason),
    )
    .await?;
    let (store, tenant, stored) = (state.engine.store().clone(), principal.tenant.clone(), hold.clone());
    blocking(move || {
        let mut all = holds::holds(&*store, &tenant)?;
        all.push(stored);
        holds::put_holds(&*store, &tenant, &all)
    })
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(hold_view(hold))))
}

/// Every legal hold of the tenant, active and released.
#[utoipa::path(get, path = "/v1/holds",
    responses((status = 200, body = HoldList), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_holds(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
) -> ApiResult<Json<HoldList>> {
    let (store, tenant) = (state.engine.store().clone(), caller.principal.tenant.clone());
    let all = blocking(move || holds::holds(&*store, &tenant)).await?;
    Ok(Json(HoldList { holds: all.into_iter().map(hold_view).collect() }))
}

/// Release a legal hold, saying why. Recorded as `evident.privacy.hold_released`.
#[utoipa::path(delete, path = "/v1/holds/{id}", request_body = ReleaseHold,
    params(("id" = String, Path, description = "The hold's id")),
    responses((status = 200, body = HoldView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem), (status = 409, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn release_hold(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    Path(id): Path<String>,
    request: axum::body::Bytes,
) -> ApiResult<Json<HoldView>> {
    let principal = caller.principal;
    let request: ReleaseHold = body(&request)?;
    required_text("reason", &request.reason, 2000)?;
    let _changing = HOLD_CHANGES.lock().await;
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    let mut all = blocking(move || holds::holds(&*store, &tenant)).await?;
    let Some(position) = all.iter().position(|hold| hold.id == id) else {
        return Err(ApiError::NotFound(format!("legal hold {id}")));
    };
    if all[position].released.is_some() {
        return Err(ApiError::Conflict(format!("legal hold {id} was released already")));
    }
    audit::record(
        &state,
        &principal.tenant,
        hold_event(&principal, "evident.privacy.hold_released", &all[position], &request.reason),
    )
    .await?;
    all[position].released = Some(Release {
        by: principal.actor_id(),
        at: evident_wire::Micros::now().to_rfc3339(),
        reason: request.reason,
    });
    let released = all[position].clone();
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    blocking(move || holds::put_holds(&*store, &tenant, &all)).await?;
    Ok(Json(hold_view(released)))
}
