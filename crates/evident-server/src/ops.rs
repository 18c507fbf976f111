//! Operations: `/healthz`, Prometheus `/metrics`, the OpenAPI document, request counting.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::AppState;
use crate::error::ApiError;
use evident_wire::api::Health;

pub async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.metrics.requests.inc();
    next.run(request).await
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Fails (503) when the sequencer is not running, the store does not take writes, or events wait
/// while the last commit is older than the configured staleness. Names the tenants this node leads
/// only to a request bearing the metrics token; anyone else learns how many.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, body = Health), (status = 503, body = Health)),
    security((), ("bearer" = [])))]
pub async fn healthz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Any other credential (an API key, a wrong token) is simply not shown the names.
    let named = tenant_labels_allowed(&state, &headers).unwrap_or(false);
    let engine = state.engine.clone();
    let stale_after = state.config.stale_checkpoint_secs as i64 * 1_000_000;
    let node = state.engine.node_id().to_owned();
    let unrecorded = state.detect.unrecorded.load(Ordering::SeqCst);
    let led = state.engine.led_tenants();
    let leading = led.len();
    let leads =
        if named { led.into_iter().map(|(tenant, _)| tenant.to_string()).collect() } else { Vec::new() };
    let problems = tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        if !engine.sequencer_alive() {
            problems.push("the sequencer is not running".to_owned());
        }
        if unrecorded {
            problems.push("detection could not record findings; restart to evaluate again".to_owned());
        }
        if let Err(err) = engine.store().check_writable() {
            // Anyone may ask: the store's own words go to the log only.
            tracing::warn!(error = %err, "health check: the store does not take writes");
            problems.push("the store does not take writes".to_owned());
        }
        let last = engine.stats().last_commit_micros.load(Ordering::Relaxed);
        let now = evident_wire::Micros::now().0;
        let leads_any = !engine.led_tenants().is_empty();
        if leads_any && engine.queue_depth() > 0 && last > 0 && now - last > stale_after {
            problems.push(format!(
                "events are waiting and the latest checkpoint is {} s old",
                (now - last) / 1_000_000
            ));
        }
        problems
    })
    .await
    .unwrap_or_else(|err| {
        tracing::error!(error = %err, "the health check failed");
        vec!["the health check failed".to_owned()]
    });
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status_text = if problems.is_empty() { "ok" } else { "unhealthy" };
    (status, Json(Health { status: status_text.to_owned(), problems, node, leading, leads })).into_response()
}

/// Whether a `/metrics` request may see per-tenant series: only with the metrics token
/// (`EVIDENT_METRICS_TOKEN`) as its bearer credential; a wrong token is refused.
fn tenant_labels_allowed(state: &AppState, headers: &HeaderMap) -> Result<bool, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match (state.config.metrics_token.as_deref(), presented) {
        (Some(token), Some(presented)) => {
            use subtle::ConstantTimeEq as _;
            let equal =
                token.len() == presented.len() && bool::from(token.as_bytes().ct_eq(presented.as_bytes()));
            if equal { Ok(true) } else { Err(ApiError::Unauthenticated) }
        }
        _ => Ok(false),
    }
}

/// Prometheus text exposition. Series naming tenants only with the metrics token.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = evident_wire::api::Problem)),
    security((), ("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let per_tenant = match tenant_labels_allowed(&state, &headers) {
        Ok(allowed) => allowed,
        Err(err) => return err.into_response(),
    };
    let engine = state.engine.clone();
    let http = state.metrics.clone();
    let detect_hub = state.detect.clone();
    let streams = state.streams.clone();
    let body = tokio::task::spawn_blocking(move || {
        let stats = engine.stats();
        let mut out = String::new();
        let index = engine.store().index_progress();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("evident_events_stored_total", "Events durably stored (ingest rate: rate() of this).", stats.events_stored.load(Ordering::Relaxed));
        counter("evident_commits_total", "Group commits that succeeded.", stats.commits.load(Ordering::Relaxed));
        counter("evident_commit_failures_total", "Group commits that failed.", stats.commit_failures.load(Ordering::Relaxed));
        counter("evident_http_requests_total", "HTTP requests received.", http.requests.get());
        counter("evident_http_events_received_total", "Events received over HTTP.", http.events_received.get());
        counter("evident_auth_failures_total", "Failed authentications.", http.auth_failures.get());
        counter("evident_forwarded_events_total", "Events this node put in the shared store's inbox for another node to sequence.", stats.forwarded.load(Ordering::Relaxed));
        counter("evident_inbox_requests_total", "Inbox requests of other nodes this node sequenced.", stats.inbox_requests.load(Ordering::Relaxed));
        counter("evident_lease_takeovers_total", "Times this node took a tenant's lease.", stats.lease_takeovers.load(Ordering::Relaxed));
        let detect = &detect_hub.stats;
        counter("evident_detect_events_evaluated_total", "Events evaluated by detection rules.", detect.events_evaluated.get());
        counter("evident_detect_findings_opened_total", "Findings recorded.", detect.findings_opened.get());
        counter("evident_webhook_deliveries_total", "Webhook deliveries that succeeded.", detect.deliveries_ok.get());
        counter("evident_webhook_delivery_failures_total", "Webhook delivery attempts that failed.", detect.delivery_failures.get());
        counter("evident_webhook_dead_letters_total", "Deliveries that failed every attempt.", detect.dead_letters.get());
        if let Some(index) = index {
            counter("evident_index_throttled_commits_total", "Commits whose acknowledgement waited for the search index to catch up (EVIDENT_INDEX_LAG_ENTRIES).", index.throttled_commits);
        }
        let _ = writeln!(
            out,
            "# HELP evident_queue_depth Events waiting to be sequenced.\n# TYPE evident_queue_depth gauge\nevident_queue_depth {}",
            engine.queue_depth()
        );
        if let Some(index) = index {
            let _ = writeln!(
                out,
                "# HELP evident_search_index_behind_entries Entries stored but not yet in the search index (searches read them from the rows; past EVIDENT_INDEX_LAG_ENTRIES, 16,384 by default, commits wait for the index).\n\
                 # TYPE evident_search_index_behind_entries gauge\nevident_search_index_behind_entries {}",
                index.behind
            );
            let _ = writeln!(
                out,
                "# HELP evident_index_throttled_seconds_total Seconds commits waited for the search index.\n\
                 # TYPE evident_index_throttled_seconds_total counter\nevident_index_throttled_seconds_total {:.3}",
                index.throttled_for.as_secs_f64()
            );
        }
        histogram(&mut out, "evident_batch_size_events", "Events per group commit.", &stats.batch_size);
        histogram(&mut out, "evident_ack_latency_seconds", "Time from submission to durable acknowledgement.", &stats.ack_latency);
        let last = stats.last_commit_micros.load(Ordering::Relaxed);
        let since = if last > 0 { (evident_wire::Micros::now().0 - last) as f64 / 1e6 } else { -1.0 };
        let _ = writeln!(
            out,
            "# HELP evident_seconds_since_last_checkpoint Seconds since the last checkpoint was published (-1: none yet).\n\
             # TYPE evident_seconds_since_last_checkpoint gauge\nevident_seconds_since_last_checkpoint {since:.3}"
        );
        streams.stats.write_metrics(&mut out, per_tenant);
        if !per_tenant {
            return out;
        }
        let _ = writeln!(out, "# HELP evident_leader 1 for each tenant whose log this node sequences.\n# TYPE evident_leader gauge");
        for (tenant, _) in engine.led_tenants() {
            let _ = writeln!(out, "evident_leader{{tenant=\"{tenant}\"}} 1");
        }
        let _ = writeln!(out, "# HELP evident_tree_size Size of each tenant's log.\n# TYPE evident_tree_size gauge");
        for tenant in engine.tenants() {
            let size = engine.checkpoint(&tenant).ok().flatten().map_or(0, |(size, _)| size.0);
            let _ = writeln!(out, "evident_tree_size{{tenant=\"{tenant}\"}} {size}");
        }
        out
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], body).into_response()
}

fn histogram(out: &mut String, name: &str, help: &str, histogram: &evident_core::stats::Histogram) {
    let (buckets, count, sum) = histogram.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, cumulative) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}");
}

/// The OpenAPI document's frame: its info, the bearer scheme, and the tile route (see
/// `endpoints` in the crate root, which adds every other endpoint).
#[derive(OpenApi)]
#[openapi(
    info(title = "Evident", description = "A tamper-evident audit trail for customer data."),
    paths(crate::query::tile),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(crate::openapi)).into_response()
}
