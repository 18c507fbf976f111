//! Erasure as users run it: the real `evident serve` on SQLite and on PostgreSQL, `evident erase`,
//! then nothing of the subject's personal values, nor the key that sealed them, is left in any
//! byte of the data directory (database file, WAL, free pages) or in any row of any PostgreSQL
//! table (the inbox included); reads show the values as erased; receipts and export bundles made
//! before and after, `fsck` and the Go checker all still verify.
//!
//! The PostgreSQL half needs the server of `EVIDENT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `psql`; it fails loudly without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{EVIDENT, Serve, evident, json_lines};
use serde_json::{Value, json};

const ORIGIN: &str = "evident.localhost/default";
const ERASED: &str = "cust-erase";
const KEPT: &str = "cust-keep";
/// Personal values of the erased subject's events: none may survive the erasure anywhere.
const SECRETS: [&str; 5] =
    ["Zebulon Quixotic", "203.0.113.77", "zebulon.quixotic@example.org", "QuixBrowser/9.1", "+47 555 0199"];

fn events(subject: &str, names: [&str; 5], first: usize) -> Value {
    let [display, ip, email, agent, phone] = names;
    let events: Vec<Value> = (first..first + 3)
        .map(|i| {
            json!({
                "id": format!("crm-{i}"), "source": "//crm.example.com/support-api",
                "type": "customer.record.updated", "action": "update", "time": format!("2026-03-01T10:00:{i:02}Z"),
                "actor": {"id": "agent-1", "type": "user", "display": "Agent One"},
                "subject": subject,
                "targets": [{"type": "customer", "id": subject, "display": display}],
                "outcome": "success", "reason": "ticket T-1",
                "changes": [{"field": "/email", "before": email, "after": phone}],
                "origin": {"ip": ip, "user_agent": agent, "service": "crm"}, "data_classes": ["pii"]
            })
        })
        .collect();
    Value::Array(events)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}:\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// What the scans look for: the values, and the wrapped data key as the store holds it.
struct Needles {
    values: Vec<Vec<u8>>,
    wrapped_key: Vec<u8>,
}

/// The parts of an erasure every store shares. `wrapped_key` reads the subject's wrapped data key
/// from the store; `scan` answers which of the needles occur anywhere in the store.
struct Erasure<'a> {
    serve: &'a Serve,
    dir: &'a Path,
    wrapped_key: &'a dyn Fn(&str) -> Option<Vec<u8>>,
    scan: &'a dyn Fn(&[Vec<u8>]) -> Vec<usize>,
    /// The answer's `cache_bound_secs`: 0 on one node, the cache's TTL on a shared store.
    cache_bound_secs: u64,
}

impl Erasure<'_> {
    fn run(&self) {
        let serve = self.serve;
        let producer = serve.key("producer");
        let privacy = serve.key("privacy");
        let investigator = serve.key("investigator");
        let auditor = serve.key("auditor");
        let (status, body) = serve.post(&producer, "/v1/events", &events(ERASED, SECRETS, 0));
        assert_eq!(status, 200, "{body}");
        let first_id = body["receipts"][0]["event_id"].as_str().unwrap().to_owned();
        let keep = ["Keeper Kim", "198.51.100.8", "kim@example.org", "KeepBrowser/1", "+47 555 0100"];
        let (status, body) = serve.post(&producer, "/v1/events", &events(KEPT, keep, 3));
        assert_eq!(status, 200, "{body}");

        let wrapped = (self.wrapped_key)(ERASED).expect("the subject has a data key");
        let needles =
            Needles { values: SECRETS.iter().map(|s| s.as_bytes().to_vec()).collect(), wrapped_key: wrapped };
        let mut all = needles.values.clone();
        all.push(needles.wrapped_key.clone());
        // The store never held the values in clear; it does hold the wrapped key (so the scan bites).
        assert_eq!((self.scan)(&all), vec![SECRETS.len()], "before erasure");

        let receipt = self.dir.join("before.tlog-proof");
        std::fs::write(&receipt, serve.get_bytes(&auditor, &format!("/v1/events/{first_id}/proof"))).unwrap();
        let entry = self.dir.join("before.entry");
        std::fs::write(&entry, serve.get_bytes(&auditor, &format!("/v1/events/{first_id}/entry"))).unwrap();
        let before = self.export(&auditor, "before");

        self.refusals(&privacy, &serve.key("reader"));
        let erased = json_lines(&evident(
            &serve.base,
            &privacy,
            &[
                "erase",
                ERASED,
                "--reason",
                "GDPR Art. 17(1)(b): consent withdrawn",
                "--reference",
                "DSR-2026-0042",
                "--json",
            ],
        ))
        .remove(0);
        assert_eq!(
            (erased["subject"].as_str(), erased["key_destroyed"].as_bool()),
            (Some(ERASED), Some(true))
        );
        assert_eq!(erased["cache_bound_secs"], self.cache_bound_secs);
        let again = json_lines(&evident(
            &serve.base,
            &privacy,
            &["erase", ERASED, "--reason", "repeat", "--reference", "DSR-2026-0042", "--json"],
        ))
        .remove(0);
        assert_eq!(again["key_destroyed"], false, "nothing left the second time; recorded all the same");

        assert_eq!((self.wrapped_key)(ERASED), None);
        assert_eq!((self.scan)(&all), Vec::<usize>::new(), "after erasure");
        self.reads(&investigator, &auditor);
        let vkey = serve.get_bytes(&auditor, "/v1/logs/default/vkeys");
        let vkey = text(&vkey).lines().next().unwrap().to_owned();
        let after = self.export(&auditor, "after");
        for bundle in [&before, &after] {
            succeeded(
                &Command::new(EVIDENT)
                    .arg("verify")
                    .arg(bundle)
                    .args(["--vkey", &vkey, "--origin", ORIGIN])
                    .output()
                    .unwrap(),
                "verify a bundle",
            );
            succeeded(
                &Command::new(common::go_checker())
                    .arg("-bundle")
                    .arg(bundle)
                    .args(["-vkey", &vkey, "-origin", ORIGIN])
                    .output()
                    .unwrap(),
                "the Go checker",
            );
        }
        let verified = Command::new(EVIDENT)
            .arg("verify")
            .arg(&receipt)
            .arg("--event")
            .arg(&entry)
            .args(["--vkey", &vkey, "--origin", ORIGIN])
            .output()
            .unwrap();
        succeeded(&verified, "a receipt from before the erasure");
    }

    /// Bad requests and roles are refused, naming what is wrong; nothing is erased.
    fn refusals(&self, privacy: &str, reader: &str) {
        let serve = self.serve;
        let path = format!("/v1/subjects/{ERASED}/erasure");
        let ok = json!({"reason": "r", "reference": "x"});
        assert_eq!(serve.post(reader, &path, &ok).0, 403);
        assert_eq!(serve.post(&serve.key("producer"), &path, &ok).0, 403);
        for (body, field) in [
            (json!({"reference": "x"}), "reason"),
            (json!({"reason": "r"}), "reference"),
            (json!({"reason": " ", "reference": "x"}), "reason"),
            (json!({"reason": "r", "reference": "x", "subject": "other"}), "subject"),
        ] {
            let (status, problem) = serve.post(privacy, &path, &body);
            assert_eq!(status, 400, "{body}: {problem}");
            assert!(problem.to_string().contains(field), "{body}: {problem} does not name {field}");
        }
        let output = evident(&serve.base, privacy, &["erase", ERASED, "--reason", "r"]);
        assert!(
            !output.status.success() && text(&output.stderr).contains("--reference"),
            "{}",
            text(&output.stderr)
        );
        assert!((self.wrapped_key)(ERASED).is_some(), "a refused request erased nothing");
    }

    /// Reads show the erased values as erased, the other subject's as before; the erasure is an event.
    fn reads(&self, investigator: &str, auditor: &str) {
        let serve = self.serve;
        let timeline = serve.get(investigator, &format!("/v1/subjects/{ERASED}/timeline?purpose=audit"));
        let events = timeline["events"].as_array().unwrap();
        assert!(
            events
                .iter()
                .filter(|e| e["event"]["type"] == "customer.record.updated")
                .all(|e| e["personal"] == "erased"),
            "{timeline}"
        );
        assert!(!SECRETS.iter().any(|s| timeline.to_string().contains(s)), "{timeline}");
        let kept = serve.get(investigator, &format!("/v1/subjects/{KEPT}/timeline?purpose=audit"));
        assert!(kept.to_string().contains("Keeper Kim"), "{kept}");
        let recorded = serve.get(auditor, "/v1/events?type=evident.privacy.erased");
        let recorded = recorded["events"].as_array().unwrap();
        assert_eq!(recorded.len(), 2);
        let event =
            &recorded.iter().find(|e| e["event"]["metadata"]["key_destroyed"] == "true").unwrap()["event"];
        assert_eq!(event["targets"][0], json!({"type": "subject", "id": ERASED}));
        assert_eq!(event["metadata"]["reference"], "DSR-2026-0042");
        assert_eq!(event["reason"], "GDPR Art. 17(1)(b): consent withdrawn");
    }

    fn export(&self, key: &str, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.bundle"));
        let output = evident(
            &self.serve.base,
            key,
            &["export", "--subject", ERASED, "--output", path.to_str().unwrap()],
        );
        succeeded(&output, "export");
        path
    }
}

/// Which needles occur in any byte of any file under `dir`.
fn scan_files(dir: &Path, needles: &[Vec<u8>]) -> Vec<usize> {
    let mut bytes = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    (0..needles.len())
        .filter(|&i| bytes.windows(needles[i].len()).any(|w| w == needles[i].as_slice()))
        .collect()
}

#[test]
fn erasure_on_sqlite_leaves_no_byte_of_the_subject() {
    let files = tempfile::tempdir().unwrap();
    let data = files.path().join("data");
    let serve = Serve::first_start(&data);
    let database = data.join("evident.sqlite");
    let wrapped_key = |subject: &str| -> Option<Vec<u8>> {
        let connection = rusqlite::Connection::open(&database).unwrap();
        connection
            .query_row(
                "SELECT wrapped FROM data_keys WHERE subject LIKE ?1 || '%' ORDER BY subject",
                [subject],
                |row| row.get(0),
            )
            .ok()
    };
    let scan = |needles: &[Vec<u8>]| scan_files(&data, needles);
    // One node: no other holds a cached copy of the key.
    Erasure { serve: &serve, dir: files.path(), wrapped_key: &wrapped_key, scan: &scan, cache_bound_secs: 0 }
        .run();
    serve.terminate();
    assert_eq!(scan_files(&data, &[SECRETS[1].as_bytes().to_vec()]), Vec::<usize>::new(), "after a stop");
    let fsck = Command::new(EVIDENT).args(["fsck", "--data-dir"]).arg(&data).output().unwrap();
    succeeded(&fsck, "fsck");
}

fn database_url() -> String {
    std::env::var("EVIDENT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn psql(sql: &str) -> String {
    let output = Command::new("psql").args([&database_url(), "-At", "-c", sql]).output().expect("psql runs");
    assert!(output.status.success(), "psql {sql}: {}", text(&output.stderr));
    text(&output.stdout)
}

/// A schema of this test's own, dropped when the test ends, passed or failed.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .env("PGOPTIONS", "--client-min-messages=warning")
            .args([&database_url(), "-q", "-c", &format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0)])
            .status();
    }
}

/// A server on a schema of its own (`evident_<prefix>_<pid>`), its key files in `files/keys`.
fn serve_on_postgres(prefix: &str, files: &Path) -> (Serve, Schema) {
    let schema = format!("evident_{prefix}_{}", std::process::id());
    let env = [("EVIDENT_DATABASE_URL", database_url()), ("EVIDENT_DATABASE_SCHEMA", schema.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (Serve::first_start_with(&files.join("keys"), &env), Schema(schema))
}

#[test]
fn erasure_on_postgres_leaves_no_row_with_the_subject() {
    let files = tempfile::tempdir().unwrap();
    let (serve, guard) = serve_on_postgres("erasure", files.path());
    let schema = guard.0.clone();
    let wrapped_key = |subject: &str| -> Option<Vec<u8>> {
        let hex = psql(&format!(
            "SELECT encode(wrapped, 'hex') FROM \"{schema}\".data_keys WHERE subject LIKE '{subject}%' ORDER BY subject"
        ));
        // The first of the subject's month keys (self-audit events about it have keys of their own).
        let hex = hex.lines().next().unwrap_or("").trim();
        (!hex.is_empty()).then(|| {
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
        })
    };
    // Every row of every table (partitions and the inbox included) as text; bytea as hex.
    let scan = |needles: &[Vec<u8>]| -> Vec<usize> {
        let tables = psql(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"
        ));
        let mut dump = String::new();
        for table in tables.lines() {
            dump.push_str(&psql(&format!("SELECT t::text FROM \"{schema}\".\"{table}\" t")));
        }
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        (0..needles.len())
            .filter(|&i| {
                dump.contains(&*String::from_utf8_lossy(&needles[i])) || dump.contains(&hex(&needles[i]))
            })
            .collect()
    };
    // Other nodes may share the database: they drop their copies within the cache's TTL.
    Erasure { serve: &serve, dir: files.path(), wrapped_key: &wrapped_key, scan: &scan, cache_bound_secs: 5 }
        .run();
    serve.terminate();
    let fsck = Command::new(EVIDENT)
        .args(["fsck", "--database-url", &database_url(), "--database-schema", &schema, "--data-dir"])
        .arg(files.path().join("keys"))
        .output()
        .unwrap();
    succeeded(&fsck, "fsck");
}

fn delete(serve: &Serve, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let response =
        common::client().delete(serve.url(path)).bearer_auth(key).json(body).send().expect("DELETE");
    let status = response.status().as_u16();
    (status, response.json().expect("JSON"))
}

/// Holds on a subject, a filter and the whole tenant each refuse erasure with 409 naming the
/// hold, until released; every change is an event; bad requests are refused by field.
fn holds_block_erasure(serve: &Serve) {
    let producer = serve.key("producer");
    let privacy = serve.key("privacy");
    let (status, body) = serve.post(&producer, "/v1/events", &events("cust-h", SECRETS, 10));
    assert_eq!(status, 200, "{body}");
    let mut viewed = events("cust-f", SECRETS, 20);
    for event in viewed.as_array_mut().unwrap() {
        event["type"] = json!("customer.record.viewed");
    }
    assert_eq!(serve.post(&producer, "/v1/events", &viewed).0, 200);
    let hold = |args: &[&str]| -> Value {
        let mut all = vec!["holds", "create", "--reason", "litigation", "--reference", "CASE-7", "--json"];
        all.extend_from_slice(args);
        json_lines(&evident(&serve.base, &privacy, &all)).remove(0)
    };
    let erase = |subject: &str| {
        serve.post(
            &privacy,
            &format!("/v1/subjects/{subject}/erasure"),
            &json!({"reason": "r", "reference": "x"}),
        )
    };
    let refused_by = |subject: &str, hold: &Value| {
        let (status, problem) = erase(subject);
        assert_eq!(status, 409, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(hold["id"].as_str().unwrap()), "{problem}");
    };
    let on_subject = hold(&["--subject", "cust-h"]);
    assert_eq!(
        (on_subject["scope"].clone(), on_subject["active"].clone()),
        (json!({"subject": "cust-h"}), json!(true))
    );
    refused_by("cust-h", &on_subject);
    let on_filter = hold(&["--filter", "type=customer.record.viewed"]);
    refused_by("cust-f", &on_filter);
    assert_eq!(erase("cust-nobody").0, 200, "a filter hold covers only subjects with matching events");
    let on_tenant = hold(&["--tenant"]);
    refused_by("cust-nobody", &on_tenant);

    let listed = json_lines(&evident(&serve.base, &privacy, &["holds", "list", "--json"]));
    assert_eq!(listed.len(), 3);
    let path = |hold: &Value| format!("/v1/holds/{}", hold["id"].as_str().unwrap());
    assert_eq!(delete(serve, &privacy, &path(&on_subject), &json!({})).0, 400);
    assert_eq!(delete(serve, &privacy, "/v1/holds/hold_0000000000000000", &json!({"reason": "x"})).0, 404);
    for held in [&on_subject, &on_filter, &on_tenant] {
        let id = held["id"].as_str().unwrap();
        let released = json_lines(&evident(
            &serve.base,
            &privacy,
            &["holds", "release", id, "--reason", "settled", "--json"],
        ));
        assert_eq!(
            (released[0]["active"].clone(), released[0]["release_reason"].clone()),
            (json!(false), json!("settled"))
        );
    }
    assert_eq!(delete(serve, &privacy, &path(&on_subject), &json!({"reason": "again"})).0, 409);
    assert_eq!(erase("cust-h").0, 200, "released holds no longer block");
    for (kind, count) in [("hold_created", 3), ("hold_released", 3)] {
        let found = serve.get(&privacy_reader(serve), &format!("/v1/events?type=evident.privacy.{kind}"));
        assert_eq!(found["events"].as_array().unwrap().len(), count, "{kind}: {found}");
    }
    for (body, field) in [
        (json!({"subject": "a", "tenant": true, "reason": "r", "reference": "x"}), "scope"),
        (json!({"reason": "r", "reference": "x"}), "scope"),
        (json!({"filter": {"colour": "red"}, "reason": "r", "reference": "x"}), "colour"),
        (json!({"filter": {}, "reason": "r", "reference": "x"}), "filter"),
        (json!({"tenant": false, "reason": "r", "reference": "x"}), "tenant"),
        (json!({"subject": "a", "reason": "r"}), "reference"),
    ] {
        let (status, problem) = serve.post(&privacy, "/v1/holds", &body);
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(problem.to_string().contains(field), "{body}: {problem} does not name {field}");
    }
    assert_eq!(
        serve
            .post(
                &serve.key("reader"),
                "/v1/holds",
                &json!({"tenant": true, "reason": "r", "reference": "x"})
            )
            .0,
        403
    );
}

/// A key that may search the log (the events that record holds).
fn privacy_reader(serve: &Serve) -> String {
    serve.key("auditor")
}

#[test]
fn holds_block_erasure_on_sqlite() {
    holds_block_erasure(&Serve::fresh());
}

#[test]
fn holds_block_erasure_on_postgres() {
    let files = tempfile::tempdir().unwrap();
    let (serve, _schema) = serve_on_postgres("holds", files.path());
    holds_block_erasure(&serve);
}

fn put(serve: &Serve, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = common::client().put(serve.url(path)).bearer_auth(key).json(body).send().expect("PUT");
    let status = response.status().as_u16();
    (status, response.json().expect("JSON"))
}

/// Settings below a preset's floor need an override, which is recorded; the background job
/// destroys the months past the maximum (the subject's recent events stay readable) and records
/// each run with its counts.
#[test]
fn retention_makes_old_personal_parts_unrecoverable() {
    let serve = Serve::fresh_with(&[("EVIDENT_RETENTION_INTERVAL_MS", "200")]);
    let privacy = serve.key("privacy");
    let auditor = serve.key("auditor");
    let settings = serve.get(&privacy, "/v1/retention");
    assert_eq!(
        (settings["floor_days"].clone(), settings["available_presets"].as_array().unwrap().len()),
        (json!(0), 3)
    );
    for (body, field, want) in [
        (json!({"presets": ["pci_dss"], "min_days": 300}), "min_days", 422),
        (json!({"presets": ["pci_dss"], "min_days": 365, "max_days": 200}), "max_days", 400),
        (json!({"presets": ["pci_dss"], "min_days": 0, "max_days": 364}), "min_days", 422),
        (json!({"presets": ["gdpr"]}), "presets", 400),
        (json!({"min_days": 30, "max_days": 10}), "max_days", 400),
        (json!({"max_days": 30, "colour": 1}), "colour", 400),
    ] {
        let (status, problem) = put(&serve, &privacy, "/v1/retention", &body);
        assert_eq!(status, want, "{body}: {problem}");
        assert!(problem.to_string().contains(field), "{body}: {problem} does not name {field}");
    }
    assert_eq!(serve.get_status(&serve.key("reader"), "/v1/retention"), 403);
    let overridden =
        json!({"presets": ["pci_dss"], "min_days": 300, "override_reason": "court order 12/2026"});
    assert_eq!(put(&serve, &privacy, "/v1/retention", &overridden).0, 200);
    let set = serve.get(&auditor, "/v1/events?type=evident.privacy.retention_set");
    assert_eq!(set["events"][0]["event"]["metadata"]["override_reason"], "court order 12/2026", "{set}");

    let now = chrono_like_now();
    let producer = serve.key("producer");
    let mut sent = events("cust-old", SECRETS, 30);
    sent[0]["time"] = json!(days_ago(now, 450));
    sent[1]["time"] = json!(days_ago(now, 1));
    sent.as_array_mut().unwrap().truncate(2);
    let (status, body) = serve.post(&producer, "/v1/events", &sent);
    assert_eq!(status, 200, "{body}");
    let ids = receipt_ids(&body);
    let maximum = json!({"presets": ["pci_dss"], "min_days": 365, "max_days": 400});
    let (status, answer) = put(&serve, &privacy, "/v1/retention", &maximum);
    assert_eq!((status, answer["floor_days"].clone()), (200, json!(365)), "{answer}");
    let applied = first_run_destroying_a_key(&serve, &auditor);
    assert_eq!(applied["event"]["metadata"]["keys_held"], "0", "{applied}");
    let investigator = serve.key("investigator");
    let personal =
        |id: &str| serve.get(&investigator, &format!("/v1/events/{id}?purpose=audit"))["personal"].clone();
    assert_eq!((personal(&ids[0]), personal(&ids[1])), (json!("erased"), json!("included")));
}

/// Rules by event type and data class: a rule under a preset's floor is refused (422, naming the
/// rule and the preset) until overridden, the override is recorded with the settings and with each
/// run, and a shorter maximum for one event type erases that type's personal part while another
/// type of the same subject and month keeps its own.
#[test]
fn retention_rules_by_event_type() {
    let serve = Serve::fresh_with(&[("EVIDENT_RETENTION_INTERVAL_MS", "200")]);
    let (privacy, auditor) = (serve.key("privacy"), serve.key("auditor"));
    let now = chrono_like_now();
    let mut sent = events("cust-rules", SECRETS, 40);
    sent[0]["type"] = json!("session.login");
    sent[0]["time"] = json!(days_ago(now, 400));
    sent[1]["time"] = json!(days_ago(now, 400));
    sent[2]["data_classes"] = json!(["phi"]);
    sent[2]["time"] = json!(days_ago(now, 400));
    let (status, body) = serve.post(&serve.key("producer"), "/v1/events", &sent);
    assert_eq!(status, 200, "{body}");
    let ids = receipt_ids(&body);

    let rules = json!([{"event_type": "session.*", "min_days": 30, "max_days": 30},
                       {"data_class": "phi", "min_days": 400}]);
    let mut settings = json!({"presets": ["pci_dss"], "min_days": 365, "rules": rules});
    let (status, problem) = put(&serve, &privacy, "/v1/retention", &settings);
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["invalid-params"][0]["name"], "rules[0].min_days", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("pci_dss"), "{problem}");
    for (bad, field) in [
        (json!([{"min_days": 400}]), "rules[0]"),
        (json!([{"event_type": "a*.*", "min_days": 400}]), "rules[0].event_type"),
        (json!([{"data_class": "gossip", "min_days": 400}]), "rules[0].data_class"),
        (json!([{"event_type": "x", "min_days": 400, "max_days": 399}]), "rules[0].max_days"),
        (json!([{"event_type": "x", "min_days": 400, "keep": true}]), "keep"),
    ] {
        let (status, problem) = put(&serve, &privacy, "/v1/retention", &json!({"rules": bad}));
        assert_eq!(status, 400, "{bad}: {problem}");
        assert!(problem.to_string().contains(field), "{bad}: {problem} does not name {field}");
    }
    settings["override_reason"] = json!("sessions: DPA 2026-7");
    let (status, answer) = put(&serve, &privacy, "/v1/retention", &settings);
    assert_eq!((status, answer["settings"]["rules"].clone()), (200, rules), "{answer}");
    let set = serve.get(&auditor, "/v1/events?type=evident.privacy.retention_set");
    let metadata = &set["events"][0]["event"]["metadata"];
    assert_eq!(metadata["override_reason"], "sessions: DPA 2026-7", "{set}");
    assert!(metadata["rules"].as_str().unwrap().contains("session.*"), "{set}");

    let applied = first_run_destroying_a_key(&serve, &auditor);
    let metadata = &applied["event"]["metadata"];
    assert_eq!(
        (&metadata["rules[0].keys_destroyed"], &metadata["keys_held"], &metadata["cutoff"]),
        (&json!("1"), &json!("0"), &json!("none")),
        "{applied}"
    );
    assert_eq!(metadata["override_reason"], "sessions: DPA 2026-7", "{applied}");
    let investigator = serve.key("investigator");
    let personal =
        |id: &str| serve.get(&investigator, &format!("/v1/events/{id}?purpose=audit"))["personal"].clone();
    assert_eq!(
        ids.iter().map(|id| personal(id)).collect::<Vec<_>>(),
        vec![json!("erased"), json!("included"), json!("included")]
    );
}

/// Which roles may erase is the tenant's decision: both by default; only admins may change it
/// (recorded); a tenant that allows only `privacy` refuses an admin's erasure with 403 saying
/// which roles may erase, and the refusal is recorded.
#[test]
fn erasure_roles_are_a_tenant_setting() {
    let serve = Serve::fresh();
    let (privacy, admin, auditor) = (serve.key("privacy"), serve.key("admin"), serve.key("auditor"));
    let path = "/v1/privacy/settings";
    assert_eq!(serve.get(&privacy, path), json!({"erasure_roles": ["privacy", "admin"]}));
    assert_eq!(serve.get_status(&auditor, path), 403);
    let only_privacy = json!({"erasure_roles": ["privacy"]});
    let (status, problem) = put(&serve, &privacy, path, &only_privacy);
    assert_eq!(status, 403, "a privacy officer may not change who erases: {problem}");
    for (bad, names) in [
        (json!({"erasure_roles": []}), "at least one"),
        (json!({"erasure_roles": ["investigator"]}), "erasure_roles[0]"),
        (json!({"erasure_roles": ["admin", "admin"]}), "twice"),
        (json!({"erasure_roles": ["admin"], "who": 1}), "who"),
        (json!({}), "erasure_roles"),
    ] {
        let (status, problem) = put(&serve, &admin, path, &bad);
        assert_eq!(status, 400, "{bad}: {problem}");
        assert!(problem.to_string().contains(names), "{bad}: {problem} does not say {names}");
    }
    // Through the typed client, as the admin and then as the privacy officer.
    let wanted = evident_wire::privacy::PrivacySettings { erasure_roles: vec!["privacy".to_owned()] };
    let client = |key: &str| evident_client::Client::new(&serve.base, Some(key.to_owned()));
    assert_eq!(client(&admin).put_privacy_settings(&wanted).expect("PUT as admin"), wanted);
    assert_eq!(client(&privacy).privacy_settings().expect("GET as privacy"), wanted);
    assert_eq!(serve.get(&privacy, path), only_privacy);
    let set = serve.get(&auditor, "/v1/events?type=evident.privacy.settings_set");
    assert_eq!(set["events"].as_array().unwrap().len(), 1, "{set}");
    assert_eq!(set["events"][0]["event"]["metadata"]["erasure_roles"], "privacy", "{set}");

    let request = json!({"reason": "Art. 17", "reference": "DSR-9"});
    let (status, problem) = serve.post(&admin, "/v1/subjects/cust-roles/erasure", &request);
    assert_eq!(status, 403, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("only the roles privacy may erase"), "{problem}");
    let denied = serve.get(&auditor, "/v1/events?type=evident.access.denied");
    assert!(
        denied.to_string().contains("only the roles privacy may erase"),
        "refusal not recorded: {denied}"
    );
    let erased = serve.get(&auditor, "/v1/events?type=evident.privacy.erased");
    assert_eq!(erased["events"].as_array().unwrap().len(), 0, "{erased}");
    let (status, answer) = serve.post(&privacy, "/v1/subjects/cust-roles/erasure", &request);
    assert_eq!((status, &answer["subject"]), (200, &json!("cust-roles")), "{answer}");
}

/// The first `evident.privacy.retention_applied` event that destroyed a key, waiting up to 20 s.
fn first_run_destroying_a_key(serve: &Serve, auditor: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let runs = serve.get(auditor, "/v1/events?type=evident.privacy.retention_applied&limit=100");
        let destroyed = runs["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"]["metadata"]["keys_destroyed"] == "1")
            .cloned();
        if let Some(run) = destroyed {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "no retention run destroyed a key: {runs}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The event ids of a batch's receipts, in order.
fn receipt_ids(body: &Value) -> Vec<String> {
    body["receipts"].as_array().unwrap().iter().map(|r| r["event_id"].as_str().unwrap().to_owned()).collect()
}

/// Now, in microseconds since the epoch.
fn chrono_like_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn days_ago(now: i64, days: i64) -> String {
    evident_wire::Micros(now - days * 86_400_000_000).to_rfc3339()
}

/// The three reports through the CLI, as JSON and HTML, each with a bundle that verifies offline.
#[test]
fn reports_list_accesses_disclosures_and_erasures() {
    let serve = Serve::fresh();
    let files = tempfile::tempdir().unwrap();
    let privacy = serve.key("privacy");
    let producer = serve.key("producer");
    let mut sent = events("cust-r", SECRETS, 40);
    sent[1]["type"] = json!("customer.data.exported");
    sent[1]["action"] = json!("export");
    sent[1].as_object_mut().unwrap().remove("changes");
    assert_eq!(serve.post(&producer, "/v1/events", &sent).0, 200);
    let investigator = serve.key("investigator");
    serve.get(&investigator, "/v1/subjects/cust-r/timeline?purpose=DSR%20check%20T-9");
    let vkey = text(&serve.get_bytes(&privacy_reader(&serve), "/v1/logs/default/vkeys"))
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let report = |kind: &str, file: &str| -> (PathBuf, PathBuf) {
        let (out, bundle) = (files.path().join(file), files.path().join(format!("{kind}.bundle")));
        let args = [
            "report",
            "cust-r",
            "--kind",
            kind,
            "--output",
            out.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ];
        succeeded(&evident(&serve.base, &privacy, &args), "report");
        let verified = Command::new(EVIDENT)
            .arg("verify")
            .arg(&bundle)
            .args(["--vkey", &vkey, "--origin", ORIGIN])
            .output()
            .unwrap();
        succeeded(&verified, "the report's bundle");
        (out, bundle)
    };
    let (access, _) = report("access", "access.json");
    let access: Value = serde_json::from_slice(&std::fs::read(access).unwrap()).unwrap();
    assert_eq!(access["events"].as_array().unwrap().len(), 3, "{access}");
    assert!(
        access["events"].to_string().contains(SECRETS[0]),
        "the subject's personal data is in its access report"
    );
    let read = access["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "investigator")
        .expect("the investigator's read");
    assert_eq!(
        (read["purpose"].as_str(), read["type"].as_str()),
        (Some("DSR check T-9"), Some("evident.audit.read")),
        "{read}"
    );
    let (disclosures, _) = report("disclosures", "disclosures.html");
    let page = text(&std::fs::read(disclosures).unwrap());
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("disclosures (1)"), "{page}");
    let erase = json!({"reason": "Art. 17", "reference": "DSR-9"});
    assert_eq!(serve.post(&privacy, "/v1/subjects/cust-r/erasure", &erase).0, 200);
    let (erasure, _) = report("erasure", "erasure.json");
    let erasure: Value = serde_json::from_slice(&std::fs::read(erasure).unwrap()).unwrap();
    assert_eq!(
        (erasure["erased"].clone(), erasure["keys_left"].clone()),
        (json!(true), json!(0)),
        "{erasure}"
    );
    assert_eq!(erasure["erasures"][0]["event"]["metadata"]["reference"], "DSR-9");
    assert!(erasure["checkpoint"].as_str().unwrap().starts_with(ORIGIN), "{erasure}");
    // The next access report shows the reports read so far, with their role.
    let again = serve.get(&privacy, "/v1/subjects/cust-r/report?kind=access");
    assert!(
        again["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "evident.audit.report" && a["role"] == "privacy"),
        "{again}"
    );
    assert!(!again["events"].to_string().contains(SECRETS[0]), "erased values are gone from the report");
    for (path, status) in
        [("/v1/subjects/cust-r/report?kind=everything", 400), ("/v1/subjects/cust-r/report", 400)]
    {
        assert_eq!(serve.get_status(&privacy, path), status, "{path}");
    }
    assert_eq!(serve.get_status(&serve.key("reader"), "/v1/subjects/cust-r/report?kind=access"), 403);
}

/// `evident keys rotate-master-key` on a stopped server: afterwards the server starts (its
/// detection secret opens), personal values read back, and the old master key opens no stored key.
#[test]
fn master_key_rotation_leaves_the_old_key_unneeded() {
    let files = tempfile::tempdir().unwrap();
    let data = files.path().join("data");
    let serve = Serve::first_start(&data);
    let (producer, investigator) = (serve.key("producer"), serve.key("investigator"));
    let (status, body) = serve.post(&producer, "/v1/events", &events("cust-k", SECRETS, 50));
    assert_eq!(status, 200, "{body}");
    let id = body["receipts"][0]["event_id"].as_str().unwrap().to_owned();
    let read = |serve: &Serve| serve.get(&investigator, &format!("/v1/events/{id}?purpose=audit"));
    assert_eq!(read(&serve)["personal"], "included");
    serve.terminate();
    let old = std::fs::read_to_string(data.join("master.key")).unwrap();
    let rotate =
        Command::new(EVIDENT).args(["keys", "rotate-master-key", "--data-dir"]).arg(&data).output().unwrap();
    succeeded(&rotate, "rotate-master-key");
    assert!(text(&rotate.stdout).contains("re-wrapped"), "{}", text(&rotate.stdout));
    let new = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_ne!(old, new);
    assert!(!data.join("master.key.next").exists());
    let decode = |text: &str| -> [u8; 32] {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap().try_into().unwrap()
    };
    let connection = rusqlite::Connection::open(data.join("evident.sqlite")).unwrap();
    let mut statement = connection.prepare("SELECT subject, wrapped FROM data_keys").unwrap();
    let keys: Vec<(String, Vec<u8>)> =
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert!(!keys.is_empty());
    let (old, new) = (
        evident_core::seal::MasterKey::from_bytes(decode(&old)),
        evident_core::seal::MasterKey::from_bytes(decode(&new)),
    );
    for (name, wrapped) in &keys {
        assert!(old.unwrap("default", name, wrapped).is_err(), "{name} still opens with the old key");
        assert!(new.unwrap("default", name, wrapped).is_ok(), "{name} does not open with the new key");
    }
    let serve = Serve::start(&data);
    assert_eq!(read(&serve)["personal"], "included");
    assert!(read(&serve).to_string().contains(SECRETS[0]));
}

/// Investigators find events by a personal value through search tokens; the value is recorded
/// nowhere in clear; an erased subject drops out.
#[test]
fn personal_fields_are_searchable_until_erased() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    for (subject, first) in [("cust-s1", 40), ("cust-s2", 43)] {
        assert_eq!(serve.post(&producer, "/v1/events", &events(subject, SECRETS, first)).0, 200);
    }
    let investigator = serve.key("investigator");
    let search = |key: &str, body: Value| serve.post(key, "/v1/personal-search", &body);
    let by_ip = json!({"field": "origin.ip", "value": SECRETS[1], "purpose": "fraud case F-1"});
    let (status, found) = search(&investigator, by_ip.clone());
    assert_eq!((status, found["events"].as_array().unwrap().len()), (200, 6), "{found}");
    assert!(found["events"].as_array().unwrap().iter().all(|e| e["personal"] == "included"));
    for (body, status, field) in [
        (json!({"field": "origin.user_agent", "value": "x", "purpose": "p"}), 400, "field"),
        (json!({"field": "origin.ip", "value": 7, "purpose": "p"}), 400, "value"),
        (json!({"field": "origin.ip", "value": "x"}), 400, "purpose"),
    ] {
        let (got, problem) = search(&investigator, body.clone());
        assert_eq!(got, status, "{body}: {problem}");
        assert!(problem.to_string().contains(field), "{body}: {problem} does not name {field}");
    }
    assert_eq!(search(&serve.key("reader"), by_ip.clone()).0, 403);
    let privacy = serve.key("privacy");
    let erase = json!({"reason": "Art. 17", "reference": "DSR-5"});
    assert_eq!(serve.post(&privacy, "/v1/subjects/cust-s1/erasure", &erase).0, 200);
    let (_, found) = search(&investigator, by_ip);
    let subjects: Vec<&str> =
        found["events"].as_array().unwrap().iter().map(|e| e["event"]["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, vec!["cust-s2"; 3], "{found}");
    let recorded = serve.get(&privacy, "/v1/events?type=evident.audit.search&limit=100");
    assert!(
        recorded.to_string().contains("origin.ip") && !recorded.to_string().contains(SECRETS[1]),
        "{recorded}"
    );
}
