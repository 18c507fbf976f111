//! Several `evident serve` nodes on one PostgreSQL database, under load: the leader is killed
//! (SIGKILL), then the next leader is paused (SIGSTOP) past its lease and resumed. Each time
//! another node must take over within a bounded time, no acknowledged event may be lost, every
//! two checkpoints must be consistent, and the log must verify.
//!
//! Needs the PostgreSQL server of `EVIDENT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); fails when it does not answer.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{EVIDENT, Schema, Serve, database_url};
use evident_tlog::{Checkpoint, Hash, Verifier, verify_consistency};
use serde_json::{Value, json};

const LEASE_TTL_MS: u64 = 1000;
const NODES: usize = 3;
const PRODUCERS: usize = 6;
/// `/healthz` names the tenants a node leads only to the metrics token.
const METRICS_TOKEN: &str = "cluster-metrics";

fn node_env(schema: &str, node: usize) -> Vec<(String, String)> {
    vec![
        ("EVIDENT_DATABASE_URL".into(), database_url()),
        ("EVIDENT_DATABASE_SCHEMA".into(), schema.into()),
        ("EVIDENT_LEASE_TTL_MS".into(), LEASE_TTL_MS.to_string()),
        ("EVIDENT_NODE_ID".into(), format!("node-{node}")),
        ("EVIDENT_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
    ]
}

fn start(dir: &Path, schema: &str, node: usize, first: bool) -> Serve {
    let env = node_env(schema, node);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if first { Serve::first_start_with(dir, &env) } else { Serve::start_with(dir, &env) }
}

fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(timeout).build().expect("client")
}

/// The tenants a node says it leads; `None` if it does not answer.
fn leads(base: &str) -> Option<Vec<String>> {
    let health: Value = client(Duration::from_millis(500))
        .get(format!("{base}/healthz"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .ok()?
        .json()
        .ok()?;
    // A node that leads nothing leaves the list out.
    let names = health.get("leads").and_then(Value::as_array).cloned().unwrap_or_default();
    Some(names.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
}

/// Waits until exactly one of `bases` leads `default`; answers its position and how long it took.
fn wait_for_leader(bases: &[String], limit: Duration) -> (usize, Duration) {
    let begun = Instant::now();
    loop {
        let leaders: Vec<usize> = (0..bases.len())
            .filter(|&i| leads(&bases[i]).is_some_and(|t| t.iter().any(|t| t == "default")))
            .collect();
        assert!(leaders.len() <= 1, "nodes {leaders:?} all claim to lead");
        if let [leader] = leaders[..] {
            return (leader, begun.elapsed());
        }
        assert!(begun.elapsed() < limit, "no node took over within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the producers saw acknowledged.
#[derive(Default)]
struct Acks {
    /// Producer id → (index, event id).
    events: HashMap<String, (u64, String)>,
    checkpoints: Vec<String>,
    /// Requests that failed and were sent again elsewhere.
    retries: u64,
}

/// Producers: batches of 5 events with unique ids, spread over the nodes; a batch that fails is
/// sent again (same ids) to the next node until it is acknowledged. Like a load balancer with
/// health checks, a producer avoids a node for a while after it failed.
fn produce(
    bases: Arc<Vec<String>>,
    key: String,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Acks>>,
    producer: usize,
) {
    let http = client(Duration::from_secs(1));
    let mut node = producer;
    let mut avoid_until = vec![Instant::now(); bases.len()];
    let mut batch = 0;
    while !stop.load(Ordering::SeqCst) {
        let events: Vec<Value> = (0..5)
            .map(|i| {
                json!({
                    "id": format!("p{producer}-{batch}-{i}"),
                    "source": "//failover.test/producer",
                    "type": "customer.record.viewed",
                    "action": "read",
                    "time": "2026-11-26T10:00:00Z",
                    "actor": {"id": format!("agent-{producer}"), "type": "user"},
                    "subject": format!("cust-{}", batch % 50),
                    "targets": [{"type": "customer", "id": format!("cust-{}", batch % 50)}],
                    "outcome": "success",
                    "origin": {"service": "failover-test"},
                })
            })
            .collect();
        loop {
            let now = Instant::now();
            if let Some(next) =
                (0..bases.len()).map(|i| (node + i) % bases.len()).find(|&n| avoid_until[n] <= now)
            {
                node = next;
            }
            let base = &bases[node % bases.len()];
            let answer = http.post(format!("{base}/v1/events")).bearer_auth(&key).json(&events).send();
            if let Ok(response) = answer
                && response.status() == 200
                && let Ok(body) = response.json::<Value>()
            {
                let mut acks = acks.lock().unwrap();
                for (event, receipt) in events.iter().zip(body["receipts"].as_array().expect("receipts")) {
                    let index = receipt["index"].as_u64().expect("an index");
                    let event_id = receipt["event_id"].as_str().expect("an event id").to_owned();
                    let id = event["id"].as_str().unwrap().to_owned();
                    if let Some(before) = acks.events.insert(id.clone(), (index, event_id.clone())) {
                        assert_eq!(before, (index, event_id), "{id} was acknowledged twice, differently");
                    }
                    if let Some(checkpoint) = receipt["checkpoint"].as_str() {
                        acks.checkpoints.push(checkpoint.to_owned());
                    }
                }
                break;
            }
            acks.lock().unwrap().retries += 1;
            avoid_until[node % bases.len()] = Instant::now() + Duration::from_secs(2);
            node += 1;
            if stop.load(Ordering::SeqCst) {
                return; // never acknowledged: may or may not be stored, either is fine
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        batch += 1;
        node += 1;
    }
}

#[test]
fn three_nodes_survive_a_killed_and_a_paused_leader() {
    assert!(
        std::process::Command::new("pg_isready")
            .args(["-d", &database_url()])
            .status()
            .is_ok_and(|s| s.success()),
        "PostgreSQL at {} does not answer; start it (scripts/test does)",
        database_url()
    );
    let schema = Schema::new();
    let dirs = tempfile::tempdir().unwrap();
    let dir = |node: usize| dirs.path().join(format!("node-{node}"));
    let first = start(&dir(0), &schema.0, 0, true);
    let admin = first.admin.clone();
    let producer = first.key("producer");
    // Every node needs the same signing and master keys: copy them, as an operator would.
    for node in 1..NODES {
        std::fs::create_dir_all(dir(node)).unwrap();
        for file in ["signing.key", "master.key"] {
            std::fs::copy(dir(0).join(file), dir(node).join(file)).unwrap();
        }
    }
    let mut nodes: Vec<Option<Serve>> = vec![Some(first)];
    for node in 1..NODES {
        nodes.push(Some(start(&dir(node), &schema.0, node, false)));
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().base.clone()).collect();
    let (initial, _) = wait_for_leader(&bases, Duration::from_secs(10));

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let shared_bases = Arc::new(bases.clone());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (bases, key, stop, acks) =
                (shared_bases.clone(), producer.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || produce(bases, key, stop, acks, p))
        })
        .collect();
    let acked = || acks.lock().unwrap().events.len();
    let run_for = |period: Duration| {
        let before = acked();
        std::thread::sleep(period);
        assert!(acked() > before, "no event was acknowledged in {period:?}");
    };
    run_for(Duration::from_millis(1500));

    // 1. The leader dies.
    let killed = initial;
    nodes[killed].take().unwrap().kill();
    let others: Vec<String> = (0..NODES).filter(|&n| n != killed).map(|n| bases[n].clone()).collect();
    let (after_kill, takeover_kill) = wait_for_leader(&others, Duration::from_secs(20));
    let second = (0..NODES).filter(|&n| n != killed).nth(after_kill).unwrap();
    eprintln!("takeover after SIGKILL of node-{killed}: {} ms (node-{second})", takeover_kill.as_millis());
    run_for(Duration::from_millis(2500));

    // 2. The new leader is paused past its lease, then resumed.
    nodes[second].as_ref().unwrap().signal("STOP");
    let paused_at = Instant::now();
    let third_candidates: Vec<usize> = (0..NODES).filter(|&n| n != killed && n != second).collect();
    let candidate_bases: Vec<String> = third_candidates.iter().map(|&n| bases[n].clone()).collect();
    let (_, takeover_stop) = wait_for_leader(&candidate_bases, Duration::from_secs(30));
    eprintln!("takeover after SIGSTOP of node-{second}: {} ms", takeover_stop.as_millis());
    run_for(Duration::from_millis(2500));
    nodes[second].as_ref().unwrap().signal("CONT");
    eprintln!("node-{second} resumed after {} ms", paused_at.elapsed().as_millis());
    // The resumed node must learn it lost the lease (its commits are fenced off meanwhile).
    let deadline = Instant::now() + Duration::from_secs(10);
    while leads(&bases[second]).is_none_or(|t| t.iter().any(|t| t == "default")) {
        assert!(Instant::now() < deadline, "the resumed node still claims to lead");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_leader(
        &bases.iter().enumerate().filter(|(n, _)| *n != killed).map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        Duration::from_secs(5),
    );
    run_for(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    for producer in producers {
        producer.join().expect("a producer panicked");
    }
    let acks = Arc::try_unwrap(acks).ok().unwrap().into_inner().unwrap();
    eprintln!("{} events acknowledged, {} requests retried", acks.events.len(), acks.retries);
    assert!(acks.retries > 0, "the failures were visible to producers (else the test did not test)");

    // Every acknowledged event is stored at its index, exactly once.
    let reader = client(Duration::from_secs(30));
    let live = &bases[second];
    let mut stored: HashMap<String, (u64, String)> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{live}/v1/events?source=//failover.test/producer&limit=1000&order=oldest");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = reader.get(url).bearer_auth(&admin).send().unwrap().json().unwrap();
        for event in page["events"].as_array().unwrap() {
            let id = event["event"]["id"].as_str().unwrap().to_owned();
            let value = (event["index"].as_u64().unwrap(), event["event_id"].as_str().unwrap().to_owned());
            assert!(stored.insert(id.clone(), value).is_none(), "{id} is stored twice");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    for (id, ack) in &acks.events {
        assert_eq!(stored.get(id), Some(ack), "acknowledged event {id} is not stored as acknowledged");
    }

    // No two checkpoints disagree: one root per size, and each consistent with the next larger.
    let vkeys: String = reader
        .get(format!("{live}/v1/logs/default/vkeys"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let verifiers: Vec<Verifier> = vkeys.lines().map(|l| Verifier::parse(l).unwrap()).collect();
    let origin = verifiers[0].name().to_owned();
    let mut checkpoints = acks.checkpoints.clone();
    checkpoints.push(
        reader
            .get(format!("{live}/v1/logs/default/checkpoint"))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    let mut by_size: HashMap<u64, Hash> = HashMap::new();
    for note in &checkpoints {
        let (checkpoint, _) = Checkpoint::open(note, &verifiers, &origin).expect("a checkpoint verifies");
        let root = *by_size.entry(checkpoint.size.0).or_insert(checkpoint.root);
        assert_eq!(root, checkpoint.root, "two checkpoints of size {} disagree", checkpoint.size.0);
    }
    let mut sizes: Vec<(u64, Hash)> = by_size.into_iter().collect();
    sizes.sort();
    for pair in sizes.windows(2) {
        let ((from, old), (to, new)) = (pair[0], pair[1]);
        let proof: Value = reader
            .get(format!("{live}/v1/logs/default/consistency?from={from}&to={to}"))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        use base64::Engine as _;
        let proof: Vec<Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(h.as_str().unwrap()).unwrap();
                Hash(bytes.try_into().unwrap())
            })
            .collect();
        verify_consistency(evident_tlog::TreeSize(from), evident_tlog::TreeSize(to), &old, &new, &proof)
            .unwrap_or_else(|err| panic!("checkpoints {from} and {to} are not consistent: {err}"));
    }
    eprintln!("{} distinct checkpoints, consecutive pairs consistent", sizes.len());

    // Detection runs on the tenant's leader: a follower answers reads from the stored state and
    // refuses changes (which its leader's next write would otherwise overwrite).
    let live: Vec<String> = (0..NODES).filter(|&n| n != killed).map(|n| bases[n].clone()).collect::<Vec<_>>();
    let (leader_at, _) = wait_for_leader(&live, Duration::from_secs(5));
    let (leader, follower) = (&live[leader_at], &live[1 - leader_at]);
    let rule = json!({"id": "vip-watch", "template": "watchlist", "severity": "high",
                      "params": {"subjects": ["cust-7"]}});
    let findings = reader.get(format!("{follower}/v1/findings")).bearer_auth(&admin).send().unwrap();
    assert_eq!(findings.status(), 200, "a follower lists findings");
    let refused = reader.post(format!("{follower}/v1/rules")).bearer_auth(&admin).json(&rule).send().unwrap();
    assert_eq!(refused.status(), 503, "a follower refuses to change rules");
    let made = reader.post(format!("{leader}/v1/rules")).bearer_auth(&admin).json(&rule).send().unwrap();
    assert_eq!(made.status(), 201, "the leader changes rules");

    // The log verifies from scratch.
    for node in nodes.into_iter().flatten() {
        node.kill();
    }
    let fsck = std::process::Command::new(EVIDENT)
        .args(["fsck", "--data-dir"])
        .arg(dir(0))
        .args(["--database-url", &database_url(), "--database-schema", &schema.0])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "fsck failed:\n{report}\n{}", String::from_utf8_lossy(&fsck.stderr));
    assert!(report.contains("default: ok"), "{report}");
    assert!(
        takeover_kill < Duration::from_millis(LEASE_TTL_MS * 5),
        "takeover after SIGKILL: {takeover_kill:?}"
    );
    assert!(takeover_stop < Duration::from_secs(15), "takeover after SIGSTOP: {takeover_stop:?}");
}
