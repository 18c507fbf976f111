//! The async client against a real `evident serve`: the same typed methods as the blocking one
//! (one endpoint table makes both), the same answers, the same typed errors.

mod common;

use common::Serve;
use evident_client::{AsyncClient, Client, Error};
use evident_wire::api::{CreateKey, EventPage, SearchParams};
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
