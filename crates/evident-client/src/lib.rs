//! HTTP clients of Evident's API, blocking ([`Client`], what the `evident` client commands use) and
//! async ([`AsyncClient`]), a durable spool in front of them ([`spool`]), and the offline verifier
//! of what the service hands out: receipts, checkpoints and export bundles.
//!
//! The client knows the wire format only; verification never trusts the server: it needs the log's
//! verifier key, obtained out of band (or pinned on first use).
//!
//! - The typed methods of [`Client`] and [`AsyncClient`] (module `api`) are the API's endpoints,
//!   one each, with the requests and answers of `evident_wire::api`, made from one table there
//!   (each endpoint's path and parameters are written once, as a [`Request`] built by [`Target`]).
//! - [`bundle`]: reading and verifying export bundles offline.

mod api;
pub mod bundle;
pub mod spool;
pub mod timestamp;

use std::time::Duration;

pub use api::{Request, Target};
use evident_wire::api::{InvalidParam, Problem};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: `title` and `detail` from its RFC 9457 problem details
    /// (`problem`) when it sent them, else the status's reason.
    #[error("{status} {title}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Api {
        status: u16,
        title: String,
        detail: Option<String>,
        problem: Option<Box<Problem>>,
        /// `Retry-After` in seconds (with 503 and 429).
        retry_after: Option<u64>,
    },
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl Error {
    /// The request's fields the server refused, by name and rule (empty unless a 4xx said so).
    pub fn invalid_params(&self) -> &[InvalidParam] {
        match self {
            Error::Api { problem: Some(problem), .. } => &problem.invalid_params,
            _ => &[],
        }
    }

    /// The error an answer of `status` (not a success) with `body` stands for.
    fn from_answer(status: u16, retry_after: Option<u64>, body: &[u8]) -> Error {
        let problem = serde_json::from_slice::<Problem>(body).ok();
        let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
        let title = match &problem {
            Some(problem) => problem.title.clone(),
            None => reason.unwrap_or("error").to_lowercase(),
        };
        let detail = problem.as_ref().and_then(|problem| problem.detail.clone());
        Error::Api { status, title, detail, problem: problem.map(Box::new), retry_after }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes ("error sending request: connection refused"): reqwest's own message
/// leaves out why.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The `Retry-After` of an answer, in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

const TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking client of one Evident server, with one API key. Its typed methods (one per
/// endpoint) are those of [`AsyncClient`], from the same table (module `api`).
#[derive(Clone, Debug)]
pub struct Client {
    target: Target,
    key: Option<String>,
    http: Http,
}

impl Client {
    /// `base` like `http://127.0.0.1:7411`; `key` an API key (`evk_...`).
    pub fn new(base: &str, key: Option<String>) -> Client {
        let http =
            Http::builder().timeout(TIMEOUT).build().expect("an HTTP client with default settings builds");
        Client { target: Target { base: base.trim_end_matches('/').to_owned() }, key, http }
    }

    /// [`Client::new`] for an https server whose certificate comes from the CA certificates of
    /// `ca_pem` (the contents of a PEM file, e.g. `--ca-file`), trusted besides the bundled web
    /// roots. Fails naming what is wrong with them.
    pub fn with_ca(base: &str, key: Option<String>, ca_pem: &[u8]) -> std::result::Result<Client, String> {
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|err| format!("not a PEM certificate file: {err}"))?;
        if roots.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        let mut builder = Http::builder().timeout(TIMEOUT);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let http =
            builder.build().map_err(|err| format!("cannot build the HTTP client: {}", error_chain(&err)))?;
        Ok(Client { target: Target { base: base.trim_end_matches('/').to_owned() }, key, http })
    }

    /// The same server and TLS trust with another API key.
    pub fn with_key(&self, key: Option<String>) -> Client {
        Client { target: self.target.clone(), key, http: self.http.clone() }
    }

    pub fn base(&self) -> &str {
        &self.target.base
    }

    /// The URL of `path` (which starts with `/`), as given.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.base)
    }

    fn authorized(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends a request; any answer is `Ok`.
    fn answer(&self, url: &str, builder: RequestBuilder) -> Result<Response> {
        self.authorized(builder)
            .send()
            .map_err(|err| Error::Unreachable { url: url.to_owned(), reason: error_chain(&err) })
    }

    /// Sends a request; an answer that is not a success is an [`Error::Api`].
    fn send(&self, url: &str, builder: RequestBuilder) -> Result<Response> {
        let response = self.answer(url, builder)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().unwrap_or_default();
        Err(Error::from_answer(status, retry_after, &body))
    }

    /// Sends one of the API's requests (built by [`Target`]) and decodes its answer.
    fn call<T>(&self, request: Request<T>) -> Result<T> {
        let url = request.url.to_string();
        let mut builder = self.http.request(request.method, request.url);
        if let Some(accept) = request.accept {
            builder = builder.header(reqwest::header::ACCEPT, accept);
        }
        if let Some((content_type, body)) = request.body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        let response = self.answer(&url, builder)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .map_err(|err| Error::Protocol { url: url.clone(), reason: error_chain(&err) })?;
        if !response_is_answer(status, request.also_answer) {
            return Err(Error::from_answer(status, retry_after, &body));
        }
        (request.decode)(&url, status, &body)
    }
}

/// Whether an answer of `status` is the endpoint's answer (else it is an error's).
fn response_is_answer(status: u16, also_answer: Option<u16>) -> bool {
    (200..300).contains(&status) || also_answer == Some(status)
}

/// An async client (tokio, reqwest) of one Evident server, with one API key: the same typed
/// methods as [`Client`], from the same endpoint table, as `async fn`s.
#[derive(Clone, Debug)]
pub struct AsyncClient {
    target: Target,
    key: Option<String>,
    http: reqwest::Client,
}

impl AsyncClient {
    /// `base` like `http://127.0.0.1:7411`; `key` an API key (`evk_...`).
    pub fn new(base: &str, key: Option<String>) -> AsyncClient {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("an HTTP client with default settings builds");
        AsyncClient { target: Target { base: base.trim_end_matches('/').to_owned() }, key, http }
    }

    pub fn base(&self) -> &str {
        &self.target.base
    }

    /// Sends one of the API's requests (built by [`Target`]) and decodes its answer.
    async fn call<T>(&self, request: Request<T>) -> Result<T> {
        let url = request.url.to_string();
        let mut builder = self.http.request(request.method, request.url);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key);
        }
        if let Some(accept) = request.accept {
            builder = builder.header(reqwest::header::ACCEPT, accept);
        }
        if let Some((content_type, body)) = request.body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|err| Error::Unreachable { url: url.clone(), reason: error_chain(&err) })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|err| Error::Protocol { url: url.clone(), reason: error_chain(&err) })?;
        if !response_is_answer(status, request.also_answer) {
            return Err(Error::from_answer(status, retry_after, &body));
        }
        (request.decode)(&url, status, &body)
    }
}

/// Checks a webhook delivery from Evident: `secret` as shown when the webhook was created,
/// `signature` the `Evident-Signature` header, `body` the exact bytes received. Refuses a
/// timestamp more than five minutes from the local clock (a replay), a malformed header, or a
/// signature that does not match.
pub fn verify_webhook(
    secret: &str,
    signature: &str,
    body: &[u8],
) -> std::result::Result<(), evident_wire::signature::SignatureError> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    verify_webhook_at(secret, signature, body, now)
}

/// [`verify_webhook`] against a given clock (Unix seconds).
pub fn verify_webhook_at(
    secret: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
) -> std::result::Result<(), evident_wire::signature::SignatureError> {
    use evident_wire::signature::{TOLERANCE_SECS, verify};
    verify(secret.as_bytes(), signature, body, now_unix, TOLERANCE_SECS)
}

#[cfg(test)]
mod webhook_tests {
    use evident_wire::signature::{SignatureError, signature_header};

    #[test]
    fn deliveries_verify_and_replays_are_refused() {
        let secret = "whsec_0123";
        let body = br#"{"delivery":"dlv_1"}"#;
        let header = signature_header(secret.as_bytes(), 1_800_000_000, body);
        assert_eq!(super::verify_webhook_at(secret, &header, body, 1_800_000_060), Ok(()));
        assert!(matches!(
            super::verify_webhook_at(secret, &header, body, 1_800_000_000 + 301),
            Err(SignatureError::Stale(_))
        ));
        assert_eq!(
            super::verify_webhook_at("whsec_other", &header, body, 1_800_000_000),
            Err(SignatureError::Mismatch)
        );
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let fresh = signature_header(secret.as_bytes(), now, body);
        assert_eq!(super::verify_webhook(secret, &fresh, body), Ok(()));
    }
}

#[cfg(test)]
mod error_tests {
    use super::Error;

    /// The answer of a real `evident serve` to `GET /v1/events?action=fly` (captured with curl).
    const INVALID_ACTION: &str = r#"{"type":"about:blank","title":"invalid request","status":400,"detail":"action must be one of: create, read, update, delete, list, search, export, login, logout, grant, revoke, configure, other","invalid-params":[{"name":"action","rule":"enum","reason":"action must be one of: create, read, update, delete, list, search, export, login, logout, grant, revoke, configure, other"}]}"#;

    #[test]
    fn problem_bodies_become_typed_api_errors() {
        let err = Error::from_answer(400, None, INVALID_ACTION.as_bytes());
        let Error::Api { status: 400, title, detail, problem: Some(problem), retry_after: None } = &err
        else {
            panic!("not a typed problem: {err:?}");
        };
        assert_eq!(title, "invalid request");
        assert!(detail.as_deref().is_some_and(|d| d.starts_with("action must be one of")));
        assert_eq!(problem.problem_type, "about:blank");
        let params: Vec<(&str, &str)> =
            err.invalid_params().iter().map(|p| (p.name.as_str(), p.rule.as_str())).collect();
        assert_eq!(params, [("action", "enum")]);
        assert!(err.to_string().starts_with("400 invalid request: action must be one of"), "{err}");
    }

    #[test]
    fn other_bodies_keep_the_status_and_retry_after() {
        let err = Error::from_answer(503, Some(2), b"<html>busy</html>");
        assert!(
            matches!(&err, Error::Api { status: 503, problem: None, retry_after: Some(2), .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "503 service unavailable");
        assert!(err.invalid_params().is_empty());
    }
}
