//! `evident export --format parquet` (issue 15, item 8) against a real `evident serve` holding the
//! insight tests' constructed history: the file is read back by pyarrow and DuckDB, installed from
//! PyPI into a virtualenv under `target/` (the test fails loudly when they cannot be), which must
//! see every row with its typed columns and compute in SQL the same funnel as `evident insights
//! funnel --json`; no personal value reaches the file; bad output paths, filters and keys fail
//! clearly and leave nothing behind.
//!
//! Built without the cargo feature `parquet`, the same test checks that `--format parquet` is
//! refused with a message naming the feature (CI runs it both ways: `scripts/test`).

mod common;
#[cfg(feature = "parquet")]
#[path = "common/insight_history.rs"]
mod insight_history;

#[cfg(feature = "parquet")]
use std::path::{Path, PathBuf};
#[cfg(feature = "parquet")]
use std::process::Command;
use std::process::Output;

use common::{Serve, evident};
#[cfg(feature = "parquet")]
use {
    common::json_lines,
    serde_json::{Value, json},
};

/// The releases the test installs (pinned so that a new release cannot change what it checks).
#[cfg(feature = "parquet")]
const PYTHON_PACKAGES: [&str; 2] = ["duckdb==2.0.1", "pyarrow==26.0.1"];

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[cfg(not(feature = "parquet"))]
#[test]
fn parquet_needs_the_feature() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.parquet");
    let output =
        evident(&serve.base, &reader, &["export", "--format", "parquet", "-o", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("cargo feature `parquet`") && message.contains("--features parquet"),
        "{message}"
    );
    assert!(!file.exists());
}

/// A Python with `duckdb` and `pyarrow`, in a virtualenv made once under `target/tmp`.
#[cfg(feature = "parquet")]
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parquet-venv");
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    if std::fs::read_to_string(&ready).ok().as_deref() == Some(&PYTHON_PACKAGES.join(" ")) {
        return python;
    }
    let made = Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv).output();
    let made = made.expect("python3 runs (the Parquet test needs Python 3 with venv)");
    assert!(made.status.success(), "cannot make a virtualenv: {}", stderr(&made));
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet"])
        .args(PYTHON_PACKAGES)
        .output()
        .expect("pip runs");
    assert!(
        pip.status.success(),
        "cannot install {} from PyPI (the Parquet test reads the file with them): {}",
        PYTHON_PACKAGES.join(" "),
        stderr(&pip)
    );
    std::fs::write(&ready, PYTHON_PACKAGES.join(" ")).unwrap();
    python
}

/// What pyarrow and DuckDB see in `file` (`tests/data/parquet/check.py`).
#[cfg(feature = "parquet")]
fn read_back(file: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parquet/check.py");
    let output = Command::new(python())
        .arg(script)
        .arg(file)
        .args(["2026-10-05T00:00:00Z", "2026-10-06T00:00:00Z", "7"])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "check.py: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("check.py prints JSON")
}

#[cfg(feature = "parquet")]
#[test]
fn duckdb_and_pyarrow_read_the_export_and_agree_with_our_funnel() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let (status, body) = serve.post(&producer, "/v1/events", &json!(insight_history::history()));
    assert_eq!(status, 200, "{body}");
    // One more event with personal values (the actor's name, the IP), from another source.
    let personal = json!({
        "id": "with-personal", "source": "//crm.test", "type": "customer.record.viewed", "action": "read",
        "time": "2026-10-05T12:00:00Z", "actor": {"id": "agt_a", "type": "user", "display": "Ann Example"},
        "subject": "cus-1", "targets": [{"type": "record", "id": "r1", "display": "Bob Example"}],
        "outcome": "success", "origin": {"service": "web", "ip": "203.0.113.9"},
    });
    assert_eq!(serve.post(&producer, "/v1/events", &personal).0, 200);
    let reader = serve.key("reader");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contact.parquet");
    let path = file.to_str().unwrap();

    let export =
        |args: &[&str]| evident(&serve.base, &reader, &[&["export", "--format", "parquet"], args].concat());
    let summary =
        json_lines(&export(&["--source", "//contact.test", "-o", path, "--row-group-rows", "10", "--json"]));
    assert_eq!(
        (summary[0]["events"].clone(), summary[0]["row_groups"].clone(), summary[0]["verified"].clone()),
        (json!(23), json!(3), json!(true))
    );
    let seen = read_back(&file);
    assert_eq!(
        (seen["rows"].clone(), seen["duckdb_rows"].clone(), seen["row_groups"].clone()),
        (json!(23), json!(23), json!(3))
    );
    for (column, pyarrow, duckdb) in [
        ("index", "uint64", "UBIGINT"),
        ("occurred_at", "timestamp[us, tz=UTC]", "TIMESTAMP WITH TIME ZONE"),
        ("recorded_at", "timestamp[us, tz=UTC]", "TIMESTAMP WITH TIME ZONE"),
        ("type", "string", "VARCHAR"),
        ("channel", "string", "VARCHAR"),
        ("metadata", "string", "VARCHAR"),
        ("has_personal", "bool", "BOOLEAN"),
    ] {
        assert_eq!(seen["types"][column], pyarrow, "{column}: {seen}");
        assert_eq!(seen["duckdb_types"][column], duckdb, "{column}: {seen}");
    }
    assert_eq!(seen["types"].as_object().unwrap().len(), 26);
    assert_eq!(
        (seen["nullable"]["event_id"].clone(), seen["nullable"]["subject"].clone()),
        (json!(false), json!(true))
    );
    let texts: Vec<&str> = seen["texts"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for value in [
        "phone",
        "email",
        "cus-9",
        "agt_c",
        "contact.resolved",
        "identity_not_confirmed",
        r#"{"team":"red"}"#,
    ] {
        assert!(texts.contains(&value), "{value} missing from {texts:?}");
    }

    // The funnel DuckDB computes from the file is ours (an investigator's: no cell suppressed).
    let args =
        [&insight_history::FUNNEL_ARGS[..], &["--to", "2026-10-06", "--within", "7d", "--json"]].concat();
    let ours = json_lines(&evident(&serve.base, &serve.key("investigator"), &args));
    let ours: Vec<Value> = ours.iter().map(|step| step["customers"].clone()).collect();
    assert_eq!(ours, insight_history::FUNNEL_CUSTOMERS.map(|n| json!(n)));
    assert_eq!(seen["duckdb_funnel"], json!(ours));

    // Everything the reader may see, the personal event included: its skeleton, never its values.
    let all = dir.path().join("all.parquet");
    let summary = json_lines(&export(&["-o", all.to_str().unwrap(), "--json"]));
    assert_eq!(summary[0]["row_groups"], 1);
    let seen = read_back(&all);
    assert_eq!(seen["rows"], summary[0]["events"]);
    let texts = seen["texts"].to_string();
    // The self-audit events' personal part is the caller's address.
    for value in ["Ann Example", "Bob Example", "203.0.113.9", "127.0.0.1"] {
        assert!(!texts.contains(value), "{value} is in the Parquet file");
    }
    assert!(texts.contains("customer.record.viewed") && texts.contains("evident.audit.export"));
    let crm = dir.path().join("crm.parquet");
    json_lines(&export(&["--source", "//crm.test", "-o", crm.to_str().unwrap()]));
    let seen = read_back(&crm);
    assert_eq!((seen["rows"].clone(), seen["has_personal"].clone()), (json!(1), json!(1)));
    assert!(seen["texts"].as_array().unwrap().contains(&json!("r1")));
}

#[cfg(feature = "parquet")]
#[test]
fn bad_outputs_filters_and_keys_fail_clearly_and_leave_nothing() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.parquet");
    let path = file.to_str().unwrap();
    let fails = |key: &str, args: &[&str], expect: &str| {
        let output = evident(&serve.base, key, &[&["export", "--format", "parquet"], args].concat());
        assert!(!output.status.success(), "{args:?} succeeded");
        let message = stderr(&output);
        assert!(message.contains(expect), "{args:?}: {message}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    };
    fails(
        &reader,
        &["-o", "/nonexistent-dir/events.parquet"],
        "cannot create /nonexistent-dir/events.parquet",
    );
    fails(&reader, &["-o", path, "--action", "fly"], "action");
    fails(&reader, &["-o", path, "--from", "soon"], "--from");
    fails("evk_nobody_000000", &["-o", path], "401");
    fails(&reader, &["-o", path, "--purpose", "audit"], "skeletons only");
    fails(&reader, &["-o", path, "--row-group-rows", "0"], "--row-group-rows");

    // An existing file is replaced only with --force.
    std::fs::write(&file, "keep me").unwrap();
    let output = evident(&serve.base, &reader, &["export", "--format", "parquet", "-o", path]);
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let output = evident(&serve.base, &reader, &["export", "--format", "parquet", "-o", path, "--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(&std::fs::read(&file).unwrap()[..4], b"PAR1");
}
