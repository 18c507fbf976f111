//! `evident hammer`'s warm-up: requests begun in its first seconds are counted apart from the
//! latency percentiles, every one of them in one or the other; bad settings are refused.

use std::process::{Command, Output};

use serde_json::Value;

const EVIDENT: &str = env!("CARGO_BIN_EXE_evident");

fn hammer(args: &[&str]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(EVIDENT)
        .args(["hammer", "--json", "--producers", "2", "--batch", "1"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("EVIDENT_DATA_DIR")
        .output()
        .expect("cannot run evident hammer");
    (dir, output)
}

#[test]
fn requests_of_the_warmup_are_reported_apart_and_none_is_lost() {
    let (_dir, output) = hammer(&["--rate", "200", "--seconds", "2", "--warmup", "1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let count = |key: &str| summary[key].as_u64().unwrap_or_else(|| panic!("{key} in {summary}"));
    // At 200 events/s over 2 s, about 200 requests are due in each second.
    assert!((150..=250).contains(&count("warmup_requests")), "{summary}");
    assert!((150..=250).contains(&count("requests")), "{summary}");
    assert_eq!(count("requests") + count("warmup_requests"), count("events"), "{summary}");
    assert_eq!(summary["warmup_seconds"].as_f64(), Some(1.0), "{summary}");
    let max = summary["warmup_max_ms"].as_f64().unwrap();
    assert!(max > 0.0 && max >= summary["warmup_p99_ms"].as_f64().unwrap(), "{summary}");
}

#[test]
fn a_warmup_as_long_as_the_run_or_negative_and_a_rate_of_nothing_are_refused_before_any_write() {
    for warmup in ["2", "3", "-1", "NaN"] {
        let (dir, output) = hammer(&["--seconds", "2", &format!("--warmup={warmup}")]);
        assert!(!output.status.success(), "--warmup {warmup} was taken");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--warmup must be at least 0 and less than --seconds"), "{warmup}: {stderr}");
        // Refused before anything is written.
        assert!(!dir.path().join("evident.sqlite").exists(), "{warmup}: a store was made");
    }
    let (dir, output) = hammer(&["--seconds", "2", "--rate", "0"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--rate must be positive"));
    assert!(!output.status.success() && !dir.path().join("evident.sqlite").exists());
}
