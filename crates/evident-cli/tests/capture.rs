//! `evident capture postgres` against a real PostgreSQL and a real `evident serve`: what the
//! triggers write (excluded and hashed columns, actor and reason from `SET LOCAL`), the drain into
//! the log, `--uninstall`, and the crash test (the capture SIGKILLed mid-drain loses and duplicates
//! nothing). Each test works in a database of its own, dropped at the end.
//!
//! Needs the PostgreSQL server of `EVIDENT_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); fails when it does not answer.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{EVIDENT, Serve};
use evident_client::Client;
use evident_wire::api::SearchParams;
use tokio::runtime::Runtime;

fn admin_url() -> String {
    std::env::var("EVIDENT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own for one test.
struct TestDb {
    name: String,
    url: String,
    runtime: Runtime,
    client: tokio_postgres::Client,
}

fn connect(runtime: &Runtime, url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        runtime.block_on(tokio_postgres::connect(url, tokio_postgres::NoTls)).unwrap_or_else(|err| {
            panic!("PostgreSQL at {url} does not answer (set EVIDENT_TEST_DATABASE_URL): {err}")
        });
    runtime.spawn(connection);
    client
}

impl TestDb {
    fn new(tag: &str) -> TestDb {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let admin = connect(&runtime, &admin_url());
        let name = format!("capture_{tag}_{}", std::process::id());
        runtime
            .block_on(admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .unwrap();
        runtime.block_on(admin.batch_execute(&format!("CREATE DATABASE {name}"))).unwrap();
        let url = match admin_url().rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("no database in {}", admin_url()),
        };
        let client = connect(&runtime, &url);
        TestDb { name, url, runtime, client }
    }

    fn sql(&self, text: &str) {
        self.runtime.block_on(self.client.batch_execute(text)).unwrap_or_else(|err| panic!("{text}: {err}"));
    }

    fn count(&self, text: &str) -> i64 {
        self.runtime
            .block_on(self.client.query_one(text, &[]))
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .get(0)
    }

    fn text(&self, text: &str) -> String {
        self.runtime
            .block_on(self.client.query_one(text, &[]))
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = connect(&self.runtime, &admin_url());
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = self.runtime.block_on(admin.batch_execute(&drop));
    }
}

fn capture(serve: &Serve, key: &str, db: &TestDb, args: &[&str]) -> Command {
    let mut command = Command::new(EVIDENT);
    command
        .args(["capture", "postgres", "--database-url", &db.url])
        .args(args)
        .env("EVIDENT_URL", &serve.base)
        .env("EVIDENT_API_KEY", key)
        .stdin(Stdio::null());
    command
}

fn run_ok(mut command: Command) -> Output {
    let output = command.output().expect("evident runs");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The events of `source` in the log (oldest first).
fn logged(serve: &Serve, source: &str) -> Vec<serde_json::Value> {
    let client = Client::new(&serve.base, Some(serve.admin.clone()));
    let mut events = Vec::new();
    let mut params = SearchParams {
        source: Some(source.into()),
        order: Some("oldest".into()),
        limit: Some(1000),
        ..SearchParams::default()
    };
    loop {
        let page = client.search(&params).expect("search");
        events.extend(page.events.into_iter().map(|view| view.event));
        match page.next_cursor {
            Some(cursor) => params.cursor = Some(cursor),
            None => return events,
        }
    }
}

const CUSTOMERS: &str = "CREATE TABLE customers (id int PRIMARY KEY, customer_ref text NOT NULL, email text, \
                         password_hash text, ssn text)";

/// A fresh server, a producer key, and a database of its own with a `customers` table.
fn setup(tag: &str) -> (Serve, String, TestDb) {
    let serve = Serve::fresh();
    let key = serve.key("producer");
    let db = TestDb::new(tag);
    db.sql(CUSTOMERS);
    (serve, key, db)
}

#[test]
fn changes_are_captured_with_actor_and_reason_and_uninstall_removes_everything() {
    let (serve, key, db) = setup("flow");
    let flags = [
        "--table",
        "customers:customer_ref",
        "--personal",
        "customers.email",
        "--exclude",
        "customers.password_hash",
        "--hash",
        "customers.ssn",
        "--once",
    ];
    run_ok(capture(&serve, &key, &db, &flags));
    db.sql(
        "BEGIN; SET LOCAL evident.actor = 'alice'; SET LOCAL evident.reason = 'onboarding';
         INSERT INTO customers VALUES (1, 'cust-1', 'a@example.com', 'x', '123-45-6789'); COMMIT;
         BEGIN; SET LOCAL evident.actor = 'bob';
         UPDATE customers SET email = 'b@example.com' WHERE id = 1;
         UPDATE customers SET password_hash = 'y' WHERE id = 1; COMMIT;
         BEGIN; DELETE FROM customers WHERE id = 1; COMMIT;
         BEGIN; INSERT INTO customers VALUES (2, 'cust-2', NULL, NULL, NULL); ROLLBACK;",
    );
    // The insert, the email update and the delete; not the excluded-only update nor the rollback.
    assert_eq!(db.count("SELECT count(*) FROM evident_capture.outbox"), 3);
    let inserted = db.text("SELECT after::text FROM evident_capture.outbox WHERE op = 'insert'");
    assert!(!inserted.contains("password_hash") && !inserted.contains("123-45-6789"), "{inserted}");
    assert!(inserted.contains("\"ssn\": \"sha256:"), "{inserted}");

    let output = run_ok(capture(&serve, &key, &db, &["--once"]));
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 changes sent"), "{output:?}");
    assert_eq!(db.count("SELECT count(*) FROM evident_capture.outbox"), 0);
    let events = logged(&serve, &format!("//postgres/{}", db.name));
    let summary: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            let reason = e["reason"].as_str().unwrap_or("-");
            (
                e["type"].as_str().unwrap(),
                e["actor"]["id"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
                reason,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("customers.row.created", "alice", "cust-1", "onboarding"),
            ("customers.row.updated", "bob", "cust-1", "-"),
            ("customers.row.deleted", "postgres:postgres", "cust-1", "-"),
        ]
    );
    assert_eq!(events[1]["data_classes"], serde_json::json!(["pii"]));
    assert_eq!(events[0]["targets"][0]["id"], "1");
    let fields: Vec<&str> =
        events[0]["changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["/customer_ref", "/email", "/id", "/ssn"]);

    // Unsent changes block --uninstall; --force discards them.
    db.sql("INSERT INTO customers VALUES (3, 'cust-3', NULL, NULL, NULL)");
    let refused = capture(&serve, &key, &db, &["--uninstall"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("1 changes not yet sent"), "{refused:?}");
    run_ok(capture(&serve, &key, &db, &["--uninstall", "--force"]));
    assert_eq!(db.count("SELECT count(*) FROM pg_namespace WHERE nspname = 'evident_capture'"), 0);
    assert_eq!(db.count("SELECT count(*) FROM pg_trigger WHERE tgname = 'evident_capture'"), 0);
    db.sql("INSERT INTO customers VALUES (4, 'cust-4', NULL, NULL, NULL)");
    let output = run_ok(capture(&serve, &key, &db, &["--uninstall"]));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not installed"), "{output:?}");
}

#[test]
fn bad_flags_are_refused_before_anything_is_installed() {
    let (serve, key, db) = setup("flags");
    db.sql("CREATE TABLE notes (body text)");
    let check = |args: &[&str], expect: &str| {
        let output = capture(&serve, &key, &db, args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    };
    check(&["--table", "nowhere", "--once"], "--table public.nowhere: no such table");
    check(&["--table", "notes", "--once"], "no primary key");
    check(&["--table", "customers:nope", "--once"], "no column \"nope\"");
    check(&["--table", "customers", "--hash", "orders.x", "--once"], "--hash orders.x: no --table orders");
    check(&["--once"], "capture is not installed");
    assert_eq!(db.count("SELECT count(*) FROM pg_namespace WHERE nspname = 'evident_capture'"), 0);
}

#[test]
fn a_capture_killed_mid_drain_loses_and_duplicates_nothing() {
    let (serve, key, db) = setup("crash");
    run_ok(capture(&serve, &key, &db, &["--table", "customers:customer_ref", "--once"]));
    let rows = 400;
    db.sql(&format!(
        "INSERT INTO customers SELECT n, 'cust-' || n, NULL, NULL, NULL FROM generate_series(1, {rows}) n"
    ));
    for round in 0..3 {
        let mut child = capture(&serve, &key, &db, &["--batch", "7"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once it has drained part of the outbox (a different share each round).
        let left = rows - (round + 1) * 100;
        let deadline = Instant::now() + Duration::from_secs(60);
        while db.count("SELECT count(*) FROM evident_capture.outbox") > left {
            assert!(Instant::now() < deadline, "the capture does not drain");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        db.sql(&format!("UPDATE customers SET email = 'r{round}@example.com' WHERE id = {}", round + 1));
    }
    run_ok(capture(&serve, &key, &db, &["--once"]));
    assert_eq!(db.count("SELECT count(*) FROM evident_capture.outbox"), 0);
    let events = logged(&serve, &format!("//postgres/{}", db.name));
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        *by_id.entry(event["metadata"]["outbox_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(by_id.len() as i64, rows + 3, "every change of the outbox is in the log");
    assert!(by_id.values().all(|&count| count == 1), "no change is logged twice");
}

#[test]
fn an_application_role_with_no_capture_privilege_is_captured_and_kept_out_of_the_outbox() {
    let (serve, key, db) = setup("role");
    let role = format!("capture_app_{}", std::process::id());
    db.sql(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
         GRANT SELECT, INSERT, UPDATE, DELETE ON customers TO {role}"
    ));
    run_ok(capture(&serve, &key, &db, &["--table", "customers:customer_ref", "--once"]));
    let mut app_config: tokio_postgres::Config = db.url.parse().expect("a database URL");
    app_config.user(&role);
    let (app, connection) =
        db.runtime.block_on(app_config.connect(tokio_postgres::NoTls)).expect("the role connects");
    db.runtime.spawn(connection);
    let write = "BEGIN; SET LOCAL evident.actor = 'carol'; INSERT INTO customers VALUES (9, 'cust-9', NULL, NULL, NULL); COMMIT;";
    db.runtime.block_on(app.batch_execute(write)).expect("the application writes as before");
    let peek = db.runtime.block_on(app.query("SELECT * FROM evident_capture.outbox", &[]));
    assert!(peek.is_err(), "the application role may not read the outbox");
    drop(app);
    assert_eq!(
        db.text("SELECT actor || ' ' || db_user FROM evident_capture.outbox"),
        format!("carol {role}")
    );
    run_ok(capture(&serve, &key, &db, &["--once"]));
    assert_eq!(logged(&serve, &format!("//postgres/{}", db.name)).len(), 1);
    run_ok(capture(&serve, &key, &db, &["--uninstall"]));
    db.sql(&format!("REVOKE ALL ON customers FROM {role}; DROP ROLE {role}"));
}
