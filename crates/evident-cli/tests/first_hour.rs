//! The first hour of a new user, with the real binary against a real `evident serve`: help without
//! internal words and on every flag, one parser for every time flag (errors naming the flag),
//! findings with their real time, no panic on a closed pipe, `search` without Evident's own events
//! by default, `timeline` and `history`, one `serve` per data directory, a revoked key told so,
//! no colour in a redirected log, the store's files 0600, and the break-glass global admin key.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{EVIDENT, Schema, Serve, TIMEOUT, client, database_url, last_working_noon, lines};
use serde_json::{Value, json};

/// Runs `evident ARGS --url URL --key KEY` (no settings from the environment).
fn evident(serve: &Serve, key: &str, args: &[&str]) -> Output {
    Command::new(EVIDENT)
        .args(args)
        .args(["--url", &serve.base, "--key", key])
        .env_remove("EVIDENT_URL")
        .env_remove("EVIDENT_API_KEY")
        .env_remove("EVIDENT_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("evident runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "failed: {}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// An event about customer `cust-42`, changing its e-mail.
fn post_event(serve: &Serve, id: &str, time: &str) {
    let key = serve.key("producer");
    let event = json!({
        "id": id, "source": "//crm.example.com/support-api", "type": "customer.record.updated",
        "action": "update", "time": time, "actor": {"id": "agent-7", "type": "user"},
        "subject": "cust-42", "targets": [{"type": "customer", "id": "cust-42"}], "outcome": "success",
        "reason": "customer asked to fix the e-mail",
        "changes": [{"field": "/email", "before": "old@example.com", "after": "new@example.com"}],
        "origin": {"ip": "192.0.2.7", "service": "crm"},
    });
    let (status, body) = serve.post(&key, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
}

/// The subcommand paths of `evident` (`["findings", "list"]`, ...), read from its help.
fn commands(path: &[&str]) -> Vec<Vec<String>> {
    let output = Command::new(EVIDENT).args(path).arg("--help").output().expect("evident runs");
    let help = text(&output.stdout);
    let mut found = vec![path.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()];
    let Some(list) = help.split("Commands:\n").nth(1) else { return found };
    for line in list.lines().take_while(|line| line.starts_with("  ")) {
        let name = line.split_whitespace().next().expect("a command name");
        if name != "help" {
            let mut sub: Vec<&str> = path.to_vec();
            sub.push(name);
            found.extend(commands(&sub));
        }
    }
    found
}

#[test]
fn help_says_what_each_flag_is_for_without_internal_words() {
    let top = Command::new(EVIDENT).arg("--help").output().expect("evident runs");
    let top = text(&top.stdout);
    assert!(top.starts_with("Evident: a tamper-evident audit trail"), "{top}");
    let all = commands(&[]);
    assert!(all.len() > 25, "{all:?}");
    let mut bare = Vec::new();
    for path in &all {
        let output = Command::new(EVIDENT).args(path).arg("-h").output().expect("evident runs");
        let help = text(&output.stdout);
        assert!(!help.contains("composition root"), "{path:?}: {help}");
        let Some(options) = help.split("Options:\n").nth(1) else { continue };
        let options: Vec<&str> = options.lines().collect();
        for (i, line) in options.iter().enumerate().filter(|(_, line)| line.trim_start().starts_with('-')) {
            // `  -f, --follow  Keep printing ...`: a flag, two spaces, its help; or, when a
            // command's help is wide, the help on the next line.
            let spec_and_help: Vec<&str> = line.trim().splitn(2, "  ").collect();
            let inline = spec_and_help.len() == 2 && !spec_and_help[1].trim().is_empty();
            let next = options.get(i + 1).map(|next| next.trim()).unwrap_or_default();
            if !inline && (next.is_empty() || next.starts_with('-')) {
                bare.push(format!("{} {}", path.join(" "), line.trim()));
            }
        }
    }
    assert!(bare.is_empty(), "flags without help:\n{}", bare.join("\n"));
}

#[test]
fn map_help_lists_the_csv_fields_without_a_file() {
    let output = Command::new(EVIDENT).args(["ingest", "--map", "help"]).output().expect("evident runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let fields = text(&output.stdout);
    assert!(fields.contains("actor.id") && fields.contains("time"), "{fields}");
    let output = Command::new(EVIDENT).args(["ingest", "--map", "id=Id"]).output().expect("evident runs");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("name the files to ingest"), "{}", text(&output.stderr));
}

#[test]
fn every_time_flag_takes_the_same_forms_and_names_itself_when_refused() {
    let serve = Serve::fresh();
    post_event(&serve, "t-1", &common_now());
    let out = tempfile::tempdir().expect("temp dir");
    let bundle = out.path().join("b");
    let bundle = bundle.to_str().expect("UTF-8");
    for args in [
        vec!["search", "--from", "14d", "--to", "2099-01-01"],
        vec!["export", "--from", "14d", "--output", bundle],
        vec!["findings", "list", "--from", "1d", "--to", "2099-01-01T00:00:00Z"],
        vec!["rules", "backtest", "--rule", "privilege-change", "--from", "7d", "--to", "1s"],
        vec!["history", "customer", "cust-42", "--at", "2w"],
    ] {
        let output = evident(&serve, &serve.admin, &args);
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
    }
    for (args, flag) in [
        (vec!["search", "--from", "yesterday"], "--from"),
        (vec!["export", "--to", "14 days", "--output", bundle], "--to"),
        (vec!["findings", "list", "--from", "1x"], "--from"),
        (vec!["rules", "backtest", "--rule", "r", "--from", "1d", "--to", "noon"], "--to"),
        (vec!["history", "customer", "cust-42", "--at", "then"], "--at"),
        (vec!["tail", "--from", "2026-02-30"], "--from"),
    ] {
        let output = evident(&serve, &serve.admin, &args);
        let err = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(err.contains(&format!("'{flag} <TIME>'")) && err.contains("RFC 3339"), "{args:?}: {err}");
    }
}

/// Now, as RFC 3339.
fn common_now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Waits until `findings list` answers at least one finding; answers them (JSON).
fn findings(serve: &Serve, key: &str) -> Vec<Value> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let found = json_lines(&evident(serve, key, &["findings", "list", "--json"]));
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "no finding within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_auditor_key_is_an_expected_low_finding_shown_with_its_time() {
    let serve = Serve::fresh();
    let _auditor = serve.key("auditor");
    let found = findings(&serve, &serve.admin);
    assert_eq!(found.len(), 1, "{found:?}");
    let finding = &found[0];
    assert_eq!(finding["rule"], "privilege-change");
    assert_eq!(finding["severity"], "low", "{finding}");
    let explanation = finding["explanation"].as_str().expect("an explanation");
    assert!(explanation.contains("role auditor") && explanation.contains("expected"), "{explanation}");
    let time = finding["time"].as_str().expect("a time");
    let table = evident(&serve, &serve.admin, &["findings", "list", "--table"]);
    let table = text(&table.stdout);
    assert!(!table.contains("1970"), "{table}");
    assert!(table.contains(&time[..19]), "{time} not in\n{table}");
}

/// Runs `evident ARGS` with its stdout already closed: it must end quietly with success.
fn with_closed_stdout(serve: &Serve, args: &[&str]) {
    let mut child = Command::new(EVIDENT)
        .args(args)
        .args(["--url", &serve.base, "--key", &serve.admin])
        .env_remove("EVIDENT_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evident runs");
    drop(child.stdout.take()); // the reader is gone, like `| head` after its lines
    let output = child.wait_with_output().expect("evident ends");
    let err = text(&output.stderr);
    assert!(output.status.success() && !err.contains("panicked"), "{args:?}: {:?} {err}", output.status);
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let serve = Serve::fresh();
    post_event(&serve, "p-1", &common_now());
    let _auditor = serve.key("auditor");
    findings(&serve, &serve.admin);
    for args in [
        vec!["findings", "list", "--json"],
        vec!["findings", "list", "--table"],
        vec!["keys", "list", "--json"],
        vec!["keys", "list"],
        vec!["tenants", "list"],
        vec!["rules", "list"],
        vec!["rules", "templates"],
        vec!["search", "--json"],
        vec!["search", "--table"],
        vec!["timeline", "cust-42", "--json"],
        vec!["history", "customer", "cust-42", "--table"],
        vec!["timeline", "cust-42", "--table"],
        vec!["tail", "--json"],
        vec!["webhooks", "list"],
        vec!["ingest", "--map", "help"],
    ] {
        with_closed_stdout(&serve, &args);
    }
}

#[test]
fn search_leaves_out_evidents_own_events_unless_asked() {
    let serve = Serve::fresh();
    post_event(&serve, "s-1", &common_now());
    // Reads are recorded (source evident) and come after the event.
    for _ in 0..3 {
        json_lines(&evident(&serve, &serve.admin, &["search", "--json"]));
    }
    let found = json_lines(&evident(&serve, &serve.admin, &["search", "--json", "--limit", "2"]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["event"]["id"], "s-1");
    let all = json_lines(&evident(&serve, &serve.admin, &["search", "--json", "--include-self"]));
    assert!(all.iter().any(|view| view["event"]["type"] == "evident.audit.search"), "{all:?}");
    let own = json_lines(&evident(&serve, &serve.admin, &["search", "--json", "--source", "evident"]));
    assert!(!own.is_empty() && own.iter().all(|view| view["event"]["source"] == "evident"));
}

#[test]
fn timeline_and_history_from_the_command_line() {
    let serve = Serve::fresh();
    post_event(&serve, "h-1", "2026-11-20T10:00:00Z");
    post_event(&serve, "h-2", "2026-11-22T10:00:00Z");
    let timeline = json_lines(&evident(&serve, &serve.admin, &["timeline", "cust-42", "--json"]));
    let ids: Vec<&Value> = timeline.iter().map(|view| &view["event"]["id"]).collect();
    assert_eq!(ids, [&json!("h-2"), &json!("h-1")]);
    let history = json_lines(&evident(&serve, &serve.admin, &["history", "customer", "cust-42", "--json"]));
    assert_eq!(history[0]["versions"].as_array().expect("versions").len(), 2, "{history:?}");
    let at = ["history", "customer", "cust-42", "--json", "--at", "2026-11-21"];
    let at = json_lines(&evident(&serve, &serve.admin, &at));
    assert_eq!(at[0]["at_version"], 1, "{at:?}");
    let table = text(
        &evident(&serve, &serve.admin, &["history", "customer", "cust-42", "--table", "--at", "2026-11-21"])
            .stdout,
    );
    assert!(
        table.contains("/email") && table.contains("at 2026-11-21T00:00:00.000000Z: version 1"),
        "{table}"
    );
    let none = evident(&serve, &serve.admin, &["timeline", "nobody", "--json"]);
    assert!(json_lines(&none).is_empty());
}

#[test]
fn a_second_serve_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    let second = Command::new(EVIDENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("EVIDENT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("evident runs");
    let err = text(&second.stderr);
    assert!(!second.status.success(), "a second serve started: {err}");
    assert!(err.contains("is in use by another process"), "{err}");
    // The first one still serves.
    let health = client().get(serve.url("/healthz")).send().expect("GET /healthz");
    assert_eq!(health.status(), 200);
    // Once it stops, the directory is free again.
    serve.terminate();
    let again = Serve::start(&data);
    let health = client().get(again.url("/healthz")).send().expect("GET /healthz");
    assert_eq!(health.status(), 200);
    again.terminate();
}

#[test]
fn a_revoked_key_is_told_it_was_revoked_and_a_wrong_one_is_not() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let key_id = reader.split('_').nth(1).expect("evk_<id>_<secret>");
    let revoked = evident(&serve, &serve.admin, &["keys", "revoke", key_id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let refused = evident(&serve, &reader, &["search"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("was revoked"), "{}", text(&refused.stderr));
    let answer = client().get(serve.url("/v1/events")).bearer_auth(&reader).send().expect("GET");
    assert_eq!(answer.status(), 401);
    let problem: Value = answer.json().expect("a problem");
    assert_eq!(problem["title"], "key revoked", "{problem}");
    // Without the secret, nothing is said about the key.
    let guess = format!("evk_{key_id}_not-the-secret");
    let answer = client().get(serve.url("/v1/events")).bearer_auth(&guess).send().expect("GET");
    assert_eq!(answer.status(), 401);
    let problem: Value = answer.json().expect("a problem");
    assert_eq!(problem["title"], "authentication required", "{problem}");
}

#[test]
fn a_redirected_log_has_no_colour_and_the_store_is_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut child = Command::new(EVIDENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("EVIDENT_CONFIG")
        .env_remove("EVIDENT_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evident serve starts");
    let stderr = lines(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    while !seen.iter().any(|line: &String| line.contains("listening on")) {
        seen.push(stderr.recv_timeout(TIMEOUT).expect("serve logs its start"));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.iter().any(|line| line.contains("INFO")), "{seen:?}");
    assert!(seen.iter().all(|line| !line.contains('\u{1b}')), "colour codes in a redirected log: {seen:?}");
    for name in [
        "evident.sqlite",
        "evident.sqlite-wal",
        "evident.sqlite-shm",
        "evident.lock",
        "master.key",
        "signing.key",
    ] {
        let path = data.join(name);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
}

fn break_glass(data: &Path) -> Output {
    Command::new(EVIDENT)
        .args(["keys", "create", "--global", "--json", "--data-dir"])
        .arg(data)
        .env_remove("EVIDENT_DATABASE_URL")
        .env_remove("EVIDENT_CONFIG")
        .env("USER", "ops-on-call")
        .stdin(Stdio::null())
        .output()
        .expect("evident runs")
}

#[test]
fn a_lost_admin_key_is_replaced_from_the_data_directory_and_recorded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    // While the server runs, it holds the store.
    let refused = break_glass(&data);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("stop it first"), "{}", text(&refused.stderr));
    serve.terminate();
    let made = json_lines(&break_glass(&data));
    let key = made[0]["key"].as_str().expect("a key").to_owned();
    assert_eq!(made[0]["role"], "admin");
    let serve = Serve::start(&data);
    // A global admin: it creates tenants.
    let (status, body) = serve.post(&key, "/v1/tenants", &json!({"id": "acme"}));
    assert_eq!(status, 201, "{body}");
    let events = json_lines(&evident(
        &serve,
        &key,
        &["search", "--json", "--type", "evident.admin.key_created", "--include-self"],
    ));
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0]["event"];
    assert!(event["actor"]["id"].as_str().expect("an actor").starts_with("operator:ops-on-call@"), "{event}");
    assert!(event["reason"].as_str().expect("a reason").contains("break-glass"), "{event}");
    assert_eq!(event["targets"][0]["id"], made[0]["key_id"]);
    // The privilege-change rule reports it at its own severity, not as the expected API path.
    let found = findings(&serve, &key);
    assert_eq!(found[0]["severity"], "medium", "{found:?}");
    // No data directory, no key.
    let missing = break_glass(&dir.path().join("nowhere"));
    assert!(!missing.status.success() && text(&missing.stderr).contains("no data directory"));
}

#[test]
fn on_postgresql_the_break_glass_key_is_made_while_the_nodes_run() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let env = [("EVIDENT_DATABASE_URL", database_url()), ("EVIDENT_DATABASE_SCHEMA", schema.0.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let serve = Serve::first_start_with(&data, &env);
    let made = Command::new(EVIDENT)
        .args(["keys", "create", "--global", "--json", "--label", "night shift", "--data-dir"])
        .arg(&data)
        .args(["--database-url", &database_url()])
        .env("EVIDENT_DATABASE_SCHEMA", &schema.0)
        .env_remove("EVIDENT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("evident runs");
    let made = json_lines(&made);
    let key = made[0]["key"].as_str().expect("a key");
    assert_eq!(made[0]["label"], "night shift");
    // The running node knows it at once (the store is shared), and the log has its creation.
    let events = json_lines(&evident(
        &serve,
        key,
        &["search", "--json", "--type", "evident.admin.key_created", "--include-self"],
    ));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0]["event"]["reason"].as_str().expect("a reason").contains("the database"), "{events:?}");
}

#[test]
fn a_bundle_verifies_against_the_key_a_watch_pinned_and_not_without_one() {
    let serve = Serve::fresh();
    // A subject's bundle holds every event about it, findings included: an event at night would
    // add an off-hours finding to the count.
    post_event(&serve, "w-1", &last_working_noon());
    let auditor = serve.key("auditor");
    let work = tempfile::tempdir().expect("temp dir");
    let bundle = work.path().join("bundle");
    let bundle = bundle.to_str().expect("UTF-8");
    json_lines(&evident(&serve, &auditor, &["export", "--subject", "cust-42", "--output", bundle]));
    let state = work.path().join("watch.json");
    let state = state.to_str().expect("UTF-8");
    let log = format!("{}/v1/logs/default", serve.base);
    let verify = |args: &[&str]| {
        Command::new(EVIDENT).arg("verify").args(args).env_remove("EVIDENT_API_KEY").output().expect("runs")
    };
    let unpinned = verify(&[bundle, "--json"]);
    assert!(!unpinned.status.success(), "{}", text(&unpinned.stdout));
    assert!(text(&unpinned.stderr).contains("no verifier key is pinned"), "{}", text(&unpinned.stderr));
    let missing = verify(&[bundle, "--state", state]);
    assert!(text(&missing.stderr).contains("no watch state"), "{}", text(&missing.stderr));
    json_lines(&verify(&["--watch", &log, "--once", "--state", state, "--key", &auditor, "--json"]));
    let pinned = json_lines(&verify(&[bundle, "--state", state, "--json"]));
    assert_eq!(pinned[0]["key_pinned"], true, "{pinned:?}");
    assert_eq!(pinned[0]["events"], 1, "{pinned:?}");
    // A watch of another log pins another key.
    let other = Serve::fresh();
    let other_state = work.path().join("other.json");
    let other_state = other_state.to_str().expect("UTF-8");
    let other_log = format!("{}/v1/logs/default", other.base);
    json_lines(&verify(&[
        "--watch",
        &other_log,
        "--once",
        "--state",
        other_state,
        "--key",
        &other.admin,
        "--json",
    ]));
    let refused = verify(&[bundle, "--state", other_state]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("not signed by a trusted key"), "{}", text(&refused.stderr));
}
