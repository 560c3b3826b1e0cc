//! API tokens, for admins. The secret is returned once, at creation.

use super::caller::Caller;
use super::problem::{ApiError, ApiJson, ApiPath};
use super::responses::{ReadErrors, WriteErrors};
use crate::auth::{self, Ledger, TokenRecord, create_token, revoke_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Whom the token acts as; the name appears in the audit log.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// viewer, deployer, admin, approver:technical, approver:ethics, approver:security, approver:stakeholder.
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// The secret: shown this once, stored only as a hash.
    pub token: String,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> TokenView {
        TokenView { id: t.id, name: t.name, roles: t.roles, created_at: t.created_at, revoked_at: t.revoked_at }
    }
}

/// Create a token (admins only).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("token" = [])), request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), WriteErrors))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require_admin("create tokens")?;
    let roles = auth::parse_roles(&req.roles)?;
    let created = create_token(state.store(), &req.name, &roles, &caller.0.name, state.now()).await?;
    tracing::info!(by = %caller.0.name, token = %created.record.id, name = %req.name, "token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { view: created.record.into(), token: created.token })))
}

/// List tokens without their secrets (admins only).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("token" = [])),
    responses((status = 200, body = Vec<TokenView>), ReadErrors))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.require_admin("list tokens")?;
    Ok(Json(Ledger::read(state.store()).await?.tokens().into_iter().map(TokenView::from).collect()))
}

/// Revoke a token at once (admins only).
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens", security(("token" = [])),
    params(("token_id" = String, Path, description = "The token's id (the part after rg_)")),
    responses((status = 204, description = "Revoked"), WriteErrors))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin("revoke tokens")?;
    if revoke_token(state.store(), &id, &caller.0.name, state.now()).await? {
        tracing::info!(by = %caller.0.name, token = %id, "token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token `{id}`")))
    }
}
