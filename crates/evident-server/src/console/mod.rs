//! The web console: `GET /` serves one HTML shell, and plain ES modules and CSS (in
//! `crates/evident-server/console/`, embedded at build time: no Node, no bundler) do the rest
//! against the same `/v1/...` API with a session cookie ([`session`]). Assets live under a path
//! named by the hash of them all, so they are cached for a year and a new build is fetched anew.
//! Every console answer carries a strict Content-Security-Policy: scripts and styles from this
//! origin only, nothing inline.

pub mod session;

use std::sync::LazyLock;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::principal::{Need, Principal};

/// The policy of every console answer: nothing but this origin's own files and API.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Page weight budget: the shell and every asset of the console together, uncompressed (all of
/// it loads on the first visit; then it is cached until the next build).
pub const WEIGHT_BUDGET_BYTES: usize = 96 * 1024;

macro_rules! assets {
    ($($name:literal => $kind:literal),* $(,)?) => {
        &[$(($name, $kind, include_bytes!(concat!("../../console/", $name)) as &[u8])),*]
    };
}

/// The console's files: name, content type, bytes.
pub static ASSETS: &[(&str, &str, &[u8])] = assets![
    "app.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "query.js" => "text/javascript; charset=utf-8",
    "verify.js" => "text/javascript; charset=utf-8",
    "views.js" => "text/javascript; charset=utf-8",
    "views-audit.js" => "text/javascript; charset=utf-8",
    "views-admin.js" => "text/javascript; charset=utf-8",
    "witness.js" => "text/javascript; charset=utf-8",
    "views-insight.js" => "text/javascript; charset=utf-8",
];

const INDEX: &str = include_str!("../../console/index.html");

/// The hash that names this build's assets (16 hex digits of SHA-256 over all of them).
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = Sha256::new();
    for (name, _, bytes) in ASSETS {
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hasher.update(INDEX.as_bytes());
    hex::encode(&hasher.finalize()[..8])
});

static INDEX_HTML: LazyLock<String> = LazyLock::new(|| INDEX.replace("{{VERSION}}", &VERSION));

/// Total bytes of the console's shell and assets.
pub fn weight() -> usize {
    INDEX.len() + ASSETS.iter().map(|(_, _, bytes)| bytes.len()).sum::<usize>()
}

fn secured(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The web console.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    let html = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML.as_str()).into_response();
    secured(html, "no-cache")
}

/// One file of the console, under the hash of this build (cached for a year).
#[utoipa::path(get, path = "/console/assets/{version}/{file}", tag = "console",
    params(("version" = String, Path, description = "The build's asset hash"), ("file" = String, Path)),
    responses((status = 200, content_type = "text/javascript", body = String),
              (status = 404, body = evident_wire::api::Problem)))]
pub async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let found = ASSETS.iter().find(|(name, _, _)| *name == file);
    match found {
        Some((_, kind, bytes)) if version == *VERSION => {
            let body = ([(header::CONTENT_TYPE, *kind)], *bytes).into_response();
            secured(body, "public, max-age=31536000, immutable")
        }
        _ => ApiError::NotFound(format!("no console asset {file:?} in build {version:?}")).into_response(),
    }
}

/// What the page knows about its session: who, what the role may do, and the CSRF token.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub key_id: String,
    pub tenant: String,
    pub role: String,
    pub global: bool,
    /// Send it as `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    /// Seconds until the session ends unless used.
    pub expires_in: u64,
    /// What the role may do: `read`, `review`, `admin`, `privacy` (the page hides the rest; the
    /// server decides).
    pub may: Vec<String>,
}

fn info(principal: &Principal, found: &session::Found) -> SessionInfo {
    let needs =
        [(Need::Read, "read"), (Need::Review, "review"), (Need::Admin, "admin"), (Need::Privacy, "privacy")];
    SessionInfo {
        key_id: principal.key_id.clone(),
        tenant: principal.tenant.to_string(),
        role: principal.role.as_str().to_owned(),
        global: principal.global,
        csrf_token: found.csrf.clone(),
        expires_in: u64::try_from(found.ends_in.as_millis().div_ceil(1000)).unwrap_or(u64::MAX),
        may: needs
            .into_iter()
            .filter(|(need, _)| principal.may(*need))
            .map(|(_, name)| name.to_owned())
            .collect(),
    }
}

/// The client's address, when the listener knows it.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let connect = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientIp(connect.map(|c| c.0.ip())))
    }
}

/// The current console session (from its cookie).
#[utoipa::path(get, path = "/console/session", tag = "console",
    responses((status = 200, body = SessionInfo), (status = 401, body = evident_wire::api::Problem)))]
pub async fn get_session(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = session::cookie(&headers).ok_or(ApiError::Unauthenticated)?;
    let found = state.console.find(&state, token).await?.ok_or(ApiError::Unauthenticated)?;
    let principal = session::principal_of_key(&state, &found.key_id, client).await?;
    Ok(secured(Json(info(&principal, &found)).into_response(), "no-store"))
}

/// A sign-in: an API key, or the token of a one-time link made by `evident console-link`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub key: Option<String>,
    pub link: Option<String>,
}

/// Refuses a browser request sent from another origin (a login forced on a victim).
fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("sign-in from another origin ({origin}) is refused")))
    }
}

/// Exchanges an API key or a sign-in link for a session cookie (`HttpOnly`, `SameSite=Strict`,
/// `Secure` behind TLS). Producer keys cannot sign in: they read nothing.
#[utoipa::path(post, path = "/console/session", tag = "console", request_body = SignIn,
    responses((status = 200, body = SessionInfo), (status = 400, body = evident_wire::api::Problem),
              (status = 401, body = evident_wire::api::Problem), (status = 403, body = evident_wire::api::Problem),
              (status = 429, body = evident_wire::api::Problem)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    same_origin(&headers)?;
    let request: SignIn = serde_json::from_slice(&body)
        .map_err(|err| ApiError::invalid_param("body", "json", format!("invalid request body: {err}")))?;
    let principal = match (&request.key, &request.link) {
        (Some(key), None) => {
            let mut bearer = HeaderMap::new();
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ApiError::invalid_param("key", "format", "not an API key"))?;
            bearer.insert(header::AUTHORIZATION, value);
            auth::authenticate(&state, &bearer, client).await?
        }
        (None, Some(link)) => {
            let key_id = state.console.take_link(&state, link).await?.ok_or(ApiError::Unauthenticated)?;
            session::principal_of_key(&state, &key_id, client).await?
        }
        _ => return Err(ApiError::invalid_param("key", "conditional", "give exactly one of key and link")),
    };
    auth::require(&state, &principal, Need::Read, None).await?;
    let token = state.console.start(&state, &principal.key_id).await?;
    let found = state.console.find(&state, &token).await?.ok_or(ApiError::Unauthenticated)?;
    let how = if request.link.is_some() { "link" } else { "key" };
    record(&state, &principal, "evident.console.signin", "login", how).await?;
    let cookie = session::set_cookie(Some(&token), &state.config.console);
    let mut response = secured(Json(info(&principal, &found)).into_response(), "no-store");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie text"));
    Ok(response)
}

async fn record(
    state: &AppState,
    principal: &Principal,
    kind: &'static str,
    action: &'static str,
    how: &str,
) -> ApiResult<()> {
    let mut event = AuditEvent {
        event_type: kind,
        action,
        target: ("console_session".into(), principal.key_id.clone()),
        ..AuditEvent::by(principal)
    };
    event.metadata.insert("via".into(), how.into());
    audit::record(state, &principal.tenant, event).await
}

/// Signs out: ends the session of the cookie (which needs its CSRF token) and clears the cookie.
#[utoipa::path(delete, path = "/console/session", tag = "console",
    responses((status = 204), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)))]
pub async fn sign_out(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = session::cookie(&headers).ok_or(ApiError::Unauthenticated)?;
    let found = state.console.find(&state, token).await?.ok_or(ApiError::Unauthenticated)?;
    let presented = headers.get(session::CSRF_HEADER).and_then(|v| v.to_str().ok());
    if presented != Some(found.csrf.as_str()) {
        return Err(ApiError::Forbidden("signing out needs the session's CSRF token in X-CSRF-Token".into()));
    }
    state.console.end(&state, token).await?;
    if let Ok(principal) = session::principal_of_key(&state, &found.key_id, client).await {
        record(&state, &principal, "evident.console.signout", "logout", "session").await?;
    }
    let cookie = session::set_cookie(None, &state.config.console);
    let mut response = secured(StatusCode::NO_CONTENT.into_response(), "no-store");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie text"));
    Ok(response)
}

/// A one-time sign-in link, made with a key for its holder's browser.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsoleLink {
    /// The path and fragment to open on this server (the token is in the fragment, which
    /// browsers never send to servers or in `Referer`).
    pub path: String,
    /// Seconds it stays usable (once).
    pub expires_in: u64,
}

/// Makes a short-lived one-time sign-in link for the caller's key (`evident console-link`).
#[utoipa::path(post, path = "/console/links", tag = "console",
    responses((status = 201, body = ConsoleLink), (status = 401, body = evident_wire::api::Problem),
              (status = 403, body = evident_wire::api::Problem)),
    security(("bearer" = [])))]
pub async fn create_link(State(state): State<AppState>, caller: Caller<auth::Read>) -> ApiResult<Response> {
    let principal = caller.principal;
    let ttl = state.config.console.link_ttl;
    let token = state.console.new_link(&state, &principal.key_id).await?;
    record(&state, &principal, "evident.console.link", "other", "key").await?;
    let link = ConsoleLink { path: format!("/#/link/{token}"), expires_in: ttl.as_secs() };
    let mut response = (StatusCode::CREATED, Json(link)).into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static("cache-control"), HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_fits_its_weight_budget() {
        let weight = weight();
        assert!(
            weight <= WEIGHT_BUDGET_BYTES,
            "the console weighs {weight} bytes, over {WEIGHT_BUDGET_BYTES}"
        );
    }

    /// Every module a script imports and every file the shell names is served (a missing one
    /// would break the page only in a browser).
    #[test]
    fn every_imported_file_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(name, _, _)| *name).collect();
        let mut named: Vec<String> = Vec::new();
        for (_, _, bytes) in ASSETS {
            let text = std::str::from_utf8(bytes).expect("utf-8");
            named.extend(
                text.split("from './").skip(1).map(|rest| rest.split('\'').next().unwrap().to_owned()),
            );
        }
        named.extend(
            INDEX.split("{{VERSION}}/").skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()),
        );
        assert!(named.len() > 10, "{named:?}");
        for name in &named {
            assert!(served.contains(&name.as_str()), "{name} is named but not served");
        }
        for name in served {
            assert!(named.iter().any(|n| n == name), "{name} is served but never loaded");
        }
    }
}
