//! `GET /v1/export`: the events matching a query, as of one checkpoint, as an `evident-export/v1`
//! NDJSON stream (header, one line per event with its entry and inclusion proof, and a trailer with
//! a manifest signed by the log's key). The format is `evident_wire::export`. The
//! export is recorded (`evident.audit.export`) before the first byte is sent; a stream cut short
//! lacks its signed trailer and so never verifies.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use evident_wire::export::{EventLine, ExportDigest, Header, manifest_text, trailer_line};

use crate::AppState;
use crate::audit;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::query::{access, blocking, describe, read_event};
use evident_wire::api::SearchParams;

/// Export the events matching a query as a bundle that verifies offline.
#[utoipa::path(get, path = "/v1/export", params(SearchParams),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
              (status = 400, body = evident_wire::api::Problem), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let principal = caller.principal;
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
    let filter = params.filter()?;
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
    let query = filter.to_json();

    let origin = state.engine.origin(&principal.tenant);
    let vkey = state.engine.verifier(&principal.tenant)?.to_vkey();
    let header = Header {
        origin: origin.clone(),
        tree_size: head.size.0,
        checkpoint: head.checkpoint.clone(),
        vkey,
        query: query.as_object().cloned().unwrap_or_default(),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
    let engine = state.engine.clone();
    let tenant = principal.tenant.clone();
    tokio::task::spawn_blocking(move || {
        let line = |mut bytes: Vec<u8>| {
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        if sender.blocking_send(line(header.to_line())).is_err() {
            return;
        }
        let mut digest = ExportDigest::default();
        let mut previous: Option<(u64, String)> = None;
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
                let this = (item.index, item.event_id.to_string());
                let event_line = EventLine {
                    line: 0,
                    index: item.index,
                    event_id: this.1.clone(),
                    entry: item.entry,
                    proof: item.proof,
                    event: item.event,
                    personal: item.personal,
                    previous: previous.replace(this),
                };
                if sender.blocking_send(line(event_line.to_line())).is_err() {
                    return; // the client went away
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let count = digest.count();
        let text = manifest_text(&origin, head.size, count, &digest.finish(), &query);
        match engine.sign_export_manifest(&tenant, &text) {
            Ok(manifest) => {
                let _ = sender.blocking_send(line(trailer_line(&manifest, previous.as_ref())));
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
