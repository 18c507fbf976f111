//! Privacy endpoints, for the `privacy` role and admins: erasure of a data subject (GDPR Art. 17),
//! legal holds (which stop erasure and retention), and retention settings with the background
//! job that applies them ([`Retention`]), and the reports about one subject (access, disclosures,
//! erasure) as JSON or as a printable HTML page; equality search on personal fields through search
//! tokens, for investigators. Each action is an event in the tenant's own log
//! (`evident.privacy.*`), recorded before it takes effect.
//!
//! Erasure destroys the subject's data key (`Engine::erase_subject`): every personal part sealed
//! under it becomes unreadable, while every leaf, proof, receipt and export stays valid. Other nodes
//! stop using a cached copy of the key within `EngineConfig::key_cache_ttl`, which the answer states.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use evident_core::engine::Outcome;
use evident_core::privacy::holds::{self, Hold, Release, Scope};
use evident_core::privacy::report::Kind;
use evident_core::privacy::retention::{self, Preset};
use evident_core::privacy::settings;
use evident_wire::privacy::{
    CreateHold, EraseRequest, Erasure, HoldList, HoldView, PrivacySettings, ReleaseHold, RetentionPreset,
    RetentionRule, RetentionSettings,
};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::query::blocking;
use evident_wire::api::InvalidParam;

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

/// Erase a data subject (keys of the roles in the tenant's `erasure_roles`, by default privacy
/// and admin): its data key is destroyed, so its personal values cannot be read again
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
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    let allowed = blocking(move || settings::settings(&*store, &tenant)).await?;
    if !allowed.may_erase(principal.role) {
        let why = format!(
            "in this tenant only the roles {} may erase (erasure_roles in /v1/privacy/settings); role {} may not",
            allowed.erasure_roles.join(", "),
            principal.role.as_str()
        );
        return Err(auth::deny(&state, &principal, &principal.tenant, why).await);
    }
    evident_wire::filter::identifier("subject", &subject, 256)?;
    let request: EraseRequest = body(&request)?;
    required_text("reason", &request.reason, 2000)?;
    required_text("reference", &request.reference, 256)?;
    let (engine, tenant, who) = (state.engine.clone(), principal.tenant.clone(), subject.clone());
    if let Some(hold) = blocking(move || engine.hold_covering_subject(&tenant, &who)).await? {
        return Err(ApiError::Conflict(format!(
            "legal hold {} covers subject {subject} ({}, reference {}); release it before erasing",
            hold.id, hold.reason, hold.reference
        )));
    }
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

/// Which roles may erase in the caller's tenant.
#[utoipa::path(get, path = "/v1/privacy/settings",
    responses((status = 200, body = PrivacySettings), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
) -> ApiResult<Json<PrivacySettings>> {
    let (store, tenant) = (state.engine.store().clone(), caller.principal.tenant.clone());
    let current = blocking(move || settings::settings(&*store, &tenant)).await?;
    Ok(Json(PrivacySettings { erasure_roles: current.erasure_roles }))
}

/// Sets which roles may erase (`privacy`, `admin` or both); admins only. Recorded as
/// `evident.privacy.settings_set`.
#[utoipa::path(put, path = "/v1/privacy/settings", request_body = PrivacySettings,
    responses((status = 200, body = PrivacySettings), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    request: axum::body::Bytes,
) -> ApiResult<Json<PrivacySettings>> {
    let principal = caller.principal;
    let request: PrivacySettings = body(&request)?;
    let new = settings::Settings { erasure_roles: request.erasure_roles };
    new.check().map_err(|reason| ApiError::invalid_param("erasure_roles", "enum", reason))?;
    let event = AuditEvent {
        event_type: "evident.privacy.settings_set",
        action: "configure",
        target: ("privacy_settings".to_owned(), principal.tenant.to_string()),
        metadata: BTreeMap::from([("erasure_roles".to_owned(), new.erasure_roles.join(","))]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &principal.tenant, event).await?;
    let (store, tenant, stored) = (state.engine.store().clone(), principal.tenant.clone(), new.clone());
    blocking(move || settings::put_settings(&*store, &tenant, &stored)).await?;
    Ok(Json(PrivacySettings { erasure_roles: new.erasure_roles }))
}

/// Changes of holds on this node, one at a time (each reads, changes and writes the tenant's
/// holds; nodes sharing a store should place holds through one of them).
static HOLD_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn hold_view(hold: Hold) -> HoldView {
    let released = hold.released;
    HoldView {
        id: hold.id,
        scope: hold.scope.to_json(),
        reason: hold.reason,
        reference: hold.reference,
        placed_by: hold.placed_by,
        created_at: hold.created_at,
        active: released.is_none(),
        released_at: released.as_ref().map(|r| r.at.clone()),
        released_by: released.as_ref().map(|r| r.by.clone()),
        release_reason: released.map(|r| r.reason),
    }
}

/// The scope a request names: exactly one of subject, filter, tenant.
fn scope(request: &CreateHold) -> ApiResult<Scope> {
    let named = [request.subject.is_some(), request.filter.is_some(), request.tenant.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        return Err(ApiError::invalid_param(
            "scope",
            "conditional",
            "name exactly one of subject, filter or tenant (true)",
        ));
    }
    if let Some(subject) = &request.subject {
        evident_wire::filter::identifier("subject", subject, 256)?;
        return Ok(Scope::Subject(subject.clone()));
    }
    if let Some(filter) = &request.filter {
        let parsed =
            evident_wire::filter::Filter::from_pairs(filter.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let pairs: Vec<(String, String)> =
            parsed.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if pairs.is_empty() {
            return Err(ApiError::invalid_param(
                "filter",
                "length",
                "a filter hold needs at least one filter",
            ));
        }
        return Ok(Scope::Filter(pairs));
    }
    if request.tenant != Some(true) {
        return Err(ApiError::invalid_param(
            "tenant",
            "enum",
            "tenant must be true to hold the whole tenant",
        ));
    }
    Ok(Scope::Tenant)
}

fn hold_event(
    principal: &crate::principal::Principal,
    event_type: &'static str,
    hold: &Hold,
    reason: &str,
) -> AuditEvent {
    AuditEvent {
        event_type,
        action: "configure",
        target: ("legal_hold".to_owned(), hold.id.clone()),
        reason: Some(reason.to_owned()),
        metadata: BTreeMap::from([
            ("reference".to_owned(), hold.reference.clone()),
            ("scope".to_owned(), hold.scope.to_json().to_string()),
        ]),
        ..AuditEvent::by(principal)
    }
}

/// Place a legal hold on the whole tenant, a subject, or the events a search filter matches.
/// Recorded as `evident.privacy.hold_created`.
#[utoipa::path(post, path = "/v1/holds", request_body = CreateHold,
    responses((status = 201, body = HoldView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_hold(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    request: axum::body::Bytes,
) -> ApiResult<(axum::http::StatusCode, Json<HoldView>)> {
    let principal = caller.principal;
    let request: CreateHold = body(&request)?;
    let scope = scope(&request)?;
    required_text("reason", &request.reason, 2000)?;
    required_text("reference", &request.reference, 256)?;
    let hold = Hold {
        id: holds::new_hold_id(),
        scope,
        reason: request.reason,
        reference: request.reference,
        placed_by: principal.actor_id(),
        created_at: evident_wire::Micros::now().to_rfc3339(),
        released: None,
    };
    let _changing = HOLD_CHANGES.lock().await;
    audit::record(
        &state,
        &principal.tenant,
        hold_event(&principal, "evident.privacy.hold_created", &hold, &hold.reason),
    )
    .await?;
    let (store, tenant, stored) = (state.engine.store().clone(), principal.tenant.clone(), hold.clone());
    blocking(move || {
        let mut all = holds::holds(&*store, &tenant)?;
        all.push(stored);
        holds::put_holds(&*store, &tenant, &all)
    })
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(hold_view(hold))))
}

/// Every legal hold of the tenant, active and released.
#[utoipa::path(get, path = "/v1/holds",
    responses((status = 200, body = HoldList), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn list_holds(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
) -> ApiResult<Json<HoldList>> {
    let (store, tenant) = (state.engine.store().clone(), caller.principal.tenant.clone());
    let all = blocking(move || holds::holds(&*store, &tenant)).await?;
    Ok(Json(HoldList { holds: all.into_iter().map(hold_view).collect() }))
}

/// Release a legal hold, saying why. Recorded as `evident.privacy.hold_released`.
#[utoipa::path(delete, path = "/v1/holds/{id}", request_body = ReleaseHold,
    params(("id" = String, Path, description = "The hold's id")),
    responses((status = 200, body = HoldView), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 404, body = evident_wire::api::Problem), (status = 409, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn release_hold(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    Path(id): Path<String>,
    request: axum::body::Bytes,
) -> ApiResult<Json<HoldView>> {
    let principal = caller.principal;
    let request: ReleaseHold = body(&request)?;
    required_text("reason", &request.reason, 2000)?;
    let _changing = HOLD_CHANGES.lock().await;
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    let mut all = blocking(move || holds::holds(&*store, &tenant)).await?;
    let Some(position) = all.iter().position(|hold| hold.id == id) else {
        return Err(ApiError::NotFound(format!("legal hold {id}")));
    };
    if all[position].released.is_some() {
        return Err(ApiError::Conflict(format!("legal hold {id} was released already")));
    }
    audit::record(
        &state,
        &principal.tenant,
        hold_event(&principal, "evident.privacy.hold_released", &all[position], &request.reason),
    )
    .await?;
    all[position].released = Some(Release {
        by: principal.actor_id(),
        at: evident_wire::Micros::now().to_rfc3339(),
        reason: request.reason,
    });
    let released = all[position].clone();
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    blocking(move || holds::put_holds(&*store, &tenant, &all)).await?;
    Ok(Json(hold_view(released)))
}

fn retention_view(policy: &retention::Policy) -> evident_wire::privacy::Retention {
    evident_wire::privacy::Retention {
        settings: RetentionSettings {
            presets: policy.presets.iter().map(|p| p.as_str().to_owned()).collect(),
            min_days: policy.min_days,
            max_days: policy.max_days,
            override_reason: policy.override_reason.clone(),
            rules: policy
                .rules
                .iter()
                .map(|rule| RetentionRule {
                    data_class: rule.data_class.clone(),
                    event_type: rule.event_type.clone(),
                    min_days: rule.min_days,
                    max_days: rule.max_days,
                })
                .collect(),
        },
        floor_days: policy.floor_days(),
        available_presets: Preset::ALL
            .into_iter()
            .map(|p| RetentionPreset {
                name: p.as_str().to_owned(),
                floor_days: p.floor_days(),
                online_days: p.online_days(),
            })
            .collect(),
    }
}

/// The tenant's retention of personal parts.
#[utoipa::path(get, path = "/v1/retention",
    responses((status = 200, body = evident_wire::privacy::Retention), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_retention(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
) -> ApiResult<Json<evident_wire::privacy::Retention>> {
    let (store, tenant) = (state.engine.store().clone(), caller.principal.tenant.clone());
    let policy = blocking(move || retention::policy(&*store, &tenant)).await?;
    Ok(Json(retention_view(&policy)))
}

/// Sets the tenant's retention: the default rule and rules by event type and data class. A
/// minimum or maximum (of any rule) below a chosen preset's floor is refused with 422 unless
/// `override_reason` is given. Recorded as `evident.privacy.retention_set` (with the rules and
/// the override).
#[utoipa::path(put, path = "/v1/retention", request_body = RetentionSettings,
    responses((status = 200, body = evident_wire::privacy::Retention), (status = 400, body = evident_wire::api::Problem),
              (status = 422, description = "Below a preset's floor without override_reason", body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn put_retention(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    request: axum::body::Bytes,
) -> ApiResult<Json<evident_wire::privacy::Retention>> {
    let principal = caller.principal;
    let request: RetentionSettings = body(&request)?;
    let presets = request
        .presets
        .iter()
        .map(|name| {
            Preset::parse(name).ok_or_else(|| {
                ApiError::invalid_param(
                    "presets",
                    "enum",
                    format!("unknown preset {name:?}: pci_dss, hipaa or sox"),
                )
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    if let Some(reason) = &request.override_reason {
        required_text("override_reason", reason, 2000)?;
    }
    let policy = retention::Policy {
        presets,
        min_days: request.min_days,
        max_days: request.max_days,
        override_reason: request.override_reason,
        rules: request.rules.iter().enumerate().map(rule).collect::<ApiResult<_>>()?,
    };
    policy.check().map_err(|refused| {
        let param =
            InvalidParam { name: refused.field, rule: "range".to_owned(), reason: refused.reason.clone() };
        match refused.below_floor {
            true => ApiError::Unprocessable { detail: refused.reason, params: vec![param] },
            false => ApiError::BadRequest { detail: refused.reason, params: vec![param] },
        }
    })?;
    let view = retention_view(&policy);
    let metadata = retention_metadata(&view.settings);
    let event = AuditEvent {
        event_type: "evident.privacy.retention_set",
        action: "configure",
        target: ("retention".to_owned(), principal.tenant.to_string()),
        metadata,
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &principal.tenant, event).await?;
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    blocking(move || retention::put_policy(&*store, &tenant, &policy)).await?;
    Ok(Json(view))
}

/// What `evident.privacy.retention_set` records of new settings: all of them.
fn retention_metadata(settings: &RetentionSettings) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        ("presets".to_owned(), settings.presets.join(",")),
        ("min_days".to_owned(), settings.min_days.to_string()),
        ("max_days".to_owned(), settings.max_days.map_or("none".to_owned(), |d| d.to_string())),
    ]);
    if !settings.rules.is_empty() {
        let rules = serde_json::to_string(&settings.rules).expect("rules serialise");
        metadata.insert("rules".to_owned(), rules);
    }
    if let Some(reason) = &settings.override_reason {
        metadata.insert("override_reason".to_owned(), reason.clone());
    }
    metadata
}

/// A rule as the store keeps it, its data class checked.
fn rule((i, rule): (usize, &RetentionRule)) -> ApiResult<retention::Rule> {
    use evident_wire::names::DataClass;
    if let Some(class) = &rule.data_class
        && DataClass::parse(class).is_none()
    {
        return Err(ApiError::invalid_param(
            &format!("rules[{i}].data_class"),
            "enum",
            format!("unknown data class {class:?}: pii, phi, pci, financial or secret"),
        ));
    }
    if let Some(event_type) = &rule.event_type {
        evident_wire::filter::identifier(&format!("rules[{i}].event_type"), event_type, 256)?;
    }
    Ok(retention::Rule {
        data_class: rule.data_class.clone(),
        event_type: rule.event_type.clone(),
        min_days: rule.min_days,
        max_days: rule.max_days,
    })
}

/// The background job that applies every led tenant's maximum, every
/// `EVIDENT_RETENTION_INTERVAL_MS` (default an hour), each run recorded as
/// `evident.privacy.retention_applied` with its counts.
pub struct Retention {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Retention {
    pub fn start(state: AppState) -> Retention {
        let interval = std::env::var("EVIDENT_RETENTION_INTERVAL_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(std::time::Duration::from_secs(3600), std::time::Duration::from_millis);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                for (tenant, _) in state.engine.led_tenants() {
                    if let Err(err) = apply_retention(&state, &tenant).await {
                        tracing::error!(%tenant, error = ?err, "retention run failed; retried at the next run");
                    }
                }
            }
        });
        Retention { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One run for one tenant: nothing (and no event) without a maximum.
async fn apply_retention(state: &AppState, tenant: &evident_core::store::TenantId) -> ApiResult<()> {
    let (engine, who) = (state.engine.clone(), tenant.clone());
    let now = evident_wire::Micros::now();
    let run = blocking(move || engine.apply_retention(&who, now)).await?;
    if !run.active {
        return Ok(());
    }
    let (store, who) = (state.engine.store().clone(), tenant.clone());
    let policy = blocking(move || retention::policy(&*store, &who)).await?;
    let mut metadata = BTreeMap::from([
        ("cutoff".to_owned(), run.cutoff.map_or("none".to_owned(), |c| c.to_rfc3339())),
        ("keys_destroyed".to_owned(), run.keys_destroyed.to_string()),
        ("keys_held".to_owned(), run.keys_held.to_string()),
    ]);
    for (i, destroyed) in &run.destroyed_by_rule {
        metadata.insert(format!("rules[{i}].keys_destroyed"), destroyed.to_string());
    }
    if let Some(reason) = policy.override_reason {
        metadata.insert("override_reason".to_owned(), reason);
    }
    let event = AuditEvent {
        event_type: "evident.privacy.retention_applied",
        action: "other",
        outcome: "success",
        actor_id: "evident-retention".to_owned(),
        actor_type: "system",
        target: ("retention".to_owned(), tenant.to_string()),
        metadata,
        ..AuditEvent::default()
    };
    audit::record(state, tenant, event).await
}

/// `?kind=` of a report.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// `access`, `disclosures` or `erasure`.
    pub kind: String,
}

/// A report about one subject: `access` (its events with personal data, and every access to
/// them with date, role and purpose), `disclosures` (the last six years), or `erasure` (what was
/// erased when, and the checkpoint). JSON, or a printable page with `Accept: text/html`. Reading
/// it is recorded as `evident.audit.report`.
#[utoipa::path(get, path = "/v1/subjects/{subject}/report",
    params(("subject" = String, Path, description = "The data subject's pseudonymous id"), ReportParams),
    responses((status = 200, description = "The report (JSON, or HTML with Accept: text/html)", body = Object),
              (status = 400, body = evident_wire::api::Problem), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller<auth::Privacy>,
    Path(subject): Path<String>,
    headers: axum::http::HeaderMap,
    query: Result<axum::extract::Query<ReportParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let principal = caller.principal;
    let axum::extract::Query(params) =
        query.map_err(|err| ApiError::invalid_param("kind", "enum", err.body_text()))?;
    evident_wire::filter::identifier("subject", &subject, 256)?;
    let kind = Kind::parse(&params.kind).ok_or_else(|| {
        ApiError::invalid_param("kind", "enum", "kind must be access, disclosures or erasure")
    })?;
    let (engine, tenant, who) = (state.engine.clone(), principal.tenant.clone(), subject.clone());
    let report =
        blocking(move || engine.subject_report(&tenant, &who, kind, evident_wire::Micros::now())).await?;
    let event = AuditEvent {
        event_type: "evident.audit.report",
        action: "read",
        subject: Some(subject.clone()),
        target: ("subject_report".to_owned(), format!("{}:{subject}", kind.as_str())),
        reason: Some(format!("{} report", kind.as_str())),
        data_classes: if kind == Kind::Erasure { Vec::new() } else { vec!["pii"] },
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &principal.tenant, event).await?;
    let html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if html {
        let page = crate::report_html::page(&report);
        return Ok(([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response());
    }
    Ok(Json(report).into_response())
}

/// Events whose personal `field` equals `value`, through search tokens (`privacy/search.rs`):
/// investigators only, stating a purpose; recorded (with the field and the token, never the value)
/// as `evident.audit.search`. Erased subjects are not found.
#[utoipa::path(post, path = "/v1/personal-search", request_body = evident_wire::privacy::PersonalSearch,
    responses((status = 200, body = evident_wire::api::EventPage), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn personal_search(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    request: axum::body::Bytes,
) -> ApiResult<Json<evident_wire::api::EventPage>> {
    let principal = caller.principal;
    let request: evident_wire::privacy::PersonalSearch = body(&request)?;
    let limit = crate::query::limit(request.limit)?;
    if !request.value.is_string() {
        return Err(ApiError::invalid_param("value", "format", "value must be a string"));
    }
    let access = crate::query::access(&state, &principal, &Some(request.purpose.clone())).await?;
    let (engine, tenant) = (state.engine.clone(), principal.tenant.clone());
    let (field, value) = (request.field.clone(), request.value.clone());
    let token = blocking(move || engine.search_token(&tenant, &field, &value)).await?.ok_or_else(|| {
        ApiError::invalid_param(
            "field",
            "enum",
            "field must be origin.ip or metadata.<a key the tenant marks personal>",
        )
    })?;
    let filter = evident_wire::filter::Filter {
        target: Some((
            format!("{}{}", evident_core::privacy::search::TARGET_PREFIX, request.field),
            token.clone(),
        )),
        ..evident_wire::filter::Filter::default()
    };
    let (engine, tenant, cursor) = (state.engine.clone(), principal.tenant.clone(), request.cursor.clone());
    let order = evident_wire::filter::Order::NewestFirst;
    let page =
        blocking(move || engine.search(&tenant, &filter, order, cursor.as_deref(), limit, access)).await?;
    let event = AuditEvent {
        metadata: BTreeMap::from([("field".to_owned(), request.field), ("token".to_owned(), token)]),
        ..crate::query::read_event(
            &principal,
            "evident.audit.search",
            ("personal_field".to_owned(), "search".to_owned()),
            access,
            &Some(request.purpose),
        )
    };
    audit::record(&state, &principal.tenant, event).await?;
    Ok(Json(evident_wire::api::EventPage {
        events: page.items.into_iter().map(crate::query::view).collect(),
        next_cursor: page.next_cursor,
    }))
}
