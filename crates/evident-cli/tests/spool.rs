//! The Rust client's durable spool against a real `evident serve`: delivery after the server comes
//! into reach, dead letters for refusals, and the SIGKILL test (a child process recording events is
//! killed at random points and restarted; every event `record` returned for is in the log exactly
//! once).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Serve;
use evident_client::Client;
use evident_client::spool::{ReceiptCheck, Spool, SpoolConfig};
use evident_wire::api::SearchParams;
use serde_json::{Value, json};

const SOURCE: &str = "//spool.test/app";

fn event(id: &str) -> Value {
    json!({
        "id": id, "source": SOURCE, "type": "customer.record.viewed", "action": "read",
        "time": "2026-01-01T10:00:00Z", "actor": {"id": "agent-7", "type": "service"},
        "subject": "cust-9", "targets": [{"type": "customer", "id": "cust-9"}],
        "outcome": "success", "origin": {"service": "spool-test", "host": "app-1"}
    })
}

/// The producer ids of every event of `SOURCE` in the log, with how often each appears.
fn logged_ids(serve: &Serve) -> BTreeMap<String, usize> {
    let client = Client::new(&serve.base, Some(serve.admin.clone()));
    let mut ids = BTreeMap::new();
    let mut params =
        SearchParams { source: Some(SOURCE.into()), limit: Some(1000), ..SearchParams::default() };
    loop {
        let page = client.search(&params).expect("search");
        for view in &page.events {
            let id = view.event["id"].as_str().expect("an id").to_owned();
            *ids.entry(id).or_insert(0) += 1;
        }
        match page.next_cursor {
            Some(cursor) => params.cursor = Some(cursor),
            None => return ids,
        }
    }
}

#[test]
fn spooled_events_reach_the_log_once_and_refusals_are_dead_lettered() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let dir = tempfile::tempdir().unwrap();
    // Recorded while the server is out of reach (nothing listens on port 1).
    let offline = Spool::open(SpoolConfig::new(dir.path()), Client::new("http://127.0.0.1:1", None)).unwrap();
    for n in 0..20 {
        offline.record(&event(&format!("e-{n}"))).unwrap();
    }
    let mut invalid = event("bad-1");
    invalid.as_object_mut().unwrap().remove("actor");
    offline.record(&invalid).unwrap();
    assert_eq!(offline.metrics().depth_events, 21);
    offline.close();

    let spool = Spool::open(SpoolConfig::new(dir.path()), Client::new(&serve.base, Some(producer))).unwrap();
    assert!(spool.flush(Duration::from_secs(30)), "delivered: {:?}", spool.metrics());
    let metrics = spool.metrics();
    assert_eq!((metrics.delivered, metrics.dead_lettered, metrics.depth_events), (20, 1, 0), "{metrics:?}");
    assert_eq!(metrics.oldest_age, None);

    // The same event again is a duplicate (delivered, not stored twice); other content under a
    // stored id is a conflict (dead-lettered).
    spool.record(&event("e-3")).unwrap();
    let mut other = event("e-4");
    other["type"] = json!("customer.record.updated");
    spool.record(&other).unwrap();
    assert!(spool.flush(Duration::from_secs(30)));
    assert_eq!((spool.metrics().delivered, spool.metrics().dead_lettered), (21, 2));

    let dead: Vec<Value> = std::fs::read_to_string(spool.dead_letter_path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0]["event"]["id"].as_str(), dead[0]["status"].as_str()),
        (Some("bad-1"), Some("rejected"))
    );
    assert!(dead[0]["errors"].as_array().unwrap().iter().any(|e| e["name"] == "actor"), "{}", dead[0]);
    assert_eq!(
        (dead[1]["event"]["id"].as_str(), dead[1]["status"].as_str()),
        (Some("e-4"), Some("conflict"))
    );

    let ids = logged_ids(&serve);
    assert_eq!(ids.len(), 20);
    assert!(ids.values().all(|&count| count == 1), "{ids:?}");
}

#[test]
fn a_wrong_key_delays_events_without_dropping_them() {
    let serve = Serve::fresh();
    let dir = tempfile::tempdir().unwrap();
    let wrong =
        Spool::open(SpoolConfig::new(dir.path()), Client::new(&serve.base, Some("evk_x_y".into()))).unwrap();
    wrong.record(&event("k-1")).unwrap();
    assert!(!wrong.flush(Duration::from_millis(500)));
    let metrics = wrong.metrics();
    assert_eq!(metrics.depth_events, 1);
    assert!(metrics.last_error.as_deref().is_some_and(|e| e.starts_with("401")), "{metrics:?}");
    wrong.close();
    let right =
        Spool::open(SpoolConfig::new(dir.path()), Client::new(&serve.base, Some(serve.key("producer"))))
            .unwrap();
    assert!(right.flush(Duration::from_secs(30)));
    assert_eq!(logged_ids(&serve).len(), 1);
}

/// Waits until the sender has judged `count` receipts; answers (verified, failed).
fn receipt_verdicts(spool: &Spool, count: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = spool.metrics();
        if metrics.receipts_verified + metrics.receipts_failed >= count || Instant::now() > deadline {
            return (metrics.receipts_verified, metrics.receipts_failed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn receipts_are_checked_on_arrival_against_the_logs_key() {
    let serve = Serve::fresh();
    let producer = Client::new(&serve.base, Some(serve.key("producer")));
    let reader = Client::new(&serve.base, Some(serve.key("reader")));
    let vkeys = reader.vkeys("default").unwrap();
    let origin = reader.checkpoint("default").unwrap().lines().next().unwrap().to_owned();
    let check = |vkeys: Vec<String>, reader: Option<Client>| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SpoolConfig::new(dir.path());
        config.verify_receipts = Some(ReceiptCheck { vkeys, origin: origin.clone(), reader });
        let spool = Spool::open(config, producer.clone()).unwrap();
        for n in 0..4 {
            spool.record(&event(&format!("r-{}-{n}", dir.path().display()))).unwrap();
        }
        assert!(spool.flush(Duration::from_secs(30)));
        (receipt_verdicts(&spool, 4), spool.metrics().last_error)
    };
    // The checkpoint of each acknowledgement, then also the inclusion proof through a reader.
    assert_eq!(check(vkeys.clone(), None).0, (4, 0));
    assert_eq!(check(vkeys.clone(), Some(reader.clone())).0, (4, 0));
    // Another key: every receipt fails (tamper evidence), the events stay delivered once.
    let other = evident_tlog::Signer::from_seed(&origin, [7; 32]).unwrap().verifier().to_vkey();
    let (verdicts, last_error) = check(vec![other], Some(reader));
    assert_eq!(verdicts, (0, 4));
    assert!(last_error.is_some_and(|e| e.contains("does not verify")));
    assert_eq!(logged_ids(&serve).len(), 12);

    let dir = tempfile::tempdir().unwrap();
    let mut config = SpoolConfig::new(dir.path());
    config.verify_receipts = Some(ReceiptCheck { vkeys: vec!["garbage".into()], origin, reader: None });
    let err = Spool::open(config, producer).expect_err("a bad vkey is refused");
    assert!(err.to_string().contains("verify_receipts.vkeys"), "{err}");
}

/// Environment of the child role: the spool directory, the server, the key, the first id.
const CHILD_ENV: &str = "EVIDENT_SPOOL_CHILD";

/// The child's part of [`every_returned_event_is_logged_once_across_sigkills`]: that same test,
/// run in a process of its own with `CHILD_ENV` set to `DIR URL KEY FIRST COUNT`. It records
/// events `k-FIRST` .. and prints `returned: ID` once `record` returned, then (with COUNT reached)
/// flushes and prints `returned: done`.
fn child(args: &str) {
    let args: Vec<&str> = args.split(' ').collect();
    let [dir, url, key, first, count] = args[..] else { panic!("{CHILD_ENV}: {args:?}") };
    let (first, count): (usize, usize) = (first.parse().unwrap(), count.parse().unwrap());
    let mut config = SpoolConfig::new(dir);
    config.batch_events = 7; // many batches, so kills land between them too
    let spool = Spool::open(config, Client::new(url, Some(key.to_owned()))).unwrap();
    let mut out = std::io::stdout().lock();
    for n in first..first + count {
        let id = spool.record(&event(&format!("k-{n}"))).unwrap();
        writeln!(out, "returned: {id}").unwrap();
        out.flush().unwrap();
    }
    assert!(spool.flush(Duration::from_secs(30)), "{:?}", spool.metrics());
    writeln!(out, "returned: done").unwrap();
}

/// Runs a child recording `count` events from `first`; kills it after `kill_after` returned ids
/// (or lets it finish when `None`). Answers the ids it printed.
fn run_child(
    dir: &str,
    serve: &Serve,
    key: &str,
    first: usize,
    count: usize,
    kill_after: Option<usize>,
) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "every_returned_event_is_logged_once_across_sigkills",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{dir} {} {key} {first} {count}", serve.base))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut returned = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        assert!(Instant::now() < deadline, "the child took too long");
        // libtest may print "test NAME ... " on the same line first.
        match line.split("returned: ").nth(1) {
            Some("done") => break,
            Some(id) => returned.push(id.to_owned()),
            None => continue,
        }
        if kill_after.is_some_and(|after| returned.len() >= after) {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    returned
}

/// A number below `bound`, different on every run (where the kills land).
fn random_below(bound: usize) -> usize {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish() as usize % bound
}

#[test]
fn every_returned_event_is_logged_once_across_sigkills() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        return child(&args);
    }
    let serve = Serve::fresh();
    let key = serve.key("producer");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap().to_owned();
    let mut returned = BTreeSet::new();
    let mut first = 0;
    for _ in 0..4 {
        let kill_after = random_below(120) + 1;
        let ids = run_child(&dir, &serve, &key, first, 150, Some(kill_after));
        assert!(ids.len() >= kill_after.min(150), "the child printed {} ids", ids.len());
        returned.extend(ids);
        first += 150;
    }
    let ids = run_child(&dir, &serve, &key, first, 10, None);
    assert_eq!(ids.len(), 10, "the last child runs to the end");
    returned.extend(ids);

    let logged = logged_ids(&serve);
    let missing: Vec<&String> = returned.iter().filter(|id| !logged.contains_key(*id)).collect();
    assert!(missing.is_empty(), "returned but not logged: {missing:?}");
    let twice: Vec<(&String, &usize)> = logged.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "logged more than once: {twice:?}");
    // Events whose `record` had not returned when the child died may be logged too, never twice.
    assert!(logged.len() >= returned.len());
}
