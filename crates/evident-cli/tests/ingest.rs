//! `evident ingest` as users run it: the real binary against a real `evident serve` on a temporary
//! data directory, with the sample files in `tests/data/ingest/`, written from each format's
//! documentation: CloudTrail (records, NDJSON, Insights, a digest file), Kubernetes audit (v1,
//! v1beta1 with `timestamp`, GKE and AKS wrappers), GitHub audit logs (with and without
//! `_document_id`), the Okta System Log, the Azure Activity Log (REST export and diagnostic
//! records), Entra ID sign-ins (Graph and diagnostic records), Google Workspace activities,
//! PostgreSQL pgaudit CSV logs, Evident NDJSON and a CSV export.
//!
//! Each format is ingested with the right counts and a spot-checked mapping (read back with a
//! reader key, which must see no personal value anywhere, and an investigator's, which sees the
//! sealed values); running a file again stores nothing twice; bad lines, rejections and conflicts
//! are reported with their line, a problem repeated on every line once; `--fail-fast` stops at the
//! first; batches the server finds too large are split; and every bad input (a missing file, a
//! wrong format, an unreachable server, a wrong key or role, a bad key file) fails with a clear
//! message.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{EVIDENT, Serve, client};
use evident_import::Pseudonyms;
use serde_json::{Value, json};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ingest").join(name)
}

/// The pseudonym key the tests import with (`--pseudonym-key`, unless a test gives another).
fn keys() -> Pseudonyms {
    Pseudonyms::load_or_create(&data("pseudonym.key")).expect("the tests' key file").0
}

/// The pseudonym of a personal value under the tests' key.
fn ps(value: &str) -> String {
    keys().of(value)
}

impl Serve {
    /// The events matching `query` (a search with `key`), oldest first.
    fn search(&self, key: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut query: Vec<(&str, &str)> = query.to_vec();
        query.extend([("limit", "1000"), ("order", "oldest")]);
        let response = client()
            .get(format!("{}/v1/events", self.base))
            .bearer_auth(key)
            .query(&query)
            .send()
            .expect("GET /v1/events");
        assert_eq!(response.status(), 200, "GET /v1/events {query:?}");
        let page: Value = response.json().expect("JSON");
        page["events"].as_array().expect("events").iter().map(|view| view["event"].clone()).collect()
    }

    /// The events matching `query` as an investigator sees them: personal values included.
    fn search_personal(&self, investigator: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut query: Vec<(&str, &str)> = query.to_vec();
        query.push(("purpose", "checking an import"));
        self.search(investigator, &query)
    }

    /// The one event with this `id` among those matching `query`.
    fn event(&self, key: &str, query: &[(&str, &str)], id: &str) -> Value {
        let events = self.search(key, query);
        let found: Vec<&Value> = events.iter().filter(|event| event["id"] == id).collect();
        assert_eq!(found.len(), 1, "one event {id} for {query:?} in {events:#?}");
        found[0].clone()
    }
}

/// What one `evident ingest` run did.
#[derive(Debug)]
struct Ran {
    success: bool,
    /// The `{"summary": ...}` object, if printed.
    summary: Value,
    /// The problem objects printed on stdout, in order.
    problems: Vec<Value>,
    stderr: String,
}

impl Ran {
    fn count(&self, name: &str) -> u64 {
        self.summary[name].as_u64().unwrap_or_else(|| panic!("summary has no {name}: {self:#?}"))
    }

    /// Checks that stderr says each of `expected`.
    fn says(&self, expected: &[&str]) {
        for expected in expected {
            assert!(self.stderr.contains(expected), "{expected:?} in\n{}", self.stderr);
        }
    }

    /// Checks the summary's counts.
    fn expect(&self, counts: &[(&str, u64)]) {
        for (name, expected) in counts {
            assert_eq!(self.count(name), *expected, "{name} in {self:#?}");
        }
    }
}

/// Runs `evident ingest ARGS` against `url` with `key` (stdout is a pipe: JSON lines).
fn ingest(url: &str, key: Option<&str>, args: &[&str]) -> Ran {
    let mut command = Command::new(EVIDENT);
    command
        .arg("ingest")
        .args(args)
        .args(["--url", url])
        .env_remove("EVIDENT_URL")
        .env_remove("EVIDENT_API_KEY")
        .env_remove("EVIDENT_PSEUDONYM_KEY");
    if let Some(key) = key {
        command.args(["--key", key]);
    }
    if !args.contains(&"--pseudonym-key") {
        command.arg("--pseudonym-key").arg(data("pseudonym.key"));
    }
    let output = command.stdin(Stdio::null()).output().expect("evident ingest runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 stderr");
    let mut summary = Value::Null;
    let mut problems = Vec::new();
    for line in stdout.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}\n{stderr}"));
        match value.get("summary") {
            Some(found) => summary = found.clone(),
            None => problems.push(value),
        }
    }
    Ran { success: output.status.success(), summary, problems, stderr }
}

fn path(name: &str) -> String {
    data(name).display().to_string()
}

fn target(event: &Value, index: usize) -> (String, String) {
    let target = &event["targets"][index];
    (target["type"].as_str().unwrap_or("").to_owned(), target["id"].as_str().unwrap_or("").to_owned())
}

fn pair(target_type: &str, id: &str) -> (String, String) {
    (target_type.to_owned(), id.to_owned())
}

#[test]
fn cloudtrail_files_are_mapped_and_running_them_again_stores_nothing_twice() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let files = [path("cloudtrail-records.json"), path("cloudtrail.ndjson")];
    let files: Vec<&str> = files.iter().map(String::as_str).collect();

    let ran = ingest(&serve.base, Some(&producer), &files);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[
        ("files", 2),
        ("records", 10),
        ("stored", 10),
        ("duplicates", 0),
        ("rejected", 0),
        ("bad_lines", 0),
    ]);

    let eu = [("source", "//aws.amazon.com/cloudtrail/123456789012/eu-west-1")];
    let denied = serve.event(&reader, &eu, "c5a1e2f3-4b5c-4d6e-9f70-8192a3b4c5d6");
    assert_eq!(denied["type"], "aws.s3.getobject");
    assert_eq!(denied["action"], "read");
    assert_eq!(denied["outcome"], "failure");
    assert_eq!(denied["reason"], "AccessDenied: Access Denied");
    assert_eq!(
        denied["actor"]["id"],
        "arn:aws:sts::123456789012:assumed-role/orders-backend/i-0a1b2c3d4e5f67890"
    );
    assert_eq!(denied["actor"]["type"], "service");
    assert_eq!(denied["actor"]["on_behalf_of"], "arn:aws:iam::123456789012:role/orders-backend");
    assert_eq!(
        target(&denied, 0),
        pair("AWS::S3::Object", "arn:aws:s3:::acme-customer-exports/exports/2024-04/customers.csv")
    );
    assert_eq!(target(&denied, 1), pair("AWS::S3::Bucket", "arn:aws:s3:::acme-customer-exports"));
    assert_eq!(denied["correlation"]["request_id"], "F8J2C9K3M4N5P6Q7");
    assert_eq!(denied["metadata"]["error_code"], "AccessDenied");

    let us = [("source", "//aws.amazon.com/cloudtrail/123456789012/us-east-1")];
    let created = serve.event(&reader, &us, "7b2d9e4f-1c3a-4d5e-8f6a-9b0c1d2e3f4a");
    assert_eq!(created["type"], "aws.iam.createuser");
    assert_eq!(created["action"], "create");
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["actor"]["type"], "user", "an SSO session is a person");
    assert_eq!(created["actor"]["auth"]["mfa"], true);
    let bob = format!("arn:aws:iam::123456789012:user/{}", ps("bob"));
    assert_eq!(target(&created, 0), pair("AWS::IAM::User", &bob), "a user name is personal: its pseudonym");
    let fields: Vec<&Value> =
        created["changes"].as_array().expect("changes").iter().map(|c| &c["field"]).collect();
    assert!(fields.contains(&&json!("/userName")), "{fields:?}");

    let failed_login = serve.event(&reader, &us, "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70");
    assert_eq!((&failed_login["action"], &failed_login["outcome"]), (&json!("login"), &json!("failure")));
    assert_eq!(failed_login["reason"], "Failed authentication");
    assert_eq!(target(&failed_login, 0), pair("aws.service", "signin.amazonaws.com"));

    let granted = serve.event(&reader, &us, "e1d2c3b4-a596-4877-8695-a4b3c2d1e0f9");
    assert_eq!(granted["action"], "grant");
    assert_eq!(granted["actor"]["id"], format!("arn:aws:iam::123456789012:user/{}", ps("carol")));
    assert_eq!(granted["actor"]["session"], ps("AKIA6ON6E4XCAROLKEY1"), "an access key id is personal");

    let by_service = serve.event(&reader, &eu, "33333333-4444-4555-8666-777777777777");
    assert_eq!((&by_service["type"], &by_service["action"]), (&json!("aws.sts.assumerole"), &json!("login")));
    assert_eq!(
        (&by_service["actor"]["id"], &by_service["actor"]["type"]),
        (&json!("ec2.amazonaws.com"), &json!("service"))
    );
    assert_eq!(by_service["metadata"]["source_ip_address"], "ec2.amazonaws.com");

    // Again, and the records file gzip-compressed as CloudTrail delivers it: nothing new.
    let dir = tempfile::tempdir().expect("temp dir");
    let gz = dir.path().join("123456789012_CloudTrail_eu-west-1_20240501T1000Z.json.gz");
    let compressed =
        Command::new("gzip").arg("-c").arg(data("cloudtrail-records.json")).output().expect("gzip runs");
    assert!(compressed.status.success(), "gzip");
    std::fs::write(&gz, compressed.stdout).expect("write the .gz");
    let gz = gz.display().to_string();
    let again = ingest(&serve.base, Some(&producer), &[files[0], files[1], &gz]);
    assert!(again.success, "{again:#?}");
    again.expect(&[("records", 17), ("stored", 0), ("duplicates", 17), ("conflicts", 0)]);
    assert_eq!(serve.search(&reader, &[("type", "aws.s3.getobject")]).len(), 1);

    // A records file cut short inside its fourth record: three records, and the fourth reported
    // with the line it starts on.
    let text = std::fs::read_to_string(data("cloudtrail-records.json")).expect("read");
    let fourth = text.match_indices("\"eventVersion\"").nth(3).expect("a fourth record").0;
    let record_line = text[..fourth].lines().count() as u64 - 1;
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..fourth + 200]).expect("write");
    let cut = ingest(&serve.base, Some(&producer), &[&truncated.display().to_string()]);
    assert!(!cut.success);
    cut.expect(&[("records", 4), ("duplicates", 3), ("bad_lines", 1)]);
    let problem = &cut.problems[0];
    assert_eq!((&problem["line"], &problem["record"]), (&json!(record_line), &json!(4)), "{problem:#}");
    let message = problem["message"].as_str().unwrap_or("");
    assert!(message.contains("ends early (a truncated file?)"), "{message}");
}

#[test]
fn kubernetes_audit_events_are_mapped_stage_by_stage() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let files = [path("k8s-eventlist.json"), path("k8s-audit.ndjson")];
    let ran = ingest(&serve.base, Some(&producer), &[&files[0], &files[1], "--cluster", "prod-eu"]);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[("files", 2), ("records", 10), ("stored", 10), ("rejected", 0), ("bad_lines", 0)]);

    let cluster = [("source", "//k8s/prod-eu")];
    let secret_reads = serve.search(&reader, &[("source", "//k8s/prod-eu"), ("type", "k8s.secrets.get")]);
    assert_eq!(secret_reads.len(), 3, "two stages of one read, and a forbidden one");

    let received = serve.event(&reader, &cluster, "4c1f6a2e-8b3d-4e5f-9a0b-1c2d3e4f5a60/RequestReceived");
    assert_eq!(received["outcome"], "unknown", "no response yet at this stage");
    let read = serve.event(&reader, &cluster, "4c1f6a2e-8b3d-4e5f-9a0b-1c2d3e4f5a60/ResponseComplete");
    assert_eq!((&read["action"], &read["outcome"]), (&json!("read"), &json!("success")));
    assert_eq!(
        (&read["actor"]["id"], &read["actor"]["type"]),
        (&json!(ps("alice@example.com")), &json!("user"))
    );
    assert_eq!(target(&read, 0), pair("secrets", "payments/db-credentials"));
    assert!(read["reason"].as_str().unwrap_or("").starts_with("RBAC: allowed by RoleBinding"), "{read:#}");

    let forbidden = serve.event(&reader, &cluster, "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f60/ResponseComplete");
    assert_eq!(forbidden["outcome"], "failure");
    assert_eq!(forbidden["actor"]["id"], ps("bob@example.com"));
    let reason = forbidden["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("403 Forbidden: secrets \"cloud-provider-credentials\" is forbidden"),
        "{reason}"
    );
    assert_eq!(target(&forbidden, 0), pair("secrets", "kube-system/cloud-provider-credentials"));

    let impersonated =
        serve.event(&reader, &cluster, "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c20/ResponseComplete");
    assert_eq!(
        (&impersonated["type"], &impersonated["action"]),
        (&json!("k8s.deployments.scale.patch"), &json!("update"))
    );
    assert_eq!(impersonated["actor"]["id"], ps("alice@example.com"));
    assert_eq!(impersonated["actor"]["on_behalf_of"], "system:serviceaccount:payments:operator");
    assert_eq!(target(&impersonated, 0), pair("deployments.apps", "payments/payments-api"));

    let refused = serve.event(&reader, &cluster, "cc33dd44-ee55-4f66-a077-118899001122/ResponseComplete");
    assert_eq!((&refused["action"], &refused["outcome"]), (&json!("create"), &json!("failure")));
    assert_eq!(refused["actor"]["on_behalf_of"], "system:admin");

    let deployer = serve.event(&reader, &cluster, "1e2d3c4b-5a69-4788-9a6b-5c4d3e2f1a00/ResponseComplete");
    assert_eq!((&deployer["actor"]["type"], &deployer["action"]), (&json!("service"), &json!("create")));
    let exec = serve.event(&reader, &cluster, "2b3c4d5e-6f70-4811-a2b3-c4d5e6f7a810/ResponseStarted");
    assert_eq!((&exec["type"], &exec["action"]), (&json!("k8s.pods.exec.create"), &json!("other")));
    let probe = serve.event(&reader, &cluster, "dd44ee55-ff66-4077-b188-229900112233/ResponseComplete");
    assert_eq!(target(&probe, 0), pair("nonresource", "/healthz"));
    assert_eq!(probe["actor"]["type"], "anonymous");

    let again = ingest(&serve.base, Some(&producer), &[&files[0], &files[1], "--cluster", "prod-eu"]);
    assert!(again.success, "{again:#?}");
    again.expect(&[("stored", 0), ("duplicates", 10)]);
}

#[test]
fn github_audit_log_entries_are_mapped() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let file = path("github-audit-log.json");
    let ran = ingest(&serve.base, Some(&producer), &[&file]);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[("records", 6), ("stored", 6), ("rejected", 0)]);

    let org = [("source", "//github.com/acme-corp")];
    let added = serve.event(&reader, &org, "Vqvg6kZ4MYqwWRKFDzlMoQ");
    assert_eq!((&added["type"], &added["action"]), (&json!("github.team.add_member"), &json!("grant")));
    assert_eq!(added["actor"]["id"], ps("octocat"));
    assert_eq!(added["time"], "2024-05-01T10:02:00.133000Z");
    assert_eq!(target(&added, 0), pair("github.team", "acme-corp/payments"));
    assert_eq!(target(&added, 1), pair("github.user", &ps("monalisa")));

    let destroyed = serve.event(&reader, &org, "Qm9yZWQtZG9jLWlkLTAwNQ");
    assert_eq!((&destroyed["action"], &destroyed["outcome"]), (&json!("delete"), &json!("success")));
    assert_eq!(
        (&destroyed["actor"]["id"], &destroyed["actor"]["type"]),
        (&json!("dependabot[bot]"), &json!("service"))
    );
    assert_eq!(target(&destroyed, 0), pair("github.repository", "acme-corp/old-experiments"));

    let promoted = serve.event(&reader, &org, "LwW2vpJZCDS-WUmo9Z-ifw");
    assert_eq!(promoted["action"], "update");
    assert_eq!(promoted["changes"][0]["field"], "/permission");
    let cloned = serve.event(&reader, &org, "Bq8_3vQZXWn1kP0sLx7R2a");
    assert_eq!(cloned["action"], "read");
    assert_eq!(cloned["actor"]["auth"]["method"], "Personal access token (classic)");

    let again = ingest(&serve.base, Some(&producer), &[&file]);
    again.expect(&[("stored", 0), ("duplicates", 6)]);
}

#[test]
fn evident_ndjson_reports_each_bad_line_rejection_and_conflict_with_its_line() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let file = path("events.ndjson");

    let ran = ingest(&serve.base, Some(&producer), &[&file]);
    assert!(!ran.success, "a bad line, a rejection and a conflict make a failure: {ran:#?}");
    ran.expect(&[("records", 6), ("stored", 3), ("bad_lines", 1), ("rejected", 1), ("conflicts", 1)]);
    let problems: Vec<(&str, u64)> = ran
        .problems
        .iter()
        .map(|p| (p["problem"].as_str().expect("a kind"), p["line"].as_u64().expect("a line")))
        .collect();
    assert_eq!(problems, [("bad_line", 4), ("rejected", 5), ("conflict", 7)]);
    let rejected = &ran.problems[1];
    let failing: Vec<&str> = rejected["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(failing, ["severity", "reason"], "every failing field: {rejected:#}");
    let original = serve.event(&reader, &[("source", "//crm.example.com/support-api")], "evt-1001");
    assert_eq!(
        ran.problems[2]["existing_event_id"], original["event_id"],
        "the conflict names the stored event"
    );
    assert_eq!(original["time"], "2024-05-01T09:00:00.000000Z", "the first one stays");
    for expected in [
        "events.ndjson:4: bad line: invalid JSON",
        "events.ndjson:5: rejected (id \"evt-1004\"): severity (enum)",
        "events.ndjson:7: conflict (id \"evt-1001\")",
        "1 file, 6 records read: 3 stored, 0 already present, 1 conflict, 1 rejected, 1 bad line",
    ] {
        assert!(ran.stderr.contains(expected), "{expected:?} in\n{}", ran.stderr);
    }

    // Resumed: what was stored is found again; the same problems are reported again.
    let again = ingest(&serve.base, Some(&producer), &[&file]);
    assert!(!again.success);
    again.expect(&[("stored", 0), ("duplicates", 3), ("bad_lines", 1), ("rejected", 1), ("conflicts", 1)]);

    // --fail-fast stops at line 4: line 5 is never sent.
    let fast = ingest(&serve.base, Some(&producer), &[&file, "--fail-fast"]);
    assert!(!fast.success);
    assert_eq!(fast.summary["stopped_early"], true);
    fast.expect(&[("records", 3), ("duplicates", 2), ("bad_lines", 1), ("rejected", 0)]);
    assert!(fast.stderr.contains("stopped at the first problem (--fail-fast)"), "{}", fast.stderr);

    // --fail-fast stops at a rejection too: the next event is not sent.
    let dir = tempfile::tempdir().expect("temp dir");
    let two = dir.path().join("two.jsonl");
    let good = r#"{"id":"evt-2002","source":"//crm.example.com/support-api","type":"auth.logout.done","action":"logout","time":"2024-05-01T10:00:00Z","actor":{"id":"agent-23"},"targets":[{"type":"service","id":"support-api"}],"outcome":"success","origin":{"service":"support-api"}}"#;
    let bad = good.replace("evt-2002", "evt-2001").replace("\"logout\"", "\"log_out\"");
    std::fs::write(&two, format!("{bad}\n{good}\n")).expect("write");
    let two = two.display().to_string();
    let stopped = ingest(&serve.base, Some(&producer), &[&two, "--fail-fast", "--batch-size", "1"]);
    assert!(!stopped.success);
    stopped.expect(&[("records", 1), ("rejected", 1), ("stored", 0)]);
    assert!(
        stopped.stderr.contains("two.jsonl:1: rejected (id \"evt-2001\"): action (enum)"),
        "{}",
        stopped.stderr
    );
    let sent =
        serve.search(&reader, &[("source", "//crm.example.com/support-api"), ("type", "auth.logout.done")]);
    assert!(sent.is_empty(), "nothing after the rejection was sent: {sent:#?}");
}

#[test]
fn batches_the_server_finds_too_large_are_split() {
    let serve = Serve::fresh_with(&[("EVIDENT_MAX_BATCH_EVENTS", "2"), ("EVIDENT_MAX_BODY_BYTES", "6000")]);
    let producer = serve.key("producer");
    let files = [path("cloudtrail-records.json"), path("k8s-eventlist.json")];
    let ran = ingest(&serve.base, Some(&producer), &[&files[0], &files[1]]);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[("records", 13), ("stored", 13)]);
}

const CSV_MAPPING: &[&str] = &[
    "--map",
    "id=EventId",
    "--map",
    "time=Timestamp",
    "--map",
    "actor.id=User",
    "--map",
    "action=Action",
    "--map",
    "target.type=RecordType",
    "--map",
    "target.id=Record",
    "--map",
    "change.field=Field",
    "--map",
    "change.before=OldValue",
    "--map",
    "change.after=NewValue",
    "--map",
    "outcome=Result",
    "--map",
    "reason=Note",
    "--map",
    "origin.ip=ClientIP",
    "--map",
    "metadata.channel=Channel",
    "--set",
    "source=//erp.example.com/finance",
    "--set",
    "type=erp.audit.entry",
];

#[test]
fn csv_rows_are_mapped_by_the_column_mapping() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let file = path("erp-audit.csv");
    let args: Vec<&str> = std::iter::once(file.as_str()).chain(CSV_MAPPING.iter().copied()).collect();

    let ran = ingest(&serve.base, Some(&producer), &args);
    assert!(!ran.success, "a bad row makes a failure");
    ran.expect(&[("records", 5), ("stored", 4), ("bad_lines", 1), ("rejected", 0)]);
    assert_eq!(ran.problems.len(), 1);
    assert_eq!((&ran.problems[0]["problem"], &ran.problems[0]["line"]), (&json!("bad_line"), &json!(5)));
    assert!(
        ran.stderr
            .contains("erp-audit.csv:5: bad line: column \"Timestamp\" (time): cannot read \"yesterday\"")
    );

    let erp = [("source", "//erp.example.com/finance")];
    let corrected = serve.event(&reader, &erp, "erp-0002");
    assert_eq!((&corrected["type"], &corrected["action"]), (&json!("erp.audit.entry"), &json!("update")));
    assert_eq!(corrected["time"], "2024-05-01T08:05:30.000000Z");
    assert_eq!(corrected["actor"]["id"], "jdoe");
    assert_eq!(target(&corrected, 0), pair("invoice", "INV-2024-0001"));
    assert_eq!(corrected["changes"][0]["field"], "/amount");
    assert_eq!(corrected["reason"], "corrected VAT, see ticket 88");
    assert_eq!(corrected["metadata"]["channel"], "web");
    let refused = serve.event(&reader, &erp, "erp-0005");
    assert_eq!((&refused["outcome"], &refused["reason"]), (&json!("failure"), &json!("permission denied")));
    let deleted = serve.event(&reader, &erp, "erp-0003");
    assert_eq!((&deleted["action"], &deleted["changes"][0]["field"]), (&json!("delete"), &json!("")));

    let again = ingest(&serve.base, Some(&producer), &args);
    again.expect(&[("stored", 0), ("duplicates", 4), ("bad_lines", 1)]);

    // A CSV file without a mapping, or mapping a column it does not have.
    let unmapped = ingest(&serve.base, Some(&producer), &[&file]);
    assert!(!unmapped.success);
    assert!(
        unmapped.stderr.contains("CSV files need a column mapping: --map FIELD=COLUMN"),
        "{}",
        unmapped.stderr
    );
    let mut wrong_column = args.clone();
    wrong_column[2] = "id=EventNumber";
    let wrong = ingest(&serve.base, Some(&producer), &wrong_column);
    assert!(!wrong.success);
    assert!(
        wrong.stderr.contains(
            "no column \"EventNumber\" (mapped to id) in the header row; its columns are: EventId,"
        ),
        "{}",
        wrong.stderr
    );
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let dir = tempfile::tempdir().expect("temp dir");
    let events = path("events.ndjson");
    let check = |ran: Ran, expected: &[&str]| {
        assert!(!ran.success, "{ran:#?}");
        for expected in expected {
            assert!(ran.stderr.contains(expected), "{expected:?} in\n{}", ran.stderr);
        }
        assert!(ran.summary.is_null(), "nothing was read: {ran:#?}");
    };

    let missing = dir.path().join("no-such-file.ndjson").display().to_string();
    check(
        ingest(&serve.base, Some(&producer), &[&events, &missing]),
        &["cannot open", "no-such-file.ndjson"],
    );

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "meeting notes, not events\n").expect("write");
    check(
        ingest(&serve.base, Some(&producer), &[&notes.display().to_string()]),
        &["notes.txt is not JSON: expected"],
    );
    let unknown = dir.path().join("other.json");
    std::fs::write(&unknown, "{\"name\": \"not an audit record\"}\n").expect("write");
    check(
        ingest(&serve.base, Some(&producer), &[&unknown.display().to_string()]),
        &["cannot tell the format of", "other.json", "or pass --format"],
    );
    check(
        ingest(&serve.base, Some(&producer), &[&path("cloudtrail-records.json"), "--format", "k8s"]),
        &["cloudtrail-records.json does not look like Kubernetes audit: expected"],
    );

    // A port nobody listens on.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let nobody = format!("http://127.0.0.1:{port}");
    check(
        ingest(&nobody, Some(&producer), &[&events]),
        &[&format!("cannot reach the server at {nobody}"), "refused"],
    );

    check(
        ingest(&serve.base, Some("evk_0123456789abcdef_not-a-real-key"), &[&events]),
        &["the API key was refused"],
    );
    check(ingest(&serve.base, Some(&reader), &[&events]), &["may not append events", "producer role"]);
    check(ingest(&serve.base, None, &[&events]), &["no API key: pass --key or set EVIDENT_API_KEY"]);

    let stored = serve.search(&reader, &[("source", "//crm.example.com/support-api")]);
    assert!(stored.is_empty(), "none of these stored anything: {stored:#?}");
}

/// Asserts that none of `values` appears anywhere in `events` (as a reader sees them: the
/// skeleton, without the sealed personal part).
fn no_personal(events: &[Value], values: &[&str]) {
    assert!(!events.is_empty(), "no events to look at");
    let text = serde_json::to_string(events).expect("JSON");
    for value in values {
        assert!(!text.contains(value), "{value:?} is in clear in {events:#?}");
    }
}

/// The one event of `type` among `events`.
fn of_type<'e>(events: &'e [Value], event_type: &str) -> &'e Value {
    let found: Vec<&Value> = events.iter().filter(|event| event["type"] == event_type).collect();
    assert_eq!(found.len(), 1, "one event of type {event_type} in {events:#?}");
    found[0]
}

/// A fresh server with one file imported (told by its content) and imported again with
/// `--format`: `stored` events the first time, all of them duplicates the second; and the events
/// of `source` as a reader sees them, none of `personal` among them.
struct Imported {
    serve: Serve,
    reader: String,
    investigator: String,
    events: Vec<Value>,
}

fn import_one(
    name: &str,
    format: &str,
    stored: u64,
    source: &str,
    personal: &[&str],
    extra: &[&str],
) -> Imported {
    let serve = Serve::fresh();
    let (producer, reader, investigator) =
        (serve.key("producer"), serve.key("reader"), serve.key("investigator"));
    let file = path(name);
    let args: Vec<&str> = std::iter::once(file.as_str()).chain(extra.iter().copied()).collect();
    let ran = ingest(&serve.base, Some(&producer), &args);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[("stored", stored), ("rejected", 0), ("bad_lines", 0)]);
    let again = ingest(&serve.base, Some(&producer), &[&args[..], &["--format", format]].concat());
    again.expect(&[("stored", 0), ("duplicates", stored)]);
    let events = serve.search(&reader, &[("source", source)]);
    no_personal(&events, personal);
    Imported { serve, reader, investigator, events }
}

#[test]
fn github_exports_without_document_ids_get_stable_derived_ids_and_keep_logins_sealed() {
    let personal = ["octocat", "monalisa", "hubot-admin", "new.hire", "192.0.2.40", "583231"];
    let Imported { serve, reader, investigator, events } =
        import_one("github-export-no-id.ndjson", "github", 6, "//github.com/acme-corp", &personal, &[]);
    let org = [("source", "//github.com/acme-corp")];
    assert_eq!(events.len(), 5);
    let added = of_type(&events, "github.org.add_member");
    assert!(added["id"].as_str().is_some_and(|id| id.starts_with("gh_") && id.len() == 35), "{added:#}");
    assert_eq!(added["time"], "2024-05-01T10:00:00.512000Z", "created_at in epoch milliseconds");
    assert_eq!((&added["action"], &added["actor"]["id"]), (&json!("grant"), &json!(ps("octocat"))));
    assert_eq!(target(added, 0), pair("github.user", &ps("monalisa")));
    assert_eq!(
        of_type(&events, "github.repo.destroy")["changes"],
        json!([{"field": ""}]),
        "values are sealed"
    );
    let seen = serve.search_personal(&investigator, &org);
    let destroyed = of_type(&seen, "github.repo.destroy");
    assert_eq!(
        destroyed["changes"],
        json!([{"field": "", "before": {"type": "github.repository", "id": "acme-corp/legacy-billing"}, "after": null}]),
        "a delete names what is gone, never a bare {{\"field\": \"\"}}"
    );
    let invited = of_type(&events, "github.org.invite_member");
    assert_eq!(target(invited, 0), pair("github.user", &ps("new.hire")));
    let cloned = of_type(&events, "github.git.clone");
    assert_eq!(
        (&cloned["actor"]["id"], &cloned["actor"]["type"]),
        (&json!("ci-deployer[bot]"), &json!("service"))
    );

    // The sealed values are there for an investigator.
    let added = of_type(&seen, "github.org.add_member");
    assert_eq!(
        (&added["actor"]["display"], &added["targets"][0]["display"]),
        (&json!("octocat"), &json!("monalisa"))
    );
    assert_eq!(added["origin"]["ip"], "192.0.2.40");
    let enterprise = serve.search(&reader, &[("source", "//github.com/enterprises/acme")]);
    assert_eq!(of_type(&enterprise, "github.business.set_actions_retention_limit")["action"], "update");
}

#[test]
fn kubernetes_timestamp_events_and_gke_and_aks_records_are_mapped() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let investigator = serve.key("investigator");
    let files = [path("k8s-v1beta1-timestamp.ndjson"), path("k8s-gke.ndjson"), path("k8s-aks-records.json")];
    let ran = ingest(&serve.base, Some(&producer), &[&files[0], &files[1], &files[2]]);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[("files", 3), ("records", 10), ("stored", 10), ("rejected", 0), ("bad_lines", 0)]);

    let old = serve.search(&reader, &[("source", "//k8s/kubernetes")]);
    no_personal(&old, &["alice", "10.1.2.3", "carol", "ops-lead"]);
    let impersonating = of_type(&old, "k8s.configmaps.patch");
    assert_eq!(
        (&impersonating["actor"]["id"], &impersonating["actor"]["type"]),
        (&json!(ps("ops-lead")), &json!("admin"))
    );
    assert_eq!(
        impersonating["actor"]["on_behalf_of"],
        ps("carol@example.com"),
        "the impersonated person too"
    );
    let read = of_type(&old, "k8s.secrets.get");
    assert_eq!(read["time"], "2019-03-01T09:00:00.000000Z", "the v1beta1 `timestamp`");
    assert_eq!(read["actor"]["id"], ps("alice"));
    let denied = of_type(&old, "k8s.pods.list");
    assert_eq!(
        denied["reason"],
        format!(
            "403 Forbidden: pods is forbidden: User \"{}\" cannot list resource \"pods\" in API group \"\" in the \
             namespace \"kube-system\"",
            ps("alice")
        ),
        "the user name in the message is its pseudonym"
    );
    let deleted = of_type(&old, "k8s.deployments.delete");
    assert_eq!(
        deleted["actor"]["id"], "system:serviceaccount:ci:deployer",
        "system identities are not people"
    );
    assert_eq!(
        deleted["changes"],
        json!([{"field": ""}]),
        "a reader sees which field changed, not the values"
    );
    let seen = serve.search_personal(&investigator, &[("source", "//k8s/kubernetes")]);
    let deleted = of_type(&seen, "k8s.deployments.delete");
    assert_eq!(deleted["changes"][0]["before"], json!({"type": "deployments.apps", "id": "shop/web"}));

    let gke = serve.search(&reader, &[("source", "//k8s/prod-eu")]);
    no_personal(&gke, &["dana@example.com", "erin@example.com", "198.51.100.23"]);
    let secret = serve.event(&reader, &[("source", "//k8s/prod-eu")], "gke/gke-0001");
    assert_eq!((&secret["type"], &secret["action"]), (&json!("k8s.secrets.get"), &json!("read")));
    assert_eq!(target(&secret, 0), pair("secrets", "payments/db-credentials"));
    assert_eq!(secret["metadata"]["gke_project"], "acme-prod");
    let forbidden = serve.event(&reader, &[("source", "//k8s/prod-eu")], "gke/gke-0003");
    assert_eq!(
        (&forbidden["outcome"], &forbidden["metadata"]["response_code"]),
        (&json!("failure"), &json!("403"))
    );
    let scale = serve.event(&reader, &[("source", "//k8s/prod-eu")], "gke/gke-0002");
    assert_eq!(target(&scale, 0), pair("deployments.apps", "payments/api"));
    let binding = serve.event(&reader, &[("source", "//k8s/prod-eu")], "gke/gke-0004");
    assert_eq!((&binding["action"], &binding["actor"]["type"]), (&json!("create"), &json!("service")));

    let aks = serve.search(&reader, &[("source", "//k8s/aks-prod")]);
    no_personal(&aks, &["frank@contoso.com", "203.0.113.80"]);
    let update = of_type(&aks, "k8s.configmaps.update");
    assert_eq!(
        (&update["actor"]["id"], &update["metadata"]["aks_category"]),
        (&json!(ps("frank@contoso.com")), &json!("kube-audit"))
    );
    assert!(
        update["reason"].as_str().is_some_and(|reason| reason.contains(&ps("frank@contoso.com"))),
        "{update:#}"
    );
    let seen = serve.search_personal(&investigator, &[("source", "//k8s/aks-prod")]);
    assert_eq!(of_type(&seen, "k8s.configmaps.update")["actor"]["display"], "frank@contoso.com");

    // --cluster names the cluster even when the record names one.
    let named = ingest(&serve.base, Some(&producer), &[&files[2], "--cluster", "blue"]);
    named.expect(&[("stored", 2)]);
    assert_eq!(serve.search(&reader, &[("source", "//k8s/blue")]).len(), 2);
}

#[test]
fn a_file_failing_the_same_way_on_every_line_is_said_once() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("audit.ndjson");
    let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","stage":"ResponseComplete","verb":"get","user":{"username":"system:kube-proxy"},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"}"#;
    std::fs::write(&file, format!("{line}\n").repeat(37)).expect("write");
    let ran = ingest(&serve.base, Some(&producer), &[&file.display().to_string()]);
    assert!(!ran.success);
    ran.expect(&[("records", 37), ("bad_lines", 37), ("stored", 0)]);
    assert_eq!(
        ran.stderr.matches("the audit event has no auditID").count(),
        2,
        "once, and once counted: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("audit.ndjson:1: bad line: the audit event has no auditID"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(
            "audit.ndjson: the same on 36 more lines after line 1: bad line: the audit event has no auditID"
        ),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.problems.len(), 37, "scripts still get every line");

    // Events the server rejects all the same way: said once too, with the first one's id.
    let rejected = dir.path().join("events.ndjson");
    let event = |n: u32| {
        json!({"id": format!("evt-{n}"), "source": "//crm.example.com/support-api", "type": "auth.logout.done",
               "action": "logout", "time": "2024-05-01T10:00:00Z", "actor": {"id": "agent-23"},
               "targets": [{"type": "service", "id": "support-api"}], "outcome": "success",
               "origin": {"service": "support-api"}, "severity": "urgent"})
    };
    let lines: Vec<String> = (1..=5).map(|n| event(n).to_string()).collect();
    std::fs::write(&rejected, lines.join("\n")).expect("write");
    let ran = ingest(&serve.base, Some(&producer), &[&rejected.display().to_string()]);
    ran.expect(&[("records", 5), ("rejected", 5), ("stored", 0)]);
    assert_eq!(ran.stderr.matches(": rejected (id ").count(), 1, "{}", ran.stderr);
    ran.says(&[
        "events.ndjson:1: rejected (id \"evt-1\"): severity (enum)",
        "events.ndjson: the same on 4 more lines after line 1: rejected: severity (enum)",
    ]);
}

#[test]
fn cloudtrail_insights_digests_and_the_records_that_leaked_or_lost_values() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let investigator = serve.key("investigator");
    let files =
        [path("cloudtrail-edge.ndjson"), path("cloudtrail-insights.json"), path("cloudtrail-digest.json")];
    let ran = ingest(&serve.base, Some(&producer), &[&files[0], &files[1], &files[2]]);
    assert!(ran.success, "a digest file is skipped, not a problem: {ran:#?}");
    ran.expect(&[("records", 8), ("stored", 7), ("skipped", 1), ("rejected", 0), ("bad_lines", 0)]);
    assert_eq!(ran.stderr.matches("skipped: a CloudTrail digest file").count(), 1, "{}", ran.stderr);
    let digest = ingest(&serve.base, Some(&producer), &[&files[2], "--format", "cloudtrail"]);
    assert!(digest.success);
    digest.expect(&[("records", 1), ("skipped", 1), ("bad_lines", 0)]);

    let us = [("source", "//aws.amazon.com/cloudtrail/123456789012/us-east-1")];
    let events = serve.search(&reader, &us);
    no_personal(
        &events,
        &["test@example.com", "AKIA6ON6E4XTESTKEY01", "grace", "heidi", "departed.employee", "198.51.100.7"],
    );

    let batch = of_type(&events, "aws.secretsmanager.batchgetsecretvalue");
    assert_eq!(
        (target(batch, 0), target(batch, 1)),
        (
            pair(
                "AWS::SecretsManager::Secret",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/orders/db-AbCdEf"
            ),
            pair(
                "AWS::SecretsManager::Secret",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/orders/api-key-GhIjKl"
            )
        ),
        "the secrets named in requestParameters, not the service"
    );
    let seen = serve.search_personal(&investigator, &us);
    let deleted = of_type(&seen, "aws.iam.deleteuser");
    let gone = format!("arn:aws:iam::123456789012:user/{}", ps("departed.employee"));
    assert_eq!(
        deleted["changes"][0],
        json!({"field": "", "before": {"type": "AWS::IAM::User", "id": gone}, "after": null})
    );
    for change in deleted["changes"].as_array().expect("changes") {
        assert!(
            change.get("before").is_some() || change.get("after").is_some(),
            "a change with no value: {change}"
        );
    }
    let tagged = of_type(&events, "aws.iam.taguser");
    let reason = tagged["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("AccessDenied: User: arn:aws:iam::123456789012:user/ps_"), "{reason}");
    assert!(reason.contains(&ps("heidi")), "{reason}");
    let login = of_type(&events, "aws.signin.consolelogin");
    assert_eq!(
        (&login["actor"]["type"], &login["actor"]["auth"]["method"]),
        (&json!("user"), &json!("console"))
    );
    assert_eq!(
        login["actor"]["id"],
        format!("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_1a2b3c/{}", ps("grace"))
    );
    let caller = of_type(&events, "aws.sts.getcalleridentity");
    assert_eq!(caller["actor"]["session"], ps("AKIA6ON6E4XTESTKEY01"));
    let insight = serve.event(&reader, &us, "i7000001-0000-4000-8000-000000000001");
    assert_eq!(
        (&insight["type"], &insight["actor"]["type"]),
        (&json!("aws.cloudtrail.insight.apicallrateinsight"), &json!("system"))
    );
    assert_eq!(target(&insight, 0), pair("aws.api", "iam.amazonaws.com:CreateAccessKey"));
    assert_eq!(insight["metadata"]["insight_state"], "Start");

    // What was sealed is there for an investigator: the Email tag, the session name, the user.
    let tagged = of_type(&seen, "aws.iam.taguser");
    let request = &tagged["changes"][0];
    assert_eq!(request["field"], "/request");
    assert_eq!(request["after"]["tags"][0], json!({"key": "Email", "value": "heidi@example.com"}));
    assert_eq!(of_type(&seen, "aws.signin.consolelogin")["actor"]["display"], "grace");
    assert_eq!(of_type(&seen, "aws.iam.deleteuser")["targets"][0]["display"], "departed.employee");
}

#[test]
fn okta_system_log_events_are_mapped() {
    let personal =
        ["ivan@example.com", "Ivan Petrov", "Judy Admin", "kate@example.com", "203.0.113.99", "102abcDEF"];
    let Imported { serve, reader, investigator, events } = import_one(
        "okta-system-log.json",
        "okta",
        9,
        "//okta/acme.okta.com",
        &personal,
        &["--okta-org", "acme.okta.com"],
    );
    let okta = [("source", "//okta/acme.okta.com")];
    let failed = serve.event(&reader, &okta, "0a1b2c3d-0001-11ef-9a1b-0242ac120002");
    assert_eq!(
        (&failed["action"], &failed["outcome"], &failed["reason"]),
        (&json!("login"), &json!("failure"), &json!("INVALID_CREDENTIALS"))
    );
    assert_eq!(
        (&failed["actor"]["id"], &failed["actor"]["auth"]["method"]),
        (&json!("00u1ivan0000000000x7"), &json!("password"))
    );
    let mfa = of_type(&events, "okta.user.authentication.auth_via_mfa");
    assert_eq!(mfa["actor"]["auth"]["mfa"], true);
    let added = of_type(&events, "okta.group.user_membership.add");
    assert_eq!(
        (&added["action"], target(added, 1)),
        (&json!("grant"), pair("okta.usergroup", "00g1finance0000000x7"))
    );
    let removed = of_type(&events, "okta.application.user_membership.remove");
    assert_eq!((&removed["action"], &removed["actor"]["type"]), (&json!("revoke"), &json!("system")));
    assert_eq!(of_type(&events, "okta.user.lifecycle.deactivate")["action"], "update");
    assert_eq!(of_type(&events, "okta.policy.evaluate_sign_on")["action"], "other");
    assert_eq!(of_type(&events, "okta.user.session.end")["action"], "logout");
    let seen = serve.search_personal(&investigator, &okta);
    let created = of_type(&seen, "okta.user.lifecycle.create");
    assert_eq!(created["targets"][0]["display"], "Kate Lin");
    assert_eq!(created["changes"][0]["after"]["id"], "00u1kate0000000000x7");
}

#[test]
fn azure_activity_logs_and_entra_sign_ins_are_mapped() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let investigator = serve.key("investigator");
    let files = [
        path("azure-activity.json"),
        path("azure-activity-records.json"),
        path("entra-signins.json"),
        path("entra-signin-records.ndjson"),
    ];
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let ran = ingest(&serve.base, Some(&producer), &args);
    assert!(ran.success, "{ran:#?}");
    ran.expect(&[("files", 4), ("records", 13), ("stored", 13), ("rejected", 0), ("bad_lines", 0)]);
    ingest(&serve.base, Some(&producer), &args).expect(&[("stored", 0), ("duplicates", 13)]);

    let azure = [("source", "//azure/0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9")];
    let events = serve.search(&reader, &azure);
    assert_eq!(events.len(), 8);
    no_personal(&events, &["mallory@contoso.com", "Mallory Ng", "niaj@contoso.com", "198.51.100.61"]);
    let granted = of_type(&events, "azure.microsoft_authorization.roleassignments.write");
    assert_eq!(
        (&granted["action"], &granted["actor"]["id"]),
        (&json!("grant"), &json!("entra:5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"))
    );
    let started = serve.event(&reader, &azure, "1a2b3c4d-0002-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!((&started["action"], &started["outcome"]), (&json!("update"), &json!("unknown")));
    let refused = serve.event(&reader, &azure, "1a2b3c4d-0005-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!((&refused["action"], &refused["outcome"]), (&json!("delete"), &json!("failure")));
    assert!(refused["reason"].as_str().is_some_and(|reason| reason.contains("ScopeLocked")), "{refused:#}");
    let keys_read = of_type(&events, "azure.microsoft_storage.storageaccounts.listkeys.action");
    assert_eq!((&keys_read["action"], &keys_read["actor"]["type"]), (&json!("read"), &json!("service")));
    let vault: Vec<&Value> =
        events.iter().filter(|event| event["type"] == "azure.microsoft_keyvault.vaults.write").collect();
    assert_eq!(vault.len(), 2, "a diagnostic record per stage");
    assert!(
        vault.iter().all(|event| event["id"].as_str().is_some_and(|id| id.starts_with("az_"))),
        "{vault:#?}"
    );
    assert_eq!(target(vault[0], 0).0, "MICROSOFT.KEYVAULT/VAULTS");

    let entra = serve.search(&reader, &[("action", "login")]);
    assert_eq!(entra.len(), 5);
    no_personal(
        &entra,
        &["olivia@contoso.com", "Olivia Wilde", "peggy@contoso.com", "OLIVIA-LAPTOP", "203.0.113.120"],
    );
    let olivia = "entra:3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";
    let signed_in =
        entra.iter().find(|event| event["id"] == "66ea54eb-6301-4ee5-be62-ff5a759b0100").expect("sign-in");
    assert_eq!((&signed_in["type"], &signed_in["actor"]["id"]), (&json!("entra.signin"), &json!(olivia)));
    assert_eq!(signed_in["actor"]["auth"]["mfa"], true);
    let bad_password =
        entra.iter().find(|event| event["id"] == "66ea54eb-6301-4ee5-be62-ff5a759b0101").expect("failure");
    assert_eq!(
        bad_password["reason"],
        "50126: Error validating credentials due to invalid username or password."
    );
    let quiet =
        entra.iter().find(|event| event["type"] == "entra.signin.noninteractive").expect("non-interactive");
    assert_eq!(quiet["source"], "//login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47");
    let app = entra
        .iter()
        .find(|event| event["type"] == "entra.signin.serviceprincipal")
        .expect("service principal");
    assert_eq!(app["actor"]["type"], "service");
    let seen = serve.search_personal(&investigator, &[("action", "login")]);
    assert!(seen.iter().any(|event| event["actor"]["display"] == "olivia@contoso.com"), "{seen:#?}");
}

#[test]
fn google_workspace_activities_are_mapped_one_event_per_activity_event() {
    let personal = ["sybil@acme.example", "rupert.admin@acme.example", "trent@acme.example", "203.0.113.150"];
    let Imported { serve, investigator, events, .. } = import_one(
        "workspace-admin.json",
        "workspace",
        8,
        "//workspace.google.com/C03az79cb",
        &personal,
        &[],
    );
    let workspace = [("source", "//workspace.google.com/C03az79cb")];
    let created = of_type(&events, "gworkspace.admin.create_user");
    assert_eq!((&created["action"], &created["actor"]["type"]), (&json!("create"), &json!("admin")));
    assert_eq!(created["actor"]["id"], "google:104372938210982734561");
    assert_eq!(target(created, 0), pair("gworkspace.user", &ps("sybil@acme.example")));
    let member = of_type(&events, "gworkspace.admin.add_group_member");
    assert!(member["id"].as_str().is_some_and(|id| id.ends_with("/1")), "{member:#}");
    assert_eq!(
        (&member["action"], target(member, 1)),
        (&json!("grant"), pair("gworkspace.group", "finance@acme.example"))
    );
    let role = of_type(&events, "gworkspace.admin.assign_role");
    assert!(
        role["id"].as_str().is_some_and(|id| id.ends_with("/2")),
        "the activity's second event: {role:#}"
    );
    assert_eq!(of_type(&events, "gworkspace.admin.suspend_user")["actor"]["type"], "service");
    let failed = of_type(&events, "gworkspace.login.login_failure");
    assert_eq!(
        (&failed["outcome"], &failed["reason"]),
        (&json!("failure"), &json!("login_failure_invalid_password"))
    );
    assert_eq!(of_type(&events, "gworkspace.login.login_success")["action"], "login");

    let seen = serve.search_personal(&investigator, &workspace);
    let deleted = of_type(&seen, "gworkspace.admin.delete_user");
    assert_eq!(deleted["changes"][0]["before"]["id"], ps("trent@acme.example"));
    assert_eq!(deleted["changes"][0]["after"], Value::Null);
    let setting = of_type(&seen, "gworkspace.admin.change_application_setting");
    assert_eq!(
        setting["changes"],
        json!([{"field": "/Sharing outside of acme.example", "before": "ALLOWED", "after": "NOT_ALLOWED"}])
    );
}

#[test]
fn pgaudit_csv_logs_are_mapped_and_postgres_own_lines_skipped() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let investigator = serve.key("investigator");
    let file = path("postgresql-pgaudit.csv");
    let ran = ingest(&serve.base, Some(&producer), &[&file]);
    assert!(ran.success, "PostgreSQL's own lines are skipped, not problems: {ran:#?}");
    ran.expect(&[("records", 12), ("stored", 10), ("skipped", 2), ("bad_lines", 0), ("rejected", 0)]);
    assert_eq!(
        ran.stderr.matches("PostgreSQL's own log line").count(),
        2,
        "said once, then counted: {}",
        ran.stderr
    );
    ingest(&serve.base, Some(&producer), &[&file, "--format", "pgaudit"])
        .expect(&[("duplicates", 10), ("skipped", 2)]);

    let shop = [("source", "//postgresql/shop")];
    let events = serve.search(&reader, &shop);
    no_personal(&events, &["walter", "xavier@example.com", "+49 30 1234567", "10.0.3.7", "SELECT name"]);
    let select = serve.event(&reader, &shop, "pg/663de2f4.1a2b/2");
    assert_eq!((&select["type"], &select["action"]), (&json!("pg.read.select"), &json!("read")));
    assert_eq!(select["time"], "2024-05-10T09:00:01.120000Z");
    assert_eq!(
        (&select["actor"]["id"], target(&select, 0)),
        (&json!(ps("walter")), pair("pg.table", "shop.public.customers"))
    );
    assert_eq!(of_type(&events, "pg.write.insert")["action"], "create");
    assert_eq!(of_type(&events, "pg.read.copy")["action"], "export");
    let dropped = of_type(&events, "pg.ddl.drop_table");
    assert_eq!((&dropped["action"], &dropped["actor"]["id"]), (&json!("delete"), &json!("postgres")));
    assert_eq!(of_type(&events, "pg.role.grant")["action"], "grant");
    let function = of_type(&events, "pg.function.execute");
    assert_eq!(
        (&function["action"], target(function, 0)),
        (&json!("other"), pair("pg.function", "shop.public.refund_total"))
    );
    assert_eq!(of_type(&events, "pg.misc.vacuum")["action"], "other");
    assert_eq!(of_type(&events, "pg.misc_set.set")["origin"]["host"], "db-client.internal");

    let seen = serve.search_personal(&investigator, &shop);
    let select = seen.iter().find(|event| event["id"] == "pg/663de2f4.1a2b/2").expect("the select");
    assert_eq!(
        select["changes"],
        json!([{"field": "/request", "after": {"statement": "SELECT name, email FROM customers WHERE email = 'xavier@example.com';"}}])
    );
    assert_eq!(of_type(&seen, "pg.write.insert")["changes"][1]["after"]["parameter"], "42,19.90");

    // A log in a named time zone cannot be placed in time: every line says how to fix it, once.
    let text = std::fs::read_to_string(data("postgresql-pgaudit.csv")).expect("read");
    let dir = tempfile::tempdir().expect("temp dir");
    let zoned = dir.path().join("postgresql-zoned.csv");
    std::fs::write(&zoned, text.replace(" UTC,walter", " CEST,walter")).expect("write");
    let bad = ingest(&serve.base, Some(&producer), &[&zoned.display().to_string()]);
    assert!(!bad.success);
    bad.expect(&[("bad_lines", 6), ("skipped", 2)]);
    assert_eq!(bad.stderr.matches("set log_timezone = 'UTC'").count(), 6, "{}", bad.stderr);
}

#[test]
fn the_pseudonym_key_is_made_once_and_a_bad_key_file_is_refused() {
    let serve = Serve::fresh();
    let (producer, reader) = (serve.key("producer"), serve.key("reader"));
    let config = tempfile::tempdir().expect("temp dir");
    let run = |file: &str, extra: &[&str]| {
        let output = Command::new(EVIDENT)
            .args(["ingest", file, "--url", &serve.base, "--key", &producer, "--json"])
            .args(extra)
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("EVIDENT_PSEUDONYM_KEY")
            .stdin(Stdio::null())
            .output()
            .expect("evident ingest runs");
        (output.status.success(), String::from_utf8(output.stderr).expect("UTF-8"))
    };
    let file = path("k8s-v1beta1-timestamp.ndjson");
    let (success, stderr) = run(&file, &[]);
    assert!(success, "{stderr}");
    let made = config.path().join("evident/pseudonym.key");
    assert!(stderr.contains(&format!("made the pseudonym key {}", made.display())), "{stderr}");
    let key = Pseudonyms::load_or_create(&made).expect("the key made").0;
    let read = of_type(&serve.search(&reader, &[("source", "//k8s/kubernetes")]), "k8s.secrets.get").clone();
    assert_eq!(read["actor"]["id"], key.of("alice"));
    let (success, stderr) = run(&file, &[]);
    assert!(success && !stderr.contains("made the pseudonym key"), "the same key again: {stderr}");

    // Another key gives other pseudonyms: the same ids with other content are conflicts, never stored.
    let (success, stderr) = run(&file, &["--pseudonym-key", &data("pseudonym.key").display().to_string()]);
    assert!(!success);
    assert!(stderr.contains("3 conflicts"), "{stderr}");

    // The pseudonym of a person, to search for their events; never from a key made to answer.
    let pseudonym_of = |extra: &[&str]| {
        Command::new(EVIDENT)
            .args(["ingest", "--pseudonym-of", "alice", "--pseudonym-of", "bob@example.com"])
            .args(extra)
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("EVIDENT_PSEUDONYM_KEY")
            .output()
            .expect("evident ingest runs")
    };
    let printed = pseudonym_of(&[]);
    assert!(printed.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&printed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"value": "alice", "pseudonym": key.of("alice")}),
            json!({"value": "bob@example.com", "pseudonym": key.of("bob@example.com")})
        ]
    );
    let elsewhere = config.path().join("no-such.key");
    let refused = pseudonym_of(&["--pseudonym-key", &elsewhere.display().to_string()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("no pseudonym key at"), "{stderr}");
    assert!(!elsewhere.exists(), "no key is made to answer");

    std::fs::write(&made, "not a key\n").expect("write");
    let (success, stderr) = run(&file, &[]);
    assert!(!success);
    assert!(stderr.contains("does not hold a pseudonym key (64 hex digits)"), "{stderr}");
}

#[test]
fn broken_records_of_every_format_are_bad_lines_that_say_what_is_missing() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let dir = tempfile::tempdir().expect("temp dir");
    let aks_broken =
        json!({"category": "kube-audit", "properties": {"log": "{not json"}, "time": "2024-05-04T08:00:00Z"});
    let gke_broken = json!({"insertId": "x", "timestamp": "2024-05-03T11:00:00Z", "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "k8s.io",
        "methodName": "io.k8s.core.v1.secrets.get"}});
    let cases: &[(&str, Value, &str)] = &[
        (
            "okta",
            json!({"uuid": "u1", "published": "2024-05-06T08:00:00Z", "eventType": "user.session.start", "actor": {}}),
            "not an Okta LogEvent: no actor.id",
        ),
        (
            "okta",
            json!({"uuid": "u2", "published": "yesterday", "eventType": "user.session.start", "actor": {"id": "00u1"}}),
            "published is not an RFC 3339 time",
        ),
        (
            "azure-activity",
            json!({"eventDataId": "e1", "operationName": {"value": "Microsoft.Compute/virtualMachines/write"}}),
            "no eventTimestamp (or time)",
        ),
        (
            "entra-signin",
            json!({"id": "s1", "createdDateTime": "2024-05-08T07:30:00Z", "status": {"errorCode": 0}, "appId": "a"}),
            "names no user (userId) and no service principal",
        ),
        (
            "workspace",
            json!({"kind": "admin#reports#activity", "id": {"time": "2024-05-09T09:00:00Z", "uniqueQualifier": "1", "applicationName": "admin"}, "events": []}),
            "the activity holds no events",
        ),
        (
            "workspace",
            json!({"kind": "admin#reports#activity", "id": {"applicationName": "admin"}, "events": [{"name": "CREATE_USER"}]}),
            "not a Workspace activity: no id.time",
        ),
        ("k8s", aks_broken, "properties.log of the AKS record is not a JSON audit event"),
        ("k8s", gke_broken, "no protoPayload.authenticationInfo.principalEmail"),
        (
            "cloudtrail",
            json!({"eventVersion": "1.09", "insightDetails": {}, "eventTime": "2024-05-05T11:00:00Z"}),
            "not a CloudTrail record: no eventID",
        ),
        (
            "github",
            json!({"action": "repo.create", "actor": "octocat", "created_at": "last week"}),
            "no usable @timestamp or created_at",
        ),
    ];
    for (n, (format, record, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("broken-{n}.ndjson"));
        std::fs::write(&file, format!("{record}\n")).expect("write");
        let ran = ingest(&serve.base, Some(&producer), &[&file.display().to_string(), "--format", format]);
        assert!(!ran.success, "{format}: {ran:#?}");
        ran.expect(&[("records", 1), ("bad_lines", 1), ("stored", 0)]);
        let message = ran.problems[0]["message"].as_str().unwrap_or("");
        assert!(message.contains(expected), "{format}: {expected:?} in {message:?}");
    }

    // pgaudit: a line too short, and an AUDIT record missing its fields.
    let csv_log = dir.path().join("postgresql-broken.csv");
    let row = |message: &str| {
        let mut cells = vec![""; 26];
        let quoted = format!("\"{}\"", message.replace('"', "\"\""));
        cells[0] = "2024-05-10 09:00:01.120 UTC";
        cells[1] = "walter";
        cells[5] = "663de2f4.1a2b";
        cells[6] = "2";
        cells[13] = &quoted;
        cells.join(",")
    };
    std::fs::write(
        &csv_log,
        format!(
            "{}\n{}\n2024-05-10 09:00:02 UTC,walter\n",
            row("AUDIT: SESSION,1,1,READ"),
            row("AUDIT: SESSION,1,1,READ")
        ),
    )
    .expect("write");
    let ran = ingest(&serve.base, Some(&producer), &[&csv_log.display().to_string()]);
    assert!(!ran.success);
    ran.expect(&[("records", 3), ("bad_lines", 3), ("stored", 0)]);
    ran.says(&[
        "the pgaudit record has 4 fields, expected AUDIT_TYPE, STATEMENT_ID",
        "the same on 1 more line after line 1",
        "the line has 2 columns; a PostgreSQL CSV log line has at least 23",
    ]);

    // A file of one format asked as another.
    let asked =
        ingest(&serve.base, Some(&producer), &[&path("okta-system-log.json"), "--format", "workspace"]);
    assert!(!asked.success);
    asked.says(&["okta-system-log.json does not look like Google Workspace audit: expected"]);
    let not_a_log = ingest(&serve.base, Some(&producer), &[&path("erp-audit.csv"), "--format", "pgaudit"]);
    assert!(!not_a_log.success);
    not_a_log.says(&[
        "erp-audit.csv does not look like PostgreSQL pgaudit CSV log: expected a PostgreSQL CSV log",
    ]);
}

#[test]
fn every_layout_of_the_same_records_makes_the_same_events() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let dir = tempfile::tempdir().expect("temp dir");
    // (sample, where its records are, extra flags): imported as written, then as NDJSON and as a
    // plain JSON array of the same records, which must all be duplicates.
    let samples: &[(&str, &str, &[&str])] = &[
        ("okta-system-log.json", "", &["--okta-org", "acme.okta.com"]),
        ("workspace-admin.json", "/items", &[]),
        ("k8s-aks-records.json", "/records", &[]),
        ("entra-signins.json", "/value", &[]),
        ("azure-activity-records.json", "/records", &[]),
        ("cloudtrail-insights.json", "/Records", &[]),
    ];
    for (name, pointer, extra) in samples {
        let file = path(name);
        let first = ingest(&serve.base, Some(&producer), &[&[file.as_str()], &extra[..]].concat());
        assert!(first.success, "{name}: {first:#?}");
        let stored = first.count("stored");
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
        let records = document.pointer(pointer).and_then(Value::as_array).expect("records").clone();
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        let ndjson = dir.path().join(format!("{name}.ndjson"));
        std::fs::write(&ndjson, lines.join("\n") + "\n").expect("write");
        let array = dir.path().join(format!("{name}.array.json"));
        std::fs::write(&array, serde_json::to_string_pretty(&records).expect("JSON")).expect("write");
        for other in [ndjson, array] {
            let again = ingest(
                &serve.base,
                Some(&producer),
                &[&[other.to_str().expect("UTF-8")], &extra[..]].concat(),
            );
            assert!(again.success, "{name} as {}: {again:#?}", other.display());
            again.expect(&[("stored", 0), ("duplicates", stored)]);
        }
    }
}
