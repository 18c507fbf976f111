//! Insight's rollups in the index file answer exactly what the scan of the events answers: on
//! randomized histories (many seeds, every rolled dimension, buckets from hours to months, zones
//! on and off whole hours), right after an acknowledgement, across restarts (the rollups resume
//! from their watermark without counting anything twice, and an index file from before rollups is
//! folded again from nothing), and they hold nothing personal.

use std::path::Path;
use std::sync::Arc;

use evident_core::engine::{Engine, EngineConfig, Outcome};
use evident_core::event::TenantPolicy;
use evident_core::insight::cohorts::{CohortsQuery, cohorts};
use evident_core::insight::rollup::{RollDim, RollupRead, Who};
use evident_core::insight::time::Clock;
use evident_core::insight::trend::{TrendQuery, trend};
use evident_core::insight::{InsightIndex, Row, Scan, Threshold};
use evident_core::seal::MasterKey;
use evident_core::store::{Store, TenantId};
use evident_core::validate::validate_event;
use evident_store_sqlite::SqliteStore;
use evident_wire::Micros;
use evident_wire::insight::{Bucket, Field, Step};
use serde_json::{Value, json};

const SEED: [u8; 32] = [0x5e; 32];
const MASTER_KEY: [u8; 32] = [0x3a; 32];
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200_000_000;
const HOUR: i64 = 3_600_000_000;

/// The store as a scan only: insight falls back to reading every event.
struct Exact<'a>(&'a SqliteStore);

impl InsightIndex for Exact<'_> {
    fn insight_rows(
        &self,
        tenant: &TenantId,
        scan: &Scan,
        after: Option<&Row>,
        limit: usize,
    ) -> evident_core::Result<Vec<Row>> {
        self.0.insight_rows(tenant, scan, after, limit)
    }
}

/// xorshift64*: a reproducible history per seed without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    engine: Engine,
}

fn open(path: &Path) -> (Arc<SqliteStore>, Engine) {
    let store = Arc::new(SqliteStore::open(path).unwrap());
    let as_store: Arc<dyn Store> = store.clone();
    let engine =
        Engine::open(as_store, SEED, MasterKey::from_bytes(MASTER_KEY), EngineConfig::default()).unwrap();
    (store, engine)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = open(&dir.path().join("evident.sqlite"));
    engine.create_tenant(&tenant(), TenantPolicy::default()).unwrap();
    Fixture { _dir: dir, store, engine }
}

/// One random event: some without a subject or a channel; times spread over 40 days
/// with many on or next to an hour's edge.
fn random_event(rng: &mut Rng, n: u64) -> Value {
    let hour = START / 1_000_000 + rng.below(40 * 24) as i64 * 3600;
    let second = hour + [0, 1, 1799, 3599][rng.below(4) as usize];
    let time = Micros(second * 1_000_000).to_rfc3339();
    let mut event = json!({
        "id": format!("e{n}"),
        "source": rng.pick(&["//web", "//phone-system"]),
        "type": rng.pick(&["contact.opened", "contact.verified", "contact.resolved", "ticket.closed"]),
        "action": rng.pick(&["read", "other"]),
        "time": time,
        "actor": {"id": format!("agent-{}", rng.below(7)), "type": "user"},
        "outcome": rng.pick(&["success", "success", "failure"]),
    });
    if event["outcome"] == "failure" {
        event["reason"] = json!("identity_not_confirmed");
    }
    if rng.below(8) > 0 {
        event["subject"] = json!(format!("cus-{}", rng.below(40)));
    }
    event["origin"] = match rng.below(5) {
        0 => json!({"ip": "192.0.2.9"}),
        _ => json!({"service": rng.pick(&["chat", "phone", "email"])}),
    };
    event["targets"] = json!([{"type": rng.pick(&["contact", "ticket", "order"]), "id": format!("t{n}")}]);
    event
}

fn append(f: &Fixture, events: &[Value]) {
    let policy = f.engine.policy(&tenant()).unwrap();
    let validated = events.iter().map(|e| validate_event(e, &policy).unwrap()).collect();
    for outcome in f.engine.append(&tenant(), validated).unwrap() {
        assert!(matches!(outcome, Outcome::Stored(_)), "{outcome:?}");
    }
}

fn append_random(f: &Fixture, rng: &mut Rng, first: u64, n: u64) {
    let mut next = first;
    while next < first + n {
        let batch = (1 + rng.below(60)).min(first + n - next);
        let events: Vec<Value> = (next..next + batch).map(|i| random_event(rng, i)).collect();
        append(f, &events);
        next += batch;
    }
}

const DIMENSIONS: [Option<Field>; 7] = [
    None,
    Some(Field::Type),
    Some(Field::Action),
    Some(Field::Outcome),
    Some(Field::Source),
    Some(Field::Channel),
    Some(Field::TargetType),
];

fn trend_query(from: i64, to: i64, by: Option<Field>, bucket: Bucket, offset: i32) -> TrendQuery {
    TrendQuery {
        from: Micros(from),
        to: Micros(to),
        by,
        clock: Clock { bucket, offset },
        threshold: Threshold { min_customers: 3 },
    }
}

/// Whether the store answered from its rollups (true) for a dimension.
fn rolled(store: &SqliteStore, dim: RollDim) -> bool {
    let read = RollupRead { dim, only: None, counts: Some(0..i32::MAX), seen: vec![Who::Customer] };
    store.rollups(&tenant(), &read, &mut |_| {}).unwrap()
}

/// Every question of a trend and of cohorts, rollups against the scan.
fn assert_rollups_agree(store: &SqliteStore, context: &str) {
    let exact = Exact(store);
    let day = 24 * HOUR;
    let ranges = [(START, START + 30 * day), (START + 7 * day + 5 * HOUR, START + 20 * day - 3 * HOUR)];
    for (from, to) in ranges {
        for by in DIMENSIONS {
            for (bucket, offset) in
                [(Bucket::Hour, 0), (Bucket::Day, 0), (Bucket::Day, 3600), (Bucket::Week, -7200)]
            {
                let query = trend_query(from, to, by.clone(), bucket, offset);
                let fast = trend(store, &tenant(), &query).unwrap();
                assert_eq!(fast, trend(&exact, &tenant(), &query).unwrap(), "{context}: {query:?}");
                assert!(
                    fast.series.iter().any(|s| s.total.events.is_some_and(|n| n > 0)),
                    "{context}: empty"
                );
            }
        }
    }
    for period in [Bucket::Week, Bucket::Month] {
        for activity in [None, Some("type:contact.verified"), Some("type:contact.* outcome:success")] {
            let query = CohortsQuery {
                from: Micros(START - 30 * day),
                to: Micros(START + 35 * day),
                period,
                activity: activity.map(|a| Step::parse("activity", a).unwrap()),
                threshold: Threshold { min_customers: 3 },
            };
            let fast = cohorts(store, &tenant(), &query).unwrap();
            assert_eq!(fast, cohorts(&exact, &tenant(), &query).unwrap(), "{context}: {query:?}");
        }
    }
    assert!(rolled(store, RollDim::Channel), "{context}: the rollups answered");
}

#[test]
fn rollups_agree_with_the_scan_on_random_histories() {
    for seed in 1..=12u64 {
        let f = fixture();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let n = 300 + rng.below(500);
        append_random(&f, &mut rng, 0, n);
        assert_rollups_agree(&f.store, &format!("seed {seed}"));
    }
}

#[test]
fn a_question_right_after_an_acknowledgement_counts_it() {
    let f = fixture();
    let mut query = trend_query(START, START + 24 * HOUR, Some(Field::Channel), Bucket::Hour, 0);
    query.threshold.min_customers = 0;
    let mut answered = Vec::new();
    for n in 0..20u64 {
        append(
            &f,
            &[json!({"id": format!("a{n}"), "source": "//web", "type": "contact.opened", "action": "other",
            "time": "2026-11-01T05:30:00Z", "targets": [{"type": "contact", "id": format!("c{n}")}], "actor": {"id": "agent-1", "type": "user"}, "subject": format!("cus-{n}"),
            "outcome": "success", "origin": {"service": "chat"}})],
        );
        let answer = trend(&*f.store, &tenant(), &query).unwrap();
        answered.push(answer.series[0].points[5].counts.events);
    }
    assert_eq!(answered, (1..=20).map(Some).collect::<Vec<_>>());
}

#[test]
fn rollups_resume_after_a_restart_without_counting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evident.sqlite");
    let mut rng = Rng(77);
    let (store, engine) = open(&path);
    engine.create_tenant(&tenant(), TenantPolicy::default()).unwrap();
    let mut f = Fixture { _dir: dir, store, engine };
    append_random(&f, &mut rng, 0, 400);
    assert_rollups_agree(&f.store, "before the restart");
    let reopen = |f: Fixture| {
        f.engine.shutdown();
        let Fixture { _dir, store, engine } = f;
        drop(engine);
        drop(store);
        let (store, engine) = open(&_dir.path().join("evident.sqlite"));
        Fixture { _dir, store, engine }
    };
    f = reopen(f);
    append_random(&f, &mut rng, 400, 300);
    assert_rollups_agree(&f.store, "after a restart");
    // An index file from before rollups (no rollup watermark): folded again from nothing.
    let index = f._dir.path().join("evident.sqlite-index");
    f.engine.shutdown();
    let Fixture { _dir, store, engine } = f;
    drop(engine);
    drop(store);
    let connection = rusqlite::Connection::open(&index).unwrap();
    connection.execute_batch("DELETE FROM rolled").unwrap();
    drop(connection);
    let (store, engine) = open(&_dir.path().join("evident.sqlite"));
    let f = Fixture { _dir, store, engine };
    append_random(&f, &mut rng, 700, 50);
    assert_rollups_agree(&f.store, "after an index without rollups");
}

#[test]
fn rollups_hold_nothing_personal_before_or_after_erasure() {
    let f = fixture();
    let personal = |n: u64| {
        json!({"id": format!("p{n}"), "source": "//web", "type": "customer.updated", "action": "update",
            "time": "2026-11-02T10:00:00Z", "subject": "cus-erase",
            "actor": {"id": "agent-1", "type": "user", "display": "Agent Alice Jones"},
            "targets": [{"type": "customer", "id": "cus-erase", "display": "Bob Secret-Name"}],
            "origin": {"service": "chat", "ip": "203.0.113.77"}, "outcome": "success",
            "changes": [{"field": "/email", "before": "bob.old@example.com", "after": "bob.new@example.com"}],
            "data_classes": ["pii"]})
    };
    append(&f, &[personal(1), personal(2)]);
    let mut query = trend_query(START, START + 24 * 2 * HOUR, None, Bucket::Day, 0);
    query.threshold.min_customers = 0;
    assert_eq!(trend(&*f.store, &tenant(), &query).unwrap().series[0].total.events, Some(2));
    let names = || -> Vec<String> {
        let index = f._dir.path().join("evident.sqlite-index");
        let connection = rusqlite::Connection::open(index).unwrap();
        let mut statement = connection.prepare("SELECT name FROM insight_names ORDER BY name").unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    let secrets = ["Alice", "Bob", "Secret", "203.0.113", "example.com", "pii:"];
    for stage in ["before erasure", "after erasure"] {
        let stored = names();
        assert!(
            stored.contains(&"chat".to_owned()) && stored.contains(&"cus-erase".to_owned()),
            "{stored:?}"
        );
        for name in &stored {
            assert!(!secrets.iter().any(|s| name.contains(s)), "{stage}: {name:?} in the rollups");
        }
        f.engine.erase_subject(&tenant(), "cus-erase").unwrap();
    }
}
