//! `/v1/streams`: admins create, list, reposition and delete their tenant's streams out. Each
//! change is an event in the tenant's log (`evident.stream.*`) before it takes effect.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use evident_core::store::{StreamRow, TenantId};
use evident_wire::Micros;
use evident_wire::streams::{CreateStream, Position, StreamList, StreamView};
use serde_json::{Value, json};

use super::dest::Destination;
use super::render::Format;
use super::{Spec, Status, StreamFilter, spec_of, status_of};
use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::detect_api::{Body, json_body};
use crate::error::{ApiError, ApiResult};

fn view(row: &StreamRow, tree_size: u64) -> StreamView {
    let spec = spec_of(row);
    let Status { delivered, last_delivered_at, failures, last_error, last_error_at } = status_of(row);
    let destination = spec.as_ref().map(|s| s.destination.as_str()).unwrap_or("");
    StreamView {
        id: row.id.clone(),
        format: spec.as_ref().map_or("", |s| s.format.as_str()).to_owned(),
        destination: Destination::parse(destination, true).map(|d| d.display()).unwrap_or_default(),
        filter: spec.as_ref().map_or(Value::Null, |s| filter_json(&s.filter)),
        token_set: spec.as_ref().is_some_and(|s| s.token.is_some()),
        cursor: row.cursor,
        tree_size,
        lag: tree_size.saturating_sub(row.cursor),
        delivered,
        last_delivered_at,
        failures,
        last_error,
        last_error_at,
        created_at: spec.as_ref().map(|s| s.created_at.clone()).unwrap_or_default(),
        created_by: spec.map(|s| s.created_by).unwrap_or_default(),
    }
}

fn filter_json(filter: &StreamFilter) -> Value {
    let mut object: serde_json::Map<String, Value> =
        filter.search.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    if filter.findings_only {
        object.insert("findings_only".into(), json!(true));
    }
    Value::Object(object)
}

/// The request's filter object: `findings_only` and search filters (strings), each checked.
fn parse_filter(filter: Option<&Value>) -> ApiResult<StreamFilter> {
    let Some(filter) = filter.filter(|f| !f.is_null()) else { return Ok(StreamFilter::default()) };
    let object =
        filter.as_object().ok_or_else(|| ApiError::invalid_param("filter", "format", "an object"))?;
    let mut parsed = StreamFilter::default();
    for (name, value) in object {
        if name == "findings_only" {
            parsed.findings_only = value
                .as_bool()
                .ok_or_else(|| ApiError::invalid_param("filter.findings_only", "format", "true or false"))?;
            continue;
        }
        let text = value
            .as_str()
            .ok_or_else(|| ApiError::invalid_param(&format!("filter.{name}"), "format", "a string"))?;
        parsed.search.insert(name.clone(), text.to_owned());
    }
    parsed
        .filter()
        .map_err(|err| ApiError::invalid_param(&format!("filter.{}", err.name), err.rule, err.reason))?;
    Ok(parsed)
}

/// The checked parts of a new stream.
async fn checked_spec(state: &AppState, request: &CreateStream, created_by: String) -> ApiResult<Spec> {
    let format = Format::parse(&request.format).ok_or_else(|| {
        ApiError::invalid_param("format", "enum", "ocsf, cef, rfc5424, cloudevents or json")
    })?;
    let allow_private = state.streams.allow_private();
    if request.destination.len() > 2000 {
        return Err(ApiError::invalid_param("destination", "length", "at most 2000 characters"));
    }
    let destination = Destination::parse(&request.destination, allow_private)
        .map_err(|reason| ApiError::invalid_param("destination", "format", reason))?;
    let port = match &destination {
        Destination::Syslog { port, .. } | Destination::Nats { port, .. } => *port,
        Destination::Http { url, .. } => url.port_or_known_default().unwrap_or(443),
    };
    super::dest::checked_addresses(&destination.host(), port, allow_private)
        .await
        .map_err(|refused| ApiError::invalid_param("destination", "destination", refused.0))?;
    let token = request.token.clone();
    if token.as_ref().is_some_and(|t| t.is_empty() || t.len() > 1000 || t.chars().any(char::is_control)) {
        return Err(ApiError::invalid_param(
            "token",
            "format",
            "1 to 1000 characters without control characters",
        ));
    }
    Ok(Spec {
        format,
        destination: request.destination.clone(),
        token,
        filter: parse_filter(request.filter.as_ref())?,
        created_at: Micros::now().to_rfc3339(),
        created_by,
    })
}

async fn tree_size(state: &AppState, tenant: &TenantId) -> ApiResult<u64> {
    let (store, tenant) = (Arc::clone(state.engine.store()), tenant.clone());
    crate::offload::blocking(move || store.head(&tenant).map(|h| h.map_or(0, |h| h.size.0))).await
}

/// Create a stream out (admin): renders the tenant's events and delivers them, at least once.
#[utoipa::path(post, path = "/v1/streams", request_body = CreateStream,
    responses((status = 201, body = StreamView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_stream(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    body: Body,
) -> ApiResult<(StatusCode, Json<StreamView>)> {
    let principal = caller.principal;
    let request: CreateStream = json_body(body)?;
    let spec = checked_spec(&state, &request, principal.actor_id()).await?;
    let tenant = principal.tenant.clone();
    let size = tree_size(&state, &tenant).await?;
    let start = request.start.unwrap_or(0);
    if start > size {
        return Err(ApiError::invalid_param("start", "range", format!("at most the log's size, {size}")));
    }
    let id = format!("str_{}", uuid::Uuid::now_v7().simple());
    let destination = Destination::parse(&spec.destination, true).map(|d| d.display()).unwrap_or_default();
    let event = AuditEvent {
        event_type: "evident.stream.created",
        action: "configure",
        target: ("stream".to_owned(), id.clone()),
        metadata: BTreeMap::from([
            ("format".to_owned(), spec.format.as_str().to_owned()),
            ("destination".to_owned(), destination),
            ("filter".to_owned(), filter_json(&spec.filter).to_string()),
            ("start".to_owned(), start.to_string()),
        ]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &tenant, event).await?;
    let row = StreamRow {
        id,
        tenant,
        spec: serde_json::to_vec(&spec).expect("serialises"),
        cursor: start,
        status: serde_json::to_vec(&Status::default()).expect("serialises"),
    };
    let (store, stored) = (Arc::clone(state.engine.store()), row.clone());
    crate::offload::blocking(move || store.create_stream(&stored)).await?;
    Ok((StatusCode::CREATED, Json(view(&row, size))))
}

/// List the tenant's streams with their cursors, lag and last error (admin).
#[utoipa::path(get, path = "/v1/streams",
    responses((status = 200, body = StreamList), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_streams(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
) -> ApiResult<Json<StreamList>> {
    let tenant = caller.principal.tenant.clone();
    let size = tree_size(&state, &tenant).await?;
    let (store, who) = (Arc::clone(state.engine.store()), tenant.clone());
    let rows = crate::offload::blocking(move || store.streams(Some(&who))).await?;
    Ok(Json(StreamList { streams: rows.iter().map(|row| view(row, size)).collect() }))
}

async fn stream_row(state: &AppState, tenant: &TenantId, id: &str) -> ApiResult<StreamRow> {
    let (store, who, wanted) = (Arc::clone(state.engine.store()), tenant.clone(), id.to_owned());
    let rows = crate::offload::blocking(move || store.streams(Some(&who))).await?;
    rows.into_iter()
        .find(|row| row.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no stream {wanted:?}")))
}

/// Delete a stream (admin); what it delivered stays delivered.
#[utoipa::path(delete, path = "/v1/streams/{stream_id}", params(("stream_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_stream(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(stream_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let principal = caller.principal;
    let tenant = principal.tenant.clone();
    let row = stream_row(&state, &tenant, &stream_id).await?;
    let event = AuditEvent {
        event_type: "evident.stream.deleted",
        action: "configure",
        target: ("stream".to_owned(), row.id.clone()),
        metadata: BTreeMap::from([("cursor".to_owned(), row.cursor.to_string())]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &tenant, event).await?;
    let store = Arc::clone(state.engine.store());
    let deleted = crate::offload::blocking(move || store.delete_stream(&row.tenant, &row.id)).await?;
    if !deleted {
        return Err(ApiError::NotFound(format!("no stream {stream_id:?}")));
    }
    Ok(Json(json!({"deleted": stream_id})))
}

/// Restart a stream from a position (admin): the next entry it delivers is `position`.
#[utoipa::path(post, path = "/v1/streams/{stream_id}/position", params(("stream_id" = String, Path)),
    request_body = Position,
    responses((status = 200, body = StreamView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn position_stream(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(stream_id): Path<String>,
    body: Body,
) -> ApiResult<Json<StreamView>> {
    let principal = caller.principal;
    let tenant = principal.tenant.clone();
    let row = stream_row(&state, &tenant, &stream_id).await?;
    let Position { position } = json_body(body)?;
    let size = tree_size(&state, &tenant).await?;
    if position > size {
        return Err(ApiError::invalid_param("position", "range", format!("at most the log's size, {size}")));
    }
    let event = AuditEvent {
        event_type: "evident.stream.positioned",
        action: "configure",
        target: ("stream".to_owned(), row.id.clone()),
        metadata: BTreeMap::from([
            ("from".to_owned(), row.cursor.to_string()),
            ("position".to_owned(), position.to_string()),
        ]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &tenant, event).await?;
    let (store, moved) = (Arc::clone(state.engine.store()), row.clone());
    if !crate::offload::blocking(move || store.position_stream(&moved.tenant, &moved.id, position)).await? {
        return Err(ApiError::NotFound(format!("no stream {stream_id:?}")));
    }
    Ok(Json(view(&StreamRow { cursor: position, ..row }, size)))
}
