//! The web console's HTTP side against a real `evident serve`: the shell and its assets under a
//! strict Content-Security-Policy, sign-in with a key or a one-time link exchanged for an
//! `HttpOnly`, `SameSite=Strict` cookie, CSRF tokens on changes, expiry, sign-out, and a revoked
//! key's sessions ending. (The pages themselves are tested in a browser: `console-tests/`.)

mod common;

use common::{Serve, client};
use reqwest::blocking::Response;
use serde_json::{Value, json};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header(response: &Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().expect("text").to_owned()).unwrap_or_default()
}

/// Signs in with `body`: answers (status, session cookie pair `evident_session=...`, JSON).
fn sign_in(serve: &Serve, body: &Value) -> (u16, String, Value) {
    let response = client().post(serve.url("/console/session")).json(body).send().expect("POST");
    let cookie = header(&response, "set-cookie");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    (response.status().as_u16(), pair, response.json().expect("JSON"))
}

fn with_cookie(
    serve: &Serve,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> reqwest::blocking::RequestBuilder {
    client().request(method, serve.url(path)).header("cookie", cookie)
}

fn status_of(builder: reqwest::blocking::RequestBuilder) -> u16 {
    builder.send().expect("request").status().as_u16()
}

#[test]
fn the_shell_and_assets_are_served_under_a_strict_policy() {
    let serve = Serve::fresh();
    let page = client().get(serve.url("/")).send().expect("GET /");
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-security-policy"), CSP);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.text().expect("html");
    assert!(!html.contains("<style") && !html.contains("style="), "no inline style");
    let script = html.split("<script").nth(1).expect("a script tag");
    assert!(script.starts_with(" type=\"module\" src=\"/console/assets/"), "{script}");
    let app = html.split('"').find(|s| s.ends_with("/app.js")).expect("app.js path").to_owned();
    let asset = client().get(serve.url(&app)).send().expect("GET app.js");
    assert_eq!(asset.status(), 200);
    assert_eq!(header(&asset, "cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(header(&asset, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&asset, "content-security-policy"), CSP);
    for missing in ["/console/assets/0000000000000000/app.js", &app.replace("app.js", "nope.js")] {
        let response = client().get(serve.url(missing)).send().expect("GET");
        assert_eq!(response.status(), 404, "{missing}");
        assert_eq!(header(&response, "content-type"), "application/problem+json");
    }
}

#[test]
fn a_key_signs_in_to_a_strict_cookie_that_reads_the_api() {
    let serve = Serve::fresh();
    let response =
        client().post(serve.url("/console/session")).json(&json!({"key": serve.admin})).send().expect("POST");
    assert_eq!(response.status(), 200);
    let cookie = header(&response, "set-cookie");
    let token =
        cookie.split(';').next().unwrap().strip_prefix("evident_session=").expect("the session cookie");
    assert_eq!(token.len(), 43, "256 random bits");
    assert_eq!(
        cookie.split_once(';').unwrap().1,
        " Path=/; HttpOnly; SameSite=Strict; Max-Age=43200",
        "not Secure without TLS"
    );
    let info: Value = response.json().expect("JSON");
    assert_eq!(info["role"], "admin");
    assert_eq!(info["tenant"], "default");
    assert_eq!(info["may"], json!(["read", "review", "admin", "privacy"]));
    assert_eq!(info["expires_in"], 1800);
    let pair = format!("evident_session={token}");
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events?limit=1", &pair)), 200);
    let again: Value =
        with_cookie(&serve, reqwest::Method::GET, "/console/session", &pair).send().unwrap().json().unwrap();
    assert_eq!(again["csrf_token"], info["csrf_token"]);
    assert_eq!(again["key_id"], info["key_id"]);
    // The sign-in is recorded in the tenant's log.
    let signins = serve.get(&serve.admin, "/v1/events?type=evident.console.signin");
    assert_eq!(signins["events"].as_array().unwrap().len(), 1);
    assert_eq!(signins["events"][0]["event"]["action"], "login");
}

#[test]
fn a_change_made_with_the_cookie_needs_the_csrf_token() {
    let serve = Serve::fresh();
    let (_, cookie, info) = sign_in(&serve, &json!({"key": serve.admin}));
    let csrf = info["csrf_token"].as_str().unwrap();
    let body = json!({"role": "reader"});
    let post = |token: Option<&str>| {
        let mut request = with_cookie(&serve, reqwest::Method::POST, "/v1/keys", &cookie).json(&body);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.send().expect("POST")
    };
    let refused = post(None);
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("X-CSRF-Token"), "{problem}");
    assert_eq!(post(Some("not-the-token")).status(), 403);
    assert_eq!(post(Some(csrf)).status(), 201);
    // Signing out is a change too.
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::DELETE, "/console/session", &cookie)), 403);
    // A bearer key needs no CSRF token (no browser sends it on its own).
    assert_eq!(serve.post(&serve.admin, "/v1/keys", &body).0, 201);
}

#[test]
fn revoking_the_key_ends_its_sessions() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let (status, cookie, info) = sign_in(&serve, &json!({"key": reader}));
    assert_eq!(status, 200);
    assert_eq!(info["may"], json!(["read"]));
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", &cookie)), 200);
    // The server decides: a reader's session cannot administer.
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/keys", &cookie)), 403);
    let key_id = info["key_id"].as_str().unwrap();
    let revoked =
        client().delete(serve.url(&format!("/v1/keys/{key_id}"))).bearer_auth(&serve.admin).send().unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", &cookie)), 401);
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/console/session", &cookie)), 401);
    assert_eq!(sign_in(&serve, &json!({"key": reader})).0, 401);
}

#[test]
fn sessions_expire_when_idle() {
    let serve = Serve::fresh_with(&[("EVIDENT_CONSOLE_IDLE_SECS", "1")]);
    let (_, cookie, info) = sign_in(&serve, &json!({"key": serve.admin}));
    assert_eq!(info["expires_in"], 1);
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", &cookie)), 200);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", &cookie)), 401);
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/console/session", &cookie)), 401);
}

#[test]
fn sign_out_ends_the_session_and_clears_the_cookie() {
    let serve = Serve::fresh();
    let (_, cookie, info) = sign_in(&serve, &json!({"key": serve.admin}));
    let response = with_cookie(&serve, reqwest::Method::DELETE, "/console/session", &cookie)
        .header("x-csrf-token", info["csrf_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        header(&response, "set-cookie"),
        "evident_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    );
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", &cookie)), 401);
    let signouts = serve.get(&serve.admin, "/v1/events?type=evident.console.signout");
    assert_eq!(signouts["events"][0]["event"]["action"], "logout");
}

#[test]
fn a_sign_in_link_works_once() {
    let serve = Serve::fresh();
    let investigator = serve.key("investigator");
    let output = common::evident(&serve.base, &investigator, &["console-link"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let token = url.strip_prefix(&format!("{}/#/link/", serve.base)).expect("a link to this server");
    let (status, _, info) = sign_in(&serve, &json!({"link": token}));
    assert_eq!(status, 200);
    assert_eq!(info["role"], "investigator");
    assert_eq!(sign_in(&serve, &json!({"link": token})).0, 401, "used once");
    let producer = serve.key("producer");
    assert_eq!(serve.post(&producer, "/console/links", &json!(null)).0, 403);
    assert_eq!(client().post(serve.url("/console/links")).send().unwrap().status(), 401);
}

#[test]
fn bad_sign_ins_are_refused_by_name() {
    let serve = Serve::fresh();
    let producer = serve.key("producer");
    let cases: [(Value, u16, &str); 6] = [
        (json!({"key": "evk_0123456789abcdef_wrong"}), 401, ""),
        (json!({"key": producer}), 403, "may not read"),
        (json!({}), 400, "exactly one of key and link"),
        (json!({"key": serve.admin, "link": "x"}), 400, "exactly one of key and link"),
        (json!({"link": "no-such-link"}), 401, ""),
        (json!({"key": 7}), 400, "invalid request body"),
    ];
    for (body, want, says) in cases {
        let (status, cookie, problem) = sign_in(&serve, &body);
        assert_eq!(status, want, "{body}: {problem}");
        assert!(cookie.is_empty(), "{body}: no cookie");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(says), "{body}: {problem}");
    }
    let forced = client()
        .post(serve.url("/console/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"key": serve.admin}))
        .send()
        .unwrap();
    assert_eq!(forced.status(), 403, "a sign-in from another origin");
    let same = client()
        .post(serve.url("/console/session"))
        .header("origin", serve.base.as_str())
        .json(&json!({"key": serve.admin}))
        .send()
        .unwrap();
    assert_eq!(same.status(), 200, "a sign-in from this origin");
    let unknown = "evident_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", unknown)), 401);
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::DELETE, "/console/session", unknown)), 401);
}
