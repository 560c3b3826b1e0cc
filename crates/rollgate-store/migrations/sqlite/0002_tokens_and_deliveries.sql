-- API tokens: only a hash of each secret is kept.
CREATE TABLE tokens (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    roles      TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Webhook deliveries, retried with backoff until delivered or given up.
CREATE TABLE deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    rollout         TEXT    NOT NULL,
    sink            TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL,
    next_attempt_ms BIGINT  NOT NULL,
    delivered_ms    BIGINT,
    gave_up         BIGINT  NOT NULL,
    last_error      TEXT
);

CREATE INDEX deliveries_by_rollout ON deliveries (rollout);
