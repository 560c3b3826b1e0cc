//! Feature flags: define, change, kill and re-enable them (deployers and
//! admins), and read them with their history. Each change is a record in the
//! hash-chained `@flags` stream; evaluation is OFREP's (`ofrep.rs`).

use super::caller::Caller;
use super::problem::{ApiError, ApiJson, ApiPath};
use super::responses::{ReadErrors, WriteErrors};
use crate::flags::{self, Change, FlagHistory, FlagRecord};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rollgate_flags::Flag;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagReason {
    /// Why: kept in the log with the change.
    pub reason: String,
}

/// A flag definition as the body: Unleash's client-API shape with `kind`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body in the OpenAPI document; serde reads it as a `Flag`.
pub struct FlagDefinition {
    name: String,
    enabled: bool,
    /// boolean (default), string, number or object.
    kind: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    strategies: Option<Vec<serde_json::Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    variants: Option<Vec<serde_json::Value>>,
}

impl From<flags::FlagError> for ApiError {
    fn from(err: flags::FlagError) -> ApiError {
        match err {
            flags::FlagError::Invalid(_) => ApiError::unprocessable(err.to_string()),
            flags::FlagError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "flag exists", err.to_string()),
            flags::FlagError::NotFound(_) => ApiError::not_found(err.to_string()),
            flags::FlagError::Store(store) => store.into(),
        }
    }
}

/// Records a change and hands the fleet the flags as they now are (if the
/// store cannot be read back now, the next tick's sync does it: the change is
/// recorded either way).
async fn apply(
    state: &AppState,
    caller: &Caller,
    name: &str,
    change: Change,
    reason: Option<String>,
) -> Result<FlagRecord, ApiError> {
    caller.require_operator("change feature flags")?;
    let record = flags::change(state.store(), name, change, &caller.0.name, reason, state.now()).await?;
    if let Err(e) = state.fleet().reload_flags(state.store()).await {
        tracing::warn!(flag = name, error = %e, "the change is recorded; the flags are read again on the next tick");
    }
    Ok(record)
}

/// Every flag as it is now, with its last change.
#[utoipa::path(get, path = "/api/v1/flags", tag = "flags", security(("token" = [])),
    responses((status = 200, body = Vec<FlagRecord>), ReadErrors))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<FlagRecord>>, ApiError> {
    Ok(Json(state.fleet().flags().values().cloned().collect()))
}

/// Define a new flag.
#[utoipa::path(post, path = "/api/v1/flags", tag = "flags", security(("token" = [])),
    request_body = FlagDefinition, responses((status = 201, body = FlagRecord), WriteErrors))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(flag): ApiJson<Flag>,
) -> Result<(StatusCode, Json<FlagRecord>), ApiError> {
    let name = flag.name.clone();
    Ok((StatusCode::CREATED, Json(apply(&state, &caller, &name, Change::Create(flag), None).await?)))
}

/// A flag with every change made to it.
#[utoipa::path(get, path = "/api/v1/flags/{flag}", tag = "flags", security(("token" = [])),
    params(("flag" = String, Path, description = "The flag's name")),
    responses((status = 200, body = FlagHistory), ReadErrors))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<FlagHistory>, ApiError> {
    let events = rollgate_store::EventStore::read(state.store(), flags::FLAGS_STREAM).await?;
    Ok(Json(flags::history(&events, &name)?))
}

/// Replace a flag's definition (its strategies, variants, percentages).
#[utoipa::path(put, path = "/api/v1/flags/{flag}", tag = "flags", security(("token" = [])),
    params(("flag" = String, Path, description = "The flag's name")),
    request_body = FlagDefinition, responses((status = 200, body = FlagRecord), WriteErrors))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(flag): ApiJson<Flag>,
) -> Result<Json<FlagRecord>, ApiError> {
    Ok(Json(apply(&state, &caller, &name, Change::Update(flag), None).await?))
}

/// What a switch does to a flag.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Switch {
    /// The kill switch: every evaluation answers DISABLED from the next one on.
    Kill,
    /// Back on, as it was defined.
    Enable,
}

/// Kill a flag (every evaluation answers DISABLED from the next one on), or enable it again.
#[utoipa::path(post, path = "/api/v1/flags/{flag}/{switch}", tag = "flags", security(("token" = [])),
    params(("flag" = String, Path, description = "The flag's name"), ("switch" = Switch, Path, description = "kill or enable")),
    request_body = FlagReason, responses((status = 200, body = FlagRecord), WriteErrors))]
pub async fn switch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, switch)): ApiPath<(String, Switch)>,
    ApiJson(body): ApiJson<FlagReason>,
) -> Result<Json<FlagRecord>, ApiError> {
    let change = match switch {
        Switch::Kill => Change::Kill,
        Switch::Enable => Change::Enable,
    };
    Ok(Json(apply(&state, &caller, &name, change, Some(body.reason)).await?))
}
