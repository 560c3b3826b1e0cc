//! The routing the control plane wants and what the data plane was given,
//! and putting a changed config in force.

use super::caller::Caller;
use super::problem::{ApiError, ApiJson};
use super::responses::{ReadErrors, WriteErrors};
use super::rollouts::Empty;
use crate::state::{AppState, ReloadError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoutingView {
    /// Every service's versions (with endpoints and role), split, mirror and
    /// stable version, as the config, the registry and the rollouts make them now.
    pub desired: serde_json::Value,
    /// What the data plane was last given; differs from `desired` only while
    /// it refuses the routing (see the server's log) or a warm version's time has just run out.
    pub applied: Option<serde_json::Value>,
    pub in_sync: bool,
}

/// The desired routing of every service, and whether the data plane has it.
#[utoipa::path(get, path = "/api/v1/routing", tag = "services", security(("token" = [])),
    responses((status = 200, body = RoutingView), ReadErrors))]
pub async fn get(State(state): State<AppState>, _caller: Caller) -> Result<Json<RoutingView>, ApiError> {
    let desired = state.fleet().desired();
    let applied = state.fleet().applied();
    let in_sync = applied.as_ref() == Some(&desired);
    let json = |v| serde_json::to_value(v).unwrap_or_default();
    Ok(Json(RoutingView { desired: json(&desired), applied: applied.as_ref().map(json), in_sync }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reloaded {
    pub status: String,
    /// What a reload does not change: those take a restart.
    pub note: String,
}

/// Admins: read the config file again and put it in force, if it is valid
/// and still routes every rollout; otherwise nothing changes and every problem is listed.
#[utoipa::path(post, path = "/api/v1/config/reload", tag = "services", security(("token" = [])),
    request_body = Empty, responses((status = 200, body = Reloaded), WriteErrors))]
pub async fn reload(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(_): ApiJson<Empty>,
) -> Result<Json<Reloaded>, ApiError> {
    caller.require_admin("reload the config")?;
    match state.reload_config() {
        Ok(()) => Ok(Json(Reloaded {
            status: "reloaded".into(),
            note: "services, versions, routes, plans and deploy hooks are in force for what happens next (a running rollout keeps the plan it started with); webhooks and the Prometheus address take a restart".into(),
        })),
        Err(e @ ReloadError::Refused(_)) => Err(ApiError::unprocessable(e.to_string())),
        Err(e @ ReloadError::NoFile) => Err(ApiError::new(StatusCode::CONFLICT, "nothing to reload", e.to_string())),
        Err(e @ ReloadError::Read { .. }) => {
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the config", e.to_string()))
        }
    }
}
