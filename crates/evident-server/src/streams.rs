//! Guards on long-lived answers (the SSE stream of `/v1/stream`): a stream re-checks its key every
//! `ServerConfig::stream_recheck` (default 5 s) and ends with `event: revoked` once the key is
//! revoked or gone; it ends with `event: closing` as soon as the server begins to stop
//! ([`AppState::stopping`]), so a graceful shutdown is never held up by a connected client.

use std::convert::Infallible;

use axum::response::sse::Event as SseEvent;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;

use crate::AppState;

type Items = BoxStream<'static, Result<SseEvent, Infallible>>;

enum Next {
    Item(Option<Result<SseEvent, Infallible>>),
    Stopping,
    Recheck,
}

struct Guard {
    items: Items,
    stopping: tokio::sync::watch::Receiver<bool>,
    tick: tokio::time::Interval,
    state: AppState,
    key_id: String,
}

/// `items`, ended by revocation of `key_id` or by the server stopping.
pub fn guarded(state: &AppState, key_id: &str, items: Items) -> Items {
    let recheck = state.config.stream_recheck.max(std::time::Duration::from_millis(50));
    let guard = Guard {
        items,
        stopping: state.stopping.subscribe(),
        tick: tokio::time::interval_at(tokio::time::Instant::now() + recheck, recheck),
        state: state.clone(),
        key_id: key_id.to_owned(),
    };
    Box::pin(futures_util::stream::unfold(Some(guard), |guard| async move {
        let mut guard = guard?;
        loop {
            let next = tokio::select! {
                item = guard.items.next() => Next::Item(item),
                _ = guard.stopping.wait_for(|stopping| *stopping) => Next::Stopping,
                _ = guard.tick.tick() => Next::Recheck,
            };
            match next {
                Next::Item(item) => return item.map(|item| (item, Some(guard))),
                Next::Stopping => {
                    let last = SseEvent::default().event("closing").data("the server is stopping");
                    return Some((Ok(last), None));
                }
                Next::Recheck => {
                    if !key_valid(&guard.state, &guard.key_id).await {
                        let last = SseEvent::default().event("revoked").data("the key was revoked");
                        return Some((Ok(last), None));
                    }
                }
            }
        }
    }))
}

/// Whether the key still exists and is not revoked; a store that cannot answer keeps the stream
/// (it is asked again at the next interval).
async fn key_valid(state: &AppState, key_id: &str) -> bool {
    let (engine, id) = (state.engine.clone(), key_id.to_owned());
    match tokio::task::spawn_blocking(move || engine.store().api_key(&id)).await {
        Ok(Ok(record)) => record.is_some_and(|record| record.revoked_at.is_none()),
        _ => true,
    }
}
