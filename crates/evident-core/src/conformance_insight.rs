//! The insight rollups' conformance checks (`insight_rollup_suite!`): a store's rollups answer
//! exactly what the scan of its events answers, on randomized histories (many seeds, every rolled
//! dimension, buckets from hours to months, zones on and off whole hours), right after an
//! acknowledgement, and after the store is opened again (folding resumes from the watermark,
//! counting nothing twice). Its path table answers funnels exactly as the scan by subject does
//! (with and without breakdown, events out of time order and across month ends, two tenants),
//! and a funnel of constructed customers has the numbers worked out by hand; journeys too. Compiled with the
//! `conformance` feature, like `conformance.rs`.

use std::sync::Arc;

use evident_wire::Micros;
use evident_wire::insight::{Bucket, Field, Step};
use serde_json::{Value, json};

use crate::engine::{Engine, EngineConfig, Outcome};
use crate::event::TenantPolicy;
use crate::insight::cohorts::{CohortsQuery, cohorts};
use crate::insight::funnel::{FunnelQuery, funnel};
use crate::insight::journeys::{JourneysQuery, journeys};
use crate::insight::paths::PathRead;
use crate::insight::rollup::{RollDim, RollupRead, Who};
use crate::insight::time::{Clock, Zone};
use crate::insight::trend::{TrendQuery, trend};
use crate::insight::{InsightIndex, Row, Scan, Threshold};
use crate::seal::MasterKey;
use crate::store::{Store, TenantId};
use crate::validate::validate_event;

/// Opens the backend under test: its store and its insight scans (the same object).
pub trait InsightHarness {
    /// Every call opens the same data.
    fn open(&self) -> (Arc<dyn Store>, Arc<dyn InsightIndex>);
}

/// Expands to one `#[test]` per insight rollup check, each calling `$harness` for a fresh backend.
#[macro_export]
macro_rules! insight_rollup_suite {
    ($harness:expr) => {
        $crate::insight_rollup_suite!(@tests $harness;
            rollups_agree_with_the_scan_on_random_histories, a_question_right_after_an_acknowledgement_counts_it,
            rollups_resume_after_a_reopen_without_counting_twice, paths_agree_with_the_scan_for_two_tenants,
            a_funnel_of_constructed_customers_from_the_path_table, long_paths_agree_with_the_scan);
    };
    (@tests $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let harness = $harness;
                $crate::conformance_insight::$name(&harness);
            }
        )*
    };
}

const SEED: [u8; 32] = [0x5e; 32];
const MASTER_KEY: [u8; 32] = [0x3a; 32];
/// 2026-11-01T00:00:00Z.
pub const START: i64 = 1_793_491_200_000_000;
const HOUR: i64 = 3_600_000_000;

/// A store's insight as a scan only: every question falls back to reading the events.
struct Exact<'a>(&'a dyn InsightIndex);

impl InsightIndex for Exact<'_> {
    fn insight_rows(
        &self,
        tenant: &TenantId,
        scan: &Scan,
        after: Option<&Row>,
        limit: usize,
    ) -> crate::Result<Vec<Row>> {
        self.0.insight_rows(tenant, scan, after, limit)
    }
}

/// xorshift64*: a reproducible history per seed without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub fn tenant() -> TenantId {
    TenantId::new("acme").expect("a tenant id")
}

/// A backend opened through the engine, with the tenant created on first use.
pub struct Opened {
    pub engine: Engine,
    pub index: Arc<dyn InsightIndex>,
}

pub fn open(harness: &dyn InsightHarness) -> Opened {
    let (store, index) = harness.open();
    let engine = Engine::open(store, SEED, MasterKey::from_bytes(MASTER_KEY), EngineConfig::default())
        .expect("the engine opens");
    if engine.policy(&tenant()).is_err() {
        engine.create_tenant(&tenant(), TenantPolicy::default()).expect("the tenant is created");
    }
    Opened { engine, index }
}

/// One random event: some without a subject or a channel; times spread over 40 days with many
/// on or next to an hour's edge.
pub fn random_event(rng: &mut Rng, n: u64) -> Value {
    let hour = START / 1_000_000 + rng.below(40 * 24) as i64 * 3600;
    let second = hour + [0, 1, 1799, 3599][rng.below(4) as usize];
    let mut event = json!({
        "id": format!("e{n}"),
        "source": rng.pick(&["//web", "//phone-system"]),
        "type": rng.pick(&["contact.opened", "contact.verified", "contact.resolved", "ticket.closed"]),
        "action": rng.pick(&["read", "other"]),
        "time": Micros(second * 1_000_000).to_rfc3339(),
        "actor": {"id": format!("agent-{}", rng.below(7)), "type": "user"},
        "outcome": rng.pick(&["success", "success", "failure"]),
        "targets": [{"type": rng.pick(&["contact", "ticket", "order"]), "id": format!("t{n}")}],
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
    event
}

pub fn append(engine: &Engine, events: &[Value]) {
    append_to(engine, &tenant(), events);
}

/// [`append`] to another tenant (created on first use).
pub fn append_to(engine: &Engine, tenant: &TenantId, events: &[Value]) {
    if engine.policy(tenant).is_err() {
        engine.create_tenant(tenant, TenantPolicy::default()).expect("the tenant is created");
    }
    let policy = engine.policy(tenant).expect("the tenant's policy");
    let validated = events.iter().map(|e| validate_event(e, &policy).expect("a valid event")).collect();
    for outcome in engine.append(tenant, validated).expect("append") {
        assert!(matches!(outcome, Outcome::Stored(_)), "{outcome:?}");
    }
}

/// Appends `n` random events numbered from `first`, in commits of 1 to 60.
pub fn append_random(engine: &Engine, rng: &mut Rng, first: u64, n: u64) {
    let mut next = first;
    while next < first + n {
        let batch = (1 + rng.below(60)).min(first + n - next);
        let events: Vec<Value> = (next..next + batch).map(|i| random_event(rng, i)).collect();
        append(engine, &events);
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

pub fn trend_query(from: i64, to: i64, by: Option<Field>, bucket: Bucket, zone: Zone) -> TrendQuery {
    TrendQuery {
        from: Micros(from),
        to: Micros(to),
        by,
        clock: Clock { bucket, zone },
        threshold: Threshold { min_customers: 3 },
    }
}

/// Every question of a trend and of cohorts, rollups against the scan; and that the rollups
/// answered.
pub fn assert_rollups_agree(index: &dyn InsightIndex, context: &str) {
    let exact = Exact(index);
    let day = 24 * HOUR;
    let ranges = [(START, START + 30 * day), (START + 7 * day + 5 * HOUR, START + 20 * day - 3 * HOUR)];
    // Named zones too: Berlin's days start on whole UTC hours (rollups answer), Kolkata's at half
    // hours (the scan answers).
    let named = |name| Zone::parse("tz", Some(name)).expect("a zone");
    let clocks = [
        (Bucket::Hour, Zone::UTC),
        (Bucket::Day, Zone::UTC),
        (Bucket::Day, Zone::Fixed(3600)),
        (Bucket::Week, Zone::Fixed(-7200)),
        (Bucket::Day, Zone::Fixed(1800)),
        (Bucket::Day, named("Europe/Berlin")),
        (Bucket::Day, named("Asia/Kolkata")),
    ];
    for (from, to) in ranges {
        for by in DIMENSIONS {
            for (bucket, zone) in clocks {
                let query = trend_query(from, to, by.clone(), bucket, zone);
                let fast = trend(index, &tenant(), &query).expect("a trend");
                assert_eq!(fast, trend(&exact, &tenant(), &query).expect("a trend"), "{context}: {query:?}");
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
                activity: activity.map(|a| Step::parse("activity", a).expect("a step")),
                threshold: Threshold { min_customers: 3 },
            };
            let fast = cohorts(index, &tenant(), &query).expect("cohorts");
            assert_eq!(fast, cohorts(&exact, &tenant(), &query).expect("cohorts"), "{context}: {query:?}");
        }
    }
    assert_paths_agree(index, &tenant(), context);
    let read = RollupRead {
        dim: RollDim::Channel,
        only: None,
        counts: Some(0..i32::MAX),
        seen: vec![Who::Customer],
        seen_hours: 0..i32::MAX,
    };
    assert!(index.rollups(&tenant(), &read, &mut |_| {}).expect("rollups"), "{context}: no rollups");
}

/// A funnel question over `[from, from + 30 days)`.
pub fn funnel_query(
    steps: &str,
    within: i64,
    by: Option<Field>,
    from: i64,
    min_customers: u64,
) -> FunnelQuery {
    FunnelQuery {
        steps: steps.split(';').map(|s| Step::parse("steps", s).expect("a step")).collect(),
        within,
        by,
        from: Micros(from),
        to: Micros(from + 30 * 24 * HOUR),
        dropped_at: None,
        threshold: Threshold { min_customers },
    }
}

/// Funnels of the path table against the scan's, over steps of every kept field, with and
/// without a breakdown, windows from an hour to a week; and that the path table answered.
pub fn assert_paths_agree(index: &dyn InsightIndex, tenant: &TenantId, context: &str) {
    let exact = Exact(index);
    let questions = [
        "type:contact.opened;type:contact.verified outcome:success;type:contact.resolved",
        "type:contact.*;type:contact.resolved channel:chat",
        "type:contact.opened target_type:contact;action:read;type:ticket.closed;type:contact.opened",
        "outcome:failure;outcome:success",
        "type:contact.verified channel:phone;type:ticket.closed action:other",
    ];
    let bys = [None, Some(Field::Channel), Some(Field::Outcome), Some(Field::TargetType), Some(Field::Type)];
    let windows = [HOUR, 24 * HOUR, 7 * 24 * HOUR];
    let mut answered = 0;
    for (q, steps) in questions.iter().enumerate() {
        for (w, within) in windows.iter().enumerate() {
            let by = bys[(q + w) % bys.len()].clone();
            for by in [None, by] {
                // Starts before the data, and a week in (first steps in November and December).
                for from in [START - 24 * HOUR, START + 7 * 24 * HOUR + 1800 * 1_000_000] {
                    let query = funnel_query(steps, *within, by.clone(), from, [0, 3][q % 2]);
                    let fast = funnel(index, tenant, &query).expect("a funnel");
                    assert_eq!(
                        fast,
                        funnel(&exact, tenant, &query).expect("a funnel"),
                        "{context}: {query:?}"
                    );
                    answered += fast.steps[0].customers.unwrap_or(0);
                }
            }
        }
    }
    assert!(answered > 0, "{context}: every funnel is empty");
    assert_journeys_agree(index, tenant, context);
    let read = PathRead::covering(Micros(START), Micros(START + 40 * 24 * HOUR));
    assert!(index.paths(tenant, &read, &mut |_| {}).expect("paths"), "{context}: no path table");
}

/// A store written before its path table existed (`forget` removes the table and its watermark
/// while the store is closed) builds it from the stored events when opened again, and answers
/// funnels as the scan does; `stored` then answers (the watermark, the rows).
/// Journeys of the path table against the scan's: sessions, paths, links and repeat contacts,
/// with and without a filter, suppressed and not.
fn assert_journeys_agree(index: &dyn InsightIndex, tenant: &TenantId, context: &str) {
    let exact = Exact(index);
    let step = |text: &str| Step::parse("step", text).expect("a step");
    let onlys = [None, Some(step("type:contact.*")), Some(step("channel:chat"))];
    let resolved = [None, Some((step("type:contact.resolved outcome:success"), 7 * 24 * HOUR))];
    for (n, only) in onlys.into_iter().enumerate() {
        for (gap, depth) in [(HOUR / 2, 3), (24 * HOUR, 5)] {
            let query = JourneysQuery {
                from: Micros(START + 3 * 24 * HOUR),
                to: Micros(START + 33 * 24 * HOUR),
                gap,
                depth,
                top: 10,
                resolved: resolved[n % 2].clone(),
                only: only.clone(),
                threshold: Threshold { min_customers: [0, 3][depth % 2] },
            };
            let fast = journeys(index, tenant, &query).expect("journeys");
            assert_eq!(fast, journeys(&exact, tenant, &query).expect("journeys"), "{context}: {query:?}");
            assert!(
                fast.sessions.unwrap_or(0) > 0 || query.threshold.min_customers > 0,
                "{context}: no sessions"
            );
        }
    }
}

/// A store whose rollups are missing or stale (`forget`, between two sessions: a watermark
/// deleted, an old schema planted) folds them again from the stored events: 600 events, then 50
/// more after reopening, each time the rollups agreeing with the scan.
pub fn rollups_are_folded_again_for_a_store_from_before_them(
    harness: &dyn InsightHarness,
    forget: &dyn Fn(),
) {
    across_a_reopen(harness, Rng(5), (600, 50), forget, "a store without current rollups");
}

/// Appends `counts.0` random events, checks the rollups, shuts down, runs `between`, reopens,
/// appends `counts.1` more and checks them again.
fn across_a_reopen(
    harness: &dyn InsightHarness,
    mut rng: Rng,
    counts: (u64, u64),
    between: &dyn Fn(),
    what: &str,
) {
    let opened = open(harness);
    append_random(&opened.engine, &mut rng, 0, counts.0);
    assert_rollups_agree(&*opened.index, &format!("before {what}"));
    opened.engine.shutdown();
    drop(opened);
    between();
    let opened = open(harness);
    append_random(&opened.engine, &mut rng, counts.0, counts.1);
    assert_rollups_agree(&*opened.index, &format!("after {what}"));
}

pub fn paths_are_built_for_a_store_from_before_them(
    harness: &dyn InsightHarness,
    forget: &dyn Fn(),
    stored: &dyn Fn() -> (u64, u64),
) {
    let mut rng = Rng(9);
    let opened = open(harness);
    append_random(&opened.engine, &mut rng, 0, 600);
    assert_paths_agree(&*opened.index, &tenant(), "before");
    opened.engine.shutdown();
    drop(opened);
    forget();
    let opened = open(harness);
    append_random(&opened.engine, &mut rng, 600, 50);
    assert_paths_agree(&*opened.index, &tenant(), "after a store without the path table");
    let (watermark, rows) = stored();
    assert_eq!(watermark, 650, "every entry folded");
    assert!(rows > 40, "{rows} rows for 40 customers over two months");
}

pub fn paths_agree_with_the_scan_for_two_tenants(harness: &dyn InsightHarness) {
    let opened = open(harness);
    let other = TenantId::new("globex").expect("a tenant id");
    for seed in 1..=4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let n = 200 + rng.below(300);
        append_random(&opened.engine, &mut rng, seed * 10_000, n);
        let events: Vec<Value> =
            (0..150).map(|n| random_event(&mut rng, seed * 10_000 + 5_000 + n)).collect();
        for batch in events.chunks(50) {
            append_to(&opened.engine, &other, batch);
        }
        assert_paths_agree(&*opened.index, &tenant(), &format!("seed {seed}"));
        assert_paths_agree(&*opened.index, &other, &format!("seed {seed}, the other tenant"));
    }
}

/// Three customers with hundreds of events each in one month, appended over many folds: most
/// commits in time order after what is stored, every third one older, so that a stored month
/// has new pairs added after it and merged into it, many times. The path table answers as the
/// scan does.
pub fn long_paths_agree_with_the_scan(harness: &dyn InsightHarness) {
    let opened = open(harness);
    let mut rng = Rng(77);
    let (rounds, per_round) = (16u64, 60u64);
    for round in 0..rounds {
        let day = if round % 3 == 2 { rng.below(10) } else { round + 4 };
        let mut events: Vec<(i64, Value)> = (0..per_round)
            .map(|i| {
                let mut event = random_event(&mut rng, 70_000 + round * per_round + i);
                let second = START / 1_000_000 + day as i64 * 24 * 3600 + rng.below(86_400) as i64;
                event["time"] = json!(Micros(second * 1_000_000).to_rfc3339());
                event["subject"] = json!(format!("cus-{}", rng.below(3)));
                (second, event)
            })
            .collect();
        if round % 3 != 2 {
            events.sort_by_key(|(second, _)| *second);
        }
        let events: Vec<Value> = events.into_iter().map(|(_, event)| event).collect();
        append(&opened.engine, &events);
        if round % 4 == 3 {
            assert_paths_agree(&*opened.index, &tenant(), &format!("after commit {round}"));
        }
    }
    assert_paths_agree(&*opened.index, &tenant(), "after every commit");
}

/// Customers built so that each path through a funnel is known: appended out of time order,
/// one across the end of November.
pub fn a_funnel_of_constructed_customers_from_the_path_table(harness: &dyn InsightHarness) {
    let opened = open(harness);
    let event = |n: usize, (subject, channel, kind, outcome, hours): (&str, &str, &str, &str, i64)| {
        let mut event = json!({"id": format!("f{n}"), "source": "//web", "type": kind, "action": "other",
            "time": Micros(START + hours * HOUR).to_rfc3339(), "subject": subject, "outcome": outcome,
            "actor": {"id": "agent-1", "type": "user"}, "targets": [{"type": "contact", "id": format!("t{n}")}],
            "origin": {"service": channel}});
        if outcome == "failure" {
            event["reason"] = json!("identity_not_confirmed");
        }
        event
    };
    let (open_, verify, resolve) = ("contact.opened", "contact.verified", "contact.resolved");
    let november_30 = 29 * 24;
    let mut customers = vec![
        // Converts in 2 hours.
        ("c1", "chat", open_, "success", 0),
        ("c1", "chat", verify, "success", 1),
        ("c1", "chat", resolve, "success", 2),
        // A failed verification does not count; resolved after the day's window.
        ("c2", "chat", open_, "success", 0),
        ("c2", "chat", verify, "failure", 1),
        ("c2", "chat", verify, "success", 3),
        ("c2", "chat", resolve, "success", 30),
        // A resolution before opening does not count; converts in 4 hours.
        ("c3", "phone", resolve, "success", 0),
        ("c3", "phone", open_, "success", 5),
        ("c3", "phone", verify, "success", 6),
        ("c3", "phone", resolve, "success", 9),
        // Across the month's end: converts in 6 hours.
        ("c4", "phone", open_, "success", november_30 + 23),
        ("c4", "phone", verify, "success", november_30 + 25),
        ("c4", "phone", resolve, "success", november_30 + 29),
        ("c5", "email", open_, "success", 4),
        // Opened before the range.
        ("c6", "email", open_, "success", -2),
        ("c6", "email", verify, "success", -1),
    ];
    customers.reverse();
    let events: Vec<Value> = customers.into_iter().enumerate().map(|(n, c)| event(n, c)).collect();
    append(&opened.engine, &events[..9]);
    append(&opened.engine, &events[9..]);
    let steps = "type:contact.opened;type:contact.verified outcome:success;type:contact.resolved";
    let query = funnel_query(steps, 24 * HOUR, Some(Field::Channel), START, 0);
    let answer = funnel(&*opened.index, &tenant(), &query).expect("a funnel");
    assert_eq!(answer, funnel(&Exact(&*opened.index), &tenant(), &query).expect("a funnel"));
    let counts = |steps: &[evident_wire::insight::FunnelStep]| -> Vec<u64> {
        steps.iter().map(|s| s.customers.expect("shown")).collect()
    };
    assert_eq!(counts(&answer.steps), [5, 4, 3]);
    let times = &answer.time_to_convert;
    assert_eq!(
        (times.customers, times.median_seconds, times.p90_seconds),
        (Some(3), Some(14_400.0), Some(21_600.0))
    );
    let groups: Vec<(Option<String>, Vec<u64>)> =
        answer.breakdown.iter().map(|g| (g.key.clone(), counts(&g.steps))).collect();
    let key = |k: &str| Some(k.to_owned());
    assert_eq!(
        groups,
        [(key("chat"), vec![2, 2, 1]), (key("email"), vec![1, 0, 0]), (key("phone"), vec![2, 2, 2])]
    );
    let read = PathRead::covering(query.from, query.to);
    assert!(opened.index.paths(&tenant(), &read, &mut |_| {}).expect("paths"), "no path table");
}

pub fn rollups_agree_with_the_scan_on_random_histories(harness: &dyn InsightHarness) {
    let opened = open(harness);
    for seed in 1..=8u64 {
        // Each seed's events join the history of the ones before.
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let n = 300 + rng.below(500);
        append_random(&opened.engine, &mut rng, seed * 10_000, n);
        assert_rollups_agree(&*opened.index, &format!("seed {seed}"));
    }
}

pub fn a_question_right_after_an_acknowledgement_counts_it(harness: &dyn InsightHarness) {
    let opened = open(harness);
    let mut query = trend_query(START, START + 24 * HOUR, Some(Field::Channel), Bucket::Hour, Zone::UTC);
    query.threshold.min_customers = 0;
    let mut answered = Vec::new();
    for n in 0..20u64 {
        append(
            &opened.engine,
            &[json!({"id": format!("a{n}"), "source": "//web", "type": "contact.opened",
            "action": "other", "time": "2026-11-01T05:30:00Z", "targets": [{"type": "contact", "id": format!("c{n}")}],
            "actor": {"id": "agent-1", "type": "user"}, "subject": format!("cus-{n}"), "outcome": "success",
            "origin": {"service": "chat"}})],
        );
        let answer = trend(&*opened.index, &tenant(), &query).expect("a trend");
        answered.push(answer.series[0].points[5].counts.events);
    }
    assert_eq!(answered, (1..=20).map(Some).collect::<Vec<_>>());
}

pub fn rollups_resume_after_a_reopen_without_counting_twice(harness: &dyn InsightHarness) {
    across_a_reopen(harness, Rng(77), (400, 300), &|| {}, "the reopen");
}

/// Nothing personal enters the rollups or the path table, before or after the subject's erasure:
/// `stored` answers every text they keep (their names and kinds, say). The subject's pseudonymous id may be
/// among them, as it is in the search index and the log's entries.
pub fn rollups_hold_nothing_personal(harness: &dyn InsightHarness, stored: &dyn Fn() -> Vec<String>) {
    let opened = open(harness);
    let personal = |n: u64| {
        json!({"id": format!("p{n}"), "source": "//web", "type": "customer.updated", "action": "update",
            "time": "2026-11-02T10:00:00Z", "subject": "cus-erase",
            "actor": {"id": "agent-1", "type": "user", "display": "Agent Alice Jones"},
            "targets": [{"type": "customer", "id": "cus-erase", "display": "Bob Secret-Name"}],
            "origin": {"service": "chat", "ip": "203.0.113.77"}, "outcome": "success",
            "changes": [{"field": "/email", "before": "bob.old@example.com", "after": "bob.new@example.com"}],
            "data_classes": ["pii"]})
    };
    append(&opened.engine, &[personal(1), personal(2)]);
    let mut query = trend_query(START, START + 48 * HOUR, None, Bucket::Day, Zone::UTC);
    query.threshold.min_customers = 0;
    let answer = trend(&*opened.index, &tenant(), &query).expect("a trend");
    assert_eq!(answer.series[0].total.events, Some(2));
    // And the path table (a funnel folds it first).
    let query = funnel_query("type:customer.updated;type:customer.updated", HOUR, None, START, 0);
    let answer = funnel(&*opened.index, &tenant(), &query).expect("a funnel");
    assert_eq!(answer.steps.iter().map(|s| s.customers).collect::<Vec<_>>(), [Some(1), Some(1)]);
    let secrets = ["Alice", "Bob", "Secret", "203.0.113", "example.com", "pii:"];
    let check = |stage: &str| {
        let texts = stored();
        assert!(texts.contains(&"chat".to_owned()) && texts.contains(&"cus-erase".to_owned()), "{texts:?}");
        for text in &texts {
            assert!(!secrets.iter().any(|s| text.contains(s)), "{stage}: {text:?} in the rollups");
        }
    };
    check("before erasure");
    assert!(opened.engine.erase_subject(&tenant(), "cus-erase").expect("erasure"));
    check("after erasure");
}
