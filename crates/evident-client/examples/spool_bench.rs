//! The spool's throughput against a running server, with its peer in the same run: `THREADS`
//! application threads call `Spool::record` for `SECONDS` (events/s the application can record,
//! each durable on return), then the spool drains (events/s delivered); the peer is the same
//! events posted directly and synchronously, one `POST /v1/events` per event. Prints one JSON line
//! per measurement. Run by `bench/spool.sh`.
//!
//! Usage: spool_bench URL KEY SECONDS THREADS SPOOL_DIR

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evident_client::Client;
use evident_client::spool::{Spool, SpoolConfig};
use serde_json::{Value, json};

fn event(run: &str, thread: usize, n: u64) -> Value {
    json!({
        "id": format!("{run}-{thread}-{n}"), "source": "//bench.example/spool", "type": "customer.record.viewed",
        "action": "read", "time": "2026-12-03T10:00:00Z", "actor": {"id": format!("agent-{thread}"), "type": "user"},
        "subject": format!("cust-{}", n % 1000), "targets": [{"type": "customer", "id": format!("cust-{}", n % 1000)}],
        "outcome": "success", "origin": {"service": "bench", "ip": "10.0.0.7"}, "reason": "support ticket"
    })
}

/// Runs `work(thread, n)` on `threads` threads for `seconds`; answers calls per second.
fn measure(threads: usize, seconds: u64, work: impl Fn(usize, u64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (stop, done, work) = (&stop, &done, &work);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    work(thread, n);
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, seconds, threads, dir] = &args[..] else {
        eprintln!("usage: spool_bench URL KEY SECONDS THREADS SPOOL_DIR");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let threads: usize = threads.parse().expect("THREADS is a number");
    let client = Client::new(url, Some(key.clone()));
    let run = format!("{}", std::process::id());

    let direct = measure(threads, seconds, |thread, n| {
        let body = serde_json::to_vec(&event(&format!("direct-{run}"), thread, n)).unwrap();
        client.post_events("application/json", body).expect("a direct post");
    });
    println!(
        "{}",
        json!({"measure": "direct_post_per_event", "threads": threads, "events_per_s": direct.round()})
    );

    let spool = Spool::open(SpoolConfig::new(dir), client.clone()).expect("the spool opens");
    let recorded = measure(threads, seconds, |thread, n| {
        spool.record(&event(&format!("spool-{run}"), thread, n)).expect("recorded");
    });
    let backlog = spool.metrics().depth_events;
    println!(
        "{}",
        json!({"measure": "spool_record", "threads": threads, "events_per_s": recorded.round(), "backlog_after": backlog})
    );
    let started = Instant::now();
    let delivered_before = spool.metrics().delivered;
    assert!(spool.flush(Duration::from_secs(600)), "the spool drains");
    let metrics = spool.metrics();
    let drain_rate =
        (metrics.delivered - delivered_before) as f64 / started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{}",
        json!({"measure": "spool_drain", "events": metrics.delivered, "events_per_s_while_draining": drain_rate.round(),
               "dead_lettered": metrics.dead_lettered})
    );
}
