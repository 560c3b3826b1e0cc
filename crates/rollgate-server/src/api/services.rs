//! Services, their versions (config and registered), and plans.

use super::caller::Caller;
use super::problem::{ApiError, ApiJson, ApiPath};
use super::responses::{ReadErrors, WriteErrors};
use crate::registry::{self, VersionSpec};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceSummary {
    pub name: String,
    /// openai-chat, kserve-v2, tf-serving or json.
    pub protocol: String,
    pub stable: String,
    pub plan: String,
    pub path_prefix: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: VersionSpec,
    /// `config`, or who registered it and when.
    pub source: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    #[serde(flatten)]
    pub summary: ServiceSummary,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanSummary {
    pub name: String,
    pub description: String,
}

fn summary(state: &AppState, name: &str) -> Result<ServiceSummary, ApiError> {
    let config = state.config();
    let s = config.services.get(name).ok_or_else(|| ApiError::not_found(format!("no service `{name}`")))?;
    Ok(ServiceSummary {
        name: name.to_string(),
        protocol: serde_json::to_value(s.protocol)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        stable: state.fleet().serving_version(name).unwrap_or_else(|| s.stable.get_ref().clone()),
        plan: s.plan.get_ref().clone(),
        path_prefix: s.route.path_prefix.clone(),
        host: s.route.host.clone(),
    })
}

/// The services in the config.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", security(("token" = [])),
    responses((status = 200, body = Vec<ServiceSummary>), ReadErrors))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<ServiceSummary>>, ApiError> {
    summaries(&state).map(Json)
}

pub(super) fn summaries(state: &AppState) -> Result<Vec<ServiceSummary>, ApiError> {
    state.config().services.keys().map(|name| summary(state, name)).collect()
}

/// A service with all its versions.
#[utoipa::path(get, path = "/api/v1/services/{service}", tag = "services", security(("token" = [])),
    params(("service" = String, Path, description = "The service's name")),
    responses((status = 200, body = ServiceView), ReadErrors))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let summary = summary(&state, &name)?;
    let versions = registry::versions(&state.config(), &state.fleet().registrations(), &name);
    let versions = versions.into_iter().map(|(spec, source)| VersionView { version: spec, source }).collect();
    Ok(Json(ServiceView { summary, versions }))
}

/// Register a new model version of a service: endpoints, artifact URI and sha256, model card, owner.
#[utoipa::path(post, path = "/api/v1/services/{service}/versions", tag = "services", security(("token" = [])),
    params(("service" = String, Path, description = "The service's name")), request_body = VersionSpec,
    responses((status = 201, body = VersionView), WriteErrors))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<VersionSpec>,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    summary(&state, &name)?;
    caller.require_operator("register a version")?;
    let now = state.now();
    let (seq, registration) =
        registry::register(state.store(), &state.config(), &name, spec.clone(), &caller.0.name, now).await?;
    state.fleet().registered(seq, registration);
    let source = format!("registered by {} at {now}", caller.0.name);
    Ok((StatusCode::CREATED, Json(VersionView { version: spec, source })))
}

/// The plans services can follow, with the built-in default.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", security(("token" = [])),
    responses((status = 200, body = Vec<PlanSummary>), ReadErrors))]
pub async fn plans(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<PlanSummary>>, ApiError> {
    let config = state.config();
    let plans = config
        .plan_names()
        .into_iter()
        .map(|name| {
            let description = config.plan(&name).map(|p| p.description).unwrap_or_default();
            PlanSummary { name, description }
        })
        .collect();
    Ok(Json(plans))
}

/// A plan in full: every gate, step, trigger, checklist and window setting.
#[utoipa::path(get, path = "/api/v1/plans/{plan}", tag = "plans", security(("token" = [])),
    params(("plan" = String, Path, description = "The plan's name")),
    responses((status = 200, body = serde_json::Value, description = "The plan, with the keys of [plans.NAME] in rollgate.toml"), ReadErrors))]
pub async fn plan(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let plan = state.config().plan(&name).ok_or_else(|| ApiError::not_found(format!("no plan `{name}`")))?;
    serde_json::to_value(plan)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e.to_string()))
}
