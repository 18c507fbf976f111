//! `POST /v1/events`: one event, a JSON array, or NDJSON, optionally gzip-compressed. Answers a
//! result per event, in order: stored and duplicate events with their receipts, rejected ones with
//! every failing field and rule, conflicts with the event they collide with.

use std::io::Read as _;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evident_core::engine::Outcome;
use evident_core::validate::{self, MAX_EVENT_BYTES, Validated};
use serde_json::Value;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use evident_wire::api::{IngestResponse, ItemResult};
use evident_wire::api::{InvalidParam, ItemStatus};
use evident_wire::json;

/// Append audit events.
#[utoipa::path(
    post,
    path = "/v1/events",
    request_body(
        description = "One event object, a JSON array of events, or NDJSON (`application/x-ndjson`); \
                       `Content-Encoding: gzip` accepted",
        content((Object = "application/json"), (String = "application/x-ndjson"))
    ),
    responses(
        (status = 200, description = "Every event stored (or already stored with the same content)", body = IngestResponse),
        (status = 207, description = "Some events were not stored; see each item", body = IngestResponse),
        (status = 400, description = "The (single) event or the body is invalid", body = evident_wire::api::Problem),
        (status = 401, description = "No valid API key", body = evident_wire::api::Problem),
        (status = 403, description = "The key may not append", body = evident_wire::api::Problem),
        (status = 409, description = "The (single) event conflicts with a stored one", body = evident_wire::api::Problem),
        (status = 413, description = "Body, batch or event too large", body = evident_wire::api::Problem),
        (status = 415, description = "Unsupported content type or encoding", body = evident_wire::api::Problem),
        (status = 503, description = "Overloaded or unavailable; retry after `Retry-After`", body = evident_wire::api::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn post_events(
    State(state): State<AppState>,
    caller: Caller<auth::Append>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let principal = caller.principal;
    let limit = state.config.max_body_bytes;
    // Bodies in flight across all requests are bounded: wait for room (or answer 503).
    let _room = crate::budget::reserve(&state, &headers, limit).await?;
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(format!("the body is larger than {limit} bytes")))?;
    let body = decode_body(&headers, raw, limit)?;
    let policy = state.engine.policy(&principal.tenant)?;
    let mut results: Vec<Option<ItemResult>> = Vec::new();
    let mut valid: Vec<Validated> = Vec::new();
    let mut valid_at: Vec<usize> = Vec::new();
    // Each item is validated as it is read and its JSON value dropped: one item in memory at once.
    let mut take = |item: Result<Value, Vec<validate::FieldError>>| match item
        .and_then(|value| validate::validate_event(&value, &policy))
    {
        Ok(validated) => {
            valid_at.push(results.len());
            valid.push(validated);
            results.push(None);
        }
        Err(errors) => {
            results.push(Some(ItemResult::rejected(errors.iter().map(crate::error::invalid_param).collect())))
        }
    };
    let single = read_items(&headers, &body, state.config.max_batch_events, &mut take)?;
    drop(body);
    if results.is_empty() {
        return Err(ApiError::bad_request("the body holds no event"));
    }
    state.metrics.events_received.add(results.len() as u64);
    if !valid.is_empty() {
        let outcomes = state.engine.append_async(&principal.tenant, valid).await?;
        for (at, outcome) in valid_at.into_iter().zip(outcomes) {
            results[at] = Some(item_result(outcome));
        }
    }
    let receipts: Vec<ItemResult> =
        results.into_iter().map(|r| r.expect("every item has a result")).collect();
    state.metrics.tenants.count(&principal.tenant, &receipts);
    if single {
        let item = &receipts[0];
        match item.status {
            ItemStatus::Rejected => {
                let too_large =
                    item.errors.iter().any(|e| e.rule == validate::rule::SIZE && e.name.is_empty());
                if too_large {
                    return Err(ApiError::TooLarge(format!(
                        "the event is larger than {MAX_EVENT_BYTES} bytes"
                    )));
                }
                return Err(ApiError::BadRequest {
                    detail: "the event is invalid".into(),
                    params: item.errors.clone(),
                });
            }
            ItemStatus::Conflict => {
                return Err(ApiError::Conflict(
                    item.errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }
    let all_ok = receipts.iter().all(|r| matches!(r.status, ItemStatus::Stored | ItemStatus::Duplicate));
    let status = if all_ok { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(IngestResponse { receipts })).into_response())
}

fn item_result(outcome: Outcome) -> ItemResult {
    match outcome {
        Outcome::Stored(receipt) => receipt_result(ItemStatus::Stored, receipt),
        Outcome::Duplicate(receipt) => receipt_result(ItemStatus::Duplicate, receipt),
        Outcome::Conflict { existing_event_id, existing_index } => ItemResult {
            status: ItemStatus::Conflict,
            event_id: Some(existing_event_id.to_string()),
            index: Some(existing_index),
            errors: vec![InvalidParam {
                name: "id".into(),
                rule: "conflict".into(),
                reason: format!(
                    "an event with this source and id is stored with other content (event {existing_event_id}, \
                     index {existing_index}); nothing was stored"
                ),
            }],
            ..ItemResult::rejected(Vec::new())
        },
        Outcome::Rejected(reason) => {
            ItemResult::rejected(vec![InvalidParam { name: String::new(), rule: "rejected".into(), reason }])
        }
    }
}

fn receipt_result(status: ItemStatus, receipt: evident_core::engine::Receipt) -> ItemResult {
    ItemResult {
        status,
        event_id: Some(receipt.event_id.to_string()),
        index: Some(receipt.index),
        tree_size: Some(receipt.tree_size),
        checkpoint: Some(receipt.checkpoint.as_str().to_owned()),
        warnings: receipt.warnings,
        errors: Vec::new(),
    }
}

/// Undoes `Content-Encoding: gzip`, never inflating past `limit`.
fn decode_body(headers: &HeaderMap, raw: Bytes, limit: usize) -> ApiResult<Bytes> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|err| ApiError::invalid_param("body", "gzip", format!("not valid gzip: {err}")))?;
            if out.len() > limit {
                return Err(ApiError::TooLarge(format!(
                    "the decompressed body is larger than {limit} bytes"
                )));
            }
            Ok(Bytes::from(out))
        }
        other => Err(ApiError::UnsupportedMediaType(format!("content encoding {other:?}; use gzip or none"))),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    matches!(
        content_type(headers).as_str(),
        "application/x-ndjson" | "application/jsonl" | "application/ndjson"
    )
}

/// Hands each item of a body to `take`, in order (a JSON value, or the errors that make it
/// unreadable), never more than `max_items` and never materialising an item longer than an event
/// may be. Answers whether the body was one event (not an array or NDJSON).
fn read_items(
    headers: &HeaderMap,
    body: &[u8],
    max_items: usize,
    take: &mut dyn FnMut(Result<Value, Vec<validate::FieldError>>),
) -> ApiResult<bool> {
    let too_large = |at: String| validate::FieldError {
        field: at,
        rule: validate::rule::SIZE,
        message: format!("the event is larger than {MAX_EVENT_BYTES} bytes"),
    };
    let too_many =
        || ApiError::TooLarge(format!("more than {max_items} events in one request; at most {max_items}"));
    if is_ndjson(headers) {
        let lines = body.split(|b| *b == b'\n').filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()));
        for (n, line) in lines.enumerate() {
            if n == max_items {
                return Err(too_many());
            }
            take(if line.len() > MAX_EVENT_BYTES {
                Err(vec![too_large(String::new())])
            } else {
                validate::parse_json(line).map_err(|err| vec![err])
            });
        }
        return Ok(false);
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let looks_like_json = matches!(first, Some(b'{' | b'['));
    match content_type(headers).as_str() {
        "" | "application/json" | "text/json" => {}
        other if other.ends_with("+json") => {}
        // `curl -d` sends this by default; a JSON body under it is taken as JSON.
        "application/x-www-form-urlencoded" if looks_like_json => {}
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type {other:?}; use application/json or application/x-ndjson"
            )));
        }
    }
    if first == Some(&b'[') {
        let mut at = 0;
        let mut each = |item: Result<Value, json::ItemError>| {
            take(item.map_err(|err| match err {
                json::ItemError::TooLarge => vec![too_large(format!("[{at}]"))],
                json::ItemError::Invalid(message) => vec![validate::FieldError {
                    field: format!("[{at}]"),
                    rule: validate::rule::JSON,
                    message: format!("invalid JSON: {message}"),
                }],
            }));
            at += 1;
        };
        return match json::for_each_item(body, max_items, MAX_EVENT_BYTES, &mut each) {
            Ok(_) => Ok(false),
            Err(json::ArrayError::TooMany(_)) => Err(too_many()),
            Err(json::ArrayError::Invalid(message)) => {
                let err = validate::FieldError {
                    field: String::new(),
                    rule: validate::rule::JSON,
                    message: format!("invalid JSON: {message}"),
                };
                Err(ApiError::BadRequest {
                    detail: err.message.clone(),
                    params: vec![crate::error::invalid_param(&err)],
                })
            }
        };
    }
    if body.len() > MAX_EVENT_BYTES {
        take(Err(vec![too_large(String::new())]));
        return Ok(true);
    }
    let value = validate::parse_json(body).map_err(|err| ApiError::BadRequest {
        detail: err.message.clone(),
        params: vec![crate::error::invalid_param(&err)],
    })?;
    take(Ok(value));
    Ok(true)
}
