//! Evident's HTTP API. [`app`] builds the router over an [`AppState`]; the binary serves it.
//!
//! Every request that touches audit data authenticates with an API key, is checked against the
//! key's role and tenant, and is recorded in the tenant's own log (see [`audit`]).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod budget;
pub mod console;
pub mod counter;
pub mod detect;
pub mod detect_api;
pub mod error;
pub mod export;
pub mod health;
pub mod ingest;
pub mod insight;
pub mod offload;
pub mod ops;
pub mod outbound;
pub mod outstream;
pub mod principal;
pub mod privacy;
pub mod query;
pub mod ratelimit;
pub mod report_html;
pub mod streams;
pub mod timestamps;
pub mod witness;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use detect::{DetectConfig, Hub};
use evident_core::engine::Engine;
use evident_core::store::TenantId;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// With it as bearer credential, `/metrics` adds series labelled by tenant
    /// (`EVIDENT_METRICS_TOKEN`); without it nobody sees tenant names there.
    pub metrics_token: Option<String>,
    /// Failed authentications of one kind from one address are recorded once per window and
    /// counted in between (`ratelimit.rs`).
    pub auth_failure_window: std::time::Duration,
    /// Failed authentications an address may make at once before it is answered 429.
    pub auth_failure_burst: u32,
    /// How often an open SSE stream checks that its key is still valid (`streams.rs`).
    pub stream_recheck: std::time::Duration,
    /// Bytes of request bodies in memory across all requests (`budget.rs`).
    pub max_inflight_bytes: usize,
    /// Streams out to SIEMs: polling, batches, backoff, the extra CA file (`outstream/`).
    pub outstream: outstream::StreamConfig,
    /// Console sessions: cookie flags and expiry (`console/session.rs`).
    pub console: console::session::ConsoleConfig,
    /// Trusted time: the TSA checkpoints are timestamped by, if any (`timestamps.rs`).
    pub tsa: Option<timestamps::TsaConfig>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body_bytes: 16 << 20,
            max_batch_events: 10_000,
            default_tenant: TenantId::new("default").expect("valid"),
            stale_checkpoint_secs: 30,
            detect: DetectConfig::default(),
            metrics_token: None,
            auth_failure_window: std::time::Duration::from_secs(60),
            auth_failure_burst: ratelimit::FAILURE_BURST,
            stream_recheck: std::time::Duration::from_secs(5),
            max_inflight_bytes: 128 << 20,
            outstream: outstream::StreamConfig::default(),
            console: console::session::ConsoleConfig::default(),
            tsa: None,
        }
    }
}

/// Counters of the HTTP layer (the engine keeps its own).
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: counter::Counter,
    pub auth_failures: counter::Counter,
    pub events_received: counter::Counter,
    /// Per tenant: items received over HTTP and how each was answered (`health.rs`).
    pub tenants: health::TenantCounts,
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
    /// Failed authentications, counted per address (`ratelimit.rs`).
    pub auth_failures: Arc<ratelimit::AuthFailures>,
    /// Set to `true` when the server begins to stop: long-lived answers end (`streams.rs`).
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Room for request bodies across requests (`budget.rs`).
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// Streams out: settings, TLS, counters (`outstream/`; the [`outstream::Streamer`] delivers).
    pub streams: Arc<outstream::Streams>,
    /// Console sessions and sign-in links (`console/session.rs`).
    pub console: Arc<console::session::Sessions>,
    /// API key records read by authentication (`auth.rs`).
    pub key_records: Arc<auth::KeyRecords>,
}

impl AppState {
    /// [`AppState::try_new`] for tests and tools: panics when detection cannot start.
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> AppState {
        AppState::try_new(engine, config).expect("detection starts")
    }

    /// The state of a server; fails when detection's secret cannot be read or opened with the
    /// engine's master key (it is never replaced).
    pub fn try_new(engine: Arc<Engine>, config: ServerConfig) -> Result<AppState, evident_core::Error> {
        let detect = Arc::new(Hub::new(engine.store(), engine.master_key(), config.detect.clone())?);
        Ok(AppState {
            detect,
            auth_failures: Arc::new(ratelimit::AuthFailures::new(
                config.auth_failure_window,
                config.auth_failure_burst,
            )),
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
            inflight: Arc::new(budget::room(config.max_inflight_bytes)),
            streams: Arc::new(outstream::Streams::new(
                config.outstream.clone(),
                config.detect.allow_private_destinations,
            )),
            console: Arc::default(),
            key_records: Arc::new(auth::KeyRecords::new(engine.store().cluster().is_none())),
            engine,
            config: Arc::new(config),
            metrics: Arc::new(HttpStats::default()),
            started: Instant::now(),
        })
    }
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let (router, _) = endpoints().split_for_parts();
    router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::count_requests))
        .with_state(state)
}

/// The OpenAPI document of [`app`]: made from the same table, so no endpoint is missing from it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    endpoints().into_openapi()
}

/// Every endpoint, once: each `routes!` group shares one path, and the path, method, parameters
/// and answers come from the handler's `#[utoipa::path]`. The one exception is the tile route,
/// whose `{*path}` wildcard OpenAPI cannot spell: it is routed here and documented in
/// [`ops::ApiDoc`].
fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ops::ApiDoc::openapi())
        .routes(routes!(ingest::post_events, query::search))
        .routes(routes!(query::get_event))
        .routes(routes!(query::get_proof))
        .routes(routes!(query::get_entry))
        .routes(routes!(export::export))
        .routes(routes!(query::timeline))
        .routes(routes!(query::history))
        .routes(routes!(query::checkpoint))
        .routes(routes!(query::consistency))
        .routes(routes!(health::log_health))
        .routes(routes!(query::vkeys))
        .routes(routes!(timestamps::get_timestamp))
        .route("/v1/logs/{tenant}/tile/{*path}", get(query::tile))
        .routes(routes!(admin::create_tenant, admin::list_tenants))
        .routes(routes!(admin::create_key, admin::list_keys))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(detect_api::list_rules, detect_api::create_rule))
        .routes(routes!(detect_api::templates))
        .routes(routes!(detect_api::backtest))
        .routes(routes!(detect_api::get_rule, detect_api::put_rule, detect_api::delete_rule))
        .routes(routes!(detect_api::list_findings))
        .routes(routes!(detect_api::get_finding))
        .routes(routes!(detect_api::set_status))
        .routes(routes!(detect_api::list_webhooks, detect_api::create_webhook))
        .routes(routes!(detect_api::dead_letters))
        .routes(routes!(detect_api::redeliver))
        .routes(routes!(detect_api::delete_webhook))
        .routes(routes!(detect_api::stream))
        .routes(routes!(privacy::erase))
        .routes(routes!(privacy::get_settings, privacy::put_settings))
        .routes(routes!(privacy::create_hold, privacy::list_holds))
        .routes(routes!(privacy::release_hold))
        .routes(routes!(privacy::get_retention, privacy::put_retention))
        .routes(routes!(privacy::report))
        .routes(routes!(privacy::personal_search))
        .routes(routes!(outstream::api::create_stream, outstream::api::list_streams))
        .routes(routes!(outstream::api::delete_stream))
        .routes(routes!(outstream::api::position_stream))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(insight::trend))
        .routes(routes!(insight::funnel))
        .routes(routes!(insight::journeys))
        .routes(routes!(insight::cohorts))
        .routes(routes!(insight::measure))
        .routes(routes!(insight::get_settings, insight::put_settings))
        .routes(routes!(console::index))
        .routes(routes!(console::asset))
        .routes(routes!(console::get_session, console::sign_in, console::sign_out))
        .routes(routes!(console::create_link))
}
