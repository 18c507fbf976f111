//! Issue 12, finding by finding, against the real `evident serve`: each test reproduces what a
//! hostile producer, tenant or network could do and checks the server's answer.

mod common;

use std::path::Path;

use common::{Serve, client};
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
        .query_row("SELECT wrapped FROM data_keys WHERE subject = 'cust-1'", [], |row| row.get(0))
        .expect("the subject's key is stored");
    let mut damaged = wrapped.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    sqlite(&data)
        .execute("UPDATE data_keys SET wrapped = ?1 WHERE subject = 'cust-1'", [&damaged])
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
        .execute("UPDATE data_keys SET wrapped = ?1 WHERE subject = 'cust-1'", [&wrapped])
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
