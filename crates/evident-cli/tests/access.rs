//! Who may do what: one table, every route x every caller (no key, a revoked key, each role of
//! tenant `default`, the global admin, and an admin of another tenant), checked against the real
//! `evident serve` and rendered into `docs/access.md` from the same table (run with
//! `UPDATE_DOCS=1` to rewrite the page after changing the table).
//!
//! *Allowed* means the request got past authentication and authorisation (any answer but 401,
//! 403 and 429; an allowed request may still be refused for its content). For the other tenant's
//! admin, a request naming tenant `default` or one of its resources must also not be answered
//! at all (404, so that it learns nothing of them).

mod common;

use common::{Serve, client};
use serde_json::json;

/// The callers, in the table's column order.
const CALLERS: [&str; 10] = [
    "no key",
    "revoked",
    "producer",
    "reader",
    "investigator",
    "auditor",
    "privacy",
    "admin",
    "global admin",
    "other tenant's admin",
];

/// One route: method, path (`{event}` and `{key}` are filled in), body, whether it names tenant
/// `default` or one of its resources, and the verdict per caller (`y` allowed, `n` refused).
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    names_default: bool,
    allowed: &'static str,
}

const fn row(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    names_default: bool,
    allowed: &'static str,
) -> Row {
    Row { method, path, body, names_default, allowed }
}

const EVENT: &str = r#"{"id":"acl-{n}","source":"//crm.test","type":"customer.record.viewed","action":"read","time":"2026-01-01T10:00:00Z","actor":{"id":"u-1"},"targets":[{"type":"customer","id":"cust-1"}],"outcome":"success","reason":"ticket 1","origin":{"service":"crm"}}"#;

#[rustfmt::skip]
const TABLE: &[Row] = &[
    //                                                                                  columns: no key, revoked, P, R, I, A, admin, global, other
    row("POST",   "/v1/events",                                 Some(EVENT), false,            "nnynnnnnnn"),
    row("GET",    "/v1/events",                                 None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/events/{event}",                         None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/events/{event}/entry",                   None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/events/{event}/proof",                   None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/export",                                 None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/subjects/cust-1/timeline",               None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/records/customer/cust-1/history",        None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/logs/default/checkpoint",                None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/logs/default/vkeys",                     None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/logs/default/timestamps/1",              None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/logs/default/consistency?from=1&to=2",   None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/logs/default/health",                    None, true,                    "nnnyyyyyyn"),
    row("GET",    "/v1/logs/default/tile/0/000.p/2",            None, true,                    "nnnyyyyyyn"),
    row("POST",   "/v1/tenants",                                Some(r#"{"id":"t-{n}"}"#), false, "nnnnnnnnyn"),
    row("GET",    "/v1/tenants",                                None, false,                   "nnnnnnnyyy"),
    row("POST",   "/v1/keys",                                   Some(r#"{"role":"reader"}"#), false, "nnnnnnnyyy"),
    row("GET",    "/v1/keys",                                   None, false,                   "nnnnnnnyyy"),
    row("DELETE", "/v1/keys/{key}",                             None, true,                    "nnnnnnnyyn"),
    row("GET",    "/v1/rules",                                  None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/rules/templates",                        None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/rules/no-purpose",                       None, false,                   "nnnyyyyyyy"),
    row("POST",   "/v1/rules",                                  Some("{}"), false,             "nnnnnnnyyy"),
    row("PUT",    "/v1/rules/no-such-rule",                     Some("{}"), false,             "nnnnnnnyyy"),
    row("DELETE", "/v1/rules/no-such-rule",                     None, false,                   "nnnnnnnyyy"),
    row("POST",   "/v1/rules/backtest",                         Some("{}"), false,             "nnnnyynyyy"),
    row("GET",    "/v1/findings",                               None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/findings/fnd_0000",                      None, false,                   "nnnyyyyyyy"),
    row("POST",   "/v1/findings/fnd_0000/status",               Some("{}"), false,             "nnnnyynyyy"),
    row("POST",   "/v1/webhooks",                               Some(r#"{"url":"http://10.0.0.1/"}"#), false, "nnnnnnnyyy"),
    row("GET",    "/v1/webhooks",                               None, false,                   "nnnnnnnyyy"),
    row("DELETE", "/v1/webhooks/wh_0000",                       None, false,                   "nnnnnnnyyy"),
    row("GET",    "/v1/webhooks/dead-letters",                  None, false,                   "nnnnnnnyyy"),
    row("POST",   "/v1/webhooks/dead-letters/dlv_0000/redeliver", None, false,                 "nnnnnnnyyy"),
    row("GET",    "/v1/stream",                                 None, false,                   "nnnyyyyyyy"),
    row("POST",   "/v1/subjects/cust-9/erasure",                Some(r#"{"reason":"r","reference":"x"}"#), false, "nnnnnnyyyy"),
    row("POST",   "/v1/holds",                                  Some(r#"{"subject":"cust-8","reason":"r","reference":"x"}"#), false, "nnnnnnyyyy"),
    row("GET",    "/v1/holds",                                  None, false,                   "nnnnnnyyyy"),
    row("DELETE", "/v1/holds/hold_0000",                        Some(r#"{"reason":"r"}"#), false, "nnnnnnyyyy"),
    row("GET",    "/v1/retention",                              None, false,                   "nnnnnnyyyy"),
    row("PUT",    "/v1/retention",                              Some(r#"{"min_days":1}"#), false, "nnnnnnyyyy"),
    row("GET",    "/v1/privacy/settings",                       None, false,                   "nnnnnnyyyy"),
    row("PUT",    "/v1/privacy/settings",                       Some(r#"{"erasure_roles":["privacy","admin"]}"#), false, "nnnnnnnyyy"),
    row("GET",    "/v1/subjects/cust-1/report?kind=access",     None, false,                   "nnnnnnyyyy"),
    row("POST",   "/v1/personal-search",                        Some(r#"{"field":"origin.ip","value":"192.0.2.1","purpose":"p"}"#), false, "nnnnynnnnn"),
    row("POST",   "/v1/streams",                                Some(r#"{"format":"json","destination":"nats://10.0.0.1:4222/x"}"#), false, "nnnnnnnyyy"),
    row("GET",    "/v1/streams",                                None, false,                   "nnnnnnnyyy"),
    row("DELETE", "/v1/streams/str_0000",                       None, false,                   "nnnnnnnyyy"),
    row("POST",   "/v1/streams/str_0000/position",              Some(r#"{"position":0}"#), false, "nnnnnnnyyy"),
    row("GET",    "/healthz",                                   None, false,                   "yyyyyyyyyy"),
    row("GET",    "/metrics",                                   None, false,                   "yyyyyyyyyy"),
    row("GET",    "/openapi.json",                              None, false,                   "yyyyyyyyyy"),
    row("GET",    "/v1/insights/trend",                         None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/insights/funnel?steps=type:a;type:b",    None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/insights/journeys",                      None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/insights/cohorts",                       None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/insights/measure?kind=workload",         None, false,                   "nnnyyyyyyy"),
    row("GET",    "/v1/insights/settings",                      None, false,                   "nnnyyyyyyy"),
    row("PUT",    "/v1/insights/settings",                      Some(r#"{"min_customers":5}"#), false, "nnnnnnnyyy"),
    row("GET",    "/",                                          None, false,                   "yyyyyyyyyy"),
    row("GET",    "/console/assets/0000000000000000/app.js",    None, false,                   "yyyyyyyyyy"),
    row("POST",   "/console/session",                           Some("{}"), false,             "yyyyyyyyyy"),
    row("GET",    "/console/session",                           None, false,                   "nnnnnnnnnn"),
    row("DELETE", "/console/session",                           None, false,                   "nnnnnnnnnn"),
    row("POST",   "/console/links",                             None, false,                   "nnnyyyyyyy"),
];

/// The table as the documentation shows it.
fn render() -> String {
    let mut page = String::from(
        "# Who may do what\n\n\
         Generated from the table in `crates/evident-cli/tests/access.rs`, which checks every cell \
         against a running server (`UPDATE_DOCS=1 cargo nextest run -p evident-cli -E 'binary(access)'` \
         rewrites this page). ✓ allowed, – refused (401 without a valid key, 403 for a role or \
         tenant that may not, 404 for another tenant's resources, which are never revealed).\n\n\
         Roles: P producer, R reader, I investigator, A auditor, *privacy* a privacy officer; *admin* is a tenant's admin, \
         *global* the bootstrap admin key, *other* an admin of another tenant naming tenant \
         `default` or its resources where the route names any.\n\n\
         | Route | no key | revoked | P | R | I | A | privacy | admin | global | other |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in TABLE {
        let cells: Vec<&str> = row.allowed.chars().map(|c| if c == 'y' { "✓" } else { "–" }).collect();
        page.push_str(&format!("| `{} {}` | {} |\n", row.method, row.path, cells.join(" | ")));
    }
    page
}

#[test]
fn the_access_table_holds_and_is_the_documented_one() {
    let serve = Serve::fresh_with(&[("EVIDENT_AUTH_FAILURE_BURST", "100000")]);
    let (status, body) = serve.post(&serve.admin, "/v1/tenants", &json!({"id": "acme"}));
    assert_eq!(status, 201, "{body}");
    let (status, body) = serve.post(&serve.admin, "/v1/keys", &json!({"tenant": "acme", "role": "admin"}));
    assert_eq!(status, 201, "{body}");
    let other = body["key"].as_str().expect("a key").to_owned();
    let revoked = serve.key("reader");
    let revoked_id =
        revoked.strip_prefix("evk_").and_then(|r| r.split('_').next()).expect("an id").to_owned();
    let deleted =
        client().delete(serve.url(&format!("/v1/keys/{revoked_id}"))).bearer_auth(&serve.admin).send();
    assert_eq!(deleted.expect("DELETE").status().as_u16(), 200);
    let producer = serve.key("producer");
    let mut event_id = String::new();
    for n in 0..3 {
        let (status, body) = serve.post(
            &producer,
            "/v1/events",
            &serde_json::from_str(&EVENT.replace("{n}", &format!("seed-{n}"))).unwrap(),
        );
        assert_eq!(status, 200, "{body}");
        event_id = body["receipts"][0]["event_id"].as_str().expect("an id").to_owned();
    }
    let keys: Vec<Option<String>> = vec![
        None,
        Some(revoked),
        Some(producer),
        Some(serve.key("reader")),
        Some(serve.key("investigator")),
        Some(serve.key("auditor")),
        Some(serve.key("privacy")),
        Some(serve.key("admin")),
        Some(serve.admin.clone()),
        Some(other),
    ];
    let mut wrong = Vec::new();
    let mut n = 0;
    for row in TABLE {
        assert_eq!(row.allowed.len(), CALLERS.len(), "{} {}", row.method, row.path);
        for ((caller, key), expected) in CALLERS.iter().zip(&keys).zip(row.allowed.chars()) {
            n += 1;
            let mut path = row.path.replace("{event}", &event_id);
            if path.contains("{key}") {
                // A fresh key of tenant `default` for every attempt to revoke one.
                let fresh = serve.key("reader");
                path = path
                    .replace("{key}", fresh.strip_prefix("evk_").and_then(|r| r.split('_').next()).unwrap());
            }
            let method = reqwest::Method::from_bytes(row.method.as_bytes()).expect("a method");
            let mut request = client().request(method, serve.url(&path));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = row.body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.replace("{n}", &n.to_string()));
            }
            let status = request.send().expect("a request").status().as_u16();
            let refused = matches!(status, 401 | 403 | 429)
                || (*caller == "other tenant's admin" && row.names_default && status == 404);
            let allowed = !refused;
            if allowed != (expected == 'y') {
                wrong.push(format!(
                    "{} {} by {caller}: answered {status}, expected {}",
                    row.method,
                    row.path,
                    if expected == 'y' { "allowed" } else { "refused" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "the access table does not hold:\n{}", wrong.join("\n"));
    // Every route of the OpenAPI document has its row, so a new route cannot skip the table.
    let document: serde_json::Value =
        client().get(serve.url("/openapi.json")).send().expect("GET /openapi.json").json().expect("JSON");
    let shape = |path: &str| -> String {
        let path = path.split('?').next().unwrap_or_default();
        // The tile route's `{path}` stands for several segments.
        let path = match path.split_once("/tile/") {
            Some((head, _)) => format!("{head}/tile/*"),
            None => path.to_owned(),
        };
        path.split('/')
            .map(
                |part| {
                    if part.starts_with('{') || part.contains('_') && part.len() > 10 { "*" } else { part }
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    };
    let rows: std::collections::BTreeSet<(String, String)> =
        TABLE.iter().map(|row| (row.method.to_owned(), shape(row.path))).collect();
    let mut missing = Vec::new();
    for (path, methods) in document["paths"].as_object().expect("paths") {
        for method in methods.as_object().expect("methods").keys() {
            let wanted = (method.to_uppercase(), shape(path));
            let known = rows.contains(&wanted)
                || rows.iter().any(|(m, p)| {
                    *m == wanted.0
                        && p.split('/').count() == wanted.1.split('/').count()
                        && p.split('/').zip(wanted.1.split('/')).all(|(a, b)| a == b || a == "*" || b == "*")
                });
            if !known {
                missing.push(format!("{} {path}", wanted.0));
            }
        }
    }
    assert!(missing.is_empty(), "routes without a row in the access table: {missing:?}");
    let page_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/access.md");
    let page = render();
    if std::env::var("UPDATE_DOCS").is_ok() {
        std::fs::write(&page_path, &page).expect("write docs/access.md");
    }
    let documented = std::fs::read_to_string(&page_path).unwrap_or_default();
    assert!(documented == page, "docs/access.md is not the table; rerun with UPDATE_DOCS=1");
    serve.terminate();
}
