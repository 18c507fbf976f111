//! Reads: search, one event, its receipt, a customer's timeline, a record's history, and each
//! tenant log's C2SP tlog-tiles paths. Every read of event data is recorded in the tenant's log
//! before it is answered; proof material that carries no event content (checkpoints, hash tiles,
//! consistency proofs, verifier keys) is served without a record, so that a client following the
//! log does not make it grow by following it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use evident_core::read::{Access, EventRef, PersonalState};
use evident_core::store::Role;
use evident_tlog::TilePath;
use evident_wire::Micros;
use evident_wire::filter::{Filter, Order};
use serde_json::Value;

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;
use evident_wire::api::{
    ConsistencyParams, ConsistencyProof, EventPage, EventView, FieldChange, History, HistoryParams,
    PageParams, Personal, SearchParams, Version,
};

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> evident_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| ApiError::Internal(format!("task failed: {err}")))?
        .map_err(ApiError::from)
}

/// Personal data only for investigators who state a purpose; others asking for it are refused.
pub(crate) async fn access(
    state: &AppState,
    principal: &Principal,
    purpose: &Option<String>,
) -> ApiResult<Access> {
    let Some(purpose) = purpose else { return Ok(Access::Skeleton) };
    if purpose.trim().is_empty() || purpose.chars().count() > 512 {
        return Err(ApiError::invalid_param("purpose", "length", "purpose must be 1 to 512 characters"));
    }
    if principal.role != Role::Investigator {
        let event = AuditEvent {
            event_type: "evident.access.denied",
            action: "read",
            outcome: "failure",
            reason: Some(format!("role {} may not read personal data", principal.role.as_str())),
            target: ("tenant".into(), principal.tenant.to_string()),
            ..AuditEvent::by(principal)
        };
        audit::record(state, &principal.tenant, event).await?;
        return Err(ApiError::Forbidden("only investigators may read personal data".into()));
    }
    Ok(Access::Personal)
}

pub(crate) fn limit(limit: Option<usize>) -> ApiResult<usize> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=evident_core::read::MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid_param("limit", "range", format!("{n} is not between 1 and 1000"))),
    }
}

fn time(name: &str, text: &Option<String>) -> ApiResult<Option<Micros>> {
    text.as_ref()
        .map(|t| {
            Micros::parse_rfc3339(t)
                .ok_or_else(|| ApiError::invalid_param(name, "format", "not an RFC 3339 time"))
        })
        .transpose()
}

pub(crate) fn view(view: evident_core::read::EventView) -> EventView {
    EventView {
        index: view.index,
        event_id: view.event_id.to_string(),
        personal: match view.personal {
            PersonalState::None => Personal::None,
            PersonalState::Withheld => Personal::Withheld,
            PersonalState::Included => Personal::Included,
            PersonalState::Erased => Personal::Erased,
        },
        event: view.event,
    }
}

/// The audit event of a read: what was read, by whom, and why.
pub(crate) fn read_event(
    principal: &Principal,
    kind: &'static str,
    target: (String, String),
    personal: Access,
    purpose: &Option<String>,
) -> AuditEvent {
    AuditEvent {
        event_type: kind,
        action: if kind == "evident.audit.search" { "search" } else { "read" },
        target,
        reason: purpose.clone(),
        data_classes: if personal == Access::Personal { vec!["pii"] } else { Vec::new() },
        ..AuditEvent::by(principal)
    }
}

/// Search events.
#[utoipa::path(get, path = "/v1/events", params(SearchParams),
    responses((status = 200, body = EventPage), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EventPage>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let filter = params.filter()?;
    let access = access(&state, &principal, &params.purpose).await?;
    let (order, limit) = (Order::parse(params.order.as_deref())?, limit(params.limit)?);
    let (engine, tenant, cursor) = (state.engine.clone(), principal.tenant.clone(), params.cursor.clone());
    let filter_for_query = filter.clone();
    let page =
        blocking(move || engine.search(&tenant, &filter_for_query, order, cursor.as_deref(), limit, access))
            .await?;
    let mut event = read_event(
        &principal,
        "evident.audit.search",
        ("audit_log".into(), principal.tenant.to_string()),
        access,
        &params.purpose,
    );
    event.subject = filter.subject.clone();
    event.metadata = describe(&filter);
    event.metadata.insert("results".into(), page.items.len().to_string());
    audit::record(&state, &principal.tenant, event).await?;
    Ok(Json(EventPage { events: page.items.into_iter().map(view).collect(), next_cursor: page.next_cursor }))
}

/// The metadata of a search's or an export's audit record: `filter.<name>` per given filter.
pub(crate) fn describe(filter: &Filter) -> BTreeMap<String, String> {
    filter.pairs().into_iter().map(|(name, value)| (format!("filter.{name}"), value)).collect()
}

/// A path segment that names an identifier events hold (refused by name if none could).
fn identifier(name: &str, value: &str, max: usize) -> ApiResult<()> {
    evident_wire::filter::identifier(name, value, max)?;
    Ok(())
}

fn event_ref(text: &str) -> ApiResult<EventRef> {
    uuid::Uuid::parse_str(text)
        .map(EventRef::Id)
        .map_err(|_| ApiError::invalid_param("event_id", "format", "not a UUID"))
}

/// One event.
#[utoipa::path(get, path = "/v1/events/{event_id}",
    params(("event_id" = String, Path, description = "The event id (UUIDv7) the service assigned"),
           ("purpose" = Option<String>, Query, description = "Investigators: why personal data is needed")),
    responses((status = 200, body = EventView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_event(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path(event_id): Path<String>,
    query: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EventView>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let access = access(&state, &principal, &params.purpose).await?;
    let which = event_ref(&event_id)?;
    let (engine, tenant) = (state.engine.clone(), principal.tenant.clone());
    let found = blocking(move || engine.event(&tenant, which, access)).await;
    let mut event = read_event(
        &principal,
        "evident.audit.read",
        ("event".into(), event_id.clone()),
        access,
        &params.purpose,
    );
    if let Ok(found) = &found {
        event.subject = found.event.get("subject").and_then(Value::as_str).map(str::to_owned);
    } else {
        event.outcome = "failure";
        event.reason = Some("not found".into());
    }
    audit::record(&state, &principal.tenant, event).await?;
    Ok(Json(view(found?)))
}

/// The exact entry bytes the log committed to for an event (its canonical skeleton, no personal
/// values): what a receipt's inclusion proof is checked against.
#[utoipa::path(get, path = "/v1/events/{event_id}/entry",
    params(("event_id" = String, Path, description = "The event id (UUIDv7) the service assigned")),
    responses((status = 200, content_type = "application/json", body = Object), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_entry(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path(event_id): Path<String>,
) -> ApiResult<Response> {
    let principal = caller.principal;
    let which = event_ref(&event_id)?;
    let (engine, tenant) = (state.engine.clone(), principal.tenant.clone());
    let found = blocking(move || engine.event(&tenant, which, Access::Skeleton)).await?;
    let mut event = read_event(
        &principal,
        "evident.audit.read",
        ("event_entry".into(), event_id),
        Access::Skeleton,
        &None,
    );
    event.subject = found.event.get("subject").and_then(Value::as_str).map(str::to_owned);
    audit::record(&state, &principal.tenant, event).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], found.entry).into_response())
}

/// The `c2sp.org/tlog-proof@v1` receipt of an event at the latest checkpoint.
#[utoipa::path(get, path = "/v1/events/{event_id}/proof",
    params(("event_id" = String, Path, description = "The event id (UUIDv7) the service assigned")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_proof(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path(event_id): Path<String>,
) -> ApiResult<Response> {
    let principal = caller.principal;
    let which = event_ref(&event_id)?;
    let (engine, tenant) = (state.engine.clone(), principal.tenant.clone());
    let proof = blocking(move || engine.receipt(&tenant, which)).await?;
    let event = read_event(
        &principal,
        "evident.audit.read",
        ("event_proof".into(), event_id),
        Access::Skeleton,
        &None,
    );
    audit::record(&state, &principal.tenant, event).await?;
    Ok(text(proof.to_text()))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], body).into_response()
}

/// Everything that concerns one data subject (customer).
#[utoipa::path(get, path = "/v1/subjects/{subject}/timeline",
    params(("subject" = String, Path), PageParams),
    responses((status = 200, body = EventPage), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path(subject): Path<String>,
    query: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<EventPage>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    identifier("subject", &subject, 256)?;
    let access = access(&state, &principal, &params.purpose).await?;
    let (order, limit) = (Order::parse(params.order.as_deref())?, limit(params.limit)?);
    let (engine, tenant, cursor, who) =
        (state.engine.clone(), principal.tenant.clone(), params.cursor.clone(), subject.clone());
    let page =
        blocking(move || engine.timeline(&tenant, &who, order, cursor.as_deref(), limit, access)).await?;
    let mut event = read_event(
        &principal,
        "evident.audit.read",
        ("subject_timeline".into(), subject.clone()),
        access,
        &params.purpose,
    );
    event.subject = Some(subject);
    audit::record(&state, &principal.tenant, event).await?;
    Ok(Json(EventPage { events: page.items.into_iter().map(view).collect(), next_cursor: page.next_cursor }))
}

/// A record's versions, rebuilt from `changes`; with `at`, the version in force then; with `from`
/// and `to`, the diff between two versions.
#[utoipa::path(get, path = "/v1/records/{record_type}/{record_id}/history",
    params(("record_type" = String, Path), ("record_id" = String, Path), HistoryParams),
    responses((status = 200, body = History), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path((record_type, record_id)): Path<(String, String)>,
    query: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<History>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    identifier("record_type", &record_type, 128)?;
    identifier("record_id", &record_id, 256)?;
    let access = access(&state, &principal, &params.purpose).await?;
    let at = time("at", &params.at)?;
    let (engine, tenant, t, i) =
        (state.engine.clone(), principal.tenant.clone(), record_type.clone(), record_id.clone());
    let history = blocking(move || engine.record_history(&tenant, &t, &i, access)).await?;
    let diff = match (params.from, params.to) {
        (Some(from), Some(to)) => Some(history.diff(from, to).map_err(ApiError::from)?),
        (None, None) => None,
        _ => return Err(ApiError::invalid_param("from", "conditional", "from and to go together")),
    };
    let event = read_event(
        &principal,
        "evident.audit.read",
        (record_type.clone(), record_id.clone()),
        access,
        &params.purpose,
    );
    audit::record(&state, &principal.tenant, event).await?;
    let change = |c: evident_core::history::FieldChange| FieldChange {
        field: c.field,
        before: c.before,
        after: c.after,
    };
    Ok(Json(History {
        record_type,
        record_id,
        values: history.values,
        at_version: at.and_then(|at| history.at(at).map(|v| v.number)),
        diff: diff.map(|d| d.into_iter().map(change).collect()),
        versions: history
            .versions
            .into_iter()
            .map(|v| Version {
                number: v.number,
                index: v.index,
                event_id: v.event_id.to_string(),
                time: v.time,
                action: v.action,
                actor: v.actor,
                reason: v.reason,
                changes: v.changes.into_iter().map(change).collect(),
                state: v.state,
            })
            .collect(),
    }))
}

/// The latest signed checkpoint of a tenant's log (C2SP tlog-checkpoint).
#[utoipa::path(get, path = "/v1/logs/{tenant}/checkpoint", params(("tenant" = String, Path, description = "The tenant id; a key reads its own tenant only", example = "default")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn checkpoint(State(state): State<AppState>, caller: Caller<auth::Read>) -> ApiResult<Response> {
    let principal = caller.principal;
    let engine = state.engine.clone();
    let head = blocking(move || engine.checkpoint(&principal.tenant)).await?;
    let (_, note) = head.ok_or_else(|| ApiError::NotFound("the log is empty".into()))?;
    let mut response = text(note);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// A consistency proof between two sizes of a tenant's log.
#[utoipa::path(get, path = "/v1/logs/{tenant}/consistency", params(("tenant" = String, Path, description = "The tenant id; a key reads its own tenant only", example = "default"), ConsistencyParams),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<ConsistencyParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ConsistencyProof>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let engine = state.engine.clone();
    let (from, to) = (params.from, params.to);
    let proof = blocking(move || engine.consistency_proof(&principal.tenant, from, to)).await?;
    Ok(Json(ConsistencyProof { from, to, proof: proof.iter().map(evident_tlog::Hash::to_base64).collect() }))
}

/// The keys that verify a tenant's checkpoints, one vkey per line.
#[utoipa::path(get, path = "/v1/logs/{tenant}/vkeys", params(("tenant" = String, Path, description = "The tenant id; a key reads its own tenant only", example = "default")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn vkeys(State(state): State<AppState>, caller: Caller<auth::Read>) -> ApiResult<Response> {
    let principal = caller.principal;
    // The current key first, then retired ones (checkpoints signed before a rotation).
    let vkeys: String =
        state.engine.verifiers(&principal.tenant)?.iter().map(|v| format!("{}\n", v.to_vkey())).collect();
    Ok(text(vkeys))
}

/// C2SP tlog-tiles: `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`.
#[utoipa::path(get, path = "/v1/logs/{tenant}/tile/{path}",
    params(("tenant" = String, Path, description = "The tenant id; a key reads its own tenant only", example = "default"), ("path" = String, Path, description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`", example = "0/000.p/1")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 400, body = evident_wire::api::Problem), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn tile(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path((_tenant, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let principal = caller.principal;
    let parsed = TilePath::parse(&format!("tile/{path}"))
        .map_err(|err| ApiError::invalid_param("path", "format", err.to_string()))?;
    let engine = state.engine.clone();
    let tenant_id = principal.tenant.clone();
    let (bytes, partial) = match parsed {
        TilePath::Hashes(tile) => (blocking(move || engine.tile(&tenant_id, tile)).await?, tile.is_partial()),
        TilePath::Entries(bundle) => {
            // `BundleId::leaf_range` shifts the index left by 8 bits: an index of 2^56 or more
            // would wrap to another bundle (or overflow). No log reaches that far.
            let end = bundle.index.checked_mul(256).and_then(|start| start.checked_add(bundle.width.into()));
            if end.is_none() {
                return Err(ApiError::NotFound(format!("entry bundle {} is beyond the log", bundle.path())));
            }
            let bytes = blocking(move || engine.entry_bundle(&tenant_id, bundle)).await?;
            let range = bundle.leaf_range();
            let mut event = read_event(
                &principal,
                "evident.audit.export",
                ("entry_bundle".into(), bundle.path()),
                Access::Skeleton,
                &None,
            );
            event.action = "export";
            event.metadata.insert("entries".into(), format!("{}..{}", range.start, range.end));
            audit::record(&state, &principal.tenant, event).await?;
            (bytes, bundle.width < evident_tlog::TILE_WIDTH)
        }
    };
    let cache = if partial { "no-cache" } else { "public, max-age=31536000, immutable" };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response())
}
