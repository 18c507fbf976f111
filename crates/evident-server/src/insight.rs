//! Customer insight over HTTP (`/v1/insights/...`): trends, funnels, journeys, cohorts and
//! service measures, computed by `evident_core::insight` on the store's scans. Readers get
//! aggregates with cells of fewer customers than the tenant's `min_customers` suppressed;
//! investigators (personal access) see every cell and may list who dropped off a funnel step.
//! Every query is recorded as `evident.audit.insight` before it is answered.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use evident_core::insight::cohorts::CohortsQuery;
use evident_core::insight::funnel::FunnelQuery;
use evident_core::insight::journeys::JourneysQuery;
use evident_core::insight::measure::{Kind, MeasureQuery};
use evident_core::insight::time::{Clock, Zone};
use evident_core::insight::trend::TrendQuery;
use evident_core::insight::{self, InsightIndex, Threshold};
use evident_core::store::Role;
use evident_wire::Micros;
use evident_wire::insight::{
    Bucket, Cohorts, CohortsParams, Funnel, FunnelParams, InsightSettings, Journeys, JourneysParams, Measure,
    MeasureParams, Step, Trend, TrendParams,
};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;
use crate::query::blocking;

type Rejection = axum::extract::rejection::QueryRejection;

const DAY: i64 = 86_400_000_000;

/// `from` and `to` of a request: RFC 3339, `to` by default now, `from` by default `days` before.
fn range(from: &Option<String>, to: &Option<String>, days: i64) -> ApiResult<(Micros, Micros)> {
    let parse = |name: &str, text: &str| {
        Micros::parse_rfc3339(text)
            .ok_or_else(|| ApiError::invalid_param(name, "format", "not an RFC 3339 time"))
    };
    let to = to.as_deref().map(|t| parse("to", t)).transpose()?.unwrap_or_else(Micros::now);
    let from = from.as_deref().map(|t| parse("from", t)).transpose()?.unwrap_or(Micros(to.0 - days * DAY));
    if from >= to {
        return Err(ApiError::invalid_param("from", "range", "from must be before to"));
    }
    if to.0 - from.0 > 3660 * DAY {
        return Err(ApiError::invalid_param("from", "range", "a range spans at most 10 years"));
    }
    Ok((from, to))
}

/// Whether the caller sees every cell: personal access is the investigators'.
fn personal(principal: &Principal) -> bool {
    principal.role == Role::Investigator
}

/// The suppression threshold for this caller.
async fn threshold(state: &AppState, principal: &Principal) -> ApiResult<Threshold> {
    if personal(principal) {
        return Ok(Threshold { min_customers: 0 });
    }
    let (store, tenant) = (state.engine.store().clone(), principal.tenant.clone());
    let settings = blocking(move || insight::settings(&*store, &tenant)).await?;
    Ok(Threshold { min_customers: settings.min_customers })
}

/// Runs an insight on the store, records it, and answers it.
async fn run<T: Send + 'static>(
    state: &AppState,
    principal: &Principal,
    kind: &str,
    mut metadata: BTreeMap<String, String>,
    compute: impl FnOnce(&dyn InsightIndex) -> evident_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let store = state.engine.store().clone();
    let answer = blocking(move || {
        let index = store.insight().ok_or_else(|| {
            evident_core::Error::Unavailable("this store does not answer insight queries".into())
        })?;
        compute(index)
    })
    .await?;
    metadata.insert("insight".into(), kind.to_owned());
    let event = AuditEvent {
        event_type: "evident.audit.insight",
        action: "search",
        target: ("audit_log".into(), principal.tenant.to_string()),
        metadata,
        data_classes: if personal(principal) { vec!["pii"] } else { Vec::new() },
        ..AuditEvent::by(principal)
    };
    audit::record(state, &principal.tenant, event).await?;
    Ok(answer)
}

/// The given parameters as audit metadata (`param.<name>`).
fn described<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> BTreeMap<String, String> {
    pairs.into_iter().filter_map(|(name, value)| value.map(|v| (format!("param.{name}"), v))).collect()
}

fn step(name: &str, text: &Option<String>) -> ApiResult<Option<Step>> {
    Ok(text.as_deref().map(|t| Step::parse(name, t)).transpose()?)
}

fn parsed<T>(query: Result<Query<T>, Rejection>) -> ApiResult<T> {
    query.map(|Query(params)| params).map_err(|err| ApiError::bad_request(err.body_text()))
}

/// Counts, customers, actors and failure rates over time, by a dimension, with the previous period.
#[utoipa::path(get, path = "/v1/insights/trend", params(TrendParams),
    responses((status = 200, body = Trend), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn trend(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<TrendParams>, Rejection>,
) -> ApiResult<Json<Trend>> {
    let (principal, params) = (caller.principal, parsed(query)?);
    let (from, to) = range(&params.from, &params.to, 30)?;
    let by = evident_wire::insight::dimension("by", params.by.as_deref())?;
    let bucket = Bucket::parse("bucket", params.bucket.as_deref())?;
    let zone = Zone::parse("tz", params.tz.as_deref())?;
    let threshold = threshold(&state, &principal).await?;
    let query = TrendQuery { from, to, by, clock: Clock { bucket, zone }, threshold };
    let metadata = described([("by", params.by), ("bucket", params.bucket), ("tz", params.tz)]);
    let tenant = principal.tenant.clone();
    let answer = run(&state, &principal, "trend", metadata, move |index| {
        insight::trend::trend(index, &tenant, &query)
    })
    .await?;
    Ok(Json(answer))
}

/// Per-step conversion and drop-off of ordered steps within a window, time to convert, breakdown.
#[utoipa::path(get, path = "/v1/insights/funnel", params(FunnelParams),
    responses((status = 200, body = Funnel), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn funnel(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<FunnelParams>, Rejection>,
) -> ApiResult<Json<Funnel>> {
    let (principal, params) = (caller.principal, parsed(query)?);
    let (from, to) = range(&params.from, &params.to, 30)?;
    let steps = evident_wire::insight::steps("steps", &params.steps)?;
    let within = evident_wire::insight::duration("within", params.within.as_deref().unwrap_or("7d"))?;
    let by = evident_wire::insight::dimension("by", params.by.as_deref())?;
    if let Some(n) = params.dropped_at {
        if !(2..=steps.len()).contains(&n) {
            return Err(ApiError::invalid_param(
                "dropped_at",
                "range",
                format!("a step from 2 to {}", steps.len()),
            ));
        }
        if !personal(&principal) {
            return Err(ApiError::Forbidden(
                "only investigators may list the customers who dropped off".into(),
            ));
        }
    }
    let threshold = threshold(&state, &principal).await?;
    let query = FunnelQuery { steps, within, by, from, to, dropped_at: params.dropped_at, threshold };
    let metadata = described([
        ("steps", Some(params.steps)),
        ("within", params.within),
        ("by", params.by),
        ("dropped_at", params.dropped_at.map(|n| n.to_string())),
    ]);
    let tenant = principal.tenant.clone();
    let answer = run(&state, &principal, "funnel", metadata, move |index| {
        insight::funnel::funnel(index, &tenant, &query)
    })
    .await?;
    Ok(Json(answer))
}

/// Sessions, the most common paths (with Sankey links) and repeat contacts after a resolved step.
#[utoipa::path(get, path = "/v1/insights/journeys", params(JourneysParams),
    responses((status = 200, body = Journeys), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn journeys(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<JourneysParams>, Rejection>,
) -> ApiResult<Json<Journeys>> {
    let (principal, params) = (caller.principal, parsed(query)?);
    let (from, to) = range(&params.from, &params.to, 30)?;
    let gap = evident_wire::insight::duration("gap", params.gap.as_deref().unwrap_or("30m"))?;
    let depth = bounded("depth", params.depth, 5, 10)?;
    let top = bounded("top", params.top, 10, 100)?;
    let repeat =
        evident_wire::insight::duration("repeat_within", params.repeat_within.as_deref().unwrap_or("7d"))?;
    let resolved = step("resolved", &params.resolved)?.map(|s| (s, repeat));
    let only = step("only", &params.only)?;
    let threshold = threshold(&state, &principal).await?;
    let query = JourneysQuery { from, to, gap, depth, top, resolved, only, threshold };
    let metadata = described([("gap", params.gap), ("resolved", params.resolved), ("only", params.only)]);
    let tenant = principal.tenant.clone();
    let answer = run(&state, &principal, "journeys", metadata, move |index| {
        insight::journeys::journeys(index, &tenant, &query)
    })
    .await?;
    Ok(Json(answer))
}

fn bounded(name: &str, value: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
    match value.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        n => Err(ApiError::invalid_param(name, "range", format!("{n} is not between 1 and {max}"))),
    }
}

/// Customers by first-seen week or month and their activity in each period since.
#[utoipa::path(get, path = "/v1/insights/cohorts", params(CohortsParams),
    responses((status = 200, body = Cohorts), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn cohorts(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<CohortsParams>, Rejection>,
) -> ApiResult<Json<Cohorts>> {
    let (principal, params) = (caller.principal, parsed(query)?);
    let (from, to) = range(&params.from, &params.to, 84)?;
    let period = match params.period.as_deref().unwrap_or("week") {
        "week" => Bucket::Week,
        "month" => Bucket::Month,
        other => {
            return Err(ApiError::invalid_param("period", "enum", format!("{other:?} is not week or month")));
        }
    };
    let activity = step("activity", &params.activity)?;
    let threshold = threshold(&state, &principal).await?;
    let query = CohortsQuery { from, to, period, activity, threshold };
    let metadata = described([("period", params.period), ("activity", params.activity)]);
    let tenant = principal.tenant.clone();
    let answer = run(&state, &principal, "cohorts", metadata, move |index| {
        insight::cohorts::cohorts(index, &tenant, &query)
    })
    .await?;
    Ok(Json(answer))
}

/// Service measures: time from a first to a last step per group, workload per actor, or the
/// actors serving most customers per segment.
#[utoipa::path(get, path = "/v1/insights/measure", params(MeasureParams),
    responses((status = 200, body = Measure), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn measure(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
    query: Result<Query<MeasureParams>, Rejection>,
) -> ApiResult<Json<Measure>> {
    let (principal, params) = (caller.principal, parsed(query)?);
    let (from, to) = range(&params.from, &params.to, 30)?;
    let by = evident_wire::insight::dimension("by", params.by.as_deref())?;
    let kind = match params.kind.as_deref().unwrap_or("duration") {
        "duration" => {
            let need = |name: &str, s: Option<Step>| {
                s.ok_or_else(|| ApiError::invalid_param(name, "required", format!("a duration needs {name}")))
            };
            Kind::Duration {
                first: need("first", step("first", &params.first)?)?,
                last: need("last", step("last", &params.last)?)?,
            }
        }
        "workload" => Kind::Workload,
        "coverage" if by.is_none() => {
            return Err(ApiError::invalid_param("by", "required", "coverage needs the segment dimension by"));
        }
        "coverage" => Kind::Coverage { top: bounded("top", params.top, 3, 20)? },
        other => {
            return Err(ApiError::invalid_param(
                "kind",
                "enum",
                format!("{other:?} is not duration, workload or coverage"),
            ));
        }
    };
    let threshold = threshold(&state, &principal).await?;
    let query = MeasureQuery { kind, by, from, to, threshold };
    let metadata =
        described([("kind", params.kind), ("first", params.first), ("last", params.last), ("by", params.by)]);
    let tenant = principal.tenant.clone();
    let answer = run(&state, &principal, "measure", metadata, move |index| {
        insight::measure::measure(index, &tenant, &query)
    })
    .await?;
    Ok(Json(answer))
}

/// The tenant's insight settings: `min_customers`, the k of suppression.
#[utoipa::path(get, path = "/v1/insights/settings",
    responses((status = 200, body = InsightSettings), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
) -> ApiResult<Json<InsightSettings>> {
    let (store, tenant) = (state.engine.store().clone(), caller.principal.tenant.clone());
    Ok(Json(blocking(move || insight::settings(&*store, &tenant)).await?))
}

/// Sets `min_customers` (1 to 1000); admins only. Recorded as `evident.insight.settings_set`.
#[utoipa::path(put, path = "/v1/insights/settings", request_body = InsightSettings,
    responses((status = 200, body = InsightSettings), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller<auth::Admin>,
    request: axum::body::Bytes,
) -> ApiResult<Json<InsightSettings>> {
    let principal = caller.principal;
    let new: InsightSettings = serde_json::from_slice(&request)
        .map_err(|err| ApiError::invalid_param("body", "json", format!("invalid request body: {err}")))?;
    new.check()?;
    let event = AuditEvent {
        event_type: "evident.insight.settings_set",
        action: "configure",
        target: ("insight_settings".to_owned(), principal.tenant.to_string()),
        metadata: BTreeMap::from([("min_customers".to_owned(), new.min_customers.to_string())]),
        ..AuditEvent::by(&principal)
    };
    audit::record(&state, &principal.tenant, event).await?;
    let (store, tenant, stored) = (state.engine.store().clone(), principal.tenant.clone(), new.clone());
    blocking(move || insight::put_settings(&*store, &tenant, &stored)).await?;
    Ok(Json(new))
}
