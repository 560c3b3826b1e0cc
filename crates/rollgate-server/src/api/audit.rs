//! Verifying the hash chains of every stream.

use super::caller::Caller;
use super::problem::ApiError;
use super::responses::ReadErrors;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rollgate_core::audit::verify_stream;
use rollgate_store::EventStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifiedStreamView {
    pub stream: String,
    pub events: u64,
    /// Keep this to detect events cut off the end later.
    pub head: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditFailureView {
    pub stream: String,
    pub seq: u64,
    /// edited, dropped or reordered.
    pub tamper: String,
    pub detail: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditReport {
    pub ok: bool,
    pub verified: Vec<VerifiedStreamView>,
    /// The first event at which a chain breaks.
    pub failure: Option<AuditFailureView>,
}

/// Verify every hash chain; the report names the first edited, dropped or reordered event.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("token" = [])),
    responses((status = 200, body = AuditReport), ReadErrors))]
pub async fn verify(State(state): State<AppState>, _caller: Caller) -> Result<Json<AuditReport>, ApiError> {
    verify_all(&state).await.map(Json)
}

pub(super) async fn verify_all(state: &AppState) -> Result<AuditReport, ApiError> {
    let mut verified = Vec::new();
    for stream in state.store().streams().await? {
        match verify_stream(&state.store().read(&stream).await?) {
            Ok(Some(v)) => verified.push(VerifiedStreamView { stream: v.stream, events: v.events, head: v.head }),
            Ok(None) => {}
            Err(f) => {
                let tamper = serde_json::to_value(&f.tamper)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let failure = AuditFailureView { stream: f.stream, seq: f.seq, tamper, detail: f.detail };
                return Ok(AuditReport { ok: false, verified, failure: Some(failure) });
            }
        }
    }
    Ok(AuditReport { ok: true, verified, failure: None })
}
