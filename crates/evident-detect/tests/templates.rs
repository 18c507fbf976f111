//! Each template (and the baseline) finds what it should and nothing else; state survives a
//! round trip through its bytes; memory stays bounded.

use evident_detect::eval::{Evaluator, Finding, State, keys_held};
use evident_detect::observe::Observed;
use evident_detect::rule::{Rule, Severity, default_rules};
use serde_json::{Value, json};

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
/// 2026-11-23T00:00:00Z, a Monday.
const MONDAY: i64 = 1_795_392_000 * SECOND;

fn rule(template: &str, params: Value) -> Rule {
    Rule {
        id: "r".into(),
        template: template.into(),
        params,
        severity: Severity::High,
        enabled: true,
        description: String::new(),
    }
}

/// A successful read of customer `subject` by `actor` at `time`, with a purpose.
fn read(actor: &str, subject: &str, time: i64) -> Observed {
    Observed {
        source: "//crm".into(),
        event_type: "customer.record.viewed".into(),
        action: "read".into(),
        outcome: "success".into(),
        actor: actor.into(),
        actor_type: "user".into(),
        subject: Some(subject.into()),
        targets: vec![("customer".into(), subject.into())],
        reason: Some("ticket 1".into()),
        data_classes: vec!["pii".into()],
        time,
        ..Observed::default()
    }
}

fn failed_login(actor: &str, ip: &str, time: i64) -> Observed {
    Observed {
        source: "//sso".into(),
        event_type: "auth.login.failed".into(),
        action: "login".into(),
        outcome: "failure".into(),
        actor: actor.into(),
        actor_type: "user".into(),
        targets: vec![("service".into(), "desk".into())],
        ip: Some(ip.into()),
        time,
        ..Observed::default()
    }
}

/// Feeds `events` in order (arrival = event time) and answers every finding.
fn run(rule: &Rule, events: Vec<Observed>) -> Vec<Finding> {
    let mut evaluator = Evaluator::new(std::slice::from_ref(rule), State::default()).unwrap();
    let mut findings = Vec::new();
    for (n, mut event) in events.into_iter().enumerate() {
        event.index = n as u64;
        if event.event_id.is_empty() {
            event.event_id = format!("e{n}");
        }
        findings.extend(evaluator.observe(&event, event.time));
    }
    findings
}

#[test]
fn mass_access() {
    let r = rule("mass_access", json!({"threshold": 5, "window_secs": 600}));
    let many: Vec<Observed> = (0..6).map(|n| read("a", &format!("c{n}"), MONDAY + n * MINUTE)).collect();
    let found = run(&r, many);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].trigger_count, 6);
    assert_eq!(found[0].triggers.len(), 6);
    // The same customer again and again, or many customers spread over a long time: nothing.
    assert!(run(&r, (0..20).map(|n| read("a", "c1", MONDAY + n * MINUTE)).collect()).is_empty());
    assert!(
        run(&r, (0..20).map(|n| read("a", &format!("c{n}"), MONDAY + n * 3 * MINUTE)).collect()).is_empty()
    );
    // Two actors sharing the load: nothing.
    let shared =
        (0..8).map(|n| read(if n % 2 == 0 { "a" } else { "b" }, &format!("c{n}"), MONDAY + n)).collect();
    assert!(run(&r, shared).is_empty());
}

#[test]
fn failed_burst_by_ip_and_actor() {
    let r = rule("failed_burst", json!({"threshold": 5, "window_secs": 300, "by": "ip"}));
    let burst: Vec<Observed> =
        (0..8).map(|n| failed_login(&format!("u{n}"), "ip:aa", MONDAY + n * 10 * SECOND)).collect();
    let found = run(&r, burst.clone());
    assert_eq!(found.len(), 1, "one finding per window");
    assert_eq!(found[0].key, "ip:aa");
    assert_eq!(found[0].actor, None);
    let slow: Vec<Observed> = (0..8).map(|n| failed_login("u", "ip:aa", MONDAY + n * 2 * MINUTE)).collect();
    assert!(run(&r, slow).is_empty());
    let by_actor = rule("failed_burst", json!({"threshold": 5, "window_secs": 300, "by": "actor"}));
    assert!(run(&by_actor, burst).is_empty(), "eight different users");
    let one_user: Vec<Observed> =
        (0..5).map(|n| failed_login("u", &format!("ip:{n}"), MONDAY + n * SECOND)).collect();
    assert_eq!(run(&by_actor, one_user).len(), 1);
    // Successful logins never count.
    let mut ok = failed_login("u", "ip:aa", MONDAY);
    ok.outcome = "success".into();
    assert!(run(&by_actor, vec![ok; 10]).is_empty());
}

#[test]
fn off_hours() {
    let r = rule(
        "off_hours",
        json!({"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00", "utc_offset": "+01:00"}),
    );
    // 07:30 UTC is 08:30 local on a Monday: inside.
    assert!(run(&r, vec![read("a", "c", MONDAY + 7 * HOUR + 30 * MINUTE)]).is_empty());
    // 17:30 UTC is 18:30 local: outside; a second read an hour later is a second finding.
    let late = vec![
        read("a", "c", MONDAY + 17 * HOUR + 30 * MINUTE),
        read("a", "d", MONDAY + 17 * HOUR + 40 * MINUTE),
        read("a", "e", MONDAY + 18 * HOUR + 31 * MINUTE),
    ];
    assert_eq!(run(&r, late).len(), 2);
    // Saturday noon: outside.
    assert_eq!(run(&r, vec![read("a", "c", MONDAY + 5 * 24 * HOUR + 11 * HOUR)]).len(), 1);
    // Services are not people.
    let mut service = read("svc", "c", MONDAY + 2 * HOUR);
    service.actor_type = "service".into();
    assert!(run(&r, vec![service]).is_empty());
    // A night shift (22:00 to 06:00, Monday nights only).
    let night = rule("off_hours", json!({"days": [1], "start": "22:00", "end": "06:00", "utc_offset": "Z"}));
    assert!(run(&night, vec![read("a", "c", MONDAY + 24 * HOUR + 3 * HOUR)]).is_empty(), "Tuesday 03:00");
    assert_eq!(
        run(&night, vec![read("a", "c", MONDAY + 3 * HOUR)]).len(),
        1,
        "Monday 03:00 is Sunday's night"
    );
}

#[test]
fn watchlist() {
    let r = rule(
        "watchlist",
        json!({"subjects": ["vip1"], "targets": ["employee:e7"], "exempt_actors": ["desk"]}),
    );
    assert_eq!(run(&r, vec![read("a", "vip1", MONDAY)]).len(), 1);
    assert!(run(&r, vec![read("desk", "vip1", MONDAY)]).is_empty());
    assert!(run(&r, vec![read("a", "c2", MONDAY)]).is_empty());
    let mut employee = read("a", "x", MONDAY);
    employee.subject = None;
    employee.targets = vec![("employee".into(), "e7".into())];
    assert_eq!(run(&r, vec![employee]).len(), 1);
}

#[test]
fn no_purpose() {
    let r = rule("no_purpose", json!({}));
    let mut bare = read("a", "c", MONDAY);
    bare.reason = None;
    let found = run(&r, vec![bare.clone()]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject.as_deref(), Some("c"));
    assert!(run(&r, vec![read("a", "c", MONDAY)]).is_empty(), "a purpose is stated");
    let mut no_personal = bare;
    no_personal.data_classes.clear();
    assert!(run(&r, vec![no_personal]).is_empty(), "no personal data");
}

#[test]
fn sensitive_change_then_export_or_new_place() {
    let r = rule("sensitive_change", json!({"window_secs": 3600}));
    let mut change = read("agent", "c1", MONDAY);
    change.action = "update".into();
    change.changed_fields = vec!["/email".into()];
    let mut export = read("agent2", "c1", MONDAY + 10 * MINUTE);
    export.action = "export".into();
    assert_eq!(run(&r, vec![change.clone(), export.clone()]).len(), 1);
    let mut late = export.clone();
    late.time = MONDAY + 2 * HOUR;
    assert!(run(&r, vec![change.clone(), late]).is_empty(), "after the window");
    let mut harmless = change.clone();
    harmless.changed_fields = vec!["/address".into()];
    assert!(run(&r, vec![harmless, export]).is_empty(), "not a sensitive field");
    // The customer logs in from a new place after their e-mail changed.
    let mut login = failed_login("c1", "ip:home", MONDAY - HOUR);
    login.outcome = "success".into();
    let mut elsewhere = login.clone();
    elsewhere.ip = Some("ip:elsewhere".into());
    elsewhere.time = MONDAY + 5 * MINUTE;
    assert_eq!(run(&r, vec![login.clone(), change.clone(), elsewhere]).len(), 1);
    let mut same_place = login.clone();
    same_place.time = MONDAY + 5 * MINUTE;
    assert!(run(&r, vec![login, change, same_place]).is_empty());
}

#[test]
fn privilege_change() {
    let r = rule("privilege_change", json!({}));
    let admin_event = |event_type: &str, role: &str, actor_type: &str| {
        let mut e = read("key:1", "x", MONDAY);
        e.source = "evident".into();
        e.event_type = event_type.into();
        e.action = "grant".into();
        e.actor_type = actor_type.into();
        e.subject = None;
        e.metadata.insert("role".into(), json!(role));
        e
    };
    let through_api = run(&r, vec![admin_event("evident.admin.key_created", "auditor", "api_key")]);
    assert_eq!(through_api.len(), 1);
    assert_eq!(through_api[0].severity, Severity::Low, "the documented path is expected");
    assert!(
        through_api[0].explanation.contains("through the API: expected"),
        "{}",
        through_api[0].explanation
    );
    let break_glass = run(&r, vec![admin_event("evident.admin.key_created", "admin", "admin")]);
    assert_eq!(break_glass.len(), 1);
    assert_eq!(break_glass[0].severity, r.severity, "a key made outside the API keeps the rule's severity");
    assert!(break_glass[0].explanation.contains("break-glass"), "{}", break_glass[0].explanation);
    let strict = rule("privilege_change", json!({"api_key_grant_severity": "high"}));
    let found = run(&strict, vec![admin_event("evident.admin.key_created", "auditor", "api_key")]);
    assert_eq!(found[0].severity, Severity::High);
    assert!(run(&r, vec![admin_event("evident.admin.key_created", "producer", "api_key")]).is_empty());
    assert_eq!(run(&r, vec![admin_event("evident.rule.updated", "", "api_key")]).len(), 1);
    assert!(run(&r, vec![admin_event("evident.rule.created", "", "system")]).is_empty(), "defaults");
    assert!(run(&r, vec![admin_event("evident.audit.read", "", "api_key")]).is_empty());
    let mut grant = read("hr", "x", MONDAY);
    grant.action = "grant".into();
    assert_eq!(run(&r, vec![grant]).len(), 1, "a role grant in the customer's own system");
}

#[test]
fn first_touch() {
    let r = rule("first_touch", json!({"min_events": 10}));
    let mut history: Vec<Observed> = (0..20).map(|n| read("a", &format!("c{n}"), MONDAY + n)).collect();
    assert!(run(&r, history.clone()).is_empty());
    let mut payroll = read("a", "p", MONDAY + HOUR);
    payroll.targets = vec![("payroll".into(), "p1".into())];
    history.push(payroll.clone());
    let found = run(&r, history);
    assert_eq!(found.len(), 1);
    assert!(found[0].explanation.contains("payroll"));
    assert!(run(&r, vec![payroll]).is_empty(), "a new actor has no history to depart from");
}

#[test]
fn silence() {
    let r = rule("silence", json!({"factor": 5.0, "min_silence_secs": 60, "min_events": 5}));
    let mut evaluator = Evaluator::new(std::slice::from_ref(&r), State::default()).unwrap();
    for n in 0..10 {
        let mut e = read("a", "c", MONDAY + n * 10 * SECOND);
        e.event_id = format!("e{n}");
        evaluator.observe(&e, e.time);
    }
    let last = MONDAY + 90 * SECOND;
    assert!(evaluator.tick(last + 30 * SECOND).is_empty(), "30 s: under a minute");
    assert!(evaluator.tick(last + 61 * SECOND).len() == 1, "61 s > max(5 x 10 s, 60 s)");
    assert!(evaluator.tick(last + 120 * SECOND).is_empty(), "once per silence");
    let mut young = Evaluator::new(std::slice::from_ref(&r), State::default()).unwrap();
    young.observe(&read("a", "c", MONDAY), MONDAY);
    assert!(young.tick(MONDAY + HOUR).is_empty(), "too few arrivals to know the usual gap");
}

#[test]
fn baseline() {
    let r = rule("baseline", json!({"by": "actor", "factor": 5.0, "min_count": 20, "learning_hours": 8}));
    // Ten hours of 5 events an hour, then 30 in one hour.
    let mut events: Vec<Observed> = Vec::new();
    for hour in 0..10 {
        for n in 0..5 {
            events.push(read("a", "c", MONDAY + hour * HOUR + n * MINUTE));
        }
    }
    let quiet = events.clone();
    for n in 0..30 {
        events.push(read("a", "c", MONDAY + 10 * HOUR + n * SECOND));
    }
    let found = run(&r, events);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "a");
    assert_eq!(found[0].trigger_count, 26, "fires as soon as the level is passed");
    assert!(run(&r, quiet).is_empty());
    // No finding while learning.
    let early: Vec<Observed> = (0..100).map(|n| read("a", "c", MONDAY + n * SECOND)).collect();
    assert!(run(&r, early).is_empty());
}

#[test]
fn findings_are_deterministic_and_state_round_trips() {
    let r = rule("mass_access", json!({"threshold": 5, "window_secs": 600}));
    let events: Vec<Observed> = (0..6)
        .map(|n| {
            let mut e = read("a", &format!("c{n}"), MONDAY + n * MINUTE);
            e.index = n as u64;
            e.event_id = format!("e{n}");
            e
        })
        .collect();
    // Half the window before a "restart", half after.
    let mut before = Evaluator::new(std::slice::from_ref(&r), State::default()).unwrap();
    for e in &events[..3] {
        assert!(before.observe(e, e.time).is_empty());
    }
    let bytes = before.state.to_bytes();
    let mut after = Evaluator::new(std::slice::from_ref(&r), State::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(after.state.watermark, Some(2));
    let found: Vec<Finding> = events[3..].iter().flat_map(|e| after.observe(e, e.time)).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found, run(&r, events), "the same finding, the same id");
    assert!(State::from_bytes(b"{not json").is_err());
}

#[test]
fn a_million_actors_stay_bounded() {
    let r = rule("mass_access", json!({"threshold": 3, "window_secs": 600}));
    let mut evaluator = Evaluator::new(std::slice::from_ref(&r), State::default()).unwrap();
    let mut event = read("a", "c", MONDAY);
    for n in 0..1_000_000i64 {
        event.actor = format!("actor{n}");
        event.time = MONDAY + n;
        evaluator.observe(&event, event.time);
    }
    let keys = keys_held(&evaluator.state);
    assert!(keys <= 10_000, "{keys} keys held");
    assert!(evaluator.state.to_bytes().len() < 4 << 20, "state serialises small");
}

#[test]
fn default_rules_compile_and_skip_detection_output() {
    let mut evaluator = Evaluator::new(&default_rules(), State::default()).unwrap();
    assert_eq!(evaluator.active_rules(), default_rules().len());
    let mut finding_event = read("evident-detect", "c", MONDAY + 3 * HOUR);
    finding_event.source = "evident".into();
    finding_event.event_type = "evident.finding.opened".into();
    finding_event.reason = None;
    assert!(evaluator.observe(&finding_event, 0).is_empty());
}
