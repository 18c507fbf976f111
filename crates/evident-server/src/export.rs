//! `GET /v1/export`: the events matching a query, as of one checkpoint, as an `evident-export/v1`
//! NDJSON stream (header, one line per event with its entry and inclusion proof, and a trailer with
//! a manifest signed by the log's key). The format is described in `evident_client::bundle`. The
//! export is recorded (`evident.audit.export`) before the first byte is sent; a stream cut short
//! lacks its signed trailer and so never verifies.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use evident_core::read::{ExportDigest, export_manifest_text};
use serde_json::{Value, json};

use crate::AppState;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::query::{access, blocking, describe, filter_fields, filter_from, read_event, reader};
use crate::wire::SearchParams;

/// Export the events matching a query as a bundle that verifies offline.
#[utoipa::path(get, path = "/v1/export", params(SearchParams),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
              (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    connect: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let principal = reader(&state, connect, &headers, None).await?;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    for (name, given) in [
        ("order", params.order.is_some()),
        ("limit", params.limit.is_some()),
        ("cursor", params.cursor.is_some()),
    ] {
        if given {
            return Err(ApiError::invalid_param(
                name,
                "unknown_field",
                format!("an export has no {name}: it holds every match"),
            ));
        }
    }
    let filter = filter_from(&params)?;
    let access = access(&state, &principal, &params.purpose).await?;
    let engine = state.engine.clone();
    let tenant = principal.tenant.clone();
    let head = blocking(move || engine.export_head(&tenant)).await?;

    let mut event = read_event(
        &principal,
        "evident.audit.export",
        ("audit_log".into(), principal.tenant.to_string()),
        access,
        &params.purpose,
    );
    event.action = "export";
    event.subject = filter.subject.clone();
    event.metadata = describe(&filter);
    event.metadata.insert("tree_size".into(), head.size.0.to_string());
    audit::record(&state, &principal.tenant, event).await?;

    // The query as the manifest states it: normalised values, only those given.
    let query = Value::Object(
        filter_fields(&filter).into_iter().map(|(name, value)| (name.to_owned(), json!(value))).collect(),
    );

    let origin = state.engine.origin(&principal.tenant);
    let vkey = state.engine.verifier(&principal.tenant)?.to_vkey();
    let header_line = json!({
        "format": "evident-export/v1", "origin": origin, "tree_size": head.size.0,
        "checkpoint": head.checkpoint, "vkey": vkey, "query": query,
    });
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
    let engine = state.engine.clone();
    let tenant = principal.tenant.clone();
    tokio::task::spawn_blocking(move || {
        let line = |value: Value| {
            let mut bytes = serde_json::to_vec(&value).expect("JSON serialises");
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        if sender.blocking_send(line(header_line)).is_err() {
            return;
        }
        let mut digest = ExportDigest::default();
        let mut cursor: Option<String> = None;
        loop {
            let page = engine.export_page(&tenant, &filter, &head, cursor.as_deref(), access);
            let (items, next) = match page {
                Ok(page) => page,
                Err(err) => {
                    tracing::error!(error = %err, "export failed; the stream ends without its manifest");
                    return;
                }
            };
            for item in items {
                digest.add(item.index, &item.entry);
                let mut value = json!({
                    "index": item.index, "event_id": item.event_id.to_string(),
                    "entry": BASE64.encode(&item.entry),
                    "proof": item.proof.iter().map(evident_tlog::Hash::to_base64).collect::<Vec<_>>(),
                    "event": item.event,
                });
                if let Some((salt, part)) = item.personal {
                    value["personal"] = json!({"salt": BASE64.encode(salt), "part": part});
                }
                if sender.blocking_send(line(value)).is_err() {
                    return; // the client went away
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let count = digest.count();
        let text = export_manifest_text(&origin, head.size, count, &digest.finish(), &query);
        match engine.sign_export_manifest(&tenant, &text) {
            Ok(manifest) => {
                let _ = sender.blocking_send(line(json!({ "manifest": manifest })));
            }
            Err(err) => tracing::error!(error = %err, "cannot sign the export manifest"),
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| (Ok::<Bytes, std::io::Error>(bytes), receiver))
    });
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))],
        Body::from_stream(stream),
    )
        .into_response())
}
