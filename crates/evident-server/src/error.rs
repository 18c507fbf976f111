//! API errors as RFC 9457 problem details (`application/problem+json`). Every error the service
//! answers passes through [`ApiError::into_response`]: one `match` decides the status, and a 5xx
//! body never carries internal text (it goes to the log instead).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evident_core::validate::FieldError;
use evident_wire::api::{InvalidParam, Problem};

/// A failing field of a producer event as problem details list it.
pub fn invalid_param(err: &FieldError) -> InvalidParam {
    InvalidParam { name: err.field.clone(), rule: err.rule.to_owned(), reason: err.message.clone() }
}

impl From<evident_wire::filter::Invalid> for ApiError {
    fn from(invalid: evident_wire::filter::Invalid) -> ApiError {
        ApiError::BadRequest { detail: invalid.reason.clone(), params: vec![InvalidParam::from(invalid)] }
    }
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed; `params` names the fields.
    BadRequest {
        detail: String,
        params: Vec<InvalidParam>,
    },
    /// 422: the request is well formed but a policy refuses it (a retention below a preset's
    /// floor, say); `params` names the fields.
    Unprocessable {
        detail: String,
        params: Vec<InvalidParam>,
    },
    /// 401: no credential, or one that is unknown, malformed or revoked.
    Unauthenticated,
    /// 401 for a key whose secret is right but which was revoked: said so (only to whoever holds
    /// the secret), so its holder asks for a new key instead of checking the one they have.
    Revoked,
    /// 403: the credential is valid but its role or tenant does not allow this.
    Forbidden(String),
    NotFound(String),
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: the same (source, id) was stored with other content.
    Conflict(String),
    /// 413: the body or an event is too large.
    TooLarge(String),
    /// 415: a content type this endpoint does not take.
    UnsupportedMediaType(String),
    /// 429 with `Retry-After`: this client address failed to authenticate too often.
    TooManyRequests(Duration),
    /// 503 with `Retry-After`: the ingest queue is full.
    Overloaded(Duration),
    /// 503: storage is unavailable or the service is stopping; retry later.
    Unavailable(String),
    /// 500: a bug or tamper evidence; details are logged, not sent.
    Internal(String),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest { detail: detail.into(), params: Vec::new() }
    }

    pub fn invalid_param(name: &str, rule: &str, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError::BadRequest {
            detail: reason.clone(),
            params: vec![InvalidParam { name: name.into(), rule: rule.into(), reason }],
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated | ApiError::Revoked => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid request",
            ApiError::Unprocessable { .. } => "refused by policy",
            ApiError::Unauthenticated => "authentication required",
            ApiError::Revoked => "key revoked",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not found",
            ApiError::MethodNotAllowed => "method not allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "payload too large",
            ApiError::UnsupportedMediaType(_) => "unsupported media type",
            ApiError::TooManyRequests(_) => "too many failed attempts, retry later",
            ApiError::Overloaded(_) => "overloaded, retry later",
            ApiError::Unavailable(_) => "service unavailable, retry later",
            ApiError::Internal(_) => "internal error",
        }
    }

    pub fn problem(&self) -> Problem {
        let (detail, invalid_params) = match self {
            ApiError::BadRequest { detail, params } | ApiError::Unprocessable { detail, params } => {
                (Some(detail.clone()), params.clone())
            }
            ApiError::Unauthenticated => {
                (Some("send a valid API key as `Authorization: Bearer <key>`".to_owned()), Vec::new())
            }
            ApiError::Revoked => {
                (Some("this API key was revoked; ask an admin for a new one".to_owned()), Vec::new())
            }
            ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::TooLarge(detail)
            | ApiError::UnsupportedMediaType(detail) => (Some(detail.clone()), Vec::new()),
            ApiError::MethodNotAllowed => {
                (Some("this path does not take this method; see /openapi.json".to_owned()), Vec::new())
            }
            ApiError::Overloaded(_) | ApiError::Unavailable(_) | ApiError::Internal(_) => (None, Vec::new()),
            ApiError::TooManyRequests(_) => (
                Some(
                    "this address failed to authenticate too often; wait for Retry-After seconds".to_owned(),
                ),
                Vec::new(),
            ),
        };
        let status = self.status();
        Problem {
            problem_type: "about:blank".to_owned(),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail,
            invalid_params,
        }
    }
}

impl From<evident_core::Error> for ApiError {
    fn from(err: evident_core::Error) -> ApiError {
        use evident_core::Error as E;
        match err {
            E::NotFound(what) => ApiError::NotFound(what),
            E::InvalidArgument(what) => ApiError::bad_request(what),
            E::Conflict(what) => ApiError::Conflict(what),
            E::Overloaded { retry_after } => ApiError::Overloaded(retry_after),
            E::Unavailable(what) => ApiError::Unavailable(what),
            E::ShuttingDown => ApiError::Unavailable("shutting down".into()),
            E::Sealed(what) | E::Integrity(what) => ApiError::Internal(what),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            _ => {}
        }
        let body = serde_json::to_vec(&self.problem()).expect("problem details serialise");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match &self {
            ApiError::Overloaded(retry) | ApiError::TooManyRequests(retry) => {
                let seconds = retry.as_secs().max(1).to_string();
                headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&seconds).expect("digits"));
            }
            // Every failure of ours tells the client when to retry.
            ApiError::Unavailable(_) | ApiError::Internal(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthenticated | ApiError::Revoked => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
