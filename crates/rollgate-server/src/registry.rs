//! Model versions registered over the API, on top of those in the config.
//! They live in the `@registry` stream, hash-chained like every rollout.

use rollgate_core::Timestamp;
use rollgate_core::config::{Config, check_url, is_slug};
use rollgate_core::event::RecordedEvent;
use rollgate_core::routing::RegisteredVersion;
use rollgate_store::{AnyStore, StoreError, append_record_deciding};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const REGISTRY_STREAM: &str = "@registry";

/// A model version: where it runs and what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// A plain name, unique within the service (e.g. `v3`).
    pub name: String,
    /// http:// URLs of the version's model servers.
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
pub struct Registration {
    pub at: Timestamp,
    pub by: String,
    pub service: String,
    pub version: VersionSpec,
}

impl Registration {
    pub fn routed(&self) -> RegisteredVersion {
        RegisteredVersion {
            service: self.service.clone(),
            name: self.version.name.clone(),
            endpoints: self.version.endpoints.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("service `{service}` already has a version `{version}`; register it under a new name")]
    Exists { service: String, version: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VersionSpec {
    /// Checks the fields the way `rollgate check` checks the config.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !is_slug(&self.name) {
            out.push(format!("name `{}`: {}", self.name, rollgate_core::config::SLUG_HINT));
        }
        if self.endpoints.is_empty() {
            out.push("endpoints: list at least one http:// URL".into());
        }
        for e in &self.endpoints {
            if let Err(why) = check_url(e) {
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

    fn from_config(name: &str, v: &rollgate_core::config::Version) -> VersionSpec {
        VersionSpec {
            name: name.to_string(),
            endpoints: v.endpoints.iter().map(|e| e.get_ref().clone()).collect(),
            artifact_uri: v.artifact.uri.clone(),
            artifact_sha256: v.artifact.sha256.get_ref().clone(),
            model_card: v.model_card.clone(),
            owner: v.owner.clone(),
        }
    }
}

/// The registrations in the registry stream's events (unreadable ones are skipped).
pub fn registrations(events: &[RecordedEvent]) -> Vec<Registration> {
    events.iter().filter_map(|e| serde_json::from_str::<Registration>(&e.body).ok()).collect()
}

/// The versions of a service: the config's, then registered ones, in order,
/// each with where it came from.
pub fn versions(config: &Config, registered: &[Registration], service: &str) -> Vec<(VersionSpec, String)> {
    let configured = config
        .services
        .get(service)
        .into_iter()
        .flat_map(|s| s.versions.iter())
        .map(|(name, v)| (VersionSpec::from_config(name, v), "config".to_string()));
    let added = registered
        .iter()
        .filter(|r| r.service == service)
        .map(|r| (r.version.clone(), format!("registered by {} at {}", r.by, r.at)));
    configured.chain(added).collect()
}

/// Records a new version of `service`; refuses a name already taken.
/// Returns the registration with its position in the registry stream.
pub async fn register(
    store: &AnyStore,
    config: &Config,
    service: &str,
    version: VersionSpec,
    by: &str,
    now: Timestamp,
) -> Result<(u64, Registration), RegistryError> {
    let problems = version.problems();
    if !problems.is_empty() {
        return Err(RegistryError::Invalid(problems));
    }
    let registration = Registration { at: now, by: by.to_string(), service: service.to_string(), version };
    let body = serde_json::to_string(&registration).unwrap_or_default();
    let appended = append_record_deciding(store, REGISTRY_STREAM, |events| {
        let taken =
            versions(config, &registrations(events), service).iter().any(|(v, _)| v.name == registration.version.name);
        if taken {
            return Err(RegistryError::Exists {
                service: service.to_string(),
                version: registration.version.name.clone(),
            });
        }
        Ok(body.clone())
    })
    .await?;
    Ok((appended.seq, registration))
}
