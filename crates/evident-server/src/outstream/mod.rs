//! Streams out to SIEMs: per tenant, each stream renders the log's entries (`render.rs`) from
//! its cursor on and delivers them to its destination (`dest.rs`), at least once. The stream's
//! definition, cursor and delivery status are in the store (`StreamStore`), so a restart, or
//! another node taking over the tenant, goes on from the cursor; `api.rs` serves `/v1/streams`.
//!
//! Delivery: the [`Streamer`] keeps one task per stream. A task delivers only while this node
//! leads the stream's tenant (every tenant on a single-node store); it reads a batch of entries at
//! the cursor, keeps those its filter matches, sends them, and only then moves the cursor past the
//! batch by compare-and-set. A crash between sending and moving sends the batch again (receivers
//! drop duplicates by event id: JetStream by `Nats-Msg-Id`); a failure is recorded in the
//! stream's status and retried with doubling backoff, the cursor left where it was.
//! Streams carry skeletons only: no personal value leaves through them, so none outlives erasure
//! in a SIEM.

pub mod api;
pub mod dest;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evident_core::store::{StreamRow, TenantId};
use evident_wire::Micros;
use evident_wire::filter::Filter;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::AppState;
use crate::counter::Counter;
use dest::{Destination, Item, Outbound};
use render::{Entry, Format};

/// Settings of streams.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// How often an idle stream looks for new entries, and the supervisor for new streams.
    pub poll: Duration,
    /// Most entries read (and so delivered) in one batch.
    pub batch: usize,
    /// First wait after a failed delivery; doubled up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Connect, write and request timeout of deliveries.
    pub timeout: Duration,
    /// Extra trusted CA certificates (PEM) for `syslog+tls` and `https` (`EVIDENT_OUTBOUND_CA_FILE`).
    pub ca_file: Option<PathBuf>,
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig {
            poll: Duration::from_millis(250),
            batch: 500,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }
}

/// Which entries a stream delivers: all, findings only (`evident.finding.*`), and/or a search
/// filter (`evident_wire::filter`, the same meaning as on `GET /v1/events`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamFilter {
    #[serde(default)]
    pub findings_only: bool,
    /// Search filters by their query-parameter names.
    #[serde(default)]
    pub search: BTreeMap<String, String>,
}

impl StreamFilter {
    pub fn filter(&self) -> Result<Filter, evident_wire::filter::Invalid> {
        Filter::from_pairs(self.search.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Whether the stream delivers an entry.
    pub fn matches(&self, filter: &Filter, entry: &serde_json::Value) -> bool {
        let event_type = entry.get("type").and_then(serde_json::Value::as_str).unwrap_or("");
        if self.findings_only && !event_type.starts_with("evident.finding.") {
            return false;
        }
        let time = entry.get("time").and_then(serde_json::Value::as_str).and_then(Micros::parse_rfc3339);
        filter.mismatch(entry, time.unwrap_or(Micros(0))).is_none()
    }
}

/// A stream's definition, as stored (`StreamRow::spec`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub format: Format,
    pub destination: String,
    /// The HEC token (or bearer token of a plain HTTP receiver); never shown.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub filter: StreamFilter,
    pub created_at: String,
    pub created_by: String,
}

/// A stream's delivery state, as stored (`StreamRow::status`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// Events delivered since the stream was created.
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub last_delivered_at: Option<String>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub failures: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_error_at: Option<String>,
}

pub fn spec_of(row: &StreamRow) -> Option<Spec> {
    serde_json::from_slice(&row.spec).ok()
}

pub fn status_of(row: &StreamRow) -> Status {
    serde_json::from_slice(&row.status).unwrap_or_default()
}

/// Counters of streams, and each stream's lag as last seen by this node.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub events_delivered: Counter,
    pub batches_delivered: Counter,
    pub delivery_failures: Counter,
    /// (tenant, stream id) -> entries not yet delivered.
    lag: Mutex<BTreeMap<(String, String), u64>>,
}

impl StreamStats {
    fn set_lag(&self, tenant: &TenantId, id: &str, lag: Option<u64>) {
        let mut lags = self.lag.lock().expect("not poisoned");
        let key = (tenant.as_str().to_owned(), id.to_owned());
        match lag {
            Some(lag) => lags.insert(key, lag),
            None => lags.remove(&key),
        };
    }

    /// Prometheus text: totals for everyone, per-stream lag only with tenant labels allowed.
    pub fn write_metrics(&self, out: &mut String, per_tenant: bool) {
        use std::fmt::Write as _;
        let counters = [
            (
                "evident_stream_events_delivered_total",
                "Events streams delivered.",
                self.events_delivered.get(),
            ),
            (
                "evident_stream_batches_delivered_total",
                "Batches streams delivered.",
                self.batches_delivered.get(),
            ),
            (
                "evident_stream_delivery_failures_total",
                "Stream deliveries that failed.",
                self.delivery_failures.get(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let lags = self.lag.lock().expect("not poisoned").clone();
        let max = lags.values().copied().max().unwrap_or(0);
        let _ = writeln!(
            out,
            "# HELP evident_stream_lag_entries_max Entries the most lagging stream this node delivers has not delivered.\n\
             # TYPE evident_stream_lag_entries_max gauge\nevident_stream_lag_entries_max {max}"
        );
        if per_tenant {
            let _ = writeln!(
                out,
                "# HELP evident_stream_lag_entries Entries a stream has not delivered yet.\n# TYPE evident_stream_lag_entries gauge"
            );
            for ((tenant, id), lag) in lags {
                let _ =
                    writeln!(out, "evident_stream_lag_entries{{tenant=\"{tenant}\",stream=\"{id}\"}} {lag}");
            }
        }
    }
}

/// What the handlers and the delivery tasks share.
pub struct Streams {
    pub config: StreamConfig,
    pub stats: StreamStats,
    /// `None` when the CA file could not be read: deliveries over TLS then fail with its error.
    outbound: Result<Outbound, String>,
}

impl Streams {
    pub fn new(config: StreamConfig, allow_private: bool) -> Streams {
        let outbound = outbound(&config, allow_private);
        if let Err(err) = &outbound {
            tracing::error!(error = %err, "streams cannot deliver");
        }
        Streams { config, stats: StreamStats::default(), outbound }
    }

    pub fn allow_private(&self) -> bool {
        self.outbound.as_ref().map(|o| o.allow_private).unwrap_or(false)
    }
}

fn outbound(config: &StreamConfig, allow_private: bool) -> Result<Outbound, String> {
    let tls = dest::tls_config(config.ca_file.as_deref())?;
    let mut roots = Vec::new();
    if let Some(path) = &config.ca_file {
        for cert in dest::extra_cas(path)? {
            roots.push(reqwest::Certificate::from_der(&cert).map_err(|err| err.to_string())?);
        }
    }
    let http = crate::outbound::client(config.timeout, allow_private, &roots);
    Ok(Outbound { allow_private, tls, http, timeout: config.timeout })
}

/// The delivery tasks: started with the server, stopped after it.
pub struct Streamer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Streamer {
    pub fn start(state: AppState) -> Streamer {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(state, stopped));
        Streamer { stop, task }
    }

    /// Stops every delivery task (a batch under way is cut short; its cursor did not move, so it
    /// is sent again at the next start).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the streamer failed");
        }
    }
}

/// Keeps one task per stored stream until stopped.
async fn supervise(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let store = Arc::clone(state.engine.store());
        match crate::offload::blocking(move || store.streams(None)).await {
            Ok(rows) => {
                tasks.retain(|_, task| !task.is_finished());
                for row in rows {
                    tasks.entry(row.id.clone()).or_insert_with(|| {
                        tokio::spawn(deliver(state.clone(), row.tenant, row.id, stopped.clone()))
                    });
                }
            }
            Err(err) => tracing::warn!(error = ?err, "cannot list streams"),
        }
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(state.streams.config.poll) => {}
        }
    }
    for (_, task) in tasks {
        task.abort();
        let _ = task.await;
    }
}

/// What one pass of a delivery task did.
enum Pass {
    /// Delivered (or skipped) entries: look again at once.
    Moved,
    /// Nothing to deliver, or not this node's to deliver: wait a poll interval.
    Idle,
    /// Delivery failed: wait the backoff.
    Failed,
    /// The stream is gone.
    Gone,
}

/// One stream's delivery loop.
async fn deliver(state: AppState, tenant: TenantId, id: String, mut stopped: watch::Receiver<bool>) {
    let config = state.streams.config.clone();
    let mut connection = None;
    let mut backoff = config.backoff;
    loop {
        let wait = match pass(&state, &tenant, &id, &mut connection).await {
            Pass::Moved => {
                backoff = config.backoff;
                Duration::ZERO
            }
            Pass::Idle => config.poll,
            Pass::Failed => {
                let wait = backoff;
                backoff = (backoff * 2).min(config.max_backoff);
                wait
            }
            Pass::Gone => break,
        };
        if *stopped.borrow() {
            break;
        }
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    state.streams.stats.set_lag(&tenant, &id, None);
}

/// Reads the stream's row and a batch at its cursor, delivers what matches, moves the cursor.
async fn pass(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    connection: &mut Option<dest::Connection>,
) -> Pass {
    if !state.engine.led_tenants().iter().any(|(t, _)| t == tenant) {
        state.streams.stats.set_lag(tenant, id, None);
        return Pass::Idle;
    }
    let store = Arc::clone(state.engine.store());
    let (batch, who, wanted) = (state.streams.config.batch, tenant.clone(), id.to_owned());
    let read = crate::offload::blocking(move || {
        let Some(row) = store.streams(Some(&who))?.into_iter().find(|r| r.id == wanted) else {
            return Ok::<_, evident_core::Error>(None);
        };
        let entries = store.scan_entries(&who, row.cursor, batch)?;
        let head = store.head(&who)?.map_or(0, |head| head.size.0);
        Ok(Some((row, entries, head)))
    });
    let (row, entries, head) = match read.await {
        Ok(Some(read)) => read,
        Ok(_) => return Pass::Gone,
        Err(err) => {
            tracing::warn!(%tenant, stream = id, error = ?err, "cannot read the stream's entries");
            return Pass::Failed;
        }
    };
    let next = entries.last().map_or(row.cursor, |e| e.index + 1);
    state.streams.stats.set_lag(tenant, id, Some(head.max(next).saturating_sub(row.cursor)));
    if entries.is_empty() {
        return Pass::Idle;
    }
    let Some(spec) = spec_of(&row) else {
        tracing::error!(%tenant, stream = id, "the stream's definition is unreadable");
        return Pass::Failed;
    };
    let origin = state.engine.origin(tenant);
    let items = match items(&spec, &origin, &entries) {
        Ok(items) => items,
        Err(err) => return record_failure(state, &row, err).await,
    };
    let sent =
        match (&state.streams.outbound, Destination::parse(&spec.destination, state.streams.allow_private()))
        {
            (Ok(outbound), Ok(destination)) => {
                dest::send(&destination, spec.token.as_deref(), spec.format, &items, connection, outbound)
                    .await
            }
            (Err(err), _) => Err(err.clone()),
            (_, Err(err)) => Err(err),
        };
    match sent {
        Ok(()) => record_success(state, &row, next, items.len() as u64).await,
        Err(err) => record_failure(state, &row, err).await,
    }
}

/// The renderings of the entries the stream's filter matches.
fn items(
    spec: &Spec,
    origin: &str,
    entries: &[evident_core::store::ScannedEntry],
) -> Result<Vec<Item>, String> {
    let filter = spec.filter.filter().map_err(|err| format!("the stream's filter is invalid: {err}"))?;
    let mut items = Vec::new();
    for scanned in entries {
        let entry: serde_json::Value = serde_json::from_slice(&scanned.entry)
            .map_err(|err| format!("entry {} is not JSON: {err}", scanned.index))?;
        if spec.filter.matches(&filter, &entry) {
            items.push(Item::new(spec.format, &Entry { index: scanned.index, origin, entry: &entry }));
        }
    }
    Ok(items)
}

async fn record_success(state: &AppState, row: &StreamRow, next: u64, delivered: u64) -> Pass {
    let mut status = status_of(row);
    status.delivered += delivered;
    status.failures = 0;
    if delivered > 0 {
        status.last_delivered_at = Some(Micros::now().to_rfc3339());
        state.streams.stats.events_delivered.add(delivered);
        state.streams.stats.batches_delivered.inc();
    }
    let (store, row, bytes) =
        (Arc::clone(state.engine.store()), row.clone(), serde_json::to_vec(&status).expect("serialises"));
    let moved = crate::offload::blocking(move || {
        store.advance_stream(&row.tenant, &row.id, row.cursor, next, &bytes)
    })
    .await;
    match moved {
        // Not moved: the stream was repositioned or deleted meanwhile; the next pass sees which.
        Ok(_) => Pass::Moved,
        Err(err) => {
            tracing::warn!(error = ?err, "cannot store a stream's cursor; the batch will be sent again");
            Pass::Failed
        }
    }
}

async fn record_failure(state: &AppState, row: &StreamRow, err: String) -> Pass {
    tracing::warn!(tenant = %row.tenant, stream = row.id, error = %err, "stream delivery failed");
    state.streams.stats.delivery_failures.inc();
    let mut status = status_of(row);
    status.failures += 1;
    status.last_error = Some(err);
    status.last_error_at = Some(Micros::now().to_rfc3339());
    let (store, row, bytes) =
        (Arc::clone(state.engine.store()), row.clone(), serde_json::to_vec(&status).expect("serialises"));
    let _ = crate::offload::blocking(move || {
        store.advance_stream(&row.tenant, &row.id, row.cursor, row.cursor, &bytes)
    })
    .await;
    Pass::Failed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_mean_what_searches_mean() {
        let finding = json!({"type": "evident.finding.opened", "actor": {"id": "evident"}, "time": "2026-11-26T10:00:00Z"});
        let read = json!({"type": "customer.record.viewed", "actor": {"id": "agent-1"}, "time": "2026-11-26T10:00:00Z"});
        let check = |filter: StreamFilter, expected: [bool; 2]| {
            let search = filter.filter().expect("a valid filter");
            assert_eq!(
                [filter.matches(&search, &finding), filter.matches(&search, &read)],
                expected,
                "{filter:?}"
            );
        };
        check(StreamFilter::default(), [true, true]);
        check(StreamFilter { findings_only: true, ..StreamFilter::default() }, [true, false]);
        let by_actor = BTreeMap::from([("actor".to_owned(), "agent-1".to_owned())]);
        check(StreamFilter { findings_only: false, search: by_actor.clone() }, [false, true]);
        check(StreamFilter { findings_only: true, search: by_actor }, [false, false]);
        let before = BTreeMap::from([("to".to_owned(), "2026-11-26T10:00:00Z".to_owned())]);
        check(StreamFilter { findings_only: false, search: before }, [false, false]);
    }
}
