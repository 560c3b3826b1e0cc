//! Liveness, readiness and the control plane's metrics, open to everyone.

use super::problem::{ApiError, Problem};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rollgate_store::EventStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// The store answers and the controller is running.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Health),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Not ready yet, or the store does not answer")
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready", "the controller has not started yet"));
    }
    state.store().streams().await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready", format!("the store does not answer: {e}"))
    })?;
    Ok(Json(Health { status: "ready".into() }))
}

/// The control plane's metrics in the Prometheus text format (the gateway's
/// traffic metrics are at the gateway's own `/metrics`).
pub async fn metrics(State(state): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    // What this replica knows of the log, in memory: a scrape replays nothing.
    let rollouts = state.fleet().rollouts();
    let config = state.config();
    let text = crate::control_metrics::render(config.services.keys().map(String::as_str), &rollouts);
    let kind = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, kind)], text).into_response())
}
