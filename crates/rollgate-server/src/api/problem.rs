//! Errors as `application/problem+json` (RFC 9457), with a status that says
//! whose fault it was: 4xx for the request, 5xx only for rollgate itself.

use crate::auth::AuthError;
use crate::registry::RegistryError;
use crate::views::GateView;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollgate_core::config::MAX_NAME_LEN;
use rollgate_core::rollout::Rejection;
use rollgate_store::{StoreError, SubmitError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem report: what went wrong and, for blocked actions, each gate and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the title says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For a blocked promotion: every gate of the stage and its status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<GateView>>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub gates: Option<Vec<GateView>>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, title, detail: detail.into(), gates: None }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, detail = %self.detail, "request failed");
        }
        let problem = Problem {
            kind: "about:blank".into(),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail,
            gates: self.gates,
        };
        let mut response = (self.status, axum::Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let detail = rejection.to_string();
        let (status, title) = match &rejection {
            Rejection::Forbidden { .. } | Rejection::SeparationOfDuties { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Rejection::NotStarted => (StatusCode::NOT_FOUND, "not found"),
            Rejection::UnknownGate { .. }
            | Rejection::UnknownAction { .. }
            | Rejection::UnknownItem { .. }
            | Rejection::ReasonRequired { .. }
            | Rejection::InvalidStart(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid request"),
            Rejection::AlreadyStarted
            | Rejection::Terminal { .. }
            | Rejection::Blocked { .. }
            | Rejection::Paused { .. }
            | Rejection::NotPaused
            | Rejection::WindowClosed(_)
            | Rejection::NothingToRollBack { .. }
            | Rejection::NotJudged { .. }
            | Rejection::AlreadyApproved { .. }
            | Rejection::AlreadyTicked { .. }
            | Rejection::ActionDone { .. }
            | Rejection::Unchanged => (StatusCode::CONFLICT, "refused in the rollout's current state"),
        };
        let gates = match rejection {
            Rejection::Blocked { gates, .. } => Some(gates.iter().map(GateView::from).collect()),
            _ => None,
        };
        ApiError { status, title, detail, gates }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "concurrent change", err.to_string()),
            StoreError::ServiceBusy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "the service has an active rollout", err.to_string())
            }
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage failed", other.to_string()),
        }
    }
}

impl From<crate::retro::RetroError> for ApiError {
    fn from(e: crate::retro::RetroError) -> ApiError {
        match e {
            crate::retro::RetroError::Store(store) => ApiError::from(store),
            log => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the log does not verify", log.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> ApiError {
        match err {
            SubmitError::Rejected(rejection) => rejection.into(),
            SubmitError::Store(store) => store.into(),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", other.to_string()),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> ApiError {
        match err {
            RegistryError::Invalid(_) => ApiError::unprocessable(err.to_string()),
            RegistryError::Exists { .. } => ApiError::new(StatusCode::CONFLICT, "version exists", err.to_string()),
            RegistryError::Store(store) => store.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        match err {
            AuthError::Store(store) => store.into(),
            AuthError::BadName(_) | AuthError::BadRole(_) => ApiError::unprocessable(err.to_string()),
            AuthError::Random(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", err.to_string()),
            AuthError::Tampered(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the token log does not verify", err.to_string())
            }
            AuthError::NotLive => ApiError::not_found(err.to_string()),
            _ => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string()),
        }
    }
}

/// A JSON body whose errors (syntax, wrong shape, wrong content type, too
/// large) are problems with the matching 4xx status.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_problem(&rejection)),
        };
        // Every request body is an object: serde would read a struct from an
        // array too (`["why"]` as a reason), which no client means.
        if !value.is_object() {
            return Err(ApiError::unprocessable("the body must be a JSON object, e.g. {} or {\"reason\": \"…\"}"));
        }
        if let Some((at, len)) = overlong_text(&value, "") {
            return Err(ApiError::unprocessable(format!(
                "{at} is {len} characters long; a text field holds at most {MAX_TEXT} (attach long reports by reference)"
            )));
        }
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request body", e.to_string()))
    }
}

/// The longest text any field of a request may hold: reasons, summaries,
/// notes and the strings inside evidence details go into the log and into
/// every view of it.
pub const MAX_TEXT: usize = 10_000;

/// The first string in `value` longer than [`MAX_TEXT`], with where it is.
fn overlong_text(value: &serde_json::Value, at: &str) -> Option<(String, usize)> {
    match value {
        serde_json::Value::String(s) => {
            let len = s.chars().count();
            (len > MAX_TEXT).then(|| (if at.is_empty() { "the body".into() } else { at.to_string() }, len))
        }
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| overlong_text(v, &format!("{at}[{i}]")))
        }
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            overlong_text(v, &path)
        }),
        _ => None,
    }
}

fn json_problem(rejection: &JsonRejection) -> ApiError {
    let title = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "send the body as application/json",
        _ => "invalid request body",
    };
    ApiError::new(rejection.status(), title, rejection.body_text())
}

/// Path parameters whose errors are problems too.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // No id or name rollgate gives is longer; say so without echoing a huge one back.
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await
            && let Some((key, value)) = raw.iter().find(|(_, v)| v.len() > MAX_NAME_LEN)
        {
            let detail = format!(
                "the {key} in the path is {} characters long; rollgate's names and ids are at most {MAX_NAME_LEN}",
                value.len()
            );
            return Err(ApiError::not_found(detail));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn path_problem(rejection: &PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid path", rejection.body_text())
}

/// A query string read like a body: an unknown parameter or value is a 400 problem document.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid query", rejection.body_text())),
        }
    }
}
