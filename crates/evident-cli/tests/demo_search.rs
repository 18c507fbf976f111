//! `evident demo`, `evident search` and `evident tail` as users run them: the real binary against a
//! real `evident serve` on a temporary data directory. The demo fills the server and its planted
//! patterns are found with `search`; a second demo stores nothing new; `tail -f` prints an event
//! appended after it started, once; refused keys, unreachable servers and bad flags fail clearly.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{EVIDENT, Serve, TIMEOUT, client, lines};
use serde_json::{Value, json};

/// A child killed when dropped (a failing test leaves no process behind).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `evident ARGS --url URL --key KEY` (no settings from the environment).
fn evident(url: &str, key: &str, args: &[&str]) -> Output {
    Command::new(EVIDENT)
        .args(args)
        .args(["--url", url])
        .args(if key.is_empty() { vec![] } else { vec!["--key", key] })
        .env_remove("EVIDENT_URL")
        .env_remove("EVIDENT_API_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("evident runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON lines of a successful run.
fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "failed: {}", stderr(output));
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// The events a search prints (its stdout is a pipe, so JSON lines without `--json`).
fn search(serve: &Serve, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    json_lines(&evident(&serve.base, &serve.admin, &all))
}

fn refused(output: &Output, expected: &str) {
    assert!(!output.status.success(), "succeeded: {}", String::from_utf8_lossy(&output.stdout));
    let message = stderr(output);
    assert!(message.contains(expected), "{expected:?} not in {message:?}");
}

#[test]
fn demo_fills_a_server_whose_planted_patterns_search_finds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::first_start(&dir.path().join("data"));

    let started = Instant::now();
    let summary = json_lines(&evident(&serve.base, &serve.admin, &["demo", "--json"])).remove(0);
    let sent = summary["sent"].as_u64().expect("sent");
    assert!((5_000..=10_000).contains(&sent), "{summary}");
    assert_eq!(summary["stored"], sent, "{summary}");
    eprintln!("demo sent {sent} events in {:?}", started.elapsed());

    // Every type, counted by search, as the demo reported it.
    let by_type = summary["by_type"].as_object().expect("by_type");
    assert!(by_type.len() >= 10, "{by_type:?}");
    for (event_type, counts) in by_type {
        let found = search(&serve, &["--type", event_type, "--all"]);
        assert_eq!(found.len() as u64, counts["stored"].as_u64().unwrap(), "{event_type}");
    }

    // 1. An agent reading hundreds of distinct customers between 01:00 and 03:00.
    let night = &summary["patterns"]["night_reads"];
    let (actor, from, to) =
        (night["actor"].as_str().unwrap(), night["from"].as_str().unwrap(), night["to"].as_str().unwrap());
    let found = search(&serve, &["--actor", actor, "--from", from, "--to", to, "--all"]);
    let subjects: BTreeSet<&str> = found
        .iter()
        .filter(|v| v["event"]["action"] == "read")
        .filter_map(|v| v["event"]["subject"].as_str())
        .collect();
    assert!(subjects.len() >= 300, "{} customers read at night", subjects.len());
    assert_eq!(subjects.len() as u64, night["reads"].as_u64().unwrap());

    // 2. Forty failed logins within five minutes.
    let burst = &summary["patterns"]["failed_login_burst"];
    let found = search(
        &serve,
        &[
            "--type",
            "auth.login.failed",
            "--outcome",
            "failure",
            "--from",
            burst["from"].as_str().unwrap(),
            "--to",
            burst["to"].as_str().unwrap(),
            "--all",
        ],
    );
    assert_eq!(found.len(), 40);
    assert_eq!(burst["attempts"], 40);

    // 3. A VIP read without a reason: the one read of customer data that gives none.
    let vip = &summary["patterns"]["vip_read_without_reason"];
    let subject = vip["subject"].as_str().unwrap();
    let found = search(&serve, &["--subject", subject, "--type", "customer.record.viewed", "--all"]);
    let unexplained: Vec<&Value> = found.iter().filter(|v| v["event"].get("reason").is_none()).collect();
    assert_eq!(unexplained.len(), 1, "{found:?}");
    assert_eq!(unexplained[0]["event"]["actor"]["id"], vip["actor"]);
    let all_reads = search(&serve, &["--type", "customer.record.viewed", "--action", "read", "--all"]);
    assert_eq!(all_reads.iter().filter(|v| v["event"].get("reason").is_none()).count(), 1);

    // The same demo again stores nothing: its ids are derived from the flags.
    let again = json_lines(&evident(&serve.base, &serve.admin, &["demo", "--json"])).remove(0);
    assert_eq!(again["stored"], 0, "{again}");
    assert_eq!(again["duplicates"], sent);

    // Paging: every page joined is every event, in order, each once.
    let pages = search(
        &serve,
        &["--type", "customer.record.viewed", "--all", "--page-size", "250", "--order", "oldest"],
    );
    assert_eq!(pages.len(), all_reads.len());
    let indices: BTreeSet<u64> = pages.iter().map(|v| v["index"].as_u64().unwrap()).collect();
    assert_eq!(indices.len(), pages.len());
    let times: Vec<&str> = pages.iter().map(|v| v["event"]["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    // --limit, newest first by default, and the shape of a line.
    let newest = search(&serve, &["--limit", "7", "--source", "//crm.example.com/support-desk"]);
    assert_eq!(newest.len(), 7);
    assert!(newest.windows(2).all(|w| w[0]["event"]["time"].as_str() >= w[1]["event"]["time"].as_str()));
    for view in &newest {
        assert!(view["event_id"].is_string() && view["index"].is_u64(), "{view}");
        assert_eq!(view["personal"], "withheld", "no personal values without a purpose");
    }
    let by_target = search(&serve, &["--target", &format!("customer/{subject}"), "--all"]);
    assert!(by_target.len() > 1);
    assert!(
        by_target.iter().all(|v| v["event"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == subject))
    );

    // A table on demand: a header, then a line per event.
    let table = evident(
        &serve.base,
        &serve.admin,
        &["search", "--table", "--limit", "3", "--type", "auth.login.failed"],
    );
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 4, "{text}");
    for column in ["TIME", "INDEX", "ACTOR", "ACTION", "TYPE", "OUTCOME", "SUBJECT", "TARGET", "REASON"] {
        assert!(rows[0].contains(column), "{column} missing from {:?}", rows[0]);
    }
    assert!(rows[1].contains("auth.login.failed") && rows[1].contains("service/support-desk"), "{text}");

    // Bad filter values: the server's 400 names the flag.
    refused(&evident(&serve.base, &serve.admin, &["search", "--action", "fly"]), "--action");
    refused(&evident(&serve.base, &serve.admin, &["search", "--from", "last tuesday"]), "--from");
    refused(
        &evident(&serve.base, &serve.admin, &["search", "--target", "cus_00001"]),
        "--target must be TYPE/ID",
    );
}

#[test]
fn tail_follows_new_events_and_prints_each_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::first_start(&dir.path().join("data"));
    let producer = serve.key("producer");
    let append = |id: &str| {
        let event = json!({
            "id": id, "source": "//test/tail", "type": "test.tail.appended", "action": "other",
            "time": chrono_now(), "actor": {"id": "tester"}, "targets": [{"type": "thing", "id": id}],
            "outcome": "success", "origin": {"service": "test"},
        });
        let response = client()
            .post(format!("{}/v1/events", serve.base))
            .bearer_auth(&producer)
            .json(&event)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    };
    append("before-tail");

    let mut child = Command::new(EVIDENT)
        .args(["tail", "-f", "--interval", "0.2", "--url", &serve.base, "--key", &serve.admin])
        .env_remove("EVIDENT_URL")
        .env_remove("EVIDENT_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evident tail starts");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let _tail = Running(child);
    let ready = stderr.recv_timeout(TIMEOUT).expect("tail says it follows");
    assert!(ready.contains("following"), "{ready}");

    append("after-1");
    let line = stdout.recv_timeout(Duration::from_secs(10)).expect("tail prints the new event");
    let view: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(view["event"]["id"], "after-1", "events there before the start are not printed: {line}");
    append("after-2");
    let line = stdout.recv_timeout(Duration::from_secs(10)).expect("tail prints the next event");
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap()["event"]["id"], "after-2");
    // Its own searches (and every other `evident` event) are left out; nothing is printed twice.
    std::thread::sleep(Duration::from_millis(1200));
    let extra: Vec<String> = stdout.try_iter().collect();
    assert!(extra.is_empty(), "{extra:?}");

    // Without -f: the last events, oldest first, then exit.
    let last = json_lines(&evident(&serve.base, &serve.admin, &["tail", "--limit", "2"]));
    let ids: Vec<&str> = last.iter().map(|v| v["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["after-1", "after-2"]);
}

/// Now, RFC 3339 in UTC (whole seconds).
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn refused_keys_unreachable_servers_and_bad_flags_fail_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::first_start(&dir.path().join("data"));

    let wrong = "evk_0123456789abcdef_not-the-secret";
    refused(&evident(&serve.base, wrong, &["search"]), "the API key was refused (401)");
    refused(&evident(&serve.base, wrong, &["tail", "-f"]), "the API key was refused (401)");
    refused(&evident(&serve.base, "", &["search"]), "no API key");
    refused(&evident(&serve.base, &serve.key("producer"), &["search"]), "forbidden (403)");
    refused(&evident(&serve.base, &serve.key("reader"), &["demo", "--days", "1"]), "demo needs an admin key");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = format!("http://127.0.0.1:{port}");
    refused(&evident(&nowhere, &serve.admin, &["search"]), "cannot reach");
    refused(&evident(&nowhere, &serve.admin, &["demo"]), "cannot reach");

    refused(&evident(&serve.base, &serve.admin, &["search", "--outcome", "maybe"]), "--outcome");
    refused(&evident(&serve.base, &serve.admin, &["search", "--order", "sideways"]), "sideways");
    refused(
        &evident(&serve.base, &serve.admin, &["search", "--target", "customer/"]),
        "--target must be TYPE/ID",
    );
    refused(&evident(&serve.base, &serve.admin, &["demo", "--until", "someday"]), "--until");
}
