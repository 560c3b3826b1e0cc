//! Feature flags: define, change, kill and re-enable them (deployers and
//! admins), and read them with their history. Each change is a record in the
//! hash-chained `@flags` stream; evaluation is OFREP's (`ofrep.rs`). A flag
//! can be rolled out by a plan (its percentage follows the canary steps,
//! judged on the outcomes applications report; a rollback kills it).

use super::caller::Caller;
use super::problem::{ApiError, ApiJson, ApiPath};
use super::responses::{ReadErrors, WriteErrors};
use crate::flag_outcomes::Outcome;
use crate::flags::{self, Change, FlagHistory, FlagRecord};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rollgate_core::plan::ShadowMode;
use rollgate_core::plan::strategy::Strategy;
use rollgate_core::rollout::{Command, FLAG_OFF, FLAG_ON, FLAG_SERVICE_PREFIX, Input};
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagRolloutRequest {
    /// The plan (default: the built-in `default`); a canary plan: its steps are the flag's percentages.
    #[serde(default)]
    pub plan: Option<String>,
    /// The rollout's id (default: flag-NAME-YYYYMMDDhhmmss).
    #[serde(default)]
    pub id: Option<String>,
    /// The deployment ticket, closed through the `[tickets]` hook when the rollout ends.
    #[serde(default)]
    #[schema(max_length = 512, pattern = r"\S")]
    pub ticket: Option<String>,
}

/// Roll a flag out on a plan: the `rollout` percentage of its flexibleRollout strategy follows the canary
/// steps, gated like a model's canary and judged on the outcomes applications report
/// (`POST /api/v1/flags/{flag}/outcomes`); a rollback is its kill switch.
#[utoipa::path(post, path = "/api/v1/flags/{flag}/rollouts", tag = "flags", security(("token" = [])),
    params(("flag" = String, Path, description = "The flag's name")),
    request_body = FlagRolloutRequest, responses((status = 201, body = crate::views::RolloutView), WriteErrors))]
pub async fn roll_out(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<FlagRolloutRequest>,
) -> Result<(StatusCode, Json<crate::views::RolloutView>), ApiError> {
    caller.require_operator("roll out a flag")?;
    let flags = state.fleet().flags();
    let record = flags.get(&name).ok_or_else(|| ApiError::not_found(format!("no flag `{name}`")))?;
    if !record.flag.strategies.iter().any(|s| s.name == flags::ROLLED_STRATEGY) {
        return Err(ApiError::unprocessable(format!(
            "a plan moves the `rollout` percentage of a {} strategy, and flag `{name}` has none: add one \
             (at rollout \"0\", with the constraints it needs)",
            flags::ROLLED_STRATEGY
        )));
    }
    let config = state.config();
    let plan_name = req.plan.unwrap_or_else(|| rollgate_core::plan::DEFAULT_PLAN.to_string());
    let plan =
        config.plan(&plan_name).ok_or_else(|| ApiError::unprocessable(format!("plan `{plan_name}` is not defined")))?;
    if plan.strategy != Strategy::Canary {
        return Err(ApiError::unprocessable(format!(
            "plan `{plan_name}` is {}: a flag is rolled out by a canary plan's steps",
            plan.strategy.as_str()
        )));
    }
    if plan.shadow.mode == ShadowMode::Required {
        return Err(ApiError::unprocessable(format!(
            "plan `{plan_name}` requires a shadow stage, which a flag does not have: use a plan whose shadow is optional"
        )));
    }
    let now = state.now();
    let id = req.id.unwrap_or_else(|| format!("flag-{name}-{}", now.strftime("%Y%m%d%H%M%S")));
    let input = Input::Start {
        rollout_id: id.clone(),
        service: format!("{FLAG_SERVICE_PREFIX}{name}"),
        candidate: FLAG_ON.into(),
        stable: FLAG_OFF.into(),
        plan_name,
        plan: Box::new(plan),
        skip_shadow: true,
        ticket: req.ticket,
        pool: None,
    };
    let Json(view) = super::rollouts::act(&state, &id, Command::new(caller.0, input)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The most outcomes one report may carry.
const MAX_OUTCOMES: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    /// Requests the application served behind the flag, each with whether it was on.
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct OutcomesRecorded {
    pub recorded: usize,
}

/// Report how requests behind a flag went, on and off: what the judge of the flag's rollout compares.
/// Any valid token may report, an application's `flags:read` one included.
#[utoipa::path(post, path = "/api/v1/flags/{flag}/outcomes", tag = "flags",
    security(("token" = []), ("api_key" = [])),
    params(("flag" = String, Path, description = "The flag's name")),
    request_body = OutcomeReport, responses((status = 202, body = OutcomesRecorded), WriteErrors))]
pub async fn outcomes(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(report): ApiJson<OutcomeReport>,
) -> Result<(StatusCode, Json<OutcomesRecorded>), ApiError> {
    super::ofrep::authorized(&state, &headers).await?;
    if !state.fleet().flags().contains_key(&name) {
        return Err(ApiError::not_found(format!("no flag `{name}`")));
    }
    if report.outcomes.len() > MAX_OUTCOMES {
        return Err(ApiError::unprocessable(format!(
            "{} outcomes in one report; send at most {MAX_OUTCOMES} at a time",
            report.outcomes.len()
        )));
    }
    state.fleet().flag_outcomes().record(&name, &report.outcomes);
    Ok((StatusCode::ACCEPTED, Json(OutcomesRecorded { recorded: report.outcomes.len() })))
}
