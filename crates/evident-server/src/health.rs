//! `GET /v1/logs/{tenant}/health`: a tenant's log health for the roles that may read the tenant
//! (no metrics token). The log's numbers are read from the log itself, so every node answers the
//! same: the tree size, when its newest entry was sequenced (the latest checkpoint's age), the
//! tree size over time (the sizes right after entries spread evenly over the log, with their
//! `recorded_at`), and how many entries were sequenced in the last minute and hour (found by
//! bisecting the log on `recorded_at`). Beside them, what the answering node counted of the
//! tenant's ingestion since it started ([`TenantCounts`]).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use evident_core::engine::Engine;
use evident_core::store::TenantId;
use evident_wire::Micros;
use evident_wire::api::{ItemResult, ItemStatus, LogHealth, NodeCounts, SizeSample};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::ApiResult;

/// Most size samples an answer holds.
const SAMPLES: u64 = 48;
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

/// What this node counted of each tenant's `POST /v1/events` since it started.
#[derive(Debug)]
pub struct TenantCounts {
    since: Micros,
    counts: Mutex<HashMap<TenantId, NodeCounts>>,
}

impl Default for TenantCounts {
    fn default() -> TenantCounts {
        TenantCounts { since: Micros::now(), counts: Mutex::default() }
    }
}

impl TenantCounts {
    /// Counts the answers of one request.
    pub fn count(&self, tenant: &TenantId, results: &[ItemResult]) {
        let mut counts = self.counts.lock().expect("tenant counts");
        let counts = counts.entry(tenant.clone()).or_default();
        counts.received += results.len() as u64;
        for result in results {
            *match result.status {
                ItemStatus::Stored => &mut counts.stored,
                ItemStatus::Duplicate => &mut counts.duplicate,
                ItemStatus::Rejected => &mut counts.rejected,
                ItemStatus::Conflict => &mut counts.conflict,
            } += 1;
        }
    }

    fn of(&self, tenant: &TenantId, node: &str) -> NodeCounts {
        let counts = self.counts.lock().expect("tenant counts").get(tenant).cloned().unwrap_or_default();
        NodeCounts { node: node.to_owned(), since: self.since.to_rfc3339(), ..counts }
    }
}

/// A tenant's log health: size, checkpoint age, size over time, ingestion rate, and this node's
/// counts of accepted and refused events.
#[utoipa::path(get, path = "/v1/logs/{tenant}/health", tag = "logs",
    params(("tenant" = String, Path, description = "The tenant id; a key reads its own tenant only", example = "default")),
    responses((status = 200, body = LogHealth), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem), (status = 503, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn log_health(
    State(state): State<AppState>,
    caller: Caller<auth::Read>,
) -> ApiResult<Json<LogHealth>> {
    let tenant = caller.principal.tenant;
    let engine = state.engine.clone();
    let node = state.engine.node_id().to_owned();
    let counts = state.metrics.tenants.of(&tenant, &node);
    let now = Micros::now();
    let health = crate::offload::blocking(move || log_numbers(&engine, &tenant, now)).await?;
    Ok(Json(LogHealth { node: counts, ..health }))
}

/// The log's part of the answer, read from the store.
fn log_numbers(engine: &Engine, tenant: &TenantId, now: Micros) -> evident_core::Result<LogHealth> {
    let size = engine.checkpoint(tenant)?.map_or(0, |(size, _)| size.0);
    let recorded_at = |index: u64| -> evident_core::Result<Micros> {
        let stored = engine.store().event_by_index(tenant, index)?;
        let entry: Option<serde_json::Value> = stored.and_then(|s| serde_json::from_slice(&s.entry).ok());
        let text = entry.as_ref().and_then(|e| e.get("recorded_at")).and_then(|v| v.as_str());
        text.and_then(Micros::parse_rfc3339).ok_or_else(|| {
            evident_core::Error::Integrity(format!("entry {index} of {tenant} has no recorded_at"))
        })
    };
    let mut sizes = Vec::new();
    let samples = SAMPLES.min(size);
    let picked = (0..samples).map(|k| k * (size - 1) / (samples - 1).max(1));
    for index in picked {
        sizes.push(SizeSample { at: recorded_at(index)?.to_rfc3339(), tree_size: index + 1 });
    }
    // The first entry sequenced at or after `since`; entries are sequenced in index order.
    let first_since = |since: i64| -> evident_core::Result<u64> {
        let (mut low, mut high) = (0, size);
        while low < high {
            let mid = low + (high - low) / 2;
            if recorded_at(mid)?.0 >= since { high = mid } else { low = mid + 1 }
        }
        Ok(low)
    };
    let newest = match size {
        0 => None,
        _ => Some(recorded_at(size - 1)?),
    };
    Ok(LogHealth {
        tenant: tenant.to_string(),
        tree_size: size,
        newest_at: newest.map(Micros::to_rfc3339),
        checkpoint_age_secs: newest.map(|at| (now.0 - at.0).max(0) as f64 / 1e6),
        now: now.to_rfc3339(),
        sizes,
        last_minute: size - first_since(now.0 - MINUTE)?,
        last_hour: size - first_since(now.0 - HOUR)?,
        node: NodeCounts::default(),
    })
}
