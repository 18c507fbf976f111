//! Browser sessions of the console: an API key (or a one-time sign-in link made with a key) is
//! exchanged for a random session token in an `HttpOnly`, `SameSite=Strict` cookie. Sessions and
//! links live in the store's service state, so a restart keeps them and every node sharing the
//! store accepts them; the store holds only SHA-256 of each token, never the token:
//!
//! - `console/session/<key id>/<hex SHA-256 of the token>`: the key and when the session began;
//! - `console/seen/<key id>/<hex SHA-256 of the token>`: when it was last used, written at most
//!   once per [`touch_every`] (about a minute), so a page view is not a durable write each time,
//!   and under its own name, so a late touch cannot bring back a session that was signed out;
//! - `console/link/<hex SHA-256 of the token>`: a sign-in link's key and end; taking it deletes
//!   it, and only the request whose delete removed it signs in.
//!
//! The cookie is `<key id>.<token>`; the CSRF token is derived from the session token (a keyed
//! digest of it under a fixed label), so it is not stored either. Every request made with the
//! cookie looks the key up again, so revoking the key ends its sessions on every node; a request
//! that changes anything must also carry the CSRF token in `X-CSRF-Token`. Expired entries are
//! swept (at most once a minute a node, off the request's path).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use evident_core::store::Store;
use evident_wire::Micros;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::principal::Principal;

/// The session cookie's name.
pub const COOKIE: &str = "evident_session";
/// The header that carries the CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSIONS: &str = "console/session/";
const SEEN: &str = "console/seen/";
const LINKS: &str = "console/link/";
/// How often a node sweeps expired sessions and links out of the store.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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

/// How stale a session's last-use time may get before a request writes it again: a minute, or a
/// quarter of the idle time when that is shorter. A session therefore ends between
/// `idle - touch_every` and `idle` after its last use.
pub fn touch_every(config: &ConsoleConfig) -> Duration {
    (config.idle / 4).min(Duration::from_secs(60))
}

/// A session as stored (`console/session/...`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    key_id: String,
    /// Sign-in, microseconds since the epoch.
    started: i64,
}

/// A sign-in link as stored (`console/link/...`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredLink {
    key_id: String,
    until: i64,
}

/// A session that was found: its key and CSRF token, and when it ends unless used.
#[derive(Clone, Debug)]
pub struct Found {
    pub key_id: String,
    pub csrf: String,
    pub ends_in: Duration,
}

/// A node's side of the sessions: when it last swept the store (the sessions are in the store).
#[derive(Debug, Default)]
pub struct Sessions {
    last_sweep: Mutex<Option<Instant>>,
}

fn hex_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn csrf_of(token: &str) -> String {
    B64URL.encode(Sha256::digest(format!("evident console csrf\n{token}").as_bytes()))
}

fn random_token() -> String {
    B64URL.encode(evident_core::seal::random_32())
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn since(now: Micros, then: i64) -> Duration {
    Duration::from_micros(u64::try_from(now.0.saturating_sub(then)).unwrap_or(0))
}

/// A cookie's key id and token, if it has their form (a key id is 16 hex digits).
fn split_cookie(cookie: &str) -> Option<(&str, &str)> {
    let (key_id, token) = cookie.split_once('.')?;
    let valid = key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) && !token.is_empty();
    valid.then_some((key_id, token))
}

/// The names of a session's two blobs.
fn names(key_id: &str, token: &str) -> (String, String) {
    let digest = hex_digest(token);
    (format!("{SESSIONS}{key_id}/{digest}"), format!("{SEEN}{key_id}/{digest}"))
}

fn decode<T: for<'de> Deserialize<'de>>(name: &str, bytes: &[u8]) -> evident_core::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| evident_core::Error::Integrity(format!("service state {name} does not parse: {err}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a session serialises")
}

/// The store-side operations, blocking; the handlers run them through [`crate::offload`].
mod stored {
    use super::*;

    pub fn start(store: &dyn Store, key_id: &str, now: Micros) -> evident_core::Result<String> {
        let token = random_token();
        let (session, _) = names(key_id, &token);
        store.put_state(&session, &encode(&Stored { key_id: key_id.to_owned(), started: now.0 }))?;
        Ok(format!("{key_id}.{token}"))
    }

    pub fn find(
        store: &dyn Store,
        cookie: &str,
        config: &ConsoleConfig,
        now: Micros,
    ) -> evident_core::Result<Option<Found>> {
        let Some((key_id, token)) = split_cookie(cookie) else { return Ok(None) };
        let (session_name, seen_name) = names(key_id, token);
        let Some(bytes) = store.get_state(&session_name)? else { return Ok(None) };
        let session: Stored = decode(&session_name, &bytes)?;
        let seen = match store.get_state(&seen_name)? {
            Some(bytes) => decode::<i64>(&seen_name, &bytes)?.max(session.started),
            None => session.started,
        };
        let (age, unused) = (since(now, session.started), since(now, seen));
        if session.key_id != key_id || age >= config.max_age || unused >= config.idle {
            store.delete_state(&session_name)?;
            store.delete_state(&seen_name)?;
            return Ok(None);
        }
        if unused >= touch_every(config) {
            store.put_state(&seen_name, &encode(&now.0))?;
        }
        let ends_in = config.max_age.saturating_sub(age).min(config.idle);
        Ok(Some(Found { key_id: session.key_id, csrf: csrf_of(token), ends_in }))
    }

    pub fn end(store: &dyn Store, cookie: &str) -> evident_core::Result<()> {
        if let Some((key_id, token)) = split_cookie(cookie) {
            let (session, seen) = names(key_id, token);
            store.delete_state(&session)?;
            store.delete_state(&seen)?;
        }
        Ok(())
    }

    pub fn end_key(store: &dyn Store, key_id: &str) -> evident_core::Result<()> {
        for prefix in [SESSIONS, SEEN] {
            for name in store.state_names(&format!("{prefix}{key_id}/"))? {
                store.delete_state(&name)?;
            }
        }
        Ok(())
    }

    pub fn new_link(store: &dyn Store, key_id: &str, until: Micros) -> evident_core::Result<String> {
        let token = random_token();
        let link = StoredLink { key_id: key_id.to_owned(), until: until.0 };
        store.put_state(&format!("{LINKS}{}", hex_digest(&token)), &encode(&link))?;
        Ok(token)
    }

    pub fn take_link(store: &dyn Store, token: &str, now: Micros) -> evident_core::Result<Option<String>> {
        let name = format!("{LINKS}{}", hex_digest(token));
        let Some(bytes) = store.get_state(&name)? else { return Ok(None) };
        let link: StoredLink = decode(&name, &bytes)?;
        // Of two nodes taking one link at once, only the one whose delete removed it goes on.
        let taken = store.delete_state(&name)?;
        Ok((taken && link.until > now.0).then_some(link.key_id))
    }

    /// Deletes expired sessions (and their last-use times), last-use times without a session,
    /// and expired links; answers how many entries it deleted.
    pub fn sweep(store: &dyn Store, config: &ConsoleConfig, now: Micros) -> evident_core::Result<usize> {
        let mut deleted = 0;
        let mut live = std::collections::HashSet::new();
        for name in store.state_names(SESSIONS)? {
            let Some(bytes) = store.get_state(&name)? else { continue };
            let rest = &name[SESSIONS.len()..];
            let seen_name = format!("{SEEN}{rest}");
            let started = decode::<Stored>(&name, &bytes).map(|s| s.started).unwrap_or(i64::MIN);
            let seen = match store.get_state(&seen_name)? {
                Some(bytes) => decode::<i64>(&seen_name, &bytes).unwrap_or(started).max(started),
                None => started,
            };
            if since(now, started) >= config.max_age || since(now, seen) >= config.idle {
                deleted += usize::from(store.delete_state(&name)?);
            } else {
                live.insert(rest.to_owned());
            }
        }
        for name in store.state_names(SEEN)? {
            if !live.contains(&name[SEEN.len()..]) {
                deleted += usize::from(store.delete_state(&name)?);
            }
        }
        for name in store.state_names(LINKS)? {
            let Some(bytes) = store.get_state(&name)? else { continue };
            let until = decode::<StoredLink>(&name, &bytes).map(|l| l.until).unwrap_or(i64::MIN);
            if until <= now.0 {
                deleted += usize::from(store.delete_state(&name)?);
            }
        }
        Ok(deleted)
    }
}

impl Sessions {
    /// Starts a session for `key_id`: answers the cookie's value.
    pub async fn start(&self, state: &AppState, key_id: &str) -> ApiResult<String> {
        self.sweep_when_due(state);
        let (store, key_id) = (state.engine.store().clone(), key_id.to_owned());
        crate::offload::blocking(move || stored::start(store.as_ref(), &key_id, Micros::now())).await
    }

    /// The live session of a cookie, its last use refreshed when due; an expired one is deleted
    /// and answers `None`.
    pub async fn find(&self, state: &AppState, cookie: &str) -> ApiResult<Option<Found>> {
        self.sweep_when_due(state);
        let (store, cookie) = (state.engine.store().clone(), cookie.to_owned());
        let config = state.config.console.clone();
        crate::offload::blocking(move || stored::find(store.as_ref(), &cookie, &config, Micros::now())).await
    }

    /// Ends the session of a cookie, on every node.
    pub async fn end(&self, state: &AppState, cookie: &str) -> ApiResult<()> {
        let (store, cookie) = (state.engine.store().clone(), cookie.to_owned());
        crate::offload::blocking(move || stored::end(store.as_ref(), &cookie)).await
    }

    /// Ends every session of a key (its key was found revoked).
    pub async fn end_key(&self, state: &AppState, key_id: &str) -> ApiResult<()> {
        let (store, key_id) = (state.engine.store().clone(), key_id.to_owned());
        crate::offload::blocking(move || stored::end_key(store.as_ref(), &key_id)).await
    }

    /// A one-time sign-in link token for `key_id`, usable for the configured time.
    pub async fn new_link(&self, state: &AppState, key_id: &str) -> ApiResult<String> {
        let (store, key_id) = (state.engine.store().clone(), key_id.to_owned());
        let until = Micros(Micros::now().0.saturating_add(micros(state.config.console.link_ttl)));
        crate::offload::blocking(move || stored::new_link(store.as_ref(), &key_id, until)).await
    }

    /// Uses up a link: answers its key id when it existed, had not expired and this request
    /// was the one that took it.
    pub async fn take_link(&self, state: &AppState, token: &str) -> ApiResult<Option<String>> {
        let (store, token) = (state.engine.store().clone(), token.to_owned());
        crate::offload::blocking(move || stored::take_link(store.as_ref(), &token, Micros::now())).await
    }

    /// Sweeps the store in the background when this node has not for [`SWEEP_EVERY`].
    fn sweep_when_due(&self, state: &AppState) {
        {
            let mut last = self.last_sweep.lock().expect("sweep clock");
            if last.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (store, config) = (state.engine.store().clone(), state.config.console.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(err) = stored::sweep(store.as_ref(), &config, Micros::now()) {
                tracing::warn!(error = %err, "sweeping expired console sessions failed; the next sweep tries again");
            }
        });
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
    let Some(found) = state.console.find(state, token).await? else {
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
            state.console.end_key(state, key_id).await?;
            Err(ApiError::Revoked)
        }
        None => {
            state.console.end_key(state, key_id).await?;
            Err(ApiError::Unauthenticated)
        }
    }
}

#[cfg(test)]
mod tests {
    use evident_core::store::KeyStore;

    use super::*;

    /// The stored sessions on a real SQLite store, at chosen times (no sleeping).
    #[test]
    fn stored_sessions_expire_are_touched_rarely_and_links_work_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = evident_store_sqlite::SqliteStore::open(&dir.path().join("store.db")).unwrap();
        let config = ConsoleConfig {
            idle: Duration::from_secs(600),
            max_age: Duration::from_secs(3600),
            ..ConsoleConfig::default()
        };
        let at = |secs: i64| Micros(1_800_000_000_000_000 + secs * 1_000_000);
        let key = "0123456789abcdef";
        let cookie = stored::start(&store, key, at(0)).unwrap();
        let token = cookie.strip_prefix("0123456789abcdef.").expect("key id, dot, token");
        // Only digests are stored, never the token or the CSRF token.
        let names = store.state_names("console/").unwrap();
        assert_eq!(names, [format!("console/session/{key}/{}", hex_digest(token))]);
        let blob = store.get_state(&names[0]).unwrap().unwrap();
        let found = stored::find(&store, &cookie, &config, at(10)).unwrap().expect("live");
        assert_eq!(found.key_id, key);
        for secret in [token.to_owned(), found.csrf.clone()] {
            assert!(!String::from_utf8_lossy(&blob).contains(&secret));
        }
        assert_eq!(found.csrf, csrf_of(token));
        // Within a minute of sign-in a use writes nothing; after it, the last use is written.
        assert_eq!(store.state_names("console/seen/").unwrap().len(), 0);
        assert!(stored::find(&store, &cookie, &config, at(70)).unwrap().is_some());
        assert_eq!(store.state_names("console/seen/").unwrap().len(), 1);
        assert!(stored::find(&store, &cookie, &config, at(100)).unwrap().is_some());
        let seen = store.get_state(&store.state_names("console/seen/").unwrap()[0]).unwrap();
        assert_eq!(seen, Some(at(70).0.to_string().into_bytes()), "not rewritten 30 s later");
        // Idle from its last written use (70 s): alive at 669 s, gone at 670 s, and deleted.
        assert!(stored::find(&store, &cookie, &config, at(669)).unwrap().is_some());
        let idle = stored::start(&store, key, at(0)).unwrap();
        assert!(stored::find(&store, &idle, &config, at(600)).unwrap().is_none());
        // Absolute age: used every few minutes, it still ends an hour after sign-in.
        for minute in (15..60).step_by(5) {
            assert!(stored::find(&store, &cookie, &config, at(minute * 60)).unwrap().is_some(), "{minute}");
        }
        assert!(stored::find(&store, &cookie, &config, at(3600)).unwrap().is_none());
        assert_eq!(store.state_names("console/").unwrap(), Vec::<String>::new(), "expired ones deleted");
        // A forged or malformed cookie finds nothing.
        let other = stored::start(&store, key, at(0)).unwrap();
        for bad in ["", "x", "0123456789abcdef.wrong", "../../x.y", &other.replace(key, "fedcba9876543210")] {
            assert!(stored::find(&store, bad, &config, at(1)).unwrap().is_none(), "{bad}");
        }
        // Sign-out and revocation.
        stored::end(&store, &other).unwrap();
        assert!(stored::find(&store, &other, &config, at(1)).unwrap().is_none());
        let (one, two) =
            (stored::start(&store, key, at(0)).unwrap(), stored::start(&store, key, at(0)).unwrap());
        let kept = stored::start(&store, "fedcba9876543210", at(0)).unwrap();
        stored::end_key(&store, key).unwrap();
        assert!(stored::find(&store, &one, &config, at(1)).unwrap().is_none());
        assert!(stored::find(&store, &two, &config, at(1)).unwrap().is_none());
        assert!(stored::find(&store, &kept, &config, at(1)).unwrap().is_some());
        // Links: once, and not after their end.
        let link = stored::new_link(&store, key, at(300)).unwrap();
        assert_eq!(stored::take_link(&store, &link, at(1)).unwrap().as_deref(), Some(key));
        assert_eq!(stored::take_link(&store, &link, at(1)).unwrap(), None);
        let stale = stored::new_link(&store, key, at(300)).unwrap();
        assert_eq!(stored::take_link(&store, &stale, at(300)).unwrap(), None);
        // The sweep deletes what has expired and keeps the rest.
        let late = stored::start(&store, key, at(3000)).unwrap();
        stored::new_link(&store, key, at(100)).unwrap();
        let live_link = stored::new_link(&store, key, at(5000)).unwrap();
        assert!(stored::find(&store, &late, &config, at(3100)).unwrap().is_some());
        assert_eq!(stored::sweep(&store, &config, at(3200)).unwrap(), 2, "the kept session, one link");
        assert!(stored::find(&store, &late, &config, at(3200)).unwrap().is_some());
        assert_eq!(stored::take_link(&store, &live_link, at(3200)).unwrap().as_deref(), Some(key));
        assert_eq!(store.state_names("console/").unwrap().len(), 2, "late's session and last use");
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
