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
