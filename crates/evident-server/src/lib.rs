//! Evident's HTTP API. [`app`] builds the router over an [`AppState`]; the binary serves it.
//!
//! Every request that touches audit data authenticates with an API key, is checked against the
//! key's role and tenant, and is recorded in the tenant's own log (see [`audit`]).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod detect;
pub mod detect_api;
pub mod error;
pub mod export;
pub mod ingest;
pub mod ops;
pub mod query;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use detect::{DetectConfig, Hub};
use evident_core::engine::Engine;
use evident_core::store::TenantId;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted (after decompression).
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_batch_events: usize,
    /// Where failed authentications without a known key are recorded.
    pub default_tenant: TenantId,
    /// A head older than this while events wait makes `/healthz` fail.
    pub stale_checkpoint_secs: u64,
    /// Webhook delivery: attempts and backoff.
    pub detect: DetectConfig,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body_bytes: 16 << 20,
            max_batch_events: 10_000,
            default_tenant: TenantId::new("default").expect("valid"),
            stale_checkpoint_secs: 30,
            detect: DetectConfig::default(),
        }
    }
}

/// Counters of the HTTP layer (the engine keeps its own).
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: ops::Counter,
    pub auth_failures: ops::Counter,
    pub events_received: ops::Counter,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<HttpStats>,
    pub started: Instant,
    /// Detection: rules, findings, webhooks (the [`detect::Detector`] task feeds it).
    pub detect: Arc<Hub>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> AppState {
        let detect = Arc::new(Hub::new(engine.store(), config.detect.clone()));
        AppState {
            detect,
            engine,
            config: Arc::new(config),
            metrics: Arc::new(HttpStats::default()),
            started: Instant::now(),
        }
    }
}

/// The client's address (the server must be run with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
pub(crate) fn client_ip(connect: ConnectInfo<SocketAddr>, _headers: &HeaderMap) -> Option<IpAddr> {
    Some(connect.0.ip())
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(ingest::post_events).get(query::search))
        .route("/v1/events/{event_id}", get(query::get_event))
        .route("/v1/events/{event_id}/proof", get(query::get_proof))
        .route("/v1/events/{event_id}/entry", get(query::get_entry))
        .route("/v1/export", get(export::export))
        .route("/v1/subjects/{subject}/timeline", get(query::timeline))
        .route("/v1/records/{record_type}/{record_id}/history", get(query::history))
        .route("/v1/logs/{tenant}/checkpoint", get(query::checkpoint))
        .route("/v1/logs/{tenant}/consistency", get(query::consistency))
        .route("/v1/logs/{tenant}/vkeys", get(query::vkeys))
        .route("/v1/logs/{tenant}/tile/{*path}", get(query::tile))
        .route("/v1/tenants", post(admin::create_tenant).get(admin::list_tenants))
        .route("/v1/keys", post(admin::create_key).get(admin::list_keys))
        .route("/v1/keys/{key_id}", delete(admin::revoke_key))
        .route("/v1/rules", get(detect_api::list_rules).post(detect_api::create_rule))
        .route("/v1/rules/templates", get(detect_api::templates))
        .route("/v1/rules/backtest", post(detect_api::backtest))
        .route(
            "/v1/rules/{rule_id}",
            get(detect_api::get_rule).put(detect_api::put_rule).delete(detect_api::delete_rule),
        )
        .route("/v1/findings", get(detect_api::list_findings))
        .route("/v1/findings/{finding_id}", get(detect_api::get_finding))
        .route("/v1/findings/{finding_id}/status", post(detect_api::set_status))
        .route("/v1/webhooks", get(detect_api::list_webhooks).post(detect_api::create_webhook))
        .route("/v1/webhooks/dead-letters", get(detect_api::dead_letters))
        .route("/v1/webhooks/dead-letters/{delivery_id}/redeliver", post(detect_api::redeliver))
        .route("/v1/webhooks/{webhook_id}", delete(detect_api::delete_webhook))
        .route("/v1/stream", get(detect_api::stream))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::count_requests))
        .with_state(state)
}
