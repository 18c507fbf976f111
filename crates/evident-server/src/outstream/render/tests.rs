use serde_json::{Value, json};

use super::*;

fn entry(overrides: Value) -> Value {
    let mut entry = json!({
        "id": "evt-1",
        "source": "//crm.example.com/api",
        "type": "customer.record.viewed",
        "action": "read",
        "time": "2026-11-26T10:00:00.000000Z",
        "recorded_at": "2026-11-26T10:00:01.500000Z",
        "event_id": "0190f3a0-0000-7000-8000-000000000001",
        "tenant": "acme",
        "actor": {"id": "agent-1", "type": "user"},
        "subject": "cust-1",
        "targets": [{"type": "customer", "id": "cust-1"}],
        "outcome": "success",
        "origin": {"service": "support-api"},
        "severity": "info",
        "pii_commitment": "c29tZQ==",
    });
    for (key, value) in overrides.as_object().expect("an object") {
        entry[key] = value.clone();
    }
    entry
}

fn at(entry: &Value) -> Entry<'_> {
    Entry { index: 41, origin: "evident.example.com/acme", entry }
}

#[test]
fn cef_escapes_header_and_extension_rules() {
    assert_eq!(cef_header(r"a|b\c"), r"a\|b\\c");
    assert_eq!(cef_header("x\ny"), "x y");
    assert_eq!(cef_value(r"a=b\c"), r"a\=b\\c");
    assert_eq!(cef_value("l1\nl2\r"), r"l1\nl2\r");
    // `|` is literal in an extension value; `=` is literal in a header.
    assert_eq!(cef_value("a|b"), "a|b");
    assert_eq!(cef_header("a=b"), "a=b");
}

#[test]
fn cef_line() {
    let value = entry(json!({"type": "pipe|type", "reason": "why=this\\that"}));
    let Rendered::Text(line) = render(Format::Cef, &at(&value)) else { panic!("text") };
    assert_eq!(
        line,
        "CEF:0|Evident|Evident|1|pipe\\|type|pipe\\|type read success|1|rt=1795687201500 end=1795687200000 \
         act=read outcome=success suser=agent-1 externalId=0190f3a0-0000-7000-8000-000000000001 \
         cs1Label=tenant cs1=acme cs2Label=source cs2=//crm.example.com/api cs3Label=targets \
         cs3=customer/cust-1 cn1Label=index cn1=41 duser=cust-1 reason=why\\=this\\\\that \
         cs4Label=pii_commitment cs4=c29tZQ\\=\\="
    );
}

#[test]
fn syslog_structured_data_escapes_quote_backslash_bracket() {
    assert_eq!(sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
    let value = entry(json!({"reason": "x\"]\\"}));
    let Rendered::Text(message) = render(Format::Rfc5424, &at(&value)) else { panic!("text") };
    let json_text = serde_json::to_string(&value).unwrap();
    assert_eq!(
        message,
        format!(
            "<110>1 2026-11-26T10:00:00.000000Z evident.example.com evident - customer.record.viewed \
             [evident@32473 index=\"41\" tenant=\"acme\" event_id=\"0190f3a0-0000-7000-8000-000000000001\" \
             type=\"customer.record.viewed\" action=\"read\" outcome=\"success\" actor=\"agent-1\" \
             source=\"//crm.example.com/api\" subject=\"cust-1\" reason=\"x\\\"\\]\\\\\" \
             target=\"customer/cust-1\"] \u{feff}{json_text}"
        )
    );
}

#[test]
fn syslog_header_fields_are_printable_and_bounded() {
    let value = entry(json!({"type": format!("a b{}", "x".repeat(40)), "severity": "critical"}));
    let message = rfc5424(&at(&value), Some("body"));
    // PRI = 13 * 8 + 2; MSGID without the space, cut at 32.
    assert!(message.starts_with("<106>1 "), "{message}");
    assert!(message.ends_with(&format!(" ab{} - \u{feff}body", "x".repeat(30))), "{message}");
}

#[test]
fn cloudevents_structured_mode() {
    let value = entry(json!({}));
    let Rendered::Json(event) = render(Format::Cloudevents, &at(&value)) else { panic!("json") };
    assert_eq!(
        event,
        json!({
            "specversion": "1.0",
            "id": "0190f3a0-0000-7000-8000-000000000001",
            "source": "evident.example.com/acme",
            "type": "customer.record.viewed",
            "time": "2026-11-26T10:00:00.000000Z",
            "datacontenttype": "application/json",
            "sequence": "00000000000000000041",
            "subject": "cust-1",
            "data": value,
        })
    );
}

#[test]
fn ocsf_classes_and_activities() {
    let check = |overrides: Value, class_uid: u64, activity_id: u64| {
        let value = entry(overrides);
        let Rendered::Json(event) = render(Format::Ocsf, &at(&value)) else { panic!("json") };
        assert_eq!(
            (event["class_uid"].as_u64(), event["activity_id"].as_u64()),
            (Some(class_uid), Some(activity_id))
        );
        assert_eq!(event["type_uid"].as_u64(), Some(class_uid * 100 + activity_id));
    };
    check(json!({}), 6003, 2);
    check(json!({"action": "update"}), 6003, 3);
    check(json!({"action": "configure"}), 6003, 99);
    check(json!({"action": "login", "type": "auth.login.succeeded"}), 3002, 1);
    check(json!({"action": "logout"}), 3002, 2);
    check(json!({"action": "grant", "targets": [{"type": "role", "id": "admin"}]}), 3001, 7);
    check(json!({"action": "revoke"}), 3001, 8);
    check(json!({"action": "create", "targets": [{"type": "user", "id": "u-9"}]}), 3001, 1);
    check(json!({"action": "delete", "targets": [{"type": "user", "id": "u-9"}]}), 3001, 6);
}

#[test]
fn ocsf_api_activity_fields() {
    let value = entry(json!({"severity": "high", "outcome": "failure", "reason": "denied"}));
    let Rendered::Json(event) = render(Format::Ocsf, &at(&value)) else { panic!("json") };
    assert_eq!(event["time"], json!(1795687200000_i64));
    assert_eq!(event["severity_id"], json!(4));
    assert_eq!((event["status_id"].clone(), event["status_detail"].clone()), (json!(2), json!("denied")));
    assert_eq!(event["metadata"]["uid"], json!("0190f3a0-0000-7000-8000-000000000001"));
    assert_eq!(event["metadata"]["sequence"], json!(41));
    assert_eq!(event["actor"]["user"], json!({"uid": "agent-1", "type": "user", "type_id": 1}));
    assert_eq!(event["api"]["operation"], json!("customer.record.viewed"));
    assert_eq!(event["resources"], json!([{"type": "customer", "uid": "cust-1"}]));
    assert_eq!(event["src_endpoint"], json!({"svc_name": "support-api"}));
    assert_eq!(event["unmapped"]["evident"]["pii_commitment"], json!("c29tZQ=="));
}

#[test]
fn plain_json_is_the_entry_with_index_and_log() {
    let value = entry(json!({}));
    let Rendered::Json(rendered) = render(Format::Json, &at(&value)) else { panic!("json") };
    let mut expected = value.clone();
    expected["index"] = json!(41);
    expected["log"] = json!("evident.example.com/acme");
    assert_eq!(rendered, expected);
}
