//! `evident export` and `evident verify` as users run them: the real binary against a real
//! `evident serve` in a temporary directory. A subject's export verifies offline, with our verifier
//! and with the Go checker (Go's reference tlog and note packages); an investigator's export carries
//! personal parts that are checked against their commitments; and every tampering with a bundle
//! (an entry changed, an event dropped, added or moved, the trailer cut, the JSONL view edited)
//! fails, naming the event. Receipts and checkpoints verify against a pinned key; `verify --watch`
//! follows the log and exits 2 on a rollback or a fork.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{EVIDENT, Serve};
use evident_tlog::{LeafIndex, TreeSize};
use serde_json::{Value, json};

const ORIGIN: &str = "evident.localhost/default";

impl Serve {
    /// Appends `count` events: subjects cust-0 to cust-4 in turn, each with personal values
    /// (the actor's display name, the target's display name, the client IP).
    fn append(&self, producer: &str, first: usize, count: usize) -> Vec<Value> {
        let events: Vec<Value> = (first..first + count)
            .map(|i| {
                let subject = format!("cust-{}", i % 5);
                let mut event = json!({
                    "id": format!("crm-{i}"), "source": "//crm.example.com/support-api",
                    "type": if i % 3 == 0 { "customer.record.updated" } else { "customer.record.viewed" },
                    "action": if i % 3 == 0 { "update" } else { "read" },
                    "time": format!("2026-03-01T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
                    "actor": {"id": format!("agent-{}", i % 4), "type": "user", "display": format!("Agent Number {}", i % 4)},
                    "subject": subject,
                    "targets": [{"type": "customer", "id": subject, "display": format!("Customer {subject}")}],
                    "outcome": "success", "reason": format!("ticket T-{i}, \"quoted\", with a comma"),
                    "origin": {"ip": format!("192.0.2.{}", i % 250 + 1), "service": "crm"}
                });
                if i % 3 == 0 {
                    event["changes"] =
                        json!([{"field": "/email", "before": format!("old-{i}@example.com"), "after": format!("new-{i}@example.com")}]);
                }
                event
            })
            .collect();
        let (status, body) = self.post(producer, "/v1/events", &Value::Array(events));
        let receipts = body["receipts"].as_array().expect("receipts").clone();
        let rejected: Vec<&Value> = receipts.iter().filter(|r| r["status"] != "stored").collect();
        assert!(status == 200 && rejected.is_empty(), "{status}: {rejected:?}");
        receipts
    }
}

/// Runs `evident ARGS` with no ambient configuration.
fn evident<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(EVIDENT)
        .args(args)
        .env_remove("EVIDENT_URL")
        .env_remove("EVIDENT_API_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("evident runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and answers stdout.
fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Asserts failure with `code` and answers stderr.
fn fails(output: &Output, code: i32, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stderr)
}

fn export(serve: &Serve, key: &str, dir: &Path, filters: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["export".into(), "--url".into(), serve.base.clone(), "--key".into()];
    args.push(key.to_owned());
    args.extend(filters.iter().map(|s| s.to_string()));
    args.push("--output".into());
    args.push(dir.display().to_string());
    evident(args)
}

fn verify(bundle: &Path, vkey: &str) -> Output {
    evident([
        "verify".as_ref(),
        bundle.as_os_str(),
        "--vkey".as_ref(),
        vkey.as_ref(),
        "--origin".as_ref(),
        ORIGIN.as_ref(),
    ])
}

fn go_check(bundle: &Path, vkey: &str) -> Output {
    Command::new(common::go_checker())
        .arg("-bundle")
        .arg(bundle)
        .args(["-vkey", vkey, "-origin", ORIGIN])
        .output()
        .expect("run the Go checker")
}

/// The log's hash tiles over HTTP.
struct HttpTiles<'a> {
    serve: &'a Serve,
    key: &'a str,
}

impl evident_tlog::TileReader for HttpTiles<'_> {
    fn read_tiles(&self, tiles: &[evident_tlog::TileId]) -> evident_tlog::Result<Vec<Vec<u8>>> {
        Ok(tiles
            .iter()
            .map(|tile| self.serve.get_bytes(self.key, &format!("/v1/logs/default/{}", tile.path())))
            .collect())
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
}

/// A copy of the bundle directory `from`, with `bundle.ndjson` replaced by `lines` (when given).
fn tampered(from: &Path, name: &str, lines: Option<&[String]>) -> PathBuf {
    let to = from.parent().expect("parent").join(name);
    std::fs::create_dir_all(&to).expect("mkdir");
    for file in ["bundle.ndjson", "events.jsonl", "events.csv"] {
        std::fs::copy(from.join(file), to.join(file)).expect("copy");
    }
    if let Some(lines) = lines {
        std::fs::write(to.join("bundle.ndjson"), lines.iter().map(|l| format!("{l}\n")).collect::<String>())
            .expect("write");
    }
    to
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).expect("a JSON line")
}

/// `index N, event_id E` of an event line, as messages name it.
fn names(line: &str) -> String {
    let value = parse(line);
    format!("index {}, event_id {}", value["index"], value["event_id"].as_str().expect("event_id"))
}

#[test]
fn an_export_verifies_offline_and_any_tampering_is_named() {
    let serve = Serve::fresh();
    let (producer, auditor) = (serve.key("producer"), serve.key("auditor"));
    serve.append(&producer, 0, 50);
    let vkey = text(&serve.get_bytes(&auditor, "/v1/logs/default/vkeys")).trim().to_owned();
    let work = tempfile::tempdir().expect("temp dir");

    // cust-1's events, as an auditor sees them (no personal values).
    let good = work.path().join("cust-1");
    let summary = ok(&export(&serve, &auditor, &good, &["--subject", "cust-1"]), "export cust-1");
    let summary = parse(summary.trim());
    assert_eq!(summary["events"], 10, "{summary}");
    assert_eq!(summary["personal_included"], 0, "{summary}");
    let bundle = read_lines(&good.join("bundle.ndjson"));
    assert_eq!(bundle.len(), 12, "header, 10 events, trailer");
    let jsonl = read_lines(&good.join("events.jsonl"));
    assert_eq!(jsonl.len(), 10);
    assert!(jsonl.iter().all(|line| !line.contains("Agent Number")), "no personal value for an auditor");
    let mut csv = csv::Reader::from_path(good.join("events.csv")).expect("events.csv");
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), 10);
    assert_eq!(&rows[0][12], "ticket T-1, \"quoted\", with a comma", "CSV quoting round-trips");
    assert_eq!(&rows[0][10], "cust-1");

    let verdict = ok(&verify(&good, &vkey), "verify the genuine bundle");
    assert_eq!(parse(verdict.trim())["events"], 10);
    let go = go_check(&good, &vkey);
    assert!(ok(&go, "Go checker on the genuine bundle").contains("bundle verifies: 10 events"));
    // Without a pinned key: a failure, unless trust on first use is asked for (then verified
    // against the header's key, with a loud warning).
    let unpinned = evident(["verify".as_ref(), good.as_os_str()]);
    let stderr = fails(&unpinned, 1, "unpinned");
    assert!(
        stderr.contains("no verifier key is pinned") && stderr.contains("--trust-on-first-use"),
        "{stderr}"
    );
    let tofu = evident(["verify".as_ref(), good.as_os_str(), "--trust-on-first-use".as_ref()]);
    assert!(ok(&tofu, "trust on first use").contains("\"key_pinned\":false"));
    assert!(text(&tofu.stderr).contains("WARNING: --trust-on-first-use"), "{}", text(&tofu.stderr));

    // An event of cust-2, genuine, that the query does not select. Another export is made at
    // another tree size (each export is itself recorded), so its proof is recomputed at this
    // bundle's size from the log's tiles, as any follower of the log could.
    let other = work.path().join("cust-2");
    ok(&export(&serve, &auditor, &other, &["--subject", "cust-2"]), "export cust-2");
    let mut foreign = parse(&read_lines(&other.join("bundle.ndjson"))[3]);
    let size = parse(&bundle[0])["tree_size"].as_u64().unwrap();
    let tiles = evident_tlog::TileHashSource::new(HttpTiles { serve: &serve, key: &auditor }, TreeSize(size));
    let index = foreign["index"].as_u64().unwrap();
    let proof = evident_tlog::inclusion_proof(LeafIndex(index), TreeSize(size), &tiles).expect("a proof");
    foreign["proof"] = json!(proof.iter().map(evident_tlog::Hash::to_base64).collect::<Vec<_>>());
    let foreign = foreign.to_string();

    let mut reports = Vec::new();
    let mut case =
        |name: &str, lines: Option<Vec<String>>, edit_jsonl: bool, expect: &[String], go_too: bool| {
            let dir = tampered(&good, name, lines.as_deref());
            if edit_jsonl {
                let mut jsonl = read_lines(&dir.join("events.jsonl"));
                jsonl[4] = jsonl[4].replacen("agent-", "agent-9", 1);
                std::fs::write(dir.join("events.jsonl"), jsonl.join("\n") + "\n").expect("write");
            }
            let stderr = fails(&verify(&dir, &vkey), 1, name);
            for part in expect {
                assert!(stderr.contains(part.as_str()), "{name}: {stderr:?} does not name {part:?}");
            }
            let go = go_check(&dir, &vkey);
            if go_too {
                let go_stderr = fails(&go, 1, &format!("Go checker, {name}"));
                reports.push(format!("{name}:\n  evident: {}  go: {}", stderr, go_stderr));
            } else {
                reports.push(format!("{name}:\n  evident: {}", stderr));
            }
        };

    // One event's entry changed (one character flipped: the actor's id).
    let mut lines = bundle.clone();
    let mut value = parse(&lines[5]);
    let entry =
        text(&BASE64.decode(value["entry"].as_str().unwrap()).unwrap()).replacen("agent-", "agent-X", 1);
    value["entry"] = json!(BASE64.encode(entry.as_bytes()));
    lines[5] = value.to_string();
    case(
        "entry-changed",
        Some(lines),
        false,
        &[format!("line 6 ({})", names(&bundle[5])), "inclusion proof".into()],
        true,
    );

    // One event dropped: both verifiers name it.
    let mut lines = bundle.clone();
    lines.remove(4);
    let dropped = format!(
        "it lists 10 events, the bundle holds 9: missing: {}",
        names(&bundle[4]).replacen(", event_id ", " (event_id ", 1) + ")"
    );
    case("dropped", Some(lines.clone()), false, std::slice::from_ref(&dropped), true);
    let go = fails(&go_check(&tampered(&good, "dropped-go", Some(&lines)), &vkey), 1, "Go checker, dropped");
    assert!(go.contains(&dropped), "{go}");

    // A genuine event that the query does not select, added.
    let mut lines = bundle.clone();
    lines.insert(6, foreign.clone());
    case(
        "foreign-added",
        Some(lines),
        false,
        &[
            format!("line 7 ({})", names(&foreign)),
            "does not match the bundle's query: /subject is \"cust-2\", the query asks for \"cust-1\"".into(),
        ],
        true,
    );

    // Two events swapped.
    let mut lines = bundle.clone();
    lines.swap(3, 4);
    case(
        "reordered",
        Some(lines),
        false,
        &[format!("line 5 ({})", names(&bundle[3])), "out of order".into()],
        true,
    );

    // The trailer cut.
    let mut lines = bundle.clone();
    lines.pop();
    case("truncated", Some(lines), false, &["the bundle is truncated".into()], true);

    // The query widened in the header.
    let mut lines = bundle.clone();
    let mut header = parse(&lines[0]);
    header["query"] = json!({"subject": "cust-1", "type": "customer.record.viewed"});
    lines[0] = header.to_string();
    case("query-changed", Some(lines), false, &["does not match the bundle's query".into()], true);

    // events.jsonl edited (the bundle itself intact): both verifiers read it.
    case("jsonl-changed", None, true, &[format!("events.jsonl line 5 ({})", names(&bundle[5]))], true);

    // The readable reason of one event edited in the bundle (its entry intact).
    let mut lines = bundle.clone();
    let mut value = parse(&lines[3]);
    value["event"]["reason"] = json!("nothing to see here");
    lines[3] = value.to_string();
    case(
        "reason-changed",
        Some(lines),
        false,
        &[format!("line 4 ({})", names(&bundle[3])), "\"/reason\"".into()],
        true,
    );

    // Printed for the report.
    eprintln!("{}", reports.join("\n"));

    // A bundle exported with another log's key, or checked with one, fails; so does a missing one.
    let wrong = evident_tlog::Signer::from_seed(ORIGIN, [7; 32]).unwrap().verifier().to_vkey();
    let stderr = fails(&verify(&good, &wrong), 1, "wrong vkey");
    assert!(stderr.contains("not signed by a trusted key"), "{stderr}");
    fails(&go_check(&good, &wrong), 1, "Go checker, wrong vkey");
    let stderr = fails(&verify(&work.path().join("missing"), &vkey), 1, "missing bundle");
    assert!(stderr.contains("cannot read") && stderr.contains("missing"), "{stderr}");
    let garbage = work.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("bundle.ndjson"), "this is not a bundle\n").unwrap();
    let stderr = fails(&verify(&garbage, &vkey), 1, "unreadable bundle");
    assert!(stderr.contains("bundle.ndjson line 1: header: not JSON"), "{stderr}");
    let stderr = fails(&verify(&good, "not-a-vkey"), 1, "malformed vkey");
    assert!(stderr.contains("--vkey \"not-a-vkey\" is not a verifier key"), "{stderr}");
}

#[test]
fn an_investigators_export_carries_checked_personal_parts() {
    let serve = Serve::fresh();
    let (producer, auditor, investigator) =
        (serve.key("producer"), serve.key("auditor"), serve.key("investigator"));
    serve.append(&producer, 0, 50);
    let vkey = text(&serve.get_bytes(&auditor, "/v1/logs/default/vkeys")).trim().to_owned();
    let work = tempfile::tempdir().expect("temp dir");

    let dir = work.path().join("dsar");
    let filters = ["--subject", "cust-3", "--from", "2026-03-01T10:00:10Z", "--purpose", "DSAR 2026-17"];
    let summary = parse(ok(&export(&serve, &investigator, &dir, &filters), "investigator export").trim());
    assert_eq!(summary["events"], 8, "cust-3 from the 10th second on: {summary}");
    assert_eq!(summary["personal_included"], 8, "{summary}");
    assert_eq!(summary["query"]["from"], "2026-03-01T10:00:10.000000Z", "the normalised time is signed");
    let jsonl = read_lines(&dir.join("events.jsonl"));
    assert!(jsonl[0].contains("Agent Number") && jsonl[0].contains("192.0.2."), "{}", jsonl[0]);
    let csv = std::fs::read_to_string(dir.join("events.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().ends_with(",true"), "{csv}");
    let verdict = parse(ok(&verify(&dir, &vkey), "verify with personal parts").trim());
    assert_eq!(verdict["personal_included"], 8);
    ok(&go_check(&dir, &vkey), "Go checker with personal parts");

    // A personal value changed: its commitment no longer matches.
    let bundle = read_lines(&dir.join("bundle.ndjson"));
    let mut lines = bundle.clone();
    let mut value = parse(&lines[2]);
    value["personal"]["part"]["/origin/ip"] = json!("203.0.113.66");
    value["event"]["origin"]["ip"] = json!("203.0.113.66");
    lines[2] = value.to_string();
    let changed = tampered(&dir, "personal-changed", Some(&lines));
    let stderr = fails(&verify(&changed, &vkey), 1, "personal part changed");
    assert!(stderr.contains(&format!("line 3 ({})", names(&bundle[2]))), "{stderr}");
    assert!(stderr.contains("does not match the entry's pii_commitment"), "{stderr}");
    let go = fails(&go_check(&changed, &vkey), 1, "Go checker, personal part changed");
    assert!(go.contains(&format!("line 3 ({})", names(&bundle[2]))), "{go}");
    assert!(go.contains("does not match the entry's pii_commitment"), "{go}");
    eprintln!("personal-changed:\n  evident: {stderr}  go: {go}");

    // Only the readable personal value changed (its part intact): every verifier sees it.
    let mut lines = bundle.clone();
    let mut value = parse(&lines[2]);
    value["event"]["origin"]["ip"] = json!("203.0.113.66");
    lines[2] = value.to_string();
    let changed = tampered(&dir, "shown-ip-changed", Some(&lines));
    let stderr = fails(&verify(&changed, &vkey), 1, "shown personal value changed");
    assert!(stderr.contains("\"/origin/ip\""), "{stderr}");
    let go = fails(&go_check(&changed, &vkey), 1, "Go checker, shown personal value changed");
    assert!(go.contains("differs from its entry with the personal part merged in"), "{go}");

    // The IP edited in events.jsonl and in events.csv of the subject export.
    for (file, from, to) in [("events.jsonl", "192.0.2.", "198.51.100."), ("events.csv", "true", "false")] {
        let changed = tampered(&dir, &format!("{file}-changed"), None);
        let text = std::fs::read_to_string(changed.join(file)).unwrap().replacen(from, to, 1);
        std::fs::write(changed.join(file), text).unwrap();
        let stderr = fails(&verify(&changed, &vkey), 1, file);
        assert!(stderr.contains(file), "{stderr}");
        let go = fails(&go_check(&changed, &vkey), 1, &format!("Go checker, {file} changed"));
        assert!(go.contains(file) && go.contains(&format!("({})", names(&bundle[1]))), "{go}");
    }

    // Personal data for someone without the role is refused and nothing is left behind; so is a
    // bad filter; an existing bundle is not overwritten.
    let refused = work.path().join("refused");
    let stderr = fails(&export(&serve, &auditor, &refused, &["--purpose", "curious"]), 1, "auditor purpose");
    assert!(
        stderr.contains("403") && stderr.contains("only investigators may read personal data"),
        "{stderr}"
    );
    assert!(!refused.exists(), "no half bundle is left");
    let stderr = fails(&export(&serve, &auditor, &refused, &["--outcome", "maybe"]), 1, "bad filter");
    assert!(stderr.contains("400") && stderr.contains("outcome"), "{stderr}");
    let stderr = fails(&export(&serve, &auditor, &dir, &["--subject", "cust-3"]), 1, "not empty");
    assert!(stderr.contains("is not empty") && stderr.contains("--force"), "{stderr}");
    let forced = export(&serve, &auditor, &dir, &["--subject", "cust-3", "--force"]);
    assert_eq!(parse(ok(&forced, "--force").trim())["personal_included"], 0);
    let stderr = fails(&export(&serve, "evk_wrong", &refused, &[]), 1, "wrong API key");
    assert!(stderr.contains("401"), "{stderr}");
    let unreachable = evident([
        "export",
        "--url",
        "http://127.0.0.1:9",
        "--key",
        &auditor,
        "--output",
        &refused.display().to_string(),
    ]);
    let stderr = fails(&unreachable, 1, "unreachable server");
    assert!(stderr.contains("cannot reach http://127.0.0.1:9"), "{stderr}");
}

#[test]
fn receipts_and_checkpoints_verify_against_a_pinned_key() {
    let serve = Serve::fresh();
    let (producer, auditor) = (serve.key("producer"), serve.key("auditor"));
    let receipts = serve.append(&producer, 0, 5);
    let event_id = receipts[2]["event_id"].as_str().unwrap().to_owned();
    let vkey = text(&serve.get_bytes(&auditor, "/v1/logs/default/vkeys")).trim().to_owned();
    let work = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| work.path().join(name);
    std::fs::write(
        path("event.tlog-proof"),
        serve.get_bytes(&auditor, &format!("/v1/events/{event_id}/proof")),
    )
    .unwrap();
    let entry = serve.get_bytes(&auditor, &format!("/v1/events/{event_id}/entry"));
    std::fs::write(path("entry.json"), &entry).unwrap();
    std::fs::write(path("changed.json"), text(&entry).replacen("agent-", "agent-X", 1)).unwrap();
    std::fs::write(path("vkeys"), format!("{vkey}\n")).unwrap();

    let receipt = |entry: &str, key: &[&str]| {
        let mut args: Vec<std::ffi::OsString> =
            vec!["verify".into(), path("event.tlog-proof").into(), "--event".into(), path(entry).into()];
        args.extend(key.iter().map(std::ffi::OsString::from));
        evident(args)
    };
    let good = ok(&receipt("entry.json", &["--vkey", &vkey]), "receipt");
    assert_eq!(parse(good.trim())["event_id"], event_id.as_str());
    ok(&receipt("entry.json", &["--vkey-file", &path("vkeys").display().to_string()]), "receipt, vkey file");
    let stderr = fails(&receipt("changed.json", &["--vkey", &vkey]), 1, "receipt with a changed entry");
    assert!(stderr.contains("receipt does NOT verify") && stderr.contains("changed.json"), "{stderr}");
    eprintln!("receipt, changed entry:\n  evident: {stderr}");
    let stderr = fails(&receipt("entry.json", &[]), 1, "receipt without a key");
    assert!(stderr.contains("needs the log's verifier key"), "{stderr}");
    let stderr = fails(
        &evident(["verify".as_ref(), path("event.tlog-proof").as_os_str(), "--vkey".as_ref(), vkey.as_ref()]),
        1,
        "receipt without its event",
    );
    assert!(stderr.contains("--event FILE"), "{stderr}");

    let checkpoint = text(&serve.get_bytes(&auditor, "/v1/logs/default/checkpoint"));
    std::fs::write(path("checkpoint"), &checkpoint).unwrap();
    let size_line = checkpoint.lines().nth(1).unwrap().to_owned();
    let bigger = size_line.parse::<u64>().unwrap() + 1;
    let forged = checkpoint.replacen(&format!("\n{size_line}\n"), &format!("\n{bigger}\n"), 1);
    std::fs::write(path("forged-checkpoint"), forged).unwrap();
    let verify_checkpoint =
        |name: &str| evident(["verify".as_ref(), path(name).as_os_str(), "--vkey".as_ref(), vkey.as_ref()]);
    let good = parse(ok(&verify_checkpoint("checkpoint"), "checkpoint").trim());
    assert_eq!(good["tree_size"].to_string(), size_line);
    let stderr = fails(&verify_checkpoint("forged-checkpoint"), 1, "forged checkpoint");
    assert!(stderr.contains("checkpoint does NOT verify: bad signature"), "{stderr}");
    eprintln!("checkpoint, size changed:\n  evident: {stderr}");
    let stderr = fails(&verify_checkpoint("nothing-here"), 1, "missing file");
    assert!(stderr.contains("cannot read") && stderr.contains("nothing-here"), "{stderr}");
}

#[test]
fn watch_follows_the_log_and_alarms_on_rollback_or_fork() {
    let serve = Serve::fresh();
    let (producer, auditor) = (serve.key("producer"), serve.key("auditor"));
    serve.append(&producer, 0, 10);
    let work = tempfile::tempdir().expect("temp dir");
    let state = work.path().join("watch.json");
    let log = serve.url("/v1/logs/default");
    let watch = || {
        evident([
            "verify".as_ref(),
            "--watch".as_ref(),
            log.as_ref(),
            "--key".as_ref(),
            auditor.as_ref(),
            "--once".as_ref(),
            "--state".as_ref(),
            state.as_os_str(),
        ])
    };
    let first = parse(ok(&watch(), "first watch").trim());
    assert_eq!(first["status"], "first", "{first}");
    let seen: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(seen["size"], first["tree_size"]);
    assert!(seen["vkeys"][0].as_str().unwrap().starts_with(ORIGIN), "the key is pinned: {seen}");

    serve.append(&producer, 10, 10);
    let second = parse(ok(&watch(), "second watch").trim());
    assert_eq!(second["status"], "consistent", "{second}");
    assert_eq!(second["previous_size"], first["tree_size"]);
    assert!(second["tree_size"].as_u64() > first["tree_size"].as_u64());
    let seen: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let size = seen["size"].as_u64().unwrap();

    let other_root = BASE64.encode([0x42; 32]);
    let set_state = |size: u64| {
        let mut forged = seen.clone();
        forged["size"] = json!(size);
        forged["root"] = json!(other_root);
        std::fs::write(&state, serde_json::to_vec(&forged).unwrap()).unwrap();
    };
    // The state claims a bigger tree than the log now shows: a rollback.
    set_state(size + 100);
    let stderr = fails(&watch(), 2, "rollback");
    assert!(stderr.contains("ROLLBACK") && stderr.contains(&format!("tree size {}", size + 100)), "{stderr}");
    eprintln!("watch, rollback:\n  evident: {stderr}");
    // Another root at the very size the log shows: a fork.
    set_state(size);
    let stderr = fails(&watch(), 2, "fork at the same size");
    assert!(stderr.contains("FORK") && stderr.contains("at the same size"), "{stderr}");
    eprintln!("watch, same size other root:\n  evident: {stderr}");
    // Another root at a size the log has passed: its consistency proof fails, a fork.
    set_state(size - 3);
    let stderr = fails(&watch(), 2, "fork");
    assert!(stderr.contains("FORK") && stderr.contains("is not consistent with"), "{stderr}");
    eprintln!("watch, inconsistent:\n  evident: {stderr}");
    // And a changed key is refused.
    let mut forged = seen.clone();
    forged["vkeys"] = json!([evident_tlog::Signer::from_seed(ORIGIN, [7; 32]).unwrap().verifier().to_vkey()]);
    std::fs::write(&state, serde_json::to_vec(&forged).unwrap()).unwrap();
    let stderr = fails(&watch(), 2, "changed key");
    assert!(stderr.contains("verifier keys changed"), "{stderr}");
    eprintln!("watch, key changed:\n  evident: {stderr}");
    // An unreachable log is an error (exit 1), not an alarm.
    let down = evident([
        "verify",
        "--watch",
        "http://127.0.0.1:9/v1/logs/default",
        "--once",
        "--state",
        &work.path().join("down.json").display().to_string(),
    ]);
    let stderr = fails(&down, 1, "unreachable watch");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}
