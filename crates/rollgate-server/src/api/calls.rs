//! What the dashboard asks of the API: the functions the handlers run, with
//! the caller already known. A page acts through these and nothing else, so
//! a click and a `curl` are checked, recorded and audited the same way.

use super::audit::{AuditReport, verify_all};
use super::problem::ApiError;
use super::rollouts::{EventView, act, event_views};
use super::services::{ServiceSummary, summaries};
use crate::state::AppState;
use crate::views::RolloutView;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::Command;

/// The actor behind a token, refused as the API refuses it.
pub async fn sign_in(state: &AppState, token: &str) -> Result<Actor, ApiError> {
    super::caller::actor_of(state, Some(&format!("Bearer {token}"))).await
}

/// Records a command as the API's action routes do, and the rollout after it.
pub async fn submit(state: &AppState, id: &str, command: Command) -> Result<RolloutView, ApiError> {
    act(state, id, command).await.map(|axum::Json(view)| view)
}

pub async fn events(state: &AppState, id: &str) -> Result<Vec<EventView>, ApiError> {
    event_views(state, id).await
}

pub async fn verify(state: &AppState) -> Result<AuditReport, ApiError> {
    verify_all(state).await
}

pub fn services(state: &AppState) -> Result<Vec<ServiceSummary>, ApiError> {
    summaries(state)
}
