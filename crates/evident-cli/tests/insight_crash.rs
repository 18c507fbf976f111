//! Insight's rollups and path table after SIGKILL, on both stores: a real `evident serve` is
//! killed right after acknowledging each round of events (while its indexer or follower is still
//! folding them) and started again, several times; then a trend must count every acknowledged
//! event exactly once, per channel and per day, with the exact distinct customers; the path table
//! must hold one pair per event, and a funnel from it must equal the same funnel from a scan: the
//! folds resumed from their watermarks, and nothing was folded twice or lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::{Schema, Serve, database_url};
use evident_wire::Micros;
use serde_json::{Value, json};

const ROUNDS: u64 = 5;
const BATCHES: u64 = 3;
const BATCH: u64 = 400;
const CHANNELS: [&str; 3] = ["phone", "chat", "email"];
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200_000_000;
const HOUR: i64 = 3_600_000_000;

fn event(n: u64) -> Value {
    json!({
        "id": format!("k{n}"), "source": "//crash.test", "type": "contact.opened", "action": "other",
        "time": Micros(START + (n as i64 * 7 % 168) * HOUR + 60_000_000).to_rfc3339(),
        "actor": {"id": format!("agt-{}", n % 4), "type": "user"}, "subject": format!("cus-{}", n % 97),
        "targets": [{"type": "contact", "id": format!("c{n}")}], "outcome": "success",
        "origin": {"service": CHANNELS[(n % 3) as usize]},
    })
}

/// Per channel: events per day (0..7) and the distinct customers of the week.
fn expected(events: u64) -> BTreeMap<&'static str, (Vec<u64>, BTreeSet<String>)> {
    let mut expected: BTreeMap<&str, (Vec<u64>, BTreeSet<String>)> = BTreeMap::new();
    for n in 0..events {
        let entry =
            expected.entry(CHANNELS[(n % 3) as usize]).or_insert_with(|| (vec![0; 7], BTreeSet::new()));
        entry.0[(n as i64 * 7 % 168 / 24) as usize] += 1;
        entry.1.insert(format!("cus-{}", n % 97));
    }
    expected
}

fn crash_and_count(data: &Path, env: &[(&str, &str)]) {
    let mut serve = Serve::first_start_with(data, env);
    let admin = serve.admin.clone();
    let (producer, investigator) = (serve.key("producer"), serve.key("investigator"));
    let mut next = 0;
    for _ in 0..ROUNDS {
        for _ in 0..BATCHES {
            let events: Vec<Value> = (next..next + BATCH).map(event).collect();
            let (status, body) = serve.post(&producer, "/v1/events", &json!(events));
            assert_eq!(status, 200, "{body}");
            next += BATCH;
        }
        serve.kill();
        serve = Serve::start_with(data, env);
        serve.admin = admin.clone();
    }
    let trend = serve.get(
        &investigator,
        "/v1/insights/trend?by=channel&bucket=day&from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z",
    );
    let mut answered: BTreeMap<String, (Vec<u64>, u64)> = BTreeMap::new();
    for series in trend["series"].as_array().expect("series") {
        let days =
            series["points"].as_array().unwrap().iter().map(|p| p["events"].as_u64().unwrap()).collect();
        let customers = series["total"]["customers"].as_u64().unwrap();
        answered.insert(series["key"].as_str().unwrap().to_owned(), (days, customers));
    }
    let expected: BTreeMap<String, (Vec<u64>, u64)> = expected(next)
        .into_iter()
        .map(|(channel, (days, customers))| (channel.to_owned(), (days, customers.len() as u64)))
        .collect();
    assert_eq!(answered, expected, "{trend}");
    let (from_paths, scanned) = funnels(&serve, &investigator);
    assert_eq!(from_paths, scanned);
    assert!(from_paths.0[0] > 50, "{from_paths:?}");
    assert_eq!(stored_pairs(data, env), next, "one pair per event in the path table");
    serve.kill();
}

/// Customers per step and time to convert of a funnel the path table answers, and of the same
/// funnel with a term (the source) that only a scan answers.
fn funnels(serve: &Serve, key: &str) -> ((Vec<u64>, Value), (Vec<u64>, Value)) {
    let ask = |term: &str| {
        let steps: Vec<String> = CHANNELS.iter().map(|c| format!("channel:{c}{term}")).collect();
        let path = format!(
            "/v1/insights/funnel?steps={}&within=3h&from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z",
            steps.join("%3B")
        );
        let funnel = serve.get(key, &path);
        let customers =
            funnel["steps"].as_array().expect("steps").iter().map(|s| s["customers"].as_u64().unwrap());
        (customers.collect(), funnel["time_to_convert"].clone())
    };
    (ask(""), ask("%20source://crash.test"))
}

/// The pairs the path table holds: one varint ends in each byte below 0x80, two per pair.
fn stored_pairs(data: &Path, env: &[(&str, &str)]) -> u64 {
    let ends = |bytes: &[u8]| bytes.iter().filter(|b| **b < 0x80).count() as u64;
    let Some((_, schema)) = env.iter().find(|(name, _)| *name == "EVIDENT_DATABASE_SCHEMA") else {
        let index = rusqlite::Connection::open(data.join("evident.sqlite-index")).expect("the index file");
        let mut statement = index.prepare("SELECT pairs FROM insight_paths").expect("the path table");
        let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0)).expect("its rows");
        return rows.map(|pairs| ends(&pairs.expect("a row"))).sum::<u64>() / 2;
    };
    let sql = format!("SELECT encode(pairs, 'hex') FROM \"{schema}\".insight_paths");
    let output = Command::new("psql").args([&database_url(), "-At", "-c", &sql]).output().expect("psql runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let hex = String::from_utf8(output.stdout).expect("text");
    let bytes: Vec<u8> = hex
        .lines()
        .flat_map(|line| {
            (0..line.len()).step_by(2).map(move |i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
        })
        .collect();
    ends(&bytes) / 2
}

#[test]
fn rollups_count_once_after_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    crash_and_count(&dir.path().join("data"), &[]);
}

#[test]
fn rollups_count_once_after_sigkill_on_postgres() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database_url();
    let env = [("EVIDENT_DATABASE_URL", url.as_str()), ("EVIDENT_DATABASE_SCHEMA", schema.0.as_str())];
    crash_and_count(&dir.path().join("keys"), &env);
}
