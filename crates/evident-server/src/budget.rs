//! The bytes of request bodies in memory across all requests are bounded
//! (`ServerConfig::max_inflight_bytes`, `EVIDENT_MAX_INFLIGHT_BYTES`): before reading a body, an
//! ingest request reserves room for it (its `Content-Length`, or the body limit when unknown,
//! plus the limit again for a compressed body's decompressed form) and keeps it until answered.
//! A request that finds no room within [`WAIT`] is answered 503 with `Retry-After`.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// How long a request waits for room before it is told to retry.
pub const WAIT: Duration = Duration::from_secs(10);

/// Room is counted in KiB.
const UNIT: usize = 1024;

/// The shared room for bodies.
pub fn room(max_inflight_bytes: usize) -> Semaphore {
    Semaphore::new((max_inflight_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS))
}

/// Reserves room for a body of at most `limit` bytes; released when the answer is dropped.
pub async fn reserve(state: &AppState, headers: &HeaderMap, limit: usize) -> ApiResult<OwnedSemaphorePermit> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(limit, |length| length.min(limit));
    let compressed = headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity");
    let bytes = if compressed { declared + limit } else { declared };
    let total = (state.config.max_inflight_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
    let units = (bytes / UNIT + 1).min(total) as u32;
    match tokio::time::timeout(WAIT, state.inflight.clone().acquire_many_owned(units)).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::Overloaded(Duration::from_secs(1))),
    }
}
