//! The clients against a real `evident serve`: the async client has the same typed methods as the
//! blocking one (one endpoint table makes both), the same answers, the same typed errors; the
//! detection endpoints have typed methods too.

mod common;

use common::Serve;
use evident_client::{AsyncClient, Client, Error};
use evident_wire::api::{CreateKey, EventPage, SearchParams};
use evident_wire::detect::{BacktestRequest, CreateWebhook, FindingParams, Rule, StatusRequest};
use serde_json::json;

#[test]
fn the_async_client_answers_what_the_blocking_one_does() {
    let serve = Serve::fresh();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The blocking client must not run inside the runtime: it is used between `block_on`s.
    let blocking = Client::new(&serve.base, Some(serve.admin.clone()));
    let params = SearchParams { source: Some("//async.test".into()), ..SearchParams::default() };
    let (page, vkeys) = runtime.block_on(async_calls(&serve, &params));
    let blocking_page = blocking.search(&params).expect("a blocking search");
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event_id, blocking_page.events[0].event_id);
    assert_eq!(vkeys, blocking.vkeys("default").unwrap());
}

/// Every kind of call through the async client; answers what the blocking client is compared on.
async fn async_calls(serve: &Serve, params: &SearchParams) -> (EventPage, Vec<String>) {
    let admin = AsyncClient::new(&serve.base, Some(serve.admin.clone()));
    let request = CreateKey { tenant: None, role: "producer".into(), label: Some("async".into()) };
    let producer_key = admin.create_key(&request).await.expect("a producer key").key;
    let producer = AsyncClient::new(&serve.base, Some(producer_key));
    let event = json!({
        "id": "a-1", "source": "//async.test", "type": "customer.record.viewed", "action": "read",
        "time": "2026-12-03T10:00:00Z", "actor": {"id": "agent-1", "type": "user"},
        "targets": [{"type": "customer", "id": "c-1"}], "outcome": "success", "origin": {"service": "t"}
    });
    let body = serde_json::to_vec(&json!([event])).unwrap();
    let (status, answer) = producer.post_events("application/json", body).await.expect("posted");
    assert_eq!((status, answer.receipts.len()), (200, 1));
    let event_id = answer.receipts[0].event_id.clone().expect("an event id");

    let page = admin.search(params).await.expect("a search");
    assert!(admin.receipt(&event_id).await.expect("a receipt").starts_with("c2sp.org/tlog-proof@v1"));
    assert_eq!(admin.health().await.expect("health").status, "ok");

    let err = admin.search(&SearchParams { action: Some("fly".into()), ..SearchParams::default() }).await;
    let err = err.expect_err("an invalid action is refused");
    assert!(matches!(err, Error::Api { status: 400, .. }), "{err:?}");
    assert_eq!(err.invalid_params()[0].name, "action");
    let err = producer.list_keys().await.expect_err("a producer may not list keys");
    assert!(matches!(err, Error::Api { status: 403, .. }), "{err:?}");
    let err = AsyncClient::new("http://127.0.0.1:1", None).health().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    (page, admin.vkeys("default").await.expect("vkeys"))
}

/// A read of `customer` by `actor` with a purpose, now.
fn read(id: &str, actor: &str, customer: &str) -> serde_json::Value {
    json!({
        "id": id, "source": "//detect.test", "type": "customer.record.viewed", "action": "read",
        "time": evident_wire::Micros::now().to_rfc3339(), "actor": {"id": actor, "type": "user"},
        "subject": customer, "targets": [{"type": "customer", "id": customer}], "outcome": "success",
        "origin": {"service": "crm"}, "reason": "ticket 5"
    })
}

#[test]
fn detection_endpoints_have_typed_methods() {
    let serve = Serve::fresh_with(&[("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true")]);
    let admin = Client::new(&serve.base, Some(serve.admin.clone()));
    assert!(!admin.rules().unwrap().rules.is_empty(), "the default rule set");
    let templates = admin.rule_templates().unwrap().templates;
    let watchlist = templates.iter().find(|t| t.template == "watchlist").expect("the watchlist template");
    let mut params = watchlist.params.clone();
    params["subjects"] = json!(["cus_vip"]);
    let rule = Rule {
        id: "vip-watch".into(),
        template: "watchlist".into(),
        params,
        severity: "high".into(),
        enabled: true,
        description: "the VIP".into(),
    };
    assert_eq!(admin.create_rule(&rule).unwrap().id, "vip-watch");
    let replaced =
        admin.replace_rule("vip-watch", &Rule { description: "the VIP desk".into(), ..rule.clone() });
    assert_eq!(replaced.unwrap().description, "the VIP desk");
    assert_eq!(admin.rule("vip-watch").unwrap().description, "the VIP desk");

    let producer = Client::new(&serve.base, Some(serve.key("producer")));
    let body = serde_json::to_vec(&read("d-1", "agent-3", "cus_vip")).unwrap();
    producer.post_events("application/json", body).expect("the event is stored");
    let params = FindingParams { rule: Some("vip-watch".into()), ..FindingParams::default() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let found = loop {
        let page = admin.findings(&params).unwrap();
        if let Some(found) = page.findings.into_iter().next() {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "no finding of vip-watch");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!((found.status.as_str(), found.finding.subject.as_deref()), ("open", Some("cus_vip")));
    let step = StatusRequest { status: "acknowledged".into(), comment: None };
    let acknowledged = admin.set_finding_status(&found.finding.id, &step).unwrap();
    assert_eq!((acknowledged.status.as_str(), acknowledged.history.len()), ("acknowledged", 1));
    assert_eq!(admin.finding(&found.finding.id).unwrap().status, "acknowledged");
    let range = BacktestRequest {
        rule: None,
        rule_id: Some("vip-watch".into()),
        from: "2020-01-01T00:00:00Z".into(),
        to: "2100-01-01T00:00:00Z".into(),
    };
    let report = admin.backtest(&range).unwrap();
    assert!(report.events >= 1 && report.findings.iter().any(|f| f.subject.as_deref() == Some("cus_vip")));

    let request =
        CreateWebhook { url: "http://127.0.0.1:9/hook".into(), min_severity: None, description: None };
    let hook = admin.create_webhook(&request).unwrap();
    assert!(!hook.secret.is_empty());
    assert_eq!(admin.webhooks().unwrap().webhooks[0].id, hook.webhook.id);
    let letters = admin.dead_letters().unwrap().dead_letters;
    assert!(letters.iter().all(|letter| letter.webhook == hook.webhook.id));
    assert_eq!(admin.delete_webhook(&hook.webhook.id).unwrap().deleted, hook.webhook.id);
    assert_eq!(admin.delete_rule("vip-watch").unwrap().deleted, "vip-watch");

    let refused =
        admin.create_rule(&Rule { template: "astrology".into(), ..rule }).expect_err("no such template");
    assert!(matches!(refused, Error::Api { status: 400, .. }), "{refused:?}");
    let missing = admin.finding("fnd_nope").expect_err("no such finding");
    assert!(matches!(missing, Error::Api { status: 404, .. }), "{missing:?}");
    let missing = admin.redeliver("dlv_nope").expect_err("no such delivery");
    assert!(matches!(missing, Error::Api { status: 404, .. }), "{missing:?}");
}
