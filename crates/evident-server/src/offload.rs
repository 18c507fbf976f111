//! Blocking work (store calls: SQLite and the PostgreSQL store's waits on its own runtime) moved
//! off the async runtime's worker threads, so a slow store holds up one request, not every
//! request the worker was serving.

use crate::error::{ApiError, ApiResult};

/// Runs `work` on the blocking pool and answers its result.
pub async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> ApiResult<T>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::Internal(format!("a blocking task failed: {err}")))?
        .map_err(Into::into)
}

/// Runs `work` in place on a multi-threaded runtime, telling it to move this worker's other
/// tasks elsewhere meanwhile; for work that borrows from the caller (a held editor lock).
pub fn in_place<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
