//! `evident hammer`: a load tool in the spirit of Tessera's `hammer`. Producer threads append
//! realistic events (about 500 bytes of producer JSON, three personal fields) straight into a data
//! directory's store through the engine, and it reports throughput and acknowledgement latency.
//! With `--print-acks` it prints one line per acknowledged event as soon as it is acknowledged,
//! which the crash test uses to check that nothing acknowledged is lost.
//!
//! Each request goes the server's way: the raw JSON bytes of its events are parsed and validated
//! (`parse_event_json`), then appended. The acknowledgement latency of a request runs from the
//! moment its bytes are in hand (or, with `--rate`, from when it was due) to its acknowledgement.
//!
//! `--peer` replaces the engine by a baseline fed by the same producers with the same requests:
//! - `plain-sqlite`: the same rows in SQLite, one transaction per request, with the embedded store's
//!   settings and no tamper evidence (`evident_store_sqlite::peer`, which also holds its SQL),
//!   behind a mutex.
//! - `fsync-loop`: each request's bytes appended to one file and `fdatasync`ed, serialised by a
//!   mutex: the device's limit at that request pattern.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use evident_core::engine::{Engine, EngineConfig, Outcome};
use evident_core::event::TenantPolicy;
use evident_core::seal::MasterKey;
use evident_core::store::{IndexProgress, Store, TenantId};
use evident_core::validate::{Validated, parse_event_json};
use evident_store_sqlite::peer::PlainSqlite;
use evident_wire::Micros;
use serde_json::json;

use crate::DataDirArg;
use crate::datadir::{DataDir, MASTER_KEY_FILE, SIGNING_KEY_FILE};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data_dir: DataDirArg,
    #[arg(long, default_value = "default")]
    tenant: String,
    /// What receives the events: the engine, or a baseline (see the module documentation).
    #[arg(long, value_enum, default_value_t = Peer::Evident)]
    peer: Peer,
    /// Concurrent producers (threads), each waiting for its acknowledgement before sending again.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Open-loop pacing: send requests on a fixed schedule of this many events per second in all
    /// (spread over the producers); latency is then counted from when a request was due.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Requests begun (with `--rate`, due) in the first this many seconds are left out of the
    /// latency percentiles and reported apart (`warmup_*` in the JSON, whose `requests` then
    /// counts only the others): a fresh process's first
    /// moments (each of the producer threads' first allocations, the first data keys) are not
    /// the steady state a latency goal is about. The events still count in the rate.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Stop after this many events in all (whichever comes first).
    #[arg(long)]
    events: Option<u64>,
    /// Prefix of producer event ids; reuse one to re-send the same events (idempotency).
    #[arg(long, default_value = "hammer")]
    id_prefix: String,
    /// Print `ack <source> <id> <index>` for every acknowledged event.
    #[arg(long)]
    print_acks: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "evident.localhost")]
    origin_prefix: String,
    /// Group commit: at most this many events per commit (the engine's default).
    #[arg(long, default_value_t = 1024)]
    max_batch_entries: usize,
    /// Group commit: wait at most this long for more requests (the engine's default).
    #[arg(long, default_value_t = 0.0)]
    max_batch_delay_ms: f64,
    /// Keep a checkpoint in the history per this many entries (the engine's default; 1 keeps
    /// every commit's, as before the history was bounded).
    #[arg(long, default_value_t = 1000)]
    keep_checkpoint_entries: u64,
    /// Distinct customers the events concern.
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
    /// PostgreSQL instead of the embedded store (the data directory then holds only the keys).
    #[arg(long)]
    database_url: Option<String>,
    /// The PostgreSQL schema to use.
    #[arg(long)]
    database_schema: Option<String>,
    /// Engines sharing the PostgreSQL store, as separate nodes would (each with its own
    /// connections); producers are spread over them, so most requests go through a follower.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Run detection in the same process with this many active rules (built from every template;
    /// see `bench_rules`), as `evident serve` does. Without it, no detector runs.
    #[arg(long)]
    detect_rules: Option<usize>,
    /// After the load (needs --detect-rules): this many events, one every 20 ms, that each raise a
    /// finding; reports the time from each one's acknowledgement to the finding's webhook delivery
    /// at a local HTTP receiver.
    #[arg(long, default_value_t = 0)]
    webhook_samples: usize,
    /// Take the webhook samples while the producers run (from the start of the load, one every
    /// 20 ms), not after: the latency of a finding under load.
    #[arg(long)]
    webhook_under_load: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Peer {
    /// The engine and its SQLite store.
    Evident,
    /// The same rows in SQLite, one transaction per request, no tamper evidence.
    PlainSqlite,
    /// Append each request's bytes to one file and fdatasync.
    FsyncLoop,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Evident => "evident",
            Peer::PlainSqlite => "plain-sqlite",
            Peer::FsyncLoop => "fsync-loop",
        }
    }
}

const SOURCE: &str = "//crm.example.com/support-api";

/// 2026-01-01T00:00:00Z: the generated events' times count from it.
const BASE_TIME: Micros = Micros(1_767_225_600_000_000);

/// The `k`th event of a producer, with the id `<prefix>-<producer>-<k>`: a function of those two
/// numbers only, so re-sending an id (a reused `--id-prefix`) re-sends the very same event. Its time
/// is [`BASE_TIME`] plus `k` milliseconds plus `producer` microseconds, so producers' events
/// arrive in about time order, as they would with real clocks.
fn sample_event_for(id: &str, producer: u64, k: u64, customers: u64) -> Vec<u8> {
    let time = Micros(BASE_TIME.0 + k as i64 * 1000 + producer as i64).to_rfc3339();
    sample_event(id, (producer << 40) | k, customers, &time)
}

/// One realistic customer-service event as producer JSON, about 500 bytes, with three personal
/// fields: `actor.display`, the change's `before`/`after` and `origin.ip`. A `format!` template,
/// so that generating it costs little next to parsing, validating and storing it.
pub fn sample_event(id: &str, n: u64, customers: u64, time: &str) -> Vec<u8> {
    let customer = n.wrapping_mul(2_654_435_761) % customers.max(1);
    let agent = n % 97;
    let ticket = n / 3;
    let (a, b, c) = (n % 200, n % 250, n % 199);
    format!(
        concat!(
            r#"{{"id":"{id}","source":"{source}","type":"customer.updated","action":"update","time":"{time}","#,
            r#""actor":{{"id":"agent-{agent}","type":"user","display":"Agent Number {agent}"}},"#,
            r#""subject":"cust-{customer}","targets":[{{"type":"customer","id":"cust-{customer}"}},"#,
            r#"{{"type":"ticket","id":"TCK-{ticket}"}}],"outcome":"success","reason":"contact update","#,
            r#""changes":[{{"field":"/email","before":"c{customer}@old.example.com","#,
            r#""after":"c{customer}@new.example.com"}}],"origin":{{"ip":"10.{a}.{b}.{c}"}},"#,
            r#""data_classes":["pii"]}}"#
        ),
        id = id,
        source = SOURCE,
        time = time,
        agent = agent,
        customer = customer,
        ticket = ticket,
        a = a,
        b = b,
        c = c,
    )
    .into_bytes()
}

/// What the producers send to.
enum Sink {
    Evident { engines: Vec<Arc<Engine>>, tenant: TenantId, policy: TenantPolicy },
    PlainSqlite { policy: TenantPolicy, db: Mutex<PlainSqlite> },
    FsyncLoop(Mutex<FsyncLoop>),
}

impl Sink {
    /// Stores one request's events and returns once they are durable, with the index of each;
    /// `None` when the engine answered overloaded (nothing stored; send again).
    fn send(&self, producer: usize, events: &[Vec<u8>]) -> Result<Option<Vec<u64>>> {
        match self {
            Sink::Evident { engines, tenant, policy } => {
                let engine = &engines[producer % engines.len()];
                let validated = validate_all(events, policy)?;
                let outcomes = match engine.append(tenant, validated) {
                    Ok(outcomes) => outcomes,
                    Err(evident_core::Error::Overloaded { .. }) => return Ok(None),
                    Err(err) => return Err(err).context("append failed"),
                };
                outcomes
                    .into_iter()
                    .map(|outcome| match outcome {
                        Outcome::Stored(receipt) | Outcome::Duplicate(receipt) => Ok(receipt.index),
                        other => anyhow::bail!("an event was not stored: {other:?}"),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
            Sink::PlainSqlite { policy, db } => {
                let validated = validate_all(events, policy)?;
                Ok(Some(db.lock().expect("plain-sqlite lock").insert(events, &validated)?))
            }
            Sink::FsyncLoop(file) => {
                let mut bytes = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum());
                for event in events {
                    bytes.extend_from_slice(event);
                    bytes.push(b'\n');
                }
                file.lock().expect("fsync-loop lock").append(&bytes, events.len()).map(Some)
            }
        }
    }
}

fn validate_all(events: &[Vec<u8>], policy: &TenantPolicy) -> Result<Vec<Validated>> {
    events
        .iter()
        .map(|bytes| {
            parse_event_json(bytes, policy)
                .map_err(|errors| anyhow::anyhow!("generated event is invalid: {errors:?}"))
        })
        .collect()
}

/// The `fsync-loop` peer: one append-only file.
struct FsyncLoop {
    file: File,
    events: u64,
}

impl FsyncLoop {
    fn open(path: &Path) -> Result<FsyncLoop> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(FsyncLoop { file, events: 0 })
    }

    fn append(&mut self, bytes: &[u8], count: usize) -> Result<Vec<u64>> {
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        let first = self.events;
        self.events += count as u64;
        Ok((first..self.events).collect())
    }
}

/// Latencies in nanoseconds, in buckets 1/128 of a power of two wide (under 0.8 % error), so that
/// memory stays constant however long the run.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 7;

    fn new() -> Histogram {
        Histogram { counts: vec![0; (64 - Self::SUB_BITS as usize + 1) << Self::SUB_BITS], total: 0 }
    }

    fn bucket(value: u64) -> usize {
        if value < 1 << Self::SUB_BITS {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros();
        let shift = exponent - Self::SUB_BITS;
        (((shift + 1) as usize) << Self::SUB_BITS) + ((value >> shift) as usize - (1 << Self::SUB_BITS))
    }

    /// The middle of a bucket's range.
    fn value(bucket: usize) -> u64 {
        let sub = 1usize << Self::SUB_BITS;
        if bucket < sub {
            return bucket as u64;
        }
        let shift = (bucket >> Self::SUB_BITS) as u32 - 1;
        let low = ((bucket & (sub - 1)) as u64 + sub as u64) << shift;
        low + ((1u64 << shift) >> 1)
    }

    fn record(&mut self, latency: Duration) {
        self.counts[Self::bucket(latency.as_nanos().min(u64::MAX as u128) as u64)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// The latency below which a fraction `p` of the requests were answered, in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((self.total as f64 * p) as u64 + 1).min(self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(bucket) as f64 / 1e6;
            }
        }
        unreachable!("rank is at most the total")
    }
}

/// What producers did: acknowledgement latencies, events stored, overloaded answers, bytes sent.
struct ProducerReport {
    latencies: Histogram,
    /// Those of requests begun in the warm-up (`--warmup`).
    warmup: Histogram,
    stored: u64,
    overloaded: u64,
    bytes: u64,
}

impl ProducerReport {
    fn new() -> ProducerReport {
        ProducerReport {
            latencies: Histogram::new(),
            warmup: Histogram::new(),
            stored: 0,
            overloaded: 0,
            bytes: 0,
        }
    }

    fn merge(&mut self, other: &ProducerReport) {
        self.latencies.merge(&other.latencies);
        self.warmup.merge(&other.warmup);
        self.stored += other.stored;
        self.overloaded += other.overloaded;
        self.bytes += other.bytes;
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Checked before anything is opened or written.
    if args.rate.is_some_and(|rate| rate.is_nan() || rate <= 0.0) {
        anyhow::bail!("--rate must be positive");
    }
    if !(args.warmup >= 0.0 && args.warmup < args.seconds) {
        anyhow::bail!("--warmup must be at least 0 and less than --seconds ({})", args.seconds);
    }
    let dir = DataDir::open(&args.data_dir.data_dir, true)?;
    if args.nodes > 1 && args.database_url.is_none() {
        anyhow::bail!("--nodes needs --database-url: the embedded store has one node");
    }
    let (sink, engines) = open_sink(&args, &dir)?;
    let detection = match (engines.first(), args.detect_rules) {
        (Some(engine), Some(rules)) => Some(Detection::start(engine, &TenantId::new(&args.tenant)?, rules)?),
        (None, Some(_)) => anyhow::bail!("--detect-rules needs the evident peer"),
        _ => None,
    };
    let load = apply_load(&args, sink, &engines, detection.as_ref())?;
    // Taken as the load ends: how far the search index is behind what was acknowledged.
    let index = engines.first().and_then(|engine| engine.store().index_progress());
    let mut detect_summary = serde_json::Value::Null;
    if let (Some(detection), Some(engine)) = (detection, engines.first()) {
        let tenant = TenantId::new(&args.tenant)?;
        detect_summary =
            detection.finish(engine, &tenant, load.report.stored, args.webhook_samples, load.sampled)?;
    }
    for engine in engines {
        engine.shutdown();
    }
    if let Some(err) = load.failure {
        return Err(err);
    }
    print_summary(&args, &load.report, load.seconds, index, detect_summary);
    Ok(ExitCode::SUCCESS)
}

/// What receives the events, and the engines when it is Evident.
fn open_sink(args: &Args, dir: &DataDir) -> Result<(Sink, Vec<Arc<Engine>>)> {
    let sink = match args.peer {
        Peer::Evident => {
            let engines = open_engines(args, dir)?;
            let tenant = TenantId::new(&args.tenant)?;
            // On a shared store, start once a node leads the tenant.
            let waited = Instant::now();
            while !engines.iter().any(|e| e.led_tenants().iter().any(|(t, _)| *t == tenant)) {
                if waited.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!("no node took the lease of {tenant} within 30 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let policy = engines[0].policy(&tenant)?;
            return Ok((Sink::Evident { engines: engines.clone(), tenant, policy }, engines));
        }
        Peer::PlainSqlite => Sink::PlainSqlite {
            policy: TenantPolicy::default(),
            db: Mutex::new(PlainSqlite::open(&dir.path.join("plain.sqlite"))?),
        },
        Peer::FsyncLoop => Sink::FsyncLoop(Mutex::new(FsyncLoop::open(&dir.path.join("fsync-loop.log"))?)),
    };
    Ok((sink, Vec::new()))
}

/// One engine per node (`--nodes`) over the data directory's keys, each with the tenant created.
fn open_engines(args: &Args, dir: &DataDir) -> Result<Vec<Arc<Engine>>> {
    let (signing_seed, _) = dir.key(SIGNING_KEY_FILE, true)?;
    let (master, _) = dir.key(MASTER_KEY_FILE, true)?;
    let tenant = TenantId::new(&args.tenant)?;
    let mut engines = Vec::new();
    for node in 0..args.nodes.max(1) {
        let store: Arc<dyn Store> = match &args.database_url {
            Some(url) => crate::serve::DatabaseSettings {
                url: url.clone(),
                schema: args.database_schema.clone(),
                pool_size: None,
                lease_ttl: evident_core::engine::EngineConfig::default().lease_ttl,
            }
            .open()?,
            None => Arc::new(dir.open_store()?),
        };
        let config = EngineConfig {
            origin_prefix: args.origin_prefix.clone(),
            max_batch_entries: args.max_batch_entries,
            max_batch_delay: Duration::from_secs_f64(args.max_batch_delay_ms / 1000.0),
            node_id: format!("hammer-{node}"),
            keep_checkpoint_entries: args.keep_checkpoint_entries.max(1),
            ..EngineConfig::default()
        };
        let opened = Arc::new(Engine::open(store, signing_seed, MasterKey::from_bytes(master), config)?);
        opened.create_tenant(&tenant, TenantPolicy::default())?;
        engines.push(opened);
    }
    Ok(engines)
}

/// What one producer thread needs to know.
#[derive(Clone)]
struct Schedule {
    /// Events per request.
    batch: u64,
    /// `--events`: the most events in all.
    limit: Option<u64>,
    /// `--rate`: events per second in all.
    rate: Option<f64>,
    started: Instant,
    /// Requests begun before this are the warm-up's (`--warmup`).
    warm: Instant,
    deadline: Instant,
    id_prefix: String,
    customers: u64,
    print_acks: bool,
}

/// The load and what came of it.
struct Load {
    report: ProducerReport,
    seconds: f64,
    /// The webhook samples taken during the load (`--webhook-under-load`).
    sampled: Option<(Histogram, u64)>,
    /// The first producer's failure: returned once the engines are shut down.
    failure: Option<anyhow::Error>,
}

/// Runs the producers (and the webhook sampler, under load) until the deadline or the event limit.
fn apply_load(
    args: &Args,
    sink: Sink,
    engines: &[Arc<Engine>],
    detection: Option<&Detection>,
) -> Result<Load> {
    let sink = Arc::new(sink);
    let started = Instant::now();
    let schedule = Schedule {
        batch: args.batch.max(1) as u64,
        limit: args.events,
        rate: args.rate,
        started,
        warm: started + Duration::from_secs_f64(args.warmup),
        deadline: started + Duration::from_secs_f64(args.seconds),
        id_prefix: args.id_prefix.clone(),
        customers: args.customers,
        print_acks: args.print_acks,
    };
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = match (detection, engines.first()) {
        (Some(detection), Some(engine)) if args.webhook_under_load && args.webhook_samples > 0 => {
            let (engine, arrivals) = (Arc::clone(engine), Arc::clone(&detection.arrivals));
            let (tenant, samples) = (TenantId::new(&args.tenant)?, args.webhook_samples);
            Some(std::thread::spawn(move || sample_webhooks(&engine, &tenant, &arrivals, samples)))
        }
        _ => None,
    };
    let workers: Vec<_> = (0..args.producers)
        .map(|producer| {
            let (sink, sent, stop, schedule) =
                (Arc::clone(&sink), Arc::clone(&sent), Arc::clone(&stop), schedule.clone());
            std::thread::spawn(move || produce(producer, &schedule, &sink, &sent, &stop))
        })
        .collect();
    let mut report = ProducerReport::new();
    let mut failure = None;
    for worker in workers {
        match worker.join().map_err(|_| anyhow::anyhow!("a producer panicked")).and_then(|r| r) {
            Ok(producer_report) => report.merge(&producer_report),
            Err(err) => {
                stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(err);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let sampled = match sampler {
        Some(sampler) => Some(sampler.join().map_err(|_| anyhow::anyhow!("the webhook sampler panicked"))??),
        None => None,
    };
    Ok(Load { report, seconds, sampled, failure })
}

/// One producer: claims requests from the shared count `sent`, sends each and waits for its
/// acknowledgement, until the deadline, the event limit or `stop`.
fn produce(
    producer: usize,
    schedule: &Schedule,
    sink: &Sink,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> Result<ProducerReport> {
    let mut report = ProducerReport::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < schedule.deadline {
        let claimed = sent.fetch_add(schedule.batch, Ordering::Relaxed);
        if schedule.limit.is_some_and(|limit| claimed >= limit) {
            break;
        }
        // With --rate, the request is due when the schedule reaches its first event.
        let due = schedule.rate.map(|rate| schedule.started + Duration::from_secs_f64(claimed as f64 / rate));
        if due.is_some_and(|due| due >= schedule.deadline) {
            break;
        }
        let count = schedule.limit.map_or(schedule.batch, |limit| (limit - claimed).min(schedule.batch));
        let ids: Vec<String> =
            (0..count).map(|i| format!("{}-{producer}-{}", schedule.id_prefix, n + i)).collect();
        let events: Vec<Vec<u8>> = ids
            .iter()
            .zip(n..)
            .map(|(id, k)| sample_event_for(id, producer as u64, k, schedule.customers))
            .collect();
        n += count;
        let begun = match due {
            Some(due) => {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                due
            }
            None => Instant::now(),
        };
        let Some(indices) = send_until_taken(sink, producer, &events, schedule, stop, &mut report)? else {
            break;
        };
        if begun < schedule.warm {
            report.warmup.record(begun.elapsed());
        } else {
            report.latencies.record(begun.elapsed());
        }
        report.stored += indices.len() as u64;
        report.bytes += events.iter().map(|e| e.len() as u64).sum::<u64>();
        if schedule.print_acks {
            print_acks(&ids, &indices)?;
        }
    }
    Ok(report)
}

/// Sends one request again while the engine answers overloaded; `None` when the load ends first.
fn send_until_taken(
    sink: &Sink,
    producer: usize,
    events: &[Vec<u8>],
    schedule: &Schedule,
    stop: &AtomicBool,
    report: &mut ProducerReport,
) -> Result<Option<Vec<u64>>> {
    loop {
        match sink.send(producer, events)? {
            Some(indices) => return Ok(Some(indices)),
            None if stop.load(Ordering::Relaxed) || Instant::now() >= schedule.deadline => return Ok(None),
            None => {
                report.overloaded += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// `ack <source> <id> <index>` for each acknowledged event, flushed at once (the crash test reads them).
fn print_acks(ids: &[String], indices: &[u64]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for (id, index) in ids.iter().zip(indices) {
        writeln!(out, "ack {SOURCE} {id} {index}")?;
    }
    out.flush()?;
    Ok(())
}

/// The summary: one JSON object with `--json`, else a line for people (nothing with `--print-acks`).
fn print_summary(
    args: &Args,
    report: &ProducerReport,
    seconds: f64,
    index: Option<IndexProgress>,
    detect_summary: serde_json::Value,
) {
    let (stored, overloaded, latencies) = (report.stored, report.overloaded, &report.latencies);
    let (p50, p99) = (latencies.percentile_ms(0.50), latencies.percentile_ms(0.99));
    let event_bytes = if stored == 0 { 0.0 } else { report.bytes as f64 / stored as f64 };
    let summary = json!({
        "peer": args.peer.name(), "producers": args.producers, "batch": args.batch, "rate": args.rate,
        "events": stored, "seconds": seconds, "events_per_second": stored as f64 / seconds,
        "requests": latencies.total, "p50_ms": p50, "p99_ms": p99, "overloaded_retries": overloaded,
        "event_bytes": event_bytes, "detect_rules": args.detect_rules, "detect": detect_summary,
        "index_behind": index.map(|i| i.behind), "index_throttled_commits": index.map(|i| i.throttled_commits),
        "index_throttled_seconds": index.map(|i| i.throttled_for.as_secs_f64()),
        "warmup_seconds": args.warmup, "warmup_requests": report.warmup.total,
        "warmup_p99_ms": report.warmup.percentile_ms(0.99), "warmup_max_ms": report.warmup.percentile_ms(1.0),
    });
    if args.json {
        crate::outln!("{summary}");
    } else if !args.print_acks {
        crate::outln!(
            "{}: {stored} events in {seconds:.2} s: {:.0} events/s; ack latency p50 {p50:.2} ms, p99 {p99:.2} ms ({} requests{}, {overloaded} overloaded retries, {event_bytes:.0} bytes per event{})",
            args.peer.name(),
            stored as f64 / seconds,
            latencies.total,
            match report.warmup.total {
                0 => String::new(),
                n => format!(
                    " after the first {} s, {n} in it with p99 {:.2} ms",
                    args.warmup,
                    report.warmup.percentile_ms(0.99)
                ),
            },
            index.map_or(String::new(), |i| format!(
                "; search index {} entries behind at the end, {} commits waited for it, {:.1} s in all",
                i.behind,
                i.throttled_commits,
                i.throttled_for.as_secs_f64()
            ))
        );
    }
}

/// `n` active rules for the benchmark, cycling through twenty variants of the ten templates
/// (the first includes `no_purpose`, which the webhook samples trigger).
fn bench_rules(n: usize) -> Vec<evident_detect::rule::Rule> {
    let watched: Vec<String> = (0..100).map(|c| format!("cust-{}", c * 97)).collect();
    let variants = [
        ("no_purpose", json!({"cooldown_secs": 0})),
        ("mass_access", json!({})),
        ("failed_burst", json!({"by": "ip"})),
        ("off_hours", json!({"utc_offset": "+01:00"})),
        ("watchlist", json!({"subjects": watched})),
        ("sensitive_change", json!({})),
        ("privilege_change", json!({})),
        ("first_touch", json!({})),
        ("silence", json!({})),
        ("baseline", json!({"by": "actor"})),
        ("mass_access", json!({"threshold": 50, "window_secs": 600})),
        ("failed_burst", json!({"by": "actor"})),
        ("off_hours", json!({"days": [1, 2, 3, 4, 5, 6, 7], "start": "22:00", "end": "06:00"})),
        ("watchlist", json!({"targets": ["ticket:TCK-1", "ticket:TCK-2"]})),
        ("no_purpose", json!({"actions": ["export"], "data_classes": []})),
        ("sensitive_change", json!({"fields": ["/phone", "/iban"], "window_secs": 600})),
        ("first_touch", json!({"min_events": 1000})),
        ("silence", json!({"factor": 5.0})),
        ("baseline", json!({"by": "source", "factor": 3.0})),
        ("mass_access", json!({"threshold": 1000, "window_secs": 86_400})),
    ];
    (0..n)
        .map(|i| {
            let (template, params) = &variants[i % variants.len()];
            evident_detect::rule::Rule {
                id: format!("bench-{i}"),
                template: (*template).into(),
                params: params.clone(),
                severity: evident_detect::rule::Severity::High,
                enabled: true,
                description: String::new(),
            }
        })
        .collect()
}

/// The detector running beside the producers, with a webhook to a local receiver.
struct Detection {
    runtime: tokio::runtime::Runtime,
    state: evident_server::AppState,
    detector: evident_server::detect::Detector,
    /// Trigger event id -> when its finding arrived at the receiver.
    arrivals: Arc<Mutex<std::collections::HashMap<String, Instant>>>,
}

impl Detection {
    fn start(engine: &Arc<Engine>, tenant: &TenantId, rules: usize) -> Result<Detection> {
        let arrivals = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let url = receiver(Arc::clone(&arrivals))?;
        let webhook = evident_detect::workspace::Webhook {
            id: "wh_bench".into(),
            url,
            min_severity: evident_detect::rule::Severity::Info,
            created_at: Micros::now().to_rfc3339(),
            description: String::new(),
        };
        evident_detect::workspace::Workspace::install(
            engine.store().as_ref(),
            tenant,
            bench_rules(rules),
            vec![webhook],
        )?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let state =
            evident_server::AppState::try_new(Arc::clone(engine), evident_server::ServerConfig::default())?;
        let detector = {
            let _entered = runtime.enter();
            evident_server::detect::Detector::start(state.clone())
        };
        Ok(Detection { runtime, state, detector, arrivals })
    }

    /// Waits for the detector to evaluate everything stored, measures webhook latency, stops it.
    fn finish(
        self,
        engine: &Arc<Engine>,
        tenant: &TenantId,
        stored: u64,
        samples: usize,
        sampled: Option<(Histogram, u64)>,
    ) -> Result<serde_json::Value> {
        let stats = &self.state.detect.stats;
        let drain_started = Instant::now();
        while stats.events_evaluated.get() < stored && drain_started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let drain = drain_started.elapsed().as_secs_f64();
        let evaluated = stats.events_evaluated.get();
        let under_load = sampled.is_some();
        let (latencies, missing) = match sampled {
            Some(sampled) => sampled,
            None => sample_webhooks(engine, tenant, &self.arrivals, samples)?,
        };
        let findings = stats.findings_opened.get();
        self.runtime.block_on(self.detector.stop());
        Ok(json!({
            "events_evaluated": evaluated, "drain_seconds": drain, "findings": findings,
            "webhook_samples": latencies.total, "webhook_missing": missing,
            "webhook_p50_ms": latencies.percentile_ms(0.50), "webhook_p99_ms": latencies.percentile_ms(0.99),
            "webhook_max_ms": latencies.percentile_ms(1.0), "webhook_under_load": under_load,
        }))
    }
}

/// `samples` events, one every 20 ms (not waiting for their findings, so the pace holds under
/// load), each raising a finding: the time from each one's acknowledgement to its finding's
/// arrival at the receiver, and how many had not arrived 10 s after the last was sent.
fn sample_webhooks(
    engine: &Arc<Engine>,
    tenant: &TenantId,
    arrivals: &Mutex<std::collections::HashMap<String, Instant>>,
    samples: usize,
) -> Result<(Histogram, u64)> {
    let policy = engine.policy(tenant)?;
    let mut sent = Vec::with_capacity(samples);
    for n in 0..samples {
        let event = json!({
            "id": format!("latency-{n}-{}", Micros::now().0), "source": "//bench", "type": "customer.record.viewed",
            "action": "read", "time": Micros::now().to_rfc3339(),
            "actor": {"id": format!("latency-agent-{n}"), "type": "service"}, "subject": "cust-1",
            "targets": [{"type": "customer", "id": "cust-1"}], "outcome": "success",
            "origin": {"service": "bench"}, "data_classes": ["pii"],
        });
        let validated = parse_event_json(event.to_string().as_bytes(), &policy)
            .map_err(|errors| anyhow::anyhow!("latency event invalid: {errors:?}"))?;
        let outcome = engine.append(tenant, vec![validated])?;
        let acked = Instant::now();
        let Some(Outcome::Stored(receipt)) = outcome.into_iter().next() else {
            anyhow::bail!("a latency event was not stored");
        };
        sent.push((receipt.event_id.to_string(), acked));
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let arrived = arrivals.lock().expect("arrivals");
        if sent.iter().all(|(id, _)| arrived.contains_key(id)) || Instant::now() > deadline {
            let mut latencies = Histogram::new();
            let mut missing = 0;
            for (id, acked) in &sent {
                match arrived.get(id) {
                    Some(at) => latencies.record(at.saturating_duration_since(*acked)),
                    None => missing += 1,
                }
            }
            return Ok((latencies, missing));
        }
        drop(arrived);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A minimal HTTP receiver on a local port: records when each finding arrived, by the event ids
/// that triggered it; answers 200.
fn receiver(arrivals: Arc<Mutex<std::collections::HashMap<String, Instant>>>) -> Result<String> {
    use std::io::{BufRead as _, Read as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(clone) = stream.try_clone() else { continue };
            let mut reader = std::io::BufReader::new(clone);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let arrived = Instant::now();
            if let Ok(delivery) = serde_json::from_slice::<serde_json::Value>(&body) {
                let mut arrivals = arrivals.lock().expect("arrivals");
                for trigger in delivery["finding"]["triggers"].as_array().into_iter().flatten() {
                    if let Some(id) = trigger.as_str() {
                        arrivals.entry(id.to_owned()).or_insert(arrived);
                    }
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_event_is_valid_about_500_bytes_with_three_personal_fields_and_repeatable() {
        for (producer, k) in [(0, 0), (3, 1), (7, 12_345), (63, 9_999_999)] {
            let id = format!("hammer-{producer}-{k}");
            let bytes = sample_event_for(&id, producer, k, 10_000);
            assert_eq!(bytes, sample_event_for(&id, producer, k, 10_000), "re-sending must send the same");
            assert!((450..=550).contains(&bytes.len()), "{} bytes", bytes.len());
            let validated = parse_event_json(&bytes, &TenantPolicy::default()).expect("valid");
            let pointers = evident_core::leaf::personal_pointers(&validated.event, &TenantPolicy::default());
            assert_eq!(pointers, ["/actor/display", "/changes/0/before", "/changes/0/after", "/origin/ip"]);
        }
    }

    #[test]
    fn the_plain_sqlite_peer_numbers_its_rows_on_across_reopening() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("plain.sqlite");
        let raw: Vec<Vec<u8>> = (0..6).map(|k| sample_event_for(&format!("p-0-{k}"), 0, k, 100)).collect();
        let validated = validate_all(&raw, &TenantPolicy::default()).expect("valid");
        let mut peer = PlainSqlite::open(&path).expect("opens");
        assert_eq!(peer.insert(&raw[..3], &validated[..3]).expect("stored"), [0, 1, 2]);
        assert_eq!(peer.insert(&raw[3..4], &validated[3..4]).expect("stored"), [3]);
        drop(peer);
        let mut reopened = PlainSqlite::open(&path).expect("opens again");
        assert_eq!(reopened.insert(&raw[4..], &validated[4..]).expect("stored"), [4, 5]);
    }

    #[test]
    fn the_bench_rules_compile() {
        let rules = bench_rules(20);
        assert_eq!(rules.len(), 20);
        evident_detect::eval::Evaluator::new(&rules, Default::default()).expect("compile");
    }

    #[test]
    fn histogram_percentiles_are_within_one_percent() {
        let mut histogram = Histogram::new();
        for micros in 1..=10_000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        for (p, want_ms) in [(0.5, 5.001), (0.99, 9.901)] {
            let got = histogram.percentile_ms(p);
            assert!((got - want_ms).abs() / want_ms < 0.01, "p{p}: {got} ms, want {want_ms} ms");
        }
        for value in [0u64, 1, 127, 128, 129, 255, 256, 1 << 20, (1 << 20) + 12_345, u64::MAX] {
            let mid = Histogram::value(Histogram::bucket(value));
            assert!(mid.abs_diff(value) as f64 <= value as f64 / 128.0 + 1.0, "{value} -> {mid}");
        }
    }
}
