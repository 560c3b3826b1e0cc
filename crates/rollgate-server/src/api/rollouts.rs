//! Rollouts: start, list, show, act on, and read the log of.

use super::caller::Caller;
use super::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::responses::{ReadErrors, WriteErrors};
use crate::registry;
use crate::state::AppState;
use crate::views::RolloutView;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rollgate_core::plan::ChecklistKind;
use rollgate_core::roles::ApprovalKind;
use rollgate_core::rollout::{Command, Input, RollbackCategory};
use rollgate_store::{Analysis, AnalysisStore, EventStore, is_rollout_stream};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub service: String,
    /// The version to roll out; it replaces the service's stable version.
    pub candidate: String,
    /// The rollout's id (default: SERVICE-CANDIDATE-YYYYMMDDhhmmss).
    #[serde(default)]
    pub id: Option<String>,
    /// Skip the shadow stage; refused when the plan requires it.
    #[serde(default)]
    pub skip_shadow: bool,
    /// The deployment ticket (a URL or a key), closed or commented on through the `[tickets]` hook when the rollout ends.
    #[serde(default)]
    #[schema(max_length = 512, pattern = r"\S")]
    pub ticket: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why, in words: recorded in the log and sent to stakeholders.
    #[schema(pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub category: RollbackCategory,
    #[schema(pattern = r"\S")]
    pub reason: String,
    /// Also redeploy the previous version and retire the candidate.
    #[serde(default)]
    pub full: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub kind: ApprovalKind,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TickRequest {
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRequest {
    /// The gate's id, e.g. `validation.bias`.
    pub gate: String,
    pub passed: bool,
    pub summary: String,
    /// The numbers behind the result (any JSON).
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolloutSummary {
    pub id: String,
    pub service: String,
    pub stable: String,
    pub candidate: String,
    pub stage: String,
    pub stage_label: String,
    pub candidate_percent: f64,
    pub terminal: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub roles: Vec<String>,
    /// The input as recorded: its `type` and fields.
    pub input: serde_json::Value,
    /// What the event made rollgate do.
    pub effects: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

pub(super) async fn act(state: &AppState, id: &str, command: Command) -> Result<Json<RolloutView>, ApiError> {
    state.submit(id, &command).await?;
    view(state, id).await.map(Json)
}

async fn view(state: &AppState, id: &str) -> Result<RolloutView, ApiError> {
    state.view(id).await?.ok_or_else(|| ApiError::not_found(format!("no rollout `{id}`")))
}

/// List rollouts, newest id last.
#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts", security(("token" = [])),
    responses((status = 200, body = Vec<RolloutSummary>), ReadErrors))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<RolloutSummary>>, ApiError> {
    let mut out = Vec::new();
    for r in state.rollouts().all().await? {
        out.push(RolloutSummary {
            id: r.id.clone(),
            service: r.service.clone(),
            stable: r.stable.clone(),
            candidate: r.candidate.clone(),
            stage: crate::views::stage_name(&r.stage).into(),
            stage_label: r.stage.to_string(),
            candidate_percent: r.weight.percent(),
            terminal: r.is_terminal(),
        });
    }
    Ok(Json(out))
}

/// Start rolling out a version of a service on the service's plan.
#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", security(("token" = [])), request_body = StartRequest,
    responses((status = 201, body = RolloutView), WriteErrors))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<RolloutView>), ApiError> {
    let config = state.config();
    let service = config.services.get(&req.service).ok_or_else(|| {
        let known = config.services.keys().cloned().collect::<Vec<_>>().join(", ");
        ApiError::unprocessable(format!("no service `{}`; services: {known}", req.service))
    })?;
    let versions = registry::versions(&config, &state.fleet().registrations(), &req.service);
    if !versions.iter().any(|(v, _)| v.name == req.candidate) {
        let known = versions.iter().map(|(v, _)| v.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(ApiError::unprocessable(format!(
            "service `{}` has no version `{}`; versions: {known} (register one with POST /api/v1/services/{}/versions)",
            req.service, req.candidate, req.service
        )));
    }
    let now = state.now();
    let id = req.id.unwrap_or_else(|| format!("{}-{}-{}", req.service, req.candidate, now.strftime("%Y%m%d%H%M%S")));
    let plan_name = service.plan.get_ref().clone();
    let plan =
        config.plan(&plan_name).ok_or_else(|| ApiError::unprocessable(format!("plan `{plan_name}` is not defined")))?;
    let stable = state.fleet().serving_version(&req.service).unwrap_or_else(|| service.stable.get_ref().clone());
    let fleet = state.fleet();
    let pool = rollgate_core::rollout::pool_for(
        &config,
        &req.service,
        &plan,
        fleet.endpoints(&req.service, &stable),
        &fleet.endpoints(&req.service, &req.candidate),
    )
    .map_err(ApiError::unprocessable)?;
    let input = Input::Start {
        rollout_id: id.clone(),
        service: req.service.clone(),
        candidate: req.candidate,
        stable,
        plan_name,
        plan: Box::new(plan),
        skip_shadow: req.skip_shadow,
        ticket: req.ticket,
        pool,
    };
    let Json(view) = act(&state, &id, Command::new(caller.0, input)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A rollout: stage, traffic, each gate and why, evidence, approvals, checklists, history, notifications.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "rollouts", security(("token" = [])),
    params(("id" = String, Path, description = "The rollout's id")),
    responses((status = 200, body = RolloutView), ReadErrors))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RolloutView>, ApiError> {
    view(&state, &id).await.map(Json)
}

/// The shadow stage's comparison report: agreement with its interval, the
/// gate's test of the candidate's disagreement over production's own,
/// latency and time to first byte side by side, errors by class, mirrored
/// cost and the most divergent examples (redacted). Stored once a tick while
/// the stage runs, and kept after it.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}/shadow", tag = "rollouts", security(("token" = [])),
    params(("id" = String, Path, description = "The rollout's id")),
    responses((status = 200, body = Object, description = "The report; docs/shadow.md describes its fields"), ReadErrors))]
pub async fn shadow(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.rollouts().load(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no rollout `{id}`")));
    }
    let stored = state.store().analysis(Analysis::Shadow, &id).await?;
    let report = stored.and_then(|s| serde_json::from_str(&s.report).ok()).ok_or_else(|| {
        ApiError::not_found(format!(
            "rollout `{id}` has no shadow comparison yet: it starts with the first pair of answers its shadow stage mirrors"
        ))
    })?;
    Ok(Json(report))
}

/// How the retrospective is written.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RetroFormat {
    #[default]
    Markdown,
    Html,
    Json,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetroQuery {
    /// markdown (default), html (a self-contained page) or json.
    pub format: Option<RetroFormat>,
}

/// The rollout's retrospective, written from its log: stages and the time in
/// each, every gate with who and when and the evidence, the judge's verdicts
/// with their numbers, the staging drill, the rollback (when decided, when
/// traffic left, what came after), requests the candidate served, what is
/// still open, and questions for the team.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}/retro", tag = "rollouts", security(("token" = [])),
    params(("id" = String, Path, description = "The rollout's id"), RetroQuery),
    responses(
        (status = 200, description = "The retrospective", content(
            (String = "text/markdown"), (String = "text/html"), (Object = "application/json"))),
        ReadErrors))]
pub async fn retro(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RetroQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let retro = crate::retro::build(state.store(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rollout `{id}`")))?;
    let text = |kind: &'static str, body: String| ([(axum::http::header::CONTENT_TYPE, kind)], body).into_response();
    Ok(match query.format.unwrap_or_default() {
        RetroFormat::Markdown => text("text/markdown; charset=utf-8", crate::retro::markdown(&retro)),
        RetroFormat::Html => text("text/html; charset=utf-8", crate::retro::html(&retro)),
        RetroFormat::Json => Json(retro).into_response(),
    })
}

// rustfmt re-indents attributes inside macro_rules on every run; keep it stable.
#[rustfmt::skip]
macro_rules! action {
    ($name:ident, $path:literal, $doc:literal, $body:ty, |$req:ident| $input:expr) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "actions",
            security(("token" = [])),
            request_body = $body,
            params(("id" = String, Path, description = "The rollout's id")),
            responses((status = 200, body = RolloutView), WriteErrors)
        )]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            ApiPath(id): ApiPath<String>,
            ApiJson($req): ApiJson<$body>,
        ) -> Result<Json<RolloutView>, ApiError> {
            act(&state, &id, Command::new(caller.0, $input)).await
        }
    };
}

/// An empty JSON object, for actions that take no arguments.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

action!(
    promote,
    "/api/v1/rollouts/{id}/promote",
    "Move to the next stage now that every gate has passed.",
    Empty,
    |_req| Input::Promote
);
action!(
    pause,
    "/api/v1/rollouts/{id}/pause",
    "Stop automatic promotion; rollbacks still happen.",
    ReasonRequest,
    |req| Input::Pause { reason: req.reason }
);
action!(resume, "/api/v1/rollouts/{id}/resume", "Resume a paused rollout.", Empty, |_req| Input::Resume);
action!(
    abort,
    "/api/v1/rollouts/{id}/abort",
    "Cancel the rollout; traffic goes back to stable.",
    ReasonRequest,
    |req| Input::Abort { reason: req.reason }
);
action!(
    force_promote,
    "/api/v1/rollouts/{id}/force-promote",
    "Admins only: move on past open gates, recorded with the reason.",
    ReasonRequest,
    |req| Input::ForcePromote { reason: req.reason }
);
action!(
    rollback,
    "/api/v1/rollouts/{id}/rollback",
    "Roll back now: quick (traffic to stable) or full (also redeploy stable, retire the candidate).",
    RollbackRequest,
    |req| Input::Rollback { category: req.category, reason: req.reason, full: req.full }
);
action!(
    approve,
    "/api/v1/rollouts/{id}/approvals",
    "Approve as an approver of the given kind; never the requester.",
    ApprovalRequest,
    |req| Input::Approve { kind: req.kind, comment: req.comment }
);
action!(
    evidence,
    "/api/v1/rollouts/{id}/evidence",
    "Record the result of a gate's check, with its numbers.",
    EvidenceRequest,
    |req| Input::Evidence { gate: req.gate, passed: req.passed, summary: req.summary, details: req.details }
);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// What the person did, in words: recorded in the log.
    #[schema(pattern = r"\S")]
    pub note: String,
}

/// Record that a person carried out an action no hook did (redeploy, retire, archive).
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/actions/{action}/confirm", tag = "actions", security(("token" = [])),
    request_body = ConfirmRequest,
    params(
        ("id" = String, Path, description = "The rollout's id"),
        ("action" = String, Path, description = "The action's id, e.g. redeploy-v1"),
    ),
    responses((status = 200, body = RolloutView), WriteErrors))]
pub async fn confirm_action(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, action)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> Result<Json<RolloutView>, ApiError> {
    act(&state, &id, Command::new(caller.0, Input::ConfirmAction { action, note: req.note })).await
}

/// Tick a checklist item by hand, as the calling person.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/checklists/{checklist}/items/{item}", tag = "actions", security(("token" = [])),
    request_body = TickRequest,
    params(
        ("id" = String, Path, description = "The rollout's id"),
        ("checklist" = ChecklistKind, Path, description = "The checklist"),
        ("item" = String, Path, description = "The item's id, e.g. team_available"),
    ),
    responses((status = 200, body = RolloutView), WriteErrors))]
pub async fn tick(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, checklist, item)): ApiPath<(String, ChecklistKind, String)>,
    ApiJson(req): ApiJson<TickRequest>,
) -> Result<Json<RolloutView>, ApiError> {
    act(&state, &id, Command::new(caller.0, Input::Tick { checklist, item, note: req.note })).await
}

/// The rollout's event log: every accepted input with its actor, time, effects and hashes.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}/events", tag = "rollouts", security(("token" = [])),
    params(("id" = String, Path, description = "The rollout's id")),
    responses((status = 200, body = Vec<EventView>), ReadErrors))]
pub async fn events(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    event_views(&state, &id).await.map(Json)
}

pub(super) async fn event_views(state: &AppState, id: &str) -> Result<Vec<EventView>, ApiError> {
    let events = if is_rollout_stream(id) { state.store().read(id).await? } else { Vec::new() };
    if events.is_empty() {
        return Err(ApiError::not_found(format!("no rollout `{id}`")));
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let body = e
            .decode()
            .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable event", err.to_string()))?;
        out.push(EventView {
            seq: e.seq,
            at: body.at.to_string(),
            actor: body.command.actor.name.clone(),
            roles: body.command.actor.roles.iter().map(ToString::to_string).collect(),
            input: serde_json::to_value(&body.command.input).unwrap_or_default(),
            effects: serde_json::to_value(&body.effects).unwrap_or_default(),
            prev_hash: e.prev_hash,
            hash: e.hash,
        });
    }
    Ok(out)
}
