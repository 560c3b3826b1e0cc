//! OpenFeature's Remote Evaluation Protocol: `POST /ofrep/v1/evaluate/flags/{key}`
//! and the bulk `POST /ofrep/v1/evaluate/flags`, with the protocol's own
//! answers (not problem documents): a value with its reason and variant, or
//! `{key, errorCode, errorDetails}`. Any token may evaluate, by
//! `Authorization: Bearer` or `X-API-Key`; a `flags:read` token may do
//! nothing else. Flags are read from the fleet, not the store, so a kill
//! recorded here takes effect on the next evaluation; the token is checked
//! against the store as on every API call.

use super::problem::ApiError;
use crate::flags::{FlagRecord, MAX_NAME};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollgate_flags::Env;
use rollgate_flags::ofrep::{ErrorCode, Failure, resolve};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::BTreeMap;

/// The protocol's request: `{"context": {...}}`. A missing or null context
/// is an empty one (SDKs send `{}` when the application gives none).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the body in the OpenAPI document; the handlers read it by hand.
pub struct EvaluationRequest {
    /// `targetingKey` and any string, number or boolean attributes.
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
}

/// Who may evaluate: any valid token, as a bearer token or an API key.
pub(super) async fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|k| format!("Bearer {k}"));
    state.authenticate(bearer.or(key).as_deref()).await?;
    Ok(())
}

fn failure(status: StatusCode, failure: &Failure) -> Response {
    (status, axum::Json(failure)).into_response()
}

/// The most text a context attribute may hold.
const MAX_ATTRIBUTE: usize = 1024;

/// The request's context, or the protocol's error (with its status) for a
/// request that is not one. No `context` is an empty one (SDKs send `{}`
/// without a context): a flag that needs a targeting key then says so.
fn context(
    key: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, (StatusCode, Failure)> {
    let fail =
        |status, code, details: String| (status, Failure { key: key.into(), error_code: code, error_details: details });
    let body = body.map_err(|e| fail(e.status(), ErrorCode::General, e.body_text()))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Err(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::ParseError,
            "send the body as application/json".into(),
        ));
    }
    let bad = StatusCode::BAD_REQUEST;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| fail(bad, ErrorCode::ParseError, format!("the body is not JSON: {e}")))?;
    let Value::Object(mut request) = value else {
        return Err(fail(
            bad,
            ErrorCode::ParseError,
            "the body must be an object: {\"context\": {\"targetingKey\": …}}".into(),
        ));
    };
    let context = match request.remove("context") {
        Some(Value::Object(context)) => context,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(fail(bad, ErrorCode::InvalidContext, "`context` must be an object".into())),
    };
    if let Some(other) = request.keys().next() {
        return Err(fail(
            bad,
            ErrorCode::ParseError,
            format!("unknown field `{other}`: the body holds only `context`"),
        ));
    }
    if let Some((name, _)) = context.iter().find(|(_, v)| v.as_str().is_some_and(|s| s.len() > MAX_ATTRIBUTE)) {
        return Err(fail(
            bad,
            ErrorCode::InvalidContext,
            format!("context attribute `{name}` is over {MAX_ATTRIBUTE} bytes"),
        ));
    }
    Ok(context)
}

fn evaluate(
    state: &AppState,
    flags: &BTreeMap<String, FlagRecord>,
    key: &str,
    context: &Map<String, Value>,
) -> Result<Value, Failure> {
    let mut random = || fastrand::u32(..);
    let mut env = Env { now: state.now(), random: &mut random };
    let answer = resolve(flags.get(key).map(|r| &r.flag), key, context, &mut env)?;
    Ok(serde_json::to_value(answer).unwrap_or_default())
}

#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "flags",
    security(("token" = []), ("api_key" = [])),
    params(("key" = String, Path, description = "The flag's name")),
    request_body = EvaluationRequest,
    responses(
        (status = 200, description = "The flag's value, reason and variant (OFREP evaluationSuccess)", body = Object),
        (status = 400, description = "OFREP evaluationFailure: PARSE_ERROR, INVALID_CONTEXT, TARGETING_KEY_MISSING or GENERAL", body = Object),
        (status = 401, description = "No valid token"),
        (status = 404, description = "OFREP flagNotFound", body = Object),
        (status = 413, description = "The body is over the size limit (OFREP evaluationFailure, GENERAL)", body = Object),
        (status = 415, description = "The body is not sent as application/json (OFREP evaluationFailure, PARSE_ERROR)", body = Object),
    ))]
pub async fn evaluate_one(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorized(&state, &headers).await?;
    if key.len() > MAX_NAME {
        // No flag has such a name; it is not echoed whole.
        let shown: String = key.chars().take(40).chain(['…']).collect();
        let details = format!("no flag: flag names are at most {MAX_NAME} bytes");
        let not_found = Failure { key: shown, error_code: ErrorCode::FlagNotFound, error_details: details };
        return Ok(failure(StatusCode::NOT_FOUND, &not_found));
    }
    let flags = state.fleet().flags();
    let context = match context(&key, &headers, body) {
        Ok(context) => context,
        Err((status, f)) => return Ok(failure(status, &f)),
    };
    Ok(match evaluate(&state, &flags, &key, &context) {
        Ok(value) => axum::Json(value).into_response(),
        Err(f) => failure(StatusCode::from_u16(f.error_code.status()).unwrap_or(StatusCode::BAD_REQUEST), &f),
    })
}

#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "flags",
    security(("token" = []), ("api_key" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "The ETag of an earlier answer: 304 when the answer is the same")),
    request_body = EvaluationRequest,
    responses(
        (status = 200, description = "Every flag's evaluation (OFREP bulkEvaluationSuccess), with an ETag", body = Object),
        (status = 304, description = "The same answer as the ETag's"),
        (status = 400, description = "OFREP bulkEvaluationFailure", body = Object),
        (status = 401, description = "No valid token"),
        (status = 413, description = "The body is over the size limit (OFREP bulkEvaluationFailure, GENERAL)", body = Object),
        (status = 415, description = "The body is not sent as application/json (OFREP bulkEvaluationFailure, PARSE_ERROR)", body = Object),
    ))]
pub async fn evaluate_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorized(&state, &headers).await?;
    let context = match context("", &headers, body) {
        Ok(context) => context,
        Err((status, f)) => {
            let body = json!({ "errorCode": f.error_code, "errorDetails": f.error_details });
            return Ok((status, axum::Json(body)).into_response());
        }
    };
    let flags = state.fleet().flags();
    let answers: Vec<Value> = flags
        .keys()
        .map(|key| {
            evaluate(&state, &flags, key, &context).unwrap_or_else(|f| serde_json::to_value(f).unwrap_or_default())
        })
        .collect();
    let text = json!({ "flags": answers }).to_string();
    // The answer's own hash: the same flags and context give the same tag, whatever changed elsewhere.
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(text.as_bytes()))[..32]);
    let tag = HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [(header::ETAG, tag), (header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        text,
    )
        .into_response())
}
