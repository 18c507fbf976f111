//! Browser sessions of the console: an API key (or a one-time sign-in link made with a key) is
//! exchanged for a random session token in an `HttpOnly`, `SameSite=Strict` cookie. The server
//! keeps only SHA-256 of each token, in memory (a restart signs everybody out; several nodes need
//! sticky sessions). Every request made with the cookie looks the key up again, so revoking the
//! key ends its sessions; a request that changes anything must also carry the session's CSRF
//! token in `X-CSRF-Token`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;

/// The session cookie's name.
pub const COOKIE: &str = "evident_session";
/// The header that carries the CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Most sessions (and sign-in links) held at once; the oldest make room.
const MAX_HELD: usize = 10_000;

/// Settings of console sessions.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Mark the cookie `Secure` (set when the listener serves TLS).
    pub secure_cookies: bool,
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub max_age: Duration,
    /// How long a sign-in link made by `evident console-link` stays usable (once).
    pub link_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> ConsoleConfig {
        ConsoleConfig {
            secure_cookies: false,
            idle: Duration::from_secs(30 * 60),
            max_age: Duration::from_secs(12 * 3600),
            link_ttl: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Clone, Debug)]
struct Session {
    key_id: String,
    csrf: String,
    started: Instant,
    last_seen: Instant,
}

/// A session that was found: its key and CSRF token, and when it ends unless used.
#[derive(Clone, Debug)]
pub struct Found {
    pub key_id: String,
    pub csrf: String,
    pub ends_in: Duration,
}

/// The sessions and unused sign-in links, keyed by the SHA-256 of their tokens.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    links: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> String {
    B64URL.encode(evident_core::seal::random_32())
}

impl Sessions {
    /// Starts a session for `key_id`: answers (session token, CSRF token).
    pub fn start(&self, key_id: &str) -> (String, String) {
        let (token, csrf) = (random_token(), random_token());
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.len() >= MAX_HELD {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k);
            oldest.map(|k| sessions.remove(&k));
        }
        let session = Session { key_id: key_id.to_owned(), csrf: csrf.clone(), started: now, last_seen: now };
        sessions.insert(digest(&token), session);
        (token, csrf)
    }

    /// The live session of `token`, touched; an expired one is removed and answers `None`.
    pub fn find(&self, token: &str, config: &ConsoleConfig) -> Option<Found> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let key = digest(token);
        let session = sessions.get_mut(&key)?;
        let expired = now.duration_since(session.last_seen) >= config.idle
            || now.duration_since(session.started) >= config.max_age;
        if expired {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        let left_total = config.max_age.saturating_sub(now.duration_since(session.started));
        Some(Found {
            key_id: session.key_id.clone(),
            csrf: session.csrf.clone(),
            ends_in: left_total.min(config.idle),
        })
    }

    pub fn end(&self, token: &str) {
        self.sessions.lock().expect("sessions lock").remove(&digest(token));
    }

    /// Ends every session of a key (its key was found revoked).
    pub fn end_key(&self, key_id: &str) {
        self.sessions.lock().expect("sessions lock").retain(|_, s| s.key_id != key_id);
    }

    /// A one-time sign-in link token for `key_id`, usable until `ttl` passes.
    pub fn new_link(&self, key_id: &str, ttl: Duration) -> String {
        let token = random_token();
        let now = Instant::now();
        let mut links = self.links.lock().expect("links lock");
        links.retain(|_, (_, until)| *until > now);
        if links.len() >= MAX_HELD {
            let oldest = links.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| *k);
            oldest.map(|k| links.remove(&k));
        }
        links.insert(digest(&token), (key_id.to_owned(), now + ttl));
        token
    }

    /// Uses up a link: answers its key id when it exists and has not expired.
    pub fn take_link(&self, token: &str) -> Option<String> {
        let (key_id, until) = self.links.lock().expect("links lock").remove(&digest(token))?;
        (until > Instant::now()).then_some(key_id)
    }
}

/// The session cookie's value, if the request has one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value of a new session (or, with `None`, one that clears it).
pub fn set_cookie(token: Option<&str>, config: &ConsoleConfig) -> String {
    let secure = if config.secure_cookies { "; Secure" } else { "" };
    match token {
        Some(token) => format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            config.max_age.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The caller of a request that carries the session cookie and no `Authorization` header:
/// `Ok(None)` when it is not such a request (the bearer key decides). An unknown or expired
/// session answers 401; a change without the session's CSRF token 403; a key revoked since
/// sign-in 401 and ends its sessions.
pub async fn principal(
    state: &AppState,
    parts: &Parts,
    ip: Option<std::net::IpAddr>,
) -> ApiResult<Option<Principal>> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let Some(token) = cookie(&parts.headers) else { return Ok(None) };
    let config = &state.config.console;
    let Some(found) = state.console.find(token, config) else {
        state.metrics.auth_failures.inc();
        return Err(ApiError::Unauthenticated);
    };
    if changes_state(&parts.method) {
        let presented = parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !bool::from(presented.ct_eq(found.csrf.as_bytes())) {
            return Err(ApiError::Forbidden(
                "a change made with a console session needs its CSRF token in X-CSRF-Token".into(),
            ));
        }
    }
    principal_of_key(state, &found.key_id, ip).await.map(Some)
}

/// The principal of a stored key, if it exists and is not revoked (else its sessions end: 401).
pub async fn principal_of_key(
    state: &AppState,
    key_id: &str,
    ip: Option<std::net::IpAddr>,
) -> ApiResult<Principal> {
    let (engine, id) = (state.engine.clone(), key_id.to_owned());
    let record = crate::offload::blocking(move || engine.store().api_key(&id)).await?;
    match record {
        Some(record) if record.revoked_at.is_none() => Ok(Principal {
            key_id: record.key_id,
            tenant: record.tenant,
            role: record.role,
            global: record.global,
            ip,
        }),
        Some(_) => {
            state.console.end_key(key_id);
            Err(ApiError::Revoked)
        }
        None => {
            state.console.end_key(key_id);
            Err(ApiError::Unauthenticated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_idle_and_links_work_once() {
        let sessions = Sessions::default();
        let config = ConsoleConfig { idle: Duration::from_millis(50), ..ConsoleConfig::default() };
        let (token, csrf) = sessions.start("0123456789abcdef");
        let found = sessions.find(&token, &config).expect("live");
        assert_eq!((found.key_id.as_str(), found.csrf.as_str()), ("0123456789abcdef", csrf.as_str()));
        assert!(sessions.find("other", &config).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.find(&token, &config).is_none());
        let link = sessions.new_link("0123456789abcdef", Duration::from_secs(60));
        assert_eq!(sessions.take_link(&link).as_deref(), Some("0123456789abcdef"));
        assert_eq!(sessions.take_link(&link), None);
        let stale = sessions.new_link("0123456789abcdef", Duration::ZERO);
        assert_eq!(sessions.take_link(&stale), None);
    }

    #[test]
    fn cookies_parse_and_are_set_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; evident_session=tok; b=2".parse().unwrap());
        assert_eq!(cookie(&headers), Some("tok"));
        let secure = ConsoleConfig { secure_cookies: true, ..ConsoleConfig::default() };
        assert_eq!(
            set_cookie(Some("tok"), &secure),
            "evident_session=tok; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure"
        );
        assert_eq!(
            set_cookie(None, &ConsoleConfig::default()),
            "evident_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}
