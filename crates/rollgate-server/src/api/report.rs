//! The period report across rollouts.

use super::caller::Caller;
use super::problem::{ApiError, ApiQuery};
use super::responses::ReadErrors;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rollgate_core::Timestamp;
use rollgate_core::hold::Hold;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    #[default]
    Json,
    Markdown,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The period's start (RFC 3339); default: `since` before `to`.
    #[param(value_type = Option<String>)]
    pub from: Option<Timestamp>,
    /// The period's end (RFC 3339, excluded); default: now.
    #[param(value_type = Option<String>)]
    pub to: Option<Timestamp>,
    /// How far back from `to` when `from` is not given, e.g. `7d` (default `30d`).
    #[param(value_type = Option<String>)]
    pub since: Option<Hold>,
    /// json (default) or markdown.
    pub format: Option<ReportFormat>,
}

/// Rollouts started in a period: outcomes, rollbacks by cause, median time to
/// detect, bad versions stopped before full traffic with the traffic they
/// never reached, and starts refused by the deploy window.
#[utoipa::path(get, path = "/api/v1/report", tag = "rollouts", security(("token" = [])), params(ReportQuery),
    responses(
        (status = 200, description = "The period's report", content(
            (Object = "application/json"), (String = "text/markdown"))),
        ReadErrors))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let to = query.to.unwrap_or_else(|| state.now());
    let since = query.since.unwrap_or(Hold::from_hours(30 * 24));
    let from = match query.from {
        Some(from) => from,
        None => to.checked_sub(since.duration()).map_err(|e| ApiError::unprocessable(format!("since: {e}")))?,
    };
    if from >= to {
        return Err(ApiError::unprocessable(format!("the period is empty: from {from} is not before to {to}")));
    }
    let report = crate::report::build(state.store(), from, to).await?;
    Ok(match query.format.unwrap_or_default() {
        ReportFormat::Json => Json(report).into_response(),
        ReportFormat::Markdown => {
            let kind = "text/markdown; charset=utf-8";
            ([(axum::http::header::CONTENT_TYPE, kind)], crate::report::markdown(&report)).into_response()
        }
    })
}
