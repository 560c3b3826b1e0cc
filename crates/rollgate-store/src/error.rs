use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "stream {stream} moved on: expected to write event {expected} after {head_seq}; another writer appended first — reload the rollout and try again"
    )]
    Conflict { stream: String, expected: u64, head_seq: u64 },
    #[error(
        "service `{service}` already has an active rollout, `{rollout}`: one rollout per service at a time; let it finish, or end it with `rollgate rollout abort {rollout} --reason …` (or roll it back)"
    )]
    ServiceBusy { service: String, rollout: String },
    #[error("events to append must be one stream's, numbered one after another, each chained to the one before")]
    MalformedBatch,
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot prepare the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "this replica is no longer the leader (it writes under lease token {held}, the lease's is {current}): the write was refused"
    )]
    Fenced { held: i64, current: i64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}
