//! The HTTP API under `/api/v1`, described by an OpenAPI 3.1 document that
//! is generated from the handlers and served at `/api/v1/openapi.json`.

mod audit;
mod caller;
pub mod calls;
mod cluster;
mod flags;
mod health;
mod ofrep;
pub mod problem;
mod report;
mod responses;
mod rollouts;
mod routing;
mod services;
mod tokens;

pub use audit::AuditReport;
pub use rollouts::{EventView, RolloutSummary};
pub use services::{ServiceView, VersionView};
pub use tokens::{CreatedToken, TokenView};

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use problem::ApiError;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 256 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rollgate",
        description = "Run a model deployment as a gated, staged process: start rollouts, submit evidence, approve, tick checklists, promote, pause, roll back, and read the tamper-evident log.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerToken),
    components(schemas(flags::Switch, rollgate_core::plan::ChecklistKind, rollouts::RetroFormat, report::ReportFormat)),
    tags(
        (name = "rollouts", description = "Rollouts and their logs"),
        (name = "actions", description = "What people do to a rollout"),
        (name = "services", description = "Services and model versions"),
        (name = "plans", description = "Deployment plans"),
        (name = "tokens", description = "API tokens (admins)"),
        (name = "audit", description = "The tamper-evident log"),
        (name = "flags", description = "Feature flags, and their evaluation over OpenFeature's OFREP"),
        (name = "health", description = "Liveness and readiness"),
        (name = "cluster", description = "Replicas and the leader's lease")
    )
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("rg_<id>_<secret>")
            .description(Some("A token from `rollgate token create` or POST /api/v1/tokens"))
            .build();
        let components = openapi.components.get_or_insert_default();
        components.add_security_scheme("token", SecurityScheme::Http(scheme));
        // OFREP providers send the token as an API key too.
        let key = ApiKey::Header(ApiKeyValue::with_description("X-API-Key", "A rollgate token (flags:read is enough)"));
        components.add_security_scheme("api_key", SecurityScheme::ApiKey(key));
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(rollouts::list, rollouts::start))
        .routes(routes!(rollouts::get))
        .routes(routes!(rollouts::shadow))
        .routes(routes!(rollouts::retro))
        .routes(routes!(report::get))
        .routes(routes!(rollouts::events))
        .routes(routes!(rollouts::promote))
        .routes(routes!(rollouts::pause))
        .routes(routes!(rollouts::resume))
        .routes(routes!(rollouts::abort))
        .routes(routes!(rollouts::rollback))
        .routes(routes!(rollouts::force_promote))
        .routes(routes!(rollouts::approve))
        .routes(routes!(rollouts::evidence))
        .routes(routes!(rollouts::tick))
        .routes(routes!(rollouts::confirm_action))
        .routes(routes!(routing::get))
        .routes(routes!(routing::reload))
        .routes(routes!(services::list))
        .routes(routes!(services::get))
        .routes(routes!(services::register))
        .routes(routes!(services::plans))
        .routes(routes!(services::plan))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::verify))
        .routes(routes!(cluster::get))
        .routes(routes!(flags::list, flags::create))
        .routes(routes!(flags::get, flags::update))
        .routes(routes!(flags::switch))
        .routes(routes!(flags::roll_out))
        .routes(routes!(flags::outcomes))
        .routes(routes!(ofrep::evaluate_one))
        .routes(routes!(ofrep::evaluate_all))
}

/// The OpenAPI document, as served and as kept in the repository.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The whole HTTP surface with its state.
pub fn router(state: AppState) -> Router {
    let (router, doc) = api().split_for_parts();
    let doc = doc.to_pretty_json().unwrap_or_default();
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], doc.clone())
            }),
        )
        .route("/metrics", axum::routing::get(health::metrics))
        .fallback(|| async { ApiError::not_found("no such route; the API is described at /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "see /api/v1/openapi.json for the methods of each route",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
