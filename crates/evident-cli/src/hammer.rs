//! `evident hammer`: a load tool in the spirit of Tessera's `hammer`. Producer threads append
//! realistic events (about 500 bytes, with personal fields) straight into a data directory's store
//! through the engine, and it reports throughput and acknowledgement latency. With
//! `--print-acks` it prints one line per acknowledged event as soon as it is acknowledged, which
//! the crash test uses to check that nothing acknowledged is lost.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use evident_core::engine::{Engine, EngineConfig, Outcome};
use evident_core::event::{Micros, TenantPolicy};
use evident_core::seal::MasterKey;
use evident_core::store::{Store, TenantId};
use evident_core::validate::validate_event;
use evident_store_sqlite::SqliteStore;
use serde_json::{Value, json};

use crate::DataDirArg;
use crate::datadir::{DataDir, MASTER_KEY_FILE, SIGNING_KEY_FILE};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data_dir: DataDirArg,
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Concurrent producers (threads), each waiting for its acknowledgement before sending again.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
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
    /// Group commit: at most this many events per commit.
    #[arg(long, default_value_t = 4096)]
    max_batch_entries: usize,
    /// Group commit: wait at most this long for more requests.
    #[arg(long, default_value_t = 1.0)]
    max_batch_delay_ms: f64,
    /// Distinct customers the events concern.
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
}

const SOURCE: &str = "//crm.example.com/support-api";

/// One realistic customer-service event.
pub fn sample_event(id: &str, n: u64, customers: u64) -> Value {
    let customer = n.wrapping_mul(2_654_435_761) % customers.max(1);
    let agent = n % 97;
    json!({
        "id": id,
        "source": SOURCE,
        "type": "customer.record.updated",
        "action": "update",
        "time": Micros::now().to_rfc3339(),
        "actor": {"id": format!("agent-{agent}"), "type": "user", "display": format!("Agent Number {agent}"),
                  "session": format!("sess-{:08x}", n / 50), "auth": {"method": "sso", "mfa": true}},
        "subject": format!("cust-{customer}"),
        "targets": [{"type": "customer", "id": format!("cust-{customer}")},
                    {"type": "ticket", "id": format!("TCK-{}", n / 3)}],
        "outcome": "success",
        "reason": "customer asked to update contact details",
        "changes": [{"field": "/email", "before": format!("c{customer}@old.example.com"),
                     "after": format!("c{customer}@new.example.com")}],
        "origin": {"ip": format!("10.{}.{}.{}", n % 200, n % 250, n % 199), "service": "support-api",
                   "host": "crm-7.internal"},
        "correlation": {"request_id": format!("req-{n:016x}")},
        "data_classes": ["pii"],
        "metadata": {"channel": "phone", "queue": "billing"}
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = DataDir::open(&args.data_dir.data_dir, true)?;
    let (signing_seed, _) = dir.key(SIGNING_KEY_FILE, true)?;
    let (master, _) = dir.key(MASTER_KEY_FILE, true)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.store_path())?);
    let config = EngineConfig {
        origin_prefix: args.origin_prefix.clone(),
        max_batch_entries: args.max_batch_entries,
        max_batch_delay: Duration::from_secs_f64(args.max_batch_delay_ms / 1000.0),
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::open(store, signing_seed, MasterKey::from_bytes(master), config)?);
    let tenant = TenantId::new(&args.tenant)?;
    engine.create_tenant(&tenant, TenantPolicy::default())?;
    let policy = engine.policy(&tenant)?;

    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.producers)
        .map(|producer| {
            let (engine, tenant, policy, sent, stop) =
                (Arc::clone(&engine), tenant.clone(), policy.clone(), Arc::clone(&sent), Arc::clone(&stop));
            let (batch, limit, prefix, print_acks, customers) =
                (args.batch.max(1), args.events, args.id_prefix.clone(), args.print_acks, args.customers);
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64, u64)> {
                let mut latencies = Vec::new();
                let (mut stored, mut overloaded) = (0u64, 0u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let claimed = sent.fetch_add(batch as u64, Ordering::Relaxed);
                    if limit.is_some_and(|limit| claimed >= limit) {
                        break;
                    }
                    let count = limit.map_or(batch as u64, |limit| (limit - claimed).min(batch as u64));
                    let ids: Vec<String> =
                        (0..count).map(|i| format!("{prefix}-{producer}-{}", n + i)).collect();
                    let events = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            validate_event(&sample_event(id, claimed + i as u64, customers), &policy)
                                .map_err(|errors| anyhow::anyhow!("generated event is invalid: {errors:?}"))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    n += count;
                    let begun = Instant::now();
                    let outcomes = match engine.append(&tenant, events) {
                        Ok(outcomes) => outcomes,
                        Err(evident_core::Error::Overloaded { .. }) => {
                            overloaded += 1;
                            n -= count;
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                        Err(err) => return Err(err).context("append failed"),
                    };
                    latencies.push(begun.elapsed());
                    let mut out = print_acks.then(|| std::io::stdout().lock());
                    for (id, outcome) in ids.iter().zip(outcomes) {
                        match outcome {
                            Outcome::Stored(receipt) | Outcome::Duplicate(receipt) => {
                                stored += 1;
                                if let Some(out) = out.as_mut() {
                                    writeln!(out, "ack {SOURCE} {id} {}", receipt.index)?;
                                }
                            }
                            other => anyhow::bail!("event {id} was not stored: {other:?}"),
                        }
                    }
                    if let Some(out) = out.as_mut() {
                        out.flush()?;
                    }
                }
                Ok((latencies, stored, overloaded))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut stored, mut overloaded) = (0u64, 0u64);
    for worker in workers {
        let (l, s, o) = worker.join().map_err(|_| anyhow::anyhow!("a producer panicked"))??;
        latencies.extend(l);
        stored += s;
        overloaded += o;
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    engine.shutdown();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let summary = json!({
        "producers": args.producers, "batch": args.batch, "events": stored, "seconds": seconds,
        "events_per_second": stored as f64 / seconds, "requests": latencies.len(),
        "p50_ms": percentile(0.50), "p99_ms": percentile(0.99), "overloaded_retries": overloaded,
    });
    if args.json {
        println!("{summary}");
    } else if !args.print_acks {
        println!(
            "{stored} events in {seconds:.2} s: {:.0} events/s; ack latency p50 {:.2} ms, p99 {:.2} ms ({} requests, {overloaded} overloaded retries)",
            stored as f64 / seconds,
            percentile(0.50),
            percentile(0.99),
            latencies.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
