//! Who is calling: the actor behind the request's bearer token.

use super::problem::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rollgate_core::roles::{Actor, Role};

pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        actor_of(state, header).await.map(Caller)
    }
}

/// The person or system behind an `Authorization` header value, if its
/// token may use the API (the dashboard's sign-in asks the same).
pub async fn actor_of(state: &AppState, header: Option<&str>) -> Result<Actor, ApiError> {
    let actor = state.authenticate(header).await?;
    // An application's flags token evaluates flags over OFREP and does nothing else.
    if !actor.roles.is_empty() && actor.roles.iter().all(|r| *r == Role::FlagReader) {
        return Err(ApiError::forbidden(format!(
            "{} holds a flags:read token: it may only evaluate flags at /ofrep/v1/evaluate/flags",
            actor.name
        )));
    }
    Ok(actor)
}

impl Caller {
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("{} may not {action}: it needs the role admin", self.0.name)))
        }
    }

    pub fn require_operator(&self, action: &str) -> Result<(), ApiError> {
        if self.0.may_operate() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("{} may not {action}: it needs the role deployer or admin", self.0.name)))
        }
    }
}
