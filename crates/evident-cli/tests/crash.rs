//! Crash safety, tested for real: the real `evident hammer` appends to one data directory under
//! concurrent load and is killed with SIGKILL at random moments, many times over. After every
//! kill the store must verify (`evident fsck`), every event acknowledged so far must be stored at
//! the index it was acknowledged with, and nothing unacknowledged may be half there. At the end,
//! re-sending an earlier run's events must answer the indices they were first acknowledged with.
//!
//! The kill moments come from a seeded PRNG; the seed is printed, and `EVIDENT_CRASH_SEED=<seed>`
//! replays a run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evident_core::store::{EventIndex, LogStore, TenantId};
use evident_store_sqlite::SqliteStore;
use serde_json::Value;

const EVIDENT: &str = env!("CARGO_BIN_EXE_evident");
/// The source `evident hammer` gives its events.
const SOURCE: &str = "//crm.example.com/support-api";
/// The tenant `evident hammer` appends to by default.
const TENANT: &str = "default";
const ROUNDS: usize = 20;
const KILL_AFTER_MS: std::ops::Range<u64> = 50..600;
/// Longer than any round: hammer is always killed before it stops by itself.
const ROUND_SECONDS: &str = "60";
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// One acknowledged event: `ack <source> <id> <index>`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ack {
    id: String,
    index: u64,
}

fn parse_ack(line: &str) -> Ack {
    match line.split(' ').collect::<Vec<_>>()[..] {
        ["ack", source, id, index] if source == SOURCE => Ack {
            id: id.to_owned(),
            index: index.parse().unwrap_or_else(|_| panic!("bad ack line {line:?}")),
        },
        _ => panic!("hammer printed an unexpected line: {line:?}"),
    }
}

/// xorshift64*: enough randomness for kill moments, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn in_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}

fn seed() -> u64 {
    match std::env::var("EVIDENT_CRASH_SEED") {
        Ok(text) => text.parse().expect("EVIDENT_CRASH_SEED must be a u64"),
        Err(_) => {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            (nanos as u64) | 1 // xorshift must not start at zero
        }
    }
}

/// A running `evident hammer --print-acks`, its stdout read by a thread.
struct Hammer {
    child: Child,
    /// Told once, when the first complete ack line arrives.
    first_ack: mpsc::Receiver<()>,
    reader: JoinHandle<Vec<Ack>>,
}

impl Hammer {
    fn start(data_dir: &Path, id_prefix: &str, seconds: &str) -> Hammer {
        let mut child = Command::new(EVIDENT)
            .args(["hammer", "--print-acks", "--producers", "8", "--batch", "3", "--seconds", seconds])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--id-prefix", id_prefix])
            .env_remove("EVIDENT_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start evident hammer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (told, first_ack) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut acks = Vec::new();
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = stdout.read_until(b'\n', &mut line).expect("reading hammer's stdout");
                // A line without its newline was cut off by the kill: never a complete ack.
                if n == 0 || line.last() != Some(&b'\n') {
                    return acks;
                }
                let text = std::str::from_utf8(&line[..line.len() - 1]).expect("utf-8 ack line");
                acks.push(parse_ack(text));
                if acks.len() == 1 {
                    let _ = told.send(());
                }
            }
        });
        Hammer { child, first_ack, reader }
    }

    /// Waits for the process to end; answers its status, its complete ack lines and its stderr.
    fn finish(mut self) -> (ExitStatus, Vec<Ack>, String) {
        let status = self.child.wait().expect("waiting for hammer");
        let acks = self.reader.join().expect("the ack reader panicked");
        let mut stderr = String::new();
        self.child.stderr.take().expect("piped stderr").read_to_string(&mut stderr).unwrap();
        (status, acks, stderr)
    }
}

/// `evident fsck --json` must pass, with one log, that of the hammer's tenant.
fn fsck(data_dir: &Path, context: &str) {
    let output = Command::new(EVIDENT)
        .args(["fsck", "--json", "--data-dir"])
        .arg(data_dir)
        .env_remove("EVIDENT_DATA_DIR")
        .output()
        .expect("cannot run evident fsck");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reports: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("fsck --json prints JSON lines"))
        .collect();
    assert!(
        output.status.success() && reports.len() == 1 && reports[0]["ok"] == Value::Bool(true),
        "{context}: fsck failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(reports[0]["tenant"], TENANT, "{context}");
}

/// Every acknowledged event is stored at its acknowledged index, found there by index and by its
/// idempotency key; the log's head covers exactly the stored entries (nothing half-written).
fn check_store(data_dir: &Path, acked: &HashMap<String, u64>, context: &str) {
    let store = SqliteStore::open(&data_dir.join("evident.sqlite")).expect("open the store");
    let tenant = TenantId::new(TENANT).unwrap();
    let head_size = store.head(&tenant).unwrap().map_or(0, |head| head.size.0);
    let mut n_entries = 0u64;
    loop {
        let scanned = store.scan_entries(&tenant, n_entries, 4096).unwrap();
        let Some(last) = scanned.last() else { break };
        assert_eq!(last.index, n_entries + scanned.len() as u64 - 1, "{context}: a gap in the entries");
        n_entries += scanned.len() as u64;
    }
    assert_eq!(head_size, n_entries, "{context}: the head does not cover exactly the stored entries");

    let mut by_index: BTreeMap<u64, &str> = BTreeMap::new();
    for (id, &index) in acked {
        if let Some(other) = by_index.insert(index, id) {
            panic!("{context}: {other} and {id} were both acknowledged at index {index}");
        }
        assert!(index < head_size, "{context}: {id} was acknowledged at {index}, the log has {head_size}");
        let stored = store
            .event_by_index(&tenant, index)
            .unwrap()
            .unwrap_or_else(|| panic!("{context}: acknowledged event {id} is gone from index {index}"));
        let entry: Value = serde_json::from_slice(&stored.entry).expect("an entry is JSON");
        assert_eq!(
            (entry["source"].as_str(), entry["id"].as_str()),
            (Some(SOURCE), Some(id.as_str())),
            "{context}: index {index}"
        );
        let found = store.find_existing(&tenant, &[(SOURCE, id)]).unwrap().remove(0);
        assert_eq!(found.map(|f| f.index), Some(index), "{context}: {id} by its idempotency key");
    }
}

/// Runs hammer with `id_prefix` until `delay` after its first acknowledgement, then kills it
/// with SIGKILL; answers its complete ack lines.
fn run_and_kill(data_dir: &Path, id_prefix: &str, delay: Duration, context: &str) -> Vec<Ack> {
    let mut hammer = Hammer::start(data_dir, id_prefix, ROUND_SECONDS);
    if hammer.first_ack.recv_timeout(FIRST_ACK_TIMEOUT).is_err() {
        let _ = hammer.child.kill();
        let (status, _, stderr) = hammer.finish();
        panic!("{context}: hammer acknowledged nothing ({status}): {stderr}");
    }
    std::thread::sleep(delay);
    hammer.child.kill().expect("SIGKILL hammer"); // std's Child::kill is SIGKILL on Unix
    let (status, acks, stderr) = hammer.finish();
    assert!(status.code().is_none(), "{context}: hammer ended before the kill ({status}): {stderr}");
    acks
}

/// Adds a run's acks to all acks so far; an id is acknowledged once per run, and at the same
/// index whenever it is acknowledged again.
fn record(acked: &mut HashMap<String, u64>, acks: &[Ack], context: &str) {
    let mut this_run = HashSet::new();
    for ack in acks {
        assert!(this_run.insert(&ack.id), "{context}: {} was acknowledged twice", ack.id);
        let first = *acked.entry(ack.id.clone()).or_insert(ack.index);
        assert_eq!(ack.index, first, "{context}: {} acknowledged again at another index", ack.id);
    }
}

#[test]
fn acknowledged_events_survive_sigkill_and_the_store_verifies() {
    let started = Instant::now();
    let seed = seed();
    println!("crash test seed {seed} (replay with EVIDENT_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut acked: HashMap<String, u64> = HashMap::new();
    for round in 0..ROUNDS {
        let delay = rng.in_range(KILL_AFTER_MS);
        let context = format!("round {round} (seed {seed}, killed {delay} ms after the first ack)");
        let acks = run_and_kill(&data_dir, &format!("round{round}"), Duration::from_millis(delay), &context);
        println!("{context}: {} events acknowledged", acks.len());
        record(&mut acked, &acks, &context);
        fsck(&data_dir, &context);
        check_store(&data_dir, &acked, &context);
    }
    // After all the kills the store still takes appends, and shuts down cleanly.
    let (status, acks, stderr) = Hammer::start(&data_dir, "after", "0.5").finish();
    assert!(status.success(), "hammer after the kills failed ({status}): {stderr}");
    assert!(!acks.is_empty(), "hammer after the kills acknowledged nothing");
    record(&mut acked, &acks, "after the kills");
    fsck(&data_dir, "after the kills");
    check_store(&data_dir, &acked, "after the kills");
    println!("{} events acknowledged in all; {:.1} s", acked.len(), started.elapsed().as_secs_f64());
}

#[test]
fn re_sending_a_killed_runs_events_answers_the_indices_they_were_acknowledged_with() {
    let seed = seed();
    println!("crash test seed {seed} (replay with EVIDENT_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut acked: HashMap<String, u64> = HashMap::new();
    // Two killed runs, so the re-sent ids sit among others' in the log.
    let mut first = Vec::new();
    for prefix in ["first", "second"] {
        let delay = rng.in_range(KILL_AFTER_MS);
        let context = format!("run {prefix} (seed {seed}, killed {delay} ms after the first ack)");
        let acks = run_and_kill(&data_dir, prefix, Duration::from_millis(delay), &context);
        record(&mut acked, &acks, &context);
        if prefix == "first" {
            first = acks;
        }
    }

    // Re-send the first run's events (same ids, same content), without killing.
    let (status, resent, stderr) = Hammer::start(&data_dir, "first", "1").finish();
    assert!(status.success(), "re-sending the first run's events failed ({status}): {stderr}");
    record(&mut acked, &resent, "the re-send");
    // Each producer sends its ids in order, so every id of the first run up to the last one its
    // producer re-sent must have come back (`record` checked the indices).
    let producer_and_n = |id: &str| -> (String, u64) {
        let (producer, n) = id.rsplit_once('-').expect("hammer ids are <prefix>-<producer>-<n>");
        (producer.to_owned(), n.parse().expect("hammer ids end in a number"))
    };
    let mut reached: HashMap<String, u64> = HashMap::new();
    for ack in &resent {
        let (producer, n) = producer_and_n(&ack.id);
        let reached = reached.entry(producer).or_default();
        *reached = (*reached).max(n);
    }
    let resent_ids: HashSet<&str> = resent.iter().map(|a| a.id.as_str()).collect();
    let mut compared = 0;
    for ack in &first {
        let (producer, n) = producer_and_n(&ack.id);
        if reached.get(&producer).is_some_and(|&last| n <= last) {
            assert!(resent_ids.contains(ack.id.as_str()), "{} was not re-acknowledged", ack.id);
            compared += 1;
        }
    }
    println!(
        "re-sent {} events; {compared} of the first run's {} came back at their indices",
        resent.len(),
        first.len()
    );
    assert!(compared > 0, "the re-send reached none of the first run's events");
    fsck(&data_dir, "after the re-send");
    check_store(&data_dir, &acked, "after the re-send");
}
