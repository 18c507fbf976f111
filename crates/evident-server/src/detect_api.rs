//! The detection API: rules (`/v1/rules`), findings and their workflow (`/v1/findings`),
//! webhooks and dead letters (`/v1/webhooks`), and the live stream (`/v1/stream`, SSE).
//!
//! Who may do what: any reading role (reader, investigator, auditor, admin) lists rules,
//! templates and findings and follows the stream; admins manage rules and webhooks; auditors,
//! investigators and admins work findings (acknowledge, resolve, false positive) and run
//! backtests. Every change is an event in the tenant's log (`evident.rule.*`,
//! `evident.webhook.*`, `evident.finding.*`), and so is every backtest and stream subscription.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use evident_core::store::TenantId;
use evident_detect::finding::{FindingRecord, Status};
use evident_detect::rule::{Rule, Severity};
use evident_detect::workspace::{Editor, RuleChange, TenantWorkspace, Webhook, WebhookChange, check_step};
use evident_wire::Micros;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::detect;
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;

pub(crate) type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> ApiResult<T> {
    let bytes = body.map_err(|err| ApiError::bad_request(err.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::invalid_param("body", "json", format!("invalid request body: {err}")))
}

/// Whether another node sequences the tenant's log (and so runs its detection).
fn led_elsewhere(state: &AppState, tenant: &TenantId) -> bool {
    state.engine.store().cluster().is_some() && !state.engine.led_tenants().iter().any(|(t, _)| t == tenant)
}

/// A tenant's detection to read: this node's own when it leads the tenant, else the store's.
async fn tenant_detect(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantWorkspace>> {
    let (hub, tenant, elsewhere) = (Arc::clone(&state.detect), tenant.clone(), led_elsewhere(state, tenant));
    crate::offload::blocking(move || {
        let workspace = &hub.workspace;
        let detect = if elsewhere { workspace.snapshot(&tenant) } else { workspace.tenant(&tenant) };
        detect.map_err(detect_error)
    })
    .await
}

/// A tenant's detection to change: only on the node that leads the tenant, whose copy is the one
/// written to the store (a change made elsewhere would be overwritten). Elsewhere 503: a client
/// behind a balancer retries and reaches the leader (`/healthz` names the tenants a node leads).
async fn tenant_detect_to_change(state: &AppState, tenant: &TenantId) -> ApiResult<Arc<TenantWorkspace>> {
    if led_elsewhere(state, tenant) {
        return Err(ApiError::Unavailable(format!(
            "node {} does not lead tenant {tenant}; detection settings and findings change on its leader",
            state.engine.node_id()
        )));
    }
    tenant_detect(state, tenant).await
}

/// What detection refuses, as HTTP.
fn detect_error(err: evident_detect::Error) -> ApiError {
    use evident_detect::Error;
    match err {
        Error::InvalidRule { field, reason } => ApiError::invalid_param(&field, "rule", reason),
        Error::Invalid { field, rule, reason } => ApiError::invalid_param(field, rule, reason),
        Error::NotFound(what) => ApiError::NotFound(what),
        Error::Conflict(why) => ApiError::Conflict(why),
        Error::Core(core) => ApiError::from(core),
        Error::State(_) => ApiError::Internal(err.to_string()),
    }
}

fn check_id(name: &str, id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
        return Err(ApiError::NotFound(format!("no such {name}")));
    }
    Ok(())
}

fn digest(value: &impl serde::Serialize) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(value).expect("serialises")))
}

/// A rule change as an event: template, severity and a digest of the whole rule.
fn rule_event(principal: &Principal, change: &RuleChange) -> AuditEvent {
    let rule = change.rule();
    let metadata = BTreeMap::from([
        ("template".to_owned(), rule.template.clone()),
        ("severity".to_owned(), rule.severity.as_str().to_owned()),
        ("enabled".to_owned(), rule.enabled.to_string()),
        ("rule_sha256".to_owned(), digest(rule)),
    ]);
    AuditEvent {
        event_type: change.event_type(),
        action: "configure",
        target: ("detection_rule".to_owned(), rule.id.clone()),
        metadata,
        ..AuditEvent::by(principal)
    }
}

/// Makes a rule change on the node leading the tenant: checked against the current rules,
/// recorded in the tenant's log, then applied, all under the tenant's change lock (a concurrent
/// change waits, then is checked against this one's result).
async fn change_rules(
    state: &AppState,
    principal: &Principal,
    check: impl FnOnce(&Editor<'_>) -> evident_detect::Result<RuleChange>,
) -> ApiResult<()> {
    let detect = tenant_detect_to_change(state, &principal.tenant).await?;
    let mut editor = detect.edit().await;
    let change = check(&editor).map_err(detect_error)?;
    audit::record(state, &principal.tenant, rule_event(principal, &change)).await?;
    crate::offload::in_place(|| editor.apply_rule_change(change)).map_err(detect_error)
}

/// A tenant's detection rules.
#[derive(serde::Serialize, ToSchema)]
pub struct RuleList {
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Rule>,
}

/// List the tenant's rules.
#[utoipa::path(get, path = "/v1/rules",
    responses((status = 200, body = RuleList), (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
) -> ApiResult<Json<RuleList>> {
    let principal = caller.principal;
    let rules = tenant_detect(&state, &principal.tenant).await?.rules();
    Ok(Json(RuleList { rules }))
}

/// The rule templates with their default parameters.
#[utoipa::path(get, path = "/v1/rules/templates",
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn templates(_caller: Caller<auth::Read>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"templates": evident_detect::rule::templates()})))
}

/// One rule.
#[utoipa::path(get, path = "/v1/rules/{rule_id}", params(("rule_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path(rule_id): Path<String>,
) -> ApiResult<Json<Rule>> {
    let principal = caller.principal;
    check_id("rule", &rule_id)?;
    let rule = tenant_detect(&state, &principal.tenant).await?.rule(&rule_id);
    rule.map(Json).ok_or_else(|| ApiError::NotFound(format!("no rule {rule_id:?}")))
}

/// Create a rule (admin).
#[utoipa::path(post, path = "/v1/rules", request_body = Object,
    responses((status = 201, body = Object), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 409, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Rule>)> {
    let principal = caller.principal;
    let rule: Rule = json_body(body)?;
    rule.compile().map_err(detect_error)?;
    change_rules(&state, &principal, |editor| editor.check_create_rule(rule.clone())).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// Replace a rule (admin). The body's `id`, if any, must be the path's.
#[utoipa::path(put, path = "/v1/rules/{rule_id}", params(("rule_id" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn put_rule(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(rule_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Rule>> {
    let principal = caller.principal;
    check_id("rule", &rule_id)?;
    let mut value: Value = json_body(body)?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::invalid_param("body", "json", "a rule is a JSON object"));
    };
    match object.get("id") {
        None => {
            object.insert("id".into(), json!(rule_id));
        }
        Some(id) if id == &json!(rule_id) => {}
        Some(_) => return Err(ApiError::invalid_param("id", "match", "the body's id is not the path's")),
    }
    let rule: Rule = serde_json::from_value(value)
        .map_err(|err| ApiError::invalid_param("body", "json", format!("invalid rule: {err}")))?;
    rule.compile().map_err(detect_error)?;
    change_rules(&state, &principal, |editor| editor.check_replace_rule(rule.clone())).await?;
    Ok(Json(rule))
}

/// Delete a rule (admin).
#[utoipa::path(delete, path = "/v1/rules/{rule_id}", params(("rule_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(rule_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let principal = caller.principal;
    check_id("rule", &rule_id)?;
    change_rules(&state, &principal, |editor| editor.check_delete_rule(&rule_id)).await?;
    Ok(Json(json!({"deleted": rule_id})))
}

/// A backtest request: a rule (or the id of one of the tenant's) and a time range.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    #[schema(value_type = Option<Object>)]
    pub rule: Option<Rule>,
    pub rule_id: Option<String>,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
}

/// Run a rule over a past time range: what it would have found. Creates no findings.
#[utoipa::path(post, path = "/v1/rules/backtest", request_body = BacktestRequest,
    responses((status = 200, body = Object), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn backtest(
    State(state): State<AppState>,
    caller: Caller<auth::Review>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let principal = caller.principal;
    let request: BacktestRequest = json_body(body)?;
    let time = |name: &str, text: &str| {
        Micros::parse_rfc3339(text).ok_or_else(|| ApiError::invalid_param(name, "format", "must be RFC 3339"))
    };
    let (from, to) = (time("from", &request.from)?, time("to", &request.to)?);
    if from >= to {
        return Err(ApiError::invalid_param("to", "range", "`to` must be after `from`"));
    }
    let rule = match (request.rule, request.rule_id) {
        (Some(rule), None) => rule,
        (None, Some(id)) => tenant_detect(&state, &principal.tenant)
            .await?
            .rule(&id)
            .ok_or_else(|| ApiError::NotFound(format!("no rule {id:?}")))?,
        _ => {
            return Err(ApiError::invalid_param(
                "rule",
                "required",
                "give exactly one of `rule` and `rule_id`",
            ));
        }
    };
    rule.compile().map_err(detect_error)?;
    let mut event = AuditEvent {
        event_type: "evident.audit.backtest",
        action: "search",
        target: ("detection_rule".to_owned(), rule.id.clone()),
        metadata: BTreeMap::from([
            ("from".to_owned(), from.to_rfc3339()),
            ("to".to_owned(), to.to_rfc3339()),
            ("template".to_owned(), rule.template.clone()),
        ]),
        ..AuditEvent::by(&principal)
    };
    let (engine, tenant) = (Arc::clone(&state.engine), principal.tenant.clone());
    let report = tokio::task::spawn_blocking(move || {
        evident_detect::backtest::backtest(&engine, &tenant, &rule, from, to)
    })
    .await
    .map_err(|err| ApiError::Internal(format!("task failed: {err}")))?
    .map_err(detect_error)?;
    event.metadata.insert("findings".to_owned(), report.findings.len().to_string());
    audit::record(&state, &principal.tenant, event).await?;
    Ok(Json(json!(report)))
}

/// Filters of `GET /v1/findings`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingParams {
    /// open, acknowledged, resolved, false_positive
    pub status: Option<String>,
    /// info, low, medium, high, critical: this severity or higher
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub actor: Option<String>,
    /// RFC 3339: findings whose last trigger is at or after this time
    pub from: Option<String>,
    /// RFC 3339: ... before this time
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 1000 (default 100)
    pub limit: Option<usize>,
}

/// A page of findings, newest first.
#[derive(serde::Serialize, ToSchema)]
pub struct FindingPage {
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<FindingRecord>,
    pub next_cursor: Option<String>,
}

/// List findings (filters, cursor), newest first.
#[utoipa::path(get, path = "/v1/findings", params(FindingParams),
    responses((status = 200, body = FindingPage), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_findings(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<FindingParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<FindingPage>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::invalid_param("status", "enum", "open, acknowledged, resolved or false_positive")
            })
        })
        .transpose()?;
    let severity = params
        .severity
        .as_deref()
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                ApiError::invalid_param("severity", "enum", "info, low, medium, high or critical")
            })
        })
        .transpose()?;
    let time = |name: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| {
                Micros::parse_rfc3339(t)
                    .ok_or_else(|| ApiError::invalid_param(name, "format", "must be RFC 3339"))
            })
            .transpose()
    };
    let (from, to) = (time("from", &params.from)?, time("to", &params.to)?);
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_param("limit", "range", "between 1 and 1000"));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            let text = B64URL.decode(c).ok().and_then(|b| String::from_utf8(b).ok());
            text.and_then(|t| {
                let (time, id) = t.split_once(':')?;
                Some((time.parse::<i64>().ok()?, id.to_owned()))
            })
            .ok_or_else(|| ApiError::invalid_param("cursor", "format", "not a cursor this service issued"))
        })
        .transpose()?;
    let mut matching = tenant_detect(&state, &principal.tenant).await?.findings(|f| {
        status.is_none_or(|s| f.status == s)
            && severity.is_none_or(|s| f.finding.severity >= s)
            && params.rule.as_ref().is_none_or(|r| &f.finding.rule == r)
            && params.actor.as_ref().is_none_or(|a| f.finding.actor.as_ref() == Some(a))
            && from.is_none_or(|t| f.finding.time >= t.0)
            && to.is_none_or(|t| f.finding.time < t.0)
            && after.as_ref().is_none_or(|(time, id)| (f.finding.time, &f.finding.id) < (*time, id))
    });
    matching.sort_by(|a, b| (b.finding.time, &b.finding.id).cmp(&(a.finding.time, &a.finding.id)));
    let more = matching.len() > limit;
    matching.truncate(limit);
    let next_cursor = more
        .then(|| matching.last().map(|f| B64URL.encode(format!("{}:{}", f.finding.time, f.finding.id))))
        .flatten();
    Ok(Json(FindingPage { findings: matching, next_cursor }))
}

/// One finding with its workflow.
#[utoipa::path(get, path = "/v1/findings/{finding_id}", params(("finding_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_finding(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    Path(finding_id): Path<String>,
) -> ApiResult<Json<FindingRecord>> {
    let principal = caller.principal;
    check_id("finding", &finding_id)?;
    let found = tenant_detect(&state, &principal.tenant).await?.finding(&finding_id);
    found.map(Json).ok_or_else(|| ApiError::NotFound(format!("no finding {finding_id:?}")))
}

/// A step of the workflow.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// acknowledged, resolved or false_positive
    pub status: String,
    /// Required for resolved and false_positive.
    pub comment: Option<String>,
}

/// Move a finding along its workflow: open -> acknowledged -> resolved | false_positive (open
/// may go straight to resolved or false_positive). Recorded as `evident.finding.<status>`.
#[utoipa::path(post, path = "/v1/findings/{finding_id}/status", params(("finding_id" = String, Path)),
    request_body = StatusRequest,
    responses((status = 200, body = Object), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem), (status = 409, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller<auth::Review>,
    Path(finding_id): Path<String>,
    body: Body,
) -> ApiResult<Json<FindingRecord>> {
    let principal = caller.principal;
    check_id("finding", &finding_id)?;
    let request: StatusRequest = json_body(body)?;
    let (to, comment) = check_step(&request.status, request.comment).map_err(detect_error)?;
    let tenant = principal.tenant.clone();
    let detect = tenant_detect_to_change(&state, &tenant).await?;
    let mut editor = detect.edit().await;
    let step = editor.check_status(&finding_id, to, comment).map_err(detect_error)?;
    let event = AuditEvent {
        event_type: step.to.event_type(),
        action: "other",
        target: ("finding".to_owned(), finding_id.clone()),
        reason: step.comment.clone(),
        metadata: BTreeMap::from([
            ("from".to_owned(), step.from.as_str().to_owned()),
            ("to".to_owned(), step.to.as_str().to_owned()),
            ("rule".to_owned(), step.rule.clone()),
        ]),
        ..AuditEvent::by(&principal)
    };
    let event_index = audit::record_idempotent(&state, &tenant, event).await?;
    let answer = crate::offload::in_place(|| editor.apply_status(step, principal.actor_id(), event_index))
        .map_err(detect_error)?;
    Ok(Json(answer))
}

/// A new webhook.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http:// or https:// (https needs a TLS-enabled build)
    pub url: String,
    /// Default low.
    pub min_severity: Option<String>,
    pub description: Option<String>,
}

/// Webhooks, without their secrets.
#[derive(serde::Serialize, ToSchema)]
pub struct WebhookList {
    #[schema(value_type = Vec<Object>)]
    pub webhooks: Vec<Webhook>,
}

/// Register a webhook (admin). The answer holds its signing secret: the only time it is shown.
#[utoipa::path(post, path = "/v1/webhooks", request_body = CreateWebhook,
    responses((status = 201, body = Object), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let principal = caller.principal;
    let request: CreateWebhook = json_body(body)?;
    let url = reqwest::Url::parse(&request.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && request.url.len() <= 2000)
        .ok_or_else(|| ApiError::invalid_param("url", "format", "an absolute http:// or https:// URL"))?;
    crate::outbound::check_destination(&url, state.config.detect.allow_private_destinations)
        .await
        .map_err(|refused| ApiError::invalid_param("url", "destination", refused.0))?;
    let min_severity = match request.min_severity.as_deref() {
        None => Severity::Low,
        Some(s) => Severity::parse(s).ok_or_else(|| {
            ApiError::invalid_param("min_severity", "enum", "info, low, medium, high or critical")
        })?,
    };
    let description = request.description.unwrap_or_default();
    if description.len() > 1000 {
        return Err(ApiError::invalid_param("description", "length", "at most 1000 characters"));
    }
    let tenant = principal.tenant.clone();
    let detect = tenant_detect_to_change(&state, &tenant).await?;
    let mut editor = detect.edit().await;
    let webhook =
        editor.check_create_webhook(url.to_string(), min_severity, description).map_err(detect_error)?;
    let event = AuditEvent {
        event_type: "evident.webhook.created",
        action: "configure",
        target: ("webhook".to_owned(), webhook.id.clone()),
        metadata: BTreeMap::from([
            ("host".to_owned(), url.host_str().unwrap_or_default().to_owned()),
            ("min_severity".to_owned(), min_severity.as_str().to_owned()),
        ]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &tenant, event).await?;
    crate::offload::in_place(|| editor.apply_webhook_change(WebhookChange::Create(webhook.clone())))
        .map_err(detect_error)?;
    let secret = state.detect.workspace.webhook_secret(&tenant, &webhook.id);
    let mut answer = json!(webhook);
    answer["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// List webhooks (admin).
#[utoipa::path(get, path = "/v1/webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
) -> ApiResult<Json<WebhookList>> {
    let principal = caller.principal;
    let webhooks = tenant_detect(&state, &principal.tenant).await?.webhooks();
    Ok(Json(WebhookList { webhooks }))
}

/// Delete a webhook (admin).
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", params(("webhook_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(webhook_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let principal = caller.principal;
    check_id("webhook", &webhook_id)?;
    let tenant = principal.tenant.clone();
    let detect = tenant_detect_to_change(&state, &tenant).await?;
    let mut editor = detect.edit().await;
    let change = editor.check_delete_webhook(&webhook_id).map_err(detect_error)?;
    let event = AuditEvent {
        event_type: "evident.webhook.deleted",
        action: "configure",
        target: ("webhook".to_owned(), webhook_id.clone()),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &tenant, event).await?;
    crate::offload::in_place(|| editor.apply_webhook_change(change)).map_err(detect_error)?;
    Ok(Json(json!({"deleted": webhook_id})))
}

/// Deliveries that failed every attempt (admin).
#[utoipa::path(get, path = "/v1/webhooks/dead-letters",
    responses((status = 200, body = Object), (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
) -> ApiResult<Json<Value>> {
    let principal = caller.principal;
    let letters = tenant_detect(&state, &principal.tenant).await?.dead_letters();
    Ok(Json(json!({"dead_letters": letters})))
}

/// Deliver a dead letter again, with fresh retries (admin). It leaves the list; it comes back if
/// every attempt fails again.
#[utoipa::path(post, path = "/v1/webhooks/dead-letters/{delivery_id}/redeliver", params(("delivery_id" = String, Path)),
    responses((status = 202, body = Object), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 404, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    Path(delivery_id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let principal = caller.principal;
    check_id("dead letter", &delivery_id)?;
    let tenant = principal.tenant.clone();
    let detect = tenant_detect_to_change(&state, &tenant).await?;
    let mut editor = detect.edit().await;
    let redelivery = editor.check_redelivery(&delivery_id).map_err(detect_error)?;
    let event = AuditEvent {
        event_type: "evident.webhook.redelivered",
        action: "other",
        target: ("webhook".to_owned(), redelivery.webhook.id.clone()),
        metadata: BTreeMap::from([("delivery".to_owned(), delivery_id.clone())]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &tenant, event).await?;
    crate::offload::in_place(|| editor.apply_redelivery(&redelivery));
    tokio::spawn(detect::deliver(state.clone(), tenant, redelivery.webhook, redelivery.record));
    Ok((StatusCode::ACCEPTED, Json(json!({"redelivering": delivery_id}))))
}

/// What to stream.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// `findings` (default) or `events` (skeletons, no personal values)
    pub kind: Option<String>,
}

/// Server-Sent Events: new findings (`event: finding`) or new events (`event: event`) of the
/// caller's tenant, as they are committed; keep-alive comments every 15 s. The subscription is
/// recorded (`evident.audit.stream`). The stream ends with `event: revoked` within 5 s of its
/// key's revocation, and with `event: closing` when the server stops.
#[utoipa::path(get, path = "/v1/stream", params(StreamParams),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<StreamParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let principal = caller.principal;
    let Query(params) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let kind = params.kind.unwrap_or_else(|| "findings".into());
    if kind != "findings" && kind != "events" {
        return Err(ApiError::invalid_param("kind", "enum", "findings or events"));
    }
    let event = AuditEvent {
        event_type: "evident.audit.stream",
        action: "read",
        target: ("audit_log".to_owned(), principal.tenant.to_string()),
        metadata: BTreeMap::from([("kind".to_owned(), kind.clone())]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &principal.tenant, event).await?;
    let tenant = principal.tenant.clone();
    let items: futures_util::stream::BoxStream<'static, Result<SseEvent, Infallible>> = if kind == "findings"
    {
        let receiver = state.detect.findings.subscribe();
        Box::pin(futures_util::stream::unfold((receiver, tenant), |(mut receiver, tenant)| async move {
            loop {
                match receiver.recv().await {
                    Ok(notice) if notice.0 == tenant => {
                        let event = SseEvent::default()
                            .event("finding")
                            .id(notice.1.finding.id.clone())
                            .data(serde_json::to_string(&notice.1).unwrap_or_default());
                        return Some((Ok(event), (receiver, tenant)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let event = SseEvent::default().event("lagged").data(missed.to_string());
                        return Some((Ok(event), (receiver, tenant)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    } else {
        let receiver = state.engine.subscribe();
        let pending: std::collections::VecDeque<SseEvent> = std::collections::VecDeque::new();
        Box::pin(futures_util::stream::unfold(
            (receiver, tenant, pending),
            |(mut receiver, tenant, mut pending)| async move {
                loop {
                    if let Some(event) = pending.pop_front() {
                        return Some((Ok(event), (receiver, tenant, pending)));
                    }
                    match receiver.recv().await {
                        Ok(committed) if committed.tenant == tenant => {
                            for entry in &committed.entries {
                                let data = String::from_utf8_lossy(&entry.entry).into_owned();
                                pending.push_back(
                                    SseEvent::default().event("event").id(entry.index.to_string()).data(data),
                                );
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let event = SseEvent::default().event("lagged").data(missed.to_string());
                            return Some((Ok(event), (receiver, tenant, pending)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    };
    let items = crate::streams::guarded(&state, &principal.key_id, items);
    Ok(Sse::new(items).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15))))
}
