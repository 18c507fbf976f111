//! The spool without a server: durability across reopening, the full policy, refusals.
//! Delivery, retries and the SIGKILL test run against a real `evident serve` in
//! `crates/evident-cli/tests/spool.rs`.

use std::time::Duration;

use serde_json::json;

use super::{Spool, SpoolConfig, SpoolError};
use crate::Client;

/// Nothing listens on port 1: every send fails to connect.
fn unreachable() -> Client {
    Client::new("http://127.0.0.1:1", None)
}

fn event(n: usize) -> serde_json::Value {
    json!({"source": "//spool.test", "type": "t.recorded", "action": "other", "n": n})
}

#[test]
fn recorded_events_stay_spooled_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(SpoolConfig::new(dir.path()), unreachable()).unwrap();
    let ids: Vec<String> = (0..5).map(|n| spool.record(&event(n)).unwrap()).collect();
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 5, "ids are distinct");
    assert_eq!(spool.record(&json!({"id": "mine", "n": 1})).unwrap(), "mine");
    let metrics = spool.metrics();
    assert_eq!(metrics.depth_events, 6);
    assert!(metrics.oldest_age.is_some());
    assert!(!spool.flush(Duration::from_millis(50)), "nothing can be acknowledged");
    spool.close();
    let spool = Spool::open(SpoolConfig::new(dir.path()), unreachable()).unwrap();
    let metrics = spool.metrics();
    assert_eq!(metrics.depth_events, 6);
    assert!(metrics.prometheus().contains("evident_spool_depth_events 6\n"), "{}", metrics.prometheus());
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _spool = Spool::open(SpoolConfig::new(dir.path()), unreachable()).unwrap();
    let err = Spool::open(SpoolConfig::new(dir.path()), unreachable()).expect_err("refused");
    assert!(matches!(err, SpoolError::Locked(_)), "{err}");
}

#[test]
fn a_full_spool_waits_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SpoolConfig::new(dir.path());
    config.max_bytes = 1000;
    config.full_wait = Duration::from_millis(100);
    let spool = Spool::open(config, unreachable()).unwrap();
    let mut recorded = 0;
    let err = loop {
        match spool.record(&event(recorded)) {
            Ok(_) => recorded += 1,
            Err(err) => break err,
        }
        assert!(recorded < 100, "the spool never filled");
    };
    assert!(matches!(err, SpoolError::Full { max_bytes: 1000, .. }), "{err}");
    assert!(recorded > 5, "{recorded} events fit in 1000 bytes");
    assert_eq!(spool.metrics().depth_events, recorded as u64, "the refused event is not spooled");
    assert!(spool.metrics().depth_bytes <= 1000);
}

#[test]
fn events_that_cannot_be_sent_are_refused_at_record() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(SpoolConfig::new(dir.path()), unreachable()).unwrap();
    let check = |event: serde_json::Value, expect: &str| {
        let err = spool.record(&event).expect_err("refused");
        assert!(matches!(err, SpoolError::Invalid(_)) && err.to_string().contains(expect), "{err}");
    };
    check(json!([1, 2]), "must be a JSON object");
    check(json!({"id": 7}), "id must be a non-empty string");
    check(json!({"id": ""}), "id must be a non-empty string");
    check(json!({"blob": "x".repeat(300 * 1024)}), "at most 262144");
    assert_eq!(spool.metrics().depth_events, 0);
}

#[test]
fn concurrent_records_share_fsyncs_and_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SpoolConfig::new(dir.path());
    config.segment_bytes = 2000; // many segments
    let spool = Spool::open(config.clone(), unreachable()).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let spool = &spool;
            scope.spawn(move || {
                for n in 0..50 {
                    spool.record(&event(thread * 1000 + n)).unwrap();
                }
            });
        }
    });
    assert_eq!(spool.metrics().depth_events, 200);
    spool.close();
    assert!(super::files::segments(dir.path()).unwrap().len() > 3);
    let spool = Spool::open(config, unreachable()).unwrap();
    assert_eq!(spool.metrics().depth_events, 200);
}
