//! The replicas: who runs the reconciler, under which token, and who is alive.

use super::caller::Caller;
use super::problem::ApiError;
use super::responses::ReadErrors;
use crate::cluster::ClusterView;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;

/// The replicas of this control plane: this one (`self`), the leader running the reconciler with its lease's
/// fencing token, and every member with its address and last heartbeat. On SQLite, the one server is its own leader.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster", security(("token" = [])),
    responses((status = 200, body = ClusterView), ReadErrors))]
pub async fn get(State(state): State<AppState>, _caller: Caller) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(state.cluster().await?))
}
