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
    let (key_id, secret) = token.split_once('.').expect("key id, dot, token");
    assert_eq!((key_id.len(), secret.len()), (16, 43), "the key's id and 256 random bits");
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

#[test]
fn sessions_end_at_their_maximum_age_however_used() {
    let serve =
        Serve::fresh_with(&[("EVIDENT_CONSOLE_MAX_AGE_SECS", "2"), ("EVIDENT_CONSOLE_IDLE_SECS", "600")]);
    let (_, cookie, info) = sign_in(&serve, &json!({"key": serve.admin}));
    assert_eq!(info["expires_in"], 2);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/console/session", &cookie)), 200);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::thread::sleep(std::time::Duration::from_millis(2100).saturating_sub(started.elapsed()));
    assert_eq!(status_of(with_cookie(&serve, reqwest::Method::GET, "/v1/events", &cookie)), 401);
}

/// Every file under `dir` (the store and its WAL, the index file), as bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

#[test]
fn a_session_outlives_a_restart_and_only_its_digest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::first_start(&data);
    let (status, cookie, info) = sign_in(&serve, &json!({"key": serve.admin}));
    assert_eq!(status, 200);
    let csrf = info["csrf_token"].as_str().unwrap().to_owned();
    let link =
        serve.post(&serve.admin, "/console/links", &json!(null)).1["path"].as_str().unwrap().to_owned();
    let link_token = link.strip_prefix("/#/link/").unwrap().to_owned();
    let (exit, _) = serve.terminate();
    assert!(exit.success());
    let token = cookie.strip_prefix("evident_session=").unwrap();
    let secret = token.split_once('.').unwrap().1;
    for (path, bytes) in files_under(&data) {
        for needle in [secret, csrf.as_str(), link_token.as_str()] {
            let hit = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!hit, "{} holds a token", path.display());
        }
    }
    let serve = Serve::start(&data);
    let again = with_cookie(&serve, reqwest::Method::GET, "/console/session", &cookie).send().unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().unwrap();
    assert_eq!((&again["key_id"], &again["csrf_token"]), (&info["key_id"], &info["csrf_token"]));
    // A change with the same CSRF token works after the restart too.
    let created = with_cookie(&serve, reqwest::Method::POST, "/v1/keys", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"role": "reader"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(sign_in(&serve, &json!({"link": link_token})).0, 200, "the link survived too");
}

#[test]
fn two_nodes_on_one_postgres_store_share_sessions_sign_outs_and_revocations() {
    let database = common::database_url();
    let ready = std::process::Command::new("pg_isready").args(["-d", &database]).status();
    assert!(ready.is_ok_and(|s| s.success()), "PostgreSQL at {database} does not answer; start it");
    let schema = common::Schema::new();
    let dirs = tempfile::tempdir().unwrap();
    let env = |node: usize| {
        vec![
            ("EVIDENT_DATABASE_URL".to_owned(), database.clone()),
            ("EVIDENT_DATABASE_SCHEMA".to_owned(), schema.0.clone()),
            ("EVIDENT_NODE_ID".to_owned(), format!("node-{node}")),
        ]
    };
    let start = |node: usize| {
        let env = env(node);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dir = dirs.path().join(format!("node-{node}"));
        if node == 0 { Serve::first_start_with(&dir, &env) } else { Serve::start_with(&dir, &env) }
    };
    let one = start(0);
    for file in ["signing.key", "master.key"] {
        std::fs::create_dir_all(dirs.path().join("node-1")).unwrap();
        std::fs::copy(dirs.path().join("node-0").join(file), dirs.path().join("node-1").join(file)).unwrap();
    }
    let two = start(1);
    let get = |node: &Serve, path: &str, cookie: &str| {
        status_of(with_cookie(node, reqwest::Method::GET, path, cookie))
    };

    // Signed in on one node, the session works on the other, a change with its CSRF token too.
    let (status, cookie, info) = sign_in(&one, &json!({"key": one.admin}));
    assert_eq!(status, 200);
    assert_eq!(get(&two, "/console/session", &cookie), 200);
    let reader = with_cookie(&two, reqwest::Method::POST, "/v1/keys", &cookie)
        .header("x-csrf-token", info["csrf_token"].as_str().unwrap())
        .json(&json!({"role": "reader"}))
        .send()
        .unwrap();
    assert_eq!(reader.status(), 201);
    let reader: Value = reader.json().unwrap();

    // Signed out on the second node: the first refuses the cookie.
    let out = with_cookie(&two, reqwest::Method::DELETE, "/console/session", &cookie)
        .header("x-csrf-token", info["csrf_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(get(&one, "/console/session", &cookie), 401);
    assert_eq!(get(&one, "/v1/events", &cookie), 401);

    // A reader's session ends on both nodes when its key is revoked through one of them.
    let (_, reader_cookie, reader_info) = sign_in(&two, &json!({"key": reader["key"]}));
    assert_eq!(
        (get(&one, "/v1/events", &reader_cookie), get(&two, "/v1/events", &reader_cookie)),
        (200, 200)
    );
    let key_id = reader_info["key_id"].as_str().unwrap();
    let revoked =
        client().delete(one.url(&format!("/v1/keys/{key_id}"))).bearer_auth(&one.admin).send().unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        (get(&two, "/v1/events", &reader_cookie), get(&one, "/v1/events", &reader_cookie)),
        (401, 401)
    );

    // A link made on one node signs in once, on either.
    let link = one.post(&one.admin, "/console/links", &json!(null)).1["path"].as_str().unwrap().to_owned();
    let token = link.strip_prefix("/#/link/").unwrap();
    assert_eq!(sign_in(&two, &json!({"link": token})).0, 200);
    assert_eq!(sign_in(&one, &json!({"link": token})).0, 401);
}
