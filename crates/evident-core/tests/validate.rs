//! Validation of producer events: every rule of `EVENT-SCHEMA.md` §1 and the ones `validate`
//! decides where the schema is silent, driven through one `check` helper.

use evident_core::event::{SensitiveTextPolicy, TenantPolicy};
use evident_core::validate::{FieldError, MAX_EVENT_BYTES, Validated, parse_event_json, validate_event};
use evident_wire::names::{Action, ActorType, DataClass, Outcome, Severity};
use serde_json::{Value, json};

/// An event using every field.
fn full() -> Value {
    json!({
        "id": "evt-0001",
        "source": "//crm.example.com/support-api",
        "type": "customer.record.updated",
        "action": "update",
        "time": "2026-11-26T10:53:25.123456+01:00",
        "actor": {
            "id": "u-42", "type": "user", "display": "Ann Example", "on_behalf_of": "u-7",
            "session": "s-1", "auth": {"method": "totp", "mfa": true}
        },
        "subject": "cust-9",
        "targets": [{"type": "customer", "id": "cust-9", "display": "Bob Customer"}, {"type": "invoice", "id": "inv-3"}],
        "outcome": "success",
        "reason": "ticket SUP-1234: customer asked to fix their email",
        "changes": [
            {"field": "/email", "before": "bob@old.example", "after": "bob@new.example"},
            {"field": "/phones/0", "before": null},
            {"field": "/tags", "after": ["vip", {"since": 2026}]}
        ],
        "origin": {"ip": "2001:DB8::1", "user_agent": "Mozilla/5.0 (X11)", "host": "crm-7", "service": "support-api"},
        "correlation": {
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "request_id": "req-1", "correlation_id": "corr-1"
        },
        "severity": "medium",
        "data_classes": ["pii", "financial"],
        "metadata": {"region": "eu-west-1", "email": "bob@new.example"}
    })
}

/// An event with only the required fields.
fn minimal() -> Value {
    json!({
        "id": "e1", "source": "sso", "type": "auth.login.succeeded", "action": "login",
        "time": "2026-11-26T10:53:25Z", "actor": {"id": "u-42"},
        "targets": [{"type": "app", "id": "crm"}], "outcome": "success", "origin": {"service": "sso"}
    })
}

/// `event` with the member at `pointer` set to `value` (created if missing; an array index equal
/// to the length appends).
fn set(mut event: Value, pointer: &str, value: Value) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    match event.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}")) {
        Value::Object(members) => {
            members.insert(last.replace("~1", "/").replace("~0", "~"), value);
        }
        Value::Array(items) => {
            let index: usize = last.parse().expect("an index");
            if index == items.len() { items.push(value) } else { items[index] = value }
        }
        other => panic!("{parent} is {other}"),
    }
    event
}

/// `event` without the member at `pointer`.
fn unset(mut event: Value, pointer: &str) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    let members = event.pointer_mut(parent).and_then(Value::as_object_mut).expect("an object");
    assert!(members.remove(last).is_some(), "no {pointer}");
    event
}

fn mask() -> TenantPolicy {
    TenantPolicy { sensitive_text: SensitiveTextPolicy::Mask, ..TenantPolicy::default() }
}

/// What validation said about one event.
struct Checked(Result<Validated, Vec<FieldError>>);

impl Checked {
    fn validated(self) -> Validated {
        self.0.expect("a valid event")
    }

    fn messages(self) -> Vec<String> {
        self.0.expect_err("errors").into_iter().map(|error| error.message).collect()
    }

    fn warnings(self) -> Vec<String> {
        self.validated().warnings
    }
}

/// Validates `event` under `policy` and compares its errors, as sorted `"field rule"` lines, with
/// `expect` (empty: the event is valid). Returns the outcome for closer looks.
fn check_with(policy: &TenantPolicy, event: Value, expect: &[&str]) -> Checked {
    let outcome = validate_event(&event, policy);
    let mut actual: Vec<String> = match &outcome {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|error| format!("{} {}", error.field, error.rule)).collect(),
    };
    actual.sort();
    let mut expect: Vec<String> = expect.iter().map(|line| line.to_string()).collect();
    expect.sort();
    assert_eq!(actual, expect, "errors: {outcome:#?}");
    Checked(outcome)
}

fn check(event: Value, expect: &[&str]) -> Checked {
    check_with(&TenantPolicy::default(), event, expect)
}

#[test]
fn a_full_event_is_valid() {
    let validated = check(full(), &[]).validated();
    assert!(validated.warnings.is_empty(), "{:?}", validated.warnings);
    let event = validated.event;
    assert_eq!(event.time.to_rfc3339(), "2026-11-26T09:53:25.123456Z");
    assert_eq!(
        (event.action, event.outcome, event.severity),
        (Action::Update, Outcome::Success, Severity::Medium)
    );
    assert_eq!(event.actor.actor_type, Some(ActorType::User));
    assert_eq!(event.actor.auth.as_ref().and_then(|auth| auth.mfa), Some(true));
    assert_eq!(event.targets[1].display, None);
    assert_eq!(event.changes[1].before, Some(Value::Null), "null is a value");
    assert_eq!(event.changes[1].after, None, "absent is not null");
    assert_eq!(event.changes[2].after, Some(json!(["vip", {"since": 2026}])));
    assert_eq!(event.origin.ip.as_deref(), Some("2001:db8::1"), "canonical form");
    let correlation = event.correlation.unwrap();
    assert_eq!(
        correlation.traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(event.data_classes, [DataClass::Pii, DataClass::Financial]);
    assert_eq!(event.metadata["region"], "eu-west-1");
}

#[test]
fn a_minimal_event_is_valid() {
    let event = check(minimal(), &[]).validated().event;
    assert_eq!(event.severity, Severity::Info);
    assert!(event.changes.is_empty() && event.data_classes.is_empty() && event.metadata.is_empty());
    assert_eq!((event.subject, event.reason, event.correlation), (None, None, None));
    assert_eq!(event.origin.service.as_deref(), Some("sso"));
}

#[test]
fn required_fields() {
    for name in ["id", "source", "type", "action", "time", "actor", "targets", "outcome", "origin"] {
        check(unset(minimal(), &format!("/{name}")), &[&format!("{name} required")]);
        check(set(minimal(), &format!("/{name}"), Value::Null), &[&format!("{name} required")]);
    }
    check(unset(minimal(), "/actor/id"), &["actor.id required"]);
    check(unset(full(), "/targets/1/type"), &["targets[1].type required"]);
    check(unset(full(), "/targets/0/id"), &["targets[0].id required"]);
    check(unset(full(), "/changes/2/field"), &["changes[2].field required"]);
    let message = check(unset(minimal(), "/actor/id"), &["actor.id required"]).messages();
    assert_eq!(message, ["actor.id is required"]);
}

#[test]
fn wrong_json_types() {
    let cases = [
        ("/id", json!(5), "id type"),
        ("/source", json!(["x"]), "source type"),
        ("/action", json!(3), "action type"),
        ("/time", json!(1764150805), "time type"),
        ("/actor", json!("u-42"), "actor type"),
        ("/actor/auth", json!("totp"), "actor.auth type"),
        ("/actor/auth/mfa", json!("yes"), "actor.auth.mfa type"),
        ("/subject", json!(9), "subject type"),
        ("/targets", json!({"type": "app", "id": "crm"}), "targets type"),
        ("/targets/0", json!("crm"), "targets[0] type"),
        ("/reason", json!(false), "reason type"),
        ("/changes", json!({}), "changes type"),
        ("/changes/0/field", json!(1), "changes[0].field type"),
        ("/origin", json!(["sso"]), "origin type"),
        ("/origin/ip", json!(167772161), "origin.ip type"),
        ("/correlation", json!("req-1"), "correlation type"),
        ("/correlation/request_id", json!(1), "correlation.request_id type"),
        ("/severity", json!(1), "severity type"),
        ("/data_classes", json!("pii"), "data_classes type"),
        ("/data_classes/1", json!(2), "data_classes[1] type"),
        ("/metadata", json!(["a"]), "metadata type"),
        ("/metadata/region", json!(1), "metadata.region type"),
        ("/metadata/region", Value::Null, "metadata.region type"),
    ];
    for (pointer, value, expect) in cases {
        check(set(full(), pointer, value), &[expect]);
    }
    check(json!([minimal()]), &[" type"]);
}

#[test]
fn lengths_count_chars() {
    let text = |n: usize| Value::String("x".repeat(n));
    let cases = [
        ("/id", text(0), "id length"),
        ("/id", text(129), "id length"),
        ("/source", text(513), "source length"),
        ("/type", Value::String(format!("a.{}", "b".repeat(127))), "type length"),
        ("/actor/id", text(257), "actor.id length"),
        ("/actor/display", text(257), "actor.display length"),
        ("/actor/on_behalf_of", text(0), "actor.on_behalf_of length"),
        ("/actor/session", text(257), "actor.session length"),
        ("/actor/auth/method", text(65), "actor.auth.method length"),
        ("/subject", text(0), "subject length"),
        ("/targets/0/type", text(129), "targets[0].type length"),
        ("/targets/0/id", text(0), "targets[0].id length"),
        ("/targets/1/display", text(257), "targets[1].display length"),
        ("/reason", text(2049), "reason length"),
        ("/changes/0/field", Value::String(format!("/{}", "a".repeat(1024))), "changes[0].field length"),
        ("/origin/user_agent", text(1025), "origin.user_agent length"),
        ("/origin/host", text(257), "origin.host length"),
        ("/origin/service", text(257), "origin.service length"),
        ("/correlation/request_id", text(129), "correlation.request_id length"),
        ("/correlation/correlation_id", text(129), "correlation.correlation_id length"),
        ("/metadata/region", text(1025), "metadata.region length"),
    ];
    for (pointer, value, expect) in cases {
        check(set(full(), pointer, value), &[expect]);
    }
    let long_key = "k".repeat(65);
    check(
        set(full(), &format!("/metadata/{long_key}"), json!("v")),
        &[&format!("metadata.{long_key} length")],
    );
    check(set(full(), "/metadata/", json!("v")), &["metadata. length"]);
    // At the limits, in chars not bytes: 128 two-byte chars are a valid id.
    check(set(full(), "/id", Value::String("é".repeat(128))), &[]);
    check(set(full(), "/reason", text(2048)), &[]);
    check(set(full(), "/metadata/region", Value::String("€".repeat(1024))), &[]);
}

#[test]
fn formats() {
    let cases = [
        ("/id", json!("evt\u{0}1"), "id format"),
        ("/source", json!("//crm.example.com/support api"), "source format"),
        ("/actor/id", json!("u-42\n"), "actor.id format"),
        ("/reason", json!("line one\tline two"), "reason format"),
        ("/targets/1/display", json!("Bob\u{7f}"), "targets[1].display format"),
        ("/metadata/region", json!("eu\u{85}west"), "metadata.region format"),
        ("/origin/ip", json!("300.1.1.1"), "origin.ip format"),
        ("/origin/ip", json!("fe80::1%eth0"), "origin.ip format"),
        ("/changes/0/field", json!("email"), "changes[0].field format"),
        ("/changes/0/field", json!("/a~2b"), "changes[0].field format"),
        ("/changes/0/field", json!("/a~"), "changes[0].field format"),
    ];
    for (pointer, value, expect) in cases {
        check(set(full(), pointer, value), &[expect]);
    }
    check(set(full(), "/metadata/re\u{1}gion", json!("x")), &["metadata.re\u{1}gion format"]);
    for pointer in ["", "/", "/a~0b/c~1d/0", "/ü"] {
        check(set(full(), "/changes/0/field", json!(pointer)), &[]);
    }
    // Control characters are fine inside before and after.
    check(set(full(), "/changes/0/after", json!("line one\nline two")), &[]);
}

#[test]
fn event_type_is_dotted() {
    for bad in [
        "customer",
        "Customer.Record",
        "customer..updated",
        ".customer.updated",
        "customer.updated.",
        "a.b c",
    ] {
        check(set(minimal(), "/type", json!(bad)), &["type format"]);
    }
    for good in ["auth.login", "customer.record.updated", "a-b.c_d.0"] {
        check(set(minimal(), "/type", json!(good)), &[]);
    }
}

#[test]
fn time_is_rfc3339_between_1970_and_9999() {
    for bad in [
        "2026-11-26",
        "2026-11-26T10:53:25",
        "yesterday",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
    ] {
        check(set(minimal(), "/time", json!(bad)), &["time format"]);
    }
    check(set(minimal(), "/time", json!("9999-12-31T23:00:00-05:00")), &["time format"]);
    for good in ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-11-26t10:53:25.1234567z"] {
        check(set(minimal(), "/time", json!(good)), &[]);
    }
}

#[test]
fn enums() {
    let cases = [
        ("/action", json!("Update"), "action enum"),
        ("/actor/type", json!("robot"), "actor.type enum"),
        ("/outcome", json!("ok"), "outcome enum"),
        ("/severity", json!("urgent"), "severity enum"),
        ("/data_classes/1", json!("ssn"), "data_classes[1] enum"),
    ];
    for (pointer, value, expect) in cases {
        check(set(full(), pointer, value), &[expect]);
    }
    let message = check(set(minimal(), "/outcome", json!("ok")), &["outcome enum"]).messages();
    assert_eq!(message, ["outcome must be one of: success, failure, unknown"]);
}

#[test]
fn unknown_fields_are_refused_with_a_suggestion() {
    let cases = [
        ("/actr", "actr", "unknown field `actr`; did you mean `actor`?"),
        ("/actor/dispaly", "actor.dispaly", "unknown field `dispaly`; did you mean `display`?"),
        ("/actor/auth/otp", "actor.auth.otp", "unknown field `otp`"),
        ("/targets/1/kind", "targets[1].kind", "unknown field `kind`"),
        ("/changes/1/value", "changes[1].value", "unknown field `value`"),
        ("/origin/ipaddr", "origin.ipaddr", "unknown field `ipaddr`"),
        ("/origin/hots", "origin.hots", "unknown field `hots`; did you mean `host`?"),
        (
            "/correlation/trace_parent",
            "correlation.trace_parent",
            "unknown field `trace_parent`; did you mean `traceparent`?",
        ),
    ];
    for (pointer, field, message) in cases {
        let outcome = check(set(full(), pointer, json!("x")), &[&format!("{field} unknown_field")]);
        assert_eq!(outcome.messages(), [message]);
    }
}

#[test]
fn conditionally_required_fields() {
    let failed = set(minimal(), "/outcome", json!("failure"));
    check(failed.clone(), &["reason conditional"]);
    check(set(failed.clone(), "/reason", json!("  ")), &["reason conditional"]);
    check(set(failed, "/reason", json!("invalid_password")), &[]);

    let purpose_required =
        TenantPolicy { require_purpose_for_personal_reads: true, ..TenantPolicy::default() };
    let personal_read = set(set(minimal(), "/action", json!("read")), "/data_classes", json!(["phi"]));
    check_with(&purpose_required, personal_read.clone(), &["reason conditional"]);
    check_with(
        &purpose_required,
        set(personal_read.clone(), "/action", json!("export")),
        &["reason conditional"],
    );
    check_with(&purpose_required, set(personal_read.clone(), "/reason", json!("treatment")), &[]);
    check_with(&purpose_required, set(personal_read.clone(), "/data_classes", json!([])), &[]);
    check_with(&purpose_required, set(personal_read.clone(), "/action", json!("login")), &[]);
    check(personal_read, &[]);

    for action in ["create", "update", "delete"] {
        let changing = set(minimal(), "/action", json!(action));
        check(changing.clone(), &["changes conditional"]);
        check(set(changing.clone(), "/changes", json!([])), &["changes conditional"]);
        check(set(changing, "/changes", json!([{"field": "/name", "after": "x"}])), &[]);
    }
    check(set(minimal(), "/changes", json!([])), &[]);
}

#[test]
fn item_counts() {
    let target = json!({"type": "app", "id": "crm"});
    let change = json!({"field": "/a", "after": 1});
    check(set(minimal(), "/targets", json!([])), &["targets min_items"]);
    check(set(minimal(), "/targets", Value::Array(vec![target.clone(); 100])), &[]);
    check(set(minimal(), "/targets", Value::Array(vec![target; 101])), &["targets max_items"]);
    check(set(full(), "/changes", Value::Array(vec![change.clone(); 200])), &[]);
    check(set(full(), "/changes", Value::Array(vec![change; 201])), &["changes max_items"]);
    check(set(minimal(), "/origin", json!({})), &["origin min_items"]);
    check(set(minimal(), "/origin", json!({"ip": null})), &["origin min_items"]);
    let metadata = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect());
    check(set(minimal(), "/metadata", metadata(50)), &[]);
    check(set(minimal(), "/metadata", metadata(51)), &["metadata max_items"]);
}

#[test]
fn duplicate_data_classes() {
    check(
        set(minimal(), "/data_classes", json!(["pii", "phi", "pii", "pci", "phi"])),
        &["data_classes[2] duplicate", "data_classes[4] duplicate"],
    );
}

#[test]
fn change_values_are_bounded_together() {
    // Two values of 32 KiB: the JSON quotes push them past 64 KiB.
    let half = Value::String("x".repeat(32 * 1024));
    let big = set(set(full(), "/changes/0/before", half.clone()), "/changes/0/after", half);
    check(big, &["changes size"]);
    let under = Value::String("x".repeat(30 * 1024));
    check(set(set(full(), "/changes/0/before", under.clone()), "/changes/0/after", under), &[]);
}

#[test]
fn every_error_is_reported_at_once() {
    let event = json!({
        "id": "", "source": "crm", "type": "login", "action": "log-in", "time": "now",
        "actor": {"display": 5}, "targets": [{"type": "app"}, "crm"], "outcome": "failure",
        "origin": {"ip": "localhost"}, "severity": "info", "metadata": {"k": 1}, "extra": true
    });
    check(
        event,
        &[
            "id length",
            "type format",
            "action enum",
            "time format",
            "actor.id required",
            "actor.display type",
            "targets[0].id required",
            "targets[1] type",
            "reason conditional",
            "origin.ip format",
            "metadata.k type",
            "extra unknown_field",
        ],
    );
}

#[test]
fn a_valid_traceparent_is_kept() {
    let traceparent =
        |text: &str| set(minimal(), "/correlation", json!({"traceparent": text, "request_id": "r"}));
    for good in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future-part",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        let validated = check(traceparent(good), &[]).validated();
        assert!(validated.warnings.is_empty());
        assert_eq!(validated.event.correlation.unwrap().traceparent.as_deref(), Some(good));
    }
}

#[test]
fn a_malformed_traceparent_is_dropped_with_a_warning() {
    let traceparent =
        |value: Value| set(minimal(), "/correlation", json!({"traceparent": value, "request_id": "r"}));
    for bad in [
        json!("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        json!("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        json!("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        json!("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
        json!("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra"),
        json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
        json!("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"),
        json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"),
        json!("é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        json!(42),
    ] {
        let validated = check(traceparent(bad.clone()), &[]).validated();
        let correlation = validated.event.correlation.expect("request_id stays");
        assert_eq!(correlation.traceparent, None, "{bad}");
        assert_eq!(validated.warnings.len(), 1);
        assert!(
            validated.warnings[0].starts_with("correlation.traceparent: malformed W3C traceparent dropped")
        );
    }
    // Nothing left: no correlation at all.
    let alone = set(minimal(), "/correlation", json!({"traceparent": "nope"}));
    assert_eq!(check(alone, &[]).validated().event.correlation, None);
}

#[test]
fn card_numbers_in_free_text_are_refused_without_echoing_them() {
    let card = "4111 1111 1111 1111";
    let fields = [
        ("/reason", "reason"),
        ("/actor/display", "actor.display"),
        ("/targets/1/display", "targets[1].display"),
        ("/origin/user_agent", "origin.user_agent"),
        ("/metadata/note", "metadata.note"),
        ("/metadata/email", "metadata.email"),
        ("/changes/0/after", "changes[0].after"),
    ];
    for (pointer, field) in fields {
        let outcome = check(
            set(full(), pointer, json!(format!("paid with {card}"))),
            &[&format!("{field} card_number")],
        );
        for message in outcome.messages() {
            assert!(!message.contains("1111") && !message.contains("4111"), "{message}");
        }
    }
    check(
        set(full(), "/changes/2/after", json!({"cards": [{"number": "4111-1111-1111-1111"}]})),
        &["changes[2].after card_number"],
    );
    check(set(full(), "/reason", json!("amex 378282246310005")), &["reason card_number"]);
    // Personal metadata keys are validated the same way.
    let personal = TenantPolicy { personal_metadata_keys: vec!["email".into()], ..TenantPolicy::default() };
    check_with(&personal, set(full(), "/metadata/email", json!(card)), &["metadata.email card_number"]);
}

#[test]
fn digit_runs_that_are_not_card_numbers_pass() {
    for reason in ["order 4111111111111112", "order 411111111111", "order 2026112612345678"] {
        check(set(full(), "/reason", json!(reason)), &[]);
    }
    // Identifiers are not free text.
    check(set(full(), "/targets/0/id", json!("4111111111111111")), &[]);
}

#[test]
fn secrets_in_free_text_are_refused() {
    let cases = [
        ("/reason", json!("login with password=hunter2"), "reason secret"),
        ("/actor/display", json!("token: abc123"), "actor.display secret"),
        ("/origin/user_agent", json!("curl Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"), "origin.user_agent secret"),
        ("/metadata/auth", json!("ApiKey = 'k-1'"), "metadata.auth secret"),
        (
            "/changes/0/before",
            json!({"config": "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----"}),
            "changes[0].before secret",
        ),
    ];
    for (pointer, value, expect) in cases {
        let outcome = check(set(full(), pointer, value), &[expect]);
        for message in outcome.messages() {
            assert!(
                !["hunter2", "abc123", "eyJ", "k-1", "MHc"].iter().any(|secret| message.contains(secret))
            );
        }
    }
    check(set(full(), "/reason", json!("password reset; Bearer authentication failed")), &[]);
}

#[test]
fn sensitive_text_is_masked_when_the_tenant_says_so() {
    let event = set(
        set(full(), "/reason", json!("card 4111-1111-1111-1111, password=hunter2")),
        "/changes/0/after",
        json!({"card": "4111111111111111", "n": 4111111111111111_u64, "note": "token=t0k"}),
    );
    let validated = check_with(&mask(), event, &[]).validated();
    assert_eq!(validated.event.reason.as_deref(), Some("card ****-****-****-1111, password=[REDACTED]"));
    assert_eq!(
        validated.event.changes[0].after,
        Some(json!({"card": "************1111", "n": 4111111111111111_u64, "note": "token=[REDACTED]"}))
    );
    assert_eq!(
        validated.warnings,
        [
            "field reason: card number masked",
            "field reason: secret masked",
            "field changes[0].after: card number masked",
            "field changes[0].after: secret masked",
        ]
    );
    let warned =
        check_with(&mask(), set(full(), "/metadata/note", json!("4111111111111111")), &[]).warnings();
    assert_eq!(warned, ["field metadata.note: card number masked"]);
}

#[test]
fn raw_json_is_parsed_strictly() {
    let policy = TenantPolicy::default();
    let expect_one = |bytes: &[u8], field: &str, rule: &str| -> String {
        let errors = parse_event_json(bytes, &policy).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].field.as_str(), errors[0].rule), (field, rule));
        errors[0].message.clone()
    };
    let message = expect_one(b"{\"id\": \"e1\",\n  \"source\": }", "", "json");
    assert!(message.contains("line 2 column 13"), "{message}");
    expect_one(b"{\"id\": \"e1\"} trailing", "", "json");
    expect_one(b"{\"id\": \"e\xff\"}", "", "json");
    expect_one(b"", "", "json");
    let message = expect_one(br#"{"id": "e1", "id": "e2"}"#, "", "json");
    assert!(message.contains("duplicate key `id`") && message.contains("line 1"), "{message}");
    let message = expect_one(br#"{"actor": {"id": "a", "id": "b"}}"#, "", "json");
    assert!(message.contains("duplicate key `id`"), "{message}");
    expect_one(b"[1, 2]", "", "type");
    expect_one(b"\"event\"", "", "type");
    expect_one(b"null", "", "type");

    let oversize = format!("{{\"reason\": \"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
    let message = expect_one(oversize.as_bytes(), "", "size");
    assert!(message.contains("262144"), "{message}");

    let bytes = serde_json::to_vec(&full()).unwrap();
    assert_eq!(parse_event_json(&bytes, &policy), validate_event(&full(), &policy));
}
