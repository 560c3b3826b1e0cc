//! Model versions registered over the API, on top of those in the config.
//! They live in the `@registry` stream, hash-chained like every rollout.

use crate::api::problem::ApiError;
use rollgate_core::Timestamp;
use rollgate_core::config::{Config, check_endpoint, is_slug};
use rollgate_store::{AnyStore, EventStore, append_record};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const REGISTRY_STREAM: &str = "@registry";

/// A model version: where it runs and what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// A plain name, unique within the service (e.g. `v3`).
    pub name: String,
    /// http(s) URLs of the version's model servers.
    pub endpoints: Vec<String>,
    pub artifact_uri: String,
    /// SHA-256 of the artifact, 64 hexadecimal digits.
    pub artifact_sha256: String,
    #[serde(default)]
    pub model_card: Option<String>,
    pub owner: String,
}

/// One registration as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Registration {
    at: Timestamp,
    by: String,
    service: String,
    version: VersionSpec,
}

impl VersionSpec {
    /// Checks the fields the way `rollgate check` checks the config.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !is_slug(&self.name) {
            out.push(format!("name `{}`: {}", self.name, rollgate_core::config::SLUG_HINT));
        }
        if self.endpoints.is_empty() {
            out.push("endpoints: list at least one http(s) URL".into());
        }
        for e in &self.endpoints {
            if let Err(why) = check_endpoint(e) {
                out.push(format!("endpoint `{e}` {why}"));
            }
        }
        if self.artifact_sha256.len() != 64 || !self.artifact_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push("artifact_sha256 must be 64 hexadecimal digits (the output of sha256sum)".into());
        }
        if self.artifact_uri.trim().is_empty() || self.owner.trim().is_empty() {
            out.push("artifact_uri and owner must not be empty".into());
        }
        out
    }
}

/// The versions of a service: the config's, then registered ones, in order.
pub async fn versions(
    store: &AnyStore,
    config: &Config,
    service: &str,
) -> Result<Vec<(VersionSpec, String)>, ApiError> {
    let mut out: Vec<(VersionSpec, String)> = config
        .services
        .get(service)
        .map(|s| {
            s.versions
                .iter()
                .map(|(name, v)| {
                    let spec = VersionSpec {
                        name: name.clone(),
                        endpoints: v.endpoints.iter().map(|e| e.get_ref().clone()).collect(),
                        artifact_uri: v.artifact.uri.clone(),
                        artifact_sha256: v.artifact.sha256.get_ref().clone(),
                        model_card: v.model_card.clone(),
                        owner: v.owner.clone(),
                    };
                    (spec, "config".to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    for event in store.read(REGISTRY_STREAM).await? {
        let Ok(r) = serde_json::from_str::<Registration>(&event.body) else { continue };
        if r.service == service {
            out.push((r.version, format!("registered by {} at {}", r.by, r.at)));
        }
    }
    Ok(out)
}

/// Records a new version of `service`; refuses a name already taken.
pub async fn register(
    store: &AnyStore,
    config: &Config,
    service: &str,
    version: VersionSpec,
    by: &str,
    now: Timestamp,
) -> Result<(), ApiError> {
    let problems = version.problems();
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems.join("; ")));
    }
    if versions(store, config, service).await?.iter().any(|(v, _)| v.name == version.name) {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "version exists",
            format!("service `{service}` already has a version `{}`; register it under a new name", version.name),
        ));
    }
    let body =
        serde_json::to_string(&Registration { at: now, by: by.to_string(), service: service.to_string(), version })
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    append_record(store, REGISTRY_STREAM, body).await?;
    Ok(())
}
