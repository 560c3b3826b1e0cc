//! The dashboard: pages a team watches and steers its rollouts from, served
//! by `rollgate serve` at `/`. Pages are rendered on the server and read
//! without JavaScript; a small script (with uPlot, embedded like every
//! asset) moves the charts and the live figures without a reload. Every
//! action is a form that goes through the API's own functions
//! ([`crate::api::calls`]) as the signed-in person, so roles, refusals and
//! the audit log are the API's.

mod actions;
mod assets;
mod audit;
mod layout;
mod overview;
mod rollout;
mod session;
mod sign_in;

use crate::api::problem::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rollgate_core::roles::Actor;
pub use session::{KEY_VARIABLE, SessionKey};
use subtle::ConstantTimeEq;

#[derive(Clone)]
struct Dashboard {
    app: AppState,
    key: SessionKey,
}

impl FromRef<Dashboard> for AppState {
    fn from_ref(dashboard: &Dashboard) -> AppState {
        dashboard.app.clone()
    }
}

/// The dashboard's routes, to be merged with the API's.
pub fn router(app: AppState, key: SessionKey) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/audit", get(audit::page))
        .route("/rollouts/{id}", get(rollout::page))
        .route("/rollouts/{id}/live", get(rollout::live))
        .route("/rollouts/{id}/act/{verb}", post(actions::act))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::extract::DefaultBodyLimit::max(crate::api::BODY_LIMIT))
        .with_state(Dashboard { app, key })
}

/// The signed-in person: who the session's token acts as, and the CSRF
/// token their forms carry.
struct Signed {
    actor: Actor,
    csrf: String,
}

impl FromRequestParts<Dashboard> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, dashboard: &Dashboard) -> Result<Signed, Response> {
        let to_sign_in = || {
            let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            Redirect::to(&format!("/sign-in?next={}", layout::url_encode(next))).into_response()
        };
        let Some(value) = session::cookie(&parts.headers) else { return Err(to_sign_in()) };
        let Ok(token) = dashboard.key.open(value, now_unix()) else { return Err(to_sign_in()) };
        let actor = crate::api::calls::sign_in(&dashboard.app, token).await.map_err(|_| to_sign_in())?;
        Ok(Signed { actor, csrf: dashboard.key.csrf(value) })
    }
}

impl Signed {
    /// A form that changes something must come from this server's own page
    /// (its origin) and carry this session's CSRF token.
    fn check_post(&self, headers: &HeaderMap, sent_csrf: &str) -> Result<(), ApiError> {
        let token_matches: bool = self.csrf.as_bytes().ct_eq(sent_csrf.as_bytes()).into();
        if session::same_origin(headers) && token_matches {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this form did not come from this server's page (cross-site request or missing CSRF token); \
                 nothing was done: open the page and act from there",
            ))
        }
    }
}

fn now_unix() -> i64 {
    crate::notify::now_ms() / 1000
}
