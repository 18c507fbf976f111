//! Failed authentication under a flood: bounded writes, no attempt unrecorded.
//!
//! Each failed authentication belongs to a *stream*: (client address, reason, tenant, actor). The
//! first failure of a stream in a window is recorded at once as `evident.auth.failed` with
//! `metadata.count = "1"`, so detection sees it without delay; the stream's further failures in
//! the same window are only counted, and when the window closes one more event records how many
//! there were (`count`, `window_start`, `window_end`). So a flood costs at most two durable
//! writes per stream and window, and the counts of a stream's events add up to its attempts.
//! Open windows are closed by a background task and, at shutdown, by [`flush`].
//!
//! Each client address also has a token bucket charged by its failures ([`FAILURE_BURST`],
//! refilled at [`REFILL_PER_SEC`]); an address whose bucket is empty is answered 429 with
//! `Retry-After` before any key is looked up (and its refusals are counted like failures).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use evident_core::store::TenantId;
use evident_wire::Micros;

use crate::AppState;
use crate::audit::{self, AuditEvent};

/// Failures an address may make in a burst before it is slowed down (the default of
/// `ServerConfig::auth_failure_burst`).
pub const FAILURE_BURST: u32 = 30;
/// Failures per second an address earns back.
pub const REFILL_PER_SEC: f64 = 1.0;
/// Streams counted at once; more fold into one stream per tenant and reason.
const MAX_STREAMS: usize = 10_000;
/// Addresses with a bucket at once; full buckets are forgotten first.
const MAX_BUCKETS: usize = 100_000;

/// Who failed, how, against which tenant.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Stream {
    pub ip: Option<IpAddr>,
    pub reason: &'static str,
    pub tenant: TenantId,
    /// `key:<id>` for a known key, else `anonymous`.
    pub actor: String,
}

struct Open {
    since: Instant,
    since_at: Micros,
    /// Failures after the first, not yet recorded.
    more: u64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
struct Inner {
    open: HashMap<Stream, Open>,
    buckets: HashMap<IpAddr, Bucket>,
}

/// The counters of failed authentication (one per server, in [`AppState`]).
pub struct AuthFailures {
    window: Duration,
    burst: f64,
    inner: Mutex<Inner>,
    closer: OnceLock<()>,
}

/// A closed window's failures after its first, to record.
pub struct Closed {
    pub stream: Stream,
    pub count: u64,
    pub from: Micros,
}

impl AuthFailures {
    /// Windows of `window`; `burst` failures per address before it is slowed down.
    pub fn new(window: Duration, burst: u32) -> AuthFailures {
        AuthFailures {
            window: window.max(Duration::from_millis(100)),
            burst: f64::from(burst.max(1)),
            inner: Mutex::default(),
            closer: OnceLock::new(),
        }
    }

    /// How long until `ip` may fail again, when it has used up its failures.
    pub fn throttled(&self, ip: Option<IpAddr>) -> Option<Duration> {
        let ip = ip?;
        let mut inner = self.inner.lock().expect("not poisoned");
        let bucket = inner.buckets.get_mut(&ip)?;
        refill(bucket, self.burst);
        (bucket.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - bucket.tokens) / REFILL_PER_SEC))
    }

    /// Counts a failure: `true` when it opens a window and must be recorded now.
    pub fn note(&self, stream: Stream) -> bool {
        let mut inner = self.inner.lock().expect("not poisoned");
        if let Some(ip) = stream.ip {
            let burst = self.burst;
            if inner.buckets.len() >= MAX_BUCKETS {
                inner.buckets.retain(|_, b| {
                    refill(b, burst);
                    b.tokens < burst
                });
            }
            let bucket = inner.buckets.entry(ip).or_insert(Bucket { tokens: burst, last: Instant::now() });
            refill(bucket, burst);
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        }
        let stream = if inner.open.len() >= MAX_STREAMS && !inner.open.contains_key(&stream) {
            Stream { ip: None, reason: "many", actor: "many".into(), ..stream }
        } else {
            stream
        };
        match inner.open.get_mut(&stream) {
            Some(open) if open.since.elapsed() < self.window => {
                open.more += 1;
                false
            }
            // An expired window still open is closed by the next round of the closer.
            Some(_) => true,
            None => {
                inner.open.insert(stream, Open { since: Instant::now(), since_at: Micros::now(), more: 0 });
                true
            }
        }
    }

    /// Removes the windows that have closed (all of them with `all`): their uncounted failures.
    fn take_closed(&self, all: bool) -> Vec<Closed> {
        let mut inner = self.inner.lock().expect("not poisoned");
        let window = self.window;
        let closed: Vec<Stream> = inner
            .open
            .iter()
            .filter(|(_, o)| all || o.since.elapsed() >= window)
            .map(|(s, _)| s.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|stream| {
                let open = inner.open.remove(&stream)?;
                (open.more > 0).then_some(Closed { stream, count: open.more, from: open.since_at })
            })
            .collect()
    }
}

fn refill(bucket: &mut Bucket, burst: f64) {
    let now = Instant::now();
    let earned = now.duration_since(bucket.last).as_secs_f64() * REFILL_PER_SEC;
    bucket.tokens = (bucket.tokens + earned).min(burst);
    bucket.last = now;
}

/// The `evident.auth.failed` event of a stream, standing for `count` attempts.
pub fn failure_event(stream: &Stream, count: u64, window: Option<(Micros, Micros)>) -> AuditEvent {
    let mut metadata = BTreeMap::from([("count".to_owned(), count.to_string())]);
    if let Some((from, to)) = window {
        metadata.insert("window_start".into(), from.to_rfc3339());
        metadata.insert("window_end".into(), to.to_rfc3339());
    }
    AuditEvent {
        event_type: "evident.auth.failed",
        action: "login",
        outcome: "failure",
        actor_id: stream.actor.clone(),
        actor_type: if stream.actor.starts_with("key:") { "api_key" } else { "anonymous" },
        reason: Some(stream.reason.to_owned()),
        target: ("service".to_owned(), "evident-api".to_owned()),
        ip: stream.ip,
        metadata,
        ..AuditEvent::default()
    }
}

/// Records one failed authentication: at once when it opens a window, else counted for later.
pub async fn record_failure(state: &AppState, stream: Stream) {
    let failures = &state.auth_failures;
    if failures.closer.set(()).is_ok() {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(state.auth_failures.window / 2).await;
                record_closed(&state, false).await;
            }
        });
    }
    if failures.note(stream.clone()) {
        let event = failure_event(&stream, 1, None);
        if let Err(err) = audit::record(state, &stream.tenant, event).await {
            tracing::error!(error = ?err, "could not record a failed authentication");
        }
    }
}

async fn record_closed(state: &AppState, all: bool) {
    for closed in state.auth_failures.take_closed(all) {
        let event = failure_event(&closed.stream, closed.count, Some((closed.from, Micros::now())));
        if let Err(err) = audit::record(state, &closed.stream.tenant, event).await {
            tracing::error!(error = ?err, count = closed.count, "could not record counted failed authentications");
        }
    }
}

/// Records every open window's counted failures (at shutdown, after the last request).
pub async fn flush(state: &AppState) {
    record_closed(state, true).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(ip: &str, reason: &'static str) -> Stream {
        Stream {
            ip: Some(ip.parse().expect("ip")),
            reason,
            tenant: TenantId::new("default").expect("tenant"),
            actor: "anonymous".into(),
        }
    }

    #[test]
    fn a_window_records_its_first_failure_and_counts_the_rest() {
        let failures = AuthFailures::new(Duration::from_secs(60), FAILURE_BURST);
        assert!(failures.note(stream("192.0.2.1", "unknown key")));
        for _ in 0..9 {
            assert!(!failures.note(stream("192.0.2.1", "unknown key")));
        }
        assert!(failures.note(stream("192.0.2.1", "wrong secret")), "another reason, another stream");
        assert!(failures.take_closed(false).is_empty(), "the windows are open");
        let closed = failures.take_closed(true);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].count, 9);
        assert!(failures.throttled(Some("192.0.2.1".parse().unwrap())).is_none(), "11 of 30");
        for _ in 0..30 {
            failures.note(stream("192.0.2.1", "unknown key"));
        }
        assert!(failures.throttled(Some("192.0.2.1".parse().unwrap())).is_some());
        assert!(failures.throttled(Some("192.0.2.2".parse().unwrap())).is_none(), "per address");
    }
}
