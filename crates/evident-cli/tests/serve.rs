//! `evident serve` as users run it: the real binary on a temporary data directory. The first start
//! prints the one admin key; events go in over HTTP; SIGTERM stops it cleanly (exit 0); a restart
//! prints no new key and keeps everything; starts and stops are in the log; a bad configuration
//! file stops it before anything is made, naming the file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{EVIDENT, Serve, client};
use serde_json::{Value, json};

fn event_types(serve: &Serve, key: &str, event_type: &str) -> usize {
    let page = serve.get(key, &format!("/v1/events?source=evident&type={event_type}&limit=1000"));
    page["events"].as_array().expect("events").len()
}

#[test]
fn serve_starts_takes_events_stops_on_sigterm_and_restarts_without_a_new_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");

    let serve = Serve::start(&data);
    let line = serve.stdout_line();
    let admin =
        line.strip_prefix("admin key: ").unwrap_or_else(|| panic!("not the admin key line: {line:?}"));
    let admin = admin.to_owned();
    assert!(admin.starts_with("evk_"), "{admin}");
    for file in ["evident.sqlite", "master.key", "signing.key"] {
        assert!(data.join(file).is_file(), "{file} was not made");
    }

    let health = client().get(serve.url("/healthz")).send().expect("healthz");
    assert_eq!(health.status(), 200);
    let (status, made) = serve.post(&admin, "/v1/keys", &json!({"role": "producer"}));
    assert_eq!(status, 201, "{made}");
    let producer = made["key"].as_str().expect("a key").to_owned();
    let event = json!({
        "id": "serve-1", "source": "//crm.example.com/support-api", "type": "customer.record.viewed",
        "action": "read", "time": "2026-01-01T10:00:00Z", "actor": {"id": "u-1"},
        "targets": [{"type": "customer", "id": "cust-1"}], "outcome": "success",
        "origin": {"service": "support-api"}
    });
    let (status, receipts) = serve.post(&producer, "/v1/events", &event);
    assert_eq!(status, 200, "{receipts}");
    let receipt = receipts["receipts"][0].clone();
    assert_eq!(receipt["status"], "stored");

    let (status, rest) = serve.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(rest.is_empty(), "nothing more on stdout: {rest:?}");

    // The restart keeps the keys and the events, and shows no key.
    let serve = Serve::start(&data);
    let (status, duplicate) = serve.post(&producer, "/v1/events", &event);
    assert_eq!(status, 200);
    assert_eq!(duplicate["receipts"][0]["status"], "duplicate");
    assert_eq!(duplicate["receipts"][0]["index"], receipt["index"]);
    assert_eq!(event_types(&serve, &admin, "evident.service.started"), 2, "one per start");
    assert_eq!(event_types(&serve, &admin, "evident.service.stopped"), 1, "the first stop");
    let started = serve.get(&admin, "/v1/events?source=evident&type=evident.service.started&limit=1");
    let started = &started["events"][0]["event"];
    assert_eq!(
        (started["actor"]["id"].as_str(), started["action"].as_str()),
        (Some("evident"), Some("configure"))
    );
    assert!(started["metadata"]["version"].is_string(), "{started}");
    let (status, stdout) = serve.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(stdout.iter().all(|line| !line.contains("admin key")), "a restart printed a key: {stdout:?}");
    assert!(stdout.is_empty(), "{stdout:?}");

    // Both stops were recorded: a third start sees them.
    let serve = Serve::start(&data);
    assert_eq!(event_types(&serve, &admin, "evident.service.stopped"), 2);
    serve.terminate();
}

#[test]
fn a_bad_configuration_file_stops_serve_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    for (name, text) in [
        ("typo.toml", "lisen = \"127.0.0.1:0\"\n"),
        ("wrong-type.toml", "[batching]\nmax_entries = \"ten\"\n"),
        ("not-toml.toml", "listen = \n"),
    ] {
        let config = dir.path().join(name);
        std::fs::write(&config, text).expect("write the configuration");
        let output = Command::new(EVIDENT)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .env_remove("EVIDENT_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("evident serve runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: serve accepted it");
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(&config.display().to_string()), "{name}: the file is not named: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{name}: no key is shown: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(!data.exists(), "{name}: nothing is made before the configuration is read");
    }
    let typo = Command::new(EVIDENT)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(dir.path().join("typo.toml"))
        .output()
        .expect("evident serve runs");
    assert!(String::from_utf8_lossy(&typo.stderr).contains("lisen"), "the unknown key is named");
    let missing = dir.path().join("missing.toml");
    let output = Command::new(EVIDENT)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&missing)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&missing.display().to_string()));
}

/// The newcomer's path from the README: start the service, send an event, find it, fetch its
/// receipt and entry, and verify them with the Go checker (Go's reference packages), which must
/// also refuse the receipt for a changed entry.
#[test]
fn a_receipt_from_the_service_verifies_with_the_go_checker() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path());
    let admin = serve.stdout_line().strip_prefix("admin key: ").expect("the admin key line").to_owned();
    let key = |role: &str| {
        let (status, body) = serve.post(&admin, "/v1/keys", &json!({"role": role}));
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    };
    let (producer, auditor) = (key("producer"), key("auditor"));
    let event = json!({
        "id": "crm-1", "source": "//crm.example.com/support-api", "type": "customer.record.updated",
        "action": "update", "time": "2026-11-26T10:00:00Z",
        "actor": {"id": "agent-7", "type": "user", "display": "Ann Agent"},
        "subject": "cust-42", "targets": [{"type": "customer", "id": "cust-42"}],
        "outcome": "success", "reason": "customer asked to fix the e-mail",
        "changes": [{"field": "/email", "before": "old@example.com", "after": "new@example.com"}],
        "origin": {"ip": "192.0.2.7", "service": "crm"}
    });
    let (status, body) = serve.post(&producer, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
    let event_id = body["receipts"][0]["event_id"].as_str().unwrap().to_owned();
    let found = serve.get(&auditor, "/v1/events?subject=cust-42");
    assert_eq!(found["events"][0]["event_id"], event_id.as_str());

    let text = |path: &str| {
        let response = client().get(serve.url(path)).bearer_auth(&auditor).send().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.bytes().unwrap().to_vec()
    };
    let receipt = text(&format!("/v1/events/{event_id}/proof"));
    let entry = text(&format!("/v1/events/{event_id}/entry"));
    let vkey = String::from_utf8(text("/v1/logs/default/vkeys")).unwrap();
    assert!(!String::from_utf8_lossy(&entry).contains("Ann Agent"), "no personal value in the entry");
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("event.tlog-proof"), &receipt).unwrap();
    std::fs::write(files.path().join("entry.json"), &entry).unwrap();
    let mut changed = entry.clone();
    let at = changed.iter().position(|b| *b == b'7').expect("the entry names agent-7");
    changed[at] = b'8';
    std::fs::write(files.path().join("changed.json"), &changed).unwrap();

    let checker = files.path().join("tlogcheck");
    let build = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/go/build.sh"))
        .arg(&checker)
        .status()
        .expect("run interop/go/build.sh");
    assert!(build.success(), "the Go checker must build (apt install golang-go golang-golang-x-mod-dev)");
    let verify = |entry_file: &str| {
        Command::new(&checker)
            .arg("-receipt")
            .arg(files.path().join("event.tlog-proof"))
            .arg("-entry")
            .arg(files.path().join(entry_file))
            .args(["-vkey", vkey.trim(), "-origin", "evident.localhost/default"])
            .output()
            .expect("run the Go checker")
    };
    let good = verify("entry.json");
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("receipt verifies"));
    let bad = verify("changed.json");
    assert!(!bad.status.success(), "a changed entry must not verify");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does NOT verify"));
    serve.terminate();
}

/// `evident keys` and `evident tenants` against the running service, including refusals.
#[test]
fn keys_and_tenants_commands_administer_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path());
    let admin = serve.stdout_line().strip_prefix("admin key: ").expect("the admin key line").to_owned();
    let evident = |key: &str, args: &[&str]| {
        let output = Command::new(EVIDENT)
            .args(args)
            .args(["--url", &serve.base, "--key", key])
            .env_remove("EVIDENT_API_KEY")
            .output()
            .expect("run evident");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = evident(&admin, &["tenants", "create", "acme", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["origin"], "evident.localhost/acme");
    let (code, out, _) = evident(&admin, &["tenants", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"acme\"") && out.contains("\"default\""), "{out}");

    let (code, out, err) = evident(
        &admin,
        &["keys", "create", "--role", "reader", "--tenant", "acme", "--label", "ci", "--json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let (reader, key_id) =
        (created["key"].as_str().unwrap().to_owned(), created["key_id"].as_str().unwrap().to_owned());
    assert_eq!((created["tenant"].as_str(), created["role"].as_str()), (Some("acme"), Some("reader")));
    let (code, out, _) = evident(&admin, &["keys", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&key_id) && !out.contains(&reader), "listings never show a key: {out}");

    // The reader key works, is refused for administration, and stops working once revoked.
    let (code, _, err) = evident(&reader, &["keys", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("403"), "{err}");
    let (code, _, err) = evident(&admin, &["keys", "create", "--role", "superuser"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("role"), "{err}");
    let (code, _, err) = evident(&admin, &["keys", "revoke", &key_id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = evident(&reader, &["search", "--limit", "1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("refused") || err.contains("401"), "{err}");
    let (code, _, err) = evident(&admin, &["keys", "revoke", "0000000000000000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("404") || err.contains("not found"), "{err}");
    let (code, _, err) = evident("evk_0000000000000000_nope", &["tenants", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("401") || err.contains("refused"), "{err}");
    serve.terminate();
}

/// Rotating the signing key: the service signs with the new key after a restart, lists both keys,
/// and checkpoints and receipts made before the rotation still verify (with the old key), as does
/// the whole store.
#[test]
fn a_rotated_signing_key_keeps_old_checkpoints_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path());
    let admin = serve.stdout_line().strip_prefix("admin key: ").expect("the admin key line").to_owned();
    let (_, created) = serve.post(&admin, "/v1/keys", &json!({"role": "producer"}));
    let producer = created["key"].as_str().unwrap().to_owned();
    let (_, created) = serve.post(&admin, "/v1/keys", &json!({"role": "auditor"}));
    let auditor = created["key"].as_str().unwrap().to_owned();
    let event = |id: &str| {
        json!({"id": id, "source": "//crm", "type": "customer.record.viewed", "action": "read",
               "time": "2026-11-26T10:00:00Z", "actor": {"id": "agent-1"}, "targets": [{"type": "customer", "id": "c1"}],
               "outcome": "success", "origin": {"service": "crm"}})
    };
    let (status, body) = serve.post(&producer, "/v1/events", &event("before"));
    assert_eq!(status, 200, "{body}");
    let old_checkpoint = body["receipts"][0]["checkpoint"].as_str().unwrap().to_owned();
    let fetch = |serve: &Serve, path: &str| {
        client().get(serve.url(path)).bearer_auth(&auditor).send().unwrap().text().unwrap()
    };
    let old_vkey = fetch(&serve, "/v1/logs/default/vkeys").trim().to_owned();
    serve.terminate();

    let rotate = Command::new(EVIDENT)
        .args(["keys", "rotate-signing-key", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));
    use std::os::unix::fs::PermissionsExt as _;
    for file in ["signing.key", "signing.key.retired"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }

    let serve = Serve::start(dir.path());
    let vkeys = fetch(&serve, "/v1/logs/default/vkeys");
    let vkeys: Vec<&str> = vkeys.lines().collect();
    assert_eq!(vkeys.len(), 2, "{vkeys:?}");
    assert_eq!(vkeys[1], old_vkey, "the old key is still listed, after the current one");
    assert_ne!(vkeys[0], old_vkey);
    let (status, body) = serve.post(&producer, "/v1/events", &event("after"));
    assert_eq!(status, 200, "{body}");
    let new_checkpoint = body["receipts"][0]["checkpoint"].as_str().unwrap().to_owned();
    serve.terminate();

    let verify = |note: &str, vkey: &str| {
        let file = dir.path().join("checkpoint.txt");
        std::fs::write(&file, note).unwrap();
        Command::new(EVIDENT)
            .arg("verify")
            .arg(&file)
            .args(["--vkey", vkey])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        verify(&old_checkpoint, vkeys[1]),
        "a checkpoint from before the rotation verifies with the old key"
    );
    assert!(verify(&new_checkpoint, vkeys[0]));
    assert!(!verify(&new_checkpoint, vkeys[1]), "new checkpoints are not signed with the retired key");
    let fsck = Command::new(EVIDENT).args(["fsck", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
}
