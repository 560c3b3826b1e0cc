//! API tokens: `rg_<id>_<secret>`, random, shown once. Only the SHA-256 of
//! the secret is stored; the id finds the record and the hashes are
//! compared in constant time. Revoked tokens stop working at once.

use rollgate_core::Timestamp;
use rollgate_core::audit::{StreamHead, verify_stream};
use rollgate_core::event::RecordedEvent;
use rollgate_core::roles::{Actor, Role};
use rollgate_store::{EventStore, StoreError, append_record, append_record_deciding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
    #[error(
        "the token log does not verify ({0}); no token is honoured until it is repaired: run `rollgate audit verify`"
    )]
    Tampered(String),
    #[error("no live token with that id")]
    NotLive,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token as the ledger knows it: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    /// The person or system the token acts as; it appears in the audit log.
    pub name: String,
    /// Roles, as written in config (`deployer`, `approver:security`, …).
    pub roles: Vec<String>,
    pub hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A token as created: the secret, shown once, and what is recorded.
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

/// Every grant and revocation is an event of this hash-chained stream, like
/// a rollout's; tokens are authorized from it and from nothing else, so an
/// edit that gives someone a role breaks the chain that `audit verify` checks
/// (and the server refuses every token until it is repaired).
pub const TOKEN_STREAM: &str = "@tokens";

/// One event of the token stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum TokenEvent {
    Create { at: Timestamp, by: String, token: String, name: String, roles: Vec<String>, hash: String },
    Revoke { at: Timestamp, by: String, token: String },
}

/// The tokens, folded from a verified token stream.
#[derive(Debug, Default)]
pub struct Ledger {
    tokens: BTreeMap<String, TokenRecord>,
}

impl Ledger {
    /// Folds the stream after checking its chain; a broken chain is refused.
    pub fn from_events(events: &[RecordedEvent]) -> Result<Ledger, AuthError> {
        verify_stream(events).map_err(|failure| AuthError::Tampered(failure.to_string()))?;
        let mut tokens = BTreeMap::new();
        for event in events {
            // Entries of an older format (no hash) are not tokens anyone can use.
            match serde_json::from_str::<TokenEvent>(&event.body) {
                Ok(TokenEvent::Create { at, token, name, roles, hash, .. }) => {
                    let record = TokenRecord {
                        id: token.clone(),
                        name,
                        roles,
                        hash,
                        created_at: at.to_string(),
                        revoked_at: None,
                    };
                    tokens.insert(token, record);
                }
                Ok(TokenEvent::Revoke { at, token, .. }) => {
                    if let Some(record) = tokens.get_mut(&token) {
                        record.revoked_at.get_or_insert(at.to_string());
                    }
                }
                Err(_) => {}
            }
        }
        Ok(Ledger { tokens })
    }

    pub async fn read<S: EventStore>(store: &S) -> Result<Ledger, AuthError> {
        Ledger::from_events(&store.read(TOKEN_STREAM).await?)
    }

    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.get(id)
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Vec<TokenRecord> {
        let mut all: Vec<TokenRecord> = self.tokens.values().cloned().collect();
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        all
    }
}

/// Creates a token acting as `name` with `roles`, recording who made it.
pub async fn create_token<S: EventStore>(
    store: &S,
    name: &str,
    roles: &[Role],
    by: &str,
    now: Timestamp,
) -> Result<NewToken, AuthError> {
    check_name(name)?;
    let (id, secret) = (random_hex(6)?, random_hex(32)?);
    let roles: Vec<String> = roles.iter().map(ToString::to_string).collect();
    let event = TokenEvent::Create {
        at: now,
        by: by.to_string(),
        token: id.clone(),
        name: name.to_string(),
        roles: roles.clone(),
        hash: hash(&secret),
    };
    append_record(store, TOKEN_STREAM, serde_json::to_string(&event).unwrap_or_default()).await?;
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_string(),
        roles,
        hash: hash(&secret),
        created_at: now.to_string(),
        revoked_at: None,
    };
    Ok(NewToken { token: format!("{PREFIX}{id}_{secret}"), record })
}

/// Revokes a live token, recording who did; false if there was none.
pub async fn revoke_token<S: EventStore>(store: &S, id: &str, by: &str, now: Timestamp) -> Result<bool, AuthError> {
    let revoke = TokenEvent::Revoke { at: now, by: by.to_string(), token: id.to_string() };
    let body = serde_json::to_string(&revoke).unwrap_or_default();
    let appended = append_record_deciding(store, TOKEN_STREAM, |events| {
        let ledger = Ledger::from_events(events)?;
        match ledger.token(id) {
            Some(t) if t.revoked_at.is_none() => Ok(body.clone()),
            _ => Err(AuthError::NotLive),
        }
    })
    .await;
    match appended {
        Ok(_) => Ok(true),
        Err(AuthError::NotLive) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The ledger as last read and verified, with the head of the token stream
/// it was read at. A request reads only the stream's head and reads (and
/// verifies) the whole stream again when it moved: every token creation or
/// revocation, on any replica, moves it, so a revocation takes effect at the
/// next request. Only records that verified are ever honoured; an edit that
/// leaves the head as it was changes nothing here (`audit verify` finds it).
#[derive(Default)]
pub struct LedgerCache(Mutex<Option<(StreamHead, Arc<Ledger>)>>);

impl LedgerCache {
    pub async fn ledger<S: EventStore>(&self, store: &S) -> Result<Arc<Ledger>, AuthError> {
        let head = store.head(TOKEN_STREAM).await?;
        if let (Some(head), Some((read_at, ledger))) = (&head, &*self.cached())
            && head == read_at
        {
            return Ok(ledger.clone());
        }
        let events = store.read(TOKEN_STREAM).await?;
        let ledger = Arc::new(Ledger::from_events(&events)?);
        if let Some(last) = events.last() {
            let read_at = StreamHead { stream: TOKEN_STREAM.to_string(), seq: last.seq, hash: last.hash.clone() };
            *self.cached() = Some((read_at, ledger.clone()));
        }
        Ok(ledger)
    }

    fn cached(&self) -> MutexGuard<'_, Option<(StreamHead, Arc<Ledger>)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The actor behind an `Authorization` header value.
pub async fn authenticate<S: EventStore>(
    tokens: &LedgerCache,
    store: &S,
    header: Option<&str>,
) -> Result<Actor, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let token = header.strip_prefix("Bearer ").ok_or(AuthError::Missing)?.trim();
    let (id, secret) = token.strip_prefix(PREFIX).and_then(|t| t.split_once('_')).ok_or(AuthError::Malformed)?;
    let ledger = tokens.ledger(store).await?;
    let record = ledger.token(id).ok_or(AuthError::Invalid)?;
    let matches: bool = hash(secret).as_bytes().ct_eq(record.hash.as_bytes()).into();
    if !matches {
        return Err(AuthError::Invalid);
    }
    if let Some(at) = &record.revoked_at {
        return Err(AuthError::Revoked(at.clone()));
    }
    let roles = record.roles.iter().filter_map(|r| r.parse().ok()).collect::<Vec<Role>>();
    Ok(Actor::new(record.name.clone(), roles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_store::{DATABASE_FILE, SqliteStore};

    fn bearer(token: &NewToken) -> String {
        format!("Bearer {}", token.token)
    }

    #[tokio::test]
    async fn the_cached_ledger_follows_every_change_and_honours_only_what_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let (cache, fresh) = (LedgerCache::default(), LedgerCache::default());
        let erin = create_token(&store, "erin", &[Role::Viewer], "test", now).await.unwrap();
        assert_eq!(authenticate(&cache, &store, Some(&bearer(&erin))).await.unwrap().name, "erin");
        // Revoked through the store (as another replica would): the next request sees it.
        assert!(revoke_token(&store, &erin.record.id, "test", now).await.unwrap());
        let refused = authenticate(&cache, &store, Some(&bearer(&erin))).await;
        assert!(matches!(refused, Err(AuthError::Revoked(_))), "{refused:?}");

        // A grant edited in the database, leaving the head's position and hash as they were:
        let fay = create_token(&store, "fay", &[Role::Viewer], "test", now).await.unwrap();
        assert_eq!(authenticate(&cache, &store, Some(&bearer(&fay))).await.unwrap().roles, [Role::Viewer]);
        let pool =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join(DATABASE_FILE).display())).await.unwrap();
        let edited = sqlx::query("UPDATE events SET body = replace(body, '\"viewer\"', '\"admin\"') WHERE stream = '@tokens' AND body LIKE '%fay%'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(edited.rows_affected(), 1);
        pool.close().await;
        // the cache goes on with what it verified (never the edit), and a ledger read afresh refuses every token.
        assert_eq!(authenticate(&cache, &store, Some(&bearer(&fay))).await.unwrap().roles, [Role::Viewer]);
        let afresh = authenticate(&fresh, &store, Some(&bearer(&fay))).await;
        assert!(matches!(afresh, Err(AuthError::Tampered(_))), "{afresh:?}");
    }
}
