//! OpenFeature's Remote Evaluation Protocol: `POST /ofrep/v1/evaluate/flags/{key}`
//! and the bulk `POST /ofrep/v1/evaluate/flags`, with the protocol's own
//! answers (not problem documents): a value with its reason and variant, or
//! `{key, errorCode, errorDetails}`. Any token may evaluate, by
//! `Authorization: Bearer` or `X-API-Key`; a `flags:read` token may do
//! nothing else. Flags are read from the fleet, never from the store, so a
//! kill takes effect on the next evaluation and evaluating never waits.

use super::problem::ApiError;
use crate::auth;
use crate::flags::FlagRecord;
use crate::state::AppState;
use axum::body::Bytes;
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
async fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|k| format!("Bearer {k}"));
    auth::authenticate(state.store(), bearer.or(key).as_deref()).await?;
    Ok(())
}

fn failure(status: u16, failure: &Failure) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(failure)).into_response()
}

/// The request's context, or the protocol's error for a body that is not
/// one. No `context` is an empty one (SDKs send `{}` without a context): a
/// flag that needs a targeting key then says so.
fn context(key: &str, body: &[u8]) -> Result<Map<String, Value>, Failure> {
    let fail = |code, details: &str| Failure { key: key.into(), error_code: code, error_details: details.into() };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| fail(ErrorCode::ParseError, &format!("the body is not JSON: {e}")))?;
    let Value::Object(mut request) = value else {
        return Err(fail(ErrorCode::ParseError, "the body must be an object: {\"context\": {\"targetingKey\": …}}"));
    };
    match request.remove("context") {
        Some(Value::Object(context)) => Ok(context),
        None | Some(Value::Null) => Ok(Map::new()),
        Some(_) => Err(fail(ErrorCode::InvalidContext, "`context` must be an object")),
    }
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
    ))]
pub async fn evaluate_one(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorized(&state, &headers).await?;
    let flags = state.fleet().flags();
    let answer = context(&key, &body).and_then(|context| evaluate(&state, &flags, &key, &context));
    Ok(match answer {
        Ok(value) => axum::Json(value).into_response(),
        Err(f) => failure(f.error_code.status(), &f),
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
    ))]
pub async fn evaluate_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorized(&state, &headers).await?;
    let context = match context("", &body) {
        Ok(context) => context,
        Err(f) => {
            let body = json!({ "errorCode": f.error_code, "errorDetails": f.error_details });
            return Ok((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
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
