//! API tokens: `rg_<id>_<secret>`, random, shown once. Only the SHA-256 of
//! the secret is stored; the id finds the record and the hashes are
//! compared in constant time. Revoked tokens stop working at once.

use rollgate_core::Timestamp;
use rollgate_core::roles::{Actor, Role};
use rollgate_store::{EventStore, StoreError, TokenRecord, TokenStore, append_record};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "rg_";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer rg_…` (create one with `rollgate token create`)")]
    Missing,
    #[error("the token is malformed: tokens look like rg_<id>_<secret>")]
    Malformed,
    #[error("the token is not valid")]
    Invalid,
    #[error("the token was revoked at {0}")]
    Revoked(String),
    #[error("invalid token name: {0}")]
    BadName(String),
    #[error("{0}")]
    BadRole(String),
    #[error("cannot read random bytes for a token: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token as created: the secret, shown once, and what is stored.
pub struct NewToken {
    pub token: String,
    pub record: TokenRecord,
}

fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Parses role names as written on the command line or in the API; the
/// controller's own `system` role cannot be given to a token.
pub fn parse_roles(names: &[String]) -> Result<Vec<Role>, AuthError> {
    if names.is_empty() {
        return Err(AuthError::BadRole("a token needs at least one role".into()));
    }
    names
        .iter()
        .map(|name| match name.parse::<Role>() {
            Ok(Role::System) => Err(AuthError::BadRole("the system role is rollgate's own".into())),
            Ok(role) => Ok(role),
            Err(e) => Err(AuthError::BadRole(e.to_string())),
        })
        .collect()
}

pub fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.trim().is_empty() && name.len() <= 64 && !name.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(AuthError::BadName("use 1 to 64 printable characters, e.g. a person's login".into())) }
}

/// Token administration is recorded in this hash-chained stream, like rollouts.
pub const TOKEN_AUDIT_STREAM: &str = "@tokens";

/// Creates and stores a token acting as `name` with `roles`, recording who made it.
pub async fn create_token<S: TokenStore + EventStore>(
    store: &S,
    name: &str,
    roles: &[Role],
    by: &str,
    now: Timestamp,
) -> Result<NewToken, AuthError> {
    check_name(name)?;
    let (id, secret) = (random_hex(6)?, random_hex(32)?);
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_string(),
        roles: roles.iter().map(ToString::to_string).collect(),
        hash: hash(&secret),
        created_at: now.to_string(),
        revoked_at: None,
    };
    store.insert_token(&record).await?;
    let entry = serde_json::json!({ "at": now, "by": by, "action": "create", "token": id, "name": name, "roles": record.roles });
    append_record(store, TOKEN_AUDIT_STREAM, entry.to_string()).await?;
    Ok(NewToken { token: format!("{PREFIX}{id}_{secret}"), record })
}

/// Revokes a live token, recording who did; false if there was none.
pub async fn revoke_token<S: TokenStore + EventStore>(
    store: &S,
    id: &str,
    by: &str,
    now: Timestamp,
) -> Result<bool, AuthError> {
    if !store.revoke_token(id, &now.to_string()).await? {
        return Ok(false);
    }
    let entry = serde_json::json!({ "at": now, "by": by, "action": "revoke", "token": id });
    append_record(store, TOKEN_AUDIT_STREAM, entry.to_string()).await?;
    Ok(true)
}

/// The actor behind an `Authorization` header value.
pub async fn authenticate<S: TokenStore>(store: &S, header: Option<&str>) -> Result<Actor, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let token = header.strip_prefix("Bearer ").ok_or(AuthError::Missing)?.trim();
    let (id, secret) = token.strip_prefix(PREFIX).and_then(|t| t.split_once('_')).ok_or(AuthError::Malformed)?;
    let record = store.token(id).await?.ok_or(AuthError::Invalid)?;
    let matches: bool = hash(secret).as_bytes().ct_eq(record.hash.as_bytes()).into();
    if !matches {
        return Err(AuthError::Invalid);
    }
    if let Some(at) = record.revoked_at {
        return Err(AuthError::Revoked(at));
    }
    let roles = record.roles.iter().filter_map(|r| r.parse().ok()).collect::<Vec<Role>>();
    Ok(Actor::new(record.name, roles))
}
