//! Privacy endpoints: erasure of a data subject (GDPR Art. 17), for the `privacy` role and admins.
//! Each action is an event in the tenant's own log (`evident.privacy.*`).
//!
//! Erasure destroys the subject's data key (`Engine::erase_subject`): every personal part sealed
//! under it becomes unreadable, while every leaf, proof, receipt and export stays valid. Other nodes
//! stop using a cached copy of the key within `EngineConfig::key_cache_ttl`, which the answer states.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use evident_core::engine::Outcome;
use evident_wire::privacy::{EraseRequest, Erasure};

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
