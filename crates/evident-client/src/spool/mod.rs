//! The durable spool: [`Spool::record`] writes an event to a local directory and returns once it is
//! on disk; a background thread posts what is spooled to `POST /v1/events` in batches, and forgets
//! an event only after the server acknowledged it.
//!
//! - **Durable on return.** `record` returns only after an fsync covering its event (group commit:
//!   callers that arrive while one fsync is in flight share the next). It never waits on the
//!   network. A crash or SIGKILL at any point loses no event `record` returned for.
//! - **Exactly once in the log.** An event without an `id` gets a UUIDv7 before it is spooled, so
//!   every retry sends the same (`source`, `id`), which the server answers as a duplicate with the
//!   original receipt. The cursor moves only after the server's answer: stored or duplicate items
//!   are done; rejected and conflicting ones go to `dead-letter.ndjson` with the server's reasons.
//! - **Retries.** 5xx, 429, connection errors and answers that do not match the batch are retried
//!   with exponential backoff (100 ms doubling to 30 s, with jitter), never sooner than the
//!   server's `Retry-After`. A 413 halves the batch; a single event the server calls too large is
//!   dead-lettered. Other refusals of the whole batch (401, 403: a wrong key) are retried too, so a
//!   configuration mistake delays events instead of dropping them; `last_error` says why.
//! - **Bounded.** The spool holds at most [`SpoolConfig::max_bytes`] of frames. When it is full,
//!   `record` waits up to [`SpoolConfig::full_wait`] (default 1 s) for the sender to make room, then
//!   refuses with [`SpoolError::Full`]: the application decides what to do, nothing is dropped
//!   silently.
//! - **Observable.** [`Spool::metrics`]: depth in events and bytes, the oldest event's age,
//!   delivered and dead-lettered counts, the last sending error; Prometheus text with
//!   [`SpoolMetrics::prometheus`].
//! - **Receipts checked on arrival** (an option, [`SpoolConfig::verify_receipts`]): the checkpoint
//!   of each acknowledgement must be signed by the log's key, name its origin and cover the event's
//!   index; with a reading client, the event's `c2sp.org/tlog-proof@v1` receipt and entry are
//!   fetched and the inclusion proof verified too. A failure is tamper evidence, counted in
//!   `receipts_failed` with `last_error` (the event is not sent again: the log already holds it).
//! - **One process per directory**: a `flock` on `lock` refuses a second opener.

mod files;
mod sender;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::Client;
use files::{FRAME_HEADER, Queued};

/// The largest event the server takes (`MAX_EVENT_BYTES` of `evident-core`'s validation).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Where and how much to spool, and how to send.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// The spool's directory (created if missing); one process at a time.
    pub dir: PathBuf,
    /// Most bytes of spooled frames (event JSON plus 16 bytes each). Default 256 MiB.
    pub max_bytes: u64,
    /// How long `record` waits for room in a full spool before [`SpoolError::Full`]. Default 1 s.
    pub full_wait: Duration,
    /// Most events in one `POST /v1/events`. Default 1000.
    pub batch_events: usize,
    /// Most bytes of JSON in one `POST /v1/events`. Default 4 MiB.
    pub batch_bytes: u64,
    /// A segment file is closed and the next begun once it is this large. Default 16 MiB.
    pub segment_bytes: u64,
    /// Check each acknowledged event's receipt on arrival (off by default; two more requests per
    /// event): its inclusion proof, against a checkpoint signed by one of these keys.
    pub verify_receipts: Option<ReceiptCheck>,
}

/// What receipts are checked against: the log's verifier keys (`GET /v1/logs/{tenant}/vkeys`,
/// obtained out of band or pinned) and its origin (the checkpoint's first line).
#[derive(Clone, Debug)]
pub struct ReceiptCheck {
    pub vkeys: Vec<String>,
    pub origin: String,
    /// A client with a reading key: with it each event's inclusion proof is fetched and verified
    /// too (two reads per event, each recorded by the server's self-audit). Without it, the
    /// checkpoint each acknowledgement carries is verified (signature, origin, covering the index).
    pub reader: Option<Client>,
}

impl SpoolConfig {
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 256 << 20,
            full_wait: Duration::from_secs(1),
            batch_events: 1000,
            batch_bytes: 4 << 20,
            segment_bytes: 16 << 20,
            verify_receipts: None,
        }
    }
}

/// Why `record` (or opening) failed. Nothing was spooled when `record` fails.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The event cannot be sent as it is; fix the event.
    #[error("the event is invalid: {0}")]
    Invalid(String),
    /// The spool stayed full for `full_wait`: the server is unreachable or slower than the
    /// application. Retry later, or raise `max_bytes`.
    #[error(
        "the spool is full ({depth_bytes} of {max_bytes} bytes spooled); the server is not taking events fast enough"
    )]
    Full { depth_bytes: u64, max_bytes: u64 },
    #[error("the spool directory {path} cannot be used: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the spool directory {0} is in use by another process")]
    Locked(PathBuf),
    /// A write or fsync failed; the spool refuses new events from then on (after a failed fsync the
    /// page cache cannot be trusted). Events already spooled are still sent. Reopen the spool.
    #[error("the spool stopped taking events after a failed write: {0}")]
    Failed(String),
    #[error("the spool is closed")]
    Closed,
}

pub type SpoolResult<T> = Result<T, SpoolError>;

/// What the sender has done so far.
#[derive(Default)]
struct Stats {
    delivered: u64,
    dead_lettered: u64,
    failed_attempts: u64,
    receipts_verified: u64,
    receipts_failed: u64,
    last_error: Option<String>,
}

/// The writer's side of the spool, under one lock.
struct State {
    /// Durable events not yet acknowledged, oldest first (the sender's work).
    queue: VecDeque<Queued>,
    /// Frames of `queue` and `pending` together.
    depth_bytes: u64,
    /// Frames waiting for the next group commit, and their bookkeeping.
    pending: Vec<u8>,
    pending_queued: Vec<Queued>,
    /// `record` calls numbered in order; all up to `durable_ticket` are on disk.
    next_ticket: u64,
    durable_ticket: u64,
    /// The last segment; `None` while a group commit writes it (that caller is the leader).
    tail: Option<File>,
    tail_segment: u64,
    tail_len: u64,
    failed: Option<String>,
    closing: bool,
    stats: Stats,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled on every change: a commit, an acknowledgement, closing.
    changed: Condvar,
    config: SpoolConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A durable spool in front of a [`Client`]. See the module documentation for its guarantees.
pub struct Spool {
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    _lock: File,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`, recovers what an earlier process left there,
    /// and starts sending through `client`.
    pub fn open(config: SpoolConfig, client: Client) -> SpoolResult<Spool> {
        let dir = config.dir.clone();
        let receipts = match &config.verify_receipts {
            Some(check) => Some(sender::Receipts::new(check)?),
            None => None,
        };
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
        let lock = lock.map_err(io_error(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| SpoolError::Locked(dir.clone()))?;
        let recovered = files::recover(&dir).map_err(io_error(&dir))?;
        let depth_bytes = recovered.queue.iter().map(|queued| queued.frame_bytes).sum();
        let state = State {
            queue: recovered.queue,
            depth_bytes,
            pending: Vec::new(),
            pending_queued: Vec::new(),
            next_ticket: 0,
            durable_ticket: 0,
            tail: Some(recovered.tail),
            tail_segment: recovered.tail_segment,
            tail_len: recovered.tail_len,
            failed: None,
            closing: false,
            stats: Stats::default(),
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), changed: Condvar::new(), config });
        let cursor = recovered.cursor;
        let sender_shared = Arc::clone(&shared);
        let sender = std::thread::Builder::new()
            .name("evident-spool-sender".into())
            .spawn(move || sender::run(&sender_shared, &client, receipts.as_ref(), cursor))
            .map_err(io_error(&dir))?;
        Ok(Spool { shared, sender: Some(sender), _lock: lock })
    }

    /// Spools `event` (a JSON object) and returns its `id` once the event is durable on disk; a
    /// missing `id` is given a UUIDv7 first. Never waits on the network; waits at most
    /// `full_wait` for room when the spool is full.
    pub fn record(&self, event: &impl Serialize) -> SpoolResult<String> {
        let (id, payload) = prepare(event)?;
        let frame_bytes = FRAME_HEADER + payload.len() as u64;
        let config = &self.shared.config;
        if frame_bytes > config.max_bytes {
            return Err(SpoolError::Invalid(format!(
                "the event takes {frame_bytes} bytes, more than the whole spool ({} bytes)",
                config.max_bytes
            )));
        }
        let mut state = self.shared.lock();
        let deadline = Instant::now() + config.full_wait;
        while state.depth_bytes + frame_bytes > config.max_bytes {
            refuse_if_stopped(&state)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SpoolError::Full { depth_bytes: state.depth_bytes, max_bytes: config.max_bytes });
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        refuse_if_stopped(&state)?;
        let recorded_at = now_micros();
        files::encode(recorded_at, &payload, &mut state.pending);
        state.pending_queued.push(Queued { recorded_at, frame_bytes });
        state.depth_bytes += frame_bytes;
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        self.commit(state, ticket)?;
        Ok(id)
    }

    /// Waits until the frames up to `ticket` are durable, leading a group commit when no other
    /// caller is writing: it writes everything pending (its own frame and others') with one fsync.
    fn commit<'a>(&'a self, mut state: MutexGuard<'a, State>, ticket: u64) -> SpoolResult<()> {
        loop {
            if state.durable_ticket >= ticket {
                return Ok(());
            }
            if let Some(why) = &state.failed {
                return Err(SpoolError::Failed(why.clone()));
            }
            let Some(file) = state.tail.take() else {
                state = self.shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let bytes = std::mem::take(&mut state.pending);
            let queued = std::mem::take(&mut state.pending_queued);
            let upto = state.next_ticket;
            let (segment, len) = (state.tail_segment, state.tail_len);
            drop(state);
            // A crash during this write leaves a torn frame at the end of the segment, which
            // recovery cuts off: none of these callers has returned yet.
            let written = self.write_durably(file, segment, len, &bytes);
            state = self.shared.lock();
            match written {
                Ok((file, segment, len)) => {
                    state.tail = Some(file);
                    (state.tail_segment, state.tail_len) = (segment, len);
                    state.queue.extend(queued);
                    state.durable_ticket = upto;
                }
                Err(err) => {
                    state.depth_bytes -= queued.iter().map(|q| q.frame_bytes).sum::<u64>();
                    state.failed = Some(format!("{}: {err}", self.shared.config.dir.display()));
                }
            }
            self.shared.changed.notify_all();
        }
    }

    /// Appends `bytes` to the tail segment and fsyncs it; begins the next segment when it is full.
    fn write_durably(
        &self,
        mut file: File,
        segment: u64,
        len: u64,
        bytes: &[u8],
    ) -> io::Result<(File, u64, u64)> {
        file.write_all(bytes)?;
        file.sync_data()?;
        let len = len + bytes.len() as u64;
        if len < self.shared.config.segment_bytes {
            return Ok((file, segment, len));
        }
        let next = files::create_segment(&self.shared.config.dir, segment + 1)?;
        Ok((next, segment + 1, 0))
    }

    /// Waits until everything spooled so far is acknowledged by the server; false when `timeout`
    /// passes first.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.queue.is_empty() && state.pending_queued.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// The spool's depth, its oldest event's age and what the sender has done.
    pub fn metrics(&self) -> SpoolMetrics {
        let state = self.shared.lock();
        let oldest = state.queue.front().or(state.pending_queued.first()).map(|queued| queued.recorded_at);
        SpoolMetrics {
            depth_events: (state.queue.len() + state.pending_queued.len()) as u64,
            depth_bytes: state.depth_bytes,
            oldest_age: oldest.map(|at| Duration::from_micros(now_micros().saturating_sub(at).max(0) as u64)),
            delivered: state.stats.delivered,
            dead_lettered: state.stats.dead_lettered,
            failed_attempts: state.stats.failed_attempts,
            receipts_verified: state.stats.receipts_verified,
            receipts_failed: state.stats.receipts_failed,
            last_error: state.stats.last_error.clone(),
        }
    }

    /// The file rejected and conflicting events are appended to, one JSON object per line.
    pub fn dead_letter_path(&self) -> PathBuf {
        sender::dead_letter_path(&self.shared.config.dir)
    }

    /// Stops the sender (after the request in flight, if any) and releases the directory. Events
    /// not yet acknowledged stay spooled and are sent by the next `open`.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.shared.config.dir).finish_non_exhaustive()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn refuse_if_stopped(state: &State) -> SpoolResult<()> {
    if state.closing {
        return Err(SpoolError::Closed);
    }
    match &state.failed {
        Some(why) => Err(SpoolError::Failed(why.clone())),
        None => Ok(()),
    }
}

/// The event as it will be sent, with its id (given one when it has none).
fn prepare(event: &impl Serialize) -> SpoolResult<(String, Vec<u8>)> {
    let mut value = serde_json::to_value(event).map_err(|err| SpoolError::Invalid(err.to_string()))?;
    let Value::Object(fields) = &mut value else {
        return Err(SpoolError::Invalid("an event must be a JSON object".into()));
    };
    let id = match fields.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        None | Some(Value::Null) => {
            let id = uuid::Uuid::now_v7().to_string();
            fields.insert("id".into(), Value::String(id.clone()));
            id
        }
        Some(_) => return Err(SpoolError::Invalid("id must be a non-empty string (or absent)".into())),
    };
    let payload = serde_json::to_vec(&value).map_err(|err| SpoolError::Invalid(err.to_string()))?;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(SpoolError::Invalid(format!(
            "the event is {} bytes of JSON; the server takes at most {MAX_EVENT_BYTES}",
            payload.len()
        )));
    }
    Ok((id, payload))
}

/// A snapshot of a spool's state.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolMetrics {
    /// Events spooled and not yet acknowledged.
    pub depth_events: u64,
    pub depth_bytes: u64,
    /// How long the oldest of them has waited (`None` when the spool is empty).
    pub oldest_age: Option<Duration>,
    /// Events the server acknowledged (stored or duplicate) since `open`.
    pub delivered: u64,
    /// Events the server rejected or found conflicting since `open`.
    pub dead_lettered: u64,
    /// Sending attempts that failed and will be retried.
    pub failed_attempts: u64,
    /// With `verify_receipts`: receipts that verified, and those that did not (tamper evidence).
    pub receipts_verified: u64,
    pub receipts_failed: u64,
    pub last_error: Option<String>,
}

impl SpoolMetrics {
    /// Prometheus text exposition of the numbers.
    pub fn prometheus(&self) -> String {
        let gauges = [
            (
                "evident_spool_depth_events",
                "gauge",
                "Events spooled and not yet acknowledged.",
                self.depth_events as f64,
            ),
            (
                "evident_spool_depth_bytes",
                "gauge",
                "Bytes spooled and not yet acknowledged.",
                self.depth_bytes as f64,
            ),
            (
                "evident_spool_oldest_age_seconds",
                "gauge",
                "Age of the oldest unacknowledged event.",
                self.oldest_age.map_or(0.0, |age| age.as_secs_f64()),
            ),
            (
                "evident_spool_delivered_total",
                "counter",
                "Events the server acknowledged.",
                self.delivered as f64,
            ),
            (
                "evident_spool_dead_lettered_total",
                "counter",
                "Events the server refused, written to the dead-letter file.",
                self.dead_lettered as f64,
            ),
            (
                "evident_spool_failed_attempts_total",
                "counter",
                "Sending attempts that failed and are retried.",
                self.failed_attempts as f64,
            ),
            (
                "evident_spool_receipts_failed_total",
                "counter",
                "Receipts of acknowledged events that did not verify.",
                self.receipts_failed as f64,
            ),
        ];
        let mut text = String::new();
        for (name, kind, help, value) in gauges {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests;
