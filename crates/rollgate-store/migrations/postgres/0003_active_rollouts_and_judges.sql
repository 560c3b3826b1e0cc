-- The one active rollout of each service: taken in the same transaction as
-- the rollout's first event, given back with the event that ends it.
CREATE TABLE active_rollouts (
    service TEXT NOT NULL PRIMARY KEY,
    rollout TEXT NOT NULL
);

-- Each judged rollout's judge: its state (to continue the same test after a
-- restart) and its latest report (for any replica and the dashboard).
CREATE TABLE judges (
    rollout    TEXT    NOT NULL PRIMARY KEY,
    state      TEXT    NOT NULL,
    report     TEXT    NOT NULL,
    updated_ms BIGINT  NOT NULL
);
