//! Detection end to end: the real `evident serve`, `evident demo` and CLI against it, a real HTTP
//! receiver for webhooks, a real SSE subscription, a restart.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Serve, client, evident, json_lines, last_working_noon, wait_for};
use serde_json::{Value, json};

/// Findings, once their number has not changed for a while.
fn settled_findings(serve: &Serve, key: &str, at_least: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = usize::MAX;
    let mut stable_since = Instant::now();
    loop {
        let findings = serve.get(key, "/v1/findings?limit=1000")["findings"].as_array().cloned().unwrap();
        if findings.len() != last {
            last = findings.len();
            stable_since = Instant::now();
        } else if findings.len() >= at_least && stable_since.elapsed() > Duration::from_millis(1500) {
            return findings;
        }
        assert!(Instant::now() < deadline, "findings did not settle: {findings:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A valid read of `customer` by `actor`, with or without a purpose.
fn read_event(id: &str, actor: &str, customer: &str, purpose: Option<&str>) -> Value {
    let mut event = json!({
        "id": id, "source": "//crm.test", "type": "customer.record.viewed", "action": "read",
        "time": evident_wire::Micros::now().to_rfc3339(),
        "actor": {"id": actor, "type": "user"}, "subject": customer,
        "targets": [{"type": "customer", "id": customer}], "outcome": "success",
        "origin": {"ip": "198.51.100.9", "service": "crm"}, "data_classes": ["pii"],
    });
    if let Some(purpose) = purpose {
        event["reason"] = json!(purpose);
    }
    event
}

fn send(serve: &Serve, producer: &str, event: Value) {
    let (status, body) = serve.post(producer, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_demo_patterns_are_found_and_nothing_else() {
    let serve = Serve::fresh();
    let summary =
        json_lines(&evident(&serve.base, &serve.admin, &["demo", "--json", "--until", "2026-11-26"]))
            .remove(0);
    let patterns = &summary["patterns"];
    let night_actor = patterns["night_reads"]["actor"].as_str().unwrap();
    let vip_actor = patterns["vip_read_without_reason"]["actor"].as_str().unwrap();
    let vip_subject = patterns["vip_read_without_reason"]["subject"].as_str().unwrap();

    let findings = settled_findings(&serve, &serve.admin, 3);
    let rules: BTreeSet<&str> = findings.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for finding in &findings {
        let rule = finding["rule"].as_str().unwrap();
        match rule {
            "mass-access" | "off-hours" | "actor-baseline" => {
                assert_eq!(finding["actor"], night_actor, "{finding}")
            }
            "failed-logins-ip" => {
                assert!(finding["key"].as_str().unwrap().starts_with("ip:"), "{finding}");
                assert!(
                    !finding.to_string().contains(patterns["failed_login_burst"]["ip"].as_str().unwrap())
                );
            }
            "no-purpose" => {
                assert_eq!(finding["actor"], vip_actor);
                assert_eq!(finding["subject"], vip_subject);
            }
            other => panic!("the demo's ordinary traffic raised {other}: {finding}"),
        }
        assert_eq!(finding["status"], "open");
        assert!(!finding["triggers"].as_array().unwrap().is_empty());
    }
    for expected in ["mass-access", "failed-logins-ip", "no-purpose"] {
        assert!(rules.contains(expected), "no {expected} finding: {rules:?}");
    }

    // Each finding is an event in the log, with its rule and explanation.
    let opened = serve.get(&serve.admin, "/v1/events?type=evident.finding.opened&limit=1000");
    assert_eq!(opened["events"].as_array().unwrap().len(), findings.len());
    // No IP pseudonym in a leaf: the log says only that the key is an address.
    let pseudonym =
        findings.iter().find(|f| f["rule"] == "failed-logins-ip").unwrap()["key"].as_str().unwrap();
    let hash = pseudonym.strip_prefix("ip:").unwrap();
    assert!(!opened.to_string().contains(hash), "{pseudonym} is in the log: {opened}");
    assert!(
        opened["events"].as_array().unwrap().iter().any(|e| e["event"]["metadata"]["key"] == "ip"),
        "{opened}"
    );

    // The workflow, through the CLI; every step an event.
    let id = findings.iter().find(|f| f["rule"] == "no-purpose").unwrap()["id"].as_str().unwrap().to_owned();
    let auditor = serve.key("auditor");
    let acked = json_lines(&evident(&serve.base, &auditor, &["findings", "ack", &id, "--json"])).remove(0);
    assert_eq!(acked["status"], "acknowledged");
    let resolved = json_lines(&evident(
        &serve.base,
        &auditor,
        &["findings", "resolve", &id, "--comment", "agent confirmed a phone call", "--json"],
    ))
    .remove(0);
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["history"].as_array().unwrap().len(), 2);
    for step in ["evident.finding.acknowledged", "evident.finding.resolved"] {
        let events = serve.get(&serve.admin, &format!("/v1/events?type={step}"));
        assert_eq!(events["events"].as_array().unwrap().len(), 1, "{step}");
    }
    // Refusals: a closed finding, no comment, an unknown status, an unknown finding, a reader.
    let path = format!("/v1/findings/{id}/status");
    assert_eq!(serve.post(&auditor, &path, &json!({"status": "acknowledged"})).0, 409);
    let other = findings.iter().find(|f| f["id"] != id.as_str()).unwrap()["id"].as_str().unwrap().to_owned();
    let other_path = format!("/v1/findings/{other}/status");
    assert_eq!(serve.post(&auditor, &other_path, &json!({"status": "resolved"})).0, 400);
    assert_eq!(serve.post(&auditor, &other_path, &json!({"status": "closed", "comment": "x"})).0, 400);
    assert_eq!(serve.post(&auditor, &other_path, &json!({"status": "resolved", "bogus": 1})).0, 400);
    assert_eq!(
        serve.post(&auditor, "/v1/findings/fnd_nope/status", &json!({"status": "acknowledged"})).0,
        404
    );
    assert_eq!(serve.post(&serve.key("reader"), &other_path, &json!({"status": "acknowledged"})).0, 403);
    // Creating the auditor key was a privileged grant: a finding of its own.
    let all = serve.get(&auditor, "/v1/findings?limit=1000")["findings"].as_array().unwrap().clone();
    assert_eq!(all.len(), findings.len() + 1);
    assert!(all.iter().any(|f| f["rule"] == "privilege-change"), "{all:?}");
    // Filters.
    let open =
        serve.get(&auditor, "/v1/findings?status=open&limit=1000")["findings"].as_array().unwrap().len();
    assert_eq!(open, all.len() - 1);
    let high =
        serve.get(&auditor, "/v1/findings?severity=high&limit=1000")["findings"].as_array().unwrap().clone();
    assert!(high.iter().all(|f| f["severity"] == "high") && !high.is_empty());
    let page = serve.get(&auditor, "/v1/findings?limit=1");
    let next = page["next_cursor"].as_str().expect("a cursor");
    let second = serve.get(&auditor, &format!("/v1/findings?limit=1&cursor={next}"));
    assert_ne!(page["findings"][0]["id"], second["findings"][0]["id"]);

    // A backtest of the purpose rule over the demo's range finds the VIP read and records nothing.
    let before = serve.get(&auditor, "/v1/findings?limit=1000")["findings"].as_array().unwrap().len();
    let report = json_lines(&evident(
        &serve.base,
        &auditor,
        &[
            "rules",
            "backtest",
            "--rule",
            "no-purpose",
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-27T00:00:00Z",
            "--json",
        ],
    ))
    .remove(0);
    let would = report["findings"].as_array().unwrap();
    assert_eq!(would.len(), 1, "{report}");
    assert_eq!(would[0]["subject"], vip_subject);
    assert!(report["events"].as_u64().unwrap() >= 5000);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(serve.get(&auditor, "/v1/findings?limit=1000")["findings"].as_array().unwrap().len(), before);
}

/// (signature header, delivery id, body, arrival)
type Delivery = (String, String, Vec<u8>, Instant);

/// A webhook receiver: answers 500 while `failing` is above zero (counting down; u32::MAX fails
/// forever), else 200; keeps what it received with the time it arrived.
struct Receiver {
    url: String,
    failing: Arc<AtomicU32>,
    received: Arc<Mutex<Vec<Delivery>>>,
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let failing = Arc::new(AtomicU32::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let (fail, got) = (Arc::clone(&failing), Arc::clone(&received));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut signature, mut delivery) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                let value = line.split_once(':').map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
                if lower.starts_with("content-length:") {
                    length = value.parse().unwrap_or(0);
                } else if lower.starts_with("evident-signature:") {
                    signature = value;
                } else if lower.starts_with("evident-delivery:") {
                    delivery = value;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let failing_now = fail.load(Ordering::SeqCst);
            let status = if failing_now > 0 {
                if failing_now != u32::MAX {
                    fail.fetch_sub(1, Ordering::SeqCst);
                }
                "500 Internal Server Error"
            } else {
                got.lock().unwrap().push((signature, delivery, body, Instant::now()));
                "200 OK"
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Receiver { url, failing, received }
}

#[test]
fn webhooks_are_signed_retried_dead_lettered_and_redelivered() {
    let serve = Serve::fresh_with(&[
        ("EVIDENT_WEBHOOK_ATTEMPTS", "3"),
        ("EVIDENT_WEBHOOK_BACKOFF_MS", "100"),
        // The receiver listens on loopback.
        ("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ]);
    let hook = receiver();
    let created = json_lines(&evident(
        &serve.base,
        &serve.admin,
        &["webhooks", "create", &hook.url, "--min-severity", "medium", "--json"],
    ))
    .remove(0);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = serve.get(&serve.admin, "/v1/webhooks");
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");
    // Creating the webhook is itself a finding (privilege-change) and is delivered.
    let producer = serve.key("producer");

    // Events in working hours: at night each read would also raise an `off-hours` finding, a
    // second dead letter below that nothing redelivers.
    let at_noon = |mut event: Value| {
        event["time"] = json!(last_working_noon());
        event
    };
    // One failure, then success: delivered on the retry.
    hook.failing.store(1, Ordering::SeqCst);
    send(&serve, &producer, at_noon(read_event("w1", "agent-1", "cus-1", None)));
    let (signature, delivery, body) = wait_for("a delivery of the unexplained read", || {
        hook.received.lock().unwrap().iter().find_map(|(s, d, b, _)| {
            let value: Value = serde_json::from_slice(b).ok()?;
            (value["finding"]["rule"] == "no-purpose").then(|| (s.clone(), d.clone(), b.clone()))
        })
    });
    assert!(delivery.starts_with("dlv_"));
    evident_client::verify_webhook(&secret, &signature, &body).expect("the signature verifies");
    assert!(evident_client::verify_webhook("whsec_wrong", &signature, &body).is_err());
    let t: i64 = signature.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
    assert!(
        evident_client::verify_webhook_at(&secret, &signature, &body, t + 301).is_err(),
        "a replay ten minutes later is refused"
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert!(!payload.to_string().contains("198.51.100.9"), "no personal value in a delivery");

    // Always failing: a dead letter after three attempts; redelivered once the receiver is back.
    hook.failing.store(u32::MAX, Ordering::SeqCst);
    send(&serve, &producer, at_noon(read_event("w2", "agent-2", "cus-2", None)));
    let letter = wait_for("a dead letter", || {
        let letters =
            serve.get(&serve.admin, "/v1/webhooks/dead-letters")["dead_letters"].as_array().cloned()?;
        letters.into_iter().next()
    });
    assert_eq!(letter["attempts"], 3);
    assert!(letter["last_error"].as_str().unwrap().contains("500"));
    hook.failing.store(0, Ordering::SeqCst);
    let dead_id = letter["id"].as_str().unwrap().to_owned();
    evident(&serve.base, &serve.admin, &["webhooks", "redeliver", &dead_id]);
    wait_for("the redelivery", || {
        hook.received.lock().unwrap().iter().any(|(_, d, _, _)| d == &dead_id).then_some(())
    });
    assert!(
        serve.get(&serve.admin, "/v1/webhooks/dead-letters")["dead_letters"].as_array().unwrap().is_empty()
    );
    let response = client()
        .post(serve.url("/v1/webhooks/dead-letters/dlv_nope/redeliver"))
        .bearer_auth(&serve.admin)
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
    // Low findings are not sent to a medium webhook; deleting it stops deliveries.
    let id = created["id"].as_str().unwrap();
    let response =
        client().delete(serve.url(&format!("/v1/webhooks/{id}"))).bearer_auth(&serve.admin).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(serve.get(&serve.admin, "/v1/webhooks")["webhooks"].as_array().unwrap().is_empty());
}

#[test]
fn the_stream_sends_findings_as_they_happen() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let producer = serve.key("producer");
    let response = client().get(serve.url("/v1/stream?kind=findings")).bearer_auth(&reader).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (lines_out, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if lines_out.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    send(&serve, &producer, read_event("s1", "agent-9", "cus-9", None));
    let deadline = Instant::now() + Duration::from_secs(20);
    let data = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a finding streamed");
        if let Some(data) = line.strip_prefix("data:") {
            let value: Value = serde_json::from_str(data.trim()).unwrap();
            if value["rule"] == "no-purpose" {
                break value;
            }
        }
    };
    assert_eq!(data["actor"], "agent-9");
    let bad = client().get(serve.url("/v1/stream?kind=secrets")).bearer_auth(&reader).send().unwrap();
    assert_eq!(bad.status(), 400);
    let producer_stream =
        client().get(serve.url("/v1/stream?kind=events")).bearer_auth(&producer).send().unwrap();
    assert_eq!(producer_stream.status(), 403);
}

#[test]
fn a_half_filled_window_completes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    let admin = serve.admin.clone();
    let rule = json!({"id": "five-customers", "template": "mass_access",
                      "params": {"threshold": 5, "window_secs": 3600}, "severity": "high"});
    let (status, body) = serve.post(&admin, "/v1/rules", &rule);
    assert_eq!(status, 201, "{body}");
    let producer = serve.key("producer");
    for n in 0..3 {
        send(&serve, &producer, read_event(&format!("r{n}"), "agent-r", &format!("c{n}"), Some("ticket 1")));
    }
    std::thread::sleep(Duration::from_millis(300));
    serve.terminate();

    let serve = Serve::start(&data);
    for n in 3..6 {
        send(&serve, &producer, read_event(&format!("r{n}"), "agent-r", &format!("c{n}"), Some("ticket 1")));
    }
    let finding = wait_for("the finding", || {
        let findings =
            serve.get(&admin, "/v1/findings?rule=five-customers")["findings"].as_array().cloned()?;
        findings.into_iter().next()
    });
    assert_eq!(finding["trigger_count"], 6, "{finding}");
    assert_eq!(finding["actor"], "agent-r");
}

#[test]
fn the_rule_api_refuses_bad_input() {
    let serve = Serve::fresh();
    let admin = serve.admin.clone();
    let post = |body: Value| serve.post(&admin, "/v1/rules", &body);
    let rule = |template: &str, params: Value| json!({"id": "x", "template": template, "params": params, "severity": "low"});
    let (status, problem) = post(rule("nope", json!({})));
    assert_eq!(status, 400);
    assert_eq!(problem["invalid-params"][0]["name"], "template");
    assert_eq!(post(rule("mass_access", json!({"threshold": -5}))).0, 400);
    assert_eq!(
        post(rule("failed_burst", json!({"window_secs": 0}))).1["invalid-params"][0]["name"],
        "params.window_secs"
    );
    assert_eq!(post(json!({"id": "x"})).0, 400);
    assert_eq!(post(json!({"id": "x", "template": "no_purpose", "severity": "urgent"})).0, 400);
    let response =
        client().post(serve.url("/v1/rules")).bearer_auth(&admin).body("{not json").send().unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(post(rule("no_purpose", json!({}))).0, 201);
    assert_eq!(post(rule("no_purpose", json!({}))).0, 409, "the id is taken");
    let get =
        |path: &str| client().get(serve.url(path)).bearer_auth(&admin).send().unwrap().status().as_u16();
    assert_eq!(get("/v1/rules/missing"), 404);
    assert_eq!(get("/v1/findings/fnd_missing"), 404);
    assert_eq!(get("/v1/findings?status=weird"), 400);
    assert_eq!(get("/v1/findings?cursor=zzz"), 400);
    assert_eq!(get("/v1/findings?from=yesterday"), 400);
    let reader = serve.key("reader");
    assert_eq!(serve.post(&reader, "/v1/rules", &rule("no_purpose", json!({}))).0, 403);
    // Put: the path names the rule; deleting it is audited.
    let response = client()
        .put(serve.url("/v1/rules/x"))
        .bearer_auth(&admin)
        .json(&json!({"template": "no_purpose", "params": {"cooldown_secs": 5}, "severity": "high"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .put(serve.url("/v1/rules/x"))
        .bearer_auth(&admin)
        .json(&json!({"id": "y", "template": "no_purpose", "severity": "high"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(serve.get(&admin, "/v1/rules/x")["severity"], "high");
    let response = client().delete(serve.url("/v1/rules/x")).bearer_auth(&admin).send().unwrap();
    assert_eq!(response.status(), 200);
    let changes = serve.get(&admin, "/v1/events?source=evident&limit=1000");
    let types: Vec<&str> =
        changes["events"].as_array().unwrap().iter().map(|e| e["event"]["type"].as_str().unwrap()).collect();
    for expected in ["evident.rule.created", "evident.rule.updated", "evident.rule.deleted"] {
        assert!(types.contains(&expected), "{expected} not in {types:?}");
    }
    // Another tenant sees its own rules and none of this tenant's findings.
    assert_eq!(serve.post(&admin, "/v1/tenants", &json!({"id": "acme"})).0, 201);
    let (status, made) = serve.post(&admin, "/v1/keys", &json!({"tenant": "acme", "role": "admin"}));
    assert_eq!(status, 201, "{made}");
    let acme = made["key"].as_str().unwrap().to_owned();
    assert_eq!(serve.post(&acme, "/v1/rules", &rule("no_purpose", json!({}))).0, 201, "ids are per tenant");
    let producer = serve.key("producer");
    send(&serve, &producer, read_event("t1", "agent-t", "cus-t", None));
    let ours = wait_for("a finding in default", || {
        let findings = serve.get(&admin, "/v1/findings?rule=no-purpose")["findings"].as_array().cloned()?;
        findings.into_iter().next()
    });
    let id = ours["id"].as_str().unwrap();
    let status = |key: &str, path: &str| {
        client().get(serve.url(path)).bearer_auth(key).send().unwrap().status().as_u16()
    };
    assert_eq!(status(&acme, &format!("/v1/findings/{id}")), 404);
    let theirs = serve.get(&acme, "/v1/findings")["findings"].as_array().unwrap().clone();
    assert!(
        theirs.iter().all(|f| f["rule"] == "privilege-change"),
        "only acme's own rule change: {theirs:?}"
    );
    assert_eq!(
        serve.post(&acme, &format!("/v1/findings/{id}/status"), &json!({"status": "acknowledged"})).0,
        404
    );
    let templates = json_lines(&evident(&serve.base, &admin, &["rules", "templates", "--json"]));
    assert_eq!(templates.len(), 10);
    let rules = json_lines(&evident(&serve.base, &admin, &["rules", "list", "--json"]));
    assert!(rules.iter().any(|r| r["id"] == "mass-access"), "the default rules");
}

#[test]
fn after_a_crash_the_detector_catches_up_from_the_store_with_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    let admin = serve.admin.clone();
    let rule = json!({"id": "ip-burst", "template": "failed_burst",
                      "params": {"threshold": 4, "window_secs": 600, "by": "ip"}, "severity": "high"});
    assert_eq!(serve.post(&admin, "/v1/rules", &rule).0, 201);
    let producer = serve.key("producer");
    let failed = |n: usize| {
        json!({
            "id": format!("f{n}"), "source": "//sso.test", "type": "auth.login.failed", "action": "login",
            "time": evident_wire::Micros::now().to_rfc3339(),
            "actor": {"id": format!("user-{n}"), "type": "user"}, "targets": [{"type": "service", "id": "sso"}],
            "outcome": "failure", "reason": "bad_password", "origin": {"ip": "203.0.113.77"},
        })
    };
    for n in 0..3 {
        send(&serve, &producer, failed(n));
    }
    // SIGKILL: the detector's state (written every 2 s) most likely misses these three events,
    // so the restarted detector reads them back from the store, personal parts included.
    drop(serve);
    let serve = Serve::start(&data);
    send(&serve, &producer, failed(3));
    let finding = wait_for("the burst finding", || {
        let findings = serve.get(&admin, "/v1/findings?rule=ip-burst")["findings"].as_array().cloned()?;
        findings.into_iter().next()
    });
    assert_eq!(finding["trigger_count"], 4, "{finding}");
    assert!(!finding.to_string().contains("203.0.113.77"));
}

#[test]
fn a_delivery_under_way_at_shutdown_becomes_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slow = [
        ("EVIDENT_WEBHOOK_ATTEMPTS", "10"),
        ("EVIDENT_WEBHOOK_BACKOFF_MS", "10000"),
        ("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ];
    let serve = Serve::start_with(&data, &slow);
    let admin = serve.stdout_line().strip_prefix("admin key: ").expect("the admin key").to_owned();
    let hook = receiver();
    hook.failing.store(u32::MAX, Ordering::SeqCst);
    let (status, _) = serve.post(&admin, "/v1/webhooks", &json!({"url": hook.url, "min_severity": "high"}));
    assert_eq!(status, 201);
    let (status, _) = serve.post(
        &admin,
        "/v1/rules",
        &json!({"id": "any-read", "template": "no_purpose",
        "params": {"data_classes": []}, "severity": "high"}),
    );
    assert_eq!(status, 201);
    let (_, made) = serve.post(&admin, "/v1/keys", &json!({"role": "producer"}));
    let producer = made["key"].as_str().unwrap().to_owned();
    send(&serve, &producer, read_event("d1", "agent-d", "cus-d", None));
    wait_for("the finding", || {
        let findings = serve.get(&admin, "/v1/findings?rule=any-read")["findings"].as_array().cloned()?;
        (!findings.is_empty()).then_some(())
    });
    serve.terminate();
    let serve = Serve::start(&data);
    let letters = serve.get(&admin, "/v1/webhooks/dead-letters")["dead_letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0]["last_error"].as_str().unwrap().contains("interrupted"), "{letters:?}");
}
