//! Issue 12, finding by finding, against the real `evident serve`: each test reproduces what a
//! hostile producer, tenant or network could do and checks the server's answer.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Serve, client, wait_for};
use serde_json::{Value, json};

/// An event whose personal part (`origin.ip`, `actor.display`) is sealed under `subject`'s data key.
fn personal_event(id: &str, subject: &str) -> Value {
    json!({
        "id": id, "source": "//crm.example.com/support-api", "type": "customer.record.viewed",
        "action": "read", "time": "2026-01-01T10:00:00Z",
        "actor": {"id": "agent-7", "display": "Ann Agent"}, "subject": subject,
        "targets": [{"type": "customer", "id": subject}], "outcome": "success",
        "origin": {"ip": "192.0.2.7", "service": "crm"}
    })
}

/// An event without personal data: it needs no data key.
fn plain_event(id: &str) -> Value {
    json!({
        "id": id, "source": "//crm.example.com/support-api", "type": "customer.record.viewed",
        "action": "read", "time": "2026-01-01T10:00:00Z", "actor": {"id": "agent-7"},
        "targets": [{"type": "customer", "id": "c-1"}], "outcome": "success",
        "origin": {"service": "crm"}
    })
}

fn sqlite(data: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(data.join("evident.sqlite")).expect("open the store");
    db.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
    db
}

/// Posts `body` to `/v1/events` and insists on a failure of ours: 503 with `Retry-After`, a
/// problem with no detail, and none of the internal words in the body.
fn expect_ours(serve: &Serve, key: &str, body: &Value, what: &str) {
    let response = client().post(serve.url("/v1/events")).bearer_auth(key).json(body).send().expect("POST");
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap_or_default().to_owned());
    let text = response.text().expect("body");
    assert_eq!(status, 503, "{what}: a failure of ours is 503, not a rejection: {text}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok()), "{what}: Retry-After in seconds");
    let problem: Value = serde_json::from_str(&text).expect("problem details");
    assert_eq!(problem["status"], 503, "{what}");
    assert!(problem.get("detail").is_none_or(Value::is_null), "{what}: no detail: {text}");
    for word in ["key", "subject", "sqlite", "table", "cust", "seal", "open"] {
        assert!(!text.to_lowercase().contains(word), "{what}: internal text {word:?} in {text}");
    }
}

/// Finding 2: a data key the server cannot read or open is the server's failure, for a single
/// event and for every event of a batch; once the store is well again the same requests store.
#[test]
fn failures_of_ours_are_503_with_retry_after_never_a_rejection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    let producer = serve.key("producer");
    let (status, body) = serve.post(&producer, "/v1/events", &personal_event("e-1", "cust-1"));
    assert_eq!(status, 200, "{body}");
    let admin = serve.admin.clone();
    serve.terminate();

    // A wrapped data key that no longer opens (a wrong master key, a damaged row).
    let wrapped: Vec<u8> = sqlite(&data)
        .query_row("SELECT wrapped FROM data_keys WHERE subject LIKE 'cust-1%'", [], |row| row.get(0))
        .expect("the subject's key is stored");
    let mut damaged = wrapped.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    sqlite(&data)
        .execute("UPDATE data_keys SET wrapped = ?1 WHERE subject LIKE 'cust-1%'", [&damaged])
        .expect("damage the key");
    let mut serve = Serve::start(&data);
    serve.admin = admin;
    expect_ours(&serve, &producer, &personal_event("e-2", "cust-1"), "single event, key does not open");
    let batch = json!([plain_event("p-1"), personal_event("e-3", "cust-1")]);
    expect_ours(&serve, &producer, &batch, "batch, key does not open");
    let stored = serve.get(&serve.admin, "/v1/events?source=//crm.example.com/support-api&limit=100");
    assert_eq!(
        stored["events"].as_array().expect("events").len(),
        1,
        "nothing of the failed batch is stored"
    );
    sqlite(&data)
        .execute("UPDATE data_keys SET wrapped = ?1 WHERE subject LIKE 'cust-1%'", [&wrapped])
        .expect("repair the key");
    let (status, body) = serve.post(&producer, "/v1/events", &batch);
    assert_eq!(status, 200, "the retried batch is stored: {body}");

    // A store that fails while the server runs (a transient error reading data keys).
    sqlite(&data).execute_batch("ALTER TABLE data_keys RENAME TO data_keys_away").expect("break the store");
    expect_ours(&serve, &producer, &personal_event("e-4", "cust-2"), "single event, store error");
    let batch = json!([plain_event("p-2"), personal_event("e-5", "cust-3")]);
    expect_ours(&serve, &producer, &batch, "batch, store error");
    sqlite(&data).execute_batch("ALTER TABLE data_keys_away RENAME TO data_keys").expect("mend the store");
    let (status, body) = serve.post(&producer, "/v1/events", &batch);
    assert_eq!(status, 200, "the retried batch is stored: {body}");
    serve.terminate();
}

/// A loopback listener that counts the connections made to it and answers each with 200.
struct Listener {
    url: String,
    connections: Arc<AtomicUsize>,
}

fn listener() -> Listener {
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", socket.local_addr().expect("address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in socket.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 65536];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Listener { url, connections }
}

/// Finding 1: a tenant admin cannot point a webhook at loopback, private, link-local, multicast
/// or unspecified addresses (by literal or by a name resolving there); a webhook registered while
/// they were allowed is refused at delivery (connect time) once they are not, and its dead letter
/// says why without having connected.
#[test]
fn webhooks_never_reach_internal_addresses_unless_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let allow = [("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"), ("EVIDENT_WEBHOOK_BACKOFF_MS", "50")];
    let serve = Serve::first_start_with(&data, &allow);
    let admin = serve.admin.clone();
    let hook = listener();
    let port = hook.url.split(':').nth(2).and_then(|p| p.split('/').next()).expect("a port").to_owned();
    let by_name = format!("http://localhost:{port}/hook");
    for url in [&hook.url, &by_name] {
        let (status, body) = serve.post(&admin, "/v1/webhooks", &json!({ "url": url }));
        assert_eq!(status, 201, "allowed on premises: {body}");
    }
    // The creation of each webhook is itself a finding, delivered while allowed.
    wait_for("deliveries while allowed", || (hook.connections.load(Ordering::SeqCst) >= 2).then_some(()));
    serve.terminate();

    let mut serve = Serve::start_with(&data, &[("EVIDENT_WEBHOOK_BACKOFF_MS", "50")]);
    serve.admin = admin.clone();
    let refused = [
        hook.url.clone(),
        by_name,
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1:5432/".to_owned(),
        "https://[fd00::1]/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://2130706433/".to_owned(),
    ];
    for url in &refused {
        let (status, body) = serve.post(&admin, "/v1/webhooks", &json!({ "url": url }));
        assert_eq!(status, 400, "{url} must be refused: {body}");
        assert_eq!(body["invalid-params"][0]["name"], "url", "{body}");
        let reason = body["invalid-params"][0]["reason"].as_str().expect("a reason");
        assert!(reason.contains("EVIDENT_ALLOW_PRIVATE_DESTINATIONS"), "{url}: says what to do: {reason}");
    }
    assert_eq!(serve.get(&admin, "/v1/webhooks")["webhooks"].as_array().expect("webhooks").len(), 2);

    // A finding for the two webhooks registered earlier: refused at connect time, never sent.
    let before = hook.connections.load(Ordering::SeqCst);
    let producer = serve.key("producer");
    let event = json!({
        "id": "no-purpose-1", "source": "//crm.test", "type": "customer.record.viewed", "action": "read",
        "time": evident_wire::Micros::now().to_rfc3339(), "actor": {"id": "agent-1", "type": "user"},
        "subject": "cus-1", "targets": [{"type": "customer", "id": "cus-1"}], "outcome": "success",
        "origin": {"service": "crm"}, "data_classes": ["pii"]
    });
    let (status, body) = serve.post(&producer, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
    let letters = wait_for("two dead letters", || {
        let letters = serve.get(&admin, "/v1/webhooks/dead-letters")["dead_letters"].as_array().cloned()?;
        (letters.len() >= 2).then_some(letters)
    });
    for letter in &letters {
        let error = letter["last_error"].as_str().expect("an error");
        assert!(error.starts_with("refused: ") && error.contains("loopback"), "{letter}");
        assert_eq!(letter["attempts"], 1, "a refusal is not retried: {letter}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.connections.load(Ordering::SeqCst), before, "nothing reached the loopback listener");
    serve.terminate();
}

fn delete(serve: &Serve, key: &str, path: &str) -> (u16, Value) {
    let response = client().delete(serve.url(path)).bearer_auth(key).send().expect("DELETE");
    let status = response.status().as_u16();
    (status, response.json().expect("JSON"))
}

/// The id part of `evk_<id>_<secret>`.
fn key_id(key: &str) -> &str {
    key.strip_prefix("evk_").and_then(|rest| rest.split('_').next()).expect("a key")
}

/// Finding 6: a tenant admin (even of the global admin's own tenant) cannot revoke a global key,
/// and the last global key cannot be revoked by anyone; tenants can still be created after both
/// attempts.
#[test]
fn global_keys_are_managed_by_global_admins_and_the_last_one_stays() {
    let serve = Serve::fresh();
    let tenant_admin = serve.key("admin");
    let global = key_id(&serve.admin).to_owned();
    let (status, body) = delete(&serve, &tenant_admin, &format!("/v1/keys/{global}"));
    assert_eq!(status, 403, "a tenant admin must not revoke the global key: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("global")), "{body}");
    let (status, body) = delete(&serve, &serve.admin, &format!("/v1/keys/{global}"));
    assert_eq!(status, 409, "the last global key stays: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("keys create --global")), "{body}");
    let (status, body) = serve.post(&serve.admin, "/v1/tenants", &json!({"id": "acme"}));
    assert_eq!(status, 201, "the global key still creates tenants: {body}");
    // Other keys are revoked as before, by their tenant's admin.
    let reader = serve.key("reader");
    let (status, body) = delete(&serve, &tenant_admin, &format!("/v1/keys/{}", key_id(&reader)));
    assert_eq!(status, 200, "{body}");
    let denied = serve.get(&serve.admin, "/v1/events?source=evident&type=evident.access.denied");
    assert_eq!(denied["events"].as_array().expect("events").len(), 1, "the refusal is recorded");
}

fn metrics(serve: &Serve, bearer: Option<&str>) -> (u16, String) {
    let mut request = client().get(serve.url("/metrics"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("GET /metrics");
    (response.status().as_u16(), response.text().expect("text"))
}

/// Finding 10, metrics: tenant names only with the metrics token; aggregates for anyone.
#[test]
fn metrics_name_tenants_only_with_the_metrics_token() {
    let serve = Serve::fresh();
    let (status, text) = metrics(&serve, None);
    assert_eq!(status, 200);
    assert!(text.contains("evident_events_stored_total "), "{text}");
    assert!(!text.contains("tenant="), "no token configured: no tenant labels:\n{text}");
    serve.terminate();

    let serve = Serve::fresh_with(&[("EVIDENT_METRICS_TOKEN", "metrics-secret")]);
    let (status, text) = metrics(&serve, None);
    assert_eq!(status, 200);
    assert!(!text.contains("tenant="), "without the token: no tenant labels:\n{text}");
    let (status, text) = metrics(&serve, Some(&serve.admin));
    assert_eq!(status, 401, "an API key is not the metrics token: {text}");
    let (status, text) = metrics(&serve, Some("metrics-secret"));
    assert_eq!(status, 200);
    assert!(text.contains("evident_tree_size{tenant=\"default\"}"), "{text}");
    serve.terminate();
}

/// Finding 10, health: a failing store makes `/healthz` 503 without the store's own words.
#[test]
fn healthz_shows_no_store_error_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    // Another process holds the write lock for longer than the server waits (10 s).
    let mut db = sqlite(&data);
    let lock = db.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive).expect("lock");
    let response = client().get(serve.url("/healthz")).send().expect("GET /healthz");
    assert_eq!(response.status().as_u16(), 503);
    let text = response.text().expect("text");
    drop(lock);
    let health: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(health["problems"], json!(["the store does not take writes"]), "{text}");
    for word in ["locked", "sqlite", "database", "busy"] {
        assert!(!text.to_lowercase().contains(word), "internal text {word:?}: {text}");
    }
    serve.terminate();
}

/// Finding 10, exports: the files are the owner's only (0600, the directory 0700) whatever the
/// umask, and no cell of `events.csv` starts a spreadsheet formula; the bundle still verifies.
#[test]
fn export_files_are_private_and_csv_cells_cannot_be_formulas() {
    use std::os::unix::fs::PermissionsExt as _;
    let serve = Serve::fresh();
    let (producer, auditor) = (serve.key("producer"), serve.key("auditor"));
    let mut event = plain_event("csv-1");
    event["targets"][0]["id"] = json!("=HYPERLINK(\"http://evil.example/\",\"x\")");
    event["actor"]["id"] = json!("@SUM(1+1)");
    event["reason"] = json!("+cmd|' /C calc'!A0");
    event["subject"] = json!("-2+3");
    let (status, body) = serve.post(&producer, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
    let work = tempfile::tempdir().expect("temp dir");
    let out = work.path().join("export");
    let run = std::process::Command::new(common::EVIDENT)
        .args([
            "export",
            "--url",
            &serve.base,
            "--key",
            &auditor,
            "--source",
            "//crm.example.com/support-api",
        ])
        .arg("--output")
        .arg(&out)
        .env_remove("EVIDENT_API_KEY")
        .output()
        .expect("evident export runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mode = |path: &Path| std::fs::metadata(path).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700, "the export directory");
    for file in ["bundle.ndjson", "events.jsonl", "events.csv"] {
        assert_eq!(mode(&out.join(file)), 0o600, "{file}");
    }
    let mut csv = csv::Reader::from_path(out.join("events.csv")).expect("events.csv");
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), 1);
    for cell in rows[0].iter() {
        assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "a formula cell: {cell:?}");
    }
    assert!(rows[0].iter().any(|cell| cell == "'@SUM(1+1)"), "the value stays readable: {:?}", rows[0]);
    let verify = std::process::Command::new(common::EVIDENT)
        .arg("verify")
        .arg(&out)
        .arg("--trust-on-first-use")
        .output()
        .expect("verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    serve.terminate();
}

/// Starts `evident serve` on `data` expecting it to refuse: answers its stderr. A server that
/// starts instead is killed and the test fails.
fn refused_start(data: &Path, env: &[(&str, &str)]) -> String {
    let mut child = std::process::Command::new(common::EVIDENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("EVIDENT_CONFIG")
        .env_remove("EVIDENT_MASTER_KEY_FILE")
        .env_remove("EVIDENT_SIGNING_KEY_FILE")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("evident serve runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("serve started with {env:?}:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no key is shown: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Finding 3: the store records its keys at creation. A mistyped or missing key file next to an
/// existing store, or a key file with another key, stops `serve` with a message naming the file and
/// what to do, and no key file is made; the right files start it again.
#[test]
fn keys_that_do_not_match_the_store_stop_serve_and_none_are_made() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    let producer = serve.key("producer");
    let (status, body) = serve.post(&producer, "/v1/events", &personal_event("k-1", "cust-1"));
    assert_eq!(status, 200, "{body}");
    serve.terminate();

    let typo = dir.path().join("mastr.key");
    let typo_text = typo.display().to_string();
    let stderr = refused_start(&data, &[("EVIDENT_MASTER_KEY_FILE", &typo_text)]);
    assert!(stderr.contains(&typo_text) && stderr.contains("copy signing.key and master.key"), "{stderr}");
    assert!(!typo.exists(), "no key file is made next to an existing store");

    let other = dir.path().join("other.key");
    std::fs::write(&other, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").expect("another key");
    let other_text = other.display().to_string();
    for setting in ["EVIDENT_MASTER_KEY_FILE", "EVIDENT_SIGNING_KEY_FILE"] {
        let stderr = refused_start(&data, &[(setting, &other_text)]);
        assert!(stderr.contains(&other_text) && stderr.contains(setting), "{setting}: {stderr}");
    }

    let master = data.join("master.key");
    let away = dir.path().join("master.key.away");
    std::fs::rename(&master, &away).expect("move the master key away");
    let stderr = refused_start(&data, &[]);
    assert!(stderr.contains(&master.display().to_string()), "{stderr}");
    assert!(!master.exists(), "the missing master key is not replaced by a new one");
    std::fs::rename(&away, &master).expect("put it back");
    let serve = Serve::start(&data);
    let (status, body) = serve.post(&producer, "/v1/events", &personal_event("k-1", "cust-1"));
    assert_eq!(status, 200, "the same store, the same keys: {body}");
    assert_eq!(body["receipts"][0]["status"], "duplicate");
    serve.terminate();
}

/// The `evident.auth.failed` events of the default tenant and the attempts they stand for.
fn auth_failures(serve: &Serve) -> (usize, u64) {
    let page = serve.get(&serve.admin, "/v1/events?source=evident&type=evident.auth.failed&limit=1000");
    let events = page["events"].as_array().expect("events").clone();
    let attempts = events
        .iter()
        .map(|e| e["event"]["metadata"]["count"].as_str().and_then(|c| c.parse::<u64>().ok()).unwrap_or(1))
        .sum();
    (events.len(), attempts)
}

/// Finding 4: a flood of bad keys from one address is slowed down (429 with `Retry-After`) and
/// costs a bounded number of durable events, whose counts still add up to every attempt.
#[test]
fn failed_authentication_floods_cost_bounded_writes_and_every_attempt_is_counted() {
    let serve = Serve::fresh_with(&[("EVIDENT_AUTH_FAILURE_WINDOW_SECS", "1")]);
    let reader = serve.key("reader");
    let wrong_secret = format!("evk_{}_wrong", key_id(&reader));
    let (before, _) = auth_failures(&serve);
    let flood = 150;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let started = std::time::Instant::now();
    for n in 0..flood {
        let key = if n % 2 == 0 { wrong_secret.clone() } else { "evk_0000000000000000_nope".to_owned() };
        let response = client().get(serve.url("/v1/events")).bearer_auth(&key).send().expect("GET");
        let status = response.status().as_u16();
        if status == 429 {
            assert!(response.headers().get("retry-after").is_some(), "429 says when to retry");
        }
        *statuses.entry(status).or_default() += 1;
    }
    let flood_took = started.elapsed();
    assert!(statuses.get(&429).copied().unwrap_or(0) > flood / 2, "the address is slowed down: {statuses:?}");
    assert_eq!(statuses.get(&401).copied().unwrap_or(0) + statuses[&429], flood, "{statuses:?}");
    // Windows close within a second or two; every attempt is then in the log, counted. On a loaded
    // machine closing takes longer, so wait for the count rather than a fixed time (each look from
    // this address waits until its bucket has earned a token back: a 429 counts as a failure).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (events, attempts) = loop {
        std::thread::sleep(Duration::from_millis(2500));
        let (events, attempts) = auth_failures(&serve);
        if attempts as usize >= flood || std::time::Instant::now() > deadline {
            break (events, attempts);
        }
    };
    assert_eq!(attempts as usize, flood, "no attempt goes unrecorded ({events} events)");
    // At most two writes per stream and window: two streams (the known key's wrong secret, the
    // unknown key) and the 1 s windows the flood spanned, plus one that was open when it ended.
    // A slow machine spans more windows; the bound follows it instead of assuming the flood's speed.
    let windows = flood_took.as_secs() as usize + 2;
    let bound = 2 * 2 * windows;
    assert!(
        events - before <= bound,
        "bounded writes: {} events for {flood} attempts over {flood_took:?} ({windows} windows)",
        events - before
    );
    assert!(events - before < flood / 4, "far fewer writes than attempts: {} events", events - before);
    // The flood slowed that address only for failures' sake: after a pause a good key works.
    std::thread::sleep(Duration::from_secs(2));
    let response = client().get(serve.url("/v1/events")).bearer_auth(&reader).send().expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    serve.terminate();
}

/// Finding 9: a detection secret the server cannot use is never replaced by a new one (that
/// would re-key every webhook secret and pseudonym): `serve` stops and the stored value stays.
#[test]
fn a_damaged_detection_secret_stops_serve_and_is_never_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    // Once it answers, SIGTERM is handled (stops cleanly).
    assert_eq!(client().get(serve.url("/healthz")).send().expect("healthz").status(), 200);
    serve.terminate();
    let read = || -> Vec<u8> {
        sqlite(&data)
            .query_row("SELECT value FROM service_state WHERE name = 'detect/secret'", [], |row| row.get(0))
            .expect("the secret is stored")
    };
    assert!(read().len() > 32, "the secret is stored wrapped by the master key");
    sqlite(&data)
        .execute("UPDATE service_state SET value = x'0102030405' WHERE name = 'detect/secret'", [])
        .expect("damage the secret");
    let stderr = refused_start(&data, &[]);
    assert!(stderr.contains("detection secret"), "{stderr}");
    assert_eq!(read(), vec![1, 2, 3, 4, 5], "the damaged secret is left for the operator to restore");
}

/// Opens `/v1/stream?kind=events` with `key`; its lines arrive on the channel, which closes when
/// the stream ends.
fn open_stream(serve: &Serve, key: &str) -> std::sync::mpsc::Receiver<String> {
    let response = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("client")
        .get(serve.url("/v1/stream?kind=events"))
        .bearer_auth(key)
        .send()
        .expect("GET /v1/stream");
    assert_eq!(response.status().as_u16(), 200);
    common::lines(response)
}

/// Waits for the stream to end; answers its last `event:` line.
fn stream_end(lines: &std::sync::mpsc::Receiver<String>, within: Duration) -> String {
    let deadline = std::time::Instant::now() + within;
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with("event:") => last = line,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return last,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("the stream is still open after {within:?}")
            }
        }
    }
}

/// Finding 7: an open stream ends soon after its key is revoked (events after the revocation are
/// not delivered), and a connected stream does not hold up SIGTERM.
#[test]
fn streams_end_on_revocation_and_on_shutdown() {
    let serve = Serve::fresh_with(&[("EVIDENT_STREAM_RECHECK_MS", "300")]);
    let (reader, producer) = (serve.key("reader"), serve.key("producer"));
    let revoked = open_stream(&serve, &reader);
    let (status, body) = serve.post(&producer, "/v1/events", &plain_event("s-1"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = delete(&serve, &serve.admin, &format!("/v1/keys/{}", key_id(&reader)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(stream_end(&revoked, Duration::from_secs(5)), "event: revoked");

    let auditor = serve.key("auditor");
    let open = open_stream(&serve, &auditor);
    let begun = std::time::Instant::now();
    serve.terminate();
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?} with a stream open",
        begun.elapsed()
    );
    assert_eq!(stream_end(&open, Duration::from_secs(1)), "event: closing");
}

/// The peak resident memory of a process so far (`VmHWM`), in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

/// Finding 5: 64 concurrent 16 KB gzip bodies, each a JSON array of almost 16 MiB of zeros, are
/// refused (413, or 503 while waiting for room) and the server's memory stays bounded: items are
/// counted and measured before they are parsed, and bodies in flight share a fixed budget.
#[test]
fn hostile_gzip_bodies_keep_memory_bounded() {
    use std::io::Write as _;
    let bodies: usize = std::env::var("HOSTILE_BODIES").ok().and_then(|n| n.parse().ok()).unwrap_or(64);
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let zeros = (16 << 20) / 2 - 4;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(b"[").expect("gzip");
    for _ in 0..zeros / 4096 {
        gzip.write_all(&b"0,".repeat(4096)).expect("gzip");
    }
    gzip.write_all(b"0]").expect("gzip");
    let body = Arc::new(gzip.finish().expect("gzip"));
    assert!(body.len() < 64 * 1024, "a small request: {} bytes", body.len());
    let baseline = peak_mib(serve.pid());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let sends: Vec<_> = (0..bodies)
            .map(|_| {
                let (body, url, key) = (Arc::clone(&body), serve.url("/v1/events"), producer.clone());
                scope.spawn(move || {
                    let response = client()
                        .post(url)
                        .bearer_auth(key)
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .body(body.to_vec())
                        .send()
                        .expect("POST");
                    response.status().as_u16()
                })
            })
            .collect();
        sends.into_iter().map(|send| send.join().expect("a sender")).collect()
    });
    let peak = peak_mib(serve.pid());
    assert!(statuses.iter().all(|s| *s == 413 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&413), "{statuses:?}");
    eprintln!("{bodies} hostile bodies: peak {peak} MiB (baseline {baseline} MiB)");
    assert!(peak < 400, "memory must stay bounded: peak {peak} MiB for {bodies} bodies");
    let (status, body) = serve.post(&producer, "/v1/events", &plain_event("after-1"));
    assert_eq!(status, 200, "the server still takes events: {body}");
    serve.terminate();
}

/// A webhook receiver on loopback that answers 500 while `failing`, else 200, and keeps the
/// `Evident-Delivery` of every request it answered 200.
struct Receiver {
    url: String,
    failing: Arc<std::sync::atomic::AtomicBool>,
    attempts: Arc<AtomicUsize>,
    delivered: Arc<std::sync::Mutex<Vec<String>>>,
}

fn receiver() -> Receiver {
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", socket.local_addr().expect("address"));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attempts = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (fail, count, seen) = (Arc::clone(&failing), Arc::clone(&attempts), Arc::clone(&delivered));
    std::thread::spawn(move || {
        for stream in socket.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = vec![0u8; 1 << 16];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let n = stream.read(&mut buffer).unwrap_or(0);
            let head = String::from_utf8_lossy(&buffer[..n]).to_lowercase();
            let delivery =
                head.lines().find_map(|l| l.strip_prefix("evident-delivery:")).map(|d| d.trim().to_owned());
            count.fetch_add(1, Ordering::SeqCst);
            let status = if fail.load(Ordering::SeqCst) { "500 Internal Server Error" } else { "200 OK" };
            if status == "200 OK" {
                seen.lock().expect("lock").extend(delivery);
            }
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Receiver { url, failing, attempts, delivered }
}

/// Finding 9: a delivery under way when the server crashes is not lost: the outbox in the store
/// delivers it again after the restart.
#[test]
fn deliveries_under_way_in_a_crash_are_redelivered_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let env = [
        ("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("EVIDENT_WEBHOOK_ATTEMPTS", "10"),
        ("EVIDENT_WEBHOOK_BACKOFF_MS", "5000"),
    ];
    let serve = Serve::first_start_with(&data, &env);
    let hook = receiver();
    let (status, body) = serve.post(&serve.admin, "/v1/webhooks", &json!({ "url": hook.url }));
    assert_eq!(status, 201, "{body}");
    // Creating the webhook is a finding; its first delivery attempt fails.
    wait_for("a failed attempt", || (hook.attempts.load(Ordering::SeqCst) >= 1).then_some(()));
    // Detection saves its state every 2 s: once saved, a replay would not find the finding new
    // again, so only the outbox can bring the delivery back. The next attempt is 5 s away.
    std::thread::sleep(Duration::from_millis(3000));
    serve.kill();
    hook.failing.store(false, Ordering::SeqCst);
    let serve = Serve::start_with(&data, &env);
    let delivered = wait_for("the redelivery", || {
        let delivered = hook.delivered.lock().expect("lock").clone();
        (!delivered.is_empty()).then_some(delivered)
    });
    assert!(delivered[0].starts_with("dlv_"), "{delivered:?}");
    serve.terminate();
}
