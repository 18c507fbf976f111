//! A blocking HTTP client of Evident's API (what the `evident` client commands use), and the
//! offline verifier of what the service hands out: receipts, checkpoints and export bundles.
//!
//! The client knows the wire format only; verification never trusts the server: it needs the log's
//! verifier key, obtained out of band (or pinned on first use).

pub mod bundle;

use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde_json::Value;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error (RFC 9457 problem details when it could).
    #[error("{status} {title}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Api { status: u16, title: String, detail: Option<String>, problem: Value, retry_after: Option<u64> },
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
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

/// A client of one Evident server, with one API key.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    key: Option<String>,
    http: Http,
}

impl Client {
    /// `base` like `http://127.0.0.1:7411`; `key` an API key (`evk_...`).
    pub fn new(base: &str, key: Option<String>) -> Client {
        let http = Http::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client with default TLS-less settings builds");
        Client { base: base.trim_end_matches('/').to_owned(), key, http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorized(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    fn send(&self, url: &str, builder: RequestBuilder) -> Result<Response> {
        let response = self
            .authorized(builder)
            .send()
            .map_err(|err| Error::Unreachable { url: url.to_owned(), reason: error_chain(&err) })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let problem: Value = response.json().unwrap_or(Value::Null);
        Err(Error::Api {
            status,
            title: problem["title"].as_str().unwrap_or("error").to_owned(),
            detail: problem["detail"].as_str().map(str::to_owned),
            problem,
            retry_after,
        })
    }

    /// GET a JSON answer; `query` pairs are URL-encoded.
    pub fn get_json(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        let url = self.url(path);
        let response = self.send(&url, self.http.get(&url).query(query))?;
        response.json().map_err(|err| Error::Protocol { url, reason: err.to_string() })
    }

    /// GET a (possibly long) answer and copy it into `out` as it arrives; answers the bytes copied.
    /// `timeout` bounds the whole transfer (the client's default of a minute is for short calls).
    pub fn get_to_writer(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let url = self.url(path);
        let mut response = self.send(&url, self.http.get(&url).query(query).timeout(timeout))?;
        response.copy_to(out).map_err(|err| Error::Protocol { url, reason: err.to_string() })
    }

    /// GET raw bytes.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = self.url(path);
        let response = self.send(&url, self.http.get(&url))?;
        response.bytes().map(|b| b.to_vec()).map_err(|err| Error::Protocol { url, reason: err.to_string() })
    }

    /// GET text.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let bytes = self.get_bytes(path)?;
        String::from_utf8(bytes)
            .map_err(|err| Error::Protocol { url: self.url(path), reason: err.to_string() })
    }

    /// POST a JSON body; answers the status and the JSON answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let url = self.url(path);
        let response = self.send(&url, self.http.post(&url).json(body))?;
        let status = response.status().as_u16();
        let value = response.json().map_err(|err| Error::Protocol { url, reason: err.to_string() })?;
        Ok((status, value))
    }

    /// POST raw bytes with a content type (e.g. NDJSON); answers the status and the JSON answer.
    /// A 207 (some items not stored) is a success here: the items say what happened.
    pub fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<(u16, Value)> {
        let url = self.url(path);
        let builder = self.http.post(&url).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        let response = self.send(&url, builder)?;
        let status = response.status().as_u16();
        let value = response.json().map_err(|err| Error::Protocol { url, reason: err.to_string() })?;
        Ok((status, value))
    }

    /// DELETE; answers the JSON answer.
    pub fn delete(&self, path: &str) -> Result<Value> {
        let url = self.url(path);
        let response = self.send(&url, self.http.delete(&url))?;
        response.json().map_err(|err| Error::Protocol { url, reason: err.to_string() })
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
